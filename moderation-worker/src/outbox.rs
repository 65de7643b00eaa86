//! Exactly-once moderation: every change of a standing record goes through
//! compare-and-set together with what remains to be done about it (the record's
//! `pending`: kick, remove a flood's excess, write the events), which is then done and
//! cleared. Whoever loses a race re-reads; a worker that dies in between leaves
//! `pending` behind, and another instance finishes it ([`Outbox::watch`]) with the
//! same event ids, so the room streams' duplicate window stores each event once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, context::PublishErrorKind};
use chat_protocol::body::{Rate, SystemEvent};
use chat_protocol::{streams, subjects, UserName};
use chrono::Utc;
use futures::StreamExt;

use crate::event;
use crate::excess::{self, ExcessError};
use crate::kick::{KickError, Kicker};
use crate::record::{StandingRecord, Store, StoreError};

/// Most sequences in one `deleted` event (an event stays well under the room streams'
/// 32 KiB message limit).
pub const MAX_SEQS_PER_EVENT: usize = 2000;
/// How long after a flooder's kick its last messages may still be landing in the
/// streams.
const SETTLE: Duration = Duration::from_millis(200);
/// How often the takeover watch looks for abandoned work.
const TAKEOVER_TICK: Duration = Duration::from_millis(250);
/// How many times a change is tried against concurrent writers.
const MAX_ATTEMPTS: usize = 50;

