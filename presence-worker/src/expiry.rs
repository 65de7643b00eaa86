//! Expiry, also of sessions that died while no worker ran.
//!
//! When a session's TTL runs out, the server replaces its key with a `MaxAge` marker;
//! a leave leaves a purge marker. Every instance pulls from one shared durable consumer
//! on the sessions bucket's stream, so each marker is handled by exactly one worker
//! at a time and redelivered if that worker dies before acknowledging it: the marker
//! is acknowledged only after [`crate::announce::Announcer::reconcile`] succeeded.
//! Values (joins, heartbeats) are acknowledged right away.
//!
//! Markers themselves expire (the bucket's marker TTL). A worker that starts therefore
//! also [`sweep`]s the internal announced-state bucket: every user announced online
//! without a live session, or with a pending event, is reconciled.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::message::AckKind;
use chat_protocol::streams::parse_presence_key;
use chat_protocol::{RoomName, UserName};
use chrono::{DateTime, Utc};
use futures::StreamExt;

use crate::availability::{self, Expiry};
use crate::config::Config;
use crate::context::Context;
use crate::decision::Prompt;
use crate::listing::{self, ListError, Removal};
use crate::outbox::{is_batch_key, parse_presence_users_key, AnnouncedState};
use crate::sessions::Sessions;
use chat_runtime::replicas::{create_with_retries, CREATE_PATIENCE};
use chat_runtime::Shutdown;

/// Durable name of the shared expiry consumer (internal to the worker).
pub const EXPIRY_CONSUMER: &str = "chat-presence-expiry";

/// Messages pulled at once: small, so that a crashed worker strands few of them
/// until their ack wait runs out.
const BATCH: usize = 16;

/// How long one pull waits at the server; short so that a dead worker's pulls do not
/// linger.
const PULL_EXPIRES: Duration = Duration::from_secs(5);

/// How long a failed reconcile waits before its marker is delivered again.
const RETRY_DELAY: Duration = Duration::from_secs(1);

/// Creates the shared consumer if it does not exist yet (every instance does this;
/// the first one creates it, starting at new messages).
pub(crate) async fn consumer(
    sessions: &Sessions,
    config: &Config,
) -> Result<PullConsumer, async_nats::jetstream::stream::ConsumerError> {
    let consumer = pull::Config {
        durable_name: Some(EXPIRY_CONSUMER.to_string()),
        description: Some("presence workers: announce expired and removed sessions".into()),
        ack_policy: AckPolicy::Explicit,
        ack_wait: config.ack_wait,
        deliver_policy: DeliverPolicy::New,
        ..Default::default()
    };
    create_with_retries("expiry consumer", CREATE_PATIENCE, || {
        sessions
            .stream()
            .get_or_create_consumer(EXPIRY_CONSUMER, consumer.clone())
    })
    .await
}

/// Pulls and handles markers until asked to stop (finishing the one in hand).
pub(crate) async fn run(ctx: Arc<Context>, mut consumer: PullConsumer, mut stop: Shutdown) {
    loop {
        let messages = consumer
            .stream()
            .max_messages_per_batch(BATCH)
            .expires(PULL_EXPIRES)
            .messages()
            .await;
        match messages {
            Ok(mut messages) => loop {
                tokio::select! {
                    _ = stop.requested() => return,
                    next = messages.next() => match next {
                        Some(Ok(message)) => handle(&ctx, message).await,
                        Some(Err(err)) => {
                            tracing::warn!(%err, "expiry consumer error; pulling again");
                            break;
                        }
                        None => break,
                    }
                }
            },
            Err(err) => tracing::warn!(%err, "cannot pull from the expiry consumer"),
        }
        tokio::select! {
            _ = stop.requested() => return,
            _ = tokio::time::sleep(RETRY_DELAY) => {}
        }
        // The consumer may have been deleted: create it again.
        match self::consumer(&ctx.sessions, &ctx.config).await {
            Ok(fresh) => consumer = fresh,
            Err(err) => tracing::warn!(%err, "cannot recreate the expiry consumer"),
        }
    }
}

