//! The presence worker's outbox, internal and **not part of the wire contract**: per
//! `<room>.<user>` what has been announced on the room stream (online or not) and the
//! joined/left event being announced, if any, in the bucket
//! [`PRESENCE_USERS_BUCKET`]. Third parties must not rely on it.
//!
//! It is what makes joined/left exactly-once across any number of workers: a
//! transition is claimed by a compare-and-set on the entry's revision, and the stored
//! event id makes its publish idempotent (see [`crate::announce`]).

use async_nats::jetstream::{kv, stream};
use chat_protocol::body::SystemEvent;
pub use chat_protocol::streams::PRESENCE_USERS_BUCKET;
use chat_protocol::{NameError, RoomName, UserName};
use serde::{Deserialize, Serialize};

/// What the presence worker has announced for one user in one room, stored in the
/// internal bucket [`PRESENCE_USERS_BUCKET`].
///
/// `pending` is the outbox: a transition is first written here (by compare-and-set),
/// then published with `Nats-Msg-Id` = the event's id, then cleared. A worker that dies
/// in between leaves the event for the next one to publish with the same id.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AnnouncedState {
    /// Whether the last announced event was `joined`.
    #[serde(default)]
    pub online: bool,
    /// An event claimed but maybe not yet stored in the room stream.
    #[serde(default)]
    pub pending: Option<SystemEvent>,
    /// The sequence of the `chat_presence` bucket's stream up to which the
    /// sessions were known when `online` was decided. The next decision about this
    /// user must know the sessions at least that far, so decisions never go back in
    /// time, whichever worker makes them. `None` in states written before it existed:
    /// the next decision then reads the sessions as of now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listed_through: Option<u64>,
    /// The batch `pending` was claimed in (see [`crate::batch`]): its record, under
    /// [`batch_key`], says whether the batch was published, and as which events.
    /// `None`: `pending` is published as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<String>,
}

/// What a batch's commit decided, stored under [`batch_key`] before anything of the
/// batch is published (create-only, so the first writer wins): the events that carry
/// the batch's transitions, or none when the batch was given up (another worker found
/// one of its claims first, and every participant publishes its own event).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BatchRecord {
    /// The batch's events, each listing several users; empty: given up.
    #[serde(default)]
    pub events: Vec<SystemEvent>,
}

/// How long a batch record is kept (a per-message TTL): far longer than any commit
/// takes. A claim still naming a batch whose record is gone is settled by searching
/// the room stream.
pub(crate) const BATCH_RECORD_TTL: std::time::Duration = std::time::Duration::from_secs(600);

/// Prefix of the batch records' keys; never a room name (those start with a letter
/// or digit).
const BATCH_PREFIX: &str = "_batch.";

/// Key of a batch's record in [`PRESENCE_USERS_BUCKET`].
pub(crate) fn batch_key(batch: &str) -> String {
    format!("{BATCH_PREFIX}{batch}")
}

/// Whether `key` is a batch record's (skipped by the start-up sweep).
pub(crate) fn is_batch_key(key: &str) -> bool {
    key.starts_with(BATCH_PREFIX)
}

/// Key of a user's announced state in [`PRESENCE_USERS_BUCKET`]: `<room>.<user>`.
pub fn presence_users_key(room: &RoomName, user: &UserName) -> String {
    format!("{room}.{user}")
}

/// Why an announced-state key (written by someone else) is not `<room>.<user>`.
#[derive(Debug, thiserror::Error)]
pub(crate) enum KeyError {
    /// There is no `.` between two names.
    #[error("announced-state key {key:?} is not <room>.<user>")]
    Shape {
        /// The key, sanitized.
        key: String,
    },
    /// A part breaks the naming rules.
    #[error("announced-state key {key:?}: {source}")]
    Name {
        /// The key, sanitized.
        key: String,
        /// What is wrong with the name.
        #[source]
        source: NameError,
    },
}

/// Splits a [`presence_users_key`] into its names.
pub(crate) fn parse_presence_users_key(key: &str) -> Result<(RoomName, UserName), KeyError> {
    let shown = || chat_protocol::display::sanitize(key).into_owned();
    let Some((room, user)) = key.split_once('.') else {
        return Err(KeyError::Shape { key: shown() });
    };
    let name = |source| KeyError::Name {
        key: shown(),
        source,
    };
    Ok((
        RoomName::new(room).map_err(name)?,
        UserName::new(user).map_err(name)?,
    ))
}

/// The internal announced-state bucket: one value per key, kept until overwritten
/// (a user's entry is small and is reused on every later transition); batch records
/// expire by themselves (per-message TTL, their markers after a minute).
pub fn presence_users_bucket_config(replicas: usize) -> kv::Config {
    kv::Config {
        bucket: PRESENCE_USERS_BUCKET.to_string(),
        description: "internal to the presence worker: announced state per <room>.<user>"
            .to_string(),
        history: 1,
        storage: stream::StorageType::File,
        num_replicas: replicas,
        max_bytes: chat_runtime::storage::PRESENCE_BUCKET_MAX_BYTES,
        limit_markers: Some(std::time::Duration::from_secs(60)),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_protocol::body::{Reason, SystemKind};

    fn room() -> RoomName {
        RoomName::new("general").unwrap()
    }
    fn alice() -> UserName {
        UserName::new("alice").unwrap()
    }

    #[test]
    fn announced_state_round_trip() {
        let empty: AnnouncedState = serde_json::from_str("{}").unwrap();
        assert_eq!(empty, AnnouncedState::default());
        let state = AnnouncedState {
            online: true,
            pending: Some(SystemEvent {
                v: 1,
                kind: SystemKind::Joined,
                id: "id".into(),
                room: room(),
                user: alice(),
                reason: Reason::Join,
                users: 1,
                ts: None,
                detail: Default::default(),
            }),
            listed_through: Some(42),
            batch: Some("b1".into()),
        };
        let bytes = serde_json::to_vec(&state).unwrap();
        assert_eq!(
            serde_json::from_slice::<AnnouncedState>(&bytes).unwrap(),
            state
        );
    }

    #[test]
    fn keys() {
        let room = RoomName::new("rust-dev").unwrap();
        let user = UserName::new("Bob_2").unwrap();
        let key = presence_users_key(&room, &user);
        assert_eq!(key, "rust-dev.Bob_2");
        assert_eq!(parse_presence_users_key(&key).unwrap(), (room, user));
        assert!(matches!(
            parse_presence_users_key("general"),
            Err(KeyError::Shape { .. })
        ));
        assert!(matches!(
            parse_presence_users_key("general.a.b"),
            Err(KeyError::Name { .. })
        ));
        assert!(is_batch_key(&batch_key("0123abcd")));
        assert!(!is_batch_key(&key));
        assert!(parse_presence_users_key(&batch_key("0123abcd")).is_err());
    }
}
