//! Asking a worker something: one core NATS request with a timeout, a JSON reply, and
//! errors that say which service failed and how.
//!
//! The workers are NATS services, so "nobody is listening" is told apart from "it did
//! not answer in time": the first means the service is not running at all.

use std::sync::Arc;
use std::time::Duration;

use async_nats::RequestErrorKind;
use bytes::Bytes;
use chat_protocol::body::{decode_reply, ReplyError};
use serde::de::DeserializeOwned;

/// Why a request to a worker failed: the variant is the kind to match on, and the
/// cause is kept as the error's source.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RequestError {
    /// No worker listens on the subject.
    #[error("{0} service unavailable: no {0} worker is running")]
    Unavailable(&'static str),
    /// A worker listens but did not answer in time.
    #[error("{0} service did not answer within {1:?}")]
    TimedOut(&'static str, Duration),
    /// The worker answered with an error.
    #[error("{0} service refused the request: {1}")]
    Refused(&'static str, String),
    /// The worker could not serve it now (503: too many requests in progress, or its
    /// backend failing): the same request may work after a pause.
    #[error("{0} service refused the request: {1}")]
    Busy(&'static str, String),
    /// The reply was not what the contract says.
    #[error("{0} service sent a malformed reply: {1}")]
    Malformed(&'static str, #[source] Malformed),
    /// NATS itself failed (or the task asking).
    #[error("{0} request failed: {1}")]
    Nats(
        &'static str,
        #[source] Arc<dyn std::error::Error + Send + Sync>,
    ),
}

/// Equal when of the same kind, for the same service, saying the same (the causes
/// themselves cannot be compared).
impl PartialEq for RequestError {
    fn eq(&self, other: &Self) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
            && self.to_string() == other.to_string()
    }
}

impl Eq for RequestError {}

/// How a reply broke the contract.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Malformed {
    /// It is not the contract's JSON.
    #[error(transparent)]
    Json(Arc<serde_json::Error>),
    /// It is, but says something impossible.
    #[error("{0}")]
    Contract(String),
}

/// Sends `body` to `subject` and decodes the worker's reply as `T`.
pub(crate) async fn request<T: DeserializeOwned>(
    client: &async_nats::Client,
    service: &'static str,
    subject: String,
    body: Bytes,
    timeout: Duration,
) -> Result<T, RequestError> {
    let reply = match tokio::time::timeout(timeout, client.request(subject, body)).await {
        Err(_) => return Err(RequestError::TimedOut(service, timeout)),
        Ok(Err(err)) => {
            return Err(match err.kind() {
                RequestErrorKind::NoResponders => RequestError::Unavailable(service),
                RequestErrorKind::TimedOut => RequestError::TimedOut(service, timeout),
                _ => RequestError::Nats(service, Arc::new(err)),
            })
        }
        Ok(Ok(reply)) => reply,
    };
    decode_reply(&reply.payload).map_err(|err| match err {
        ReplyError::Refused(why) if unavailable(&reply) => RequestError::Busy(service, why),
        ReplyError::Refused(why) => RequestError::Refused(service, why),
        ReplyError::Malformed(err) => {
            RequestError::Malformed(service, Malformed::Json(Arc::new(err)))
        }
    })
}

/// Whether an error reply says 503 in its service error code header.
fn unavailable(reply: &async_nats::Message) -> bool {
    reply
        .headers
        .as_ref()
        .and_then(|headers| headers.get(async_nats::service::NATS_SERVICE_ERROR_CODE))
        .and_then(|code| code.as_str().parse::<u16>().ok())
        == Some(chat_runtime::hosting::code::UNAVAILABLE)
}

/// Serializes a request body.
pub(crate) fn body<T: serde::Serialize>(value: &T) -> Bytes {
    Bytes::from(serde_json::to_vec(value).expect("request bodies serialize"))
}
