//! The JSON bodies of the contract, and the one decoder for what a room stream holds.
//!
//! Serialization follows `PROTOCOL.md` field for field. Deserialization is tolerant the
//! way the contract asks (unknown fields ignored, optional fields may be missing) but
//! never trusting: names are validated, the sender of a chat message is taken from the
//! subject, and over-long or empty texts are refused.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::names::{RoomName, SessionId, UserName};
use crate::subjects::{self, RoomSubject, SubjectError};

/// Version of the contract written into every body.
pub const VERSION: u32 = 1;

/// Longest chat text, in characters, after trimming.
pub const MAX_TEXT_CHARS: usize = 4000;

fn v1() -> u32 {
    VERSION
}

/// RFC 3339 UTC time stamps with millisecond precision, as in the contract's examples.
pub mod rfc3339 {
    use super::*;
    use serde::{Deserializer, Serializer};

    /// Formats a time as `2026-11-21T04:20:00.123Z`.
    pub fn format(t: &DateTime<Utc>) -> String {
        t.to_rfc3339_opts(SecondsFormat::Millis, true)
    }

    /// Serde serializer for [`format()`].
    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(t))
    }

    /// Serde deserializer accepting any RFC 3339 time.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }

    /// The same for optional fields.
    pub mod option {
        use super::*;

        /// Serde serializer for optional times.
        pub fn serialize<S: Serializer>(
            t: &Option<DateTime<Utc>>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => super::serialize(t, s),
                None => s.serialize_none(),
            }
        }

        /// Serde deserializer for optional times.
        pub fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<DateTime<Utc>>, D::Error> {
            Option::<String>::deserialize(d)?
                .map(|s| {
                    DateTime::parse_from_rfc3339(&s)
                        .map(|t| t.with_timezone(&Utc))
                        .map_err(serde::de::Error::custom)
                })
                .transpose()
        }
    }
}

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

/// Whether a user arrived or went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SystemKind {
    /// The user's first session arrived.
    Joined,
    /// The user's last session went.
    Left,
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
}

/// A joined/left announcement on `chat.room.<room>.sys`, written by the presence worker.
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
    /// The user who joined or left.
    pub user: UserName,
    /// What caused it.
    pub reason: Reason,
    /// Distinct users online in the room after the change.
    #[serde(default)]
    pub users: u64,
    /// When it happened.
    #[serde(
        default,
        with = "rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub ts: Option<DateTime<Utc>>,
}

/// What one message of a room stream turned out to be, once checked.
#[derive(Debug, Clone, PartialEq)]
pub enum RoomPayload {
    /// A chat message. `user` is the subject's user, the only trustworthy sender.
    Chat {
        /// Sender, from the subject.
        user: UserName,
        /// The body as sent.
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
            let message: ChatMessage = serde_json::from_slice(payload)?;
            validate_text(&message.text)?;
            let spoofed = !message.user.is_empty() && message.user != user.as_str();
            if !message.room.is_empty() && message.room != room.as_str() {
                return Err(DecodeError::RoomMismatch {
                    body: crate::display::sanitize(&message.room).into_owned(),
                    subject: room.to_string(),
                });
            }
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

/// Any failed request: `{"ok": false, "error": "<why>"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReply {
    /// Always false.
    pub ok: bool,
    /// What was wrong.
    pub error: String,
}

impl ErrorReply {
    /// An error reply saying `why` (sanitized: it also goes into a header and logs).
    pub fn new(why: impl std::fmt::Display) -> Self {
        Self {
            ok: false,
            error: crate::display::sanitize(&why.to_string()).into_owned(),
        }
    }

