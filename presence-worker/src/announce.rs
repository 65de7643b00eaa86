//! Exactly-once `joined` / `left` events: a transactional outbox with compare-and-set.
//!
//! The internal bucket [`crate::outbox::PRESENCE_USERS_BUCKET`] holds per
//! `<room>.<user>` what has been announced ([`AnnouncedState`]).
//! [`Announcer::reconcile`] brings it in line with the sessions bucket:
//!
//! 1. read the entry (revision `r`); if it holds a pending event, publish it (with its
//!    id as `Nats-Msg-Id`, so a repeat is dropped by the stream), clear it by CAS, and
//!    start over;
//! 2. find out whether the user has a live session, knowing the sessions bucket at
//!    least up to the write that prompted the call (a join, leave, rejoin or expiry
//!    marker) and up to what the entry's decision knew (`listed_through`);
//! 3. if that matches what was announced, still write the entry back expecting `r`
//!    (a "touch"): a concurrent reconcile that decided from an older listing then
//!    fails its CAS and looks again, so no stale decision can win;
//! 4. otherwise CAS-write `{online: new, pending: event}` expecting `r` (losing means
//!    another worker is on it: start over), publish the event, CAS-clear it.
//!
//! Every write of the entry records in `listed_through` how far its decision knew the
//! sessions bucket, and the next decision, whichever worker makes it, knows at least
//! that much: decisions never go back in time. Step 2 is therefore answered by the
//! worker's in-memory view of the bucket (`view`) once it has applied that far,
//! without a round trip; only when it lags (starting, rebuilding), and for the
//! start-up sweep, does the worker list the user's sessions from the server through a
//! short-lived consumer, which knows every write acknowledged before it was created.
//!
//! Any number of workers may run this for the same user at once; a worker killed
//! between the steps leaves a pending event that the next reconcile publishes with the
//! same id. If that happens later than half the room stream's duplicate window, the
//! stream is first searched for the id, so the event is never stored twice.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, DeliverPolicy};
use async_nats::jetstream::context::GetStreamErrorKind;
use async_nats::jetstream::ErrorCode as JsError;
use async_nats::jetstream::{
    self,
    context::{CreateKeyValueError, CreateStreamError, PublishError},
    kv,
};
use chat_protocol::body::{rfc3339, EventDetail, SystemEvent, VERSION};
use chat_protocol::streams::stream_name;
use chat_protocol::{subjects, RoomName, UserName};
use chat_runtime::publish;
use chat_runtime::scan::{scan, ScanError};
use chrono::Utc;

use crate::batch::{Batch, Batcher, Outcome};
use crate::decision::{decide, must_know_through, Decision, Prompt};
use crate::listing::{self, ListError};
use crate::outbox::{
    batch_key, presence_users_bucket_config, presence_users_key, AnnouncedState, BatchRecord,
    BATCH_RECORD_TTL,
};
use crate::rooms::RoomStreams;
use crate::sessions::Sessions;
use crate::stats::Stats;
use chat_runtime::cas;
use chat_runtime::replicas::{create_with_retries, CREATE_PATIENCE};

/// How far before a pending event's time stamp the stream is searched for it
/// (clocks of workers and server may differ a little).
const STORED_SLACK: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

/// How long the search waits for the next stored event.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);

/// Most users one event names (`user` and `others`): about 11 KiB of names at most,
/// far below a room stream's 32 KiB message limit.
pub(crate) const MAX_NAMES: usize = 300;

/// A batch older than this when its commit starts is given up (every participant
/// publishes its own event), so that a commit never races a settlement that searched
/// the stream for it long after.
const MAX_BATCH_AGE: Duration = Duration::from_secs(30);

