//! One history request, from its subject and body to a bounded page.
//!
//! The room comes from the subject, the direction and filter from the body. Reading is
//! [`chat_runtime::reading`] (bounded in messages and bytes, never a whole room in
//! memory); this module turns what was read into [`HistoryEntry`]s, leaves out what is
//! not a valid room message, keeps the serialized page under its byte bound and sets
//! the `next` cursor.

use async_nats::jetstream::{self, context::GetStreamErrorKind, stream::Stream};
use chat_protocol::body::{decode_room_payload, HistoryEntry, HistoryPage, HistoryRequest};
use chat_protocol::display::sanitize;
use chat_protocol::{streams, subjects, RoomName};
use chat_runtime::hosting::code;
use chat_runtime::reading::{self, Limits, ReadError, StoredMessage};

use crate::Config;

/// Why a request got an error reply instead of a page (or a replay plan).
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// The subject does not name a valid room.
    #[error("bad history subject: {0}")]
    Subject(#[from] subjects::SubjectError),
    /// The body is not a HistoryRequest.
    #[error("malformed history request: {0}")]
    Body(#[from] serde_json::Error),
    /// `limit` was zero.
    #[error(
        "limit must be at least 1 (default {}, at most {max})",
        HistoryRequest::DEFAULT_LIMIT
    )]
    ZeroLimit {
        /// The worker's cap, to say what is allowed.
        max: u32,
    },
    /// Both cursors were given.
    #[error("'before' and 'after' are exclusive: page backwards or forwards, not both")]
    BothCursors,
    /// The room has no stream: nobody ever joined it.
    #[error("room '{0}' does not exist")]
    NoRoom(RoomName),
    /// The room's stream could not be looked up.
    #[error("cannot look up room '{room}': {source}")]
    Lookup {
        /// The room.
        room: RoomName,
        /// What JetStream said.
        source: jetstream::context::GetStreamError,
    },
    /// The room's stream could not be read.
    #[error("cannot read room '{room}': {source}")]
    Read {
        /// The room.
        room: RoomName,
        /// What went wrong.
        source: ReadError,
    },
}

impl PageError {
    /// The reply's [`code`]: the request is wrong, the room unknown, or JetStream
    /// failed (the same codes as every service).
    pub fn code(&self) -> u16 {
        match self {
            Self::Subject(_) | Self::Body(_) | Self::ZeroLimit { .. } | Self::BothCursors => {
                code::BAD_REQUEST
            }
            Self::NoRoom(_) => code::NOT_FOUND,
            Self::Lookup { .. } | Self::Read { .. } => code::UNAVAILABLE,
        }
    }
}

/// Which way a page reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    /// Oldest first, sequences above `after`.
    Forward { after: u64 },
    /// Newest first, sequences below `before` (`None`: the newest page).
    Backward { before: Option<u64> },
}

/// A request, checked: what to read.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Query {
    room: RoomName,
    direction: Direction,
    limit: usize,
    filter: String,
}

impl Query {
    /// Checks the subject and body of a request against the contract and the worker's
    /// bounds. An empty body asks for the defaults.
    fn parse(subject: &str, body: &[u8], max_limit: u32) -> Result<Self, PageError> {
        let room = subjects::parse_history(subject)?;
        let request: HistoryRequest = decode(body)?;
        let limit = match request.limit {
            Some(0) => return Err(PageError::ZeroLimit { max: max_limit }),
            Some(limit) => limit.min(max_limit),
            None => HistoryRequest::DEFAULT_LIMIT.min(max_limit),
        };
        let direction = match (request.before, request.after) {
            (Some(_), Some(_)) => return Err(PageError::BothCursors),
            (None, Some(after)) => Direction::Forward { after },
            (before, None) => Direction::Backward { before },
        };
        let filter = match &request.user {
            Some(user) => subjects::room_message(&room, user),
            None => subjects::room_all(&room),
        };
        Ok(Self {
            room,
            direction,
            limit: limit as usize,
            filter,
        })
    }
}