    /// The reply message of a failed service request: this JSON body plus the NATS
    /// service API's `Nats-Service-Error` / `Nats-Service-Error-Code` headers, so that
    /// generic service tooling sees the failure too. (The service API's own error
    /// responses carry an empty body, which would break the contract.)
    pub fn into_service_reply(self, code: u16) -> (bytes::Bytes, async_nats::HeaderMap) {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(async_nats::service::NATS_SERVICE_ERROR, self.error.as_str());
        headers.insert(
            async_nats::service::NATS_SERVICE_ERROR_CODE,
            code.to_string().as_str(),
        );
        let body = serde_json::to_vec(&self).unwrap_or_default();
        (body.into(), headers)
    }
}

/// Why a reply could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ReplyError {
    /// The worker answered `{"ok": false}`.
    #[error("{}", crate::display::sanitize(.0))]
    Refused(String),
    /// The reply was not the expected JSON.
    #[error("malformed reply: {0}")]
    Malformed(#[from] serde_json::Error),
}

/// Decodes a worker's reply: an [`ErrorReply`] becomes [`ReplyError::Refused`].
///
/// The body is decoded straight into `T` after a first pass that only looks at `ok`
/// and `error` (skipping everything else without building anything): no JSON tree is
/// built, which matters for big replies such as history pages.
pub fn decode_reply<T: serde::de::DeserializeOwned>(payload: &[u8]) -> Result<T, ReplyError> {
    /// The two fields telling an [`ErrorReply`], whatever their types.
    #[derive(Deserialize)]
    struct Verdict<'a> {
        #[serde(default, borrow)]
        ok: Option<&'a RawValue>,
        #[serde(default)]
        error: Option<serde_json::Value>,
    }
    let verdict: Verdict = serde_json::from_slice(payload)?;
    if verdict.ok.map(RawValue::get) == Some("false") {
        let error = match verdict.error {
            Some(serde_json::Value::String(error)) => error,
            _ => "request refused".to_string(),
        };
        return Err(ReplyError::Refused(error));
    }
    Ok(serde_json::from_slice(payload)?)
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
    /// Every room, sorted by name.
    pub rooms: Vec<RoomSummary>,
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

/// What the presence worker has announced for one user in one room, stored in the
/// internal bucket [`crate::streams::PRESENCE_USERS_BUCKET`]. **Not part of the wire
/// contract.**
///
/// `pending` is the outbox: a transition is first written here (by compare-and-set),
/// then published with `Nats-Msg-Id` = the event's id, then cleared. A worker that dies
/// in between leaves the event for the next one to publish with the same id.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AnnouncedState {
    /// Whether the last announced event was `joined`.
    #[serde(default)]
    pub online: bool,
    /// An event claimed but maybe not yet stored in the room stream.
    #[serde(default)]
    pub pending: Option<SystemEvent>,
    /// The sequence of [`crate::streams::PRESENCE_BUCKET`]'s stream up to which the
    /// sessions were known when `online` was decided. The next decision about this
    /// user must know the sessions at least that far, so decisions never go back in
    /// time, whichever worker makes them. `None` in states written before it existed:
    /// the next decision then reads the sessions as of now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listed_through: Option<u64>,
}

/// Body of a request on `chat.history.<room>`; every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryRequest {
    /// Most messages in the page (default 100, capped by the worker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// Page backwards: messages with a sequence below this one, newest first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<u64>,
    /// Page forwards: messages with a sequence above this one, oldest first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<u64>,
    /// Only this user's chat messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<UserName>,
}

impl HistoryRequest {
    /// Page size when a request gives no `limit` (the contract's default).
    pub const DEFAULT_LIMIT: u32 = 100;
}

/// One stored message in a [`HistoryPage`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// Stream sequence.
    pub seq: u64,
    /// When the stream stored it.
    #[serde(with = "rfc3339")]
    pub time: DateTime<Utc>,
    /// Subject it was stored under: tells a chat message from a system event, and
    /// names the trustworthy sender.
    pub subject: String,
    /// The stored body (a ChatMessage or a SystemEvent), as JSON, kept verbatim: the
    /// worker splices what the stream holds into the page and the reader decodes it
    /// once, with no JSON tree built or re-encoded on either side.
    pub message: Box<RawValue>,
}

/// Entries are equal when they hold the same body text (not merely equivalent JSON).
impl PartialEq for HistoryEntry {
    fn eq(&self, other: &Self) -> bool {
        (self.seq, self.time, &self.subject, self.message.get())
            == (other.seq, other.time, &other.subject, other.message.get())
    }
}

