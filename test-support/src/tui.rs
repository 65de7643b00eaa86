//! A full-screen UI state with a fixed clock and known events, for the snapshot and
//! key tests.

use chat_client::ui::tui::app::App;
use chat_client::ui::tui::view;
use chat_client::Event;
use chat_protocol::body::{MessageKind, Reason, SystemKind};
use chat_protocol::{RoomName, UserName};
use chrono::{DateTime, FixedOffset, TimeZone, Utc};
use ratatui::backend::TestBackend;
use ratatui::Terminal;

pub fn room(name: &str) -> RoomName {
    RoomName::new(name).unwrap()
}

pub fn user(name: &str) -> UserName {
    UserName::new(name).unwrap()
}

/// The fixed "now" of every test: Saturday 28 November 2026, 14:30 UTC.
pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 28, 14, 30, 0).unwrap()
}

pub fn welcome(room_name: &str, users: u64) -> Event {
    Event::Welcome {
        room: room(room_name),
        user: user("alice"),
        users,
        text: format!("Welcome to #{room_name}, alice!"),
    }
}

/// A chat message of `from` in `room_name`, `minutes` before [`now`].
pub fn said(room_name: &str, from: &str, seq: u64, minutes: i64, text: &str) -> Event {
    Event::Message {
        room: room(room_name),
        user: user(from),
        kind: MessageKind::Chat,
        text: text.into(),
        id: format!("id-{seq}"),
        seq,
        ts: now() - chrono::Duration::minutes(minutes),
        replay: false,
        spoofed: false,
    }
}

pub fn replayed(event: Event) -> Event {
    match event {
        Event::Message {
            room,
            user,
            kind,
            text,
            id,
            seq,
            ts,
            spoofed,
            ..
        } => Event::Message {
            room,
            user,
            kind,
            text,
            id,
            seq,
            ts,
            replay: true,
            spoofed,
        },
        other => other,
    }
}

pub fn action(room_name: &str, from: &str, seq: u64, minutes: i64, text: &str) -> Event {
    match said(room_name, from, seq, minutes, text) {
        Event::Message {
            room,
            user,
            text,
            id,
            seq,
            ts,
            ..
        } => Event::Message {
            room,
            user,
            kind: MessageKind::Me,
            text,
            id,
            seq,
            ts,
            replay: false,
            spoofed: false,
        },
        _ => unreachable!(),
    }
}

pub fn joined(room_name: &str, who: &str, seq: u64, users: u64) -> Event {
    Event::System {
        room: room(room_name),
        user: user(who),
        kind: SystemKind::Joined,
        reason: Reason::Join,
        users,
        seq,
        detail: Default::default(),
    }
}

/// alice in general (shown), random and rust-dev, with history from yesterday, a
/// multi-line message, an action, a mention, hostile text, an error, unread messages
/// and a mention in random, and a half-typed draft.
pub fn busy_app() -> App {
    let mut app = App::new(user("alice"), now(), FixedOffset::east_opt(0).unwrap());
    app.on_event(welcome("general", 3));
    app.on_event(welcome("random", 2));
    app.on_event(welcome("rust-dev", 1));
    app.follow(Some(&room("general")));
    app.set_users(
        &room("general"),
        vec![user("alice"), user("bob"), user("carol")],
    );
    let events = [
        replayed(said("general", "bob", 10, 24 * 60 + 5, "yesterday's news")),
        replayed(said("general", "carol", 11, 24 * 60, "see you tomorrow")),
        joined("general", "carol", 12, 3),
        said("general", "bob", 13, 9, "good morning"),
        said("general", "carol", 14, 8, "a long line that goes on and on so that it has to wrap on a narrow terminal, indented under the text"),
        said("general", "bob", 15, 7, "first line\nsecond line\n\tindented third"),
        action("general", "carol", 16, 6, "waves"),
        said("general", "bob", 17, 5, "alice: are you there?"),
        said("general", "mallory", 18, 4, "\u{1b}[2J\u{1b}]0;pwned\u{7}clear screen?\u{202e}olleh"),
        said("random", "bob", 5, 3, "anyone?"),
        said("random", "bob", 6, 2, "@alice ping"),
        said("random", "carol", 7, 1, "lunch?"),
        Event::error("unknown command \"/frob\"; the commands are /me, /users"),
    ];
    for event in events {
        app.on_event(event);
    }
    app.input.set(vec!["half typed".into()]);
    app.take_actions();
    app
}

/// The screen of `app` at `width`x`height`.
pub fn draw(app: &mut App, width: u16, height: u16) -> Terminal<TestBackend> {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    let mut shown = 0;
    terminal
        .draw(|frame| {
            app.page_rows = view::message_rows(frame.area(), app);
            shown = view::draw(frame, app);
        })
        .unwrap();
    app.settle_scroll(shown);
    terminal
}
