//! Reliable publishing: a message counts as sent only when JetStream acknowledged it.
//!
//! [`Publisher::send`] publishes each message once, right away, in the caller's task,
//! so messages leave in the order they were given (typing order) and without a hop
//! through another task. One task then owns every sent message: it waits for the acks
//! without holding later messages back (pipelining). A message whose ack times out or
//! fails is published again with the same `Nats-Msg-Id`, so the stream's duplicate
//! window stores it once however often it is retried; after a bounded number of
//! attempts it is reported as unconfirmed. [`Publisher::flush`] waits until every
//! earlier message is settled.
//!
//! Memory stays bounded: at most 1,000 messages are watched by the task and at most
//! 1,000 more wait to be handed to it; beyond that [`Publisher::send`] waits. The ack
//! timeout is the JetStream context's own (one timer per message, not two).

use std::time::Duration;

use async_nats::jetstream::context::{PublishAckFuture, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::Context;
use async_nats::Subject;
use bytes::Bytes;
use chat_protocol::body::ChatMessage;
use chat_protocol::RoomName;
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use tokio::sync::{mpsc, oneshot};

use crate::event::Event;

/// Most messages awaiting their ack at once; later ones wait in the queue, in order.
/// Well under the JetStream context's own limit on unawaited acks (5,000).
const MAX_INFLIGHT: usize = 1000;

/// Most messages queued behind those in flight: a sender faster than JetStream waits
/// in [`Publisher::send`] instead of piling messages up in memory.
const MAX_QUEUED: usize = 1000;

/// How hard a publish is tried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// How long to wait for one ack.
    pub ack_timeout: Duration,
    /// Most attempts per message (the first publish included).
    pub max_attempts: u32,
    /// Pause before the first retry; doubled for each further one (capped at 5 s).
    pub backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            ack_timeout: Duration::from_secs(5),
            max_attempts: 8,
            backoff: Duration::from_millis(250),
        }
    }
}

/// Why a message was not confirmed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The text was refused before sending.
    #[error(transparent)]
    Text(#[from] chat_protocol::body::TextError),
    /// The room is not joined.
    #[error("you are not in room {0}; /join it first")]
    NotJoined(RoomName),
    /// Every attempt failed.
    #[error("message {id} to {room} was not confirmed after {attempts} attempts: {reason}")]
    Unconfirmed {
        /// The message id.
        id: String,
        /// Its room.
        room: RoomName,
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        reason: String,
    },
    /// The client is closing.
    #[error("the client is closed; the message was not sent")]
    Closed,
}

/// A message handed to the publisher; await [`SendHandle::acked`] for its fate.
#[derive(Debug)]
pub struct SendHandle {
    /// The message id (also its `Nats-Msg-Id`).
    pub id: String,
    done: oneshot::Receiver<Result<u64, SendError>>,
}

impl SendHandle {
    /// Waits for the ack; returns the stream sequence the message was stored at.
    pub async fn acked(self) -> Result<u64, SendError> {
        self.done.await.unwrap_or(Err(SendError::Closed))
    }
}

struct Outgoing {
    room: RoomName,
    /// Cheap to clone for each attempt (shared bytes).
    subject: Subject,
    id: String,
    payload: Bytes,
    done: oneshot::Sender<Result<u64, SendError>>,
}

/// What the publishing task is handed.
enum Job {
    /// A message already published once by [`Publisher::send`], with that attempt.
    Send(Outgoing, Attempt),
    Flush(oneshot::Sender<Vec<SendError>>),
}

/// Handle to the publishing task.
#[derive(Debug, Clone)]
pub struct Publisher {
    js: Context,
    jobs: mpsc::Sender<Job>,
}

/// One publish of a message: the ack to wait for, or why it could not even be sent.
type Attempt = Result<PublishAckFuture, async_nats::jetstream::context::PublishError>;

impl Publisher {
    /// Starts the publishing task; failures are also reported on `events`.
    pub fn start(js: Context, policy: RetryPolicy, events: mpsc::Sender<Event>) -> Self {
        let (jobs, rx) = mpsc::channel(MAX_QUEUED);
        // The ack future's own timer is the ack timeout: no second timer per message.
        let mut js = js;
        js.set_timeout(policy.ack_timeout);
        tokio::spawn(run(js.clone(), policy, rx, events));
        Self { js, jobs }
    }

