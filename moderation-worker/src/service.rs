//! The NATS service `chat-moderation` and the worker around it: [`ModerationWorker`]
//! opens the bucket, hosts the three endpoints through [`chat_runtime::hosting`]
//! (each request in its own task under a concurrency bound, error replies, graceful
//! stop), and runs the rate limit's counting and the outbox's takeover watch.

use std::sync::Arc;

use async_nats::jetstream;
use bytes::Bytes;
use chat_protocol::subjects;
use chat_runtime::hosting::{self, Hosted, Refusal, Spec};
use serde::Serialize;

use crate::commands::{self, CommandError};
use crate::config::ConfigError;
use crate::kick::Kicker;
use crate::outbox::Outbox;
use crate::record::Store;
use crate::{flood, Config};

/// The service's name, as `nats micro ls` shows it and `$SRV.PING.chat-moderation`
/// reaches it.
pub const SERVICE_NAME: &str = "chat-moderation";

/// Why a worker could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration makes no sense.
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    /// The moderation bucket could not be created or opened.
    #[error("cannot open the moderation bucket: {0}")]
    Bucket(async_nats::Error),
    /// The service could not be registered.
    #[error("cannot start the {SERVICE_NAME} service: {0}")]
    Service(async_nats::Error),
}

/// The connections a worker uses: `chat` (as `@moderation`: the service, the bucket,
/// the room streams), `counting` (as `@moderation` too: only the subscription to every
/// room message, so a flood being read never delays anything else) and `system` (as
/// `@moderation_sys` in `SYS`: listing and kicking connections).
pub struct Links {
    /// As `@moderation`.
    pub chat: async_nats::Client,
    /// As `@moderation`, second connection.
    pub counting: async_nats::Client,
    /// As `@moderation_sys`.
    pub system: async_nats::Client,
}

/// Which endpoint a request came in on.
#[derive(Debug, Clone, Copy)]
enum Endpoint {
    Moderate,
    Standing,
    Role,
}

/// A running moderation worker. [`ModerationWorker::stop`] stops it gracefully;
/// dropping it aborts its tasks at once (a crash, as far as anyone can tell).
pub struct ModerationWorker {
    hosted: Hosted,
    tasks: Tasks,
}

/// The worker's background tasks, aborted when dropped.
struct Tasks(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

impl ModerationWorker {
    /// Opens the bucket, registers the service and starts counting.
    pub async fn start(links: Links, config: Config) -> Result<Self, StartError> {
        config.validate()?;
        let js = jetstream::new(links.chat.clone());
        let replicas =
            chat_runtime::replicas::choose(&links.chat, config.replicas, "the moderation bucket");
        let store = Store::open(&js, replicas)
            .await
            .map_err(StartError::Bucket)?;
        let outbox = Outbox::new(
            js.clone(),
            store,
            Kicker::new(links.system),
            config.rate,
            config.takeover_after,
        );
        let config = Arc::new(config);
        let spec = Spec {
            name: SERVICE_NAME,
            version: env!("CARGO_PKG_VERSION"),
            description: "moderation: commands, standings, roles, and the rate limit",
            endpoints: vec![
                (
                    "moderate",
                    subjects::endpoints::MODERATE.to_string(),
                    Endpoint::Moderate,
                ),
                (
                    "standing",
                    subjects::endpoints::STANDING.to_string(),
                    Endpoint::Standing,
                ),
                (
                    "role",
                    subjects::endpoints::ADMIN_ROLE.to_string(),
                    Endpoint::Role,
                ),
            ],
            concurrency: config.concurrency,
            queue: config.concurrency * hosting::QUEUE_PER_SLOT,
            drain_timeout: config.drain_timeout,
        };
        let (shared, served) = (config.clone(), outbox.clone());
        let hosted = hosting::host(&links.chat, spec, None, move |endpoint, message| {
            let (outbox, js, config) = (served.clone(), js.clone(), shared.clone());
            async move { Some(answer(&outbox, &js, &config, endpoint, &message).await) }
        })
        .await
        .map_err(StartError::Service)?;
        let tasks = Tasks(vec![
            tokio::spawn(outbox.clone().watch()),
            tokio::spawn(flood::count(links.counting, outbox, config.clone())),
        ]);
        tracing::info!(
            service = SERVICE_NAME,
            burst = config.rate.burst,
            per_second = config.rate.per_second,
            flood_mute_secs = config.flood_mute.as_secs(),
            "moderation worker started"
        );
        Ok(Self { hosted, tasks })
    }

    /// Stops gracefully: stops taking requests (other instances get them from now on),
    /// answers those already received, and stops counting. Work left pending in the
    /// bucket is finished by another instance.
    pub async fn stop(self) {
        drop(self.tasks);
        self.hosted.stop().await;
        tracing::info!("moderation worker stopped");
    }
}

/// Serves one request: the reply body, or the contract's error reply.
async fn answer(
    outbox: &Outbox,
    js: &jetstream::Context,
    config: &Config,
    endpoint: Endpoint,
    message: &async_nats::Message,
) -> Result<Bytes, Refusal> {
    let subject = message.subject.as_str();
    let result = match endpoint {
        Endpoint::Moderate => commands::moderate(outbox, js, subject, &message.payload)
            .await
            .map(|r| to_json(&r)),
        Endpoint::Standing => commands::standing(outbox, &config.rate, subject)
            .await
            .map(|r| to_json(&r)),
        Endpoint::Role => commands::grant(outbox, &message.payload)
            .await
            .map(|r| to_json(&r)),
    };
    result.map_err(|error| {
        match &error {
            CommandError::Unavailable(_) => tracing::error!(%error, ?endpoint, "request failed"),
            _ => tracing::info!(%error, ?endpoint, "request refused"),
        }
        Refusal::new(error.code(), error)
    })
}

fn to_json(body: &impl Serialize) -> Bytes {
    serde_json::to_vec(body).expect("replies serialize").into()
}
