//! Publishing to JetStream with retries, written once: what the client's ordered
//! publisher and the presence worker's events both do.
//!
//! A message always goes with the same `Nats-Msg-Id` ([`message`]), so however often it
//! is sent, the stream stores it once (within its duplicate window). A failed attempt
//! is sorted by what it tells ([`Failure::of`]): a refusal is surfaced at once, never
//! retried; any other failure is retried after a [`Backoff`] delay, but never past
//! [`Retry::give_up_after`] from the first attempt ([`Retry::gives_up`]), which must stay
//! under the stream's duplicate window, or a late retry could store the message twice.
//! [`publish`] is that loop for one message; the client's publisher, which must keep a
//! sender's order across many messages, drives the same rules itself.

use std::future::Future;
use std::time::Duration;

use async_nats::jetstream::context::{PublishAckFuture, PublishError, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::publish::PublishAck;
use async_nats::jetstream::Context;
use async_nats::Subject;
use bytes::Bytes;
use tokio::time::Instant;

use crate::Backoff;

/// What a failed publish attempt tells about the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The stream answered and will not store it as it is (too large, an expectation
    /// not met, an error reply): retrying cannot help; surface it.
    Refused,
    /// Nobody stored it (no stream took the subject): a retry may succeed.
    NotStored,
    /// No answer (a timeout, the connection lost): it may have been stored; a retry
    /// with the same id is stored at most once.
    Unknown,
}

impl Failure {
    /// Sorts a failed attempt.
    pub fn of(err: &PublishError) -> Self {
        match err.kind() {
            PublishErrorKind::MaxPayloadExceeded
            | PublishErrorKind::WrongLastSequence
            | PublishErrorKind::WrongLastMessageId => Failure::Refused,
            PublishErrorKind::StreamNotFound => Failure::NotStored,
            // The stream's own error reply (a limit reached, say) is a refusal; any
            // other `Other` is the client failing to send.
            PublishErrorKind::Other if answered_with_error(err) => Failure::Refused,
            _ => Failure::Unknown,
        }
    }
}

/// Whether the failure is JetStream's error reply to the publish.
fn answered_with_error(err: &PublishError) -> bool {
    std::error::Error::source(err).is_some_and(|source| source.is::<async_nats::jetstream::Error>())
}

/// A message for JetStream carrying `id` as its `Nats-Msg-Id`.
pub fn message(payload: Bytes, id: &str) -> PublishMessage {
    PublishMessage::build().payload(payload).message_id(id)
}

/// One attempt: sends `payload` to `subject` with `id` as its `Nats-Msg-Id`; the
/// returned future resolves to the stream's acknowledgement.
pub async fn send(
    js: &Context,
    subject: impl Into<Subject>,
    payload: Bytes,
    id: &str,
) -> Result<PublishAckFuture, PublishError> {
    js.send_publish(subject.into(), message(payload, id)).await
}

/// How hard a message is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Pause before the first retry; doubled for each further one.
    pub first_delay: Duration,
    /// Longest pause between two retries.
    pub max_delay: Duration,
    /// How long after its first attempt a message is still retried; under the
    /// stream's duplicate window.
    pub give_up_after: Duration,
}

impl Retry {
    /// The delays between retries.
    pub fn backoff(&self) -> Backoff {
        Backoff::new(self.first_delay, self.max_delay)
    }

    /// Whether a message first tried at `first` is given up on at `now`.
    pub fn gives_up(&self, first: Instant, now: Instant) -> bool {
        now >= first + self.give_up_after
    }
}

/// Publishes `payload` to `subject` with `id` as its `Nats-Msg-Id` until the stream
/// acknowledges it, the stream refuses it, or `retry` gives up; returns the ack or the
/// last failure. Before each retry, `before_retry` is given the failure (to repair what
/// it can, such as a room stream deleted since it was created); its error ends the
/// attempts.
///
/// ```no_run
/// # async fn run(js: async_nats::jetstream::Context) -> Result<(), async_nats::jetstream::context::PublishError> {
/// use std::time::Duration;
/// use async_nats::jetstream::context::PublishError;
/// use chat_runtime::publish::{publish, Retry};
/// let retry = Retry {
///     first_delay: Duration::from_millis(200),
///     max_delay: Duration::from_secs(2),
///     give_up_after: Duration::from_secs(20),
/// };
/// let nothing_to_repair = |_: &PublishError| async { Ok::<_, PublishError>(()) };
/// let subject = "chat.room.general.sys".into();
/// let ack = publish(&js, subject, "{}".into(), "event-id-1", &retry, nothing_to_repair).await?;
/// println!("stored at {}", ack.sequence);
/// # Ok(())
/// # }
/// ```
pub async fn publish<E, F>(
    js: &Context,
    subject: Subject,
    payload: Bytes,
    id: &str,
    retry: &Retry,
    mut before_retry: impl FnMut(&PublishError) -> F,
) -> Result<PublishAck, E>
where
    E: From<PublishError>,
    F: Future<Output = Result<(), E>>,
{
    let first = Instant::now();
    let mut backoff = retry.backoff();
    loop {
        let result = match send(js, subject.clone(), payload.clone(), id).await {
            Ok(ack) => ack.await,
            Err(err) => Err(err),
        };
        let err = match result {
            Ok(ack) => return Ok(ack),
            Err(err) => err,
        };
        let delay = backoff.next_delay();
        if Failure::of(&err) == Failure::Refused || retry.gives_up(first, Instant::now() + delay) {
            return Err(err.into());
        }
        tracing::warn!(%err, id, "publish not confirmed; retrying with the same id");
        before_retry(&err).await?;
        tokio::time::sleep(delay).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_sorted_by_what_they_tell() {
        let of = |kind| Failure::of(&PublishError::new(kind));
        assert_eq!(of(PublishErrorKind::MaxPayloadExceeded), Failure::Refused);
        assert_eq!(of(PublishErrorKind::WrongLastSequence), Failure::Refused);
        assert_eq!(of(PublishErrorKind::StreamNotFound), Failure::NotStored);
        assert_eq!(of(PublishErrorKind::TimedOut), Failure::Unknown);
        assert_eq!(of(PublishErrorKind::BrokenPipe), Failure::Unknown);
        // `Other` without the stream's error reply: the client failed to send.
        assert_eq!(of(PublishErrorKind::Other), Failure::Unknown);
    }

    #[test]
    fn gives_up_after_the_budget_from_the_first_attempt() {
        let retry = Retry {
            first_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(40),
            give_up_after: Duration::from_secs(1),
        };
        let first = Instant::now();
        assert!(!retry.gives_up(first, first + Duration::from_millis(999)));
        assert!(retry.gives_up(first, first + Duration::from_secs(1)));
    }
}
