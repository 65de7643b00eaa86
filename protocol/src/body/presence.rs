//! Presence: the requests on `chat.presence.<room>.<user>` and their reply, `/users`
//! and `/rooms`, and a session's record in the `chat_presence` bucket.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::rfc3339;
use crate::names::{RoomName, SessionId, UserName};

/// What a client asks of the presence worker on `chat.presence.<room>.<user>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PresenceAction {
    /// A session enters the room.
    Join,
    /// A session is still there.
    Heartbeat,
    /// A session leaves the room.
    Leave,
}

/// Body of a presence request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceRequest {
    /// Join, heartbeat or leave.
    #[serde(rename = "type")]
    pub action: PresenceAction,
    /// The client's session.
    pub session: SessionId,
}

/// Successful reply to a presence request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceReply {
    /// Always true here; failures are an [`ErrorReply`].
    #[serde(default = "yes")]
    pub ok: bool,
    /// The room.
    pub room: RoomName,
    /// Distinct users online in the room.
    pub users: u64,
    /// Text to greet the user with.
    #[serde(default)]
    pub welcome: String,
    /// Seconds between heartbeats.
    pub heartbeat: u64,
    /// The session had expired and was registered again by this request.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rejoined: bool,
}

fn yes() -> bool {
    true
}

/// Reply on `chat.users.<room>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsersReply {
    /// The room.
    pub room: RoomName,
    /// Distinct users online, sorted.
    pub users: Vec<UserName>,
}

/// One room of a [`RoomsReply`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomSummary {
    /// The room.
    pub room: RoomName,
    /// Distinct users online.
    pub users: u64,
    /// Messages stored in its stream.
    pub messages: u64,
}

/// Reply on `chat.rooms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomsReply {
    /// The rooms listed, sorted by name: every room, or the
    /// [`MAX_LISTED_ROOMS`] busiest when there are more.
    pub rooms: Vec<RoomSummary>,
    /// How many rooms exist but are not listed (0, and absent on the wire, when every
    /// room is).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unlisted: u64,
}

/// Most rooms in one [`RoomsReply`]: with room names of up to 64 bytes the reply stays
/// under 80 KiB, within the server's maximum payload (128 KiB), however many rooms exist.
pub const MAX_LISTED_ROOMS: usize = 500;

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A session's record in the `chat_presence` bucket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PresenceRecord {
    /// The room.
    pub room: RoomName,
    /// The user.
    pub user: UserName,
    /// The session.
    pub session: SessionId,
    /// When the session joined.
    #[serde(with = "rfc3339")]
    pub joined_at: DateTime<Utc>,
    /// Its latest join or heartbeat.
    #[serde(with = "rfc3339")]
    pub last_seen: DateTime<Utc>,
}
