//! Reliable publishing: a message counts as sent only when JetStream acknowledged it,
//! and every sender's messages are stored in the order they were given.
//!
//! One task owns every message not yet settled, in send order, and publishes them in
//! that order. When an ack does not come (a timeout, the connection lost, no stream
//! answering), retrying only that message would store it behind later ones. So the task
//! goes back to the oldest unsettled message and republishes from there, strictly in
//! order, with the same `Nats-Msg-Id`s: whatever was stored already is recognised by the
//! stream's duplicate window and stored once. The oldest message goes alone first (a
//! probe); the others follow once it is stored. New messages wait behind that backlog,
//! and nothing is published while the connection is down.
//!
//! How many messages may await their ack at once is [`RetryPolicy::window`]. The
//! default, 1, is what keeps every sender's order whatever fails: async-nats queues
//! commands in a channel and, when a connection drops, sends what is still queued on
//! the next one. With several messages in flight, one lost with the old socket can be
//! overtaken by a later one that was still queued (BENCHMARKS.md has the counts).
//! With one in flight, the only message that can be queued is the one whose fate is
//! unknown, and its copies are stored once. A larger window trades that for speed
//! (see BENCHMARKS.md).
//!
//! A message is retried for as long as the connection takes to come back, but not
//! beyond [`RetryPolicy::give_up_after`] from its first publish: past the stream's
//! duplicate window a retry could store it twice. A message given up on is reported
//! "not sent" only when the client knows it was not stored (it was never published, or
//! the stream refused it); otherwise it is "unconfirmed": it may have been stored.
//! [`Publisher::close`] stops at a deadline and reports what is left the same way.
//!
//! What one attempt is, what its failure tells, and when a message is given up on are
//! the workspace's one publish-with-retry (`chat_runtime::publish`); this task adds the
//! order across messages.
//!
//! Memory stays bounded: the task holds at most 1,000 messages, and at most 1,000 more
//! wait in the queue; beyond that [`Publisher::send`] waits.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::context::PublishError;
use async_nats::jetstream::publish::PublishAck;
use async_nats::jetstream::Context;
use async_nats::Subject;
use bytes::Bytes;
use chat_protocol::body::ChatMessage;
use chat_protocol::RoomName;
use chat_runtime::publish::{self, Failure};
use chat_runtime::Backoff;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::echo::Echoes;
use crate::event::Event;

/// Most messages awaiting their ack at once (stale acks of an earlier round included);
/// well under the JetStream context's own limit on unawaited acks (5,000), which would
/// otherwise block the task that awaits them.
const MAX_INFLIGHT: usize = 1000;

/// Most messages queued behind those in flight: a sender faster than JetStream waits
/// in [`Publisher::send`] instead of piling messages up in memory.
const MAX_QUEUED: usize = 1000;

/// Longest pause between two rounds of retries.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How long a message text is when it names a message in a report.
const PREVIEW_CHARS: usize = 40;

/// How hard a publish is tried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// How long to wait for one ack.
    pub ack_timeout: Duration,
    /// Pause before the first round of retries; doubled for each further one (capped
    /// at 5 s) until an ack comes.
    pub backoff: Duration,
    /// How long after its first publish a message is still retried. Must stay under
    /// the room stream's duplicate window (2 minutes), or a retry could store it twice.
    pub give_up_after: Duration,
    /// Most messages awaiting their ack at once (at most 1,000). 1, the default, keeps
    /// every sender's order whatever fails: a message is published once the one before
    /// it is stored. More is faster but leaves a gap (see the module docs).
    pub window: usize,
}

impl RetryPolicy {
    /// The workspace's retry rules (`chat_runtime::publish`) with this policy's delays.
    fn retry(&self) -> publish::Retry {
        publish::Retry {
            first_delay: self.backoff,
            max_delay: MAX_BACKOFF,
            give_up_after: self.give_up_after,
        }
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            ack_timeout: Duration::from_secs(5),
            backoff: Duration::from_millis(250),
            give_up_after: Duration::from_secs(110),
            window: 1,
        }
    }
}

