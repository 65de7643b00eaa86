//! Writing sessions: a join or heartbeat writes the key with the TTL, a leave purges
//! it; each returns the write's stream sequence, what a decision about the user must
//! know.

use async_nats::jetstream::{self, context::PublishErrorKind, kv, message::PublishMessage};
use chat_protocol::body::PresenceRecord;
use chat_protocol::streams::presence_key;
use chat_protocol::{RoomName, SessionId, UserName};
use chrono::Utc;

use super::Sessions;
use crate::listing;
use chat_runtime::cas;

/// Why a session could not be written or removed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Reading the session's current entry failed.
    #[error("cannot read the session: {0}")]
    Read(#[from] kv::EntryError),
    /// JetStream did not store the write.
    #[error("cannot store the session: {0}")]
    Write(#[from] jetstream::context::PublishError),
    /// The leave's purge failed.
    #[error("cannot remove the session: {0}")]
    Remove(#[from] kv::PurgeError),
    /// The record could not be encoded (never expected).
    #[error("cannot encode the session: {0}")]
    Encode(#[from] serde_json::Error),
}

/// What a heartbeat found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heartbeat {
    /// The session was alive; its TTL starts again.
    Refreshed,
    /// The session had expired (or never existed) and was registered again, by the
    /// write at this sequence of the bucket's stream.
    Rejoined(u64),
}

impl Sessions {
    /// Writes a session's record with the TTL; returns the write's stream sequence.
    async fn write(
        &self,
        key: &str,
        record: &PresenceRecord,
        expect_revision: Option<u64>,
    ) -> Result<u64, jetstream::context::PublishError> {
        let payload = serde_json::to_vec(record).map_err(|e| {
            jetstream::context::PublishError::with_source(PublishErrorKind::Other, e)
        })?;
        let mut message = PublishMessage::build()
            .payload(payload.into())
            .ttl(self.ttl);
        if let Some(revision) = expect_revision {
            message = message.expected_last_subject_sequence(revision);
        }
        self.publish(key, message).await
    }

    /// Publishes to `key`'s subject; returns the stream sequence of the write.
    async fn publish(
        &self,
        key: &str,
        message: PublishMessage,
    ) -> Result<u64, jetstream::context::PublishError> {
        let subject = format!(
            "{}{key}",
            self.store
                .put_prefix
                .as_deref()
                .unwrap_or(&self.store.prefix)
        );
        Ok(self
            .js
            .send_publish(subject, message)
            .await?
            .await?
            .sequence)
    }

    /// Registers a session (again): its key is written with the TTL. Returns the
    /// write's stream sequence (what a decision about the user must know).
    pub async fn join(
        &self,
        room: &RoomName,
        user: &UserName,
        session: &SessionId,
    ) -> Result<u64, SessionError> {
        let now = Utc::now();
        let record = PresenceRecord {
            room: room.clone(),
            user: user.clone(),
            session: *session,
            joined_at: now,
            last_seen: now,
        };
        Ok(self
            .write(&presence_key(room, user, session), &record, None)
            .await?)
    }

    /// Keeps a session alive, or registers it again if it had expired.
    ///
    /// A live session is rewritten only if it is still the latest entry of its key
    /// (`Nats-Expected-Last-Subject-Sequence`): if it expired between the read and
    /// the write, the heartbeat is a rejoin, so that the caller announces it.
    pub async fn heartbeat(
        &self,
        room: &RoomName,
        user: &UserName,
        session: &SessionId,
    ) -> Result<Heartbeat, SessionError> {
        let key = presence_key(room, user, session);
        let now = Utc::now();
        if let Some(entry) = self.store.entry(key.as_str()).await? {
            if !listing::is_removal(entry.operation) {
                let joined_at = serde_json::from_slice::<PresenceRecord>(&entry.value)
                    .map(|r| r.joined_at)
                    .unwrap_or(now);
                let record = PresenceRecord {
                    room: room.clone(),
                    user: user.clone(),
                    session: *session,
                    joined_at,
                    last_seen: now,
                };
                match self.write(&key, &record, Some(entry.revision)).await {
                    Ok(_) => return Ok(Heartbeat::Refreshed),
                    Err(e) if cas::lost_race(&e) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(Heartbeat::Rejoined(self.join(room, user, session).await?))
    }

    /// Removes a session: what `kv::Store::purge_with_ttl` writes (the purge marker
    /// itself expires after the marker TTL), keeping the write's stream sequence.
    pub async fn leave(
        &self,
        room: &RoomName,
        user: &UserName,
        session: &SessionId,
    ) -> Result<u64, SessionError> {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(listing::KV_OPERATION, "PURGE");
        headers.insert(async_nats::header::NATS_ROLLUP, "sub");
        let message = PublishMessage::build()
            .headers(headers)
            .ttl(self.marker_ttl);
        Ok(self
            .publish(&presence_key(room, user, session), message)
            .await?)
    }
}
