//! One room's feed: replay the last N chat messages, then go live, with no gap and
//! no duplicate.
//!
//! The live feed's consumer is made first, delivering only new messages: its
//! creation reply holds the stream's last sequence `L`. The replay is the newest N
//! chat messages with `seq <= L`; the live feed reads that consumer from `L + 1`
//! (chat messages and system events). Every sequence shown is remembered as the
//! room's last sequence and nothing at or below it is shown again, which also makes
//! resuming after a connection loss safe: whatever re-delivers from where, each
//! sequence appears once.
//!
//! async-nats ordered consumers are meant to recreate themselves after a lost
//! connection, but after a server restart (where the in-memory ordered consumer is
//! gone) they were seen to notice only ~15 s later, with a "consumer not found" pull
//! error; and one that had delivered nothing yet restarts from the beginning of the
//! stream. So the feed recreates its consumer itself, from `last + 1`, as soon as the
//! connection comes back, and whenever the consumer ends with an error.
//!
//! In a cluster the feed's consumer (one replica, in memory) lives on one node, not
//! necessarily the client's nor the stream leader's. When that node dies nothing tells
//! the client: its connection stands, the stream elects no leader, and async-nats
//! would notice only after two missed idle heartbeats, twice (about a minute). And
//! when that node comes back it makes the consumer again from its assignment, but the
//! client's pull request died with the node: the consumer answers and delivers nothing
//! until that request expires (30 s). So on a cluster, a feed that received nothing
//! for [`IDLE_CHECK`] asks for its consumer's info, and follows again from `last + 1`
//! when that fails or says that messages are waiting which the feed did not get. On a
//! single server the consumer lives where the connection does, and the connection's
//! loss already makes the feed follow again: it does not ask (a thousand idle feeds
//! would cost the server 200 requests a second).
//!
//! A room's stream can also be deleted and created again (by the next join), which
//! starts its sequences over. The feed checks the stream's creation time when
//! JetStream's advisory says the stream was deleted, whenever its consumer fails, and
//! every 30 s; it says when the stream is gone, waits for it, says when a new one
//! replaced it, and then follows the new one from its start.
//!
//! The feed subscribes to the literal advisory subjects it needs: the deletion of its
//! stream, and on a cluster its leader elections. One wildcard subscription for all
//! of them (`$JS.EVENT.ADVISORY.STREAM.*.CHAT_<room>`) cost nats-server a pass over
//! its whole subscription cache at every join (about a tenth of its work for a crowd
//! of joins, found with `perf`), where a literal subject is one lookup.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::pull::OrderedConfig;
use async_nats::jetstream::consumer::{Consumer, DeliverPolicy};
use async_nats::jetstream::stream::Stream;
use async_nats::jetstream::Context;
use chat_protocol::{streams, subjects, RoomName};
use chat_runtime::reading::{read_backward, Limits};
use chat_runtime::Backoff;
use chrono::DateTime;
use futures::StreamExt;
use tokio::sync::{mpsc, watch};

use crate::echo::Echoes;
use crate::event::{self, Event, State};
use crate::moderation::Own;

/// Longest pause between two attempts to (re)open the stream or its consumer.
/// First pause before a retry.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How long a live feed may receive nothing before it checks that its consumer is
/// still there (one consumer info request per idle room this often, on a cluster).
const IDLE_CHECK: Duration = Duration::from_secs(5);

/// How often a live feed checks that its stream was not deleted and recreated (one
/// stream info request per room). The stream advisories normally trigger the same
/// check at once; this covers a client not allowed to read them, and stays rare
/// enough that a thousand idle clients cost the server little.
const STREAM_CHECK: Duration = Duration::from_secs(30);

/// The advisory kinds a feed follows (`$JS.EVENT.ADVISORY.STREAM.<kind>.<stream>`).
const DELETED: &str = "DELETED";
const LEADER_ELECTED: &str = "LEADER_ELECTED";