/// Why a message was not confirmed. Messages are named by their text (shortened), which
/// is what the person typed and can recognise.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The text was refused before sending.
    #[error(transparent)]
    Text(#[from] chat_protocol::body::TextError),
    /// The room is not joined.
    #[error("you are not in room {0}; /join it first")]
    NotJoined(RoomName),
    /// Known not to be stored: never published, or refused by the stream.
    #[error("not sent: {text:?} to {room} ({reason})")]
    NotSent {
        /// The start of the message's text.
        text: String,
        /// Its room.
        room: RoomName,
        /// Why.
        reason: String,
    },
    /// Published, but no acknowledgement came: it may or may not have been stored.
    #[error("unconfirmed: {text:?} to {room} may not have been stored ({reason})")]
    Unconfirmed {
        /// The start of the message's text.
        text: String,
        /// Its room.
        room: RoomName,
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
    /// A handle settled through `done` by another stage of the send path (pacing).
    pub(crate) fn new(id: String, done: oneshot::Receiver<Result<u64, SendError>>) -> Self {
        Self { id, done }
    }

    /// Waits for the ack; returns the stream sequence the message was stored at.
    pub async fn acked(self) -> Result<u64, SendError> {
        self.done.await.unwrap_or(Err(SendError::Closed))
    }
}

/// The start of `text`, for naming a message in a report.
pub fn preview(text: &str) -> String {
    let mut chars = text.chars();
    let mut out: String = chars.by_ref().take(PREVIEW_CHARS).collect();
    if chars.next().is_some() {
        out.truncate(out.trim_end().len());
        out.push('…');
    }
    out
}

/// A chat message ready to publish: checked and encoded once, when it was made,
/// with the start of its text that reports name it by.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub room: RoomName,
    /// Cheap to clone for each attempt (shared bytes).
    pub subject: Subject,
    pub id: String,
    /// The JSON body, shared by every attempt.
    pub payload: Bytes,
    pub preview: String,
}

impl Prepared {
    /// Encodes `message` (already checked by [`ChatMessage::new`]) for `subject`.
    pub fn new(room: &RoomName, subject: String, message: &ChatMessage) -> Self {
        Self {
            room: room.clone(),
            subject: subject.into(),
            id: message.id.clone(),
            payload: encode(message),
            preview: preview(&message.text),
        }
    }
}

/// `message` as JSON, in a buffer sized for it at once: the fields around the text
/// take under 200 bytes (a growing buffer was reallocated a few times per message).
fn encode(message: &ChatMessage) -> Bytes {
    let mut json = Vec::with_capacity(message.text.len() + 200);
    serde_json::to_writer(&mut json, message).expect("a ChatMessage serializes");
    json.into()
}

/// Told a message's fate once it is settled (acknowledged, or given up on). A
/// callback rather than a channel, so that a stage in front of the publisher (pacing)
/// learns it without a task of its own per message waiting for it.
pub(crate) type Settled = Box<dyn FnOnce(Result<u64, SendError>) + Send>;

struct Outgoing {
    message: Prepared,
    settled: Settled,
    /// Counts the message as unconfirmed for as long as it lives.
    _unconfirmed: Unconfirmed,
}

/// One message counted in [`Publisher::unconfirmed`], from the moment it is handed to
/// the publisher until it is settled (acknowledged or given up on), however that ends:
/// the count goes down when the message is dropped.
struct Unconfirmed(Arc<AtomicUsize>);

impl Unconfirmed {
    fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(count.clone())
    }
}

