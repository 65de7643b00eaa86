//! Hosting a NATS service (async-nats `service`), written once for every worker:
//! [`host`] registers the service and its endpoints (in the default queue group, so
//! instances share the load) and serves each request in its own task under a
//! concurrency bound; [`Hosted::stop`] stops gracefully.
//!
//! Memory stays bounded whatever the request rate and size (docs/limits.md): the
//! serving loop never waits, so requests do not pile up in the subscription. A request
//! body above [`MAX_REQUEST_BYTES`] is refused at once (413); at most
//! [`Spec::concurrency`] requests are served and [`Spec::queue`] more wait for a slot,
//! and anything beyond is refused at once with 503 "busy, try again" ([`busy`]).
//!
//! One policy for all services: a request without a reply subject is skipped before
//! any work is done (nobody would read the answer); a failed request gets the
//! contract's error body with the service API's error headers ([`error_reply`]) and a
//! code from [`code`]; a handler may also choose not to answer at all (the auth
//! callout does, for requests the server has given up on).

use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_nats::service::{self, ServiceExt};
use bytes::Bytes;
use chat_protocol::body::ErrorReply;
use futures::StreamExt;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// The codes of failed requests (`Nats-Service-Error-Code`), the same in every service.
pub mod code {
    /// The request is malformed or breaks the contract's rules.
    pub const BAD_REQUEST: u16 = 400;
    /// Wrong name or password.
    pub const UNAUTHORIZED: u16 = 401;
    /// The requester may not ask this.
    pub const FORBIDDEN: u16 = 403;
    /// What the request names does not exist.
    pub const NOT_FOUND: u16 = 404;
    /// The request conflicts with the current state (a name taken, a lost race).
    pub const CONFLICT: u16 = 409;
    /// The worker itself failed.
    pub const INTERNAL: u16 = 500;
    /// The request body is larger than any the contract has.
    pub const TOO_LARGE: u16 = 413;
    /// Too many requests from this client host; the reply says when to retry.
    pub const TOO_MANY: u16 = 429;
    /// The worker's backend (JetStream) failed, or the worker is busy; trying again
    /// later may work.
    pub const UNAVAILABLE: u16 = 503;
}

/// Requests that may wait for a slot per request served at once: the usual
/// [`Spec::queue`] is `concurrency * QUEUE_PER_SLOT`, enough to absorb a burst (a
/// reconnect storm's logins) and small enough to bound memory.
pub const QUEUE_PER_SLOT: usize = 4;

/// Largest request body any endpoint takes: the contract's largest body is a chat
/// message (32 KiB); requests (history, presence, logins, registration) are far
/// smaller. A larger one is refused before any work is done.
pub const MAX_REQUEST_BYTES: usize = chat_protocol::streams::MAX_MESSAGE_BYTES as usize;

/// A failed request: what the reply says and its [`code`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// One of [`code`].
    pub code: u16,
    /// What was wrong (sanitized before it is sent).
    pub why: String,
}

impl Refusal {
    /// A refusal with `code` saying `why`.
    pub fn new(code: u16, why: impl std::fmt::Display) -> Self {
        Self {
            code,
            why: why.to_string(),
        }
    }
}

/// What a handler does with one request.
pub type Answer = Option<Result<Bytes, Refusal>>;

/// The `$SRV.STATS` data of an endpoint, by the endpoint's value in [`Spec::endpoints`]
/// (a typed key, not its name).
pub type StatsData<K> = Arc<dyn Fn(K) -> serde_json::Value + Send + Sync>;

