//! What the client tells its user: the [`Event`]s the UI consumes.
//!
//! The library never prints; it sends events, and a UI renders them (as terminal
//! lines, or as one JSON object per line with `--json`). The JSON shape is the
//! `--json` line-mode contract: every object has an `event` field naming its kind.

use chat_protocol::body::{
    rfc3339, EventDetail, MessageKind, Reason, RoomPayload, RoomSummary, SystemKind,
};
use chat_protocol::{RoomName, UserName};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// Connection and session states worth telling the user about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// The connection to NATS dropped; async-nats is reconnecting.
    Disconnected,
    /// The connection is back.
    Reconnected,
    /// No presence worker answered; the join or heartbeat is retried.
    PresenceUnavailable,
    /// A presence worker answers again after an outage.
    PresenceAvailable,
    /// A heartbeat found the session expired; it is registered again.
    Rejoined,
    /// The user left a room.
    Left,
    /// The live feed of a room failed and is being recreated.
    Resuming,
    /// The server refused the login while reconnecting (retried a few times, then the
    /// session ends).
    LoginRefused,
    /// `/passwd` changed the password.
    PasswordChanged,
    /// The room's stream was deleted; the feed waits for it to be created again.
    StreamGone,
    /// The room's stream was created again; the feed shows the new one from its start.
    StreamRecreated,
    /// Messages are paced to the allowed rate: how far the batch has got.
    Sending,
    /// `/seq` showed or hid stream sequences.
    Sequences,
    /// This user is muted: nothing typed is sent until the mute ends.
    Muted,
    /// This user's mute ended: sending works again.
    Unmuted,
    /// A moderation command of this user was carried out.
    Moderated,
}

/// One thing to show.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The presence worker accepted the join.
    Welcome {
        /// The room joined.
        room: RoomName,
        /// This client's user.
        user: UserName,
        /// Distinct users online.
        users: u64,
        /// The worker's greeting.
        text: String,
    },
    /// A chat message, replayed or live.
    Message {
        /// Its room.
        room: RoomName,
        /// Its sender: the subject's user, never the body's.
        user: UserName,
        /// Speech or action.
        #[serde(rename = "type")]
        kind: MessageKind,
        /// The text as sent (UIs sanitize it before display).
        text: String,
        /// Message id.
        id: String,
        /// Stream sequence.
        seq: u64,
        /// Sender's time, or the stream's when the body had none.
        #[serde(with = "rfc3339")]
        ts: DateTime<Utc>,
        /// From history rather than live.
        replay: bool,
        /// The body claimed another sender than the subject.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        spoofed: bool,
    },
    /// Someone joined or left, or a moderation (muted, kicked, deleted, ...).
    System {
        /// Its room.
        room: RoomName,
        /// Who joined or left; the target of a moderation (for `deleted`, the author of
        /// the removed messages).
        user: UserName,
        /// What happened.
        #[serde(rename = "type")]
        kind: SystemKind,
        /// Why.
        reason: Reason,
        /// Distinct users online after the change (0 for moderation events).
        users: u64,
        /// Stream sequence.
        seq: u64,
        /// A moderation's `by`, `until`, `note` and, for `deleted`, the `seqs` to hide
        /// (each absent when empty).
        #[serde(flatten)]
        detail: EventDetail,
    },
    /// Answer to `/users`.
    Users {
        /// The room.
        room: RoomName,
        /// Who is online, sorted.
        users: Vec<UserName>,
    },
    /// Answer to `/rooms`.
    Rooms {
        /// The rooms listed (the busiest when there are too many for one reply).
        rooms: Vec<RoomSummary>,
        /// How many more rooms exist.
        unlisted: u64,
    },
    /// Answer to `/help`: one line per command.
    Help {
        /// `usage  what it does`, per command.
        commands: Vec<String>,
    },
    /// Something failed or was refused.
    Error {
        /// What, for a person.
        message: String,
    },
    /// A change of connection or session state.
    Status {
        /// The new state.
        state: State,
        /// The room concerned, if any.
        #[serde(skip_serializing_if = "Option::is_none")]
        room: Option<RoomName>,
        /// What it means, for a person.
        message: String,
    },
    /// How far a long history replay has got (interactive progress; not a line-mode event).
    HistoryProgress {
        /// The room being replayed.
        room: RoomName,
        /// Messages shown so far.
        count: u64,
    },
    /// A history replay (`#all_messages`, `#my_messages`) finished.
    HistoryEnd {
        /// The room replayed (for `#my_messages`: the current room).
        room: RoomName,
        /// Set for `#my_messages`: whose messages were replayed.
        #[serde(skip_serializing_if = "Option::is_none")]
        user: Option<UserName>,
        /// Messages shown.
        count: u64,
    },
}

