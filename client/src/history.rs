//! `#all_messages` and `#my_messages`: paging the history worker's `chat.history.<room>`
//! forwards until the room is exhausted.
//!
//! Pages are shown as they arrive, so a room of any size replays in bounded memory. A
//! page that does not come (its worker died, none runs for a moment) is asked for again
//! from the same cursor, which another instance answers: the replay goes on from the
//! last sequence shown, with no duplicate.
//! `#my_messages` merges the rooms by time holding at most two pages per room (the one
//! being merged and the next, already asked for).

use std::collections::VecDeque;
use std::time::Duration;

use chat_protocol::body::{HistoryEntry, HistoryPage, HistoryRequest};
use chat_protocol::{subjects, RoomName, UserName};
use chat_runtime::Backoff;
use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::event::{self, Event};
use crate::service::{self, RequestError};

const SERVICE: &str = "history";

/// Messages asked for per page (the worker caps it to its own maximum, and bounds
/// the page in bytes whatever the message sizes): big pages make long replays fast.
const PAGE_LIMIT: u32 = 1000;

/// Attempts per page: a page whose worker died or did not answer is asked for again.
const PAGE_ATTEMPTS: u32 = 4;

/// Pause before asking for a page again; doubled for each further attempt.
const RETRY_BACKOFF: Duration = Duration::from_millis(200);

/// Walks the pages of one room's history forwards, oldest first.
///
/// The request for the following page goes out as soon as a page arrives, so the
/// worker reads it while this one is shown: at most two pages are held at a time.
struct Pages<'a> {
    client: &'a async_nats::Client,
    room: &'a RoomName,
    user: Option<&'a UserName>,
    timeout: Duration,
    /// The next page starts after this sequence; none once the room is exhausted.
    after: Option<u64>,
    /// The request for the page after `after`, already sent.
    ahead: Option<JoinHandle<Result<HistoryPage, RequestError>>>,
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
            ahead: None,
        }
    }

    /// Sends the request for the page after `after`.
    fn ask(&self, after: u64) -> JoinHandle<Result<HistoryPage, RequestError>> {
        let request = HistoryRequest {
            limit: Some(PAGE_LIMIT),
            after: Some(after),
            user: self.user.cloned(),
            ..Default::default()
        };
        let client = self.client.clone();
        let subject = subjects::history(self.room);
        let timeout = self.timeout;
        tokio::spawn(async move {
            service::request(&client, SERVICE, subject, service::body(&request), timeout).await
        })
    }

    /// The next page, or none when the room is exhausted.
    async fn next(&mut self) -> Result<Option<Vec<HistoryEntry>>, RequestError> {
        let Some(after) = self.after else {
            return Ok(None);
        };
        let mut ahead = match self.ahead.take() {
            Some(ahead) => ahead,
            None => self.ask(after),
        };
        let mut attempt = 1;
        let mut backoff = Backoff::new(RETRY_BACKOFF, RETRY_BACKOFF * 2u32.pow(PAGE_ATTEMPTS));
        let page = loop {
            let result = ahead
                .await
                .map_err(|e| RequestError::Nats(SERVICE, e.to_string()))?;
            match result {
                Ok(page) => break page,
                // The worker that had the request died, or none runs right now:
                // another instance (or a restarted one) gets the same page again, so
                // the replay goes on from the last sequence shown, with no duplicate.
                Err(
                    err @ (RequestError::TimedOut(..)
                    | RequestError::Unavailable(_)
                    | RequestError::Nats(..)),
                ) if attempt < PAGE_ATTEMPTS => {
                    tracing::warn!(room = %self.room, after, attempt, "history page failed ({err}); asking again");
                    backoff.wait().await;
                    attempt += 1;
                    ahead = self.ask(after);
                }
                Err(err) => return Err(err),
            }
        };
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
        self.ahead = self.after.map(|after| self.ask(after));
        Ok(Some(page.messages))
    }
}

impl Drop for Pages<'_> {
    /// A replay given up (the UI went away, an error) sends no more requests.
    fn drop(&mut self) {
        if let Some(ahead) = self.ahead.take() {
            ahead.abort();
        }
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

/// One room's chat messages by `user`, oldest first, a page at a time.
struct Mine<'a> {
    room: &'a RoomName,
    pages: Pages<'a>,
    buffered: VecDeque<Event>,
}

impl Mine<'_> {
    /// Sort key of the next message, fetching a page when the buffer is empty; none
    /// once the room is exhausted.
    async fn peek(&mut self) -> Result<Option<(DateTime<Utc>, RoomName, u64)>, RequestError> {
        while self.buffered.is_empty() {
            let Some(entries) = self.pages.next().await? else {
                return Ok(None);
            };
            let messages = entries
                .iter()
                .filter_map(|entry| to_event(self.room, entry));
            self.buffered
                .extend(messages.filter(|e| matches!(e, Event::Message { .. })));
        }
        Ok(match self.buffered.front() {
            Some(Event::Message { ts, room, seq, .. }) => Some((*ts, room.clone(), *seq)),
            _ => None,
        })
    }
}

/// Shows `user`'s messages in every room of `rooms`, merged by time (a streaming
/// merge: at most two pages per room in memory), then a `history_end` event naming
/// `current`.
/// Returns how many were shown.
pub(crate) async fn my_messages(
    client: &async_nats::Client,
    user: &UserName,
    rooms: &[RoomName],
    current: &RoomName,
    timeout: Duration,
    events: &mpsc::Sender<Event>,
) -> Result<u64, RequestError> {
    let mut sources: Vec<Mine> = rooms
        .iter()
        .map(|room| Mine {
            room,
            pages: Pages::new(client, room, Some(user), timeout),
            buffered: VecDeque::new(),
        })
        .collect();
    let mut count = 0;
    loop {
        let mut earliest = None;
        for (i, source) in sources.iter_mut().enumerate() {
            if let Some(key) = source.peek().await? {
                if earliest.as_ref().is_none_or(|(_, best)| key < *best) {
                    earliest = Some((i, key));
                }
            }
        }
        let Some((i, _)) = earliest else { break };
        let Some(event) = sources[i].buffered.pop_front() else {
            break;
        };
        count += 1;
        if events.send(event).await.is_err() {
            return Ok(count);
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
