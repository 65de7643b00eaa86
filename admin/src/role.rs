//! `chat-admin role USER ROLE`: grants a role, as `@admin`, through the moderation
//! worker's `chat.admin.role` (the only way roles change; chat users cannot reach it).

use std::path::Path;
use std::time::Duration;

use chat_protocol::auth::static_users;
use chat_protocol::body::{decode_reply, ModerationReply, Role, RoleRequest};
use chat_protocol::{subjects, UserName};
use chat_runtime::servers;

use crate::secrets::Secrets;

/// How long the moderation worker has to answer.
const PATIENCE: Duration = Duration::from_secs(5);

/// Why the role could not be granted.
#[derive(Debug, thiserror::Error)]
pub enum RoleError {
    /// nats-server could not be reached or refused `@admin`.
    #[error("cannot connect to {url}: {why}")]
    Connect {
        /// Where.
        url: String,
        /// Why.
        why: String,
    },
    /// No moderation worker answered.
    #[error("no moderation worker answered ({0}); is the stack up (scripts/up)?")]
    NoAnswer(String),
    /// The worker refused.
    #[error("the moderation worker refused: {0}")]
    Refused(#[from] chat_protocol::body::ReplyError),
}

/// Grants `role` to `user` on the stack at `url`.
pub async fn grant(
    url: &str,
    ca: Option<&Path>,
    secrets: &Secrets,
    user: &UserName,
    role: Role,
) -> Result<ModerationReply, RoleError> {
    let admin = async_nats::ConnectOptions::with_user_and_password(
        static_users::ADMIN.into(),
        secrets.password(static_users::ADMIN).into(),
    );
    let client = servers::trust(admin, ca)
        .connection_timeout(PATIENCE)
        .connect(servers::list(url))
        .await
        .map_err(|e| RoleError::Connect {
            url: url.to_string(),
            why: servers::explain(&e, url, ca),
        })?;
    let request = RoleRequest {
        user: user.clone(),
        role,
    };
    let body = serde_json::to_vec(&request).expect("requests serialize");
    let reply = tokio::time::timeout(PATIENCE, client.request(subjects::ADMIN_ROLE, body.into()))
        .await
        .map_err(|_| RoleError::NoAnswer(format!("no reply within {PATIENCE:?}")))?
        .map_err(|e| RoleError::NoAnswer(e.to_string()))?;
    Ok(decode_reply(&reply.payload)?)
}
