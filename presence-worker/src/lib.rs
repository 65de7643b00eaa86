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
//! - [`config`]: [`Config`], TTLs and limits.
//! - [`worker`]: [`PresenceWorker`], start (buckets, consumer, service, tasks) and stop.
//! - [`service`]: the NATS service endpoints, one task per request, error replies and
//!   their headers.
//! - [`requests`]: what join / heartbeat / leave / users / rooms do.
//! - [`sessions`]: the `chat_presence` bucket: sessions written with a per-message TTL,
//!   live sessions listed.
//! - [`decision`]: the joined/left decision as pure functions (state in, decision
//!   out): what to announce, and how much of the sessions a decision must know.
//! - [`announce`]: exactly-once joined/left through a compare-and-set outbox: reads
//!   the state, applies the decision, publishes the event.
//! - [`availability`]: the workers' clock (when the stack was last down) and
//!   [`availability::judge_expiry`], which keeps a short outage from making everyone
//!   leave and join again.
//! - [`outbox`]: that outbox's bucket, keys and state (internal, not the contract).
//! - [`expiry`]: the shared durable consumer that turns expiry markers into `left`
//!   events, and the start-up sweep.
//! - [`rooms`]: room streams, created on first join; the rooms summary.
//! - [`listing`]: the latest entry of each key matching a filter.
//! - `view`: who is online, in memory, fed by a KV watch: what `/users` and the
//!   counts in replies show, and what joined/left decisions read once it has caught up.
//! - [`stats`]: counters shown in `$SRV.STATS`.

pub mod announce;
pub mod availability;
pub mod config;
mod context;
pub mod decision;
pub mod expiry;
pub mod listing;
pub mod outbox;
pub mod requests;
pub mod rooms;
pub mod service;
pub mod sessions;
pub mod stats;
mod view;
pub mod worker;

pub use config::Config;
pub use worker::{PresenceWorker, StartError};
