//! What each kind of connection may do, as the allow lists of its user JWT. The server
//! enforces them: a chat user can publish only as itself and read only its own replies.
//! `docs/protocol.md` ("Accounts and permissions") lists the same, for people.

use chat_protocol::auth::{self, inbox_prefix};
use chat_protocol::{streams, subjects, UserName};

/// Publish and subscribe allow lists, and what is denied within them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permissions {
    /// Subjects it may publish to.
    pub publish: Vec<String>,
    /// Subjects it may not publish to, though `publish` matches them.
    pub publish_deny: Vec<String>,
    /// Subjects it may subscribe to.
    pub subscribe: Vec<String>,
    /// Subjects it may not subscribe to, though `subscribe` matches them.
    pub subscribe_deny: Vec<String>,
}

/// The streams of `CHAT` that are not room streams: the presence buckets. Chat users
/// may not read them (sessions are the presence worker's business; `/users` answers
/// who is online). Any future private stream of `CHAT` belongs in this list.
fn private_streams() -> [String; 3] {
    [
        streams::PRESENCE_BUCKET,
        streams::PRESENCE_USERS_BUCKET,
        streams::MODERATION_BUCKET,
    ]
    .map(|bucket| format!("KV_{bucket}"))
}

/// A chat user in `CHAT`: speaks only as itself (room messages and presence requests on
/// subjects ending in its name), asks the workers, reads room streams through the
/// read-only part of the JetStream API (stream info, ordered and pull consumers, direct
/// get), and receives only on its own inbox prefix. No stream, KV or `.sys` writes, no
/// deletes, no other inboxes. `*` in a JetStream API subject matches any stream of the
/// account, so the private streams are denied by name.
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
            subjects::endpoints::REPLAY.to_string(),
            auth::PASSWD.to_string(),
            auth::RESUME.to_string(),
            // Moderation commands only as itself; anyone's standing (public).
            subjects::moderate_pattern(user),
            subjects::ANY_STANDING.to_string(),
            // Finding a stream by subject (nats-py, nats.js subscribe helpers).
            "$JS.API.INFO".to_string(),
            "$JS.API.STREAM.NAMES".to_string(),
            room("STREAM.INFO"),
            room("CONSUMER.CREATE"),
            format!("{}.>", room("CONSUMER.CREATE")),
            format!("{}.*", room("CONSUMER.INFO")),
            format!("{}.*", room("CONSUMER.MSG.NEXT")),
            // Deleting its short-lived consumers when done (names are random and cannot
            // be listed, so another's are out of reach in practice).
            format!("{}.*", room("CONSUMER.DELETE")),
            // Flow-control answers of push consumers (nats-py, nats.js ordered consumers).
            "$JS.FC.*.>".to_string(),
        ],
        publish_deny: private_streams()
            .iter()
            .flat_map(|stream| {
                [
                    format!("$JS.API.STREAM.INFO.{stream}"),
                    format!("$JS.API.CONSUMER.CREATE.{stream}"),
                    format!("$JS.API.CONSUMER.CREATE.{stream}.>"),
                    format!("$JS.API.CONSUMER.INFO.{stream}.*"),
                    format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.*"),
                    format!("$JS.API.CONSUMER.DELETE.{stream}.*"),
                ]
            })
            .collect(),
        subscribe: vec![
            format!("{}.>", inbox_prefix(user)),
            // A room feed learns at once that its stream was deleted or created again.
            "$JS.EVENT.ADVISORY.STREAM.*.*".to_string(),
        ],
        subscribe_deny: private_streams()
            .iter()
            .map(|stream| format!("$JS.EVENT.ADVISORY.STREAM.*.{stream}"))
            .collect(),
    }
}

/// A muted chat user: everything of [`chat_user`] but chat messages (the server
/// refuses them; the login ends when the mute does).
pub fn muted_chat_user(user: &UserName) -> Permissions {
    let mut permissions = chat_user(user);
    let speak = subjects::room_message_pattern(user);
    permissions.publish.retain(|subject| *subject != speak);
    permissions
}

/// A guest in `GUEST`: may only register, ask a standing (why a login is refused),
/// and receive the answers.
pub fn guest() -> Permissions {
    Permissions {
        publish: vec![
            auth::REGISTER.to_string(),
            subjects::ANY_STANDING.to_string(),
        ],
        publish_deny: Vec::new(),
        subscribe: vec!["_INBOX.>".to_string()],
        subscribe_deny: Vec::new(),
    }
}
