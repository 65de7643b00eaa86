//! This session's presence in one room: join (retried until a presence worker
//! answers), heartbeats at the pace the worker asks for, and leave.

use std::time::Duration;

use chat_protocol::body::{PresenceAction, PresenceReply, PresenceRequest};
use chat_protocol::{subjects, RoomName, SessionId, UserName};
use chat_runtime::Backoff;
use tokio::sync::mpsc;

use crate::call::{self, RequestError};
use crate::event::{Event, State};

/// First pause before a failed heartbeat is sent again.
const HEARTBEAT_RETRY: Duration = Duration::from_millis(500);

/// First pause before a join or leave refused as busy is sent again (doubling up to
/// eight times that): a crowd arriving or leaving at once finds the worker's slots
/// and queue taken, and its slots free within about one event gap (100 ms).
const BUSY_RETRY: Duration = Duration::from_millis(50);

/// How long a join refused as busy is retried before the user is told, like any
/// other failure: a moment's crowd is not worth a line on the screen.
const BUSY_UNTOLD: Duration = Duration::from_secs(3);

/// Longest pause between two join attempts.
const MAX_JOIN_BACKOFF: Duration = Duration::from_secs(10);

/// Who is present where: everything a presence request needs.
#[derive(Debug, Clone)]
pub(crate) struct Presence {
    pub client: async_nats::Client,
    pub room: RoomName,
    pub user: UserName,
    pub session: SessionId,
    pub timeout: Duration,
}

impl Presence {
    /// One presence request.
    pub async fn request(&self, action: PresenceAction) -> Result<PresenceReply, RequestError> {
        let body = PresenceRequest {
            action,
            session: self.session,
        };
        call::request(
            &self.client,
            "presence",
            subjects::presence(&self.room, &self.user),
            call::body(&body),
            self.timeout,
        )
        .await
    }

    /// Leaves, asking again after a short pause while the worker is too busy to take
    /// the request (everyone leaving at once), for at most `patience` in all: a leave
    /// that does not get through leaves the session to expire, announced as a
    /// timeout a TTL later.
    pub async fn leave(&self, patience: Duration) -> Result<PresenceReply, RequestError> {
        let deadline = tokio::time::Instant::now() + patience;
        let mut backoff = Backoff::new(BUSY_RETRY, BUSY_RETRY * 8);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let presence = Presence {
                timeout: left,
                ..self.clone()
            };
            match presence.request(PresenceAction::Leave).await {
                Err(RequestError::Busy(..)) if left > BUSY_RETRY => {
                    let pause = backoff.next_delay().min(left - BUSY_RETRY);
                    tokio::time::sleep(pause).await;
                }
                done => return done,
            }
        }
    }

    /// Joins, retrying with backoff while no presence worker answers; the user is told
    /// once per outage. A refusal as busy (a crowd arriving at once) is asked again
    /// after a short pause, untold for its first seconds. Never gives up: the room is
    /// useless without a join.
    pub async fn join(&self, events: &mpsc::Sender<Event>) -> PresenceReply {
        let mut backoff = Backoff::new(Duration::from_millis(250), MAX_JOIN_BACKOFF);
        let mut busy = Backoff::new(BUSY_RETRY, BUSY_RETRY * 8);
        let started = tokio::time::Instant::now();
        let mut told = false;
        loop {
            match self.request(PresenceAction::Join).await {
                Ok(reply) => return reply,
                Err(RequestError::Busy(..)) if started.elapsed() < BUSY_UNTOLD => {
                    tracing::debug!(room = %self.room, "join refused as busy; retrying");
                    busy.wait().await;
                    continue;
                }
                Err(err) => {
                    tracing::warn!(room = %self.room, "join failed: {err}; retrying");
                    if !told {
                        told = true;
                        // Every request error names its service already.
                        let message = format!("{err}; retrying");
                        let _ = events
                            .send(Event::status(
                                State::PresenceUnavailable,
                                Some(&self.room),
                                message,
                            ))
                            .await;
                    }
                }
            }
            backoff.wait().await;
        }
    }

    /// Sends a heartbeat every `every` forever; tells the user when one re-registered
    /// an expired session, and once per outage when no presence worker answers (and
    /// when one does again). A failed beat is tried again soon, after a pause doubling
    /// from [`HEARTBEAT_RETRY`] up to `every`: in a cluster the sessions' bucket is
    /// unavailable for a few seconds while it elects a leader after a node died, and
    /// waiting a whole period after each failure could let the session expire.
    pub async fn heartbeats(&self, every: Duration, events: &mpsc::Sender<Event>) {
        let mut retry = Backoff::new(HEARTBEAT_RETRY, every);
        let mut next = every;
        let mut failing = false;
        loop {
            tokio::time::sleep(next).await;
            let notice = match self.request(PresenceAction::Heartbeat).await {
                Ok(reply) => {
                    next = every;
                    retry.reset();
                    let back = std::mem::take(&mut failing).then(|| {
                        let message = format!("presence service is back for {}", self.room);
                        (State::PresenceAvailable, message)
                    });
                    let rejoined = reply.rejoined.then(|| {
                        let message = format!(
                            "your session in {} had expired; it is registered again",
                            self.room
                        );
                        (State::Rejoined, message)
                    });
                    rejoined.or(back)
                }
                Err(err) => {
                    next = retry.next_delay();
                    tracing::warn!(room = %self.room, retry_in = ?next, "heartbeat failed: {err}");
                    (!std::mem::replace(&mut failing, true)).then(|| {
                        let message = format!("{err}; heartbeats go on");
                        (State::PresenceUnavailable, message)
                    })
                }
            };
            if let Some((state, message)) = notice {
                let _ = events
                    .send(Event::status(state, Some(&self.room), message))
                    .await;
            }
        }
    }
}