/// How an event's publish is retried (same `Nats-Msg-Id`) before the reconcile gives up
/// for now (a later one finishes it).
const EVENT_RETRY: publish::Retry = publish::Retry {
    first_delay: Duration::from_millis(200),
    max_delay: Duration::from_secs(2),
    give_up_after: Duration::from_secs(20),
};

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
    /// The room stream could not be looked up for an old pending event.
    #[error("cannot look up the room stream: {0}")]
    Stream(#[source] async_nats::jetstream::context::GetStreamError),
    /// Looking for an old pending event in the room stream failed.
    #[error("cannot look for a pending event in the room stream: {0}")]
    Lookup(#[from] ScanError),
    /// A pending event's time could not be turned into a start time (never expected).
    #[error("cannot read a pending event's time: {0}")]
    Time(#[source] async_nats::Error),
    /// Encoding failed (never expected).
    #[error("cannot encode: {0}")]
    Encode(#[from] serde_json::Error),
    /// A batch record could not be read or created.
    #[error("cannot settle a batch: {0}")]
    Batch(String),
}

/// Announces presence transitions on the room streams.
pub(crate) struct Announcer {
    shared: Arc<Shared>,
    sessions: Sessions,
    batcher: Arc<Batcher>,
}

/// What the reconciles and the batches' commits share.
struct Shared {
    js: jetstream::Context,
    store: kv::Store,
    rooms: Arc<RoomStreams>,
    stats: Arc<Stats>,
}

impl Announcer {
    /// Creates (or updates) the internal bucket; a room's events are at least `gap`
    /// apart ([`Batcher`]).
    pub async fn open(
        js: jetstream::Context,
        replicas: usize,
        sessions: Sessions,
        rooms: Arc<RoomStreams>,
        stats: Arc<Stats>,
        gap: std::time::Duration,
    ) -> Result<Self, CreateKeyValueError> {
        let config = presence_users_bucket_config(replicas);
        let store = create_with_retries("announced-state bucket", CREATE_PATIENCE, || {
            js.create_or_update_key_value(config.clone())
        })
        .await?;
        let shared = Arc::new(Shared {
            js,
            store,
            rooms,
            stats,
        });
        let committer = shared.clone();
        let batcher = Batcher::new(
            Box::new(move |batch, claimed| {
                let shared = committer.clone();
                Box::pin(async move { shared.commit(&batch, claimed).await })
            }),
            gap,
        );
        Ok(Self {
            shared,
            sessions,
            batcher,
        })
    }

    /// The internal bucket (read by the start-up sweep).
    pub fn store(&self) -> &kv::Store {
        &self.shared.store
    }

    /// Brings what was announced for `user` in `room` in line with their sessions, as
    /// [`decide`] says for `prompt`, and returns who is shown online in the room now
    /// (distinct, sorted). `written` is the sessions bucket's sequence of the write
    /// that prompted the call (a join, leave, rejoin or expiry marker): the decision
    /// knows at least that write. `None`: every write acknowledged before the call.
    pub async fn reconcile(
        &self,
        room: &RoomName,
        user: &UserName,
        prompt: Prompt,
        written: Option<u64>,
    ) -> Result<Vec<UserName>, ReconcileError> {
        let key = presence_users_key(room, user);
        loop {
            let (state, revision) = self.read(&key).await?;
            if let Some(event) = &state.pending {
                match &state.batch {
                    // Still being committed here: wait for it, then look again.
                    Some(batch) if self.batcher.wait_local(room, batch).await => continue,
                    Some(batch) => self.shared.settle(batch, event).await?,
                    None => self.shared.finish(event).await?,
                }
                let cleared = AnnouncedState {
                    pending: None,
                    batch: None,
                    ..state.clone()
                };
                self.cas(&key, &cleared, revision).await?;
                continue;
            }
            // The decision reads only this user's sessions, knowing at least the
            // prompting write and whatever the previous decision knew (whichever
            // worker made it), so that decisions never go back in time; usually from
            // the in-memory view.
            let listing = self
                .sessions
                .confirmed_online(room, user, must_know_through(&state, revision, written))
                .await?;
            self.shared.stats.listing(listing.from_view);
            let online = listing.online;
            let (kind, reason) = match decide(&state, online, prompt) {
                Decision::Unchanged => {
                    let touched = AnnouncedState {
                        listed_through: Some(listing.through),
                        ..state
                    };
                    if self.cas(&key, &touched, revision).await?.is_some() {
                        return self.shown(room, user, online).await;
                    }
                    continue;
                }
                Decision::Announce { kind, reason } => (kind, reason),
            };
            let users = self.shown(room, user, online).await?;
            let ticket = self.batcher.enter(room);
            let event = SystemEvent {
                v: VERSION,
                kind,
                id: uuid::Uuid::new_v4().to_string(),
                room: room.clone(),
                user: user.clone(),
                reason,
                users: users.len() as u64,
                ts: Some(Utc::now()),
                detail: Default::default(),
            };
            let claimed = AnnouncedState {
                online,
                pending: Some(event.clone()),
                listed_through: Some(listing.through),
                batch: Some(ticket.batch().to_string()),
            };
            // Losing the race drops the ticket, which withdraws from the batch.
            let Some(revision) = self.cas(&key, &claimed, revision).await? else {
                continue;
            };
            match ticket.claimed(event.clone()).await {
                Outcome::Published => {}
                Outcome::Aborted => self.shared.finish(&event).await?,
                Outcome::Failed(err) => return Err(ReconcileError::Batch(err)),
            }
            self.shared.stats.event(event.kind);
            tracing::info!(
                room = %room, user = %user, event = ?event.kind, reason = ?event.reason,
                users = event.users, id = %event.id, "announced"
            );
            let published = AnnouncedState {
                pending: None,
                batch: None,
                ..claimed
            };
            // Losing this race is fine: whoever changed the entry saw the event.
            self.cas(&key, &published, revision).await?;
            return Ok(users);
        }
    }

    /// Who is shown online in `room` with a decision that `user` is (or is not):
    /// the in-memory view, made to agree with the decision. Only shown (the count in
    /// replies and events), never decided on.
    async fn shown(
        &self,
        room: &RoomName,
        user: &UserName,
        online: bool,
    ) -> Result<Vec<UserName>, ReconcileError> {
        let mut users = self.sessions.cached_users(room).await?;
        match (online, users.binary_search(user)) {
            (true, Err(at)) => users.insert(at, user.clone()),
            (false, Ok(at)) => {
                users.remove(at);
            }
            _ => {}
        }
        Ok(users)
    }

    /// The announced state and its revision (0 when there is none yet). A value that
    /// is not an [`AnnouncedState`] (written by someone else) counts as nothing
    /// announced and is overwritten by the next CAS.
    async fn read(&self, key: &str) -> Result<(AnnouncedState, u64), ReconcileError> {
        let Some(entry) = self.shared.store.entry(key).await? else {
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
        match self.shared.store.update(key, value.into(), revision).await {
            Ok(revision) => Ok(Some(revision)),
            Err(err) if cas::lost_race(&err) => Ok(None),
            Err(err) => Err(err.into()),
        }
    }
}

impl Shared {
    /// Publishes an event left pending by an earlier reconcile (maybe by a worker that
    /// died). Within the stream's duplicate window the stream itself drops a repeat;
    /// an older event is first looked for in the stream, so that even a worker that
    /// died long ago cannot cause a duplicate.
    async fn finish(&self, event: &SystemEvent) -> Result<(), ReconcileError> {
        let window = self.rooms.duplicate_window();
        let recent = event
            .ts
            .is_some_and(|ts| (Utc::now() - ts).to_std().is_ok_and(|age| age < window / 2));
        if !recent && self.stored(event).await? {
            tracing::info!(id = %event.id, room = %event.room, user = %event.user, "pending event was already stored");
            return Ok(());
        }
        self.publish(event).await
    }

    /// Whether the room stream already holds `event` (by its `Nats-Msg-Id`), looking
    /// at system events stored since shortly before the event was created.
    async fn stored(&self, event: &SystemEvent) -> Result<bool, ReconcileError> {
        self.search(event, true, |id, _| id == event.id).await
    }

    /// Whether the room stream holds an event of `batch` that names `event`'s user
    /// (the batch was published and its record is gone).
    async fn stored_in(&self, batch: &str, event: &SystemEvent) -> Result<bool, ReconcileError> {
        let prefix = format!("{batch}-");
        self.search(event, false, |id, payload| {
            id.starts_with(&prefix)
                && serde_json::from_slice::<SystemEvent>(payload)
                    .is_ok_and(|stored| names(&stored).any(|u| *u == event.user))
        })
        .await
    }

    /// Looks at the system events of `event`'s room stored since shortly before
    /// `event` was created, until `found(id, payload)` says yes.
    async fn search(
        &self,
        event: &SystemEvent,
        headers_only: bool,
        mut found: impl FnMut(&str, &[u8]) -> bool,
    ) -> Result<bool, ReconcileError> {
        let stream = match self.js.get_stream(stream_name(&event.room)).await {
            Ok(stream) => stream,
            Err(err)
                if matches!(err.kind(), GetStreamErrorKind::JetStream(ref e)
                    if e.error_code() == JsError::STREAM_NOT_FOUND) =>
            {
                return Ok(false)
            }
            Err(err) => return Err(ReconcileError::Stream(err)),
        };
        let since = event.ts.unwrap_or_default() - STORED_SLACK;
        let start_time = async_nats::datetime::parse_rfc3339(&rfc3339::format(&since))
            .map_err(ReconcileError::Time)?;
        let config = pull::OrderedConfig {
            filter_subject: subjects::room_system(&event.room),
            deliver_policy: DeliverPolicy::ByStartTime { start_time },
            headers_only,
            ..Default::default()
        };
        let mut hit = false;
        scan(&stream, config, LOOKUP_TIMEOUT, |message, _| {
            hit = message
                .headers
                .as_ref()
                .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
                .is_some_and(|id| found(id.as_str(), &message.payload));
            !hit
        })
        .await?;
        Ok(hit)
    }

    /// Publishes `event`, claimed in `batch` by a reconcile that did not finish (maybe
    /// on a worker that died), exactly once: as the batch's record says, or, when
    /// there is none, after giving the batch up by creating its record empty.
    async fn settle(&self, batch: &str, event: &SystemEvent) -> Result<(), ReconcileError> {
        let key = batch_key(batch);
        loop {
            let record = self
                .store
                .entry(&key)
                .await?
                .filter(|entry| !listing::is_removal(entry.operation))
                .map(|entry| {
                    serde_json::from_slice::<BatchRecord>(&entry.value).unwrap_or_default()
                });
            match record {
                Some(record) if record.events.is_empty() => {
                    // Given up: by a settlement before the commit (which then
                    // published nothing), or after its published record expired.
                    if self.stored_in(batch, event).await? {
                        return Ok(());
                    }
                    return self.finish(event).await;
                }
                Some(record) => {
                    let carried: Vec<&SystemEvent> = record
                        .events
                        .iter()
                        .filter(|e| names(e).any(|u| *u == event.user))
                        .collect();
                    if carried.is_empty() {
                        // This claim did not make it into the batch (its report failed).
                        return self.finish(event).await;
                    }
                    for carrier in carried {
                        self.finish(carrier).await?;
                    }
                    return Ok(());
                }
                None => {
                    let given_up = serde_json::to_vec(&BatchRecord::default())?;
                    match self
                        .store
                        .create_with_ttl(&key, given_up.into(), BATCH_RECORD_TTL)
                        .await
                    {
                        Ok(_) => {
                            tracing::info!(batch, user = %event.user, "gave up a batch left unfinished");
                        }
                        Err(err) if cas::lost_race(&err) => {}
                        Err(err) => return Err(ReconcileError::Batch(err.to_string())),
                    }
                }
            }
        }
    }

    /// Stores a batch's claimed transitions: one transition as its own event; more as
    /// events naming several users each, after creating the batch's record (which
    /// fails when a settlement gave the batch up first).
    async fn commit(&self, batch: &Batch, claimed: Vec<SystemEvent>) -> Outcome {
        if claimed.is_empty() {
            return Outcome::Published;
        }
        if batch.opened.elapsed() > MAX_BATCH_AGE {
            return Outcome::Aborted;
        }
        let alone = claimed.len() == 1;
        let events = if alone {
            claimed
        } else {
            coalesce(&batch.id, claimed)
        };
        if !alone {
            let record = BatchRecord {
                events: events.clone(),
            };
            let record = match serde_json::to_vec(&record) {
                Ok(record) => record,
                Err(err) => return Outcome::Failed(err.to_string()),
            };
            match self
                .store
                .create_with_ttl(batch_key(&batch.id), record.into(), BATCH_RECORD_TTL)
                .await
            {
                Ok(_) => {}
                Err(err) if cas::lost_race(&err) => {
                    tracing::info!(batch = %batch.id, room = %batch.room, "batch given up by another worker; publishing each event alone");
                    return Outcome::Aborted;
                }
                Err(err) => return Outcome::Failed(format!("cannot record the batch: {err}")),
            }
        }
        for event in &events {
            if let Err(err) = self.publish(event).await {
                return Outcome::Failed(err.to_string());
            }
        }
        Outcome::Published
    }

    /// Stores the event in its room stream, retrying with the same `Nats-Msg-Id` so
    /// that it is stored once however often it is sent (`chat_runtime::publish`). A
    /// room stream deleted since it was created is created again before the retry.
    async fn publish(&self, event: &SystemEvent) -> Result<(), ReconcileError> {
        self.rooms.ensure(&event.room).await?;
        let payload = bytes::Bytes::from(serde_json::to_vec(event)?);
        let subject = subjects::room_system(&event.room);
        publish::publish(
            &self.js,
            subject.into(),
            payload,
            &event.id,
            &EVENT_RETRY,
            |err: &PublishError| {
                let missing = publish::Failure::of(err) == publish::Failure::NotStored;
                async move {
                    if missing {
                        self.rooms.forget(&event.room);
                        self.rooms.ensure(&event.room).await?;
                    }
                    Ok::<_, ReconcileError>(())
                }
            },
        )
        .await?;
        Ok(())
    }
}

/// Everyone an event names: `user`, then `others`.
fn names(event: &SystemEvent) -> impl Iterator<Item = &UserName> {
    std::iter::once(&event.user).chain(&event.detail.others)
}

/// The events that carry a batch's transitions: one per kind and reason (in the
/// order of their first claim), each naming at most [`MAX_NAMES`] users, with ids
/// `<batch>-<n>` and the latest count of users online.
fn coalesce(batch: &str, claimed: Vec<SystemEvent>) -> Vec<SystemEvent> {
    let mut groups: Vec<Vec<SystemEvent>> = Vec::new();
    for event in claimed {
        let group = groups.iter_mut().find(|g| {
            g[0].kind == event.kind && g[0].reason == event.reason && g.len() < MAX_NAMES
        });
        match group {
            Some(group) => group.push(event),
            None => groups.push(vec![event]),
        }
    }
    let now = Utc::now();
    groups
        .into_iter()
        .enumerate()
        .map(|(n, group)| {
            let users = group.last().map_or(0, |e| e.users);
            let others = group.iter().skip(1).map(|e| e.user.clone()).collect();
            let first = group.into_iter().next().expect("a group is never empty");
            SystemEvent {
                id: format!("{batch}-{n}"),
                users,
                ts: Some(now),
                detail: EventDetail {
                    others,
                    ..Default::default()
                },
                ..first
            }
        })
        .collect()
}
