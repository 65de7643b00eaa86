//! Where the chat keeps its state in JetStream: the room streams and the presence
//! bucket, with the configuration each is created with.
//!
//! Only the presence worker creates these (idempotently, on first join); clients and
//! the history worker only read and publish. Keeping the configuration here means a
//! third-party reading this file knows exactly what the workers create.

use std::time::Duration;

use async_nats::jetstream::{kv, stream};

use crate::names::{NameError, RoomName, SessionId, UserName};
use crate::subjects;

/// Prefix of every room stream's name: `CHAT_<room>`.
pub const STREAM_PREFIX: &str = "CHAT_";

/// Name of the room's stream.
pub fn stream_name(room: &RoomName) -> String {
    format!("{STREAM_PREFIX}{room}")
}

/// The room a stream belongs to, if the stream is a room stream.
pub fn room_of_stream(name: &str) -> Option<RoomName> {
    RoomName::new(name.strip_prefix(STREAM_PREFIX)?).ok()
}

/// Largest stored message, headers included. A maximum-length text (4000 characters)
/// is at most 24,000 bytes of JSON even if every character needs a `\u00XX` escape;
/// the rest is room for the envelope and headers.
pub const MAX_MESSAGE_BYTES: i32 = 32 * 1024;

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

/// The KV bucket holding one key per online session.
pub const PRESENCE_BUCKET: &str = "chat_presence";

/// Key of a session in [`PRESENCE_BUCKET`]: `<room>.<user>.<session>`.
pub fn presence_key(room: &RoomName, user: &UserName, session: &SessionId) -> String {
    format!("{room}.{user}.{session}")
}

/// Key filter for every session of `user` in `room`, or of everybody in `room`.
pub fn presence_filter(room: &RoomName, user: Option<&UserName>) -> String {
    match user {
        Some(user) => format!("{room}.{user}.*"),
        None => format!("{room}.*.*"),
    }
}

/// Splits a presence key into its names.
pub fn parse_presence_key(key: &str) -> Result<(RoomName, UserName, SessionId), NameError> {
    let mut parts = key.splitn(3, '.');
    let (Some(room), Some(user), Some(session)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(NameError::BadSession(
            crate::display::sanitize(key).into_owned(),
        ));
    };
    Ok((
        RoomName::new(room)?,
        UserName::new(user)?,
        SessionId::new(session)?,
    ))
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

/// Internal bucket of the presence worker, **not part of the wire contract**: per
/// `<room>.<user>` what has been announced on the room stream (online or not) and the
/// joined/left event being announced, if any ([`crate::body::AnnouncedState`]).
///
/// It is the transactional outbox that makes joined/left exactly-once across any
/// number of workers: a transition is claimed by a compare-and-set on the entry's
/// revision, and the stored event id makes its publish idempotent. Third parties must
/// not rely on it; it may change without a contract version bump.
pub const PRESENCE_USERS_BUCKET: &str = "chat_presence_users";

/// Key of a user's announced state in [`PRESENCE_USERS_BUCKET`]: `<room>.<user>`.
pub fn presence_users_key(room: &RoomName, user: &UserName) -> String {
    format!("{room}.{user}")
}

/// Splits a [`presence_users_key`] into its names.
pub fn parse_presence_users_key(key: &str) -> Result<(RoomName, UserName), NameError> {
    let Some((room, user)) = key.split_once('.') else {
        return Err(NameError::BadChar {
            kind: "presence",
            name: crate::display::sanitize(key).into_owned(),
            found: '.',
            rule: "an announced-state key is <room>.<user>",
        });
    };
    Ok((RoomName::new(room)?, UserName::new(user)?))
}

/// The internal announced-state bucket: one value per key, kept until overwritten
/// (a user's entry is small and is reused on every later transition).
pub fn presence_users_bucket_config(replicas: usize) -> kv::Config {
    kv::Config {
        bucket: PRESENCE_USERS_BUCKET.to_string(),
        description: "internal to the presence worker: announced state per <room>.<user>"
            .to_string(),
        history: 1,
        storage: stream::StorageType::File,
        num_replicas: replicas,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let room = RoomName::new("rust-dev").unwrap();
        assert_eq!(stream_name(&room), "CHAT_rust-dev");
        assert_eq!(room_of_stream("CHAT_rust-dev"), Some(room.clone()));
        assert_eq!(room_of_stream("KV_chat_presence"), None);
        let cfg = room_stream_config(&room, &RoomStreamSettings::default());
        assert_eq!(cfg.subjects, vec!["chat.room.rust-dev.>".to_string()]);
        let user = UserName::new("Bob_2").unwrap();
        let session = SessionId::random();
        let key = presence_key(&room, &user, &session);
        assert_eq!(
            parse_presence_key(&key).unwrap(),
            (room.clone(), user.clone(), session)
        );
        assert!(parse_presence_key("general.alice").is_err());
        let key = presence_users_key(&room, &user);
        assert_eq!(key, "rust-dev.Bob_2");
        assert_eq!(parse_presence_users_key(&key).unwrap(), (room, user));
        assert!(parse_presence_users_key("general").is_err());
        assert!(parse_presence_users_key("general.a.b").is_err());
    }
}
