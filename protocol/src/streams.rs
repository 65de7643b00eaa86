//! Where the chat keeps its state in JetStream: the names of the room streams, of the
//! presence bucket and its keys, and of the moderation bucket and its keys.
//!
//! Only the presence worker creates these (idempotently, on first join); clients and
//! the history worker only read and publish. The configuration each is created with
//! is `chat_runtime::storage`, described in `docs/protocol.md`.

use crate::names::{NameError, RoomName, SessionId, UserName};

/// Prefix of every room stream's name: `CHAT_<room>`.
pub const STREAM_PREFIX: &str = "CHAT_";

/// Name of the room's stream.
pub fn stream_name(room: &RoomName) -> String {
    format!("{STREAM_PREFIX}{room}")
}

/// The room a stream belongs to, if the stream is a room stream.
pub fn room_of_stream(name: &str) -> Option<RoomName> {
    RoomName::new(name.strip_prefix(STREAM_PREFIX)?).ok()
}

/// Largest stored message, headers included. A maximum-length text (4000 characters)
/// is at most 24,000 bytes of JSON even if every character needs a `\u00XX` escape;
/// the rest is room for the envelope and headers.
pub const MAX_MESSAGE_BYTES: i32 = 32 * 1024;

/// The KV bucket holding one key per online session.
pub const PRESENCE_BUCKET: &str = "chat_presence";

/// Key of a session in [`PRESENCE_BUCKET`]: `<room>.<user>.<session>`.
pub fn presence_key(room: &RoomName, user: &UserName, session: &SessionId) -> String {
    format!("{room}.{user}.{session}")
}

/// Key filter for every session of `user` in `room`, or of everybody in `room`.
pub fn presence_filter(room: &RoomName, user: Option<&UserName>) -> String {
    match user {
        Some(user) => format!("{room}.{user}.*"),
        None => format!("{room}.*.*"),
    }
}

/// Splits a presence key into its names.
pub fn parse_presence_key(key: &str) -> Result<(RoomName, UserName, SessionId), NameError> {
    let mut parts = key.splitn(3, '.');
    let (Some(room), Some(user), Some(session)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(NameError::BadSession(
            crate::display::sanitize(key).into_owned(),
        ));
    };
    Ok((
        RoomName::new(room)?,
        UserName::new(user)?,
        SessionId::new(session)?,
    ))
}

/// Internal bucket of the presence worker (its joined/left outbox), **not part of the
/// wire contract**: named here only so that permissions keep every chat user out of
/// it. Its keys and values belong to the presence worker (`presence-worker/src/outbox.rs`)
/// and may change without a contract version bump.
pub const PRESENCE_USERS_BUCKET: &str = "chat_presence_users";

/// The moderation worker's KV bucket: roles and standings (mutes, bans). Chat users
/// are denied its JetStream API like the presence buckets'; they ask
/// `chat.standing.<user>` instead.
pub const MODERATION_BUCKET: &str = "chat_moderation";

/// Key of a user's role in [`MODERATION_BUCKET`]: `role.<user>`, value `{"role"}`.
pub fn role_key(user: &UserName) -> String {
    format!("role.{user}")
}

/// Key of a user's standing record in [`MODERATION_BUCKET`]: `standing.<user>`. Its
/// value belongs to the moderation worker (`moderation-worker/src/record.rs`).
pub fn standing_key(user: &UserName) -> String {
    format!("standing.{user}")
}

/// Key filter of every standing record in [`MODERATION_BUCKET`].
pub const STANDING_KEYS: &str = "standing.*";

/// The user a [`standing_key`] or [`role_key`] is about.
pub fn user_of_moderation_key(key: &str) -> Option<UserName> {
    let user = key
        .strip_prefix("standing.")
        .or_else(|| key.strip_prefix("role."))?;
    UserName::new(user).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let room = RoomName::new("rust-dev").unwrap();
        assert_eq!(stream_name(&room), "CHAT_rust-dev");
        assert_eq!(room_of_stream("CHAT_rust-dev"), Some(room.clone()));
        assert_eq!(room_of_stream("KV_chat_presence"), None);
        let user = UserName::new("Bob_2").unwrap();
        let session = SessionId::random();
        let key = presence_key(&room, &user, &session);
        assert_eq!(
            parse_presence_key(&key).unwrap(),
            (room.clone(), user.clone(), session)
        );
        assert!(parse_presence_key("general.alice").is_err());
        assert_eq!(role_key(&user), "role.Bob_2");
        assert_eq!(standing_key(&user), "standing.Bob_2");
        assert_eq!(
            user_of_moderation_key(&standing_key(&user)),
            Some(user.clone())
        );
        assert_eq!(user_of_moderation_key("presence.Bob_2"), None);
    }
}
