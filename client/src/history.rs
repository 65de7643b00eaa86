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
use std::sync::Arc;
use std::time::Duration;

use chat_protocol::body::{HistoryEntry, HistoryPage, HistoryRequest};
use chat_protocol::{subjects, RoomName, UserName};
use chat_runtime::Backoff;
use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::call::{self, Malformed, RequestError};
use crate::event::{self, Event};

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
    /// Messages asked for per page.
    limit: u32,
    /// Walk towards older messages (scrollback) rather than newer ones.
    backwards: bool,
    /// The next page starts after this sequence (before it, walking backwards); none
    /// once the room is exhausted.
    after: Option<u64>,
    /// The request for the page at `after`, already sent.
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
            limit: PAGE_LIMIT,
            backwards: false,
            after: Some(0),
            ahead: None,
        }
    }

    /// Sends the request for the page at the cursor `after`.
    fn ask(&self, after: u64) -> JoinHandle<Result<HistoryPage, RequestError>> {
        let (before, after) = match self.backwards {
            true => (Some(after), None),
            false => (None, Some(after)),
        };
        let request = HistoryRequest {
            limit: Some(self.limit),
            before,
            after,
            user: self.user.cloned(),
        };
        let client = self.client.clone();
        let subject = subjects::history(self.room);
        let timeout = self.timeout;
        tokio::spawn(async move {
            call::request(&client, SERVICE, subject, call::body(&request), timeout).await
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
                .map_err(|e| RequestError::Nats(SERVICE, Arc::new(e)))?;
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
            Some(next) if (next > after) != self.backwards && next != after => Some(next),
            Some(next) => {
                return Err(RequestError::Malformed(
                    SERVICE,
                    Malformed::Contract(format!("cursor went the wrong way ({next} from {after})")),
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

/// Which page of a room's history a scrollback wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    /// The newest messages below this sequence (scrolling up).
    Before(u64),
    /// The oldest messages above this sequence (scrolling back down).
    After(u64),
}

/// One page of `room`'s history (up to `limit` messages and system events, oldest
/// first), asked for and retried exactly as `#all_messages` pages are. The cursor for
/// the following page in the same direction comes with it (none: the room ends there).
pub(crate) async fn page(
    client: &async_nats::Client,
    room: &RoomName,
    page: Page,
    limit: u32,
    timeout: Duration,
) -> Result<(Vec<Event>, Option<u64>), RequestError> {
    let mut pages = Pages::new(client, room, None, timeout);
    pages.limit = limit;
    (pages.backwards, pages.after) = match page {
        Page::Before(before) => (true, Some(before)),
        Page::After(after) => (false, Some(after)),
    };
    let entries = pages.next().await?.unwrap_or_default();
    let events = entries.iter().filter_map(|e| to_event(room, e)).collect();
    // Not asked for again: this is one page.
    if let Some(ahead) = pages.ahead.take() {
        ahead.abort();
    }
    Ok((events, pages.after))
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
struct OwnMessages<'a> {
    room: &'a RoomName,
    pages: Pages<'a>,
    buffered: VecDeque<Event>,
}

impl OwnMessages<'_> {
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
    let mut sources: Vec<OwnMessages> = rooms
        .iter()
        .map(|room| OwnMessages {
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