impl Drop for Unconfirmed {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// An unsettled message and what its attempts so far tell.
struct Entry {
    out: Outgoing,
    /// When it was first published; none while it never was.
    first: Option<Instant>,
    /// Attempts whose fate is unknown (published, and no ack or refusal came back):
    /// while there is one, the message may be stored.
    unknown: u32,
}

/// What the publishing task is handed.
enum Job {
    Send(Outgoing),
    Flush(oneshot::Sender<Vec<SendError>>),
    Close(Instant, oneshot::Sender<Vec<SendError>>),
}

/// Handle to the publishing task.
#[derive(Debug, Clone)]
pub struct Publisher {
    jobs: mpsc::Sender<Job>,
    unconfirmed: Arc<AtomicUsize>,
}

/// An ack being awaited: which message, which round of publishing, whether the attempt
/// left the client at all, and its outcome.
type Ack = BoxFuture<'static, (u64, u64, bool, Result<PublishAck, PublishError>)>;

impl Publisher {
    /// Starts the publishing task. Failures are also reported on `events`; every
    /// acknowledged message is recorded in `echoes` until its room's feed shows it.
    /// `reconnects` changes at every reconnect (acks pending then are lost).
    pub fn start(
        js: Context,
        policy: RetryPolicy,
        events: mpsc::Sender<Event>,
        reconnects: watch::Receiver<u64>,
        echoes: Arc<Echoes>,
    ) -> Self {
        let (jobs, rx) = mpsc::channel(MAX_QUEUED);
        // The ack future's own timer is the ack timeout: no second timer per message.
        let mut js = js;
        js.set_timeout(policy.ack_timeout);
        let task = Task {
            client: js.client(),
            js,
            policy,
            events,
            echoes,
            entries: BTreeMap::new(),
            next_key: 0,
            cursor: 0,
            in_flight: 0,
            round: 0,
            probe_next: false,
            probing: None,
            retry_at: None,
            backoff: policy.retry().backoff(),
            acks: FuturesUnordered::new(),
            failed: Vec::new(),
            flushes: Vec::new(),
            closing: None,
        };
        tokio::spawn(task.run(rx, reconnects));
        Self {
            jobs,
            unconfirmed: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// How many messages sent so far JetStream has not acknowledged yet (and that are
    /// not given up on): what a user still waits for, shown while the server is away.
    pub fn unconfirmed(&self) -> usize {
        self.unconfirmed.load(Ordering::Relaxed)
    }

    /// Queues `message` for `subject`, behind every message queued before it (it is
    /// published in that order); waits while the queue is full.
    pub async fn send(
        &self,
        room: &RoomName,
        subject: String,
        message: &ChatMessage,
    ) -> SendHandle {
        let (done, rx) = oneshot::channel();
        let message = Prepared::new(room, subject, message);
        let id = message.id.clone();
        self.submit(
            message,
            Box::new(move |result| {
                let _ = done.send(result);
            }),
        )
        .await;
        SendHandle { id, done: rx }
    }

    /// Queues a prepared message, behind every message queued before it; `settled`
    /// is told its fate (called once, from the publishing task: it must not block).
    /// Waits while the queue is full.
    pub(crate) async fn submit(&self, message: Prepared, settled: Settled) {
        let out = Outgoing {
            message,
            settled,
            _unconfirmed: Unconfirmed::new(&self.unconfirmed),
        };
        if let Err(mpsc::error::SendError(Job::Send(out))) = self.jobs.send(Job::Send(out)).await {
            (out.settled)(Err(SendError::Closed)); // the task is gone
        }
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

    /// Waits until every message is settled, but not beyond `deadline`: what is left
    /// then is given up on. Returns those given up on since the previous flush. Nothing
    /// is published afterwards.
    pub async fn close(&self, deadline: Instant) -> Vec<SendError> {
        let (tx, rx) = oneshot::channel();
        if self.jobs.send(Job::Close(deadline, tx)).await.is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }
}

struct Task {
    js: Context,
    client: async_nats::Client,
    policy: RetryPolicy,
    events: mpsc::Sender<Event>,
    echoes: Arc<Echoes>,
    /// Every unsettled message, by send order.
    entries: BTreeMap<u64, Entry>,
    next_key: u64,
    /// Messages from this key on are not yet published in the current round.
    cursor: u64,
    /// Messages published in the current round and not settled (those below `cursor`).
    in_flight: usize,
    /// Bumped whenever publishing starts over from the oldest message: a failed ack of
    /// an earlier round says nothing any more (its success still counts).
    round: u64,
    /// The next message published (the oldest, after starting over) goes alone.
    probe_next: bool,
    /// The oldest message, republished alone: the rest wait until it is settled.
    probing: Option<u64>,
    /// Set while publishing is paused until a retry.
    retry_at: Option<Instant>,
    backoff: Backoff,
    acks: FuturesUnordered<Ack>,
    /// Given up on since the last flush.
    failed: Vec<SendError>,
    flushes: Vec<oneshot::Sender<Vec<SendError>>>,
    closing: Option<(Instant, oneshot::Sender<Vec<SendError>>)>,
}

impl Task {
    async fn run(mut self, mut jobs: mpsc::Receiver<Job>, mut reconnects: watch::Receiver<u64>) {
        let mut open = true;
        let mut watching = true;
        let mut batch = Vec::new();
        loop {
            self.publish_due().await;
            self.answer_flushes();
            if self.closing.is_some() && self.entries.is_empty() {
                break;
            }
            if !open && self.entries.is_empty() && self.acks.is_empty() {
                return;
            }
            let retry_at = self.retry_at;
            let deadline = self.closing.as_ref().map(|(d, _)| *d);
            let space = MAX_INFLIGHT.saturating_sub(self.entries.len());
            tokio::select! {
                // Jobs are taken in batches, which frees their queue slots at once: a
                // sender waiting in `send` is woken once per batch, not per message.
                taken = jobs.recv_many(&mut batch, space), if open && space > 0 && self.closing.is_none() => {
                    open = taken > 0;
                    for job in batch.drain(..) {
                        self.take(job);
                    }
                }
                Some((key, round, left, result)) = self.acks.next(), if !self.acks.is_empty() => {
                    self.settle(key, round, left, result).await;
                }
                changed = reconnects.changed(), if watching => {
                    // Without the connection callback (the client dropped), timeouts
                    // settle the rest.
                    watching = changed.is_ok();
                    if watching && !self.entries.is_empty() {
                        // Acks pending on the old connection will not come.
                        tracing::info!(unsettled = self.entries.len(), "reconnected; republishing from the oldest unacknowledged message");
                        self.start_over(false);
                    }
                }
                _ = sleep_until(retry_at), if retry_at.is_some() => {
                    self.retry_at = None;
                }
                _ = sleep_until(deadline), if deadline.is_some() => {
                    break;
                }
            }
        }
        // Closing: whatever is left is given up on, and nothing more is published.
        let reason = "the client quit before it was acknowledged";
        for (_, entry) in std::mem::take(&mut self.entries) {
            self.give_up(entry, reason.to_string()).await;
        }
        self.answer_flushes();
        if let Some((_, reply)) = self.closing.take() {
            let _ = reply.send(std::mem::take(&mut self.failed));
        }
    }

    fn take(&mut self, job: Job) {
        match job {
            Job::Send(out) => {
                self.entries.insert(
                    self.next_key,
                    Entry {
                        out,
                        first: None,
                        unknown: 0,
                    },
                );
                self.next_key += 1;
            }
            Job::Flush(tx) => self.flushes.push(tx),
            Job::Close(deadline, tx) => self.closing = Some((deadline, tx)),
        }
    }

    fn answer_flushes(&mut self) {
        if self.entries.is_empty() && !self.flushes.is_empty() {
            for tx in self.flushes.drain(..) {
                let _ = tx.send(std::mem::take(&mut self.failed));
            }
        }
    }

    /// Publishes, in order, every message not yet published in this round, unless
    /// paused, probing, or the connection is down.
    async fn publish_due(&mut self) {
        if self.retry_at.is_some() || self.probing.is_some() {
            return;
        }
        while self.acks.len() < MAX_INFLIGHT && self.in_flight < self.policy.window.max(1) {
            let Some(key) = self.entries.range(self.cursor..).next().map(|(k, _)| *k) else {
                return;
            };
            if self.client.connection_state() != async_nats::connection::State::Connected {
                // Published now, it would wait in async-nats' queue and could overtake
                // an earlier message lost with the old connection.
                self.start_over(true);
                return;
            }
            let entry = self.entries.get_mut(&key).expect("key just found");
            let now = Instant::now();
            let retry = self.policy.retry();
            if entry.first.is_some_and(|first| retry.gives_up(first, now)) {
                let entry = self.entries.remove(&key).expect("key just found");
                let reason = format!(
                    "no acknowledgement for {:?}; a retry now could store it twice",
                    self.policy.give_up_after
                );
                self.give_up(entry, reason).await;
                continue;
            }
            entry.first.get_or_insert(now);
            self.cursor = key + 1;
            self.in_flight += 1;
            let round = self.round;
            let message = &entry.out.message;
            let attempt = publish::send(
                &self.js,
                message.subject.clone(),
                message.payload.clone(),
                &message.id,
            );
            match attempt.await {
                Ok(ack) => {
                    entry.unknown += 1;
                    self.acks
                        .push(async move { (key, round, true, ack.await) }.boxed());
                }
                Err(err) => self
                    .acks
                    .push(futures::future::ready((key, round, false, Err(err))).boxed()),
            }
            if std::mem::take(&mut self.probe_next) {
                self.probing = Some(key);
                return;
            }
        }
    }

    /// Pauses publishing (for the next backoff delay if `wait`), then starts over from
    /// the oldest unsettled message, which goes alone until it is acknowledged.
    fn start_over(&mut self, wait: bool) {
        self.round += 1;
        self.cursor = 0;
        self.in_flight = 0;
        self.probe_next = true;
        self.probing = None;
        let delay = self.backoff.next_delay();
        self.retry_at = Some(Instant::now() + if wait { delay } else { Duration::ZERO });
    }

    async fn settle(
        &mut self,
        key: u64,
        round: u64,
        left: bool,
        result: Result<PublishAck, PublishError>,
    ) {
        let current = round == self.round;
        if self.probing == Some(key) && (result.is_ok() || !self.entries.contains_key(&key)) {
            // The probe is stored (by whichever attempt): the rest may follow.
            self.probing = None;
        }
        match result {
            Ok(ack) => {
                if current {
                    self.backoff.reset();
                }
                let Some(entry) = self.remove(key) else {
                    return; // settled by another attempt's ack
                };
                let Outgoing {
                    message, settled, ..
                } = entry.out;
                if ack.duplicate {
                    tracing::debug!(id = %message.id, seq = ack.sequence, "retry was a duplicate; stored once");
                }
                self.echoes
                    .acked(&message.room, ack.sequence, message.preview);
                settled(Ok(ack.sequence));
            }
            Err(err) => {
                let Some(entry) = self.entries.get_mut(&key) else {
                    return;
                };
                // No responders (no stream took it) and a refusal are answers: that
                // attempt was not stored. A timeout or a lost connection is not.
                let failure = Failure::of(&err);
                if left && failure != Failure::Unknown {
                    entry.unknown = entry.unknown.saturating_sub(1);
                }
                if !current {
                    return; // an earlier round's failure: this round decides
                }
                if failure == Failure::Refused {
                    // Retrying cannot help (too large, or the stream's error reply).
                    // Later messages were published behind it and settle as they are.
                    let entry = self.remove(key).expect("entry just found");
                    self.give_up(entry, err.to_string()).await;
                    return;
                }
                tracing::info!(id = %entry.out.message.id, "publish not confirmed ({err}); republishing in order from the oldest unacknowledged message");
                self.start_over(true);
            }
        }
    }

    /// Takes a settled message out, keeping count of those in flight.
    fn remove(&mut self, key: u64) -> Option<Entry> {
        let entry = self.entries.remove(&key)?;
        if key < self.cursor {
            self.in_flight -= 1;
        }
        Some(entry)
    }

    async fn give_up(&mut self, entry: Entry, reason: String) {
        let out = entry.out;
        let (id, text, room) = (out.message.id, out.message.preview, out.message.room);
        let err = if entry.unknown > 0 {
            SendError::Unconfirmed { text, room, reason }
        } else if entry.first.is_none() {
            SendError::NotSent {
                text,
                room,
                reason: "never published: the connection did not come back in time".into(),
            }
        } else {
            SendError::NotSent { text, room, reason }
        };
        tracing::warn!(%id, "{err}");
        let _ = self.events.send(Event::error(&err)).await;
        self.failed.push(err.clone());
        (out.settled)(Err(err));
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
