//! The `chat_presence` bucket: one key per online session, `<room>.<user>.<session>`,
//! written with a per-message TTL so that a session whose client died disappears by
//! itself, even while no worker runs.
//!
//! Joins and heartbeats publish the key with `Nats-TTL`; a leave purges it (with a
//! TTL, so tombstones do not pile up). Who is online is the set of keys whose latest
//! message is a value, not a marker.

use std::collections::BTreeSet;
use std::time::Duration;

use async_nats::jetstream::{self, context::PublishErrorKind, kv, message::PublishMessage};
use chat_protocol::body::PresenceRecord;
use chat_protocol::streams::{parse_presence_key, presence_filter, presence_key};
use chat_protocol::{RoomName, SessionId, UserName};
use chrono::Utc;

use crate::listing::{self, Latest, ListError, Lister};
use crate::view::OnlineView;
use chat_runtime::replicas::{create_with_retries, CREATE_PATIENCE};

/// How long a joined/left decision waits for the in-memory view to apply the write
/// it must know about before listing the user's sessions from the server instead.
/// The view is usually there within a millisecond; a miss costs a listing consumer.
const DECISION_PATIENCE: Duration = Duration::from_millis(500);

/// How long `/users` waits for the in-memory view to apply the latest write before
/// reading from the server instead (the latest message may be gone, e.g. an expired
/// marker, so the view can never reach it).
const VIEW_PATIENCE: Duration = Duration::from_millis(50);

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

/// Whether a user has a session in a room, and as of when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UserListing {
    /// At least one live session.
    pub online: bool,
    /// Every write to the bucket up to this stream sequence is reflected.
    pub through: u64,
    /// Whether the in-memory view answered (else a listing consumer on the server).
    pub from_view: bool,
}

/// A live session, as listed from the bucket.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LiveSession {
    /// Its room.
    pub room: RoomName,
    /// Its user.
    pub user: UserName,
    /// The session.
    pub session: SessionId,
}

/// Handle on the sessions bucket.
#[derive(Clone)]
pub(crate) struct Sessions {
    js: jetstream::Context,
    store: kv::Store,
    lister: Lister,
    view: OnlineView,
    ttl: Duration,
    marker_ttl: Duration,
}

impl Sessions {
    /// Creates (or updates) the bucket.
    pub async fn open(
        js: jetstream::Context,
        lister: Lister,
        replicas: usize,
        ttl: Duration,
        marker_ttl: Duration,
    ) -> Result<Self, jetstream::context::CreateKeyValueError> {
        let config = chat_runtime::storage::presence_bucket_config(replicas, marker_ttl);
        let store = create_with_retries("presence bucket", CREATE_PATIENCE, || {
            js.create_or_update_key_value(config.clone())
        })
        .await?;
        Ok(Self {
            js,
            store,
            lister,
            view: OnlineView::default(),
            ttl,
            marker_ttl,
        })
    }

    /// The bucket's stream, where the expiry consumer reads markers.
    pub fn stream(&self) -> &jetstream::stream::Stream {
        &self.store.stream
    }

    /// The lister shared by this worker's listings.
    pub fn lister(&self) -> &Lister {
        &self.lister
    }

    /// Subject prefix of the bucket's keys (`$KV.<bucket>.`).
    pub fn prefix(&self) -> &str {
        &self.store.prefix
    }

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
                    Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => {}
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

    /// The bucket stream's last sequence, as the server has it now.
    pub async fn last_sequence(&self) -> Result<u64, ListError> {
        Ok(self.store.stream.get_info().await?.state.last_sequence)
    }

    /// Whether `user` has a live session in `room`, knowing every write to the bucket
    /// up to `through`: from the in-memory view once it has applied that far, else
    /// listed from the server through a consumer. `None` (every write acknowledged
    /// before the call: the start-up sweep, states from older workers) always lists
    /// from the server: the bucket's last sequence may belong to a message that is
    /// gone (an expired marker), which the view can never reach.
    pub async fn user_online(
        &self,
        room: &RoomName,
        user: &UserName,
        through: Option<u64>,
    ) -> Result<UserListing, ListError> {
        if let Some(through) = through {
            let view = self
                .view
                .user_online_after(room, user, through, DECISION_PATIENCE);
            if let Some((online, through)) = view.await {
                return Ok(UserListing {
                    online,
                    through,
                    from_view: true,
                });
            }
        }
        // The consumer is created after this read, so it knows at least this far.
        let through = self.last_sequence().await?;
        let online = !self
            .live(&presence_filter(room, Some(user)))
            .await?
            .is_empty();
        Ok(UserListing {
            online,
            through,
            from_view: false,
        })
    }

    /// Every live session matching a key filter (see [`presence_filter`]), consistent
    /// with every write acknowledged before the call.
    pub async fn live(&self, filter: &str) -> Result<Vec<LiveSession>, ListError> {
        let latest = self
            .lister
            .latest(self.stream(), self.prefix(), filter, true)
            .await?;
        Ok(live_sessions(latest))
    }

    /// Every live session of every room.
    pub async fn all_live(&self) -> Result<Vec<LiveSession>, ListError> {
        self.live(">").await
    }

    /// Distinct users online in `room`, sorted, consistent with every write
    /// acknowledged before the call (`/users`): from the in-memory view once it has
    /// applied the bucket's latest sequence, else read from the server.
    pub async fn users_now(&self, room: &RoomName) -> Result<Vec<UserName>, ListError> {
        if let Ok(info) = self.store.stream.get_info().await {
            let last = info.state.last_sequence;
            if let Some(users) = self.view.users_after(room, last, VIEW_PATIENCE).await {
                return Ok(users);
            }
        }
        self.read_users(room).await
    }

    /// Keeps the in-memory view of who is online up to date; runs until aborted.
    pub async fn follow(&self) {
        self.view.clone().follow(self.store.clone()).await
    }

    /// Distinct users online in `room`, sorted, for showing (`/users`, reply and event
    /// counts): from the in-memory view, or a snapshot read from the server while the
    /// view catches up. It may lag writes by moments; decisions use
    /// [`Sessions::live`] on the user's own sessions instead.
    pub async fn users_snapshot(&self, room: &RoomName) -> Result<Vec<UserName>, ListError> {
        match self.view.users(room) {
            Some(users) => Ok(users),
            None => self.read_users(room).await,
        }
    }

    /// Distinct users online in `room`, read from the server (one direct-get
    /// snapshot of the room's keys).
    async fn read_users(&self, room: &RoomName) -> Result<Vec<UserName>, ListError> {
        let latest = self
            .lister
            .snapshot(self.stream(), self.prefix(), &presence_filter(room, None))
            .await?;
        Ok(distinct_users(room, live_sessions(latest)))
    }
}

/// The live sessions among listed entries; keys that break the naming rules (written
/// by someone else) are logged and skipped.
fn live_sessions(latest: Vec<Latest>) -> Vec<LiveSession> {
    latest
        .into_iter()
        .filter(|entry| entry.removal().is_none())
        .filter_map(|entry| match parse_presence_key(&entry.key) {
            Ok((room, user, session)) => Some(LiveSession {
                room,
                user,
                session,
            }),
            Err(err) => {
                tracing::warn!(%err, "skipping a presence key that breaks the naming rules");
                None
            }
        })
        .collect()
}

fn distinct_users(room: &RoomName, sessions: Vec<LiveSession>) -> Vec<UserName> {
    let users: BTreeSet<UserName> = sessions
        .into_iter()
        .filter(|s| &s.room == room)
        .map(|s| s.user)
        .collect();
    users.into_iter().collect()
}
