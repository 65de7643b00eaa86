//! `#all_messages` and `#my_messages` (the history worker plans them, the client reads
//! them from the room streams: [`crate::replay`]), and the pages of scrollback
//! (`chat.history.<room>`).
//!
//! Messages are shown as they arrive, so a room of any size replays in bounded memory.
//! A request that gets no answer (its worker died, none runs for a moment) is asked for
//! again, which another instance answers: a page comes from the same cursor, so
//! scrolling goes on from the last sequence shown, with no duplicate.
//! `#my_messages` merges the rooms by time holding at most one batch per room (and a
//! run of events on its way to the UI).

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
use crate::replay::Replay;

pub(crate) const SERVICE: &str = "history";

/// Messages asked for per page (the worker caps it to its own maximum, and bounds
/// the page in bytes whatever the message sizes): big pages make long replays fast.
const PAGE_LIMIT: u32 = 1000;

/// Attempts per page: a page whose worker died or did not answer is asked for again.
const PAGE_ATTEMPTS: u32 = 4;

/// Pause before asking for a page again; doubled for each further attempt.
const RETRY_BACKOFF: Duration = Duration::from_millis(200);

/// Awaits the request `first` (sent by `ask`, for the page at `after` of `room`),
/// asking again after a pause when no worker answered, up to [`PAGE_ATTEMPTS`] in all.
/// The worker that had the request died, or none runs right now: another instance (or
/// a restarted one) gets the same request again, so a replay goes on from the last
/// sequence shown, with no duplicate.
pub(crate) async fn retrying<T>(
    room: &RoomName,
    after: u64,
    first: JoinHandle<Result<T, RequestError>>,
    ask: impl Fn() -> JoinHandle<Result<T, RequestError>>,
) -> Result<T, RequestError> {
    let mut ahead = first;
    let mut attempt = 1;
    let mut backoff = Backoff::new(RETRY_BACKOFF, RETRY_BACKOFF * 2u32.pow(PAGE_ATTEMPTS));
    loop {
        let result = ahead
            .await
            .map_err(|e| RequestError::Nats(SERVICE, Arc::new(e)))?;
        match result {
            Ok(answer) => return Ok(answer),
            Err(
                err @ (RequestError::TimedOut(..)
                | RequestError::Unavailable(_)
                | RequestError::Busy(..)
                | RequestError::Nats(..)),
            ) if attempt < PAGE_ATTEMPTS => {
                tracing::warn!(%room, after, attempt, "history request failed ({err}); asking again");
                backoff.wait().await;
                attempt += 1;
                ahead = ask();
            }
            Err(err) => return Err(err),
        }
    }
}