/// Why a change or its follow-up failed (the worker answers 503; the pending work stays
/// for another try).
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// The bucket failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Kicking failed.
    #[error(transparent)]
    Kick(#[from] KickError),
    /// Finding or removing a flood's excess failed.
    #[error(transparent)]
    Excess(#[from] ExcessError),
    /// An event could not be stored.
    #[error("cannot write a {kind:?} event to room {room}: {source}")]
    Publish {
        /// Its kind.
        kind: chat_protocol::body::SystemKind,
        /// Its room.
        room: chat_protocol::RoomName,
        /// Why.
        source: async_nats::Error,
    },
    /// Other writers kept changing the record.
    #[error("the standing record of {0} kept changing; try again")]
    Contended(UserName),
}

/// What a change decides, looking at the current record.
pub enum Step<T> {
    /// Write this record (its `pending` set) and do the pending work; answer `T`.
    Write(StandingRecord, T),
    /// Write nothing; answer `T`.
    Stop(T),
}

/// Changes standing records and does their pending work.
#[derive(Clone)]
pub struct Outbox {
    inner: Arc<Inner>,
}

struct Inner {
    js: jetstream::Context,
    store: Store,
    kicker: Kicker,
    rate: Rate,
    takeover_after: Duration,
}

impl Outbox {
    /// An outbox over `store`, kicking with `kicker`, removing excess by `rate`.
    pub fn new(
        js: jetstream::Context,
        store: Store,
        kicker: Kicker,
        rate: Rate,
        takeover_after: Duration,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                js,
                store,
                kicker,
                rate,
                takeover_after,
            }),
        }
    }

    /// The bucket.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The kicker.
    pub fn kicker(&self) -> &Kicker {
        &self.inner.kicker
    }

    /// Changes `user`'s record as `decide` says, compare-and-set, and does the pending
    /// work it wrote. Work another instance left pending is waited for while fresh and
    /// finished once abandoned, before this change is written.
    pub async fn change<T, E>(
        &self,
        user: &UserName,
        mut decide: impl FnMut(&StandingRecord) -> Result<Step<T>, E>,
    ) -> Result<T, E>
    where
        E: From<OutboxError>,
    {
        for _ in 0..MAX_ATTEMPTS {
            let (record, revision) = self
                .store()
                .standing(user)
                .await
                .map_err(OutboxError::from)?;
            let (new, answer) = match decide(&record)? {
                Step::Stop(answer) => return Ok(answer),
                Step::Write(new, answer) => (new, answer),
            };
            if let Some(pending) = &record.pending {
                let age = (Utc::now() - pending.since).to_std().unwrap_or_default();
                if age < self.inner.takeover_after {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                } else {
                    self.take_over(user, record, revision).await?;
                }
                continue;
            }
            if let Some(revision) = self
                .store()
                .write(user, &new, revision)
                .await
                .map_err(OutboxError::from)?
            {
                self.finish(user, new, revision).await?;
                return Ok(answer);
            }
        }
        Err(OutboxError::Contended(user.clone()).into())
    }

    /// Claims work left pending (compare-and-set, so only one instance takes it) and
    /// does it.
    async fn take_over(
        &self,
        user: &UserName,
        mut record: StandingRecord,
        revision: u64,
    ) -> Result<(), OutboxError> {
        let Some(pending) = record.pending.as_mut() else {
            return Ok(());
        };
        pending.since = Utc::now();
        if let Some(revision) = self.store().write(user, &record, revision).await? {
            tracing::info!(%user, "finishing moderation work another instance left pending");
            self.finish(user, record, revision).await?;
        }
        Ok(())
    }

    /// Does `record`'s pending work (kick, excess, events) and clears it.
    async fn finish(
        &self,
        user: &UserName,
        mut record: StandingRecord,
        mut revision: u64,
    ) -> Result<(), OutboxError> {
        let Some(pending) = record.pending.take() else {
            return Ok(());
        };
        if pending.kick {
            self.inner.kicker.kick(user).await?;
        }
        if let Some(purge) = &pending.purge {
            // What the kicked connections had sent is still being stored: let it land
            // before reading what to remove.
            tokio::time::sleep(SETTLE).await;
            let found = excess::find(&self.inner.js, &self.inner.rate, user, purge).await?;
            for (room, seqs) in found {
                // Tombstones first: if this worker dies while deleting, the one that
                // takes over finds the rest and its tombstones are the same (same ids).
                for (n, chunk) in seqs.chunks(MAX_SEQS_PER_EVENT).enumerate() {
                    let id = format!("{}.deleted.{room}.{n}", pending.id);
                    self.publish(&event::flood_deleted(id, &room, user, chunk.to_vec()))
                        .await?;
                }
                excess::delete(&self.inner.js, &room, &seqs).await?;
                tracing::info!(%user, %room, removed = seqs.len(), "removed a flood's excess");
            }
        }
        for event in &pending.events {
            self.publish(event).await?;
        }
        // Clear the outbox, unless the record moved on to other work meanwhile.
        loop {
            match self.store().write(user, &record, revision).await? {
                Some(_) => return Ok(()),
                None => {
                    let (current, current_revision) = self.store().standing(user).await?;
                    if current.pending.as_ref().map(|p| &p.id) != Some(&pending.id) {
                        return Ok(());
                    }
                    record = StandingRecord {
                        pending: None,
                        ..current
                    };
                    revision = current_revision;
                }
            }
        }
    }

    /// Stores `event` in its room with its id as `Nats-Msg-Id` (a repeat is stored
    /// once). A room without a stream is skipped with a warning: nobody reads it.
    pub async fn publish(&self, event: &SystemEvent) -> Result<(), OutboxError> {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, event.id.as_str());
        let body = serde_json::to_vec(event).expect("events serialize");
        let failed = |source: async_nats::Error| OutboxError::Publish {
            kind: event.kind,
            room: event.room.clone(),
            source,
        };
        let ack = self
            .inner
            .js
            .publish_with_headers(subjects::room_system(&event.room), headers, body.into())
            .await;
        match ack {
            Ok(ack) => match ack.await {
                Ok(_) => Ok(()),
                Err(e) if e.kind() == PublishErrorKind::StreamNotFound => {
                    tracing::warn!(room = %event.room, kind = ?event.kind, "no stream for this room; event dropped");
                    Ok(())
                }
                Err(e) => Err(failed(e.into())),
            },
            Err(e) => Err(failed(e.into())),
        }
    }

    /// Finishes work other instances abandoned, for as long as it runs: a KV watch of
    /// the standing records remembers which have work pending; whatever stays pending
    /// past the takeover delay is claimed and done.
    pub async fn watch(self) {
        let mut backoff =
            chat_runtime::Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        loop {
            match self.watch_once().await {
                Ok(()) => backoff.reset(),
                Err(error) => {
                    tracing::warn!(%error, "watch of pending moderation work failed; restarting")
                }
            }
            backoff.wait().await;
        }
    }

    async fn watch_once(&self) -> Result<(), async_nats::Error> {
        let mut entries = self
            .store()
            .kv()
            .watch_with_history(streams::STANDING_KEYS)
            .await?;
        let mut pending: HashMap<UserName, chrono::DateTime<Utc>> = HashMap::new();
        let mut tick = tokio::time::interval(TAKEOVER_TICK);
        loop {
            tokio::select! {
                entry = entries.next() => {
                    let Some(entry) = entry else { return Ok(()) };
                    let entry = entry?;
                    let Some(user) = streams::user_of_moderation_key(&entry.key) else { continue };
                    let since = serde_json::from_slice::<StandingRecord>(&entry.value)
                        .ok()
                        .and_then(|r| r.pending.map(|p| p.since));
                    match since {
                        Some(since) => { pending.insert(user, since); }
                        None => { pending.remove(&user); }
                    }
                }
                _ = tick.tick() => {
                    let now = Utc::now();
                    let due: Vec<UserName> = pending
                        .iter()
                        .filter(|(_, since)| (now - **since).to_std().unwrap_or_default() >= self.inner.takeover_after)
                        .map(|(user, _)| user.clone())
                        .collect();
                    for user in due {
                        pending.remove(&user);
                        let (record, revision) = self.store().standing(&user).await?;
                        let abandoned = record.pending.as_ref().is_some_and(|p| {
                            (now - p.since).to_std().unwrap_or_default() >= self.inner.takeover_after
                        });
                        if abandoned {
                            if let Err(error) = self.take_over(&user, record, revision).await {
                                tracing::warn!(%user, %error, "cannot finish abandoned moderation work yet");
                            }
                        }
                    }
                }
            }
        }
    }
}