impl HistoryEntry {
    /// The entry for a stored message that [`decode_room_payload`] accepted (so its
    /// payload is valid JSON); `None` if the payload is not JSON after all.
    pub fn new(seq: u64, time: DateTime<Utc>, subject: &str, payload: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(payload).ok()?;
        let message = RawValue::from_string(text.trim().to_string()).ok()?;
        Some(Self {
            seq,
            time,
            subject: subject.to_string(),
            message,
        })
    }

    /// Checks the entry the same way a live message is checked.
    pub fn decode(&self) -> Result<RoomPayload, DecodeError> {
        decode_room_payload(&self.subject, self.message.get().as_bytes())
    }
}

/// Reply on `chat.history.<room>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryPage {
    /// The room.
    pub room: RoomName,
    /// Messages in ascending sequence order.
    pub messages: Vec<HistoryEntry>,
    /// Cursor for the next page in the same direction (`before` or `after`), or none.
    pub next: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room() -> RoomName {
        RoomName::new("general").unwrap()
    }
    fn alice() -> UserName {
        UserName::new("alice").unwrap()
    }

    #[test]
    fn chat_message_matches_contract() {
        let m = ChatMessage::new(&room(), &alice(), MessageKind::Chat, "  hello ").unwrap();
        let v: serde_json::Value = serde_json::to_value(&m).unwrap();
        assert_eq!(v["v"], 1);
        assert_eq!(v["type"], "chat");
        assert_eq!(v["room"], "general");
        assert_eq!(v["user"], "alice");
        assert_eq!(v["text"], "hello");
        let ts = v["ts"].as_str().unwrap();
        assert!(ts.ends_with('Z') && ts.len() == 24, "{ts}");
        assert!(uuid::Uuid::parse_str(v["id"].as_str().unwrap()).is_ok());
    }

    #[test]
    fn text_limits() {
        assert_eq!(validate_text("   "), Err(TextError::Empty));
        assert!(validate_text(&"é".repeat(MAX_TEXT_CHARS)).is_ok());
        assert_eq!(
            validate_text(&"x".repeat(MAX_TEXT_CHARS + 1)),
            Err(TextError::TooLong {
                len: MAX_TEXT_CHARS + 1
            })
        );
    }

    #[test]
    fn decodes_third_party_message() {
        let body = br#"{"text":"hi from python","extra":1}"#;
        match decode_room_payload("chat.room.general.msg.bob", body).unwrap() {
            RoomPayload::Chat {
                user,
                message,
                spoofed,
            } => {
                assert_eq!(user.as_str(), "bob");
                assert_eq!(message.text, "hi from python");
                assert_eq!(message.kind, MessageKind::Chat);
                assert!(!spoofed);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn flags_spoofed_sender() {
        let body = br#"{"v":1,"type":"chat","id":"x","room":"general","user":"alice","text":"hi"}"#;
        match decode_room_payload("chat.room.general.msg.mallory", body).unwrap() {
            RoomPayload::Chat { user, spoofed, .. } => {
                assert_eq!(user.as_str(), "mallory");
                assert!(spoofed);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rejects_hostile_bodies() {
        let s = "chat.room.general.msg.bob";
        assert!(decode_room_payload(s, b"not json").is_err());
        assert!(decode_room_payload(s, b"\xff\xfe").is_err());
        assert!(decode_room_payload(s, br#"{"text":5}"#).is_err());
        assert!(decode_room_payload(s, br#"{"text":""}"#).is_err());
        let long = format!(r#"{{"text":"{}"}}"#, "x".repeat(MAX_TEXT_CHARS + 1));
        assert!(decode_room_payload(s, long.as_bytes()).is_err());
        assert!(decode_room_payload(s, br#"{"text":"x","room":"other"}"#).is_err());
        assert!(decode_room_payload("chat.room.general.sys", br#"{"type":"joined"}"#).is_err());
        assert!(decode_room_payload("chat.room.Gen.msg.bob", br#"{"text":"x"}"#).is_err());
    }

    #[test]
    fn system_event_round_trip() {
        let e = SystemEvent {
            v: 1,
            kind: SystemKind::Left,
            id: "id".into(),
            room: room(),
            user: alice(),
            reason: Reason::Timeout,
            users: 2,
            ts: Some(Utc::now()),
        };
        let bytes = serde_json::to_vec(&e).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["type"], "left");
        assert_eq!(v["reason"], "timeout");
        match decode_room_payload("chat.room.general.sys", &bytes).unwrap() {
            RoomPayload::System(got) => assert_eq!(got.id, e.id),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn history_entries_carry_bodies_verbatim() {
        let body = br#" {"text":"h\u00e9","extra":[1,2]} "#;
        let subject = "chat.room.general.msg.bob";
        // Pages carry times to the millisecond.
        let time = DateTime::from_timestamp_millis(1_700_000_000_123).unwrap();
        let entry = HistoryEntry::new(7, time, subject, body).unwrap();
        assert_eq!(entry.message.get(), r#"{"text":"h\u00e9","extra":[1,2]}"#);
        let page = HistoryPage {
            room: room(),
            messages: vec![entry.clone()],
            next: None,
        };
        let bytes = serde_json::to_vec(&page).unwrap();
        let back: HistoryPage = decode_reply(&bytes).unwrap();
        assert_eq!(back, page);
        match back.messages[0].decode().unwrap() {
            RoomPayload::Chat { message, .. } => assert_eq!(message.text, "hé"),
            other => panic!("{other:?}"),
        }
        assert!(HistoryEntry::new(1, Utc::now(), subject, b"{").is_none());
        assert!(HistoryEntry::new(1, Utc::now(), subject, b"\xff").is_none());
    }

    #[test]
    fn announced_state_round_trip() {
        let empty: AnnouncedState = serde_json::from_str("{}").unwrap();
        assert_eq!(empty, AnnouncedState::default());
        let state = AnnouncedState {
            online: true,
            pending: Some(SystemEvent {
                v: 1,
                kind: SystemKind::Joined,
                id: "id".into(),
                room: room(),
                user: alice(),
                reason: Reason::Join,
                users: 1,
                ts: None,
            }),
            listed_through: Some(42),
        };
        let bytes = serde_json::to_vec(&state).unwrap();
        assert_eq!(
            serde_json::from_slice::<AnnouncedState>(&bytes).unwrap(),
            state
        );
    }

    #[test]
    fn replies() {
        let err = decode_reply::<UsersReply>(br#"{"ok":false,"error":"bad room"}"#).unwrap_err();
        assert!(matches!(err, ReplyError::Refused(ref e) if e == "bad room"));
        let bare = decode_reply::<UsersReply>(br#"{"ok":false}"#).unwrap_err();
        assert!(matches!(bare, ReplyError::Refused(ref e) if e == "request refused"));
        // Only a JSON `false` refuses; anything else is decoded as the reply.
        let odd = decode_reply::<UsersReply>(br#"{"ok":"false","room":"general","users":[]}"#);
        assert!(odd.is_ok());
        assert!(matches!(
            decode_reply::<UsersReply>(b"{"),
            Err(ReplyError::Malformed(_))
        ));
        let ok: UsersReply = decode_reply(br#"{"room":"general","users":["alice"]}"#).unwrap();
        assert_eq!(ok.users, vec![alice()]);
        let p = PresenceReply {
            ok: true,
            room: room(),
            users: 1,
            welcome: "hi".into(),
            heartbeat: 10,
            rejoined: false,
        };
        let v = serde_json::to_value(&p).unwrap();
        assert!(v.get("rejoined").is_none());
        let r: PresenceRequest = serde_json::from_str(
            r#"{"type":"join","session":"6f1c7d1e-1111-4222-8333-944445555666"}"#,
        )
        .unwrap();
        assert_eq!(r.action, PresenceAction::Join);
    }
}
