//! The full-screen UI's one application state, [`App`], and how events change it.
//!
//! Everything the screen shows is a pure function of an `App` (see [`super::view`]).
//! Library [`Event`]s, key presses (see [`super::keys`]) and replies of the worker
//! change it; what it wants done (send a line, fetch a page, ask who is online) it
//! puts in its outbox as [`Action`]s for the runner. Nothing here touches NATS or the
//! terminal, so all of it is tested without either.

use std::collections::{BTreeSet, VecDeque};

use chat_protocol::body::{MessageKind, SystemKind};
use chat_protocol::display::sanitize;
use chat_protocol::{RoomName, UserName};
use chrono::{DateTime, FixedOffset, Utc};

use super::input::Input;
use crate::event::{Event, State};
use crate::history::Page;
use crate::moderation::Mute;
use crate::pacing::Progress;
use crate::render::{moderation_text, names_of, text_lines, what_happened};

/// Entries kept per room. Beyond it, the end far from the view is dropped (and fetched
/// again from the history worker when scrolled to), so memory stays bounded.
pub const MAX_ENTRIES: usize = 10_000;

/// Messages asked for per scrollback page.
pub const PAGE_SIZE: u32 = 200;

/// Live events of a room kept aside while its newest entries are not loaded (it was
/// scrolled far up); they are added once the pages in between are back.
const MAX_HELD: usize = 1_000;

/// The keys, as `/help` shows them after the commands.
pub const KEYS: &[(&str, &str)] = &[
    ("Enter", "send (an empty line does nothing)"),
    (
        "Alt-Enter, Shift-Enter",
        "a new line (a paste is one message)",
    ),
    ("Up, Down", "the lines you sent"),
    ("Tab", "complete a name or a command"),
    ("Ctrl-A, Ctrl-E", "start, end of the line"),
    (
        "Ctrl-W, Ctrl-U, Ctrl-K",
        "delete a word, to the start, to the end",
    ),
    ("Alt-1..9", "go to room 1..9"),
    ("Ctrl-N, Ctrl-P", "the next, the previous room"),
    (
        "PageUp, PageDown, wheel",
        "scroll (above the top: earlier messages)",
    ),
    ("Home, End", "the oldest loaded, the newest"),
    ("Ctrl-C", "quit (and Ctrl-D on an empty input)"),
];

/// One line (or block of lines) in a room's timeline.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    /// A chat message or `/me` action.
    Message {
        /// Stream sequence.
        seq: u64,
        /// Sender's time.
        ts: DateTime<Utc>,
        /// The sender.
        user: UserName,
        /// An action (`/me`).
        me: bool,
        /// The text's lines, sanitized.
        lines: Vec<String>,
        /// Replayed from history rather than live.
        replay: bool,
        /// It names this client's user.
        mention: bool,
        /// The body claimed another sender.
        spoofed: bool,
    },
    /// Someone joined or left.
    System {
        /// Stream sequence.
        seq: u64,
        /// What happened, sanitized.
        text: String,
    },
    /// Something this client says: welcome, errors, answers, states.
    Note {
        /// Its lines, sanitized.
        lines: Vec<String>,
        /// An error (shown as such).
        error: bool,
    },
}

impl Entry {
    /// The stream sequence of stored entries.
    pub fn seq(&self) -> Option<u64> {
        match self {
            Entry::Message { seq, .. } | Entry::System { seq, .. } => Some(*seq),
            Entry::Note { .. } => None,
        }
    }

    fn note(text: impl AsRef<str>, error: bool) -> Self {
        Entry::Note {
            lines: text_lines(text.as_ref()),
            error,
        }
    }
}

/// One joined room as the UI holds it.
#[derive(Debug, Clone)]
pub struct Room {
    /// Its name.
    pub name: RoomName,
    /// Its timeline, oldest first (at most [`MAX_ENTRIES`]).
    pub entries: VecDeque<Entry>,
    /// Who is online, from `/users` and joined/left events.
    pub users: BTreeSet<UserName>,
    /// Distinct users online, as the last welcome or system event said.
    pub online: u64,
    /// Live messages since it was last looked at.
    pub unread: usize,
    /// A live message named this user since it was last looked at.
    pub mention: bool,
    /// Entries hidden below the view (0: the view follows the newest).
    pub scroll: usize,
    /// The last sequence seen when the room was left: a "new messages" line is shown
    /// above what came after it, until the view is brought back to the bottom.
    pub marker: Option<u64>,
    /// The input typed here and not sent, kept while another room is shown.
    pub draft: Vec<String>,
    /// An earlier or later page is being fetched.
    pub loading: bool,
    /// Nothing is stored before the first entry.
    pub complete: bool,
    /// Entries newer than the last one were dropped (scrolled far up): live events
    /// wait in `held` until the pages in between are fetched again.
    pub newer_dropped: bool,
    held: VecDeque<Entry>,
    /// `#all_messages` is replaying (its joined/left events say nothing about now).
    pub replaying: Option<u64>,
}

