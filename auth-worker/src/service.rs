//! The NATS service `chat-auth`: four endpoints in the `AUTH` account, each request
//! served in its own task under a concurrency bound, and a graceful stop.
//!
//! | endpoint | subject | who reaches it |
//! | --- | --- | --- |
//! | `callout` | `$SYS.REQ.USER.AUTH` | nats-server, for every connection not in `auth_users` |
//! | `register` | `chat.auth.register` | guests (imported into `GUEST`) |
//! | `passwd` | `chat.auth.passwd` | chat users (imported into `CHAT`) |
//! | `resume` | `chat.auth.resume` | chat users (imported into `CHAT`) |
//!
//! The imports share the requester's identity (`share: true`): the server adds a
//! `Nats-Request-Info` header that a client cannot forge, and `passwd` and `resume`
//! act for the user it names.

use std::sync::Arc;

use async_nats::service::{self, ServiceExt};
use async_nats::HeaderMap;
use bytes::Bytes;
use chat_protocol::auth::{
    self, AuthReply, PasswdRequest, RegisterRequest, ResumeReply, CHAT_ACCOUNT,
};
use chat_protocol::body::ErrorReply;
use chat_protocol::UserName;
use chat_runtime::Hosted;
use futures::StreamExt;
use nkeys::KeyPair;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::callout::Authority;
use crate::password::Hasher;
use crate::users::{Users, UsersError};
use crate::Config;

/// The service's name (`$SRV.PING.chat-auth`, `nats micro ls` as `@auth`).
pub const SERVICE_NAME: &str = "chat-auth";

