//! How the chat's JetStream storage is created: the room streams', the presence
//! buckets' and the moderation bucket's configuration (names and keys are
//! `chat_protocol::streams`). The presence worker creates the rooms and presence
//! buckets, the moderation worker its bucket; tests and the bench do the same.
//!
//! Every stream of the `CHAT` account has a byte cap, so that no room can fill the
//! store: a room stream keeps its newest [`DEFAULT_ROOM_MAX_BYTES`] (discarding the
//! oldest), the presence buckets at most [`PRESENCE_BUCKET_MAX_BYTES`] each, the
//! moderation bucket [`MODERATION_BUCKET_MAX_BYTES`]. nats-server
//! reserves each cap against the account's `max_file` (and the server's
//! `max_file_store`) when a stream is created, so the caps' sum, not what is stored,
//! decides how many rooms fit: docs/limits.md says how to size them.

use std::time::Duration;

use async_nats::jetstream::{kv, stream};
use chat_protocol::streams::{stream_name, MAX_MESSAGE_BYTES, MODERATION_BUCKET, PRESENCE_BUCKET};
use chat_protocol::{subjects, RoomName};

/// A room stream's default byte cap: 1 MiB, some 3,000 chat messages of a usual size
/// (or 32 of the largest). nats-server reserves the cap of every room in the `CHAT`
/// account's 11 GiB budget, so one server holds about 11,000 rooms by default
/// (docs/limits.md says how to size it for more, or for longer histories).
pub const DEFAULT_ROOM_MAX_BYTES: i64 = 1024 * 1024;

/// Each presence bucket's byte cap, reserved in the `CHAT` account's budget: one small
/// entry per session online (or per room and user), so 64 MiB holds some 100,000.
pub const PRESENCE_BUCKET_MAX_BYTES: i64 = 64 * 1024 * 1024;

/// The moderation bucket's byte cap, reserved in the `CHAT` account's budget: a role
/// and a standing record per moderated user, a few hundred bytes each.
pub const MODERATION_BUCKET_MAX_BYTES: i64 = 64 * 1024 * 1024;

/// How the presence worker creates room streams; flags of the worker set these.
#[derive(Debug, Clone)]
pub struct RoomStreamSettings {
    /// Replicas: 1 for a single server, 3 in a cluster.
    pub replicas: usize,
    /// Oldest message kept; zero keeps messages forever.
    pub max_age: Duration,
    /// Most messages kept; -1 for no limit.
    pub max_messages: i64,
    /// Most bytes kept (the oldest messages are discarded beyond): every room stream
    /// has a cap, reserved against the account's storage budget.
    pub max_bytes: i64,
    /// Window in which a repeated `Nats-Msg-Id` is recognised as a retry.
    pub duplicate_window: Duration,
}

impl Default for RoomStreamSettings {
    fn default() -> Self {
        Self {
            replicas: 1,
            max_age: Duration::ZERO,
            max_messages: -1,
            max_bytes: DEFAULT_ROOM_MAX_BYTES,
            duplicate_window: Duration::from_secs(120),
        }
    }
}

/// The configuration of room `room`'s stream: file storage, limits retention with a
/// byte cap discarding the oldest (a full room keeps taking messages), a duplicate
/// window for retried publishes, direct get for fast history reads.
pub fn room_stream_config(room: &RoomName, settings: &RoomStreamSettings) -> stream::Config {
    stream::Config {
        name: stream_name(room),
        description: Some(format!("chat room {room}")),
        subjects: vec![subjects::room_all(room)],
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::Limits,
        discard: stream::DiscardPolicy::Old,
        num_replicas: settings.replicas,
        max_age: settings.max_age,
        max_messages: settings.max_messages,
        max_bytes: settings.max_bytes,
        max_message_size: MAX_MESSAGE_BYTES,
        duplicate_window: settings.duplicate_window,
        allow_direct: true,
        ..Default::default()
    }
}

/// The presence bucket: one value per key, per-key TTLs (each join and heartbeat
/// writes the session with the worker's TTL), and limit markers so that an expiry
/// leaves a delete marker that watchers see, for `marker_ttl`.
pub fn presence_bucket_config(replicas: usize, marker_ttl: Duration) -> kv::Config {
    kv::Config {
        bucket: PRESENCE_BUCKET.to_string(),
        description: "chat sessions online: <room>.<user>.<session>".to_string(),
        history: 1,
        storage: stream::StorageType::File,
        num_replicas: replicas,
        limit_markers: Some(marker_ttl),
        max_bytes: PRESENCE_BUCKET_MAX_BYTES,
        ..Default::default()
    }
}

/// The moderation worker's bucket: roles (`role.<user>`) and standing records
/// (`standing.<user>`), the newest value of each key only.
pub fn moderation_bucket_config(replicas: usize) -> kv::Config {
    kv::Config {
        bucket: MODERATION_BUCKET.to_string(),
        description: "chat moderation: role.<user>, standing.<user>".to_string(),
        history: 1,
        storage: stream::StorageType::File,
        num_replicas: replicas,
        max_bytes: MODERATION_BUCKET_MAX_BYTES,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_room_stream_holds_its_rooms_subjects() {
        let room = RoomName::new("rust-dev").unwrap();
        let cfg = room_stream_config(&room, &RoomStreamSettings::default());
        assert_eq!(cfg.name, "CHAT_rust-dev");
        assert_eq!(cfg.subjects, vec!["chat.room.rust-dev.>".to_string()]);
        assert_eq!(cfg.max_bytes, DEFAULT_ROOM_MAX_BYTES);
        assert_eq!(cfg.discard, stream::DiscardPolicy::Old);
    }
}
