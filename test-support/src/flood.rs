//! Flooding a worker's endpoint with requests at once, counting what came back: the
//! tests that prove every worker stays bounded (refuses the excess, keeps answering).

use std::collections::BTreeMap;

use bytes::Bytes;

/// What a flood of requests got back, by the service error code of each reply.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Flood {
    /// Replies without an error code: served.
    pub served: usize,
    /// Replies by their `Nats-Service-Error-Code` (503: busy).
    pub refused: BTreeMap<u16, usize>,
    /// Requests that got no reply at all (timed out, or no responder).
    pub unanswered: usize,
}

impl Flood {
    /// Counts one request's outcome.
    pub fn count(&mut self, reply: Result<async_nats::Message, async_nats::RequestError>) {
        match reply {
            Err(_) => self.unanswered += 1,
            Ok(message) => {
                let code = message
                    .headers
                    .as_ref()
                    .and_then(|h| h.get(async_nats::service::NATS_SERVICE_ERROR_CODE))
                    .and_then(|v| v.as_str().parse::<u16>().ok());
                match code {
                    None => self.served += 1,
                    Some(code) => *self.refused.entry(code).or_default() += 1,
                }
            }
        }
    }

    /// Refusals with `code`.
    pub fn refused_with(&self, code: u16) -> usize {
        self.refused.get(&code).copied().unwrap_or(0)
    }
}

/// Sends `count` requests with `body` to `subject` at once (every publish goes out
/// before the first reply is awaited) and counts the replies.
pub async fn flood(client: &async_nats::Client, subject: &str, body: Bytes, count: usize) -> Flood {
    let requests = (0..count).map(|_| client.request(subject.to_string(), body.clone()));
    let replies = futures::future::join_all(requests).await;
    let mut flood = Flood::default();
    for reply in replies {
        flood.count(reply);
    }
    flood
}

/// A request body of exactly `len` bytes: `json` followed by spaces (still the same
/// JSON document), the largest a worker accepts when `len` is
/// [`chat_runtime::hosting::MAX_REQUEST_BYTES`].
pub fn padded(json: &str, len: usize) -> Bytes {
    let mut body = json.as_bytes().to_vec();
    body.resize(len.max(body.len()), b' ');
    body.into()
}
