//! Reading a bounded range of a room stream, forwards or backwards.
//!
//! Both the client (replaying the last N messages on join) and the history worker
//! (serving pages) need "the messages matching this filter between these sequences,
//! at most this many and this many bytes". JetStream consumers only read forwards, so
//! a backward read scans windows that grow towards the start of the stream until it
//! has enough; a read never holds more than one window in memory.

use std::collections::VecDeque;
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, DeliverPolicy};
use async_nats::jetstream::stream::Stream;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::StreamExt;

/// How long a read waits for the next message before giving up.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

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
/// until `visit` returns false or the range is exhausted.
async fn scan(
    stream: &Stream,
    filter: &str,
    from: u64,
    through: u64,
    mut visit: impl FnMut(StoredMessage) -> bool,
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
            ..Default::default()
        })
        .await?;
    if consumer.cached_info().num_pending == 0 {
        return Ok(());
    }
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
    scan(stream, filter, from, through, |message| {
        let size = message.payload.len();
        if out.len() == limits.messages || (!out.is_empty() && bytes + size > limits.bytes) {
            more = true;
            return false;
        }
        bytes += size;
        out.push(message);
        true
    })
    .await?;
    Ok((out, more))
}

/// Reads the newest messages matching `filter` with `seq < before`, returned oldest
/// first, within `limits`. Returns them and whether older matching messages remain.
pub async fn read_backward(
    stream: &Stream,
    filter: &str,
    before: u64,
    limits: Limits,
) -> Result<(Vec<StoredMessage>, bool), ReadError> {
    let first = stream.get_info().await?.state.first_sequence.max(1);
    // Newest first across windows; each window is read oldest first into a bounded
    // queue that keeps only its newest messages.
    let mut newest_first: Vec<StoredMessage> = Vec::new();
    let mut bytes = 0usize;
    let mut through = before.saturating_sub(1);
    let mut window = (limits.messages as u64).saturating_mul(2).max(64);
    while through >= first && newest_first.len() < limits.messages {
        let from = through.saturating_sub(window - 1).max(first);
        let room = limits.messages - newest_first.len();
        let mut kept: VecDeque<StoredMessage> = VecDeque::new();
        let mut dropped = false;
        scan(stream, filter, from, through, |message| {
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
                return Ok((newest_first.into_iter().rev().collect(), true));
            }
            bytes += size;
            newest_first.push(message);
        }
        if dropped {
            return Ok((newest_first.into_iter().rev().collect(), true));
        }
        if from == first {
            return Ok((newest_first.into_iter().rev().collect(), false));
        }
        through = from - 1;
        window = window.saturating_mul(4);
    }
    let more = through >= first;
    Ok((newest_first.into_iter().rev().collect(), more))
}
