//! # chat-client: the terminal chat, as a library
//!
//! A person types in one terminal and others see it in theirs, through NATS JetStream
//! only. This crate is the client; the `chat-client` binary is a thin shell around it,
//! and tests and the benchmark drive the same [`Chat`] API a person uses.
//!
//! ## A tour
//!
//! - [`command`]: one input line becomes a [`command::Command`] or a clear error.
//! - [`event`]: the [`Event`]s a UI shows (also the `--json` line format).
//! - [`chat`]: the [`Chat`] handle: connect, join, send, leave, users, rooms, history,
//!   close.
//! - [`login`]: logging in and staying logged in (resume tokens, refusals), register,
//!   password change.
//! - [`publish`]: reliable publishing: pipelined, acknowledged, retried in order with
//!   the same ids, so every sender's order is kept (the rules of one attempt and of
//!   giving up are `chat_runtime::publish`'s).
//! - [`moderation`]: own standing (allowance, mute, ban), moderation requests, and
//!   what moderation events mean for this session (a kick or ban ends it).
//! - [`pacing`]: keeps own messages within the allowed rate (a token bucket in front
//!   of the publisher), so a long paste goes out in order without tripping the limit.
//! - [`echo`]: own stored messages whose echo is not shown yet (closing waits
//!   for them, or names them).
//! - `room` (private): one room's feed, replay then live, no gap and no duplicate.
//! - `presence` (private): join with retry, heartbeats, leave.
//! - [`history`]: `#all_messages`, `#my_messages` and the full-screen UI's scrollback
//!   (pages of the history worker).
//! - `replay` (private): a whole replay as the history worker plans it, read straight
//!   from the room's stream with the client's own ordered consumer.
//! - [`call`]: calling the workers (one request, its reply) and the errors.
//! - [`render`]: events as terminal text, always sanitized.
//! - [`ui`]: the front ends: line mode (stdin not a terminal), the full-screen
//!   terminal UI, and the plain line editor (`--plain`).
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use chat_client::{Chat, Event, Options};
//! use chat_protocol::body::MessageKind;
//! use chat_protocol::{RoomName, UserName};
//!
//! let options = Options::new("nats://127.0.0.1:4222", UserName::new("alice")?, "a long passphrase");
//! let (chat, mut events) = Chat::connect(options).await?;
//! let general = RoomName::new("general")?;
//! chat.join(&general, 20); // the last 20 messages, then live
//! let stored_at = chat.send(&general, MessageKind::Chat, "hello").await?.acked().await?;
//! println!("stored at sequence {stored_at}");
//! while let Some(event) = events.recv().await {
//!     if let Event::Message { text, .. } = event {
//!         println!("{text}");
//!     }
//! }
//! chat.close().await;
//! # Ok(())
//! # }
//! ```

pub mod call;
pub mod chat;
pub mod command;
pub mod echo;
pub mod event;
pub mod history;
pub mod login;
pub mod moderation;
pub mod pacing;
mod presence;
pub mod publish;
pub mod render;
mod replay;
mod room;
pub mod ui;

pub use chat::{Chat, CloseReport, ConnectError, Options};
pub use event::{Event, State};
pub use login::AccountError;
pub use publish::{RetryPolicy, SendError, SendHandle};
