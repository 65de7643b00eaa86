//! What each kind of connection may do, as the allow lists of its user JWT. The server
//! enforces them: a chat user can publish only as itself and read only its own replies.
//! `docs/protocol.md` ("Accounts and permissions") lists the same, for people.

use chat_protocol::auth::{self, inbox_prefix};
use chat_protocol::{subjects, UserName};

/// Publish and subscribe allow lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permissions {
    /// Subjects it may publish to.
    pub publish: Vec<String>,
    /// Subjects it may subscribe to.
    pub subscribe: Vec<String>,
}

/// A chat user in `CHAT`: speaks only as itself (room messages and presence requests on
/// subjects ending in its name), asks the workers, reads room streams through the
/// read-only part of the JetStream API (stream info, ordered and pull consumers, direct
/// get), and receives only on its own inbox prefix. No stream, KV or `.sys` writes, no
/// deletes, no other inboxes.
pub fn chat_user(user: &UserName) -> Permissions {
    // `*` is a whole token in NATS subjects (`CHAT_*` would match only a stream literally
    // named so): any stream of the account, whose only streams are the public room
    // streams and the presence buckets (the user table is in another account).
    let room = |name: &str| format!("$JS.API.{name}.*");
    Permissions {
        publish: vec![
            subjects::room_message_pattern(user),
            subjects::presence_pattern(user),
            subjects::endpoints::USERS.to_string(),
            subjects::endpoints::ROOMS.to_string(),
            subjects::endpoints::HISTORY.to_string(),
            auth::PASSWD.to_string(),
            auth::RESUME.to_string(),
            room("STREAM.INFO"),
            room("CONSUMER.CREATE"),
            format!("{}.>", room("CONSUMER.CREATE")),
            format!("{}.*", room("CONSUMER.INFO")),
            format!("{}.*", room("CONSUMER.MSG.NEXT")),
            room("DIRECT.GET"),
            format!("{}.>", room("DIRECT.GET")),
            // Flow-control answers of ordered push consumers.
            "$JS.FC.*.>".to_string(),
        ],
        subscribe: vec![format!("{}.>", inbox_prefix(user))],
    }
}

/// A guest in `GUEST`: may only register, and receive the answer.
pub fn guest() -> Permissions {
    Permissions {
        publish: vec![auth::REGISTER.to_string()],
        subscribe: vec!["_INBOX.>".to_string()],
    }
}
