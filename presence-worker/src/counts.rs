//! Recent user counts per room, for heartbeat replies.
//!
//! A heartbeat reply carries the room's user count, and counting reads every session of
//! the room: a room of n users sends about n heartbeats per heartbeat interval, so
//! counting on each one costs O(n²) reads per interval. At 1,000 users (chat-bench's
//! presence scenario) that alone saturated the worker and the server. A count at most
//! [`MAX_AGE`] old is reused instead; it is only shown, never decided on.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chat_protocol::RoomName;

use crate::listing::ListError;
use crate::sessions::Sessions;

/// How old a reused count may be.
pub const MAX_AGE: Duration = Duration::from_secs(1);

/// Rooms kept before stale counts are dropped.
const PRUNE_ABOVE: usize = 1024;

/// The latest count of each room and when it was taken.
#[derive(Debug, Default)]
pub(crate) struct RecentCounts {
    counts: Mutex<HashMap<RoomName, (Instant, usize)>>,
}

impl RecentCounts {
    /// Distinct users online in `room`: a count at most [`MAX_AGE`] old, else a fresh
    /// snapshot.
    pub(crate) async fn users(
        &self,
        sessions: &Sessions,
        room: &RoomName,
    ) -> Result<usize, ListError> {
        if let Some(&(at, n)) = self.lock().get(room) {
            if at.elapsed() < MAX_AGE {
                return Ok(n);
            }
        }
        let n = sessions.users_snapshot(room).await?.len();
        let mut counts = self.lock();
        if counts.len() > PRUNE_ABOVE {
            counts.retain(|_, (at, _)| at.elapsed() < MAX_AGE);
        }
        counts.insert(room.clone(), (Instant::now(), n));
        Ok(n)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<RoomName, (Instant, usize)>> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }
}
