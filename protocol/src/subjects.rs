//! Every NATS subject of the chat, built and parsed in one place.
//!
//! Everything lives under the `chat.` root so that a single permission line covers
//! the application. No other file in the workspace spells a subject.

use crate::names::{NameError, RoomName, UserName};

/// Root of every chat subject.
pub const ROOT: &str = "chat";

/// `chat.room.<room>.msg.<user>`: where `user` publishes chat messages into `room`.
pub fn room_message(room: &RoomName, user: &UserName) -> String {
    format!("{ROOT}.room.{room}.msg.{user}")
}

/// `chat.room.*.msg.<user>`: what `user` may publish, in any room.
pub fn room_message_pattern(user: &UserName) -> String {
    format!("{ROOT}.room.*.msg.{user}")
}

/// `chat.presence.*.<user>`: `user`'s presence requests, in any room.
pub fn presence_pattern(user: &UserName) -> String {
    format!("{ROOT}.presence.*.{user}")
}

/// `chat.room.<room>.msg.*`: every chat message of a room, whoever sent it.
pub fn room_messages(room: &RoomName) -> String {
    format!("{ROOT}.room.{room}.msg.*")
}

/// `chat.room.<room>.sys`: joined/left events, published by the presence worker.
pub fn room_system(room: &RoomName) -> String {
    format!("{ROOT}.room.{room}.sys")
}

/// `chat.room.<room>.>`: everything stored in the room's stream.
pub fn room_all(room: &RoomName) -> String {
    format!("{ROOT}.room.{room}.>")
}

/// `chat.presence.<room>.<user>`: join, heartbeat and leave requests.
pub fn presence(room: &RoomName, user: &UserName) -> String {
    format!("{ROOT}.presence.{room}.{user}")
}

/// `chat.users.<room>`: who is online in a room.
pub fn users(room: &RoomName) -> String {
    format!("{ROOT}.users.{room}")
}

/// `chat.rooms`: every room with its online and stored counts.
pub const ROOMS: &str = "chat.rooms";

/// `chat.history.<room>`: pages of a room's stored messages.
pub fn history(room: &RoomName) -> String {
    format!("{ROOT}.history.{room}")
}

/// `chat.replay.<room>`: the plan for reading a room's stored messages straight from
/// its stream (a whole replay, `#all_messages` and `#my_messages`).
pub fn replay(room: &RoomName) -> String {
    format!("{ROOT}.replay.{room}")
}

/// `chat.room.*.msg.*`: every chat message of every room (what the rate limit counts).
pub const ALL_ROOM_MESSAGES: &str = "chat.room.*.msg.*";

/// `chat.moderate.<room>.<user>`: `user`'s moderation command, announced in `room`.
pub fn moderate(room: &RoomName, user: &UserName) -> String {
    format!("{ROOT}.moderate.{room}.{user}")
}

/// `chat.moderate.*.<user>`: what `user` may send moderation commands on.
pub fn moderate_pattern(user: &UserName) -> String {
    format!("{ROOT}.moderate.*.{user}")
}

/// `chat.standing.<user>`: `user`'s role, mute and ban.
pub fn standing(user: &UserName) -> String {
    format!("{ROOT}.standing.{user}")
}

/// `chat.standing.*`: anyone's standing (public).
pub const ANY_STANDING: &str = "chat.standing.*";

/// `chat.admin.role`: grant a role (from `@admin` only).
pub const ADMIN_ROLE: &str = "chat.admin.role";

/// Subjects the workers subscribe to (their service endpoints).
pub mod endpoints {
    /// Presence requests for any room and user.
    pub const PRESENCE: &str = "chat.presence.*.*";
    /// Users requests for any room.
    pub const USERS: &str = "chat.users.*";
    /// The rooms request.
    pub const ROOMS: &str = super::ROOMS;
    /// History requests for any room.
    pub const HISTORY: &str = "chat.history.*";
    /// Replay plans for any room.
    pub const REPLAY: &str = "chat.replay.*";
    /// Moderation commands for any room and user.
    pub const MODERATE: &str = "chat.moderate.*.*";
    /// Standing requests for any user.
    pub const STANDING: &str = super::ANY_STANDING;
    /// Role grants.
    pub const ADMIN_ROLE: &str = super::ADMIN_ROLE;
}

/// What a subject of the room stream carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomSubject {
    /// `chat.room.<room>.msg.<user>`
    Message { room: RoomName, user: UserName },
    /// `chat.room.<room>.sys`
    System { room: RoomName },
}

/// Why a subject could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubjectError {
    /// The subject is not one of the contract's shapes.
    #[error("subject {0:?} is not a chat subject of the expected shape")]
    Shape(String),
    /// A name token breaks the naming rules.
    #[error("subject has an invalid name: {0}")]
    Name(#[from] NameError),
}

fn shape(subject: &str) -> SubjectError {
    SubjectError::Shape(crate::display::sanitize(subject).into_owned())
}

