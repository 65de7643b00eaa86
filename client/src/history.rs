//! `#all_messages` and `#my_messages`: paging the history worker's `chat.history.<room>`
//! forwards until the room is exhausted.
//!
//! Pages are shown as they arrive, so a room of any size replays in bounded memory;
//! only `#my_messages` holds the user's own messages of every room at once, to merge
//! them by time.

use std::time::Duration;

use chat_protocol::body::{HistoryEntry, HistoryPage, HistoryRequest};
use chat_protocol::{subjects, RoomName, UserName};
use tokio::sync::mpsc;

use crate::event::{self, Event};
use crate::service::{self, RequestError};

const SERVICE: &str = "history";

/// Messages asked for per page. A full replay costs one round trip (and one reading
/// consumer on the worker) per page, so pages as large as the worker allows replay
/// about twice as fast as the contract's default of 100 (measured with chat-bench);
/// the worker caps the limit (1000 by default) and keeps every page under its byte
/// bound.
const PAGE_LIMIT: u32 = 1000;

/// Walks the pages of one room's history forwards, oldest first.
struct Pages<'a> {
    client: &'a async_nats::Client,
    room: &'a RoomName,
    user: Option<&'a UserName>,
    timeout: Duration,
    /// The next page starts after this sequence; none once the room is exhausted.
    after: Option<u64>,
}

impl<'a> Pages<'a> {
    fn new(
        client: &'a async_nats::Client,
        room: &'a RoomName,
        user: Option<&'a UserName>,
        timeout: Duration,
    ) -> Self {
        Self {
            client,
            room,
            user,
            timeout,
            after: Some(0),
        }
    }

    /// The next page, or none when the room is exhausted.
    async fn next(&mut self) -> Result<Option<Vec<HistoryEntry>>, RequestError> {
        let Some(after) = self.after else {
            return Ok(None);
        };
        let request = HistoryRequest {
            after: Some(after),
            user: self.user.cloned(),
            limit: Some(PAGE_LIMIT),
            ..Default::default()
        };
        let page: HistoryPage = service::request(
            self.client,
            SERVICE,
            subjects::history(self.room),
            service::body(&request),
            self.timeout,
        )
        .await?;
        self.after = match page.next {
            Some(next) if next > after => Some(next),
            Some(next) => {
                return Err(RequestError::Malformed(
                    SERVICE,
                    format!("cursor went backwards ({next} after {after})"),
                ))
            }
            None => None,
        };
        Ok(Some(page.messages))
    }
}

fn to_event(room: &RoomName, entry: &HistoryEntry) -> Option<Event> {
    match entry.decode() {
        Ok(payload) => Some(event::from_payload(
            room, payload, entry.seq, entry.time, true,
        )),
        Err(err) => {
            tracing::warn!(%room, seq = entry.seq, "skipped history entry: {err}");
            None
        }
    }
}

/// Shows the complete history of `room` in order, then a `history_end` event.
/// Returns how many chat messages were shown.
pub(crate) async fn all_messages(
    client: &async_nats::Client,
    room: &RoomName,
    timeout: Duration,
    events: &mpsc::Sender<Event>,
) -> Result<u64, RequestError> {
    let mut count = 0;
    let mut pages = Pages::new(client, room, None, timeout);
    while let Some(entries) = pages.next().await? {
        for event in entries.iter().filter_map(|entry| to_event(room, entry)) {
            if matches!(event, Event::Message { .. }) {
                count += 1;
            }
            if events.send(event).await.is_err() {
                return Ok(count);
            }
        }
        let progress = Event::HistoryProgress {
            room: room.clone(),
            count,
        };
        let _ = events.send(progress).await;
    }
    let end = Event::HistoryEnd {
        room: room.clone(),
        user: None,
        count,
    };
    let _ = events.send(end).await;
    Ok(count)
}

/// Shows `user`'s messages in every room of `rooms`, merged by time, then a
/// `history_end` event naming `current`. Returns how many were shown.
pub(crate) async fn my_messages(
    client: &async_nats::Client,
    user: &UserName,
    rooms: &[RoomName],
    current: &RoomName,
    timeout: Duration,
    events: &mpsc::Sender<Event>,
) -> Result<u64, RequestError> {
    let mut mine = Vec::new();
    for room in rooms {
        let mut pages = Pages::new(client, room, Some(user), timeout);
        while let Some(entries) = pages.next().await? {
            for event in entries.iter().filter_map(|entry| to_event(room, entry)) {
                if let Event::Message { ts, seq, .. } = &event {
                    mine.push(((*ts, room.clone(), *seq), event));
                }
            }
        }
    }
    mine.sort_by(|a, b| a.0.cmp(&b.0));
    let count = mine.len() as u64;
    for (_, event) in mine {
        if events.send(event).await.is_err() {
            break;
        }
    }
    let end = Event::HistoryEnd {
        room: current.clone(),
        user: Some(user.clone()),
        count,
    };
    let _ = events.send(end).await;
    Ok(count)
}
