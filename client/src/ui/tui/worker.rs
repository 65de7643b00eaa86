//! What the full-screen UI asks for, carried out away from the drawing loop.
//!
//! Input lines go, in order, through one task that owns the [`Session`] (so a line
//! is sent to the room that was shown when it was typed, and `/join` or `/users`
//! behave as in the line editor). History pages and the users pane's lists are
//! fetched by tasks of their own, so a slow answer holds up nothing else. Every
//! outcome comes back as a [`Reply`].

use chat_protocol::{RoomName, UserName};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::app::{Action, PAGE_SIZE};
use crate::event::Event;
use crate::history::Page;
use crate::ui::{Flow, Session};
use crate::Chat;

/// What the worker reports back.
#[derive(Debug)]
pub enum Reply {
    /// An input line was handled.
    Handled {
        /// The room it was typed in.
        room: Option<RoomName>,
        /// The line.
        text: String,
        /// What the session said about it.
        flow: Flow,
    },
    /// A history page came (or did not).
    Page {
        /// Its room.
        room: RoomName,
        /// Which page was asked for.
        page: Page,
        /// The events and the following cursor, or why not.
        result: Result<(Vec<Event>, Option<u64>), String>,
    },
    /// Who is online in a room.
    Users {
        /// The room.
        room: RoomName,
        /// Who.
        users: Vec<UserName>,
    },
}

/// The handle the runner sends work through.
pub struct Jobs {
    lines: mpsc::UnboundedSender<Job>,
    chat: Chat,
    replies: mpsc::Sender<Reply>,
    task: JoinHandle<Option<Session>>,
}

/// An input line for the session.
#[derive(Debug)]
pub struct Job {
    room: Option<RoomName>,
    text: String,
}

/// Starts the worker owning `session`.
pub fn start(session: Session, chat: Chat) -> (Jobs, mpsc::Receiver<Reply>) {
    let (lines, rx) = mpsc::unbounded_channel();
    let (replies, replies_rx) = mpsc::channel(64);
    let task = tokio::spawn(handle_lines(session, rx, replies.clone()));
    let jobs = Jobs {
        lines,
        chat,
        replies,
        task,
    };
    (jobs, replies_rx)
}

impl Jobs {
    /// Carries out `action` (a bell is the runner's own).
    pub fn send(&self, action: Action) {
        match action {
            Action::Line { room, text } => {
                let _ = self.lines.send(Job { room, text });
            }
            Action::Fetch { room, page } => {
                let (chat, replies) = (self.chat.clone(), self.replies.clone());
                tokio::spawn(async move {
                    let result = chat
                        .history_page(&room, page, PAGE_SIZE)
                        .await
                        .map_err(|e| e.to_string());
                    let _ = replies.send(Reply::Page { room, page, result }).await;
                });
            }
            Action::Users(room) => {
                let (chat, replies) = (self.chat.clone(), self.replies.clone());
                tokio::spawn(async move {
                    match chat.users(&room).await {
                        Ok(reply) => {
                            let users = reply.users;
                            let _ = replies.send(Reply::Users { room, users }).await;
                        }
                        Err(err) => tracing::warn!(%room, "users pane not filled: {err}"),
                    }
                });
            }
            Action::Bell => {}
        }
    }

    /// Lets the lines already sent be handled, then gives the session back (none if
    /// its task failed).
    pub async fn finish(self) -> Option<Session> {
        drop(self.lines);
        self.task.await.ok().flatten()
    }
}

async fn handle_lines(
    mut session: Session,
    mut lines: mpsc::UnboundedReceiver<Job>,
    replies: mpsc::Sender<Reply>,
) -> Option<Session> {
    while let Some(Job { room, text }) = lines.recv().await {
        if let Some(room) = &room {
            session.switch(room);
        }
        let flow = session.handle_line(&text).await;
        let _ = replies.send(Reply::Handled { room, text, flow }).await;
        if flow == Flow::Quit {
            break;
        }
    }
    Some(session)
}