async fn handle(ctx: &Context, message: async_nats::jetstream::Message) {
    let removal = listing::removal(message.headers.as_ref());
    let key = message.subject.as_str().strip_prefix(ctx.sessions.prefix());
    if let (Some(removal), Some(key)) = (removal, key) {
        match parse_presence_key(key) {
            Ok((room, user, session)) => {
                let info = message.info().ok();
                if removal == Removal::Expired {
                    let expired_at = info.as_ref().map_or_else(Utc::now, |info| {
                        let t = info.published;
                        DateTime::from_timestamp(t.unix_timestamp(), t.nanosecond())
                            .unwrap_or_else(Utc::now)
                    });
                    if let Some(until) = wait_for_outage(ctx, expired_at).await {
                        tracing::info!(%room, %user, %session, %until, "session expired during a short outage; waiting for its heartbeat");
                        let wait = (until - Utc::now()).to_std().unwrap_or_default();
                        if let Err(err) = message.ack_with(AckKind::Nak(Some(wait))).await {
                            tracing::debug!(%err, "nak failed");
                        }
                        return;
                    }
                    ctx.stats.expiry();
                    tracing::info!(%room, %user, %session, reason = "timeout", "session expired");
                }
                let written = info.map(|info| info.stream_sequence);
                if let Err(err) = ctx
                    .announcer
                    .reconcile(&room, &user, Prompt::from(removal), written)
                    .await
                {
                    tracing::warn!(%room, %user, %err, "cannot announce a removal yet; will retry");
                    if let Err(err) = message.ack_with(AckKind::Nak(Some(RETRY_DELAY))).await {
                        tracing::debug!(%err, "nak failed");
                    }
                    return;
                }
            }
            Err(err) => {
                tracing::warn!(%err, "skipping a presence key that breaks the naming rules")
            }
        }
    }
    if let Err(err) = message.ack().await {
        tracing::debug!(%err, "ack failed; the marker will come again");
    }
}

/// When an expiry at `expired_at` is to be looked at again because it happened
/// during a short outage ([`availability::judge_expiry`]); `None`: announce it now.
async fn wait_for_outage(ctx: &Context, expired_at: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let every = availability::beat_every(ctx.config.ttl);
    let clock = match availability::clock_now(ctx.announcer.store(), every).await {
        Ok(clock) => clock,
        Err(err) => {
            tracing::warn!(%err, "cannot read the workers' clock; announcing the expiry now");
            return None;
        }
    };
    let heartbeat = Duration::from_secs(ctx.config.heartbeat_secs());
    match availability::judge_expiry(expired_at, clock.outage.as_ref(), ctx.config.ttl, heartbeat) {
        Expiry::WaitUntil(until) if until > Utc::now() => Some(until),
        _ => None,
    }
}

/// Reconciles every user whose announced state disagrees with the live sessions or
/// holds a pending event; returns how many were reconciled. Right after a short
/// outage it first waits until the reconnected clients have registered their
/// sessions again, as an expiry would.
pub(crate) async fn sweep(ctx: &Context) -> Result<usize, ListError> {
    if let Some(until) = wait_for_outage(ctx, Utc::now()).await {
        tracing::info!(%until, "start-up sweep after a short outage: waiting for heartbeats");
        tokio::time::sleep((until - Utc::now()).to_std().unwrap_or_default()).await;
    }
    let store = ctx.announcer.store();
    let entries = ctx
        .sessions
        .lister()
        .latest(&store.stream, &store.prefix, ">", false)
        .await?;
    let online: HashSet<(RoomName, UserName)> = ctx
        .sessions
        .listed_all_sessions()
        .await?
        .into_iter()
        .map(|s| (s.room, s.user))
        .collect();
    let mut reconciled = 0;
    let entries = entries.into_iter().filter(|e| {
        e.removal().is_none() && e.key != availability::CLOCK_KEY && !is_batch_key(&e.key)
    });
    for entry in entries {
        let (room, user) = match parse_presence_users_key(&entry.key) {
            Ok(names) => names,
            Err(err) => {
                tracing::warn!(%err, "skipping an announced-state key that breaks the naming rules");
                continue;
            }
        };
        let state: AnnouncedState = serde_json::from_slice(&entry.payload).unwrap_or_default();
        let has_session = online.contains(&(room.clone(), user.clone()));
        if state.pending.is_none() && state.online == has_session {
            continue;
        }
        match ctx
            .announcer
            .reconcile(&room, &user, Prompt::Expiry, None)
            .await
        {
            Ok(_) => reconciled += 1,
            Err(err) => tracing::warn!(%room, %user, %err, "sweep: cannot reconcile"),
        }
    }
    Ok(reconciled)
}
