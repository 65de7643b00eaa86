//! The NATS service `chat-history`: receiving requests, serving each in its own task,
//! replying, stopping gracefully.
//!
//! The endpoint listens on `chat.history.*` in the service API's default queue group,
//! so every instance gets a share of the requests, and `nats micro ls`/`ping`/`stats`
//! see each instance. Each request runs in its own task under a semaphore of
//! [`Config::concurrency`] slots: a long replay never stalls other requests, and a
//! flood of requests cannot take unbounded memory.

use std::sync::Arc;

use async_nats::service::{self, ServiceExt};
use async_nats::{jetstream, HeaderMap};
use bytes::Bytes;
use chat_protocol::body::ErrorReply;
use chat_protocol::subjects;
use chat_runtime::Hosted;
use futures::StreamExt;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::config::ConfigError;
use crate::{page, Config};

/// The service's name, as `nats micro ls` shows it and `$SRV.PING.chat-history` reaches it.
pub const SERVICE_NAME: &str = "chat-history";

/// Why a worker could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration's bounds make no sense.
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    /// The service could not be registered.
    #[error("cannot start the {SERVICE_NAME} service: {0}")]
    Service(async_nats::Error),
    /// The history endpoint could not be subscribed.
    #[error("cannot listen on {subject}: {0}", subject = subjects::endpoints::HISTORY)]
    Endpoint(async_nats::Error),
}

/// A running history worker: one instance of the `chat-history` service.
///
/// [`HistoryWorker::stop`] stops it gracefully; dropping it aborts its tasks at once.
pub struct HistoryWorker {
    hosted: Hosted,
}

impl HistoryWorker {
    /// Registers the service on `client` and starts answering history requests.
    pub async fn start(client: async_nats::Client, config: Config) -> Result<Self, StartError> {
        config.validate_for_server(client.server_info().max_payload)?;
        let service = client
            .service_builder()
            .description("pages of a chat room's stored messages (HistoryRequest -> HistoryPage)")
            .start(SERVICE_NAME, env!("CARGO_PKG_VERSION"))
            .await
            .map_err(StartError::Service)?;
        let endpoint = service
            .endpoint_builder()
            .name("history")
            .add(subjects::endpoints::HISTORY)
            .await
            .map_err(StartError::Endpoint)?;
        let serving = tokio::spawn(serve(
            endpoint,
            jetstream::new(client.clone()),
            config.clone(),
        ));
        tracing::info!(
            service = SERVICE_NAME,
            subject = subjects::endpoints::HISTORY,
            max_limit = config.max_limit,
            max_page_bytes = config.max_page_bytes,
            concurrency = config.concurrency,
            "history worker started"
        );
        Ok(Self {
            hosted: Hosted::new(SERVICE_NAME, client, service, serving, config.drain_timeout),
        })
    }

    /// Stops gracefully: stops taking requests (other instances get them from now on),
    /// answers every request already received, waiting up to
    /// [`Config::drain_timeout`], and flushes the replies.
    pub async fn stop(self) {
        self.hosted.stop().await;
        tracing::info!("history worker stopped");
    }
}

/// Takes requests until the endpoint closes, each in its own task, then waits for
/// those in progress. Aborting this task aborts them all (the [`JoinSet`] drops).
async fn serve(mut endpoint: service::endpoint::Endpoint, js: jetstream::Context, config: Config) {
    let slots = Arc::new(Semaphore::new(config.concurrency));
    let config = Arc::new(config);
    let mut tasks = JoinSet::new();
    while let Some(request) = endpoint.next().await {
        while let Some(done) = tasks.try_join_next() {
            log_failure(done);
        }
        if request.message.reply.is_none() {
            tracing::warn!("ignored a history request without a reply subject");
            continue;
        }
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        let (js, config) = (js.clone(), config.clone());
        tasks.spawn(async move {
            answer(&js, &config, request).await;
            drop(slot);
        });
    }
    while let Some(done) = tasks.join_next().await {
        log_failure(done);
    }
}

/// Logs a request task that panicked (a bug: nothing from the wire may panic).
fn log_failure(done: Result<(), tokio::task::JoinError>) {
    if let Err(error) = done {
        tracing::error!(%error, "a history request task failed");
    }
}

/// Serves one request and replies: the page, or the contract's error body with the
/// service API's error headers (the API's own error replies have an empty body).
async fn answer(js: &jetstream::Context, config: &Config, request: service::Request) {
    let subject = request.message.subject.as_str();
    let (body, headers) = match page::serve(js, config, subject, &request.message.payload).await {
        Ok(page) => {
            tracing::debug!(
                room = %page.room,
                messages = page.messages.len(),
                next = ?page.next,
                "served a history page"
            );
            (serde_json::to_vec(&page), HeaderMap::new())
        }
        Err(error) => {
            let code = error.code();
            match code {
                404 => tracing::info!(%error, "history request for an unknown room"),
                400 => tracing::warn!(%error, "refused a history request"),
                _ => tracing::error!(%error, "history request failed"),
            }
            let (body, headers) = chat_runtime::error_reply(&ErrorReply::new(&error), code);
            (Ok(body.to_vec()), headers)
        }
    };
    let body = match body {
        Ok(body) => Bytes::from(body),
        Err(error) => {
            tracing::error!(%error, "cannot serialize a history reply");
            return;
        }
    };
    if let Err(error) = request.respond_with_headers(Ok(body), headers).await {
        tracing::warn!(%error, "cannot send a history reply");
    }
}
