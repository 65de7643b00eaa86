//! The NATS service `chat-auth`, hosted by [`chat_runtime::hosting`]: four endpoints
//! in the `AUTH` account, and what each answers.
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

use bytes::Bytes;
use chat_protocol::auth::{
    self, AuthReply, PasswdRequest, RegisterRequest, ResumeReply, CHAT_ACCOUNT,
};
use chat_protocol::UserName;
use chat_runtime::hosting::{self, code, Answer, Hosted, Refusal, Spec};
use nkeys::KeyPair;

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
        let authority = Authority::new(Arc::new(issuer), users, config.clone(), client.clone());
        let spec = Spec {
            name: SERVICE_NAME,
            version: env!("CARGO_PKG_VERSION"),
            description: "chat logins (auth callout), registration, password changes",
            endpoints: vec![
                ("callout", auth::CALLOUT.to_string(), Endpoint::Callout),
                ("register", auth::REGISTER.to_string(), Endpoint::Register),
                ("passwd", auth::PASSWD.to_string(), Endpoint::Passwd),
                ("resume", auth::RESUME.to_string(), Endpoint::Resume),
            ],
            concurrency: config.concurrency,
            drain_timeout: config.drain_timeout,
        };
        let hosted = hosting::host(&client, spec, None, move |endpoint, message| {
            let authority = authority.clone();
            async move { answer(&authority, endpoint, &message).await }
        })
        .await
        .map_err(StartError::Service)?;
        tracing::info!(
            service = SERVICE_NAME,
            token_ttl = ?config.token_ttl,
            "auth worker started"
        );
        Ok(Self { hosted })
    }

    /// Stops gracefully: no new requests (other instances get them), answers those
    /// already received (up to [`Config::drain_timeout`]), flushes.
    pub async fn stop(self) {
        self.hosted.stop().await;
        tracing::info!("auth worker stopped");
    }
}

async fn answer(
    authority: &Authority,
    endpoint: Endpoint,
    message: &async_nats::Message,
) -> Answer {
    let reply = match endpoint {
        Endpoint::Callout => match authority.answer(&message.payload).await {
            Ok((jwt, _)) => Ok(Bytes::from(jwt)),
            Err(error @ crate::callout::BadRequest::Late { .. }) => {
                tracing::debug!(%error, "skipped an auth callout request");
                return None;
            }
            Err(error) => {
                // No answer: the server refuses the connection after its timeout.
                tracing::warn!(%error, "ignored an auth callout request");
                return None;
            }
        },
        Endpoint::Register => register(authority, &message.payload).await,
        Endpoint::Passwd => passwd(authority, message).await,
        Endpoint::Resume => resume(authority, message).await,
    };
    Some(reply.map_err(|(code, why)| Refusal::new(code, why)))
}

type Reply = Result<Bytes, (u16, String)>;

fn ok(body: &impl serde::Serialize) -> Reply {
    Ok(serde_json::to_vec(body).expect("replies serialize").into())
}

fn refused(error: UsersError) -> (u16, String) {
    (error.code(), error.to_string())
}

fn parse<T: serde::de::DeserializeOwned>(payload: &[u8], what: &str) -> Result<T, (u16, String)> {
    serde_json::from_slice(payload)
        .map_err(|error| (code::BAD_REQUEST, format!("malformed {what}: {error}")))
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
        .ok_or((
            code::FORBIDDEN,
            "only a logged-in chat user may ask this".to_string(),
        ))?;
    if info.acc != CHAT_ACCOUNT {
        return Err((
            code::FORBIDDEN,
            "only a logged-in chat user may ask this".into(),
        ));
    }
    UserName::new(info.user).map_err(|_| {
        (
            code::FORBIDDEN,
            "only a logged-in chat user may ask this".into(),
        )
    })
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
