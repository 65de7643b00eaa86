//! The `chat_moderation` bucket: roles (`role.<user>`) and standing records
//! (`standing.<user>`), with the standing record's transactional outbox. The record's
//! shape is this worker's business (internal, not the contract); its `muted_until`,
//! `banned_until` and `reason` are what `chat.standing.<user>` answers.

use async_nats::jetstream::{self, kv};
use chat_protocol::body::moderation::in_force;
use chat_protocol::body::{rfc3339, Role, SystemEvent};
use chat_protocol::streams::{role_key, standing_key};
use chat_protocol::{RoomName, UserName};
use chat_runtime::cas;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A user's mute and ban, and what remains to be done about the last change.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StandingRecord {
    /// End of the current (or last) mute.
    #[serde(default, with = "rfc3339::option")]
    pub muted_until: Option<DateTime<Utc>>,
    /// End of the current (or last) ban; a ban without end is
    /// [`ban_forever`](chat_protocol::body::moderation::ban_forever).
    #[serde(default, with = "rfc3339::option")]
    pub banned_until: Option<DateTime<Utc>>,
    /// The reason of the current mute or ban.
    #[serde(default)]
    pub reason: Option<String>,
    /// Who did it (absent for the rate limit).
    #[serde(default)]
    pub by: Option<UserName>,
    /// The outbox: written together with the change, cleared once done.
    #[serde(default)]
    pub pending: Option<Pending>,
}

impl StandingRecord {
    /// Whether the user is muted at `now`.
    pub fn muted_at(&self, now: DateTime<Utc>) -> bool {
        in_force(self.muted_until, now)
    }

    /// Whether the user is banned at `now`.
    pub fn banned_at(&self, now: DateTime<Utc>) -> bool {
        in_force(self.banned_until, now)
    }
}

/// What a change still has to do, in this order: kick, remove a flood's excess, write
/// the events. Every step may be done twice (by a worker taking over from a dead one):
/// kicks and deletions are idempotent, events carry their ids as `Nats-Msg-Id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    /// Unique per change; the ids of the events it writes derive from it.
    pub id: String,
    /// Disconnect every connection of the user.
    #[serde(default)]
    pub kick: bool,
    /// Remove what a flood published beyond the allowance.
    #[serde(default)]
    pub purge: Option<Purge>,
    /// The events to write, each with its own id.
    #[serde(default)]
    pub events: Vec<SystemEvent>,
    /// When it was written or last taken over (for the takeover delay).
    #[serde(with = "rfc3339")]
    pub since: DateTime<Utc>,
}

/// Where and since when a flood's excess is looked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Purge {
    /// The allowance is replayed from here (full bucket) over the stored messages.
    #[serde(with = "rfc3339")]
    pub since: DateTime<Utc>,
    /// The rooms the user wrote to lately.
    pub rooms: Vec<RoomName>,
}

/// A role as stored.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct RoleRecord {
    role: Role,
}

/// Why the bucket could not be used (the worker answers 503).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Reading failed.
    #[error("cannot read the moderation bucket: {0}")]
    Read(#[from] kv::EntryError),
    /// Writing failed (other than a lost compare-and-set).
    #[error("cannot write the moderation bucket: {0}")]
    Write(#[source] async_nats::Error),
    /// A stored value is not what this worker writes.
    #[error("malformed value under {key}: {source}")]
    Malformed {
        /// Its key.
        key: String,
        /// Why.
        source: serde_json::Error,
    },
}

/// The bucket, opened (and created if needed).
#[derive(Clone)]
pub struct Store {
    kv: kv::Store,
}

impl Store {
    /// Creates the bucket if it does not exist (idempotent, retried while a fresh
    /// cluster elects its leader) and opens it.
    pub async fn open(js: &jetstream::Context, replicas: usize) -> Result<Self, async_nats::Error> {
        let config = chat_runtime::storage::moderation_bucket_config(replicas);
        let kv = chat_runtime::replicas::create_with_retries(
            "the moderation bucket",
            chat_runtime::replicas::CREATE_PATIENCE,
            || js.create_key_value(config.clone()),
        )
        .await?;
        Ok(Self { kv })
    }

    /// The KV store itself (for the outbox's watch).
    pub fn kv(&self) -> &kv::Store {
        &self.kv
    }

    /// `user`'s standing record and its revision (0: never written).
    pub async fn standing(&self, user: &UserName) -> Result<(StandingRecord, u64), StoreError> {
        let key = standing_key(user);
        match self.kv.entry(&key).await? {
            Some(entry) if entry.operation == kv::Operation::Put => {
                let record = serde_json::from_slice(&entry.value)
                    .map_err(|source| StoreError::Malformed { key, source })?;
                Ok((record, entry.revision))
            }
            Some(entry) => Ok((StandingRecord::default(), entry.revision)),
            None => Ok((StandingRecord::default(), 0)),
        }
    }

    /// Writes `record` if the key is still at `revision` (0: absent): the new revision,
    /// or `None` when another writer got there first.
    pub async fn write(
        &self,
        user: &UserName,
        record: &StandingRecord,
        revision: u64,
    ) -> Result<Option<u64>, StoreError> {
        let key = standing_key(user);
        let value = serde_json::to_vec(record).expect("records serialize");
        let result = if revision == 0 {
            self.kv
                .create(&key, value.into())
                .await
                .map_err(|e| (!cas::lost_race(&e)).then(|| async_nats::Error::from(e)))
        } else {
            self.kv
                .update(&key, value.into(), revision)
                .await
                .map_err(|e| (!cas::lost_race(&e)).then(|| async_nats::Error::from(e)))
        };
        match result {
            Ok(revision) => Ok(Some(revision)),
            Err(None) => Ok(None),
            Err(Some(error)) => Err(StoreError::Write(error)),
        }
    }

    /// `user`'s role (`user` when none was granted).
    pub async fn role(&self, user: &UserName) -> Result<Role, StoreError> {
        let key = role_key(user);
        match self.kv.get(&key).await? {
            Some(value) => serde_json::from_slice::<RoleRecord>(&value)
                .map(|r| r.role)
                .map_err(|source| StoreError::Malformed { key, source }),
            None => Ok(Role::User),
        }
    }

    /// Grants `role` to `user`.
    pub async fn set_role(&self, user: &UserName, role: Role) -> Result<(), StoreError> {
        let value = serde_json::to_vec(&RoleRecord { role }).expect("roles serialize");
        self.kv
            .put(role_key(user), value.into())
            .await
            .map_err(|e| StoreError::Write(e.into()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_record_reads_as_nothing() {
        let r: StandingRecord = serde_json::from_str("{}").unwrap();
        assert_eq!(r, StandingRecord::default());
        assert!(!r.muted_at(Utc::now()) && !r.banned_at(Utc::now()));
    }

    #[test]
    fn records_round_trip() {
        // Records keep milliseconds.
        let now = DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).unwrap();
        let r = StandingRecord {
            muted_until: Some(Utc::now()),
            pending: Some(Pending {
                id: "p".into(),
                kick: true,
                purge: Some(Purge {
                    since: now,
                    rooms: vec![RoomName::new("general").unwrap()],
                }),
                events: Vec::new(),
                since: now,
            }),
            ..Default::default()
        };
        let back: StandingRecord =
            serde_json::from_slice(&serde_json::to_vec(&r).unwrap()).unwrap();
        assert_eq!(back.pending, r.pending);
    }
}