/// Why a worker could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The user table could not be opened or created.
    #[error("cannot open the user table: {0}")]
    Users(#[source] async_nats::Error),
    /// The service or an endpoint could not be registered.
    #[error("cannot start the {SERVICE_NAME} service: {0}")]
    Service(#[source] async_nats::Error),
}

/// A running auth worker: one instance of `chat-auth`.
///
/// [`AuthWorker::stop`] stops it gracefully; dropping it aborts its tasks at once.
pub struct AuthWorker {
    hosted: Hosted,
}

#[derive(Debug, Clone, Copy)]
enum Endpoint {
    Callout,
    Register,
    Passwd,
    Resume,
}

impl AuthWorker {
    /// Opens the user table and starts answering on `client` (a connection as `@auth`
    /// in the `AUTH` account), signing with `issuer`, the account key whose public key
    /// the server configuration names as the callout's issuer.
    pub async fn start(
        client: async_nats::Client,
        issuer: KeyPair,
        config: Config,
    ) -> Result<Self, StartError> {
        let js = async_nats::jetstream::new(client.clone());
        let users = Users::open(&js, config.kv_replicas, Hasher::new(config.hash_slots))
            .await
            .map_err(StartError::Users)?;
        let config = Arc::new(config);
        let authority = Authority::new(Arc::new(issuer), users, config.clone());
        let service = client
            .service_builder()
            .description("chat logins (auth callout), registration, password changes")
            .start(SERVICE_NAME, env!("CARGO_PKG_VERSION"))
            .await
            .map_err(StartError::Service)?;
        let mut endpoints = Vec::new();
        for (name, subject, kind) in [
            ("callout", auth::CALLOUT, Endpoint::Callout),
            ("register", auth::REGISTER, Endpoint::Register),
            ("passwd", auth::PASSWD, Endpoint::Passwd),
            ("resume", auth::RESUME, Endpoint::Resume),
        ] {
            let endpoint = service
                .endpoint_builder()
                .name(name)
                .add(subject)
                .await
                .map_err(StartError::Service)?;
            endpoints.push(endpoint.map(move |request| (kind, request)).boxed());
        }
        // Started means reachable: the server has the endpoints' subscriptions.
        client
            .flush()
            .await
            .map_err(|e| StartError::Service(e.into()))?;
        let requests = futures::stream::select_all(endpoints);
        let serving = tokio::spawn(serve(requests, authority, config.concurrency));
        tracing::info!(
            service = SERVICE_NAME,
            token_ttl = ?config.token_ttl,
            "auth worker started"
        );
        Ok(Self {
            hosted: Hosted::new(SERVICE_NAME, client, service, serving, config.drain_timeout),
        })
    }

    /// Stops gracefully: no new requests (other instances get them), answers those
    /// already received (up to [`Config::drain_timeout`]), flushes.
    pub async fn stop(self) {
        self.hosted.stop().await;
        tracing::info!("auth worker stopped");
    }
}

async fn serve(
    mut requests: impl futures::Stream<Item = (Endpoint, service::Request)> + Unpin,
    authority: Authority,
    concurrency: usize,
) {
    let slots = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = JoinSet::new();
    while let Some((endpoint, request)) = requests.next().await {
        while let Some(done) = tasks.try_join_next() {
            if let Err(error) = done {
                tracing::error!(%error, "an auth request task failed");
            }
        }
        if request.message.reply.is_none() {
            tracing::warn!(?endpoint, "ignored a request without a reply subject");
            continue;
        }
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        let authority = authority.clone();
        tasks.spawn(async move {
            answer(&authority, endpoint, request).await;
            drop(slot);
        });
    }
    while tasks.join_next().await.is_some() {}
}

async fn answer(authority: &Authority, endpoint: Endpoint, request: service::Request) {
    let reply = match endpoint {
        Endpoint::Callout => match authority.answer(&request.message.payload).await {
            Ok((jwt, _)) => Ok(Bytes::from(jwt)),
            Err(error @ crate::callout::BadRequest::Late { .. }) => {
                tracing::debug!(%error, "skipped an auth callout request");
                return;
            }
            Err(error) => {
                // No answer: the server refuses the connection after its timeout.
                tracing::warn!(%error, "ignored an auth callout request");
                return;
            }
        },
        Endpoint::Register => register(authority, &request.message.payload).await,
        Endpoint::Passwd => passwd(authority, &request.message).await,
        Endpoint::Resume => resume(authority, &request.message).await,
    };
    let (body, headers) = match reply {
        Ok(body) => (body, HeaderMap::new()),
        Err((code, why)) => chat_runtime::error_reply(&ErrorReply::new(why), code),
    };
    if let Err(error) = request.respond_with_headers(Ok(body), headers).await {
        tracing::warn!(%error, ?endpoint, "cannot send a reply");
    }
}

type Reply = Result<Bytes, (u16, String)>;

fn ok(body: &impl serde::Serialize) -> Reply {
    Ok(serde_json::to_vec(body).expect("replies serialize").into())
}

fn refused(error: UsersError) -> (u16, String) {
    (error.code(), error.to_string())
}

fn parse<T: serde::de::DeserializeOwned>(payload: &[u8], what: &str) -> Result<T, (u16, String)> {
    serde_json::from_slice(payload).map_err(|error| (400, format!("malformed {what}: {error}")))
}

async fn register(authority: &Authority, payload: &[u8]) -> Reply {
    let request: RegisterRequest =
        parse(payload, "registration (expected {\"user\", \"password\"})")?;
    let user = authority
        .users()
        .register(&request.user, &request.password)
        .await
        .map_err(refused)?;
    tracing::info!(%user, "registered");
    ok(&AuthReply { ok: true, user })
}

/// The chat user who sent `message`, from the header the server adds to imported
/// requests (a client cannot set it: the server overwrites it).
fn requester(message: &async_nats::Message) -> Result<UserName, (u16, String)> {
    #[derive(serde::Deserialize)]
    struct RequestInfo {
        #[serde(default)]
        acc: String,
        #[serde(default)]
        user: String,
    }
    let info = message
        .headers
        .as_ref()
        .and_then(|h| h.get(auth::REQUEST_INFO_HEADER))
        .and_then(|v| serde_json::from_str::<RequestInfo>(v.as_str()).ok())
        .ok_or((403, "only a logged-in chat user may ask this".to_string()))?;
    if info.acc != CHAT_ACCOUNT {
        return Err((403, "only a logged-in chat user may ask this".into()));
    }
    UserName::new(info.user).map_err(|_| (403, "only a logged-in chat user may ask this".into()))
}

async fn passwd(authority: &Authority, message: &async_nats::Message) -> Reply {
    let user = requester(message)?;
    let request: PasswdRequest = parse(
        &message.payload,
        "password change (expected {\"old\", \"new\"})",
    )?;
    authority
        .users()
        .change_password(&user, &request.old, &request.new)
        .await
        .map_err(refused)?;
    tracing::info!(%user, "password changed");
    ok(&AuthReply { ok: true, user })
}

async fn resume(authority: &Authority, message: &async_nats::Message) -> Reply {
    let user = requester(message)?;
    let (token, expires) = authority.resume_token(&user).await.map_err(refused)?;
    ok(&ResumeReply {
        ok: true,
        token,
        expires,
    })
}