/// Walks the pages of one room's history, a page at a time (scrollback).
///
/// The request for the following page goes out as soon as a page arrives, so the
/// worker reads it while this one is shown: at most two pages are held at a time.
struct Pages<'a> {
    client: &'a async_nats::Client,
    room: &'a RoomName,
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
    fn new(client: &'a async_nats::Client, room: &'a RoomName, timeout: Duration) -> Self {
        Self {
            client,
            room,
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
            user: None,
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
        let ahead = match self.ahead.take() {
            Some(ahead) => ahead,
            None => self.ask(after),
        };
        let page = retrying(self.room, after, ahead, || self.ask(after)).await?;
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
    let mut pages = Pages::new(client, room, timeout);
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

/// Messages shown between two `history_progress` events of `#all_messages`.
const PROGRESS_EVERY: u64 = 1000;

/// Events of a replay handed to the UI in one go when they were already received:
/// the UI's task is woken once for the run, not once per message (a wake-up cost as
/// much as checking a message).
const RUN: usize = 128;

/// Most messages in flight per room while `#my_messages` reads several rooms at once
/// (each room's consumer holds at most one batch).
const MERGE_BATCH: i64 = chat_runtime::reading::MAX_BATCH as i64;

/// Shows the complete history of `room` in order, then a `history_end` event.
/// Returns how many chat messages were shown.
///
/// The history worker plans the replay and the client reads it from the room's
/// stream itself ([`Replay`]).
pub(crate) async fn all_messages(
    client: &async_nats::Client,
    room: &RoomName,
    timeout: Duration,
    events: &mpsc::Sender<Event>,
) -> Result<u64, RequestError> {
    let mut count = 0;
    let mut replay = Replay::open(client, room, None, None, timeout).await?;
    let mut run = Vec::with_capacity(RUN);
    while let Some(event) = replay.next().await? {
        run.push(event);
        while run.len() < RUN {
            match replay.next_ready()? {
                Some(event) => run.push(event),
                None => break,
            }
        }
        for event in run.drain(..) {
            if matches!(event, Event::Message { .. }) {
                count += 1;
                if count % PROGRESS_EVERY == 0 {
                    let progress = Event::HistoryProgress {
                        room: room.clone(),
                        count,
                    };
                    let _ = events.send(progress).await;
                }
            }
            if events.send(event).await.is_err() {
                return Ok(count);
            }
        }
    }
    let end = Event::HistoryEnd {
        room: room.clone(),
        user: None,
        count,
    };
    let _ = events.send(end).await;
    Ok(count)
}

/// One room's chat messages by a user, oldest first, with the next one looked at.
struct OwnMessages {
    replay: Replay,
    peeked: Option<Event>,
}

impl OwnMessages {
    /// Sort key of the next message, reading it when none is looked at yet; none once
    /// the room is exhausted.
    async fn peek(&mut self) -> Result<Option<(DateTime<Utc>, u64)>, RequestError> {
        while self.peeked.is_none() {
            match self.replay.next().await? {
                None => return Ok(None),
                Some(event @ Event::Message { .. }) => self.peeked = Some(event),
                Some(_) => {}
            }
        }
        Ok(match &self.peeked {
            Some(Event::Message { ts, seq, .. }) => Some((*ts, *seq)),
            _ => None,
        })
    }

    /// Looks at the next message if one was already received, without waiting.
    fn peek_ready(&mut self) -> Result<(), RequestError> {
        while self.peeked.is_none() {
            match self.replay.next_ready()? {
                None => break,
                Some(event @ Event::Message { .. }) => self.peeked = Some(event),
                Some(_) => {}
            }
        }
        Ok(())
    }
}

/// Shows `user`'s messages in every room of `rooms` (sorted by name), merged by time
/// (a streaming merge: at most one batch in flight per room), then a `history_end`
/// event naming `current`.
/// Returns how many were shown.
pub(crate) async fn my_messages(
    client: &async_nats::Client,
    user: &UserName,
    rooms: &[RoomName],
    current: &RoomName,
    timeout: Duration,
    events: &mpsc::Sender<Event>,
) -> Result<u64, RequestError> {
    let mut sources = Vec::with_capacity(rooms.len());
    for room in rooms {
        // One room needs no merge: the library's larger pulls are faster.
        let batch = (rooms.len() > 1).then_some(MERGE_BATCH);
        let replay = Replay::open(client, room, Some(user), batch, timeout).await?;
        sources.push(OwnMessages {
            replay,
            peeked: None,
        });
    }
    let mut count = 0;
    let mut run = Vec::with_capacity(RUN);
    loop {
        // Before anything has to be waited for, the run so far goes to the UI.
        for source in &mut sources {
            source.peek_ready()?;
        }
        let waits = sources
            .iter()
            .any(|s| s.peeked.is_none() && !s.replay.is_over());
        if waits || run.len() >= RUN {
            for event in run.drain(..) {
                if events.send(event).await.is_err() {
                    return Ok(count);
                }
            }
        }
        let mut earliest = None;
        for (i, source) in sources.iter_mut().enumerate() {
            // Ties in time go to the room first by name (`rooms` is sorted), then
            // by sequence.
            if let Some((ts, seq)) = source.peek().await? {
                let key = (ts, i, seq);
                if earliest.is_none_or(|best| key < best) {
                    earliest = Some(key);
                }
            }
        }
        let Some((_, i, _)) = earliest else { break };
        let Some(event) = sources[i].peeked.take() else {
            break;
        };
        count += 1;
        run.push(event);
    }
    for event in run {
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
