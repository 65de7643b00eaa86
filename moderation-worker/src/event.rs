//! The room events the worker writes (`SystemEvent` of a moderation kind), built in one
//! place so that every field the contract names is filled the same way.

use chat_protocol::body::{EventDetail, Reason, SystemEvent, SystemKind, VERSION};
use chat_protocol::{RoomName, UserName};
use chrono::{DateTime, Utc};

/// An event of `kind` about `user` in `room`, with its id (also its `Nats-Msg-Id`).
pub fn moderation(
    id: String,
    kind: SystemKind,
    reason: Reason,
    room: &RoomName,
    user: &UserName,
    detail: EventDetail,
) -> SystemEvent {
    SystemEvent {
        v: VERSION,
        kind,
        id,
        room: room.clone(),
        user: user.clone(),
        reason,
        users: 0,
        ts: Some(Utc::now()),
        detail,
    }
}

/// A moderator's (or author's) action: `by`, `until`, `note` as given.
pub fn by_moderator(
    id: String,
    kind: SystemKind,
    room: &RoomName,
    user: &UserName,
    by: &UserName,
    until: Option<DateTime<Utc>>,
    note: Option<String>,
) -> SystemEvent {
    let detail = EventDetail {
        by: Some(by.clone()),
        until,
        note,
        seqs: Vec::new(),
        others: Vec::new(),
    };
    moderation(id, kind, Reason::Moderator, room, user, detail)
}

/// The rate limit muted `user` until `until`.
pub fn flood_muted(
    id: String,
    room: &RoomName,
    user: &UserName,
    until: DateTime<Utc>,
) -> SystemEvent {
    let detail = EventDetail {
        until: Some(until),
        ..EventDetail::default()
    };
    moderation(id, SystemKind::Muted, Reason::Flood, room, user, detail)
}

/// The tombstone of a flood's excess in `room`.
pub fn flood_deleted(id: String, room: &RoomName, user: &UserName, seqs: Vec<u64>) -> SystemEvent {
    let detail = EventDetail {
        seqs,
        ..EventDetail::default()
    };
    moderation(id, SystemKind::Deleted, Reason::Flood, room, user, detail)
}
