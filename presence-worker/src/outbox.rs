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
}

/// Key of a user's announced state in [`PRESENCE_USERS_BUCKET`]: `<room>.<user>`.
pub fn presence_users_key(room: &RoomName, user: &UserName) -> String {
    format!("{room}.{user}")
}

/// Splits a [`presence_users_key`] into its names.
pub fn parse_presence_users_key(key: &str) -> Result<(RoomName, UserName), NameError> {
    let Some((room, user)) = key.split_once('.') else {
        return Err(NameError::BadChar {
            kind: "presence",
            name: chat_protocol::display::sanitize(key).into_owned(),
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
        assert!(parse_presence_users_key("general").is_err());
        assert!(parse_presence_users_key("general.a.b").is_err());
    }
}
