//! A whole replay (`#all_messages`, `#my_messages`) read straight from the room's
//! stream.
//!
//! The history worker answers `chat.replay.<room>` with the plan (stream, filter, first
//! and last sequence: docs/protocol.md "Replay"); the client then reads that range
//! with an ordered consumer of its own, as fast as a raw consumer: one hop from the
//! server, flow-controlled by the consumer's pulls (at most one batch in flight), under
//! the client's own permissions and into its own inbox. Deleted messages are gone from
//! the stream, so they are never shown.
//!
//! The end is known without waiting: the replay stops at the plan's last sequence (a
//! busy room does not make it chase new messages), or at the first message with
//! nothing pending after it. Should the last messages be deleted while the replay
//! runs, a quiet consumer is asked how much it still holds: nothing means the end.
//! A consumer that fails or holds messages it does not deliver is created again from
//! the first sequence not yet shown: no gap, no duplicate.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use async_nats::jetstream::consumer::pull::{Ordered, OrderedConfig, OrderedError};
use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::stream::Stream;
use chat_protocol::body::{ReplayPlan, ReplayRequest};
use chat_protocol::{subjects, RoomName, UserName};
use chat_runtime::reading;
use chrono::DateTime;
use futures::{FutureExt, StreamExt};

use crate::call::{self, Malformed, RequestError};
use crate::event::{self, Event};
use crate::history::{retrying, SERVICE};

/// How long the consumer may stay silent before it is asked whether anything is left.
const QUIET: Duration = Duration::from_secs(1);

/// Consumers created again in a row, with no message in between (after a failure, or
/// holding messages it does not deliver), before the replay gives up.
const MAX_RESUMES: u32 = 5;

/// One room's replay: the events of the messages the plan covers, oldest first.
pub(crate) struct Replay {
    room: RoomName,
    stream: Stream<()>,
    config: OrderedConfig,
    /// The plan's last sequence.
    end: u64,
    /// The first sequence not yet looked at.
    next: u64,
    /// The consumer's messages and its name; none once the replay is over.
    reading: Option<(Ordered, String)>,
    /// A failure or end of the consumer met by [`Replay::next_ready`], for
    /// [`Replay::next`] to handle.
    early: Option<Option<Result<jetstream::Message, OrderedError>>>,
    resumes: u32,
}

impl Replay {
    /// Asks the history worker for the plan of `room`'s replay (only `user`'s chat
    /// messages when given; asked again, like a page, when no worker answers) and
    /// starts reading it. `max_batch` bounds the messages in flight (none: the
    /// client library's default).
    pub(crate) async fn open(
        client: &async_nats::Client,
        room: &RoomName,
        user: Option<&UserName>,
        max_batch: Option<i64>,
        timeout: Duration,
    ) -> Result<Self, RequestError> {
        let request = ReplayRequest {
            user: user.cloned(),
            after: None,
        };
        let ask = || {
            let (client, subject) = (client.clone(), subjects::replay(room));
            let body = call::body(&request);
            tokio::spawn(async move {
                call::request::<ReplayPlan>(&client, SERVICE, subject, body, timeout).await
            })
        };
        let plan = retrying(room, 0, ask(), ask).await?;
        if !plan.answers(room, &request) {
            return Err(RequestError::Malformed(
                SERVICE,
                Malformed::Contract(format!(
                    "a replay plan for another stream or filter ({} {:?})",
                    plan.stream, plan.filter
                )),
            ));
        }
        let stream = async_nats::jetstream::new(client.clone())
            .get_stream_no_info(&plan.stream)
            .await
            .map_err(failed)?;
        let mut config = OrderedConfig {
            filter_subject: plan.filter.unwrap_or_default(),
            ..Default::default()
        };
        if let Some(max_batch) = max_batch {
            config.max_batch = max_batch;
        }
        let mut replay = Self {
            room: room.clone(),
            stream,
            config,
            end: plan.end.unwrap_or(0),
            next: plan.start,
            reading: None,
            early: None,
            resumes: 0,
        };
        if plan.end.is_some() {
            replay.read_from_next().await?;
        }
        Ok(replay)
    }

    /// The next event of the replay, or none once it is over.
    pub(crate) async fn next(&mut self) -> Result<Option<Event>, RequestError> {
        loop {
            let Some((messages, name)) = self.reading.as_mut() else {
                return Ok(None);
            };
            // A message already received needs no timer: most of them are, the
            // server sends a whole pull ahead.
            let ready = match self.early.take() {
                Some(item) => Ok(item),
                None => match messages.next().now_or_never() {
                    Some(item) => Ok(item),
                    None => tokio::time::timeout(QUIET, messages.next()).await,
                },
            };
            match ready {
                Ok(Some(Ok(message))) => {
                    if let Some(event) = self.show(message)? {
                        return Ok(Some(event));
                    }
                }
                Ok(Some(Err(err))) => {
                    tracing::warn!(room = %self.room, next = self.next, "replay consumer failed ({err}); resuming");
                    self.resume().await?;
                }
                Ok(None) => self.resume().await?,
                Err(_) => match self.stream.consumer_info(name.as_str()).await {
                    // Everything up to the end was deleted meanwhile.
                    Ok(info) if info.num_pending == 0 => self.finish(),
                    Ok(info) => {
                        tracing::info!(room = %self.room, next = self.next, pending = info.num_pending, "replay consumer holds messages it does not deliver; resuming");
                        self.resume().await?;
                    }
                    Err(err) => {
                        tracing::info!(room = %self.room, next = self.next, "replay consumer does not answer ({err}); resuming");
                        self.resume().await?;
                    }
                },
            }
        }
    }

