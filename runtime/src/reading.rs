//! Reading a bounded range of a room stream, forwards or backwards.
//!
//! Both the client (replaying the last N messages on join) and the history worker
//! (serving pages) need "the messages matching this filter between these sequences,
//! at most this many and this many bytes". JetStream consumers only read forwards, so
//! a backward read scans windows that grow towards the start of the stream until it
//! has enough; a read never holds more than one window in memory.
//!
//! Memory stays bounded whatever the room's size: each read keeps at most its limit of
//! messages, and the server sends at most [`MAX_BATCH`] messages ahead of what has been
//! looked at. Each window of [`read_backward`] is one [`crate::scan`], whose consumer
//! is deleted when it ends, so reads leave nothing behind on the server.
//!
//! Forwards there is a cheaper way: [`fetch_forward`] reads a page with one plain pull
//! consumer and one fetch, without looking the stream up first. (Not JetStream's batch
//! direct get: it costs the server more per message with headers; see BENCHMARKS.md.)

use std::collections::VecDeque;
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, Consumer, DeliverPolicy};
use async_nats::jetstream::message::Info;
use async_nats::jetstream::stream::ConsumerErrorKind;
use async_nats::jetstream::stream::Stream;
use async_nats::jetstream::ErrorCode;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::StreamExt;

use crate::scan::ScanError;

/// How long a read waits for the next message before giving up.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Most messages the server sends ahead of the reader in one pull: with messages of up
/// to [`MAX_MESSAGE_BYTES`](chat_protocol::streams::MAX_MESSAGE_BYTES) that is at most 4 MiB in
/// flight per read, whatever the range asked for.
pub const MAX_BATCH: usize = 128;

/// One message as stored in a stream.
#[derive(Debug, Clone)]
pub struct StoredMessage {
    /// Stream sequence.
    pub seq: u64,
    /// When the stream stored it.
    pub time: DateTime<Utc>,
    /// Subject it was published on.
    pub subject: String,
    /// Body.
    pub payload: Bytes,
}

