//! # presence-worker: who is online, right under crashes and scale
//!
//! A stateless NATS service (`chat-presence`) that keeps presence in the JetStream KV
//! bucket `chat_presence` and announces `joined` / `left` on the room streams exactly
//! once per transition, however many instances run and whichever of them crash.
//! The wire contract is `docs/protocol.md`; names, subjects and bodies come from
//! `chat_protocol`.
//!
//! ## A tour
//!
//! The public API is what the binary and the tests need: [`PresenceWorker`] (start,
//! stop), its [`Config`] and [`StartError`], and the few names that tests and
//! operators see ([`SERVICE_NAME`], [`EXPIRY_CONSUMER`], the outbox's bucket, keys and
//! state); the modules are private. One file per concern:
//!
//! - `worker.rs`: [`PresenceWorker`], start (buckets, clock, consumer, service,
//!   tasks) and stop; `context.rs`: what every handler shares.
//! - `config.rs`: [`Config`], TTLs and limits.
//! - `service.rs`: the `chat-presence` endpoints, hosted by `chat_runtime::hosting`
//!   (one task per request, error replies, graceful stop); stats by endpoint.
//! - `requests.rs`: what join / heartbeat / leave / users / rooms do; `ServeError`,
//!   why a request is refused, and its code.
//! - `sessions/`: the `chat_presence` bucket (`Sessions` in `mod.rs` is the
//!   handle), one concern per file, every read named for how fresh it is:
//!   - `write.rs`: join, heartbeat, leave, written with a per-message TTL;
//!   - `view.rs`: who is online, in memory, fed by a KV watch;
//!   - `listed.rs`: `listed_…` reads from the server (every acknowledged write);
//!   - `consistency.rs`: `confirmed_…` reads (know at least a given write: the view
//!     once it has applied that far, else listed) and `cached_…` reads (the view as
//!     it is, for showing, never deciding).
//! - `listing.rs`: the latest entry of each key matching a filter, from the server
//!   (a `chat_runtime::scan` or one direct get).
//! - `decision.rs`: the joined/left decision as pure functions (`decide`, state in,
//!   decision out), and how much of the sessions a decision must know.
//! - `announce.rs`: exactly-once joined/left: reads the state, applies the decision,
//!   publishes the event through the compare-and-set outbox (with
//!   `chat_runtime::publish`); the display count; commits and settles batches.
//! - `batch.rs`: group commit: the transitions of a room claimed within the gap
//!   after its previous event (`Config::event_gap`), or while that one is being
//!   stored, share one publish (one event naming several users).
//! - `outbox.rs`: that outbox's bucket, keys (and `KeyError`) and state (internal,
//!   not the contract).
//! - `availability.rs`: the workers' clock (when the stack was last down) and
//!   `judge_expiry`, which keeps an outage shorter than the TTL from making
//!   everyone leave and join again.
//! - `expiry.rs`: the shared durable consumer that turns expiry markers into `left`
//!   events (stopped through `chat_runtime::Shutdown`), and the start-up sweep.
//! - `rooms.rs`: `RoomStreams`, the room streams created on first join; the rooms
//!   summary.
//! - `stats.rs`: counters shown in `$SRV.STATS`.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = async_nats::connect("nats://127.0.0.1:4222").await?;
//! let worker = presence_worker::PresenceWorker::start(client, presence_worker::Config::default()).await?;
//! // ... until asked to stop:
//! worker.stop().await;
//! # Ok(())
//! # }
//! ```

mod announce;
mod availability;
mod batch;
mod config;
mod context;
mod decision;
mod expiry;
mod listing;
mod outbox;
mod requests;
mod rooms;
mod service;
mod sessions;
mod stats;
mod worker;

pub use config::Config;
pub use expiry::EXPIRY_CONSUMER;
pub use outbox::{presence_users_key, AnnouncedState, PRESENCE_USERS_BUCKET};
pub use service::SERVICE_NAME;
pub use worker::{PresenceWorker, StartError};
