//! One room's feed: replay the last N chat messages, then go live, with no gap and
//! no duplicate.
//!
//! The stream's last sequence `L` is read first. The replay is the newest N chat
//! messages with `seq <= L`; the live feed is an ordered consumer starting at `L + 1`
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

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::pull::OrderedConfig;
use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::stream::Stream;
use async_nats::jetstream::Context;
use chat_protocol::body::decode_room_payload;
use chat_protocol::reading::{read_backward, Limits};
use chat_protocol::{streams, subjects, RoomName};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use tokio::sync::{mpsc, watch};

use crate::echo::Echoes;
use crate::event::{self, Event, State};

/// Longest pause between two attempts to (re)open the stream or its consumer.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

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
}

impl Feed {
    /// Runs the feed until the task is aborted (on leave) or the UI goes away.
    ///
    /// `welcome` is sent once the stream's last sequence is known, so that anything
    /// published after the user saw it is certain to be shown live. Opening the
    /// stream reads its info, which holds that sequence: one request, not two.
    pub async fn run(mut self, welcome: Event) {
        let stream = self.open_stream().await;
        let last = stream.cached_info().state.last_sequence;
        if self.events.send(welcome).await.is_err() || !self.replay(&stream, last).await {
            return;
        }
        self.echoes.shown(&self.room, last);
        self.shown.send_replace(Some(last));
        self.live(&stream, last).await;
    }

    async fn open_stream(&self) -> Stream {
        let name = streams::stream_name(&self.room);
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.js.get_stream(&name).await {
                Ok(stream) => return stream,
                Err(err) => tracing::warn!(room = %self.room, "cannot open stream {name}: {err}"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Shows the newest `history` chat messages with `seq <= last`. Returns false
    /// when the UI is gone.
    async fn replay(&self, stream: &Stream, last: u64) -> bool {
        if self.history == 0 || last == 0 {
            return true;
        }
        let limits = Limits {
            messages: self.history,
            bytes: usize::MAX,
        };
        let filter = subjects::room_messages(&self.room);
        let mut backoff = Duration::from_millis(100);
        let messages = loop {
            match read_backward(stream, &filter, last + 1, limits).await {
                Ok((messages, _)) => break messages,
                Err(err) => tracing::warn!(room = %self.room, "replay failed: {err}; retrying"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        };
        for m in messages {
            if let Some(event) = self.decode(&m.subject, &m.payload, m.seq, m.time, true) {
                if self.events.send(event).await.is_err() {
                    return false;
                }
            }
        }
        true
    }

    /// Shows everything after `last`, forever.
    async fn live(&mut self, stream: &Stream, mut last: u64) {
        let mut backoff = Duration::from_millis(100);
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
            let messages = match stream.create_consumer(config).await {
                Ok(consumer) => consumer.messages().await.map_err(|e| e.to_string()),
                Err(err) => Err(err.to_string()),
            };
            let mut messages = match messages {
                Ok(messages) => messages,
                Err(err) => {
                    tracing::warn!(room = %self.room, "cannot start the live feed: {err}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            };
            self.reconnects.mark_unchanged();
            loop {
                let next = tokio::select! {
                    next = messages.next() => next,
                    changed = self.reconnects.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        tracing::info!(room = %self.room, last, "reconnected; resuming the live feed");
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
                backoff = Duration::from_millis(100);
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
                if let Some(event) =
                    self.decode(message.subject.as_str(), &message.payload, seq, time, false)
                {
                    if self.events.send(event).await.is_err() {
                        return;
                    }
                }
                // Shown once it is queued for the UI, which prints the queue to its end.
                self.echoes.shown(&self.room, seq);
                self.shown.send_replace(Some(seq));
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    fn decode(
        &self,
        subject: &str,
        payload: &[u8],
        seq: u64,
        time: DateTime<Utc>,
        replay: bool,
    ) -> Option<Event> {
        match decode_room_payload(subject, payload) {
            Ok(payload) => Some(event::from_payload(&self.room, payload, seq, time, replay)),
            Err(err) => {
                tracing::warn!(room = %self.room, seq, "skipped message: {err}");
                None
            }
        }
    }
}
