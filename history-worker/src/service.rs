//! The NATS service `chat-history`, hosted by [`chat_runtime::hosting`] (each request
//! in its own task, replies, graceful stop): its endpoint and its answers.
//!
//! The endpoint listens on `chat.history.*` in the service API's default queue group,
//! so every instance gets a share of the requests, and `nats micro ls`/`ping`/`stats`
//! see each instance. Each request runs in its own task under a semaphore of
//! [`Config::concurrency`] slots: a long replay never stalls other requests, and a
//! flood of requests cannot take unbounded memory.

use std::sync::Arc;

use async_nats::jetstream;
use bytes::Bytes;
use chat_protocol::subjects;
use chat_runtime::hosting::{self, code, Hosted, Refusal, Spec};

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
        let js = jetstream::new(client.clone());
        let spec = Spec {
            name: SERVICE_NAME,
            version: env!("CARGO_PKG_VERSION"),
            description: "pages of a chat room's stored messages (HistoryRequest -> HistoryPage)",
            endpoints: vec![("history", subjects::endpoints::HISTORY.to_string(), ())],
            concurrency: config.concurrency,
            queue: config.concurrency * hosting::QUEUE_PER_SLOT,
            drain_timeout: config.drain_timeout,
        };
        let shared = Arc::new(config.clone());
        let hosted = hosting::host(&client, spec, None, move |(), message| {
            let (js, config) = (js.clone(), shared.clone());
            async move { Some(answer(&js, &config, &message).await) }
        })
        .await
        .map_err(StartError::Service)?;
        tracing::info!(
            service = SERVICE_NAME,
            subject = subjects::endpoints::HISTORY,
            max_limit = config.max_limit,
            max_page_bytes = config.max_page_bytes,
            concurrency = config.concurrency,
            "history worker started"
        );
        Ok(Self { hosted })
    }

    /// Stops gracefully: stops taking requests (other instances get them from now on),
    /// answers every request already received, waiting up to
    /// [`Config::drain_timeout`], and flushes the replies.
    pub async fn stop(self) {
        self.hosted.stop().await;
        tracing::info!("history worker stopped");
    }
}

/// Serves one request: the page, or the contract's error reply.
async fn answer(
    js: &jetstream::Context,
    config: &Config,
    message: &async_nats::Message,
) -> Result<Bytes, Refusal> {
    let subject = message.subject.as_str();
    match page::serve(js, config, subject, &message.payload).await {
        Ok(page) => {
            tracing::debug!(
                room = %page.room,
                messages = page.messages.len(),
                next = ?page.next,
                "served a history page"
            );
            Ok(serde_json::to_vec(&page)
                .expect("history pages serialize")
                .into())
        }
        Err(error) => {
            let code = error.code();
            match code {
                code::NOT_FOUND => tracing::info!(%error, "history request for an unknown room"),
                code::BAD_REQUEST => tracing::warn!(%error, "refused a history request"),
                _ => tracing::error!(%error, "history request failed"),
            }
            Err(Refusal::new(code, error))
        }
    }
}
