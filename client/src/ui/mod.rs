//! The front ends and what they share.
//!
//! - [`lines`]: stdin is not a terminal: one input line per message or command, one
//!   output line (or JSON object) per event.
//! - [`tui`]: the full-screen terminal UI: rooms, scrollback, users, unread counts
//!   and mentions (the default on a terminal).
//! - [`interactive`]: a plain line editor whose prompt survives incoming messages
//!   (`--plain`: screen readers, simple terminals).
//!
//! All feed input lines to a [`Session`], which turns commands into [`Chat`] calls,
//! and print events from one channel, in order, in one task.

pub mod interactive;
pub mod lines;
pub mod tui;

use chat_protocol::RoomName;
use chat_runtime::{exit, shutdown_signal};
use tokio::sync::watch;

use crate::command::{self, Command, CommandError};
use crate::event::{Event, State};
use crate::Chat;

/// Exit code when a second Ctrl-C or SIGTERM cut the shutdown short (128 + SIGINT).
pub const INTERRUPTED: i32 = 130;

/// Whether to go on reading input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Read the next line.
    Continue,
    /// The user asked to quit.
    Quit,
    /// The line was refused as it stands (a text too long): an editor gives it back
    /// to be fixed rather than losing it.
    Retype,
}

/// What a UI needs to start.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The room to join first.
    pub room: RoomName,
    /// Past messages replayed on each join.
    pub history: usize,
    /// One JSON object per event (line mode).
    pub json: bool,
}

/// The user's side of a chat: the current room and the commands typed.
pub struct Session {
    chat: Chat,
    history: usize,
    current: watch::Sender<Option<RoomName>>,
    /// Messages show their stream sequence (`/seq`).
    seq: watch::Sender<bool>,
    /// Run joins and history replays in the background (interactive) or in input
    /// order (line mode: the next line is read once they are done).
    background: bool,
}

impl Session {
    /// A session on `chat` that joins rooms with `history` replayed messages.
    pub fn new(chat: Chat, history: usize, background: bool) -> Self {
        let (current, _) = watch::channel(None);
        Self {
            chat,
            history,
            current,
            seq: watch::channel(false).0,
            background,
        }
    }

    /// Whether messages show their stream sequence, as `/seq` toggles it.
    pub fn show_seq(&self) -> watch::Receiver<bool> {
        self.seq.subscribe()
    }

    /// The room messages go to, as it changes (for printers and prompts).
    pub fn current_room(&self) -> watch::Receiver<Option<RoomName>> {
        self.current.subscribe()
    }

    /// Makes `room` the current one, if joined (the full-screen UI sends each line to
    /// the room shown when it was typed).
    pub fn switch(&mut self, room: &RoomName) {
        if self.chat.is_joined(room) {
            self.current.send_if_modified(|current| {
                let changed = current.as_ref() != Some(room);
                *current = Some(room.clone());
                changed
            });
        }
    }

    fn current(&self) -> Option<RoomName> {
        self.current.borrow().clone()
    }

    /// Shows an error about the input (in order with everything else).
    pub async fn error(&self, message: impl std::fmt::Display) {
        self.chat.notify(Event::error(message)).await;
    }

    /// Handles one input line.
    /// An empty line does nothing (a person pressing Enter on an empty prompt).
    pub async fn handle_line(&mut self, line: &str) -> Flow {
        match command::parse(line) {
            Ok(command) => self.run(command).await,
            Err(CommandError::Empty) => Flow::Continue,
            Err(err) => {
                let flow = match err {
                    CommandError::Text(_) => Flow::Retype,
                    _ => Flow::Continue,
                };
                self.chat.notify(Event::error(err)).await;
                flow
            }
        }
    }

    /// Carries out one command.
    pub async fn run(&mut self, command: Command) -> Flow {
        let no_room = || Event::error("you are in no room; /join one first");
        match command {
            Command::Quit => return Flow::Quit,
            Command::Join(rooms) => {
                for room in &rooms {
                    self.chat.join(room, self.history);
                }
                if !self.background {
                    for room in &rooms {
                        self.chat.wait_live(room).await;
                    }
                }
                self.current.send_replace(rooms.last().cloned());
            }
            Command::Help => {
                let commands = command::help_lines().collect();
                self.chat.notify(Event::Help { commands }).await;
            }
            Command::Seq => {
                let shown = !*self.seq.borrow();
                self.seq.send_replace(shown);
                let message = match shown {
                    true => "messages show their stream sequence (#123): /delete 123 deletes one; /seq hides them",
                    false => "stream sequences hidden (/seq shows them)",
                };
                let event = Event::status(State::Sequences, None, message);
                self.chat.notify(event).await;
            }
            Command::Passwd => {
                let event = match self.change_password().await {
                    Ok(()) => Event::status(State::PasswordChanged, None, "password changed"),
                    Err(message) => Event::error(message),
                };
                self.chat.notify(event).await;
            }
            Command::Say(..) if self.chat.muted().is_some() => {
                // Refused here, and kept to be sent later: the server would not take it.
                let mute = self.chat.muted().map(|m| m.to_string()).unwrap_or_default();
                let message = format!("not sent: {mute}");
                self.chat.notify(Event::error(message)).await;
                return Flow::Retype;
            }
            command => {
                let Some(current) = self.current() else {
                    self.chat.notify(no_room()).await;
                    return Flow::Continue;
                };
                self.in_room(command, current).await;
            }
        }
        Flow::Continue
    }