fn is_not_found(err: &async_nats::jetstream::context::GetStreamError) -> bool {
    matches!(
        err.kind(),
        async_nats::jetstream::context::GetStreamErrorKind::JetStream(ref e)
            if e.error_code() == async_nats::jetstream::ErrorCode::STREAM_NOT_FOUND
    )
}

/// Everything one room's feed needs.
pub(crate) struct Feed {
    pub js: Context,
    pub room: RoomName,
    /// How many past chat messages to replay.
    pub history: usize,
    pub events: mpsc::Sender<Event>,
    /// Bumped by the connection callback at every reconnect.
    pub reconnects: watch::Receiver<u64>,
    /// The last sequence shown: `None` until the welcome and the replay are out, then
    /// kept up to date by the live feed (closing waits on it to show its own echoes).
    pub shown: watch::Sender<Option<u64>>,
    /// Own acknowledged messages waiting for their echo; forgotten as they are shown.
    pub echoes: Arc<Echoes>,
    /// This session's standing: live moderation events naming its user change it.
    pub own: Arc<Own>,
}

impl Feed {
    /// Runs the feed until the task is aborted (on leave) or the UI goes away.
    ///
    /// `welcome` is sent once the stream's last sequence is known, so that anything
    /// published after the user saw it is certain to be shown live. The live feed's
    /// first consumer tells it: made to deliver only what comes after the stream's
    /// last message, its creation reply holds that sequence (one request per join,
    /// where a stream info and then a consumer took two).
    pub async fn run(mut self, welcome: Event) {
        let name = streams::stream_name(&self.room);
        // No request: the first consumer's creation says whether the stream is there.
        let stream = match self.js.get_stream_no_info(&name).await {
            Ok(stream) => stream,
            Err(err) => {
                tracing::error!(room = %self.room, "no stream {name}: {err}");
                return;
            }
        };
        let (last, first) = self.first_consumer(&stream).await;
        if self.events.send(welcome).await.is_err() || !self.replay(&stream, last).await {
            return;
        }
        self.echoes.shown(&self.room, last);
        self.shown.send_replace(Some(last));
        self.live(&stream, last, Some(first)).await;
    }

    /// The live feed's first consumer, delivering what comes after the stream's last
    /// message, and that message's sequence (retried until the stream is there).
    async fn first_consumer(&self, stream: &Stream<()>) -> (u64, Consumer<OrderedConfig>) {
        let mut backoff = Backoff::new(FIRST_BACKOFF, MAX_BACKOFF);
        loop {
            let config = OrderedConfig {
                filter_subject: String::new(),
                deliver_policy: DeliverPolicy::New,
                ..Default::default()
            };
            match stream.create_consumer(config).await {
                Ok(consumer) => {
                    // A consumer of new messages starts right after the last one.
                    let last = consumer.cached_info().delivered.stream_sequence;
                    return (last, consumer);
                }
                Err(err) => {
                    tracing::warn!(room = %self.room, "cannot open the room's stream: {err}")
                }
            }
            backoff.wait().await;
        }
    }

    /// Shows the newest `history` chat messages with `seq <= last`. Returns false
    /// when the UI is gone.
    async fn replay(&self, stream: &Stream<()>, last: u64) -> bool {
        if self.history == 0 || last == 0 {
            return true;
        }
        let limits = Limits {
            messages: self.history,
            bytes: usize::MAX,
        };
        let filter = subjects::room_messages(&self.room);
        let mut backoff = Backoff::new(FIRST_BACKOFF, MAX_BACKOFF);
        let messages = loop {
            match read_backward(stream, &filter, last + 1, limits).await {
                Ok((messages, _)) => break messages,
                Err(err) => tracing::warn!(room = %self.room, "replay failed: {err}; retrying"),
            }
            backoff.wait().await;
        };
        for m in messages {
            if let Some(event) =
                event::from_stored(&self.room, &m.subject, &m.payload, m.seq, m.time, true)
            {
                if self.events.send(event).await.is_err() {
                    return false;
                }
            }
        }
        true
    }

