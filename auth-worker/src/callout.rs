//! One auth callout request, from nats-server's signed question to the signed answer.
//!
//! - No password: a guest in `GUEST`, which may only ask `chat.auth.register`.
//! - A resume token ([`crate::resume`]) for the CONNECT user: checked by signature,
//!   expiry and the user record's revision, without hashing.
//! - Otherwise the password, checked against the user table (argon2id).
//!
//! An accepted chat user gets a user JWT for `CHAT` with [`permissions::chat_user`],
//! expiring after [`Config::token_ttl`](crate::Config): the server then disconnects
//! it and the client logs in again, so a password change takes effect by then at the
//! latest. Before that the moderation worker is asked for the user's standing
//! (`chat.standing.<user>`, imported from `CHAT`): a banned user is refused, saying
//! until when; a muted one gets [`permissions::muted_chat_user`] (no chat messages)
//! until the mute ends at the latest; when nobody answers, the login goes through
//! with [`UNKNOWN_STANDING_TTL`] so that a mute takes hold soon after. A refusal says why in the server's log only; the client sees
//! "Authorization Violation" whatever the reason, so a wrong name and a wrong password
//! look the same from outside.

use std::sync::Arc;

use std::time::Duration;

use chat_protocol::auth::{CHAT_ACCOUNT, GUEST_ACCOUNT};
use chat_protocol::body::{decode_reply, Standing};
use chat_protocol::{subjects, UserName};
use nkeys::KeyPair;

use crate::claims::{
    AuthorizationResponse, RequestClaims, ResponseClaims, UserClaims, UserNats, REQUEST_AUDIENCE,
};
use crate::permissions::{self, Permissions};
use crate::users::Users;
use crate::{jwt, resume, Config};

/// How long a login waits for the user's standing.
pub const STANDING_TIMEOUT: Duration = Duration::from_secs(1);
/// Longest login given while the standing is unknown (no moderation worker answered).
pub const UNKNOWN_STANDING_TTL: Duration = Duration::from_secs(60);

/// How a connection was let in, for logs and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A chat user, by password.
    Password(UserName),
    /// A chat user, by resume token.
    Resumed(UserName),
    /// A guest.
    Guest,
    /// Refused, and why (for the server's log).
    Refused(String),
}

/// A callout request left unanswered: the server then refuses the connection after
/// its timeout.
#[derive(Debug, thiserror::Error)]
pub enum BadRequest {
    /// No valid server signature, or not a callout request.
    #[error("unusable auth callout request: {0}")]
    Unusable(#[from] jwt::JwtError),
    /// Older than the server waits for an answer (it queued behind a storm of logins):
    /// the server has refused the connection already, and the client will try again.
    #[error("auth callout request {age_secs} s old, past the server's patience")]
    Late {
        /// How old it was.
        age_secs: i64,
    },
}

/// Decides callout requests.
#[derive(Clone)]
pub struct Authority {
    issuer: Arc<KeyPair>,
    users: Users,
    config: Arc<Config>,
    /// The auth worker's connection, to ask standings.
    client: async_nats::Client,
}

impl Authority {
    /// Answers with `issuer`'s key (the account key named in the server's
    /// `auth_callout.issuer`), checking logins against `users`.
    pub fn new(
        issuer: Arc<KeyPair>,
        users: Users,
        config: Arc<Config>,
        client: async_nats::Client,
    ) -> Self {
        Self {
            issuer,
            users,
            config,
            client,
        }
    }

    /// The standing of `user`, or `None` (with a warning) when it cannot be known.
    async fn standing(&self, user: &UserName) -> Option<Standing> {
        let ask = self
            .client
            .request(subjects::standing(user), bytes::Bytes::new());
        let why = match tokio::time::timeout(STANDING_TIMEOUT, ask).await {
            Ok(Ok(reply)) => match decode_reply::<Standing>(&reply.payload) {
                Ok(standing) => return Some(standing),
                Err(error) => error.to_string(),
            },
            Ok(Err(error)) => error.to_string(),
            Err(_) => format!("no answer within {STANDING_TIMEOUT:?}"),
        };
        tracing::warn!(%user, %why, "standing unknown; short login with full rights");
        None
    }