impl Room {
    fn new(name: RoomName) -> Self {
        Self {
            name,
            entries: VecDeque::new(),
            users: BTreeSet::new(),
            online: 0,
            unread: 0,
            mention: false,
            scroll: 0,
            marker: None,
            draft: Vec::new(),
            loading: false,
            complete: false,
            newer_dropped: false,
            held: VecDeque::new(),
            replaying: None,
        }
    }

    /// The oldest and newest stored sequence loaded.
    pub fn first_seq(&self) -> Option<u64> {
        self.entries.iter().find_map(Entry::seq)
    }

    /// The newest stored sequence loaded.
    pub fn last_seq(&self) -> Option<u64> {
        self.entries.iter().rev().find_map(Entry::seq)
    }

    /// Takes the messages at `seqs` out (a tombstone), keeping the view on what it
    /// showed.
    fn hide(&mut self, seqs: &[u64]) {
        if seqs.is_empty() {
            return;
        }
        let seqs: BTreeSet<u64> = seqs.iter().copied().collect();
        let gone = |e: &Entry| matches!(e, Entry::Message { seq, .. } if seqs.contains(seq));
        let below = self.entries.len().saturating_sub(self.scroll);
        let hidden_below = self.entries.iter().skip(below).filter(|e| gone(e)).count();
        self.entries.retain(|e| !gone(e));
        self.held.retain(|e| !gone(e));
        self.scroll = self.scroll.saturating_sub(hidden_below);
    }

    /// Adds `entry` at the bottom, keeping the view where it is when scrolled up.
    fn push(&mut self, entry: Entry) {
        if self.newer_dropped && entry.seq().is_some() {
            if self.held.len() == MAX_HELD {
                self.held.pop_front();
            }
            self.held.push_back(entry);
            return;
        }
        self.entries.push_back(entry);
        if self.scroll > 0 {
            self.scroll += 1;
        }
        self.bound();
    }

    /// Drops entries beyond [`MAX_ENTRIES`] from the end far from the view.
    fn bound(&mut self) {
        let excess = self.entries.len().saturating_sub(MAX_ENTRIES);
        if excess == 0 {
            return;
        }
        if self.scroll > self.entries.len() / 2 {
            self.entries.truncate(MAX_ENTRIES);
            self.scroll = self.scroll.saturating_sub(excess);
            self.newer_dropped = true;
        } else {
            self.entries.drain(..excess);
            self.complete = false;
        }
    }
}

/// The connection as the status line shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connection {
    /// Connected.
    Connected,
    /// Lost; async-nats is reconnecting.
    Reconnecting,
    /// The server refuses the login.
    Refused,
}

/// What the state asks the runner to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Hand an input line to the session, in `room`.
    Line {
        /// The room shown when it was typed.
        room: Option<RoomName>,
        /// The line (may hold line breaks: one message).
        text: String,
    },
    /// Fetch a page of a room's history.
    Fetch {
        /// The room.
        room: RoomName,
        /// Which page.
        page: Page,
    },
    /// Ask who is online in a room (for the users pane).
    Users(RoomName),
    /// Ring the terminal bell.
    Bell,
}

/// The whole UI state.
#[derive(Debug)]
pub struct App {
    /// This client's user.
    pub user: UserName,
    /// Joined rooms, in the order they were joined (Alt-1..9).
    pub rooms: Vec<Room>,
    /// Index of the room shown (meaningless while `rooms` is empty).
    pub current: usize,
    /// What is shown while no room is joined.
    pub lobby: VecDeque<Entry>,
    /// The connection.
    pub connection: Connection,
    /// Whether the presence service answers.
    pub presence: bool,
    /// Lines handed to the session and not handled yet.
    pub pending: usize,
    /// Messages sent and not acknowledged by JetStream yet (the library's count, read
    /// before each frame).
    pub unconfirmed: usize,
    /// The batch of messages being paced to the allowed rate (the library's, read
    /// before each frame).
    pub sending: Progress,
    /// Messages show their stream sequence (`/seq`).
    pub show_seq: bool,
    /// The mute in force (the library's, read before each frame).
    pub muted: Option<Mute>,
    /// The input box.
    pub input: Input,
    /// Colours (off with `NO_COLOR`).
    pub color: bool,
    /// Ring the bell on a mention in a room not shown.
    pub bell: bool,
    /// The clock: which day is today, for dates and day separators.
    pub now: DateTime<Utc>,
    /// The local time zone.
    pub offset: FixedOffset,
    /// Rows of the message pane at the last draw (a page for PageUp/PageDown).
    pub page_rows: usize,
    /// The user asked to quit.
    pub quit: bool,
    outbox: Vec<Action>,
}

