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
//! looked at. Each scan's consumer is deleted when the scan ends, so reads leave
//! nothing behind on the server.
//!
//! Forward reads have a cheaper way too: [`read_forward_direct`] asks JetStream's batch
//! direct get (ADR-31, nats-server 2.11 and later) for the whole range in one request,
//! without creating anything on the server. It needs `allow_direct` on the stream
//! (room streams have it) and answers "no responders" when the stream does not exist.

use std::collections::VecDeque;
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, Consumer, DeliverPolicy};
use async_nats::jetstream::stream::Stream;
use async_nats::HeaderMap;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::StreamExt;

/// How long a read waits for the next message before giving up.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Most messages the server sends ahead of the reader in one pull: with messages of up
/// to [`MAX_MESSAGE_BYTES`](crate::streams::MAX_MESSAGE_BYTES) that is at most 4 MiB in
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

/// Why a read failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The stream's state could not be read.
    #[error("cannot read stream info: {0}")]
    Info(#[from] async_nats::jetstream::stream::InfoError),
    /// The reading consumer could not be created.
    #[error("cannot create a consumer: {0}")]
    Consumer(#[from] async_nats::jetstream::stream::ConsumerError),
    /// Messages stopped arriving.
    #[error("reading messages failed: {0}")]
    Messages(String),
    /// Nothing arrived in time.
    #[error("no message arrived within {READ_TIMEOUT:?}")]
    Timeout,
    /// Nobody answers direct gets on the stream: it does not exist, or it does not
    /// allow direct gets.
    #[error("no responders for direct gets (no such stream, or allow_direct is off)")]
    NoDirect,
    /// A direct get was refused or answered something unexpected.
    #[error("direct get failed: {0}")]
    Direct(String),
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
async fn scan(
    stream: &Stream,
    filter: &str,
    from: u64,
    through: u64,
    expected: usize,
    visit: impl FnMut(StoredMessage) -> bool,
) -> Result<(), ReadError> {
    if from > through {
        return Ok(());
    }
    let consumer = stream
        .create_consumer(pull::OrderedConfig {
            filter_subject: filter.to_string(),
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: from.max(1),
            },
            max_batch: expected.clamp(1, MAX_BATCH) as i64,
            ..Default::default()
        })
        .await?;
    let name = consumer.cached_info().name.clone();
    let result = if consumer.cached_info().num_pending == 0 {
        Ok(())
    } else {
        deliver(consumer, through, visit).await
    };
    // Ordered consumers are ephemeral and would linger until their inactivity
    // threshold; a failure here only means the server cleans up later.
    if let Err(error) = stream.delete_consumer(&name).await {
        tracing::debug!(%error, consumer = %name, "cannot delete a reading consumer");
    }
    result
}

/// The delivery loop of [`scan`].
async fn deliver(
    consumer: Consumer<pull::OrderedConfig>,
    through: u64,
    mut visit: impl FnMut(StoredMessage) -> bool,
) -> Result<(), ReadError> {
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| ReadError::Messages(e.to_string()))?;
    loop {
        let message = tokio::time::timeout(READ_TIMEOUT, messages.next())
            .await
            .map_err(|_| ReadError::Timeout)?
            .ok_or_else(|| ReadError::Messages("consumer ended".into()))?
            .map_err(|e| ReadError::Messages(e.to_string()))?;
        let info = message
            .info()
            .map_err(|e| ReadError::Messages(e.to_string()))?;
        let (seq, pending, published) = (info.stream_sequence, info.pending, info.published);
        if seq > through {
            return Ok(());
        }
        let stored = StoredMessage {
            seq,
            time: DateTime::from_timestamp(published.unix_timestamp(), published.nanosecond())
                .unwrap_or_default(),
            subject: message.subject.to_string(),
            payload: message.payload.clone(),
        };
        if !visit(stored) || pending == 0 || seq == through {
            return Ok(());
        }
    }
}

