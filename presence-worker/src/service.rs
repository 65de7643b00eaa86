//! The NATS service (`chat-presence`): endpoints in the default queue group so any
//! number of instances share the load, `$SRV.PING/INFO/STATS` for health checks and
//! monitoring, one task per request with bounded concurrency.

use std::sync::Arc;

use async_nats::service::{self, endpoint::Endpoint, Service, ServiceExt};
use async_nats::HeaderMap;
use chat_protocol::body::ErrorReply;
use chat_protocol::subjects::endpoints;
use futures::StreamExt;
use tokio::sync::Semaphore;
use tokio::task::{JoinHandle, JoinSet};

use crate::requests;
use crate::stats::EndpointKind;
use crate::worker::Ctx;

/// The service's name, as `nats micro ls` shows it.
pub const SERVICE_NAME: &str = "chat-presence";

/// Starts the service and one serving task per endpoint.
pub(crate) async fn start(
    client: &async_nats::Client,
    ctx: Arc<Ctx>,
) -> Result<(Service, Vec<JoinHandle<()>>), async_nats::Error> {
    let stats = ctx.stats.clone();
    let service = client
        .service_builder()
        .description("chat presence: join/heartbeat/leave, users and rooms")
        .stats_handler(move |endpoint, _| stats.data(&endpoint))
        .start(SERVICE_NAME, env!("CARGO_PKG_VERSION"))
        .await?;
    let limit = Arc::new(Semaphore::new(ctx.config.max_concurrent_requests));
    let mut tasks = Vec::new();
    for (kind, subject) in [
        (EndpointKind::Presence, endpoints::PRESENCE),
        (EndpointKind::Users, endpoints::USERS),
        (EndpointKind::Rooms, endpoints::ROOMS),
    ] {
        let endpoint = service
            .endpoint_builder()
            .name(kind.name())
            .add(subject)
            .await?;
        tasks.push(tokio::spawn(serve(
            ctx.clone(),
            kind,
            endpoint,
            limit.clone(),
        )));
    }
    // A round trip through the server on this connection: the server handles a
    // connection's messages in order, so once the answer is back the subscriptions
    // are in place and requests from any connection reach this instance.
    async_nats::jetstream::new(client.clone())
        .query_account()
        .await?;
    Ok((service, tasks))
}

/// Takes requests until the service stops, each in its own task; then waits for the
/// ones in flight. Aborting this task aborts them too (their `JoinSet` is dropped).
async fn serve(ctx: Arc<Ctx>, kind: EndpointKind, mut endpoint: Endpoint, limit: Arc<Semaphore>) {
    let mut in_flight = JoinSet::new();
    while let Some(request) = endpoint.next().await {
        let Ok(permit) = limit.clone().acquire_owned().await else {
            break;
        };
        let ctx = ctx.clone();
        in_flight.spawn(async move {
            respond(&ctx, kind, request).await;
            drop(permit);
        });
        while in_flight.try_join_next().is_some() {}
    }
    while in_flight.join_next().await.is_some() {}
}

async fn respond(ctx: &Ctx, kind: EndpointKind, request: service::Request) {
    let message = &request.message;
    let result = requests::handle(ctx, kind, message.subject.as_str(), &message.payload).await;
    let (body, headers) = match result {
        Ok(body) => (body, HeaderMap::new()),
        Err(err) => {
            ctx.stats.failure(kind);
            let text = err.text();
            tracing::warn!(
                endpoint = kind.name(),
                subject = %chat_protocol::display::sanitize(message.subject.as_str()),
                code = err.code(),
                error = %text,
                "request refused"
            );
            chat_runtime::error_reply(&ErrorReply::new(text), err.code())
        }
    };
    if message.reply.is_none() {
        tracing::warn!(
            endpoint = kind.name(),
            "request without a reply subject; skipped"
        );
        return;
    }
    if let Err(err) = request.respond_with_headers(Ok(body), headers).await {
        tracing::warn!(endpoint = kind.name(), %err, "cannot send the reply");
    }
}
