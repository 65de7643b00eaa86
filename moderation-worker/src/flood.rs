//! The rate limit at work: every instance counts every chat message it sees on
//! `chat.room.*.msg.*` (a core subscription on a connection of its own, so that a
//! flood it is reading never delays its kicks and writes) in its [`Tracker`]; a user
//! going over the allowance is muted through the [`Outbox`]. With several instances
//! each sees the crossing; the compare-and-set lets exactly one record the mute.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_protocol::subjects::{self, RoomSubject};
use chrono::Utc;
use futures::StreamExt;
use tokio::sync::{mpsc, Semaphore};

use crate::event;
use crate::outbox::{Outbox, Step};
use crate::rate::{Crossing, Tracker};
use crate::record::{Pending, Purge, StandingRecord};
use crate::Config;

/// How often users whose bucket is full again are forgotten.
const PRUNE_EVERY: Duration = Duration::from_secs(10);
/// Crossings waiting to be handled, at most (more are dropped with a warning: the
/// next crossing of the same user comes after the quiet period).
const CROSSING_QUEUE: usize = 1024;
/// Crossings handled at once.
const CROSSING_CONCURRENCY: usize = 16;

/// Counts messages on `counting` until the subscription ends, handing crossings to
/// [`handle`].
pub async fn count(counting: async_nats::Client, outbox: Outbox, config: Arc<Config>) {
    let mut messages = match counting.subscribe(subjects::ALL_ROOM_MESSAGES).await {
        Ok(messages) => messages,
        Err(error) => {
            tracing::error!(%error, "cannot subscribe to the room messages; no rate limit");
            return;
        }
    };
    let (tx, rx) = mpsc::channel(CROSSING_QUEUE);
    tokio::spawn(handle_all(rx, outbox, config.clone()));
    // Quiet for as long as muting takes at worst; the outbox sees it is muted anyway.
    let mut tracker = Tracker::new(config.rate, config.max_tracked_users, 2.0);
    let start = Instant::now();
    let mut last_prune = start;
    let mut full_warned = false;
    while let Some(message) = messages.next().await {
        let Ok(RoomSubject::Message { room, user }) =
            subjects::parse_room_subject(message.subject.as_str())
        else {
            continue;
        };
        let now = start.elapsed().as_secs_f64();
        if let Some(crossing) = tracker.count(&user, &room, now) {
            tracing::info!(%user, rooms = crossing.rooms.len(), "over the allowance");
            if tx.try_send(crossing).is_err() {
                tracing::warn!(%user, "too many crossings at once; this one waits for the next");
            }
        }
        if last_prune.elapsed() >= PRUNE_EVERY {
            last_prune = Instant::now();
            tracker.prune(now);
            let full = tracker.len() >= config.max_tracked_users;
            if full && !full_warned {
                tracing::warn!(
                    users = tracker.len(),
                    "tracking as many users as allowed; new ones are not counted"
                );
            }
            full_warned = full;
        }
    }
    tracing::info!("room message subscription ended");
}

/// Handles crossings, a bounded number at once.
async fn handle_all(mut rx: mpsc::Receiver<Crossing>, outbox: Outbox, config: Arc<Config>) {
    let slots = Arc::new(Semaphore::new(CROSSING_CONCURRENCY));
    while let Some(crossing) = rx.recv().await {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let (outbox, config) = (outbox.clone(), config.clone());
        tokio::spawn(async move {
            if let Err(error) = handle(&outbox, &config, &crossing).await {
                tracing::error!(user = %crossing.user, %error, "cannot mute a flooder");
            }
            drop(slot);
        });
    }
}

/// Mutes a user who went over the allowance: records the mute with its work (kick,
/// remove the excess, a `muted` event per room) unless they are muted or banned
/// already, in which case a connection from before is still speaking: kick again.
pub async fn handle(
    outbox: &Outbox,
    config: &Config,
    crossing: &Crossing,
) -> Result<(), crate::outbox::OutboxError> {
    let user = &crossing.user;
    let now = Utc::now();
    let until = now + config.flood_mute;
    let id = uuid::Uuid::new_v4().simple().to_string();
    let recorded = outbox
        .change(user, |record: &StandingRecord| {
            if record.muted_at(now) || record.banned_at(now) {
                // Muted with its work in progress (another instance won): nothing to
                // do. Muted and done: kick whatever still speaks.
                let in_progress = record.pending.is_some();
                return Ok::<_, crate::outbox::OutboxError>(Step::Stop(in_progress));
            }
            let events = crossing
                .rooms
                .iter()
                .map(|room| event::flood_muted(format!("{id}.muted.{room}"), room, user, until))
                .collect();
            let new = StandingRecord {
                muted_until: Some(until),
                reason: Some(format!(
                    "flooding: over {} messages at once, {} per second allowed",
                    config.rate.burst, config.rate.per_second
                )),
                by: None,
                pending: Some(Pending {
                    id: id.clone(),
                    kick: true,
                    purge: Some(Purge {
                        since: now - config.lookback,
                        rooms: crossing.rooms.clone(),
                    }),
                    events,
                    since: now,
                }),
                ..record.clone()
            };
            Ok(Step::Write(new, true))
        })
        .await?;
    if recorded {
        tracing::info!(%user, %until, "muted for flooding");
    } else {
        outbox.kicker().kick(user).await?;
    }
    Ok(())
}
