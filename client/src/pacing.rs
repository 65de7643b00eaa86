//! Pacing: the client keeps its own messages within the allowance the moderation
//! worker enforces, so that a paste of a hundred lines goes out in order at the
//! allowed rate instead of getting its sender muted for flooding.
//!
//! The allowance is a token bucket (a burst at once, then so many per second: 20 and
//! 5 by default, then what the user's standing says). Every chat message goes through
//! one [`Pacer`] task, in send order: it takes a token (waiting for the next one when
//! the bucket is empty) and hands the message to the [`Publisher`], which publishes and
//! retries it as before. Without an allowance (pacing off) there is no token to wait
//! for, and [`Pacer::send`] hands the message to the publisher itself. The caller
//! gets its [`SendHandle`] at once, so commands typed
//! behind a long paste are not held up; the handle settles when JetStream acknowledged
//! the message.
//!
//! The bucket is kept a little inside the allowance ([`Bucket::new`]): messages reach
//! the server with some jitter, and the server's bucket may not be quite full. Nothing
//! is released while the connection is down, so messages do not pile up in the
//! publisher and go out in one burst when it comes back; nor while the publisher's
//! window is full, so a slow acknowledgement cannot gather paced messages that would
//! then reach the server together, over the allowance. The first message waits (at
//! most 2 s) for the user's standing after the login, so that an allowance stricter
//! than the default is known before a burst goes out.
//!
//! [`Progress`] counts a *batch*: messages queued since the pacer was last idle, and
//! how many of them JetStream has settled. UIs show it (`sending 37/100`) while the
//! batch had to wait for tokens; line mode and the plain editor get a few `sending`
//! status events instead of a line per message.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chat_protocol::body::{ChatMessage, Rate};
use chat_protocol::RoomName;
use tokio::sync::{mpsc, oneshot, watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::event::{Event, State};
use crate::publish::{Prepared, Publisher, SendError, SendHandle};

/// Messages waiting for a token at most; beyond it [`Pacer::send`] waits.
const MAX_QUEUED: usize = 1000;

/// How often the connection is looked at again while it is down.
const DOWN_RECHECK: Duration = Duration::from_millis(250);

/// Settled messages between two `sending` status events.
const REPORT_EVERY: usize = 20;

/// How long the first paced message waits for the user's standing after the login:
/// an allowance stricter than the default must be known before a burst goes out, and
/// an unanswered standing must not hold messages for long.
const STANDING_PATIENCE: Duration = Duration::from_secs(2);

/// A token bucket a little inside a [`Rate`]: a fifth of the burst (at least one
/// message) is kept in reserve and the rate is 90 %, so jitter on the way to the server
/// never puts a message over the server's bucket.
#[derive(Debug, Clone)]
pub struct Bucket {
    capacity: f64,
    per_second: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// A full bucket for `allowance` at `now`.
    pub fn new(allowance: Rate, now: Instant) -> Self {
        let (capacity, per_second) = Self::inside(allowance);
        Self {
            capacity,
            per_second,
            tokens: capacity,
            at: now,
        }
    }

    fn inside(allowance: Rate) -> (f64, f64) {
        let burst = f64::from(allowance.burst.max(1));
        let reserve = (burst / 5.0).floor().max(1.0);
        let per_second = if allowance.per_second.is_finite() && allowance.per_second > 0.0 {
            allowance.per_second * 0.9
        } else {
            Rate::default().per_second * 0.9
        };
        ((burst - reserve).max(1.0), per_second)
    }

    /// Messages sent at once from a full bucket.
    pub fn capacity(&self) -> u32 {
        self.capacity as u32
    }

    /// Takes on `allowance` from `now` (the tokens left stay, up to the new capacity).
    pub fn set(&mut self, allowance: Rate, now: Instant) {
        self.refill(now);
        (self.capacity, self.per_second) = Self::inside(allowance);
        self.tokens = self.tokens.min(self.capacity);
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.capacity);
        self.at = self.at.max(now);
    }

    /// Takes a token at `now`, or says when the next one is there.
    pub fn take(&mut self, now: Instant) -> Result<(), Instant> {
        self.refill(now);
        // The time of the next token is rounded to whole nanoseconds: allow for it.
        if self.tokens >= 1.0 - 1e-6 {
            self.tokens = (self.tokens - 1.0).max(0.0);
            return Ok(());
        }
        let wait = (1.0 - self.tokens) / self.per_second;
        Err(now + Duration::from_secs_f64(wait))
    }
}

