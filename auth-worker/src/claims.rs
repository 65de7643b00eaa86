//! The claims of the auth callout exchange (nats-io/jwt v2 `authorization_claims.go`
//! and `user_claims.go`), only the fields this worker reads or writes.

use serde::{Deserialize, Serialize};

use crate::permissions::Permissions;

/// `aud` of a callout request.
pub const REQUEST_AUDIENCE: &str = "nats-authorization-request";

/// What nats-server asks: the JWT on `$SYS.REQ.USER.AUTH`, signed by the server.
#[derive(Debug, Clone, Deserialize)]
pub struct RequestClaims {
    /// The server's public key (it signed the request).
    pub iss: String,
    /// When the server asked (seconds since the epoch).
    #[serde(default)]
    pub iat: i64,
    /// [`REQUEST_AUDIENCE`].
    #[serde(default)]
    pub aud: String,
    /// The request itself.
    pub nats: AuthorizationRequest,
}

/// The `nats` claim of a callout request.
#[derive(Debug, Clone, Deserialize)]
pub struct AuthorizationRequest {
    /// The server asking.
    pub server_id: ServerId,
    /// A fresh public key for this connection: the answer must be for it.
    pub user_nkey: String,
    /// Where the connection comes from.
    #[serde(default)]
    pub client_info: ClientInfo,
    /// What the client put in its CONNECT.
    #[serde(default)]
    pub connect_opts: ConnectOpts,
}

/// The server asking.
#[derive(Debug, Clone, Deserialize)]
pub struct ServerId {
    /// Its id: the answer's `aud`.
    pub id: String,
    /// Its name, for logs.
    #[serde(default)]
    pub name: String,
}

/// Where a connection comes from.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ClientInfo {
    /// Its address.
    #[serde(default)]
    pub host: String,
    /// `nats`, `websocket`, ...
    #[serde(default, rename = "type")]
    pub kind: String,
}

/// The credentials a client sent.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ConnectOpts {
    /// CONNECT `user`: the chat name.
    #[serde(default)]
    pub user: Option<String>,
    /// CONNECT `pass`: the password or a resume token.
    #[serde(default)]
    pub pass: Option<String>,
    /// CONNECT `name`: the client's own label, for logs.
    #[serde(default)]
    pub name: Option<String>,
}

/// The answer: a JWT signed by the issuer account key, for the request's `user_nkey`,
/// addressed to the asking server.
#[derive(Debug, Clone, Serialize)]
pub struct ResponseClaims {
    /// Seconds since the epoch.
    pub iat: i64,
    /// The issuer account's public key.
    pub iss: String,
    /// The request's `user_nkey`.
    pub sub: String,
    /// The request's `server_id.id`.
    pub aud: String,
    /// The verdict.
    pub nats: AuthorizationResponse,
}

/// The `nats` claim of the answer: a user JWT, or why not.
#[derive(Debug, Clone, Serialize)]
pub struct AuthorizationResponse {
    /// The user JWT when the connection is accepted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt: Option<String>,
    /// Why it is refused (the server logs it; the client sees "Authorization Violation").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// `authorization_response`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// 2.
    pub version: u8,
}

impl AuthorizationResponse {
    /// Accepts the connection with `jwt`.
    pub fn accept(jwt: String) -> Self {
        Self {
            jwt: Some(jwt),
            error: None,
            kind: "authorization_response",
            version: 2,
        }
    }

    /// Refuses the connection.
    pub fn refuse(why: impl Into<String>) -> Self {
        Self {
            jwt: None,
            error: Some(why.into()),
            kind: "authorization_response",
            version: 2,
        }
    }
}

/// A user JWT in config mode: the target account in `aud`, the chat name in `name`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserClaims {
    /// Seconds since the epoch.
    pub iat: i64,
    /// When the server disconnects the connection (it then logs in again).
    pub exp: i64,
    /// The issuer account's public key.
    pub iss: String,
    /// The connection's `user_nkey`.
    pub sub: String,
    /// The user's name (the connection's user name in the server's monitoring).
    pub name: String,
    /// The account it belongs to (`CHAT`, `GUEST`).
    pub aud: String,
    /// Permissions and limits.
    pub nats: UserNats,
}

/// The `nats` claim of a user JWT.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserNats {
    /// What it may publish.
    #[serde(rename = "pub")]
    pub publish: Rules,
    /// What it may subscribe to.
    #[serde(rename = "sub")]
    pub subscribe: Rules,
    /// Most subscriptions (-1: the account's limit).
    pub subs: i64,
    /// Most bytes (-1: the account's limit).
    pub data: i64,
    /// Largest payload (-1: the server's limit).
    pub payload: i64,
    /// `user`.
    #[serde(rename = "type")]
    pub kind: String,
    /// 2.
    pub version: u8,
}

/// An allow list, and exceptions to it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rules {
    /// Subjects (with wildcards) allowed.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Subjects denied even where `allow` matches.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
}

impl UserNats {
    /// The claim for `permissions`, with the account's limits.
    pub fn new(permissions: Permissions) -> Self {
        Self {
            publish: Rules {
                allow: permissions.publish,
                deny: permissions.publish_deny,
            },
            subscribe: Rules {
                allow: permissions.subscribe,
                deny: permissions.subscribe_deny,
            },
            subs: -1,
            data: -1,
            payload: -1,
            kind: "user".into(),
            version: 2,
        }
    }
}
