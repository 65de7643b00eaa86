//! History: the request on `chat.history.<room>` and its pages, which carry stored
//! bodies verbatim; the request on `chat.replay.<room>` and its plan, which says how
//! to read a whole replay straight from the room's stream.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::rfc3339;
use super::room::{decode_room_payload, DecodeError, RoomPayload};
use crate::names::{RoomName, UserName};

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

/// Body of a request on `chat.replay.<room>`; every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayRequest {
    /// Only this user's chat messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<UserName>,
    /// Only messages with a sequence above this one (default: from the start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<u64>,
}

/// Reply on `chat.replay.<room>`: how to read the replay straight from the room's
/// stream with an ordered consumer of one's own (see docs/protocol.md "Replay").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayPlan {
    /// The room.
    pub room: RoomName,
    /// The room's stream, `CHAT_<room>`.
    pub stream: String,
    /// The consumer's filter subject; none: every message of the stream (no filter,
    /// which spares the server matching each message).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// First stream sequence to read (the consumer's `opt_start_seq`).
    pub start: u64,
    /// Last stream sequence of the replay (inclusive): the stream's last sequence when
    /// the plan was made. None: nothing to replay.
    pub end: Option<u64>,
}

impl ReplayPlan {
    /// The plan answering `request` for `room`, whose stream's last sequence is
    /// `last` (0: nothing stored yet).
    pub fn new(room: RoomName, request: &ReplayRequest, last: u64) -> Self {
        let start = request.after.unwrap_or(0).saturating_add(1);
        Self {
            stream: crate::streams::stream_name(&room),
            filter: request
                .user
                .as_ref()
                .map(|user| crate::subjects::room_message(&room, user)),
            start,
            end: (last >= start).then_some(last),
            room,
        }
    }

    /// Whether this plan is one the contract allows as the answer to `request` for
    /// `room` (a reader checks it before reading): the room's own stream, the filter
    /// the request asked for, a range that starts where asked.
    pub fn answers(&self, room: &RoomName, request: &ReplayRequest) -> bool {
        let expected = Self::new(room.clone(), request, self.end.unwrap_or(0));
        self.room == expected.room
            && self.stream == expected.stream
            && self.filter == expected.filter
            && self.start == expected.start
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_plans_say_what_to_read() {
        let room = RoomName::new("general").unwrap();
        let whole = ReplayRequest::default();
        let plan = ReplayPlan::new(room.clone(), &whole, 42);
        assert_eq!(
            serde_json::to_string(&plan).unwrap(),
            r#"{"room":"general","stream":"CHAT_general","start":1,"end":42}"#
        );
        assert!(plan.answers(&room, &whole));
        let own = ReplayRequest {
            user: Some(UserName::new("bob").unwrap()),
            after: Some(41),
        };
        let plan = ReplayPlan::new(room.clone(), &own, 42);
        assert_eq!(plan.filter.as_deref(), Some("chat.room.general.msg.bob"));
        assert_eq!((plan.start, plan.end), (42, Some(42)));
        assert!(plan.answers(&room, &own));
        // Not the filter asked for, another stream, nothing left to read.
        assert!(!plan.answers(&room, &whole));
        let other = RoomName::new("other").unwrap();
        assert!(!ReplayPlan::new(other, &own, 42).answers(&room, &own));
        assert_eq!(ReplayPlan::new(room, &own, 41).end, None);
    }
}
