//! The consistency rules of reading who is online: which reads may come from the
//! in-memory view, and how long each waits for it before asking the server.
//!
//! - `confirmed_…`: knows at least a given write (a decision's, or every write
//!   acknowledged before the call): from the view once it has applied that far, else
//!   listed from the server.
//! - `cached_…`: the view as it is, which may lag writes by moments; for showing
//!   (counts in replies and events), never for deciding.

use std::time::Duration;

use chat_protocol::streams::presence_filter;
use chat_protocol::{RoomName, UserName};

use super::Sessions;
use crate::listing::ListError;

/// How long a joined/left decision waits for the in-memory view to apply the write
/// it must know about before listing the user's sessions from the server instead.
/// The view is usually there within a millisecond; a miss costs a listing consumer.
const DECISION_PATIENCE: Duration = Duration::from_millis(500);

/// How long `/users` waits for the in-memory view to apply the latest write before
/// reading from the server instead (the latest message may be gone, e.g. an expired
/// marker, so the view can never reach it).
const VIEW_PATIENCE: Duration = Duration::from_millis(50);

/// Whether a user has a session in a room, and as of when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UserListing {
    /// At least one live session.
    pub online: bool,
    /// Every write to the bucket up to this stream sequence is reflected.
    pub through: u64,
    /// Whether the in-memory view answered (else a listing consumer on the server).
    pub from_view: bool,
}

impl Sessions {
    /// Whether `user` has a live session in `room`, knowing every write to the bucket
    /// up to `through`: from the in-memory view once it has applied that far, else
    /// listed from the server through a consumer. `None` (every write acknowledged
    /// before the call: the start-up sweep, states from older workers) always lists
    /// from the server: the bucket's last sequence may belong to a message that is
    /// gone (an expired marker), which the view can never reach.
    pub async fn confirmed_online(
        &self,
        room: &RoomName,
        user: &UserName,
        through: Option<u64>,
    ) -> Result<UserListing, ListError> {
        if let Some(through) = through {
            let view = self
                .view
                .user_online_through(room, user, through, DECISION_PATIENCE);
            if let Some((online, through)) = view.await {
                return Ok(UserListing {
                    online,
                    through,
                    from_view: true,
                });
            }
        }
        // The consumer is created after this read, so it knows at least this far.
        let through = self.last_sequence().await?;
        let online = !self
            .listed_sessions(&presence_filter(room, Some(user)))
            .await?
            .is_empty();
        Ok(UserListing {
            online,
            through,
            from_view: false,
        })
    }

    /// Distinct users online in `room`, sorted, consistent with every write
    /// acknowledged before the call (`/users`): from the in-memory view once it has
    /// applied the bucket's latest sequence, else read from the server.
    pub async fn confirmed_users(&self, room: &RoomName) -> Result<Vec<UserName>, ListError> {
        if let Ok(info) = self.store.stream.get_info().await {
            let last = info.state.last_sequence;
            if let Some(users) = self.view.users_through(room, last, VIEW_PATIENCE).await {
                return Ok(users);
            }
        }
        self.listed_users(room).await
    }

    /// Distinct users online in `room`, sorted, for showing (`/users`, reply and event
    /// counts): from the in-memory view, or a snapshot read from the server while the
    /// view catches up. It may lag writes by moments; decisions use
    /// [`Sessions::confirmed_online`] on the user's own sessions instead.
    pub async fn cached_users(&self, room: &RoomName) -> Result<Vec<UserName>, ListError> {
        match self.view.cached_users(room) {
            Some(users) => Ok(users),
            None => self.listed_users(room).await,
        }
    }
}
