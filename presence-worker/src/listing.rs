//! Reading the latest message of every subject matching a filter: how the worker
//! lists the live keys of a bucket (`<room>.*.*`, `<room>.<user>.*`, `>`).
//!
//! This is what async-nats' `kv.keys()` does for a whole bucket, narrowed to a filter:
//! an ordered consumer with `DeliverPolicy::LastPerSubject`, optionally headers only.
//! Each listing creates a short-lived ephemeral consumer; the server removes it when
//! it goes idle.

use std::time::Duration;

use async_nats::jetstream::consumer::{pull, DeliverPolicy, ReplayPolicy};
use async_nats::jetstream::kv::Operation;
use async_nats::jetstream::stream::Stream;
use async_nats::HeaderMap;
use chat_protocol::body::Reason;
use futures::StreamExt;

/// How long a listing waits for its next message.
const LIST_TIMEOUT: Duration = Duration::from_secs(10);

/// NATS KV's operation header (async-nats keeps its name private).
const KV_OPERATION: &str = "KV-Operation";

/// Why a listing failed.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    /// The listing consumer could not be created.
    #[error("cannot create a listing consumer: {0}")]
    Consumer(#[from] async_nats::jetstream::stream::ConsumerError),
    /// Messages stopped arriving.
    #[error("listing failed: {0}")]
    Messages(String),
    /// Nothing arrived in time.
    #[error("listing timed out after {LIST_TIMEOUT:?}")]
    Timeout,
}

/// One subject's latest message.
#[derive(Debug)]
pub(crate) struct Latest {
    /// The key: the subject without the bucket's prefix.
    pub key: String,
    /// Its headers, if any.
    pub headers: Option<HeaderMap>,
    /// Its payload (empty for headers-only listings).
    pub payload: bytes::Bytes,
}

impl Latest {
    /// Whether this entry is a removal rather than a live value, and which kind.
    pub fn removal(&self) -> Option<Removal> {
        removal(self.headers.as_ref())
    }
}

/// How a key went away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Removal {
    /// Deleted or purged on purpose (a leave).
    Removed,
    /// Its TTL ran out: the server left a `MaxAge` marker.
    Expired,
}

impl Removal {
    /// The reason a `left` caused by this removal carries.
    pub fn reason(self) -> Reason {
        match self {
            Removal::Removed => Reason::Leave,
            Removal::Expired => Reason::Timeout,
        }
    }
}

/// Classifies a KV message by its headers: `None` for a value, else how it was
/// removed. Markers the server writes carry `Nats-Marker-Reason`; deletes and purges
/// by clients carry `KV-Operation`.
pub(crate) fn removal(headers: Option<&HeaderMap>) -> Option<Removal> {
    let headers = headers?;
    if let Some(op) = headers.get(KV_OPERATION) {
        return match op.as_str() {
            "DEL" | "PURGE" => Some(Removal::Removed),
            _ => None,
        };
    }
    match headers
        .get(async_nats::header::NATS_MARKER_REASON)?
        .as_str()
    {
        "MaxAge" => Some(Removal::Expired),
        _ => Some(Removal::Removed),
    }
}

/// Whether a KV operation is a removal (for entries read through the KV API).
pub(crate) fn is_removal(operation: Operation) -> bool {
    operation != Operation::Put
}

/// The latest message of every subject matching `prefix` + `filter`, keys stripped
/// of `prefix`.
pub(crate) async fn latest(
    stream: &Stream,
    prefix: &str,
    filter: &str,
    headers_only: bool,
) -> Result<Vec<Latest>, ListError> {
    let consumer = stream
        .create_consumer(pull::OrderedConfig {
            filter_subject: format!("{prefix}{filter}"),
            deliver_policy: DeliverPolicy::LastPerSubject,
            replay_policy: ReplayPolicy::Instant,
            headers_only,
            ..Default::default()
        })
        .await?;
    let mut out = Vec::new();
    if consumer.cached_info().num_pending == 0 {
        return Ok(out);
    }
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| ListError::Messages(e.to_string()))?;
    loop {
        let message = tokio::time::timeout(LIST_TIMEOUT, messages.next())
            .await
            .map_err(|_| ListError::Timeout)?
            .ok_or_else(|| ListError::Messages("consumer ended".into()))?
            .map_err(|e| ListError::Messages(e.to_string()))?;
        let pending = message
            .info()
            .map_err(|e| ListError::Messages(e.to_string()))?
            .pending;
        if let Some(key) = message.subject.as_str().strip_prefix(prefix) {
            out.push(Latest {
                key: key.to_string(),
                headers: message.headers.clone(),
                payload: message.payload.clone(),
            });
        }
        if pending == 0 {
            return Ok(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_removals() {
        assert_eq!(removal(None), None);
        let mut h = HeaderMap::new();
        h.insert("Nats-TTL", "3");
        assert_eq!(removal(Some(&h)), None);
        h.insert(KV_OPERATION, "PURGE");
        assert_eq!(removal(Some(&h)), Some(Removal::Removed));
        let mut h = HeaderMap::new();
        h.insert(async_nats::header::NATS_MARKER_REASON, "MaxAge");
        assert_eq!(removal(Some(&h)), Some(Removal::Expired));
        assert_eq!(Removal::Expired.reason(), Reason::Timeout);
    }
}
