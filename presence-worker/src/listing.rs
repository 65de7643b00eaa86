//! Reading the latest message of every subject matching a filter: how the worker
//! lists the live keys of a bucket (`<room>.*.*`, `<room>.<user>.*`, `>`).
//!
//! Two ways: [`latest`] is what async-nats' `kv.keys()` does for a whole bucket,
//! narrowed to a filter (a [`chat_runtime::scan`] with `DeliverPolicy::LastPerSubject`),
//! consistent with the stream's leader; [`snapshot`] asks JetStream's direct get for
//! the last message of each matching subject in one request, without a consumer.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, DeliverPolicy, ReplayPolicy};
use async_nats::jetstream::kv::Operation;
use async_nats::jetstream::stream::Stream;
use async_nats::HeaderMap;
use chat_runtime::scan::{scan, ScanError};

use futures::StreamExt;
use tokio::sync::Semaphore;

/// How long a listing waits for its next message.
const LIST_TIMEOUT: Duration = Duration::from_secs(10);

/// NATS KV's operation header (async-nats keeps its name private).
pub(crate) const KV_OPERATION: &str = "KV-Operation";

/// JetStream's direct-get API (ADR-31), followed by the stream name.
const DIRECT_GET: &str = "$JS.API.DIRECT.GET.";

/// Why a listing failed; each kind keeps its cause.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    /// The listing consumer failed.
    #[error("listing failed: {0}")]
    Scan(#[from] ScanError),
    /// The direct-get reply inbox could not be subscribed.
    #[error("cannot subscribe for a listing: {0}")]
    Subscribe(#[from] async_nats::SubscribeError),
    /// The direct-get request could not be sent.
    #[error("cannot ask for a listing: {0}")]
    Request(#[from] async_nats::PublishError),
    /// The direct get answered with an error status.
    #[error("direct get answered {status}: {description}")]
    DirectGet {
        /// The status code.
        status: u16,
        /// What the server said.
        description: String,
    },
    /// The direct get's replies stopped.
    #[error("the listing's replies ended early")]
    Ended,
    /// Nothing arrived in time.
    #[error("listing timed out after {LIST_TIMEOUT:?}")]
    Timeout,
    /// The bucket's state could not be read.
    #[error("cannot read the bucket's state: {0}")]
    State(#[from] async_nats::jetstream::stream::InfoError),
    /// The worker is stopping.
    #[error("the worker is stopping")]
    Stopping,
}

/// One subject's latest message.
#[derive(Debug)]
pub(crate) struct LatestEntry {
    /// The key: the subject without the bucket's prefix.
    pub key: String,
    /// Its headers, if any.
    pub headers: Option<HeaderMap>,
    /// Its payload (empty for headers-only listings).
    pub payload: bytes::Bytes,
}

impl LatestEntry {
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

/// Lists keys, with at most a fixed number of consumer-based listings at once.
#[derive(Clone)]
pub(crate) struct Lister {
    client: async_nats::Client,
    permits: Arc<Semaphore>,
}

impl Lister {
    /// A lister running at most `concurrent` consumer-based listings at once.
    pub(crate) fn new(client: async_nats::Client, concurrent: usize) -> Self {
        Self {
            client,
            permits: Arc::new(Semaphore::new(concurrent)),
        }
    }

    /// The latest message of every subject matching `prefix` + `filter`, keys stripped
    /// of `prefix`, read through an ordered consumer on the stream's leader: consistent
    /// with every write acknowledged before the call, which is what decisions (who is
    /// online before announcing a transition) need.
    ///
    /// At most `permits` listings run at once per worker (the server caps a stream's
    /// consumers), and each one deletes its consumer when done.
    pub(crate) async fn latest(
        &self,
        stream: &Stream,
        prefix: &str,
        filter: &str,
        headers_only: bool,
    ) -> Result<Vec<LatestEntry>, ListError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| ListError::Stopping)?;
        let config = pull::OrderedConfig {
            filter_subject: format!("{prefix}{filter}"),
            deliver_policy: DeliverPolicy::LastPerSubject,
            replay_policy: ReplayPolicy::Instant,
            headers_only,
            ..Default::default()
        };
        let mut out = Vec::new();
        scan(stream, config, LIST_TIMEOUT, |message, _| {
            if let Some(key) = message.subject.as_str().strip_prefix(prefix) {
                out.push(LatestEntry {
                    key: key.to_string(),
                    headers: message.headers.clone(),
                    payload: message.payload.clone(),
                });
            }
            true
        })
        .await?;
        Ok(out)
    }

    /// Like [`latest`], but in one direct-get request (`multi_last`) without creating a
    /// consumer: cheap enough for every heartbeat and `/users`. In a cluster a replica
    /// may answer and lag slightly behind, which is fine for showing a count, not for
    /// deciding a transition. Falls back to [`latest`] when more keys match than one
    /// request may return.
    pub(crate) async fn snapshot(
        &self,
        stream: &Stream,
        prefix: &str,
        filter: &str,
    ) -> Result<Vec<LatestEntry>, ListError> {
        let client = &self.client;
        let inbox = client.new_inbox();
        let mut replies = client.subscribe(inbox.clone()).await?;
        let request = serde_json::json!({ "multi_last": [format!("{prefix}{filter}")] });
        let subject = format!("{DIRECT_GET}{}", stream.cached_info().config.name);
        client
            .publish_with_reply(subject, inbox, request.to_string().into())
            .await?;
        let mut out = Vec::new();
        loop {
            let message = tokio::time::timeout(LIST_TIMEOUT, replies.next())
                .await
                .map_err(|_| ListError::Timeout)?
                .ok_or(ListError::Ended)?;
            match message.status {
                None => {
                    let headers = message.headers.unwrap_or_default();
                    let subject = headers
                        .get(async_nats::header::NATS_SUBJECT)
                        .map(|s| s.as_str().to_string())
                        .unwrap_or_default();
                    if let Some(key) = subject.strip_prefix(prefix) {
                        out.push(LatestEntry {
                            key: key.to_string(),
                            headers: Some(headers.clone()),
                            payload: message.payload,
                        });
                    }
                }
                Some(status) if status.as_u16() == 204 => return Ok(out),
                Some(status) if status.as_u16() == 404 => return Ok(out),
                Some(status) if status.as_u16() == 413 => {
                    return self.latest(stream, prefix, filter, true).await;
                }
                Some(status) => {
                    return Err(ListError::DirectGet {
                        status: status.as_u16(),
                        description: message.description.unwrap_or_default(),
                    })
                }
            }
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
    }
}