    /// The signed answer to a callout request's payload, and the verdict.
    pub async fn answer(&self, payload: &[u8]) -> Result<(String, Verdict), BadRequest> {
        let text = String::from_utf8_lossy(payload);
        let request: RequestClaims = jwt::decode(&text)?;
        if request.aud != REQUEST_AUDIENCE {
            tracing::warn!(aud = %request.aud, "callout request with an unexpected audience");
        }
        let now = chrono::Utc::now().timestamp();
        let age_secs = now - request.iat;
        if request.iat > 0 && age_secs > self.config.callout_timeout.as_secs() as i64 {
            return Err(BadRequest::Late { age_secs });
        }
        let request = request.nats;
        let mut verdict = self.decide(&request.connect_opts, now).await;
        let mut rights = None;
        if let Verdict::Password(user) | Verdict::Resumed(user) = &verdict {
            let ttl = self.config.token_ttl.as_secs() as i64;
            let at = chrono::DateTime::from_timestamp(now, 0).unwrap_or_default();
            rights = match self.standing(user).await {
                Some(s) if s.banned_at(at) => {
                    let until = s.banned_until.map(|t| t.to_rfc3339()).unwrap_or_default();
                    let reason = s.reason.map(|r| format!(" ({r})")).unwrap_or_default();
                    let why = format!("{user} is banned until {until}{reason}");
                    verdict = Verdict::Refused(chat_protocol::display::sanitize(&why).into_owned());
                    None
                }
                Some(s) if s.muted_at(at) => {
                    // Ends with the mute (at least a second from now): the server then
                    // disconnects, and the next login has the full rights again.
                    let end = s.muted_until.map_or(now, |t| t.timestamp()).max(now + 1);
                    Some((permissions::muted_chat_user(user), (now + ttl).min(end)))
                }
                Some(_) => Some((permissions::chat_user(user), now + ttl)),
                None => {
                    let short = ttl.min(UNKNOWN_STANDING_TTL.as_secs() as i64);
                    Some((permissions::chat_user(user), now + short))
                }
            };
        }
        let response = match &verdict {
            Verdict::Password(user) | Verdict::Resumed(user) => {
                let (permissions, expires) = rights.expect("set for chat users");
                self.user_jwt(
                    &request.user_nkey,
                    user.as_str(),
                    CHAT_ACCOUNT,
                    permissions,
                    expires,
                    now,
                )
            }
            Verdict::Guest => self.user_jwt(
                &request.user_nkey,
                "guest",
                GUEST_ACCOUNT,
                permissions::guest(),
                now + self.config.guest_ttl.as_secs() as i64,
                now,
            ),
            Verdict::Refused(why) => Ok(AuthorizationResponse::refuse(why.clone())),
        }?;
        let answer = ResponseClaims {
            iat: now,
            iss: self.issuer.public_key(),
            sub: request.user_nkey.clone(),
            aud: request.server_id.id.clone(),
            nats: response,
        };
        let user = request.connect_opts.user.as_deref().unwrap_or("");
        match &verdict {
            Verdict::Refused(why) => tracing::info!(
                user, host = %request.client_info.host, kind = %request.client_info.kind,
                why = %why, "login refused"
            ),
            verdict => tracing::debug!(
                user, host = %request.client_info.host, kind = %request.client_info.kind,
                ?verdict, "login accepted"
            ),
        }
        Ok((jwt::encode(&answer, &self.issuer)?, verdict))
    }

    async fn decide(&self, connect: &crate::claims::ConnectOpts, now: i64) -> Verdict {
        let user = connect.user.as_deref().unwrap_or("");
        let password = connect.pass.as_deref().unwrap_or("");
        if password.is_empty() {
            return Verdict::Guest;
        }
        let refused = || Verdict::Refused(format!("wrong name or password for {user:?}"));
        if resume::is_token(password) {
            let Some(token) = resume::verify(&self.issuer, password, now) else {
                return Verdict::Refused("invalid or expired resume token".into());
            };
            if token.user != user {
                return Verdict::Refused("resume token of another user".into());
            }
            return match self.users.find(user).await {
                Ok(Some(found)) if found.revision == token.revision => {
                    Verdict::Resumed(found.record.user)
                }
                Ok(_) => Verdict::Refused("resume token of an older password".into()),
                Err(error) => Verdict::Refused(format!("user table unavailable: {error}")),
            };
        }
        match self.users.login(user, password).await {
            Ok(Some(found)) => Verdict::Password(found.record.user),
            Ok(None) => refused(),
            Err(error) => Verdict::Refused(format!("user table unavailable: {error}")),
        }
    }

    fn user_jwt(
        &self,
        user_nkey: &str,
        name: &str,
        account: &str,
        permissions: Permissions,
        expires: i64,
        now: i64,
    ) -> Result<AuthorizationResponse, jwt::JwtError> {
        let claims = UserClaims {
            iat: now,
            exp: expires,
            iss: self.issuer.public_key(),
            sub: user_nkey.to_string(),
            name: name.to_string(),
            aud: account.to_string(),
            nats: UserNats::new(permissions),
        };
        Ok(AuthorizationResponse::accept(jwt::encode(
            &claims,
            &self.issuer,
        )?))
    }

    /// A resume token for `user` (who just asked, logged in), or why not.
    pub async fn resume_token(
        &self,
        user: &UserName,
    ) -> Result<(String, chrono::DateTime<chrono::Utc>), crate::users::UsersError> {
        let found = self
            .users
            .find(user.as_str())
            .await?
            .ok_or(crate::users::UsersError::Unknown)?;
        let expires = chrono::Utc::now()
            + chrono::Duration::from_std(self.config.resume_ttl).unwrap_or_default();
        let token = resume::issue(&self.issuer, user, expires.timestamp(), found.revision);
        Ok((token, expires))
    }

    /// The user table.
    pub fn users(&self) -> &Users {
        &self.users
    }
}
