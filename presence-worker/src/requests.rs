//! What each endpoint does with one request: decode the subject and body (never
//! trusting either), act on the buckets, build the reply.
//!
//! The user is always the subject's token (`chat.presence.<room>.<user>`), never
//! anything in the body, so per-user NATS permissions make impersonation impossible.

use bytes::Bytes;
use chat_protocol::body::{PresenceAction, PresenceReply, PresenceRequest, UsersReply};
use chat_protocol::display::sanitize;
use chat_protocol::subjects::{self, SubjectError};
use chat_protocol::{RoomName, UserName};
use chat_runtime::hosting::code;

use crate::announce::ReconcileError;
use crate::context::Context;
use crate::decision::Prompt;
use crate::listing::ListError;
use crate::rooms::RoomsError;
use crate::sessions::{Heartbeat, SessionError};
use crate::stats::EndpointKind;

/// Why a request was refused; becomes `{"ok": false, "error": ...}`.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The subject breaks the contract's shape or naming rules.
    #[error(transparent)]
    Subject(#[from] SubjectError),
    /// The body is larger than any valid request.
    #[error("request body is {len} bytes; at most {max} are accepted")]
    TooLarge {
        /// Size received.
        len: usize,
        /// Largest accepted.
        max: usize,
    },
    /// The body is not a valid request.
    #[error("malformed request body: {0}")]
    Body(#[source] serde_json::Error),
    /// The sessions bucket could not be updated.
    #[error("presence is unavailable: {0}")]
    Session(#[from] SessionError),
    /// Listing the sessions failed.
    #[error("presence is unavailable: {0}")]
    List(#[from] ListError),
    /// Announcing a transition failed (it is finished later).
    #[error("presence is unavailable: {0}")]
    Reconcile(#[from] ReconcileError),
    /// The room stream could not be created.
    #[error("cannot create the room stream: {0}")]
    Room(#[from] async_nats::jetstream::context::CreateStreamError),
    /// Summarising the rooms failed.
    #[error("rooms are unavailable: {0}")]
    Rooms(#[from] RoomsError),
}

impl ServeError {
    /// The reply's [`code`]: the request is at fault, or the worker's backend is.
    pub fn code(&self) -> u16 {
        match self {
            ServeError::Subject(_) | ServeError::TooLarge { .. } | ServeError::Body(_) => {
                code::BAD_REQUEST
            }
            _ => code::UNAVAILABLE,
        }
    }

    /// The message, safe to log, print and put in a header (no control characters).
    pub fn text(&self) -> String {
        sanitize(&self.to_string()).into_owned()
    }
}

/// Handles one request of `endpoint` and returns the reply body.
pub(crate) async fn handle(
    ctx: &Context,
    endpoint: EndpointKind,
    subject: &str,
    body: &[u8],
) -> Result<Bytes, ServeError> {
    if body.len() > ctx.config.max_request_bytes {
        return Err(ServeError::TooLarge {
            len: body.len(),
            max: ctx.config.max_request_bytes,
        });
    }
    let reply = match endpoint {
        EndpointKind::Presence => {
            let (room, user) = subjects::parse_presence(subject)?;
            let request: PresenceRequest =
                serde_json::from_slice(body).map_err(ServeError::Body)?;
            serde_json::to_vec(&presence(ctx, &room, &user, request).await?)
        }
        EndpointKind::Users => {
            let room = subjects::parse_users(subject)?;
            let users = ctx.sessions.confirmed_users(&room).await?;
            serde_json::to_vec(&UsersReply { room, users })
        }
        EndpointKind::Rooms => {
            if subject != subjects::ROOMS {
                return Err(SubjectError::Shape(sanitize(subject).into_owned()).into());
            }
            serde_json::to_vec(&ctx.rooms.summary(&ctx.sessions).await?)
        }
    };
    Ok(reply.expect("replies always serialize").into())
}

async fn presence(
    ctx: &Context,
    room: &RoomName,
    user: &UserName,
    request: PresenceRequest,
) -> Result<PresenceReply, ServeError> {
    let session = request.session;
    let reply = |users: usize, welcome: String, rejoined: bool| PresenceReply {
        ok: true,
        room: room.clone(),
        users: users as u64,
        welcome,
        heartbeat: ctx.config.heartbeat_secs(),
        rejoined,
    };
    match request.action {
        PresenceAction::Join => {
            ctx.rooms.ensure(room).await?;
            let written = ctx.sessions.join(room, user, &session).await?;
            let users = ctx
                .announcer
                .reconcile(room, user, Prompt::Join, Some(written))
                .await?;
            ctx.stats.join();
            tracing::info!(%room, %user, %session, reason = "join", users = users.len(), "session joined");
            let n = users.len();
            Ok(reply(n, welcome(room, user, n), false))
        }
        PresenceAction::Heartbeat => match ctx.sessions.heartbeat(room, user, &session).await? {
            Heartbeat::Refreshed => {
                ctx.stats.heartbeat(false);
                tracing::debug!(%room, %user, %session, "heartbeat");
                // Only shown, never decided on: from the in-memory view.
                let n = ctx.sessions.cached_users(room).await?.len();
                Ok(reply(n, String::new(), false))
            }
            Heartbeat::Rejoined(written) => {
                // If the expiry was not announced yet (its marker still queued), the
                // user never stopped being announced online: the reply says
                // `rejoined`, and no left/joined pair is written.
                ctx.rooms.ensure(room).await?;
                let users = ctx
                    .announcer
                    .reconcile(room, user, Prompt::Join, Some(written))
                    .await?;
                ctx.stats.heartbeat(true);
                tracing::info!(%room, %user, %session, reason = "rejoin", users = users.len(), "expired session registered again");
                let n = users.len();
                Ok(reply(n, welcome(room, user, n), true))
            }
        },
        PresenceAction::Leave => {
            let written = ctx.sessions.leave(room, user, &session).await?;
            let users = ctx
                .announcer
                .reconcile(room, user, Prompt::Leave, Some(written))
                .await?;
            ctx.stats.leave();
            tracing::info!(%room, %user, %session, reason = "leave", users = users.len(), "session left");
            Ok(reply(users.len(), String::new(), false))
        }
    }
}

fn welcome(room: &RoomName, user: &UserName, users: usize) -> String {
    let others = match users {
        0 | 1 => "you are the only one here".to_string(),
        2 => "1 other user is online".to_string(),
        n => format!("{} other users are online", n - 1),
    };
    format!("Welcome to #{room}, {user}! {users} online ({others}).")
}