/// What [`host`] registers.
pub struct Spec<K> {
    /// The service's name (`nats micro ls`, `$SRV.PING.<name>`).
    pub name: &'static str,
    /// Its version.
    pub version: &'static str,
    /// What it does.
    pub description: &'static str,
    /// Its endpoints: name, subject, and the value the handler gets for it.
    pub endpoints: Vec<(&'static str, String, K)>,
    /// Requests served at once.
    pub concurrency: usize,
    /// Requests that may wait in memory for a slot; beyond `concurrency + queue` a
    /// request is refused at once (503, [`busy`]).
    pub queue: usize,
    /// How long [`Hosted::stop`] waits for requests in progress.
    pub drain_timeout: Duration,
}

/// Registers the service `spec` describes on `client` and serves it: each request of
/// an endpoint goes, in its own task, to `handle` with that endpoint's value; its
/// answer is sent back. Started means reachable: the server has the endpoints'
/// subscriptions when this returns. `stats` fills the endpoints' `$SRV.STATS` data.
///
/// ```no_run
/// # async fn run(client: async_nats::Client) -> Result<(), async_nats::Error> {
/// use std::time::Duration;
/// use chat_runtime::hosting::{self, code, Refusal, Spec};
/// let spec = Spec {
///     name: "chat-echo",
///     version: "0.1.0",
///     description: "says back what it is sent",
///     endpoints: vec![("echo", "chat.echo".to_string(), ())],
///     concurrency: 64,
///     queue: 64 * hosting::QUEUE_PER_SLOT,
///     drain_timeout: Duration::from_secs(10),
/// };
/// let hosted = hosting::host(&client, spec, None, |(), message: async_nats::Message| async move {
///     if message.payload.is_empty() {
///         return Some(Err(Refusal::new(code::BAD_REQUEST, "say something")));
///     }
///     Some(Ok(message.payload))
/// })
/// .await?;
/// // ... until asked to stop:
/// hosted.stop().await;
/// # Ok(())
/// # }
/// ```
pub async fn host<K, H, F>(
    client: &async_nats::Client,
    spec: Spec<K>,
    stats: Option<StatsData<K>>,
    handle: H,
) -> Result<Hosted, async_nats::Error>
where
    K: Copy + Debug + Send + Sync + 'static,
    H: Fn(K, async_nats::Message) -> F + Clone + Send + 'static,
    F: Future<Output = Answer> + Send + 'static,
{
    let mut builder = client.service_builder().description(spec.description);
    if let Some(stats) = stats {
        let keys: std::collections::HashMap<String, K> = (spec.endpoints.iter())
            .map(|(name, _, key)| (name.to_string(), *key))
            .collect();
        builder = builder.stats_handler(move |endpoint, _| {
            keys.get(&endpoint)
                .map_or(serde_json::Value::Null, |key| stats(*key))
        });
    }
    let service = builder.start(spec.name, spec.version).await?;
    let mut endpoints = Vec::new();
    for (name, subject, kind) in spec.endpoints {
        let endpoint = service.endpoint_builder().name(name).add(subject).await?;
        endpoints.push(endpoint.map(move |request| (kind, request)).boxed());
    }
    // A round trip through the server on this connection, which handles a
    // connection's messages in order: once the service's own PING is answered, the
    // endpoints' subscriptions are in place for requests from any connection.
    // (`flush` only writes the buffer out; it waits for nothing.)
    client
        .request(format!("$SRV.PING.{}", spec.name), Bytes::new())
        .await?;
    let requests = futures::stream::select_all(endpoints);
    let bounds = Bounds {
        concurrency: spec.concurrency.max(1),
        queue: spec.queue,
    };
    let serving = tokio::spawn(serve(requests, bounds, handle));
    Ok(Hosted::new(
        spec.name,
        client.clone(),
        service,
        serving,
        spec.drain_timeout,
    ))
}

/// How many requests are served at once and how many more may wait.
#[derive(Debug, Clone, Copy)]
struct Bounds {
    concurrency: usize,
    queue: usize,
}

/// The refusal of a request that finds `concurrency + queue` requests already taken.
pub fn busy() -> Refusal {
    Refusal::new(
        code::UNAVAILABLE,
        "busy, try again: this service has too many requests in progress",
    )
}

/// The refusal of a request body of `len` bytes, above [`MAX_REQUEST_BYTES`].
fn too_large(len: usize) -> Refusal {
    Refusal::new(
        code::TOO_LARGE,
        format!("request too large: {len} bytes; at most {MAX_REQUEST_BYTES} bytes"),
    )
}

/// Takes requests until the endpoints close, each in its own task, then waits for
/// those in progress. Aborting this task aborts them all (the [`JoinSet`] drops).
///
/// The loop itself never waits for a slot: a request that cannot be admitted is
/// refused and dropped at once, so the subscription's buffer stays empty and memory
/// holds at most `concurrency + queue` requests of [`MAX_REQUEST_BYTES`].
async fn serve<K, H, F>(
    mut requests: impl futures::Stream<Item = (K, service::Request)> + Unpin,
    bounds: Bounds,
    handle: H,
) where
    K: Copy + Debug + Send + 'static,
    H: Fn(K, async_nats::Message) -> F + Clone + Send + 'static,
    F: Future<Output = Answer> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(bounds.concurrency));
    let admitted = Arc::new(Semaphore::new(bounds.concurrency + bounds.queue));
    let mut tasks = JoinSet::new();
    // Busy refusals are logged once per episode, not once per request of a flood.
    let mut busy_logged = false;
    let mut too_large_count: u64 = 0;
    while let Some((endpoint, request)) = requests.next().await {
        while let Some(done) = tasks.try_join_next() {
            log_failure(done);
        }
        if request.message.reply.is_none() {
            tracing::warn!(?endpoint, "skipped a request without a reply subject");
            continue;
        }
        let len = request.message.payload.len();
        if len > MAX_REQUEST_BYTES {
            // Logged at the 1st, 2nd, 4th, 8th... so that a flood does not flood the log.
            too_large_count += 1;
            if too_large_count.is_power_of_two() {
                tracing::warn!(
                    ?endpoint,
                    len,
                    refused = too_large_count,
                    "refused a request too large"
                );
            }
            respond(request, endpoint, Some(Err(too_large(len)))).await;
            continue;
        }
        let Ok(admission) = admitted.clone().try_acquire_owned() else {
            if !busy_logged {
                tracing::warn!(
                    ?endpoint,
                    concurrency = bounds.concurrency,
                    queue = bounds.queue,
                    "busy: refusing requests beyond the bound"
                );
                busy_logged = true;
            }
            respond(request, endpoint, Some(Err(busy()))).await;
            continue;
        };
        busy_logged = false;
        let (slots, handle) = (slots.clone(), handle.clone());
        tasks.spawn(async move {
            let Ok(_slot) = slots.acquire_owned().await else {
                return;
            };
            let answer = handle(endpoint, request.message.clone()).await;
            respond(request, endpoint, answer).await;
            drop(admission);
        });
    }
    while let Some(done) = tasks.join_next().await {
        log_failure(done);
    }
}

