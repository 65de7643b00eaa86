//! Hosting a NATS service (async-nats `service`): start, serve, stop gracefully.

use std::time::Duration;

use chat_protocol::body::ErrorReply;

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
        if let Err(error) = self.client.flush().await {
            tracing::warn!(service = self.name, %error, "cannot flush the last replies");
        }
    }
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