/// Serves one request: the page asked for on `subject` with `body`, within `config`.
///
/// Forward pages (the full replay) are one consumer and one fetch
/// ([`reading::fetch_forward`]), without looking the stream up first: a missing
/// stream shows when the consumer is created. Backward pages read windows through
/// consumers ([`reading::read_backward`]).
pub async fn serve(
    js: &jetstream::Context,
    config: &Config,
    subject: &str,
    body: &[u8],
) -> Result<HistoryPage, PageError> {
    let query = Query::parse(subject, body, config.max_limit)?;
    let limits = Limits {
        messages: query.limit,
        bytes: config.max_page_bytes,
    };
    let read = match query.direction {
        Direction::Forward { after } => {
            let from = after.saturating_add(1);
            let stream = js
                .get_stream_no_info(streams::stream_name(&query.room))
                .await
                .map_err(|source| PageError::Lookup {
                    room: query.room.clone(),
                    source,
                })?;
            let filter =
                (query.filter != subjects::room_all(&query.room)).then_some(query.filter.as_str());
            match reading::fetch_forward(&stream, filter, from, limits).await {
                Err(ReadError::NoStream) => return Err(PageError::NoRoom(query.room)),
                read => read,
            }
        }
        Direction::Backward { before } => {
            let stream = open(js, &query.room).await?;
            let before = before.unwrap_or(u64::MAX);
            reading::read_backward(&stream, &query.filter, before, limits).await
        }
    };
    let (stored, more) = read.map_err(|source| PageError::Read {
        room: query.room.clone(),
        source,
    })?;
    let forward = matches!(query.direction, Direction::Forward { .. });
    Ok(assemble(
        query.room,
        stored,
        more,
        forward,
        config.max_page_bytes,
    ))
}

/// A request's body: JSON, or empty (only whitespace) for the defaults.
pub(crate) fn decode<T: Default + serde::de::DeserializeOwned>(
    body: &[u8],
) -> Result<T, serde_json::Error> {
    if body.iter().all(u8::is_ascii_whitespace) {
        Ok(T::default())
    } else {
        serde_json::from_slice(body)
    }
}

/// The room's stream with its info, or [`PageError::NoRoom`].
pub(crate) async fn open(js: &jetstream::Context, room: &RoomName) -> Result<Stream, PageError> {
    js.get_stream(streams::stream_name(room))
        .await
        .map_err(|source| match source.kind() {
            GetStreamErrorKind::JetStream(e)
                if e.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND =>
            {
                PageError::NoRoom(room.clone())
            }
            _ => PageError::Lookup {
                room: room.clone(),
                source,
            },
        })
}

/// Turns what was read (ascending) into a page: invalid messages left out, the
/// serialized page kept under `max_bytes` by dropping the entries farthest from the
/// cursor's start, and `next` set to the last sequence consumed in the reading
/// direction when more remain.
fn assemble(
    room: RoomName,
    stored: Vec<StoredMessage>,
    more: bool,
    forward: bool,
    max_bytes: usize,
) -> HistoryPage {
    let mut page = HistoryPage {
        room,
        messages: Vec::new(),
        next: Some(u64::MAX),
    };
    let mut used = json_len(&page);
    let mut cursor = None;
    let mut truncated = false;
    let ordered: Box<dyn Iterator<Item = StoredMessage>> = if forward {
        Box::new(stored.into_iter())
    } else {
        Box::new(stored.into_iter().rev())
    };
    for message in ordered {
        if let Some(entry) = entry(&message) {
            // One comma between entries, at most.
            let size = json_len(&entry) + 1;
            if !page.messages.is_empty() && used + size > max_bytes {
                truncated = true;
                break;
            }
            used += size;
            page.messages.push(entry);
        }
        cursor = Some(message.seq);
    }
    if !forward {
        page.messages.reverse();
    }
    page.next = if more || truncated { cursor } else { None };
    page
}

/// The page entry for a stored message, or `None` (with a warn log line) when it is
/// not a valid chat message or system event. The body is decoded once, to check it,
/// and goes into the page verbatim.
fn entry(message: &StoredMessage) -> Option<HistoryEntry> {
    let checked = decode_room_payload(&message.subject, &message.payload)
        .map_err(|e| e.to_string())
        .and_then(|_| {
            HistoryEntry::new(
                message.seq,
                message.time,
                &message.subject,
                &message.payload,
            )
            .ok_or_else(|| "not JSON".to_string())
        });
    match checked {
        Ok(entry) => Some(entry),
        Err(error) => {
            tracing::warn!(
                seq = message.seq,
                subject = %sanitize(&message.subject),
                %error,
                "skipping an invalid stored message"
            );
            None
        }
    }
}

