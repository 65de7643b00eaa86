//! The NATS service `chat-history`, hosted by [`chat_runtime::hosting`] (each request
//! in its own task, replies, graceful stop): its endpoints and their answers.
//!
//! The endpoints listen on `chat.history.*` (pages) and `chat.replay.*` (replay plans)
//! in the service API's default queue group, so every instance gets a share of the
//! requests, and `nats micro ls`/`ping`/`stats` see each instance. Each request runs in
//! its own task under a semaphore of [`Config::concurrency`] slots: a long page never
//! stalls other requests, and a flood of requests cannot take unbounded memory.

use std::sync::Arc;

use async_nats::jetstream;
use bytes::Bytes;
use chat_protocol::subjects;
use chat_runtime::hosting::{self, code, Hosted, Refusal, Spec};

use crate::config::ConfigError;
use crate::page::PageError;
use crate::{page, replay, Config};

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
            description: "pages of a chat room's stored messages (HistoryRequest -> HistoryPage) and replay plans (ReplayRequest -> ReplayPlan)",
            endpoints: vec![
                ("history", subjects::endpoints::HISTORY.to_string(), Endpoint::History),
                ("replay", subjects::endpoints::REPLAY.to_string(), Endpoint::Replay),
            ],
            concurrency: config.concurrency,
            queue: config.concurrency * hosting::QUEUE_PER_SLOT,
            drain_timeout: config.drain_timeout,
        };
        let shared = Arc::new(config.clone());
        let hosted = hosting::host(&client, spec, None, move |endpoint, message| {
            let (js, config) = (js.clone(), shared.clone());
            async move {
                Some(match endpoint {
                    Endpoint::History => answer(&js, &config, &message).await,
                    Endpoint::Replay => answer_replay(&js, &message).await,
                })
            }
        })
        .await
        .map_err(StartError::Service)?;
        tracing::info!(
            service = SERVICE_NAME,
            subjects = %format_args!("{} {}", subjects::endpoints::HISTORY, subjects::endpoints::REPLAY),
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

/// The service's endpoints.
#[derive(Debug, Clone, Copy)]
enum Endpoint {
    /// `chat.history.<room>`: a page.
    History,
    /// `chat.replay.<room>`: a replay plan.
    Replay,
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
        Err(error) => Err(refuse(error)),
    }
}

/// Serves one replay request: the plan, or the contract's error reply.
async fn answer_replay(
    js: &jetstream::Context,
    message: &async_nats::Message,
) -> Result<Bytes, Refusal> {
    let plan = replay::plan(js, message.subject.as_str(), &message.payload)
        .await
        .map_err(refuse)?;
    tracing::debug!(room = %plan.room, filter = ?plan.filter, start = plan.start, end = ?plan.end, "planned a replay");
    Ok(serde_json::to_vec(&plan)
        .expect("replay plans serialize")
        .into())
}

/// The error reply for `error`, logged at the level its kind deserves.
fn refuse(error: PageError) -> Refusal {
    let code = error.code();
    match code {
        code::NOT_FOUND => tracing::info!(%error, "history request for an unknown room"),
        code::BAD_REQUEST => tracing::warn!(%error, "refused a history request"),
        _ => tracing::error!(%error, "history request failed"),
    }
    Refusal::new(code, error)
}