    /// Shows everything after `last`, forever, starting with consumer `first` when
    /// given (it delivers what comes after `last`).
    async fn live(
        &mut self,
        stream: &Stream<()>,
        mut last: u64,
        mut first: Option<Consumer<OrderedConfig>>,
    ) {
        let mut backoff = Backoff::new(FIRST_BACKOFF, MAX_BACKOFF);
        // The stream's creation time, learnt at its first check.
        let mut created = None;
        // JetStream announces a stream's deletion, and on a cluster its new leaders, on
        // advisory subjects: free to listen to, and immediate. Without permission for
        // them, the periodic check and consumer failures still notice.
        let mut kinds = vec![DELETED];
        if self.js.client().server_info().cluster.is_some() {
            kinds.push(LEADER_ELECTED);
        }
        let mut advisories = futures::stream::SelectAll::new();
        for kind in kinds {
            let subject = format!(
                "$JS.EVENT.ADVISORY.STREAM.{kind}.{}",
                streams::stream_name(&self.room)
            );
            match self.js.client().subscribe(subject).await {
                Ok(subscriber) => advisories.push(subscriber),
                Err(err) => {
                    tracing::warn!(room = %self.room, "cannot follow stream advisories: {err}")
                }
            }
        }
        let mut check =
            tokio::time::interval_at(tokio::time::Instant::now() + STREAM_CHECK, STREAM_CHECK);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let config = OrderedConfig {
                // No filter: the room stream holds only the room's subjects, and an
                // unfiltered consumer is cheaper for the server to deliver from.
                filter_subject: String::new(),
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: last + 1,
                },
                ..Default::default()
            };
            let consumer = match first.take() {
                Some(consumer) => Ok(consumer),
                None => stream.create_consumer(config).await,
            };
            let messages = match consumer {
                Ok(consumer) => {
                    let name = consumer.cached_info().name.clone();
                    let messages = consumer.messages().await.map_err(async_nats::Error::from);
                    messages.map(|messages| (name, messages))
                }
                Err(err) => Err(err.into()),
            };
            let (consumer, mut messages) = match messages {
                Ok(messages) => messages,
                Err(err) => {
                    tracing::warn!(room = %self.room, "cannot start the live feed: {err}");
                    self.same_stream(&mut created, &mut last).await;
                    backoff.wait().await;
                    continue;
                }
            };
            self.reconnects.mark_unchanged();
            let idle = tokio::time::sleep(IDLE_CHECK);
            tokio::pin!(idle);
            loop {
                let next = tokio::select! {
                    next = messages.next() => next,
                    _ = &mut idle => {
                        idle.as_mut().reset(tokio::time::Instant::now() + IDLE_CHECK);
                        if self.js.client().server_info().cluster.is_none() {
                            continue;
                        }
                        match stream.consumer_info(&consumer).await {
                            Ok(info) if info.num_pending == 0 => continue,
                            Ok(info) => {
                                tracing::info!(room = %self.room, last, pending = info.num_pending, "the live feed's consumer holds messages it does not deliver; resuming the live feed");
                                break;
                            }
                            Err(err) => {
                                tracing::info!(room = %self.room, last, "the live feed's consumer does not answer ({err}); resuming the live feed");
                                break;
                            }
                        }
                    }
                    changed = self.reconnects.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        tracing::info!(room = %self.room, last, "reconnected; resuming the live feed");
                        break;
                    }
                    _ = check.tick() => {
                        if self.same_stream(&mut created, &mut last).await {
                            continue;
                        }
                        break;
                    }
                    Some(advisory) = advisories.next() => {
                        let same = self.same_stream(&mut created, &mut last).await;
                        if same && !advisory.subject.contains(LEADER_ELECTED) {
                            continue;
                        }
                        // In a cluster, a new leader means a node went (or came
                        // back): this feed's consumer may have been on it and would
                        // only be missed after two idle heartbeats (30 s). Following
                        // again from `last` costs one consumer.
                        if same {
                            tracing::info!(room = %self.room, last, "the room's stream has a new leader; resuming the live feed");
                        }
                        break;
                    }
                };
                let message = match next {
                    Some(Ok(message)) => message,
                    Some(Err(err)) => {
                        tracing::warn!(room = %self.room, last, "live feed failed: {err}; resuming");
                        let _ = self
                            .events
                            .send(Event::status(
                                State::Resuming,
                                Some(&self.room),
                                format!("live feed of {} interrupted; resuming", self.room),
                            ))
                            .await;
                        break;
                    }
                    None => break,
                };
                backoff.reset();
                idle.as_mut()
                    .reset(tokio::time::Instant::now() + IDLE_CHECK);
                let Ok(info) = message.info() else {
                    tracing::warn!(room = %self.room, "message without JetStream metadata skipped");
                    continue;
                };
                let seq = info.stream_sequence;
                if seq <= last {
                    tracing::debug!(room = %self.room, seq, "already shown; skipped");
                    continue;
                }
                last = seq;
                let time = DateTime::from_timestamp(
                    info.published.unix_timestamp(),
                    info.published.nanosecond(),
                )
                .unwrap_or_default();
                if let Some(event) = event::from_stored(
                    &self.room,
                    message.subject.as_str(),
                    &message.payload,
                    seq,
                    time,
                    false,
                ) {
                    self.own.on_event(&event).await;
                    if self.events.send(event).await.is_err() {
                        return;
                    }
                }
                // Shown once it is queued for the UI, which prints the queue to its end.
                self.echoes.shown(&self.room, seq);
                self.shown.send_replace(Some(seq));
            }
            self.same_stream(&mut created, &mut last).await;
            backoff.wait().await;
        }
    }

    /// Whether the room's stream is still the one the feed follows (`created`).
    ///
    /// A stream deleted and created again (by the next join) starts its sequences
    /// over, and a consumer resumed from `last + 1` would wait silently for a sequence
    /// that may never come. While the stream is gone this waits, saying so once; once
    /// it is back as a new stream, it says so, and `last` and `created` are set so
    /// the feed resumes from the new stream's start. Returns false then; true when
    /// nothing changed (or the server cannot tell now: the next check will).
    async fn same_stream(&mut self, created: &mut Option<i128>, last: &mut u64) -> bool {
        let name = streams::stream_name(&self.room);
        let mut said_gone = false;
        let mut backoff = Backoff::new(FIRST_BACKOFF, MAX_BACKOFF);
        loop {
            match self.js.get_stream(&name).await {
                Ok(stream) => {
                    let info = stream.cached_info();
                    let born = info.created.unix_timestamp_nanos();
                    if *created.get_or_insert(born) == born && info.state.last_sequence >= *last {
                        return true;
                    }
                    tracing::warn!(room = %self.room, last, "the room's stream was recreated; following the new one from its start");
                    *created = Some(born);
                    *last = 0;
                    // Sequences of the old stream mean nothing in the new one.
                    self.echoes.take(&self.room);
                    self.shown.send_replace(Some(0));
                    let message = format!(
                        "the history of {} was reset (its stream was recreated); showing the new one from its start",
                        self.room
                    );
                    let _ = self
                        .events
                        .send(Event::status(
                            State::StreamRecreated,
                            Some(&self.room),
                            message,
                        ))
                        .await;
                    return false;
                }
                Err(err) if is_not_found(&err) => {
                    if !said_gone {
                        said_gone = true;
                        tracing::warn!(room = %self.room, "the room's stream is gone");
                        let message = format!(
                            "the stream of {} was deleted; waiting for it to be created again (the next join does)",
                            self.room
                        );
                        let _ = self
                            .events
                            .send(Event::status(State::StreamGone, Some(&self.room), message))
                            .await;
                    }
                }
                Err(err) => {
                    tracing::debug!(room = %self.room, "cannot check the room's stream: {err}");
                    return true;
                }
            }
            backoff.wait().await;
        }
    }
}