/// Parses a subject of a room stream.
pub fn parse_room_subject(subject: &str) -> Result<RoomSubject, SubjectError> {
    // Every stored message passes here: split without collecting the tokens.
    let mut tokens = subject.split('.');
    let mut next = || tokens.next();
    match (next(), next(), next(), next(), next(), next()) {
        (Some(ROOT), Some("room"), Some(room), Some("msg"), Some(user), None) => {
            Ok(RoomSubject::Message {
                room: RoomName::new(room)?,
                user: UserName::new(user)?,
            })
        }
        (Some(ROOT), Some("room"), Some(room), Some("sys"), None, None) => {
            Ok(RoomSubject::System {
                room: RoomName::new(room)?,
            })
        }
        _ => Err(shape(subject)),
    }
}

/// Parses `chat.presence.<room>.<user>`.
pub fn parse_presence(subject: &str) -> Result<(RoomName, UserName), SubjectError> {
    match subject.split('.').collect::<Vec<_>>().as_slice() {
        [ROOT, "presence", room, user] => Ok((RoomName::new(*room)?, UserName::new(*user)?)),
        _ => Err(shape(subject)),
    }
}

/// Parses `chat.users.<room>`.
pub fn parse_users(subject: &str) -> Result<RoomName, SubjectError> {
    match subject.split('.').collect::<Vec<_>>().as_slice() {
        [ROOT, "users", room] => Ok(RoomName::new(*room)?),
        _ => Err(shape(subject)),
    }
}

/// Parses `chat.history.<room>`.
pub fn parse_history(subject: &str) -> Result<RoomName, SubjectError> {
    match subject.split('.').collect::<Vec<_>>().as_slice() {
        [ROOT, "history", room] => Ok(RoomName::new(*room)?),
        _ => Err(shape(subject)),
    }
}

/// Parses `chat.replay.<room>`.
pub fn parse_replay(subject: &str) -> Result<RoomName, SubjectError> {
    match subject.split('.').collect::<Vec<_>>().as_slice() {
        [ROOT, "replay", room] => Ok(RoomName::new(*room)?),
        _ => Err(shape(subject)),
    }
}

/// Parses `chat.moderate.<room>.<user>`.
pub fn parse_moderate(subject: &str) -> Result<(RoomName, UserName), SubjectError> {
    match subject.split('.').collect::<Vec<_>>().as_slice() {
        [ROOT, "moderate", room, user] => Ok((RoomName::new(*room)?, UserName::new(*user)?)),
        _ => Err(shape(subject)),
    }
}

/// Parses `chat.standing.<user>`.
pub fn parse_standing(subject: &str) -> Result<UserName, SubjectError> {
    match subject.split('.').collect::<Vec<_>>().as_slice() {
        [ROOT, "standing", user] => Ok(UserName::new(*user)?),
        _ => Err(shape(subject)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(s: &str) -> RoomName {
        RoomName::new(s).unwrap()
    }
    fn user(s: &str) -> UserName {
        UserName::new(s).unwrap()
    }

    #[test]
    fn round_trips() {
        let (r, u) = (room("general"), user("alice"));
        assert_eq!(room_message(&r, &u), "chat.room.general.msg.alice");
        assert_eq!(
            parse_room_subject(&room_message(&r, &u)).unwrap(),
            RoomSubject::Message {
                room: r.clone(),
                user: u.clone()
            }
        );
        assert_eq!(
            parse_room_subject(&room_system(&r)).unwrap(),
            RoomSubject::System { room: r.clone() }
        );
        assert_eq!(
            parse_presence(&presence(&r, &u)).unwrap(),
            (r.clone(), u.clone())
        );
        assert_eq!(parse_users(&users(&r)).unwrap(), r);
        assert_eq!(parse_history(&history(&r)).unwrap(), r);
        assert_eq!(parse_replay(&replay(&r)).unwrap(), r);
        assert!(parse_replay("chat.replay.general.x").is_err());
        assert_eq!(room_all(&r), "chat.room.general.>");
        assert_eq!(moderate(&r, &u), "chat.moderate.general.alice");
        assert_eq!(
            parse_moderate(&moderate(&r, &u)).unwrap(),
            (r.clone(), u.clone())
        );
        assert_eq!(moderate_pattern(&u), "chat.moderate.*.alice");
        assert_eq!(standing(&u), "chat.standing.alice");
        assert_eq!(parse_standing(&standing(&u)).unwrap(), u);
    }

    #[test]
    fn rejects_foreign_shapes() {
        assert!(parse_room_subject("chat.room.general.msg").is_err());
        assert!(parse_room_subject("chat.room.General.sys").is_err());
        assert!(parse_room_subject("chat.room.general.msg.al ice").is_err());
        assert!(parse_room_subject("other.room.general.sys").is_err());
        assert!(parse_presence("chat.presence.general").is_err());
        assert!(parse_users("chat.users.a.b").is_err());
        assert!(parse_moderate("chat.moderate.general").is_err());
        assert!(parse_moderate("chat.moderate.general.@admin").is_err());
        assert!(parse_standing("chat.standing.a.b").is_err());
        assert!(parse_standing("chat.standing.*").is_err());
    }
}
