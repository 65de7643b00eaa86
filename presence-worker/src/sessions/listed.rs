//! `listed_…` reads: who is online as the server has it, through a short-lived
//! consumer or a direct get, knowing every write acknowledged before the call. They
//! cost a round trip (and O(matching keys) work for the server).

use std::collections::BTreeSet;

use chat_protocol::streams::{parse_presence_key, presence_filter};
use chat_protocol::{RoomName, SessionId, UserName};

use super::Sessions;
use crate::listing::{LatestEntry, ListError};

/// A live session, as listed from the bucket.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LiveSession {
    /// Its room.
    pub room: RoomName,
    /// Its user.
    pub user: UserName,
    /// The session.
    pub session: SessionId,
}

impl Sessions {
    /// The bucket stream's last sequence, as the server has it now.
    pub async fn last_sequence(&self) -> Result<u64, ListError> {
        Ok(self.store.stream.get_info().await?.state.last_sequence)
    }

    /// Every live session matching a key filter (see [`presence_filter`]), consistent
    /// with every write acknowledged before the call.
    pub async fn listed_sessions(&self, filter: &str) -> Result<Vec<LiveSession>, ListError> {
        let latest = self
            .lister
            .latest(self.stream(), self.prefix(), filter, true)
            .await?;
        Ok(live_sessions(latest))
    }

    /// Every live session of every room.
    pub async fn listed_all_sessions(&self) -> Result<Vec<LiveSession>, ListError> {
        self.listed_sessions(">").await
    }

    /// Distinct users online in `room`, read from the server (one direct-get
    /// snapshot of the room's keys).
    pub(super) async fn listed_users(&self, room: &RoomName) -> Result<Vec<UserName>, ListError> {
        let latest = self
            .lister
            .snapshot(self.stream(), self.prefix(), &presence_filter(room, None))
            .await?;
        Ok(distinct_users(room, live_sessions(latest)))
    }
}

/// The live sessions among listed entries; keys that break the naming rules (written
/// by someone else) are logged and skipped.
fn live_sessions(latest: Vec<LatestEntry>) -> Vec<LiveSession> {
    latest
        .into_iter()
        .filter(|entry| entry.removal().is_none())
        .filter_map(|entry| match parse_presence_key(&entry.key) {
            Ok((room, user, session)) => Some(LiveSession {
                room,
                user,
                session,
            }),
            Err(err) => {
                tracing::warn!(%err, "skipping a presence key that breaks the naming rules");
                None
            }
        })
        .collect()
}

fn distinct_users(room: &RoomName, sessions: Vec<LiveSession>) -> Vec<UserName> {
    let users: BTreeSet<UserName> = sessions
        .into_iter()
        .filter(|s| &s.room == room)
        .map(|s| s.user)
        .collect();
    users.into_iter().collect()
}