/// Logs a request task that panicked (a bug: nothing from the wire may panic).
fn log_failure(done: Result<(), tokio::task::JoinError>) {
    if let Err(error) = done {
        tracing::error!(%error, "a request task failed");
    }
}

/// Sends a handler's answer, if it has one.
async fn respond(request: service::Request, endpoint: impl Debug, answer: Answer) {
    let (body, headers) = match answer {
        None => return,
        Some(Ok(body)) => (body, async_nats::HeaderMap::new()),
        Some(Err(refusal)) => error_reply(&ErrorReply::new(&refusal.why), refusal.code),
    };
    if let Err(error) = request.respond_with_headers(Ok(body), headers).await {
        tracing::warn!(%error, ?endpoint, "cannot send a reply");
    }
}

/// A NATS service (async-nats `service`) and the task serving its requests: how the
/// workers host a service and stop it, written once.
///
/// [`Hosted::stop`] stops gracefully; dropping it aborts the serving task at once (a
/// crash, as far as the service's callers can tell).
pub struct Hosted {
    name: &'static str,
    service: Option<async_nats::service::Service>,
    serving: Option<tokio::task::JoinHandle<()>>,
    client: async_nats::Client,
    drain_timeout: Duration,
}

impl Hosted {
    /// `service` (named `name`, on `client`), served by the task `serving`, which must
    /// end once the service's endpoints close and the requests it took are answered.
    pub fn new(
        name: &'static str,
        client: async_nats::Client,
        service: async_nats::service::Service,
        serving: tokio::task::JoinHandle<()>,
        drain_timeout: Duration,
    ) -> Self {
        Self {
            name,
            service: Some(service),
            serving: Some(serving),
            client,
            drain_timeout,
        }
    }

    /// Stops gracefully: stops taking requests (other instances get them from now on),
    /// waits up to the drain timeout for those already taken, and flushes the replies.
    pub async fn stop(mut self) {
        if let Some(service) = self.service.take() {
            let _ = service.stop().await;
        }
        if let Some(mut serving) = self.serving.take() {
            if tokio::time::timeout(self.drain_timeout, &mut serving)
                .await
                .is_err()
            {
                tracing::warn!(
                    service = self.name,
                    timeout = ?self.drain_timeout,
                    "requests still in progress at shutdown were abandoned"
                );
                serving.abort();
            }
        }
        // The serving task dropped the endpoints' subscriptions, which queued their
        // UNSUBs. A round trip through the server after them means the server has
        // processed them: from here on, every request goes to the other instances.
        // (It also sends the last replies; `flush` alone waits for nothing.)
        let round_trip = tokio::time::timeout(self.drain_timeout, round_trip(&self.client));
        match round_trip.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::warn!(service = self.name, %error, "cannot flush the last replies")
            }
            Err(_) => tracing::warn!(service = self.name, "the server did not confirm the stop"),
        }
    }
}

/// A message to itself through the server on `client`'s connection: the server
/// handles a connection's operations in order, so once it comes back, everything
/// sent before it (replies, UNSUBs) has reached the server and been processed.
async fn round_trip(client: &async_nats::Client) -> Result<(), async_nats::Error> {
    let inbox = client.new_inbox();
    let mut echo = client.subscribe(inbox.clone()).await?;
    client.publish(inbox, Bytes::new()).await?;
    client.flush().await?;
    echo.next()
        .await
        .map(|_| ())
        .ok_or_else(|| "the connection closed".into())
}

impl Drop for Hosted {
    fn drop(&mut self) {
        if let Some(serving) = self.serving.take() {
            serving.abort();
        }
        if let Some(service) = self.service.take() {
            // `Service::stop` only signals and aborts; it completes without waiting.
            use futures::FutureExt;
            let _ = service.stop().now_or_never();
        }
    }
}

/// The reply message of a failed service request: the contract's [`ErrorReply`] body
/// plus the NATS service API's `Nats-Service-Error` / `Nats-Service-Error-Code`
/// headers, so that generic service tooling sees the failure too. (The service API's
/// own error responses carry an empty body, which would break the contract.)
pub fn error_reply(reply: &ErrorReply, code: u16) -> (bytes::Bytes, async_nats::HeaderMap) {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(
        async_nats::service::NATS_SERVICE_ERROR,
        reply.error.as_str(),
    );
    headers.insert(
        async_nats::service::NATS_SERVICE_ERROR_CODE,
        code.to_string().as_str(),
    );
    let body = serde_json::to_vec(reply).unwrap_or_default();
    (body.into(), headers)
}