/// Whether any message matching `filter` has `from <= seq <= through` (reads at most
/// one message).
async fn any_match(
    stream: &Stream,
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

/// Reads messages matching `filter` with `from <= seq <= through`, oldest first,
/// within `limits`. Returns them and whether more matching messages remain in range.
pub async fn read_forward(
    stream: &Stream,
    filter: &str,
    from: u64,
    through: u64,
    limits: Limits,
) -> Result<(Vec<StoredMessage>, bool), ReadError> {
    let mut out = Vec::new();
    let mut bytes = 0usize;
    let mut more = false;
    if limits.messages == 0 {
        return Ok((out, false));
    }
    scan(
        stream,
        filter,
        from,
        through,
        limits.messages + 1,
        |message| {
            let size = message.payload.len();
            if out.len() == limits.messages || (!out.is_empty() && bytes + size > limits.bytes) {
                more = true;
                return false;
            }
            bytes += size;
            out.push(message);
            true
        },
    )
    .await?;
    Ok((out, more))
}

/// Reads the newest messages matching `filter` with `seq < before`, returned oldest
/// first, within `limits`. Returns them and whether older matching messages remain.
/// `before` may lie past the end of the stream (`u64::MAX`: the newest messages).
pub async fn read_backward(
    stream: &Stream,
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

/// JetStream's direct-get API (ADR-31); the stream name follows.
pub const DIRECT_GET_PREFIX: &str = "$JS.API.DIRECT.GET.";

/// The header of a batch direct get saying how many matching messages follow the one
/// it is on (async-nats has no constant for it).
const NUM_PENDING: &str = "Nats-Num-Pending";

/// Statuses of a batch direct get's replies.
const END_OF_BATCH: u16 = 204;
const NOT_FOUND: u16 = 404;
const NO_RESPONDERS: u16 = 503;

/// The subject answering direct gets on `stream`.
pub fn direct_get_subject(stream: &str) -> String {
    format!("{DIRECT_GET_PREFIX}{stream}")
}

/// The body of a batch direct get: `batch` messages matching `next_by_subj` from
/// sequence `seq` on, the server stopping once it has sent `max_bytes`.
#[derive(serde::Serialize)]
struct BatchRequest<'a> {
    seq: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_by_subj: Option<&'a str>,
    batch: usize,
    max_bytes: usize,
}

/// Like [`read_forward`] through the end of the stream, but in one batch direct get
/// on `stream` (its name) instead of a consumer: messages matching `filter` (every
/// message of the stream when `None`, which spares the server matching subjects and
/// counting what matches) with `seq >= from`, oldest first, within `limits`, and
/// whether more matching messages remain.
///
/// The server answers with the messages, each carrying its sequence, subject and time
/// in headers, then an end-of-batch status saying how many matching messages remain
/// (or "not found" when none matches at all). It stops once it has sent
/// `limits.bytes`, counting subjects and stored headers too (a tighter bound than
/// [`read_forward`]'s payload bytes), and including the message that crosses the
/// bound; the reader then drops what exceeds the payload bound. A stream
/// that does not exist, or does not allow direct gets, is [`ReadError::NoDirect`].
pub async fn read_forward_direct(
    client: &async_nats::Client,
    stream: &str,
    filter: Option<&str>,
    from: u64,
    limits: Limits,
) -> Result<(Vec<StoredMessage>, bool), ReadError> {
    if limits.messages == 0 {
        return Ok((Vec::new(), false));
    }
    let request = BatchRequest {
        seq: from.max(1),
        next_by_subj: filter,
        batch: limits.messages,
        max_bytes: limits.bytes.max(1),
    };
    let body = serde_json::to_vec(&request).map_err(|e| ReadError::Direct(e.to_string()))?;
    let inbox = client.new_inbox();
    let failed = |e: &dyn std::fmt::Display| ReadError::Direct(e.to_string());
    let mut replies = client
        .subscribe(inbox.clone())
        .await
        .map_err(|e| failed(&e))?;
    client
        .publish_with_reply(direct_get_subject(stream), inbox, body.into())
        .await
        .map_err(|e| failed(&e))?;
    let mut out: Vec<StoredMessage> = Vec::new();
    let mut bytes = 0usize;
    let mut trimmed = false;
    loop {
        let message = tokio::time::timeout(READ_TIMEOUT, replies.next())
            .await
            .map_err(|_| ReadError::Timeout)?
            .ok_or_else(|| ReadError::Direct("subscription ended".into()))?;
        match message.status.map(|s| s.as_u16()) {
            None => {
                let stored = stored_from_direct(message.headers.as_ref(), message.payload)?;
                let size = stored.payload.len();
                if trimmed || (!out.is_empty() && bytes + size > limits.bytes) {
                    trimmed = true;
                } else {
                    bytes += size;
                    out.push(stored);
                }
            }
            Some(END_OF_BATCH) => {
                let pending: u64 = number(message.headers.as_ref(), NUM_PENDING)?;
                return Ok((out, trimmed || pending > 0));
            }
            Some(NOT_FOUND) if out.is_empty() => return Ok((out, false)),
            Some(NO_RESPONDERS) => return Err(ReadError::NoDirect),
            Some(status) => {
                return Err(ReadError::Direct(format!(
                    "status {status}: {}",
                    message.description.unwrap_or_default()
                )))
            }
        }
    }
}

/// A message of a batch direct get, from its headers and payload.
fn stored_from_direct(
    headers: Option<&HeaderMap>,
    payload: Bytes,
) -> Result<StoredMessage, ReadError> {
    let time = text(headers, "Nats-Time-Stamp")?;
    let time = DateTime::parse_from_rfc3339(time)
        .map_err(|_| ReadError::Direct(format!("bad Nats-Time-Stamp {time:?}")))?
        .with_timezone(&Utc);
    Ok(StoredMessage {
        seq: number(headers, "Nats-Sequence")?,
        time,
        subject: text(headers, "Nats-Subject")?.to_string(),
        payload,
    })
}

/// A header of a direct get's reply.
fn text<'a>(headers: Option<&'a HeaderMap>, name: &str) -> Result<&'a str, ReadError> {
    headers
        .and_then(|h| h.get(name))
        .map(|v| v.as_str())
        .ok_or_else(|| ReadError::Direct(format!("a reply without {name}")))
}

/// A numeric header of a direct get's reply.
fn number(headers: Option<&HeaderMap>, name: &str) -> Result<u64, ReadError> {
    let value = text(headers, name)?;
    value
        .parse()
        .map_err(|_| ReadError::Direct(format!("bad {name} {value:?}")))
}
