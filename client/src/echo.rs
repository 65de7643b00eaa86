//! Own messages acknowledged but not yet shown by their room's feed.
//!
//! Line mode promises that a script sees the echo of each of its messages before the
//! client exits. The publisher records every acknowledged message here (room, stream
//! sequence, start of the text); each room's feed forgets them as it shows that
//! sequence. Closing waits until its rooms' feeds have caught up with what is recorded
//! and names what is still not shown, instead of leaving it out silently.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use chat_protocol::RoomName;

/// Per room: sequence → start of the text, of own messages not yet shown.
#[derive(Debug, Default)]
pub struct Echoes(Mutex<HashMap<RoomName, BTreeMap<u64, String>>>);

impl Echoes {
    fn rooms(&self) -> std::sync::MutexGuard<'_, HashMap<RoomName, BTreeMap<u64, String>>> {
        // A panic elsewhere while holding the lock leaves a usable map.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A message of `room` was stored at `seq`.
    pub(crate) fn acked(&self, room: &RoomName, seq: u64, preview: &str) {
        self.rooms()
            .entry(room.clone())
            .or_default()
            .insert(seq, preview.to_string());
    }

    /// `room`'s feed has shown everything up to `seq`.
    pub(crate) fn shown(&self, room: &RoomName, seq: u64) {
        let mut rooms = self.rooms();
        if let Some(waiting) = rooms.get_mut(room) {
            if waiting
                .first_key_value()
                .is_some_and(|(first, _)| *first <= seq)
            {
                *waiting = waiting.split_off(&(seq + 1));
            }
        }
    }

    /// The highest sequence of `room` still waiting to be shown.
    pub(crate) fn last(&self, room: &RoomName) -> Option<u64> {
        self.rooms()
            .get(room)
            .and_then(|w| w.last_key_value().map(|(seq, _)| *seq))
    }

    /// Forgets `room` (left, or its stream recreated), returning what was not shown.
    pub(crate) fn take(&self, room: &RoomName) -> Vec<(u64, String)> {
        self.rooms()
            .remove(room)
            .map(|w| w.into_iter().collect())
            .unwrap_or_default()
    }
}