    /// Publishes `message` on `subject` (once, right away, from the caller's task: the
    /// message leaves without waiting for another task) and queues it for its ack,
    /// behind every message queued before it; waits while the queue is full.
    pub async fn send(
        &self,
        room: &RoomName,
        subject: String,
        message: &ChatMessage,
    ) -> SendHandle {
        let (done, rx) = oneshot::channel();
        let id = message.id.clone();
        let payload = Bytes::from(serde_json::to_vec(message).expect("a ChatMessage serializes"));
        let out = Outgoing {
            room: room.clone(),
            subject: subject.into(),
            id: id.clone(),
            payload,
            done,
        };
        let first = publish(&self.js, &out).await;
        // If the task is gone, `done` is dropped and `acked` reports Closed.
        let _ = self.jobs.send(Job::Send(out, first)).await;
        SendHandle { id, done: rx }
    }

    /// Waits until every message queued so far is acknowledged or given up on, and
    /// returns those given up on since the previous flush.
    pub async fn flush(&self) -> Vec<SendError> {
        let (tx, rx) = oneshot::channel();
        if self.jobs.send(Job::Flush(tx)).await.is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }
}

async fn run(
    js: Context,
    policy: RetryPolicy,
    mut jobs: mpsc::Receiver<Job>,
    events: mpsc::Sender<Event>,
) {
    let mut inflight = FuturesUnordered::new();
    let mut flushes: Vec<oneshot::Sender<Vec<SendError>>> = Vec::new();
    let mut failed = Vec::new();
    let mut open = true;
    let mut batch = Vec::new();
    while open || !inflight.is_empty() {
        tokio::select! {
            // Bounded: the JetStream context blocks new publishes while too many acks
            // are unawaited, and the acks are only awaited in the other branch. Jobs
            // are taken in batches, which frees their queue slots at once: a sender
            // waiting in `send` is woken once per batch, not once per message.
            taken = jobs.recv_many(&mut batch, MAX_INFLIGHT - inflight.len()),
                if open && inflight.len() < MAX_INFLIGHT =>
            {
                open = taken > 0;
                for job in batch.drain(..) {
                    match job {
                        Job::Send(out, first) => inflight.push(confirm(&js, policy, out, first)),
                        Job::Flush(tx) => flushes.push(tx),
                    }
                }
            }
            Some((out, result)) = inflight.next(), if !inflight.is_empty() => {
                let out: Outgoing = out;
                if let Err(err) = &result {
                    tracing::warn!(id = %out.id, room = %out.room, "{err}");
                    let _ = events.send(Event::error(err)).await;
                    failed.push(err.clone());
                }
                let _ = out.done.send(result);
            }
        }
        if inflight.is_empty() && !flushes.is_empty() {
            for tx in flushes.drain(..) {
                let _ = tx.send(std::mem::take(&mut failed));
            }
        }
    }
}

async fn publish(js: &Context, out: &Outgoing) -> Attempt {
    js.send_publish(
        out.subject.clone(),
        PublishMessage::build()
            .payload(out.payload.clone())
            .message_id(&out.id),
    )
    .await
}

/// Waits for `first`'s ack, republishing with the same id on failure.
async fn confirm(
    js: &Context,
    policy: RetryPolicy,
    out: Outgoing,
    first: Attempt,
) -> (Outgoing, Result<u64, SendError>) {
    let mut pending = first;
    let mut backoff = policy.backoff;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let reason = match pending {
            Ok(ack) => match ack.await {
                Ok(ack) => {
                    if ack.duplicate {
                        tracing::debug!(id = %out.id, seq = ack.sequence, "retry was a duplicate; stored once");
                    }
                    return (out, Ok(ack.sequence));
                }
                Err(err) if err.kind() == PublishErrorKind::TimedOut => {
                    format!("no ack within {:?}", policy.ack_timeout)
                }
                Err(err) => err.to_string(),
            },
            Err(err) if err.kind() == PublishErrorKind::MaxPayloadExceeded => {
                let err = out.unconfirmed(attempt, err.to_string());
                return (out, Err(err));
            }
            Err(err) => err.to_string(),
        };
        if attempt >= policy.max_attempts {
            let err = out.unconfirmed(attempt, reason);
            return (out, Err(err));
        }
        tracing::info!(id = %out.id, attempt, "publish not confirmed ({reason}); retrying with the same id");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
        pending = publish(js, &out).await;
    }
}

impl Outgoing {
    fn unconfirmed(&self, attempts: u32, reason: String) -> SendError {
        SendError::Unconfirmed {
            id: self.id.clone(),
            room: self.room.clone(),
            attempts,
            reason,
        }
    }
}