    /// The next event among the messages already received, without waiting: none
    /// when there is none now (or the replay is over, or it has to resume: [`next`]
    /// does that). Lets a caller hand a run of events to the UI at once, which wakes
    /// it once rather than once per message.
    ///
    /// [`next`]: Self::next
    pub(crate) fn next_ready(&mut self) -> Result<Option<Event>, RequestError> {
        while self.early.is_none() {
            let Some((messages, _)) = self.reading.as_mut() else {
                return Ok(None);
            };
            match messages.next().now_or_never() {
                None => return Ok(None),
                Some(Some(Ok(message))) => {
                    if let Some(event) = self.show(message)? {
                        return Ok(Some(event));
                    }
                }
                // A failure or the end: kept for `next`, which resumes.
                Some(item) => self.early = Some(item),
            }
        }
        Ok(None)
    }

    /// Whether the replay is over (nothing more will come from [`next`]).
    ///
    /// [`next`]: Self::next
    pub(crate) fn is_over(&self) -> bool {
        self.reading.is_none() && self.early.is_none()
    }

    /// Checks one received message: its event, or none when it is skipped (already
    /// shown, past the end, or not valid). Ends the replay at the plan's end.
    fn show(&mut self, message: jetstream::Message) -> Result<Option<Event>, RequestError> {
        let Some((_, name)) = self.reading.as_mut() else {
            return Ok(None);
        };
        let info = message
            .info()
            .map_err(|e| failed(reading::ReadError::Metadata(e)))?;
        if info.consumer != name.as_str() {
            // The library created the consumer again (after a gap or its loss):
            // the one to delete at the end is the one delivering now.
            *name = info.consumer.to_string();
        }
        let seq = info.stream_sequence;
        if seq < self.next {
            return Ok(None);
        }
        if seq > self.end {
            self.finish();
            return Ok(None);
        }
        self.next = seq + 1;
        self.resumes = 0;
        if seq == self.end || info.pending == 0 {
            self.finish();
        }
        let time =
            DateTime::from_timestamp(info.published.unix_timestamp(), info.published.nanosecond())
                .unwrap_or_default();
        Ok(event::from_stored(
            &self.room,
            &message.subject,
            &message.payload,
            seq,
            time,
            true,
        ))
    }

    /// Creates a consumer reading from `next`; a consumer with nothing to deliver
    /// ends the replay at once.
    async fn read_from_next(&mut self) -> Result<(), RequestError> {
        self.finish();
        let config = OrderedConfig {
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: self.next,
            },
            ..self.config.clone()
        };
        let consumer = self.stream.create_consumer(config).await.map_err(failed)?;
        let name = consumer.cached_info().name.clone();
        if consumer.cached_info().num_pending == 0 {
            self.delete(name);
            return Ok(());
        }
        let messages = consumer.messages().await.map_err(failed)?;
        self.reading = Some((messages, name));
        Ok(())
    }

    /// Follows again from `next` with a new consumer, a bounded number of times.
    async fn resume(&mut self) -> Result<(), RequestError> {
        self.resumes += 1;
        if self.resumes > MAX_RESUMES {
            self.finish();
            return Err(failed(reading::ReadError::Timeout));
        }
        self.read_from_next().await
    }

    /// Stops reading and deletes the consumer (in the background; an ordered consumer
    /// left behind goes by itself after its inactivity threshold, 30 s).
    fn finish(&mut self) {
        self.early = None;
        if let Some((_, name)) = self.reading.take() {
            self.delete(name);
        }
    }

    fn delete(&self, name: String) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let stream = self.stream.clone();
        runtime.spawn(async move {
            if let Err(err) = stream.delete_consumer(&name).await {
                tracing::debug!(consumer = %name, "cannot delete a replay consumer: {err}");
            }
        });
    }
}

impl Drop for Replay {
    /// A replay given up (the UI went away, an error) leaves no consumer behind.
    fn drop(&mut self) {
        self.finish();
    }
}

/// A failure reading the room's stream.
fn failed(err: impl std::error::Error + Send + Sync + 'static) -> RequestError {
    RequestError::Nats(SERVICE, Arc::new(err))
}