impl App {
    /// A state for `user` with no room yet.
    pub fn new(user: UserName, now: DateTime<Utc>, offset: FixedOffset) -> Self {
        Self {
            user,
            rooms: Vec::new(),
            current: 0,
            lobby: VecDeque::new(),
            connection: Connection::Connected,
            presence: true,
            pending: 0,
            unconfirmed: 0,
            sending: Progress::default(),
            show_seq: false,
            muted: None,
            input: Input::default(),
            color: true,
            bell: true,
            now,
            offset,
            page_rows: 20,
            quit: false,
            outbox: Vec::new(),
        }
    }

    /// What the runner should do now, oldest first.
    pub fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.outbox)
    }

    pub(super) fn act(&mut self, action: Action) {
        self.outbox.push(action);
    }

    /// The room shown.
    pub fn room(&self) -> Option<&Room> {
        self.rooms.get(self.current)
    }

    pub(super) fn room_mut(&mut self) -> Option<&mut Room> {
        self.rooms.get_mut(self.current)
    }

    fn index_of(&self, name: &RoomName) -> Option<usize> {
        self.rooms.iter().position(|r| &r.name == name)
    }

    /// The room `name`, added to the list if new.
    fn joined(&mut self, name: &RoomName) -> usize {
        match self.index_of(name) {
            Some(i) => i,
            None => {
                self.rooms.push(Room::new(name.clone()));
                if self.rooms.len() == 1 {
                    self.current = 0;
                }
                self.rooms.len() - 1
            }
        }
    }

    /// Adds a note to the room shown (or the lobby).
    pub fn note(&mut self, text: impl AsRef<str>, error: bool) {
        let entry = Entry::note(text, error);
        match self.rooms.get_mut(self.current) {
            Some(room) => room.push(entry),
            None => {
                if self.lobby.len() == MAX_HELD {
                    self.lobby.pop_front();
                }
                self.lobby.push_back(entry)
            }
        }
    }

    /// Shows room `to` (an index), keeping the draft of the room left.
    pub fn switch_to(&mut self, to: usize) {
        if to >= self.rooms.len() || to == self.current {
            return;
        }
        let draft = self.input.take();
        if let Some(left) = self.rooms.get_mut(self.current) {
            left.draft = draft;
            left.marker = left.last_seq();
        }
        self.current = to;
        let room = &mut self.rooms[to];
        room.unread = 0;
        room.mention = false;
        let draft = std::mem::take(&mut room.draft);
        self.input.set(draft);
    }

    /// Follows the session's current room (after `/join` or `/leave`).
    pub fn follow(&mut self, current: Option<&RoomName>) {
        if let Some(name) = current {
            let i = self.joined(name);
            self.switch_to(i);
        }
    }

    /// Applies one library event.
    pub fn on_event(&mut self, event: Event) {
        match event {
            Event::Welcome {
                room, users, text, ..
            } => {
                let i = self.joined(&room);
                let r = &mut self.rooms[i];
                r.online = users;
                let text = match sanitize(&text) {
                    t if t.is_empty() => format!("joined {room} ({users} online)"),
                    t => t.into_owned(),
                };
                r.push(Entry::note(text, false));
                self.act(Action::Users(room));
            }
            event @ (Event::Message { .. } | Event::System { .. }) => self.on_stored(event),
            Event::Users { room, users } => {
                let names: Vec<&str> = users.iter().map(UserName::as_str).collect();
                let text = format!("users in {room} ({}): {}", users.len(), names.join(", "));
                if let Some(i) = self.index_of(&room) {
                    self.rooms[i].users = users.into_iter().collect();
                }
                self.note(text, false);
            }
            Event::Rooms { rooms, unlisted } => {
                let text = if rooms.is_empty() {
                    "no rooms yet".to_string()
                } else {
                    let list: Vec<String> = rooms
                        .iter()
                        .map(|r| {
                            format!("  {} ({} online, {} messages)", r.room, r.users, r.messages)
                        })
                        .collect();
                    format!(
                        "rooms:\n{}{}",
                        list.join("\n"),
                        crate::render::more_rooms(unlisted)
                    )
                };
                self.note(text, false);
            }
            Event::Help { commands } => {
                let keys = KEYS.iter().map(|(k, what)| format!("{k:<22} {what}"));
                let text: Vec<String> = std::iter::once("commands:".to_string())
                    .chain(commands)
                    .chain(std::iter::once("keys:".to_string()))
                    .chain(keys)
                    .collect();
                self.note(text.join("\n"), false);
            }
            Event::Error { message } => self.note(message, true),
            Event::Status {
                state,
                room,
                message,
            } => self.on_status(state, room, message),
            Event::HistoryProgress { room, count } => {
                if let Some(i) = self.index_of(&room) {
                    self.rooms[i].replaying = Some(count);
                }
            }
            Event::HistoryEnd { room, user, count } => {
                if let Some(i) = self.index_of(&room) {
                    self.rooms[i].replaying = None;
                }
                let text = match user {
                    Some(user) => format!("end of {user}'s messages: {count}"),
                    None => format!("end of the history of {room}: {count} messages"),
                };
                self.note(text, false);
            }
        }
    }

    /// A chat message or a system event, live or replayed. A `deleted` event (the
    /// tombstone) takes the messages it names out of the room.
    fn on_stored(&mut self, event: Event) {
        let (room, live, presence, deleted) = match &event {
            Event::Message { room, replay, .. } => (room.clone(), !replay, None, &[][..]),
            Event::System {
                room,
                user,
                kind,
                users,
                detail,
                ..
            } => {
                // Only joined/left change who is online; moderation events say 0 users.
                let presence = matches!(kind, SystemKind::Joined | SystemKind::Left)
                    .then(|| (user.clone(), *kind, *users));
                let deleted = match kind {
                    SystemKind::Deleted => &detail.seqs[..],
                    _ => &[],
                };
                (room.clone(), false, presence, deleted)
            }
            _ => return,
        };
        let Some(i) = self.index_of(&room) else {
            return;
        };
        self.rooms[i].hide(deleted);
        let shown = i == self.current;
        let Some(entry) = entry_of(event, &self.user) else {
            return;
        };
        let mention = matches!(entry, Entry::Message { mention: true, .. });
        let r = &mut self.rooms[i];
        if let (Some((user, kind, users)), None) = (presence, r.replaying) {
            r.online = users;
            match kind {
                SystemKind::Joined => r.users.insert(user),
                SystemKind::Left => r.users.remove(&user),
                _ => false,
            };
        }
        r.push(entry);
        if live && !shown {
            r.unread += 1;
            if mention && !r.mention {
                r.mention = true;
                if self.bell {
                    self.act(Action::Bell);
                }
            }
        }
    }

    fn on_status(&mut self, state: State, room: Option<RoomName>, message: String) {
        match state {
            State::Disconnected => self.connection = Connection::Reconnecting,
            State::Reconnected => self.connection = Connection::Connected,
            State::LoginRefused => self.connection = Connection::Refused,
            State::PresenceUnavailable => self.presence = false,
            State::PresenceAvailable | State::Rejoined => self.presence = true,
            State::Left => {
                if let Some(i) = room.as_ref().and_then(|r| self.index_of(r)) {
                    let shown = i == self.current;
                    self.rooms.remove(i);
                    if self.current > i || (shown && self.current == self.rooms.len()) {
                        self.current = self.current.saturating_sub(1);
                    }
                    if shown {
                        let draft = self
                            .rooms
                            .get_mut(self.current)
                            .map(|r| std::mem::take(&mut r.draft));
                        if let Some(draft) = draft.filter(|d| !d.is_empty()) {
                            self.input.set(draft);
                        }
                    }
                }
            }
            // The status line shows the progress (see `sending`).
            State::Sending => return,
            _ => {}
        }
        match room.as_ref().and_then(|r| self.index_of(r)) {
            Some(i) => self.rooms[i].push(Entry::note(message, false)),
            None => self.note(message, false),
        }
    }

    /// The users pane's list for `room`.
    pub fn set_users(&mut self, room: &RoomName, users: Vec<UserName>) {
        if let Some(i) = self.index_of(room) {
            self.rooms[i].users = users.into_iter().collect();
        }
    }

    /// The line the session refused as it stands comes back for editing.
    pub fn retype(&mut self, room: Option<RoomName>, text: String) {
        let lines: Vec<String> = text.split('\n').map(str::to_string).collect();
        let here = room.as_ref() == self.room().map(|r| &r.name);
        if here || room.is_none() {
            if self.input.is_empty() {
                self.input.set(lines);
            }
        } else if let Some(i) = room.and_then(|r| self.index_of(&r)) {
            if self.rooms[i].draft.is_empty() {
                self.rooms[i].draft = lines;
            }
        }
    }

    /// Scrolls the shown room up by `n` entries; at the top of what is loaded, asks
    /// for the earlier page.
    pub fn scroll_up(&mut self, n: usize) {
        let rows = self.page_rows;
        let Some(room) = self.room_mut() else { return };
        let len = room.entries.len();
        room.scroll = (room.scroll + n).min(len.saturating_sub(1));
        let at_top = room.scroll + rows >= len;
        if at_top && !room.complete && !room.loading {
            let before = room.first_seq().unwrap_or(u64::MAX);
            if before <= 1 {
                room.complete = true;
                return;
            }
            room.loading = true;
            let room = room.name.clone();
            self.act(Action::Fetch {
                room,
                page: Page::Before(before),
            });
        }
    }

    /// Scrolls the shown room down by `n` entries; at the bottom, clears the "new
    /// messages" line, and fetches the newer page if it was dropped.
    pub fn scroll_down(&mut self, n: usize) {
        let Some(room) = self.room_mut() else { return };
        room.scroll = room.scroll.saturating_sub(n);
        if room.scroll > 0 {
            return;
        }
        room.marker = None;
        if room.newer_dropped && !room.loading {
            if let Some(after) = room.last_seq() {
                room.loading = true;
                let room = room.name.clone();
                self.act(Action::Fetch {
                    room,
                    page: Page::After(after),
                });
            }
        }
    }

    /// The scroll the last frame could show (less than asked at the top of what is
    /// loaded), so that PageDown moves from what is seen.
    pub fn settle_scroll(&mut self, shown: usize) {
        if let Some(room) = self.room_mut() {
            room.scroll = room.scroll.min(shown);
        }
    }

    /// A fetched page of `room`'s history (or why it did not come).
    pub fn on_page(
        &mut self,
        room: &RoomName,
        page: Page,
        result: Result<(Vec<Event>, Option<u64>), String>,
    ) {
        let Some(i) = self.index_of(room) else { return };
        let r = &mut self.rooms[i];
        r.loading = false;
        let (events, next) = match result {
            Ok(page) => page,
            Err(message) => {
                let entry = Entry::note(format!("earlier messages not loaded: {message}"), true);
                r.push(entry);
                return;
            }
        };
        let entries = events.into_iter().filter_map(|e| entry_of(e, &self.user));
        match page {
            Page::Before(before) => {
                let older: Vec<Entry> = entries
                    .filter(|e| e.seq().is_some_and(|s| s < before))
                    .collect();
                for entry in older.into_iter().rev() {
                    r.entries.push_front(entry);
                }
                r.complete = next.is_none();
                r.bound();
            }
            Page::After(after) => {
                let last = r.last_seq().unwrap_or(after);
                let newer = entries.filter(|e| e.seq().is_some_and(|s| s > last));
                for entry in newer {
                    r.entries.push_back(entry);
                    r.scroll += 1;
                }
                if next.is_none() {
                    r.newer_dropped = false;
                    let last = r.last_seq().unwrap_or(0);
                    let held: Vec<Entry> = r
                        .held
                        .drain(..)
                        .filter(|e| e.seq().is_some_and(|s| s > last))
                        .collect();
                    r.entries.extend(held);
                }
                r.bound();
            }
        }
    }
}

