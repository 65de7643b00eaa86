//! # history-worker: pages and replay plans of a room's stored messages
//!
//! The second serverless function of the chat. Clients ask `chat.history.<room>` for a
//! page of the room's stream (`HistoryRequest` → `HistoryPage` in `docs/protocol.md`) to
//! scroll back, and `chat.replay.<room>` for the plan of a whole replay (`ReplayRequest`
//! → `ReplayPlan`: stream, filter, first and last sequence), which they then read
//! straight from the stream with an ordered consumer of their own to print
//! `#all_messages` and `#my_messages` at the speed of a raw consumer. The worker is
//! stateless: every page is read straight from JetStream and a plan creates nothing on
//! the server, so any number of instances share the requests through the NATS service
//! API's queue group and any of them may be stopped at any time.
//!
//! ## A tour
//!
//! - [`config`]: the worker's bounds ([`Config`]): largest page in messages and bytes,
//!   how many requests are served at once.
//! - [`page`]: one request, from its subject and body to a bounded
//!   [`HistoryPage`](chat_protocol::body::HistoryPage), or the [`PageError`] saying why
//!   not. Reading itself is [`chat_runtime::reading`], shared with the client.
//! - [`replay`]: one replay request, from its subject and body to a
//!   [`ReplayPlan`](chat_protocol::body::ReplayPlan) (one stream info, nothing created).
//! - [`service`]: the NATS service `chat-history` ([`HistoryWorker`]): one task per
//!   request under a concurrency bound, replies with the contract's JSON bodies, and a
//!   graceful stop that answers every request already received.
//!
//! The binary (`src/main.rs`) only parses flags, sets up logging, connects and waits
//! for SIGTERM or Ctrl-C.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = async_nats::connect("nats://127.0.0.1:4222").await?;
//! let worker = history_worker::HistoryWorker::start(client, history_worker::Config::default()).await?;
//! // ... until asked to stop:
//! worker.stop().await;
//! # Ok(())
//! # }
//! ```
//!
//! ## Behaviour worth knowing
//!
//! - `limit` defaults to 100 and is capped at [`Config::max_limit`]; `limit: 0` is an
//!   error reply (a page of nothing is never what a caller meant).
//! - `before` and `after` together are an error reply; neither means the newest page.
//! - A stored message that is not a valid chat message or system event (written by some
//!   other tool) is left out of the page with a warn log line; it never breaks a page,
//!   and the `next` cursor moves past it.
//! - A page stays under [`Config::max_page_bytes`] as serialized, envelope included,
//!   whatever the message sizes (it always holds at least one message when one is left).
//! - A forward page (the full replay) is one pull consumer and one fetch, without a
//!   stream lookup first (a missing stream shows when the consumer is created); the
//!   consumer is deleted in the background. Backward pages read windows through
//!   short-lived ordered consumers.
//! - A replay plan ends at the stream's last sequence when it is made (`end`, `null`
//!   when there is nothing to read); the worker never creates a consumer for it, so a
//!   request whose reply subject names someone else's inbox gets that inbox one small
//!   plan at most, never the room.
//! - Each stored body is decoded once, to check it, and spliced into the page verbatim
//!   (a `RawValue`): nothing is re-encoded.

pub mod config;
pub mod page;
pub mod replay;
pub mod service;

pub use config::Config;
pub use page::PageError;
pub use service::{HistoryWorker, StartError, SERVICE_NAME};
