//! Exactly-once `joined` / `left` events: a transactional outbox with compare-and-set.
//!
//! The internal bucket [`chat_protocol::streams::PRESENCE_USERS_BUCKET`] holds per `<room>.<user>` what has been
//! announced ([`AnnouncedState`]). [`Announcer::reconcile`] brings it in line with the
//! sessions bucket:
//!
//! 1. read the entry (revision `r`); if it holds a pending event, publish it (with its
//!    id as `Nats-Msg-Id`, so a repeat is dropped by the stream), clear it by CAS, and
//!    start over;
//! 2. list the user's live sessions: online iff there is at least one;
//! 3. if that matches what was announced, still write the entry back expecting `r`
//!    (a "touch"): a concurrent reconcile that decided from an older listing then
//!    fails its CAS and looks again, so no stale decision can win;
//! 4. otherwise CAS-write `{online: new, pending: event}` expecting `r` (losing means
//!    another worker is on it: start over), publish the event, CAS-clear it.
//!
//! Any number of workers may run this for the same user at once; a worker killed
//! between the steps leaves a pending event that the next reconcile publishes with the
//! same id.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{
    self,
    context::{CreateKeyValueError, CreateStreamError, PublishError, PublishErrorKind},
    kv,
    message::PublishMessage,
};
use chat_protocol::body::{AnnouncedState, Reason, SystemEvent, SystemKind, VERSION};
use chat_protocol::streams::{presence_users_bucket_config, presence_users_key};
use chat_protocol::{subjects, RoomName, UserName};
use chrono::Utc;

use crate::listing::{self, ListError};
use crate::rooms::Rooms;
use crate::sessions::Sessions;
use crate::stats::Stats;

/// How often a publish is retried (same `Nats-Msg-Id`) before giving up for now.
const PUBLISH_ATTEMPTS: u32 = 4;

