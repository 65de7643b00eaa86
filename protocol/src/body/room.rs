//! What a room stream holds: chat messages and joined/left events, and the one
//! decoder that checks a stored message before anyone shows it.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{rfc3339, v1, VERSION};
use crate::names::{RoomName, UserName};
use crate::subjects::{self, RoomSubject, SubjectError};

/// Longest chat text, in characters, after trimming.
pub const MAX_TEXT_CHARS: usize = 4000;

/// Why a chat text was refused before sending.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    /// Nothing left after trimming.
    #[error("message is empty; type some text (at most {MAX_TEXT_CHARS} characters)")]
    Empty,
    /// Longer than [`MAX_TEXT_CHARS`].
    #[error(
        "message is {len} characters long; at most {MAX_TEXT_CHARS} are allowed (nothing was sent)"
    )]
    TooLong { len: usize },
}

/// Trims a text and checks it against the contract's limits.
pub fn validate_text(text: &str) -> Result<&str, TextError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(TextError::Empty);
    }
    let len = text.chars().count();
    if len > MAX_TEXT_CHARS {
        return Err(TextError::TooLong { len });
    }
    Ok(text)
}

/// Whether a chat message is ordinary speech or an action (`/me waves`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageKind {
    /// Ordinary text.
    #[default]
    Chat,
    /// An action, shown as `* alice waves`.
    Me,
}

/// A chat message, published by a client on `chat.room.<room>.msg.<user>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Contract version.
    #[serde(default = "v1")]
    pub v: u32,
    /// Speech or action.
    #[serde(rename = "type", default)]
    pub kind: MessageKind,
    /// Unique id; also the `Nats-Msg-Id` it was published with, so retries dedupe.
    #[serde(default)]
    pub id: String,
    /// The room the sender claims; receivers trust the subject instead.
    #[serde(default)]
    pub room: String,
    /// The user the sender claims; receivers trust the subject instead.
    #[serde(default)]
    pub user: String,
    /// The text, at most [`MAX_TEXT_CHARS`] characters.
    pub text: String,
    /// When the sender sent it (the stream's own time stands in when missing).
    #[serde(
        default,
        with = "rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub ts: Option<DateTime<Utc>>,
}

impl ChatMessage {
    /// Builds a message to send, with a fresh id and the current time; the text is
    /// trimmed and checked first.
    pub fn new(
        room: &RoomName,
        user: &UserName,
        kind: MessageKind,
        text: &str,
    ) -> Result<Self, TextError> {
        Ok(Self {
            v: VERSION,
            kind,
            id: uuid::Uuid::new_v4().to_string(),
            room: room.to_string(),
            user: user.to_string(),
            text: validate_text(text)?.to_string(),
            ts: Some(Utc::now()),
        })
    }
}

/// What a [`SystemEvent`] announces: a user arrived or went (presence worker), or a
/// moderation (moderation worker).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SystemKind {
    /// The user's first session arrived.
    Joined,
    /// The user's last session went.
    Left,
    /// The user may not send messages until [`EventDetail::until`].
    Muted,
    /// The user's mute ended early.
    Unmuted,
    /// Every session of the user was disconnected.
    Kicked,
    /// The user may not log in until [`EventDetail::until`] (absent: until unbanned).
    Banned,
    /// The user's ban ended early.
    Unbanned,
    /// The tombstone: messages of the user ([`EventDetail::seqs`]) were removed from
    /// the stream; clients hide them if they show them.
    Deleted,
}

/// What caused a [`SystemEvent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reason {
    /// A join request (or a heartbeat that re-registered an expired session).
    Join,
    /// A leave request.
    Leave,
    /// The last session stopped sending heartbeats and expired.
    Timeout,
    /// A moderator's command ([`EventDetail::by`] names them).
    Moderator,
    /// The rate limit: the user sent more than the allowance.
    Flood,
    /// The author deleted their own message.
    Author,
}

/// An announcement on `chat.room.<room>.sys`: joined/left (presence worker) or a
/// moderation (moderation worker).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SystemEvent {
    /// Contract version.
    #[serde(default = "v1")]
    pub v: u32,
    /// Joined or left.
    #[serde(rename = "type")]
    pub kind: SystemKind,
    /// Unique id; also its `Nats-Msg-Id`.
    #[serde(default)]
    pub id: String,
    /// The room.
    pub room: RoomName,
    /// The user who joined or left; the target of a moderation (for `deleted`, the
    /// author of the removed messages).
    pub user: UserName,
    /// What caused it.
    pub reason: Reason,
    /// Distinct users online in the room after the change (0 for moderation events).
    #[serde(default)]
    pub users: u64,
    /// When it happened.
    #[serde(
        default,
        with = "rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub ts: Option<DateTime<Utc>>,
    /// The optional fields of moderation events, and the `others` of joined/left.
    #[serde(flatten)]
    pub detail: EventDetail,
}

