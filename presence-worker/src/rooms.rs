//! Room streams: created on first join (idempotent create-or-update), and summarised
//! for `chat.rooms`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use async_nats::jetstream::{self, context::CreateStreamError};
use chat_protocol::body::{RoomSummary, RoomsReply, MAX_LISTED_ROOMS};
use chat_protocol::streams::room_of_stream;
use chat_protocol::{RoomName, UserName};
use chat_runtime::storage::{room_stream_config, RoomStreamSettings};
use futures::TryStreamExt;
use tokio::sync::OnceCell;

use crate::listing::ListError;
use crate::sessions::Sessions;
use chat_runtime::replicas::create_with_retries;

/// Why the rooms summary failed.
#[derive(Debug, thiserror::Error)]
pub enum RoomsError {
    /// Listing the streams failed.
    #[error("cannot list the room streams: {0}")]
    Streams(#[source] async_nats::jetstream::context::StreamsError),
    /// Listing the sessions failed.
    #[error(transparent)]
    Sessions(#[from] ListError),
}

/// How long a join retries creating its room's stream (within the client's request
/// timeout).
const ENSURE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(2);

/// Creates room streams and remembers which ones this instance already ensured.
pub(crate) struct RoomStreams {
    js: jetstream::Context,
    settings: RoomStreamSettings,
    /// One cell per room, set once its stream is known to exist: the joins of a crowd
    /// arriving in a new room wait for the first one's request instead of each
    /// sending its own (a thousand joins across ten new rooms sent about a thousand
    /// create-or-update requests, each a stream info for the server to build).
    ensured: Mutex<HashMap<RoomName, Arc<OnceCell<()>>>>,
}

impl RoomStreams {
    /// A new handle; nothing is created yet.
    pub fn new(js: jetstream::Context, settings: RoomStreamSettings) -> Self {
        Self {
            js,
            settings,
            ensured: Mutex::new(HashMap::new()),
        }
    }

    /// Makes sure the room's stream exists with the configured settings. The first call
    /// per room and instance asks the server, and calls made meanwhile wait for its
    /// answer (or try themselves if it failed); later ones are answered from memory.
    pub async fn ensure(&self, room: &RoomName) -> Result<(), CreateStreamError> {
        let cell = self
            .ensured
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(room.clone())
            .or_default()
            .clone();
        cell.get_or_try_init(|| async {
            // Another instance may be creating it for another member right now.
            let config = room_stream_config(room, &self.settings);
            create_with_retries("room stream", ENSURE_PATIENCE, || {
                self.js.create_or_update_stream(config.clone())
            })
            .await
            .map(drop)
        })
        .await
        .copied()
    }

    /// The room streams' duplicate window: how long a repeated `Nats-Msg-Id` is
    /// recognised.
    pub fn duplicate_window(&self) -> std::time::Duration {
        self.settings.duplicate_window
    }

    /// Forgets that a room's stream exists (someone deleted it), so that the next
    /// [`RoomStreams::ensure`] creates it again.
    pub fn forget(&self, room: &RoomName) {
        self.ensured
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(room);
    }

    /// Every room with a stream or someone online: distinct users online and
    /// messages stored, sorted by room.
    pub async fn summary(&self, sessions: &Sessions) -> Result<RoomsReply, RoomsError> {
        let mut stored: BTreeMap<RoomName, u64> = BTreeMap::new();
        let mut streams = self.js.streams();
        while let Some(info) = streams.try_next().await.map_err(RoomsError::Streams)? {
            if let Some(room) = room_of_stream(&info.config.name) {
                stored.insert(room, info.state.messages);
            }
        }
        let mut online: BTreeMap<RoomName, BTreeSet<UserName>> = BTreeMap::new();
        for session in sessions.listed_all_sessions().await? {
            online.entry(session.room).or_default().insert(session.user);
        }
        let rooms: BTreeSet<RoomName> = stored.keys().chain(online.keys()).cloned().collect();
        let rooms = rooms
            .into_iter()
            .map(|room| RoomSummary {
                users: online.get(&room).map_or(0, |u| u.len() as u64),
                messages: stored.get(&room).copied().unwrap_or(0),
                room,
            })
            .collect();
        Ok(busiest(rooms, MAX_LISTED_ROOMS))
    }
}

/// At most `max` of `rooms` (sorted by name): the ones with most users online, then
/// most messages, so that the reply fits in one NATS message whatever the number of
/// rooms; the rest are counted in `unlisted`.
fn busiest(mut rooms: Vec<RoomSummary>, max: usize) -> RoomsReply {
    let unlisted = rooms.len().saturating_sub(max) as u64;
    if unlisted > 0 {
        rooms.sort_by(|a, b| {
            (b.users, b.messages)
                .cmp(&(a.users, a.messages))
                .then_with(|| a.room.cmp(&b.room))
        });
        rooms.truncate(max);
        rooms.sort_by(|a, b| a.room.cmp(&b.room));
    }
    RoomsReply { rooms, unlisted }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(room: &str, users: u64, messages: u64) -> RoomSummary {
        RoomSummary {
            room: RoomName::new(room).unwrap(),
            users,
            messages,
        }
    }

    #[test]
    fn lists_every_room_up_to_the_bound() {
        let rooms = vec![summary("a", 0, 1), summary("b", 2, 0)];
        let reply = busiest(rooms.clone(), 2);
        assert_eq!((reply.rooms, reply.unlisted), (rooms, 0));
    }

    #[test]
    fn beyond_the_bound_keeps_the_busiest_sorted_by_name() {
        let rooms = vec![
            summary("a", 0, 5),
            summary("b", 3, 0),
            summary("c", 0, 9),
            summary("d", 1, 0),
        ];
        let reply = busiest(rooms, 3);
        let names: Vec<&str> = reply.rooms.iter().map(|r| r.room.as_str()).collect();
        assert_eq!(names, ["b", "c", "d"]);
        assert_eq!(reply.unlisted, 1);
    }

    #[test]
    fn a_full_reply_fits_in_a_nats_message() {
        let long = |i: usize| format!("{i:0>64}");
        let rooms = (0..2 * MAX_LISTED_ROOMS)
            .map(|i| summary(&long(i), u64::MAX, u64::MAX))
            .collect();
        let reply = busiest(rooms, MAX_LISTED_ROOMS);
        let bytes = serde_json::to_vec(&reply).unwrap().len();
        assert!(bytes < 80 * 1024, "{bytes} bytes");
    }
}