/// How far the current batch has got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Messages of the batch settled (acknowledged, or given up on and reported).
    pub sent: usize,
    /// Messages in the batch.
    pub total: usize,
    /// Some message of the batch had to wait for a token: UIs show the progress.
    pub paced: bool,
}

/// What the pacing task is handed, in order.
enum Job {
    Send {
        message: Prepared,
        done: oneshot::Sender<Result<u64, SendError>>,
    },
    /// Answered once everything queued before it went to the publisher (or was
    /// abandoned).
    Drain(oneshot::Sender<()>),
}

/// Handle to the pacing task; cheap to clone.
#[derive(Debug, Clone)]
pub struct Pacer {
    jobs: mpsc::Sender<Job>,
    /// Where unpaced messages go straight from the caller (see [`Pacer::send`]).
    publisher: Publisher,
    events: mpsc::Sender<Event>,
    progress: Arc<watch::Sender<Progress>>,
    allowance: Arc<watch::Sender<Option<Rate>>>,
    /// Whether the standing answered (or could not be asked) since the start.
    standing: Arc<watch::Sender<bool>>,
    abandon: Arc<watch::Sender<bool>>,
    abandoned: Arc<Mutex<Vec<SendError>>>,
}

impl Pacer {
    /// Starts the task in front of `publisher`; `allowance: None` sends at once
    /// (tests and benchmarks of raw throughput). `client` tells whether the connection
    /// is up; `events` gets the `sending` status events and the reports of messages
    /// abandoned when closing. `window` is the publisher's: at most that many paced
    /// messages are between their token and their acknowledgement.
    pub fn start(
        publisher: Publisher,
        client: async_nats::Client,
        allowance: Option<Rate>,
        events: mpsc::Sender<Event>,
        window: usize,
    ) -> (Self, tokio::task::AbortHandle) {
        let (jobs, rx) = mpsc::channel(MAX_QUEUED);
        let pacer = Self {
            jobs,
            publisher: publisher.clone(),
            events: events.clone(),
            progress: Arc::new(watch::channel(Progress::default()).0),
            allowance: Arc::new(watch::channel(allowance).0),
            standing: Arc::new(watch::channel(false).0),
            abandon: Arc::new(watch::channel(false).0),
            abandoned: Arc::default(),
        };
        let task = Task {
            in_flight: Arc::new(Semaphore::new(window.max(1))),
            publisher,
            client,
            events,
            progress: pacer.progress.clone(),
            allowance: pacer.allowance.subscribe(),
            standing: pacer.standing.subscribe(),
            abandon: pacer.abandon.subscribe(),
            abandoned: pacer.abandoned.clone(),
        };
        let handle = tokio::spawn(task.run(rx)).abort_handle();
        (pacer, handle)
    }

    /// Queues `message` behind every message queued before it; the handle settles
    /// when JetStream acknowledged it (or it was given up on).
    pub async fn send(&self, room: &RoomName, subject: String, message: ChatMessage) -> SendHandle {
        let (done, rx) = oneshot::channel();
        // Encoded here, once, in the caller's task: every later stage only moves it.
        let message = Prepared::new(room, subject, &message);
        let id = message.id.clone();
        self.progress.send_modify(|p| p.total += 1);
        if self.allowance.borrow().is_none() {
            // Unpaced (and it stays so: `set_allowance` only changes an allowance):
            // no token to wait for, so the pacing task would only pass the message
            // on. Handed to the publisher from here, one task hop and queue fewer;
            // the order is the same, since nothing ever waits in the pacer's queue.
            let settled = settled(self.progress.clone(), self.events.clone(), done, None);
            self.publisher.submit(message, settled).await;
            return SendHandle::new(id, rx);
        }
        let job = Job::Send { message, done };
        if self.jobs.send(job).await.is_err() {
            self.progress.send_modify(settle);
        }
        SendHandle::new(id, rx)
    }

    /// The allowance to pace to from now on (from the user's standing).
    pub fn set_allowance(&self, allowance: Rate) {
        self.allowance.send_if_modified(|current| match current {
            Some(current) if *current != allowance => {
                *current = allowance;
                true
            }
            _ => false,
        });
        self.standing.send_replace(true);
    }

    /// The user's standing could not be asked: pace to the allowance given at the
    /// start without waiting for it.
    pub fn standing_unknown(&self) {
        self.standing.send_replace(true);
    }

    /// The current batch (zero when idle).
    pub fn progress(&self) -> Progress {
        *self.progress.borrow()
    }