    async fn in_room(&mut self, command: Command, current: RoomName) {
        let chat = self.chat.clone();
        let result = match command {
            Command::Say(kind, text) => chat
                .send(&current, kind, &text)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Command::Users => match chat.users(&current).await {
                Ok(reply) => {
                    let users = reply.users;
                    chat.notify(Event::Users {
                        room: reply.room,
                        users,
                    })
                    .await;
                    Ok(())
                }
                Err(err) => Err(err.to_string()),
            },
            Command::Rooms => match chat.list_rooms().await {
                Ok(reply) => {
                    chat.notify(Event::Rooms {
                        rooms: reply.rooms,
                        unlisted: reply.unlisted,
                    })
                    .await;
                    Ok(())
                }
                Err(err) => Err(err.to_string()),
            },
            Command::Leave(room) => {
                let room = room.unwrap_or(current.clone());
                if chat.leave(&room).await {
                    if room == current {
                        self.current.send_replace(chat.joined().pop());
                    }
                    Ok(())
                } else {
                    Err(format!("you are not in room {room}"))
                }
            }
            Command::AllMessages | Command::MyMessages => {
                let replay = async move {
                    let result = if command == Command::AllMessages {
                        chat.all_messages(&current).await
                    } else {
                        chat.my_messages(&current).await
                    };
                    if let Err(err) = result {
                        chat.notify(Event::error(err)).await;
                    }
                };
                if self.background {
                    tokio::spawn(replay);
                } else {
                    replay.await;
                }
                Ok(())
            }
            Command::Moderate(moderation) => match chat.moderate(&current, &moderation).await {
                Ok(reply) => {
                    let done = crate::moderation::done(&moderation, &reply);
                    let event = Event::status(State::Moderated, Some(&current), done);
                    chat.notify(event).await;
                    Ok(())
                }
                Err(err) => Err(err.to_string()),
            },
            Command::Quit | Command::Join(_) | Command::Help | Command::Seq | Command::Passwd => {
                Ok(())
            }
        };
        if let Err(message) = result {
            self.chat.notify(Event::error(message)).await;
        }
    }

    /// `/passwd`: asks the current and the new password (twice) on the terminal without
    /// echo. The line editor is not reading meanwhile (it waits until a line is
    /// handled), so the terminal is free. Line mode has no terminal to ask on.
    async fn change_password(&self) -> Result<(), String> {
        if !self.background {
            return Err(
                "/passwd needs a terminal; use `chat-client passwd --user NAME` \
                        (CHAT_PASSWORD and CHAT_NEW_PASSWORD, or prompts)"
                    .into(),
            );
        }
        let user = self.chat.user().clone();
        let asked = tokio::task::spawn_blocking(move || -> std::io::Result<(String, String)> {
            let old = rpassword::prompt_password("current password: ")?;
            let new = crate::login::ask_new_password(&user)?;
            Ok((old, new))
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("cannot read the password: {e}"))?;
        self.chat
            .change_password(&asked.0, &asked.1)
            .await
            .map_err(|e| format!("password not changed: {e}"))
    }

    /// Ends the session: waits (for a bounded time) for outstanding acks and echoes,
    /// leaves every room. Returns the exit code: 1 if some message was not sent or is
    /// unconfirmed (each was named by the library). A second Ctrl-C or SIGTERM while
    /// waiting ends at once (exit code 130).
    pub async fn finish(self) -> i32 {
        tokio::select! {
            report = self.chat.close() => {
                if report.failed.is_empty() {
                    exit::OK
                } else {
                    exit::FAILURE
                }
            }
            _ = shutdown_signal() => {
                eprintln!("chat-client: interrupted again; quitting without waiting for acknowledgements");
                INTERRUPTED
            }
        }
    }
}