/// Whether `text` names `user`: `@name`, or the bare name as a word.
pub fn mentions(text: &str, user: &UserName) -> bool {
    text.split(|c: char| !(c.is_alphanumeric() || c == '-' || c == '_'))
        .any(|word| word.eq_ignore_ascii_case(user.as_str()))
}

/// A stored event (live or from history) as an entry; a message naming `me` (sent
/// by someone else) is marked as a mention.
fn entry_of(event: Event, me: &UserName) -> Option<Entry> {
    match event {
        Event::Message {
            user,
            kind,
            text,
            seq,
            ts,
            replay,
            spoofed,
            ..
        } => {
            let mention = &user != me && mentions(&text, me);
            Some(Entry::Message {
                seq,
                ts,
                user,
                me: kind == MessageKind::Me,
                lines: text_lines(&text),
                replay,
                mention,
                spoofed,
            })
        }
        Event::System {
            user,
            kind,
            reason,
            users,
            seq,
            detail,
            ..
        } => {
            let text = moderation_text(&user, kind, reason, &detail).unwrap_or_else(|| {
                let who = names_of(&user, &detail.others, UserName::to_string);
                format!("{who} {} ({users} online)", what_happened(kind, reason))
            });
            Some(Entry::System { seq, text })
        }
        _ => None,
    }
}
