//! # moderation-worker: the rate limit, mutes, kicks, bans and deletions
//!
//! A stateless NATS service (`chat-moderation`) that keeps roles and standings in the
//! JetStream KV bucket `chat_moderation` and writes what it does into the rooms as
//! system events (`muted`, `kicked`, `deleted`, ...). Any number of instances may run
//! and any may be killed: every change goes through compare-and-set with its pending
//! work (a transactional outbox), so a mute is recorded once and finished by another
//! instance if its writer dies. The wire contract is `docs/protocol.md` ("Moderation",
//! "The rate limit"); names, subjects and bodies come from `chat_protocol`.
//!
//! ## A tour
//!
//! - [`service`]: [`ModerationWorker`] (start, stop), the `chat-moderation` endpoints
//!   `chat.moderate.*.*`, `chat.standing.*`, `chat.admin.role`, and the [`Links`] it
//!   runs on (two connections as `@moderation`, one as `@moderation_sys`).
//! - [`config`]: [`Config`], the allowance and the bounds.
//! - [`commands`]: what each request does: checks, roles, the change, the reply.
//! - [`rate`]: the token bucket, the bounded per-user [`rate::Tracker`], and the replay
//!   that decides a flood's excess, as pure functions.
//! - [`flood`]: counting every room message and muting whoever goes over.
//! - [`outbox`]: exactly-once changes of standing records and their pending work
//!   (kick, excess, events); finishing what a dead instance left.
//! - [`record`]: the bucket, its keys and records.
//! - [`kick`]: listing and kicking a user's connections through the system account.
//! - [`excess`]: finding and deleting a flood's excess in the room streams.
//! - [`event`]: the room events it writes.
//!
//! The binary (`src/main.rs`) only parses flags, sets up logging, connects three times
//! and waits for SIGTERM or Ctrl-C.
//!
//! ## Behaviour worth knowing
//!
//! - Every instance counts every message (a core subscription, not a queue group):
//!   the allowance is per user across rooms, so each instance must see them all. The
//!   table of buckets is bounded ([`Config::max_tracked_users`], about 200 bytes a
//!   user; users whose bucket is full again are forgotten every 10 s).
//! - A flood mute kicks the user's connections at once; they log in again without the
//!   right to speak (the auth worker asks `chat.standing.<user>`) until the mute ends.
//! - The excess is what the allowance, replayed over the stored messages of the last
//!   [`Config::lookback`] before the crossing, refuses: tombstones first, then
//!   deletions, so a worker taking over finds and announces the same.
//! - Memory stays bounded whatever the traffic: requests are served under
//!   [`Config::concurrency`], crossings are queued up to 1024 and handled 16 at once,
//!   a purge reads at most [`excess::MAX_SCANNED`] messages.

pub mod commands;
pub mod config;
pub mod event;
pub mod excess;
pub mod flood;
pub mod kick;
pub mod outbox;
pub mod rate;
pub mod record;
pub mod service;

pub use config::Config;
pub use service::{Links, ModerationWorker, StartError, SERVICE_NAME};
