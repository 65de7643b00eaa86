//! History: the request on `chat.history.<room>` and its pages, which carry stored
//! bodies verbatim.

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