impl Event {
    /// An error event for anything displayable.
    pub fn error(message: impl std::fmt::Display) -> Self {
        Event::Error {
            message: message.to_string(),
        }
    }

    /// A status event.
    pub fn status(state: State, room: Option<&RoomName>, message: impl Into<String>) -> Self {
        Event::Status {
            state,
            room: room.cloned(),
            message: message.into(),
        }
    }
}

/// Checks a message stored in room `room`'s stream (under `subject`, at sequence `seq`
/// and time `time`) the way every message from the wire is checked, and turns it into
/// the event that shows it; `None`, with a warn log line, when it is not valid.
pub fn from_stored(
    room: &RoomName,
    subject: &str,
    payload: &[u8],
    seq: u64,
    time: DateTime<Utc>,
    replay: bool,
) -> Option<Event> {
    match chat_protocol::body::decode_room_payload(subject, payload) {
        Ok(payload) => Some(from_payload(room, payload, seq, time, replay)),
        Err(err) => {
            tracing::warn!(%room, seq, "skipped message: {err}");
            None
        }
    }
}

/// Turns a checked message of room `room` into the event that shows it.
pub fn from_payload(
    room: &RoomName,
    payload: RoomPayload,
    seq: u64,
    stored_at: DateTime<Utc>,
    replay: bool,
) -> Event {
    match payload {
        RoomPayload::Chat {
            user,
            message,
            spoofed,
        } => Event::Message {
            room: room.clone(),
            user,
            kind: message.kind,
            text: message.text,
            id: message.id,
            seq,
            ts: message.ts.unwrap_or(stored_at),
            replay,
            spoofed,
        },
        RoomPayload::System(event) => Event::System {
            room: event.room,
            user: event.user,
            kind: event.kind,
            reason: event.reason,
            users: event.users,
            seq,
            detail: event.detail,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_shape() {
        let room = RoomName::new("general").unwrap();
        let user = UserName::new("alice").unwrap();
        let message = Event::Message {
            room: room.clone(),
            user: user.clone(),
            kind: MessageKind::Me,
            text: "waves".into(),
            id: "i".into(),
            seq: 7,
            ts: DateTime::from_timestamp(0, 0).unwrap(),
            replay: true,
            spoofed: false,
        };
        let v = serde_json::to_value(&message).unwrap();
        assert_eq!(v["event"], "message");
        assert_eq!(v["type"], "me");
        assert_eq!(v["seq"], 7);
        assert_eq!(v["replay"], true);
        assert_eq!(v["ts"], "1970-01-01T00:00:00.000Z");
        assert!(v.get("spoofed").is_none());
        let end = Event::HistoryEnd {
            room: room.clone(),
            user: None,
            count: 3,
        };
        assert_eq!(
            serde_json::to_string(&end).unwrap(),
            r#"{"event":"history_end","room":"general","count":3}"#
        );
        let status = Event::status(State::Disconnected, None, "x");
        assert_eq!(
            serde_json::to_value(&status).unwrap()["state"],
            "disconnected"
        );
        let welcome = Event::Welcome {
            room,
            user,
            users: 2,
            text: "hi".into(),
        };
        assert_eq!(serde_json::to_value(&welcome).unwrap()["event"], "welcome");
    }
}