/// The optional fields a moderation event adds to a [`SystemEvent`], on the same level
/// of the JSON object: `by`, `until`, `note`, `seqs`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EventDetail {
    /// The moderator who did it (absent for the automatic rate limit).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<UserName>,
    /// End of a mute or ban (absent: no end).
    #[serde(with = "rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
    /// The free-text reason given (at most 200 characters; sanitized on display like
    /// all text).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// For `deleted`: the stream sequences removed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub seqs: Vec<u64>,
    /// For `joined` and `left`: more users than `user` to whom the same happened at
    /// about the same time, for the same reason (the presence worker announces a
    /// burst of arrivals as few events). Each is named by exactly one event per
    /// transition, whether as `user` or here.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub others: Vec<UserName>,
}

/// A [`ChatMessage`] as received: the claimed room and user are only compared with
/// the subject's, so they are read in place rather than copied (a replay decodes
/// every message of a room).
#[derive(Deserialize)]
struct Received<'a> {
    #[serde(default = "v1")]
    v: u32,
    #[serde(rename = "type", default)]
    kind: MessageKind,
    #[serde(default)]
    id: String,
    #[serde(default, borrow)]
    room: Cow<'a, str>,
    #[serde(default, borrow)]
    user: Cow<'a, str>,
    text: String,
    #[serde(default, with = "rfc3339::option")]
    ts: Option<DateTime<Utc>>,
}

/// What one message of a room stream turned out to be, once checked.
#[derive(Debug, Clone, PartialEq)]
pub enum RoomPayload {
    /// A chat message. `user` is the subject's user, the only trustworthy sender.
    Chat {
        /// Sender, from the subject.
        user: UserName,
        /// The body as sent, but for its `room` and `user`, left empty: the
        /// subject's count (the body's room was checked to be the subject's; the
        /// body's user is kept only when it is another one, with `spoofed`).
        message: ChatMessage,
        /// The body claimed another user than the subject: shown as `user`, flagged.
        spoofed: bool,
    },
    /// A joined/left event.
    System(SystemEvent),
}

/// Why a message from a room stream was skipped.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The subject is not a room subject.
    #[error(transparent)]
    Subject(#[from] SubjectError),
    /// The body is not valid UTF-8 JSON of the right shape.
    #[error("malformed body: {0}")]
    Json(#[from] serde_json::Error),
    /// The body is for another room than its subject.
    #[error("body names room {body:?} but the subject is room {subject:?}")]
    RoomMismatch { body: String, subject: String },
    /// The text is empty or too long.
    #[error("invalid text: {0}")]
    Text(#[from] TextError),
}

/// Decodes and checks one stored message of a room stream: the single place where
/// clients and the history worker decide what a message from the wire means.
pub fn decode_room_payload(subject: &str, payload: &[u8]) -> Result<RoomPayload, DecodeError> {
    match subjects::parse_room_subject(subject)? {
        RoomSubject::Message { room, user } => {
            let body: Received = serde_json::from_slice(payload)?;
            validate_text(&body.text)?;
            let spoofed = !body.user.is_empty() && body.user != user.as_str();
            if !body.room.is_empty() && body.room != room.as_str() {
                return Err(DecodeError::RoomMismatch {
                    body: crate::display::sanitize(&body.room).into_owned(),
                    subject: room.to_string(),
                });
            }
            let message = ChatMessage {
                v: body.v,
                kind: body.kind,
                id: body.id,
                // The subject's room is the one: the body's (checked equal) is not kept.
                room: String::new(),
                // Kept only when it is another than the subject's.
                user: if spoofed {
                    body.user.into_owned()
                } else {
                    String::new()
                },
                text: body.text,
                ts: body.ts,
            };
            Ok(RoomPayload::Chat {
                user,
                message,
                spoofed,
            })
        }
        RoomSubject::System { room } => {
            let event: SystemEvent = serde_json::from_slice(payload)?;
            if event.room != room {
                return Err(DecodeError::RoomMismatch {
                    body: event.room.to_string(),
                    subject: room.to_string(),
                });
            }
            Ok(RoomPayload::System(event))
        }
    }
}
