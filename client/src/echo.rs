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

/// `name`'s entry, made if missing; the name is copied only then (this runs for
/// every message sent and every message shown).
fn room_of<'a>(rooms: &'a mut HashMap<RoomName, Room>, name: &RoomName) -> &'a mut Room {
    if !rooms.contains_key(name) {
        rooms.insert(name.clone(), Room::default());
    }
    rooms.get_mut(name).expect("just made")
}

/// Per room: how far its feed has shown, and the own messages above that.
#[derive(Debug, Default)]
pub struct Echoes(Mutex<HashMap<RoomName, Room>>);

#[derive(Debug, Default)]
struct Room {
    /// The feed has shown everything up to here.
    shown: u64,
    /// Sequence → start of the text.
    waiting: BTreeMap<u64, String>,
}

impl Echoes {
    fn rooms(&self) -> std::sync::MutexGuard<'_, HashMap<RoomName, Room>> {
        // A panic elsewhere while holding the lock leaves a usable map.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A message of `room` was stored at `seq` (the feed may have shown it already:
    /// the ack and the delivery race).
    pub(crate) fn acked(&self, room: &RoomName, seq: u64, preview: String) {
        let mut rooms = self.rooms();
        let room = room_of(&mut rooms, room);
        if seq > room.shown {
            room.waiting.insert(seq, preview);
        }
    }

    /// `room`'s feed has shown everything up to `seq`.
    pub(crate) fn shown(&self, room: &RoomName, seq: u64) {
        let mut rooms = self.rooms();
        let room = room_of(&mut rooms, room);
        room.shown = room.shown.max(seq);
        // Usually the one message just shown: taken off the front, no new map.
        while let Some(entry) = room.waiting.first_entry() {
            if *entry.key() > seq {
                break;
            }
            entry.remove();
        }
    }

    /// The highest sequence of `room` still waiting to be shown.
    pub(crate) fn last(&self, room: &RoomName) -> Option<u64> {
        self.rooms()
            .get(room)
            .and_then(|r| r.waiting.last_key_value().map(|(seq, _)| *seq))
    }

    /// Forgets `room` (left, or its stream recreated), returning what was not shown.
    pub(crate) fn take(&self, room: &RoomName) -> Vec<(u64, String)> {
        self.rooms()
            .remove(room)
            .map(|r| r.waiting.into_iter().collect())
            .unwrap_or_default()
    }
}