/// Why a reconcile failed. Nothing is lost: the state in KV says what is left to do,
/// and the next reconcile of the same user (a retry, the expiry consumer's
/// redelivery, the start-up sweep) finishes it.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// Reading the announced state failed.
    #[error("cannot read the announced state: {0}")]
    Read(#[from] kv::EntryError),
    /// Writing the announced state failed (other than losing a race).
    #[error("cannot write the announced state: {0}")]
    Write(#[from] kv::UpdateError),
    /// Listing the user's sessions failed.
    #[error(transparent)]
    List(#[from] ListError),
    /// The room stream could not be created.
    #[error("cannot create the room stream: {0}")]
    Room(#[from] CreateStreamError),
    /// The event was not stored by the room stream.
    #[error("cannot publish the event: {0}")]
    Publish(#[from] PublishError),
    /// Encoding failed (never expected).
    #[error("cannot encode: {0}")]
    Encode(#[from] serde_json::Error),
}

/// What a reconcile found and did.
#[derive(Debug, Clone)]
pub struct Reconciled {
    /// Distinct users online in the room, sorted, as last listed.
    pub users: Vec<UserName>,
    /// The event this call announced, if it owned a transition.
    pub event: Option<SystemEvent>,
}

/// Announces presence transitions on the room streams.
pub(crate) struct Announcer {
    js: jetstream::Context,
    store: kv::Store,
    sessions: Sessions,
    rooms: Arc<Rooms>,
    stats: Arc<Stats>,
}

impl Announcer {
    /// Creates (or updates) the internal bucket.
    pub async fn open(
        js: jetstream::Context,
        replicas: usize,
        sessions: Sessions,
        rooms: Arc<Rooms>,
        stats: Arc<Stats>,
    ) -> Result<Self, CreateKeyValueError> {
        let store = js
            .create_or_update_key_value(presence_users_bucket_config(replicas))
            .await?;
        Ok(Self {
            js,
            store,
            sessions,
            rooms,
            stats,
        })
    }

    /// The internal bucket (read by the start-up sweep).
    pub fn store(&self) -> &kv::Store {
        &self.store
    }

    /// Brings what was announced for `user` in `room` in line with their sessions;
    /// `reason` is what a resulting `left` says (a `joined` always says `join`).
    pub async fn reconcile(
        &self,
        room: &RoomName,
        user: &UserName,
        reason: Reason,
    ) -> Result<Reconciled, ReconcileError> {
        let key = presence_users_key(room, user);
        loop {
            let (state, revision) = self.read(&key).await?;
            if let Some(event) = &state.pending {
                self.publish(event).await?;
                let cleared = AnnouncedState {
                    online: state.online,
                    pending: None,
                };
                self.cas(&key, &cleared, revision).await?;
                continue;
            }
            let users = self.sessions.users(room).await?;
            let online = users.contains(user);
            if online == state.online {
                if self.cas(&key, &state, revision).await?.is_some() {
                    return Ok(Reconciled { users, event: None });
                }
                continue;
            }
            let event = SystemEvent {
                v: VERSION,
                kind: if online {
                    SystemKind::Joined
                } else {
                    SystemKind::Left
                },
                id: uuid::Uuid::new_v4().to_string(),
                room: room.clone(),
                user: user.clone(),
                reason: match (online, reason) {
                    (true, _) => Reason::Join,
                    (false, Reason::Join) => Reason::Timeout,
                    (false, reason) => reason,
                },
                users: users.len() as u64,
                ts: Some(Utc::now()),
            };
            let claimed = AnnouncedState {
                online,
                pending: Some(event.clone()),
            };
            let Some(revision) = self.cas(&key, &claimed, revision).await? else {
                continue;
            };
            self.publish(&event).await?;
            self.stats.event(event.kind);
            tracing::info!(
                room = %room, user = %user, event = ?event.kind, reason = ?event.reason,
                users = event.users, id = %event.id, "announced"
            );
            let done = AnnouncedState {
                online,
                pending: None,
            };
            // Losing this race is fine: whoever changed the entry saw the event.
            self.cas(&key, &done, revision).await?;
            return Ok(Reconciled {
                users,
                event: Some(event),
            });
        }
    }

    /// The announced state and its revision (0 when there is none yet). A value that
    /// is not an [`AnnouncedState`] (written by someone else) counts as nothing
    /// announced and is overwritten by the next CAS.
    async fn read(&self, key: &str) -> Result<(AnnouncedState, u64), ReconcileError> {
        let Some(entry) = self.store.entry(key).await? else {
            return Ok((AnnouncedState::default(), 0));
        };
        if listing::is_removal(entry.operation) {
            return Ok((AnnouncedState::default(), entry.revision));
        }
        let state = serde_json::from_slice(&entry.value).unwrap_or_else(|err| {
            tracing::warn!(key, %err, "announced state is not valid JSON; treating it as empty");
            AnnouncedState::default()
        });
        Ok((state, entry.revision))
    }

    /// Writes `state` if the entry is still at `revision`: `Some(new revision)`, or
    /// `None` if someone else changed it first.
    async fn cas(
        &self,
        key: &str,
        state: &AnnouncedState,
        revision: u64,
    ) -> Result<Option<u64>, ReconcileError> {
        let value = serde_json::to_vec(state)?;
        match self.store.update(key, value.into(), revision).await {
            Ok(revision) => Ok(Some(revision)),
            Err(err) if err.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(None),
            Err(err) => Err(err.into()),
        }
    }

    /// Stores the event in its room stream, retrying with the same `Nats-Msg-Id` so
    /// that it is stored once however often it is sent.
    async fn publish(&self, event: &SystemEvent) -> Result<(), ReconcileError> {
        self.rooms.ensure(&event.room).await?;
        let payload = bytes::Bytes::from(serde_json::to_vec(event)?);
        let subject = subjects::room_system(&event.room);
        let mut attempt = 1;
        loop {
            let message = PublishMessage::build()
                .payload(payload.clone())
                .message_id(&event.id);
            let result = match self.js.send_publish(subject.clone(), message).await {
                Ok(ack) => ack.await,
                Err(err) => Err(err),
            };
            match result {
                Ok(_) => return Ok(()),
                Err(err) if attempt < PUBLISH_ATTEMPTS && retryable(&err) => {
                    tracing::warn!(%err, attempt, id = %event.id, "event publish failed; retrying");
                    if err.kind() == PublishErrorKind::StreamNotFound {
                        self.rooms.forget(&event.room);
                        self.rooms.ensure(&event.room).await?;
                    }
                    tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
                    attempt += 1;
                }
                Err(err) => return Err(err.into()),
            }
        }
    }
}

fn retryable(err: &PublishError) -> bool {
    matches!(
        err.kind(),
        PublishErrorKind::TimedOut
            | PublishErrorKind::BrokenPipe
            | PublishErrorKind::StreamNotFound
            | PublishErrorKind::MaxAckPending
    )
}
