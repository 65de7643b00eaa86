//! The NATS service (`chat-presence`), hosted by [`chat_runtime::hosting`]: its
//! endpoints, and how a refused request is counted and logged.

use std::sync::Arc;

use chat_protocol::subjects::endpoints;
use chat_runtime::hosting::{self, Answer, Hosted, Refusal, Spec};

use crate::context::Context;
use crate::requests;
use crate::stats::EndpointKind;

/// The service's name, as `nats micro ls` shows it.
pub const SERVICE_NAME: &str = "chat-presence";

/// How long a stop waits for requests in progress.
const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Registers the service and starts serving it.
pub(crate) async fn start(
    client: &async_nats::Client,
    ctx: Arc<Context>,
) -> Result<Hosted, async_nats::Error> {
    let spec = Spec {
        name: SERVICE_NAME,
        version: env!("CARGO_PKG_VERSION"),
        description: "chat presence: join/heartbeat/leave, users and rooms",
        endpoints: [
            (EndpointKind::Presence, endpoints::PRESENCE),
            (EndpointKind::Users, endpoints::USERS),
            (EndpointKind::Rooms, endpoints::ROOMS),
        ]
        .into_iter()
        .map(|(kind, subject)| (kind.name(), subject.to_string(), kind))
        .collect(),
        concurrency: ctx.config.max_concurrent_requests,
        queue: ctx.config.max_queued_requests,
        drain_timeout: DRAIN_TIMEOUT,
    };
    let stats = ctx.stats.clone();
    let stats: hosting::StatsData<EndpointKind> = Arc::new(move |endpoint| stats.data(endpoint));
    hosting::host(client, spec, Some(stats), move |kind, message| {
        let ctx = ctx.clone();
        async move { respond(&ctx, kind, &message).await }
    })
    .await
}

async fn respond(ctx: &Context, kind: EndpointKind, message: &async_nats::Message) -> Answer {
    let result = requests::handle(ctx, kind, message.subject.as_str(), &message.payload).await;
    Some(result.map_err(|err| {
        ctx.stats.failure(kind);
        let text = err.text();
        tracing::warn!(
            endpoint = kind.name(),
            subject = %chat_protocol::display::sanitize(message.subject.as_str()),
            code = err.code(),
            error = %text,
            "request refused"
        );
        Refusal::new(err.code(), text)
    }))
}
