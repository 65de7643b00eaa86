//! How the chat's JetStream storage is created: the room streams' and the presence
//! bucket's configuration (names and keys are `chat_protocol::streams`). Only the
//! presence worker creates them; tests and the bench create them the same way.

use std::time::Duration;

use async_nats::jetstream::{kv, stream};
use chat_protocol::streams::{stream_name, MAX_MESSAGE_BYTES, PRESENCE_BUCKET};
use chat_protocol::{subjects, RoomName};

/// How the presence worker creates room streams; flags of the worker set these.
#[derive(Debug, Clone)]
pub struct RoomStreamSettings {
    /// Replicas: 1 for a single server, 3 in a cluster.
    pub replicas: usize,
    /// Oldest message kept; zero keeps messages forever.
    pub max_age: Duration,
    /// Most messages kept; -1 for no limit.
    pub max_messages: i64,
    /// Window in which a repeated `Nats-Msg-Id` is recognised as a retry.
    pub duplicate_window: Duration,
}

impl Default for RoomStreamSettings {
    fn default() -> Self {
        Self {
            replicas: 1,
            max_age: Duration::ZERO,
            max_messages: -1,
            duplicate_window: Duration::from_secs(120),
        }
    }
}

/// The configuration of room `room`'s stream: file storage, limits retention, a
/// duplicate window for retried publishes, direct get for fast history reads.
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
    }
}
