//! Room streams: created on first join (idempotent create-or-update), and summarised
//! for `chat.rooms`.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Mutex;

use async_nats::jetstream::{self, context::CreateStreamError};
use chat_protocol::body::{RoomSummary, RoomsReply};
use chat_protocol::streams::room_of_stream;
use chat_protocol::{RoomName, UserName};
use chat_runtime::storage::{room_stream_config, RoomStreamSettings};
use futures::TryStreamExt;

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
    ensured: Mutex<HashSet<RoomName>>,
}

impl RoomStreams {
    /// A new handle; nothing is created yet.
    pub fn new(js: jetstream::Context, settings: RoomStreamSettings) -> Self {
        Self {
            js,
            settings,
            ensured: Mutex::new(HashSet::new()),
        }
    }

    fn is_ensured(&self, room: &RoomName) -> bool {
        self.ensured
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(room)
    }

    /// Makes sure the room's stream exists with the configured settings. The first call
    /// per room and instance asks the server; later ones are answered from memory.
    pub async fn ensure(&self, room: &RoomName) -> Result<(), CreateStreamError> {
        if self.is_ensured(room) {
            return Ok(());
        }
        // Another instance may be creating it for another member right now.
        let config = room_stream_config(room, &self.settings);
        create_with_retries("room stream", ENSURE_PATIENCE, || {
            self.js.create_or_update_stream(config.clone())
        })
        .await?;
        self.ensured
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(room.clone());
        Ok(())
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
        Ok(RoomsReply {
            rooms: rooms
                .into_iter()
                .map(|room| RoomSummary {
                    users: online.get(&room).map_or(0, |u| u.len() as u64),
                    messages: stored.get(&room).copied().unwrap_or(0),
                    room,
                })
                .collect(),
        })
    }
}