    /// Waits until every message queued so far went to the publisher.
    pub async fn drain(&self) {
        let (tx, rx) = oneshot::channel();
        if self.jobs.send(Job::Drain(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// [`Pacer::drain`] for closing: as long as messages keep going out, but when none
    /// did for `stall` (the connection is down), what is still queued is given up on
    /// ("not sent") and reported; returns those.
    pub async fn drain_for_close(&self, stall: Duration) -> Vec<SendError> {
        let mut progress = self.progress.subscribe();
        let drained = self.drain();
        tokio::pin!(drained);
        loop {
            tokio::select! {
                _ = &mut drained => break,
                changed = progress.changed() => if changed.is_err() { break },
                _ = tokio::time::sleep(stall) => {
                    self.abandon.send_replace(true);
                    drained.await;
                    break;
                }
            }
        }
        std::mem::take(&mut *self.abandoned.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// One message of the batch settled; the batch ends with its last one.
fn settle(progress: &mut Progress) {
    progress.sent += 1;
    if progress.sent >= progress.total {
        *progress = Progress::default();
    }
}

/// What happens when JetStream settled a paced message: the batch counts it, a
/// `sending` status event says so every [`REPORT_EVERY`] messages of a paced batch,
/// and the caller's handle gets the result. Runs in the publishing task: no task per
/// message waits for the ack.
fn settled(
    progress: Arc<watch::Sender<Progress>>,
    events: mpsc::Sender<Event>,
    done: oneshot::Sender<Result<u64, SendError>>,
    permit: Option<OwnedSemaphorePermit>,
) -> crate::publish::Settled {
    Box::new(move |result| {
        drop(permit); // the next paced message may take its token
        let mut report = None;
        progress.send_modify(|p| {
            let (sent, total, paced) = (p.sent + 1, p.total, p.paced);
            settle(p);
            if paced && (sent == total || sent % REPORT_EVERY == 0) {
                report = Some((sent, total));
            }
        });
        if let Some((sent, total)) = report {
            let message = match sent == total {
                true => format!("sent {sent}/{total}"),
                false => format!("sending {sent}/{total}"),
            };
            // Before the result, as a UI waiting on the handle expects; a full queue
            // of events gets the report from a task of its own.
            match events.try_send(Event::status(State::Sending, None, message)) {
                Err(mpsc::error::TrySendError::Full(event)) => {
                    tokio::spawn(async move {
                        let _ = events.send(event).await;
                    });
                }
                Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
        let _ = done.send(result);
    })
}

struct Task {
    publisher: Publisher,
    client: async_nats::Client,
    events: mpsc::Sender<Event>,
    progress: Arc<watch::Sender<Progress>>,
    allowance: watch::Receiver<Option<Rate>>,
    standing: watch::Receiver<bool>,
    abandon: watch::Receiver<bool>,
    abandoned: Arc<Mutex<Vec<SendError>>>,
    /// A permit per paced message between its token and its settling, as many as the
    /// publisher's window: a token is taken only when the message can go out at once,
    /// so a slow acknowledgement cannot gather paced messages in the publisher's
    /// queue that would then reach the server together, over the allowance.
    in_flight: Arc<Semaphore>,
}

impl Task {
    async fn run(mut self, mut jobs: mpsc::Receiver<Job>) {
        // Made for the first paced message, once the standing said what to pace to.
        let mut bucket = None;
        while let Some(job) = jobs.recv().await {
            let (message, done) = match job {
                Job::Drain(reply) => {
                    let _ = reply.send(());
                    continue;
                }
                Job::Send { message, done } => (message, done),
            };
            let permit = tokio::select! {
                permit = self.in_flight.clone().acquire_owned() => permit.ok(),
                _ = self.abandon.wait_for(|abandon| *abandon) => None,
            };
            if permit.is_none() || !self.wait_turn(&mut bucket).await {
                let err = SendError::NotSent {
                    text: message.preview,
                    room: message.room,
                    reason: "the client quit before it could be sent within the allowed rate"
                        .into(),
                };
                let _ = self.events.send(Event::error(&err)).await;
                self.abandoned
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(err.clone());
                let _ = done.send(Err(err));
                self.progress.send_modify(settle);
                continue;
            }
            let settled = settled(self.progress.clone(), self.events.clone(), done, permit);
            self.publisher.submit(message, settled).await;
        }
    }

    /// Waits for the connection and a token; false if closing gave up meanwhile.
    async fn wait_turn(&mut self, bucket: &mut Option<Bucket>) -> bool {
        loop {
            if *self.abandon.borrow() {
                return false;
            }
            let connected =
                self.client.connection_state() == async_nats::connection::State::Connected;
            let now = Instant::now();
            let allowance = *self.allowance.borrow_and_update();
            let wait_until = match (&mut *bucket, allowance) {
                (_, None) => return true,
                (Some(bucket), Some(allowance)) => {
                    bucket.set(allowance, now);
                    match connected {
                        false => now + DOWN_RECHECK,
                        true => match bucket.take(now) {
                            Ok(()) => return true,
                            Err(at) => {
                                self.announce().await;
                                at
                            }
                        },
                    }
                }
                (None, Some(_)) => {
                    // The first paced message: the standing's allowance first.
                    let known = self.standing.wait_for(|known| *known);
                    let _ = tokio::time::timeout(STANDING_PATIENCE, known).await;
                    let allowance = self.allowance.borrow_and_update().unwrap_or_default();
                    *bucket = Some(Bucket::new(allowance, Instant::now()));
                    continue;
                }
            };
            tokio::select! {
                _ = tokio::time::sleep_until(wait_until) => {}
                _ = self.abandon.changed() => {}
                _ = self.allowance.changed() => {}
            }
        }
    }

    /// Marks the batch as paced, and says so once.
    async fn announce(&self) {
        let mut first = None;
        self.progress.send_if_modified(|p| {
            if p.paced {
                return false;
            }
            p.paced = true;
            first = Some((p.sent, p.total));
            true
        });
        if let Some((sent, total)) = first {
            let allowance = self.allowance.borrow().unwrap_or_default();
            let message = format!(
                "sending {sent}/{total}: paced to the allowed rate ({} at once, then {} per second)",
                allowance.burst, allowance.per_second
            );
            let _ = self
                .events
                .send(Event::status(State::Sending, None, message))
                .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_bucket_sends_the_burst_then_the_rate() {
        let start = Instant::now();
        let mut bucket = Bucket::new(Rate::default(), start);
        assert_eq!(
            bucket.capacity(),
            16,
            "a fifth of the burst is kept in reserve"
        );
        for _ in 0..16 {
            assert_eq!(bucket.take(start), Ok(()));
        }
        let next = bucket.take(start).unwrap_err();
        // 90 % of 5 per second: one token every 222 ms.
        let gap = next - start;
        assert!(gap > Duration::from_millis(200) && gap < Duration::from_millis(250));
        assert_eq!(bucket.take(next), Ok(()));
        // The schedule of 100 messages sent as fast as allowed: never more than the
        // allowance in any window, and the whole takes at least (100 - 16) / 4.5 s.
        let mut bucket = Bucket::new(Rate::default(), start);
        let mut now = start;
        let mut times = Vec::new();
        while times.len() < 100 {
            match bucket.take(now) {
                Ok(()) => times.push(now),
                Err(at) => now = at,
            }
        }
        let span = (*times.last().unwrap() - start).as_secs_f64();
        assert!(span >= 84.0 / 4.5 - 0.01, "{span}");
        // Within any second, at most the burst plus the rate of the server's bucket.
        for (i, t) in times.iter().enumerate() {
            let within = times[i..]
                .iter()
                .take_while(|u| **u - *t < Duration::from_secs(1))
                .count();
            assert!(within <= 20 + 5, "{within} messages within a second");
        }
    }

    #[test]
    fn the_allowance_can_change_and_tiny_ones_still_send() {
        let start = Instant::now();
        let mut bucket = Bucket::new(Rate::default(), start);
        bucket.set(
            Rate {
                burst: 2,
                per_second: 1.0,
            },
            start,
        );
        assert_eq!(bucket.capacity(), 1);
        assert_eq!(bucket.take(start), Ok(()));
        let next = bucket.take(start).unwrap_err();
        assert!(next - start > Duration::from_secs(1));
        let broken = Bucket::new(
            Rate {
                burst: 0,
                per_second: f64::NAN,
            },
            start,
        );
        assert_eq!(broken.capacity(), 1);
    }

    #[test]
    fn a_batch_ends_with_its_last_message() {
        let mut p = Progress {
            sent: 0,
            total: 2,
            paced: true,
        };
        settle(&mut p);
        assert_eq!((p.sent, p.total, p.paced), (1, 2, true));
        settle(&mut p);
        assert_eq!(p, Progress::default());
    }
}