/// Why a read failed; each kind keeps its cause.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The stream's state could not be read.
    #[error("cannot read stream info: {0}")]
    Info(#[from] async_nats::jetstream::stream::InfoError),
    /// The reading consumer could not be created.
    #[error("cannot create a consumer: {0}")]
    Consumer(#[from] async_nats::jetstream::stream::ConsumerError),
    /// A scan of the stream failed.
    #[error(transparent)]
    Scan(#[from] ScanError),
    /// A fetch's messages stopped arriving.
    #[error("reading messages failed: {0}")]
    Messages(#[source] async_nats::Error),
    /// A message arrived without its JetStream metadata.
    #[error("a message without JetStream metadata: {0}")]
    Metadata(#[source] async_nats::Error),
    /// Nothing arrived in time.
    #[error("no message arrived within {READ_TIMEOUT:?}")]
    Timeout,
    /// The stream does not exist.
    #[error("no such stream")]
    NoStream,
}

/// Bounds of a read.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most messages.
    pub messages: usize,
    /// Most payload bytes (at least one message is always returned if any matches).
    pub bytes: usize,
}

/// Visits messages matching `filter` with `from <= seq <= through`, oldest first,
/// until `visit` returns false or the range is exhausted. `expected` is how many
/// messages the caller may look at, to size the pulls (at most [`MAX_BATCH`]).
async fn scan<I>(
    stream: &Stream<I>,
    filter: &str,
    from: u64,
    through: u64,
    expected: usize,
    mut visit: impl FnMut(StoredMessage) -> bool,
) -> Result<(), ReadError> {
    if from > through {
        return Ok(());
    }
    let config = pull::OrderedConfig {
        filter_subject: filter.to_string(),
        deliver_policy: DeliverPolicy::ByStartSequence {
            start_sequence: from.max(1),
        },
        max_batch: expected.clamp(1, MAX_BATCH) as i64,
        ..Default::default()
    };
    crate::scan::scan(stream, config, READ_TIMEOUT, |message, info| {
        let seq = info.stream_sequence;
        seq <= through && visit(stored(message, info)) && seq < through
    })
    .await?;
    Ok(())
}

/// A stream message as a [`StoredMessage`] (its metadata `info` already parsed).
pub fn stored(message: &async_nats::jetstream::Message, info: &Info<'_>) -> StoredMessage {
    let published = info.published;
    StoredMessage {
        seq: info.stream_sequence,
        time: DateTime::from_timestamp(published.unix_timestamp(), published.nanosecond())
            .unwrap_or_default(),
        subject: message.subject.to_string(),
        payload: message.payload.clone(),
    }
}

/// Whether any message matching `filter` has `from <= seq <= through` (reads at most
/// one message).
async fn any_match<I>(
    stream: &Stream<I>,
    filter: &str,
    from: u64,
    through: u64,
) -> Result<bool, ReadError> {
    let mut found = false;
    scan(stream, filter, from, through, 1, |_| {
        found = true;
        false
    })
    .await?;
    Ok(found)
}

/// Reads the newest messages matching `filter` with `seq < before`, returned oldest
/// first, within `limits`. Returns them and whether older matching messages remain.
/// `before` may lie past the end of the stream (`u64::MAX`: the newest messages).
pub async fn read_backward<I>(
    stream: &Stream<I>,
    filter: &str,
    before: u64,
    limits: Limits,
) -> Result<(Vec<StoredMessage>, bool), ReadError> {
    if limits.messages == 0 {
        return Ok((Vec::new(), false));
    }
    let state = stream.get_info().await?.state;
    let first = state.first_sequence.max(1);
    // Newest first across windows; each window is read oldest first into a bounded
    // queue that keeps only its newest messages.
    let mut newest_first: Vec<StoredMessage> = Vec::new();
    let mut bytes = 0usize;
    let mut through = before.saturating_sub(1).min(state.last_sequence);
    let mut window = (limits.messages as u64).saturating_mul(2).max(64);
    let done = |newest_first: Vec<StoredMessage>, more| {
        Ok((newest_first.into_iter().rev().collect(), more))
    };
    while through >= first && newest_first.len() < limits.messages {
        let from = through.saturating_sub(window - 1).max(first);
        let room = limits.messages - newest_first.len();
        let mut kept: VecDeque<StoredMessage> = VecDeque::new();
        let mut dropped = false;
        let expected = usize::try_from(through - from + 1).unwrap_or(usize::MAX);
        scan(stream, filter, from, through, expected, |message| {
            if kept.len() == room {
                kept.pop_front();
                dropped = true;
            }
            kept.push_back(message);
            true
        })
        .await?;
        for message in kept.into_iter().rev() {
            let size = message.payload.len();
            if !newest_first.is_empty() && bytes + size > limits.bytes {
                return done(newest_first, true);
            }
            bytes += size;
            newest_first.push(message);
        }
        if dropped {
            return done(newest_first, true);
        }
        if from == first {
            return done(newest_first, false);
        }
        through = from - 1;
        window = window.saturating_mul(4);
    }
    // Full exactly at a window's start: whether anything older matches decides `more`.
    let more = through >= first && any_match(stream, filter, first, through).await?;
    done(newest_first, more)
}

/// How long a [`fetch_forward`] consumer outlives a worker that died while using it.
const FETCH_CONSUMER_IDLE: Duration = Duration::from_secs(30);

/// Reads forwards through the end of the stream with one plain pull consumer and one
/// fetch: messages matching `filter` (every message of the stream when `None`) with
/// `seq >= from`, oldest first, within `limits`, and whether more remain.
///
/// Made for pages read one request at a time: the stream is not looked up (a
/// [`Stream`] from `get_stream_no_info` will do; a missing stream is
/// [`ReadError::NoStream`]), the consumer keeps no acks and its state in memory, the
/// server sends the whole page in answer to one pull (bounded by `limits.bytes`,
/// counting subjects and headers too, and always at least one message), and the
/// consumer is deleted in the background once the page is read. `None` rather than
/// a filter that matches the whole stream spares the server counting what matches
/// when it creates the consumer.
pub async fn fetch_forward<I: Clone + Send + Sync + 'static>(
    stream: &Stream<I>,
    filter: Option<&str>,
    from: u64,
    limits: Limits,
) -> Result<(Vec<StoredMessage>, bool), ReadError> {
    if limits.messages == 0 {
        return Ok((Vec::new(), false));
    }
    let consumer = stream
        .create_consumer(pull::Config {
            filter_subject: filter.unwrap_or_default().to_string(),
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: from.max(1),
            },
            ack_policy: AckPolicy::None,
            memory_storage: true,
            num_replicas: 1,
            inactive_threshold: FETCH_CONSUMER_IDLE,
            ..Default::default()
        })
        .await
        .map_err(|error| match error.kind() {
            ConsumerErrorKind::JetStream(e) if e.error_code() == ErrorCode::STREAM_NOT_FOUND => {
                ReadError::NoStream
            }
            _ => ReadError::Consumer(error),
        })?;
    let name = consumer.cached_info().name.clone();
    let pending = usize::try_from(consumer.cached_info().num_pending).unwrap_or(usize::MAX);
    let result = if pending == 0 {
        Ok((Vec::new(), false))
    } else {
        fetch(&consumer, limits.messages.min(pending), limits.bytes).await
    };
    let stream = stream.clone();
    tokio::spawn(async move {
        if let Err(error) = stream.delete_consumer(&name).await {
            tracing::debug!(%error, consumer = %name, "cannot delete a fetching consumer");
        }
    });
    result
}

/// The fetch of [`fetch_forward`]: up to `messages` messages and `bytes` bytes.
async fn fetch(
    consumer: &Consumer<pull::Config>,
    messages: usize,
    bytes: usize,
) -> Result<(Vec<StoredMessage>, bool), ReadError> {
    let mut batch = consumer
        .fetch()
        .max_messages(messages)
        .max_bytes(bytes)
        .messages()
        .await
        .map_err(|e| ReadError::Messages(e.into()))?;
    let mut out = Vec::with_capacity(messages);
    // What the server has counted against `bytes` so far: for each message its
    // subject, reply subject, headers and body, which is the client's `length`.
    let mut used = 0;
    loop {
        let next = tokio::time::timeout(READ_TIMEOUT, batch.next())
            .await
            .map_err(|_| ReadError::Timeout)?;
        let message = match next {
            // The batch ended early: messages deleted since the consumer counted them.
            None => return Ok((out, false)),
            Some(Ok(message)) => message,
            // The byte bound ended the batch.
            Some(Err(_)) if !out.is_empty() => return Ok((out, true)),
            Some(Err(error)) => return Err(ReadError::Messages(error)),
        };
        let info = message.info().map_err(ReadError::Metadata)?;
        let left = info.pending;
        used += message.length;
        out.push(stored(&message, &info));
        // A message that fills the byte bound exactly ends the pull without a word
        // from the server (the 409 comes only when the next message does not fit):
        // waiting for more would wait until the read timeout.
        if left == 0 || out.len() == messages || used >= bytes {
            return Ok((out, left > 0));
        }
    }
}