/// Serialized size of a value of the page (counted, not written anywhere).
fn json_len<T: serde::Serialize>(value: &T) -> usize {
    /// A writer that only counts.
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    serde_json::to_writer(&mut count, value).map_or(0, |()| count.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use chrono::Utc;

    const SUBJECT: &str = "chat.history.general";

    fn parse(body: &str) -> Result<Query, PageError> {
        Query::parse(SUBJECT, body.as_bytes(), 1000)
    }

    #[test]
    fn parses_requests() {
        let q = parse("").unwrap();
        assert_eq!(q.direction, Direction::Backward { before: None });
        assert_eq!(q.limit, 100);
        assert_eq!(q.filter, "chat.room.general.>");
        let q = parse(r#"{"after":5,"limit":5000,"user":"Bob_2"}"#).unwrap();
        assert_eq!(q.direction, Direction::Forward { after: 5 });
        assert_eq!(q.limit, 1000);
        assert_eq!(q.filter, "chat.room.general.msg.Bob_2");
        let q = parse(r#"{"before":7,"limit":3}"#).unwrap();
        assert_eq!(q.direction, Direction::Backward { before: Some(7) });
        assert_eq!(q.limit, 3);
    }

    #[test]
    fn refuses_bad_requests() {
        assert!(matches!(
            parse(r#"{"before":1,"after":2}"#),
            Err(PageError::BothCursors)
        ));
        assert!(matches!(
            parse(r#"{"limit":0}"#),
            Err(PageError::ZeroLimit { .. })
        ));
        assert!(matches!(parse("{"), Err(PageError::Body(_))));
        assert!(matches!(
            parse(r#"{"user":"a b"}"#),
            Err(PageError::Body(_))
        ));
        assert!(matches!(parse(r#"{"after":-1}"#), Err(PageError::Body(_))));
        assert!(matches!(
            Query::parse("chat.history.Bad!", b"", 10),
            Err(PageError::Subject(_))
        ));
        assert_eq!(PageError::BothCursors.code(), 400);
    }

    fn stored(seq: u64, subject: &str, payload: &str) -> StoredMessage {
        StoredMessage {
            seq,
            time: Utc::now(),
            subject: subject.to_string(),
            payload: Bytes::from(payload.to_string()),
        }
    }

    fn room() -> RoomName {
        RoomName::new("general").unwrap()
    }

    fn chat(seq: u64, text: &str) -> StoredMessage {
        stored(
            seq,
            "chat.room.general.msg.alice",
            &format!(r#"{{"text":"{text}"}}"#),
        )
    }

    fn seqs(page: &HistoryPage) -> Vec<u64> {
        page.messages.iter().map(|m| m.seq).collect()
    }

    #[test]
    fn skips_invalid_messages_and_moves_the_cursor_past_them() {
        let read = vec![
            chat(1, "a"),
            stored(2, "chat.room.general.msg.bob", "nope"),
            chat(3, "c"),
            stored(4, "chat.room.general.msg.x", "{"),
        ];
        let page = assemble(room(), read.clone(), true, true, 1 << 20);
        assert_eq!(seqs(&page), vec![1, 3]);
        assert_eq!(page.next, Some(4));
        let page = assemble(room(), read, false, false, 1 << 20);
        assert_eq!(seqs(&page), vec![1, 3]);
        assert_eq!(page.next, None);
    }

    #[test]
    fn truncates_to_the_byte_bound_keeping_the_cursor_side() {
        let big = "x".repeat(1000);
        let read: Vec<_> = (1..=10).map(|s| chat(s, &big)).collect();
        let forward = assemble(room(), read.clone(), false, true, 3500);
        assert_eq!(seqs(&forward), vec![1, 2, 3]);
        assert_eq!(forward.next, Some(3));
        assert!(serde_json::to_vec(&forward).unwrap().len() <= 3500);
        let backward = assemble(room(), read, false, false, 3500);
        assert_eq!(seqs(&backward), vec![8, 9, 10]);
        assert_eq!(backward.next, Some(8));
        // A single message larger than the bound still makes a page.
        let one = assemble(room(), vec![chat(1, &big)], false, true, 10);
        assert_eq!(seqs(&one), vec![1]);
        assert_eq!(one.next, None);
    }
}
