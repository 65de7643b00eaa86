//! Accounts, logins and the `chat.auth.*` requests: the part of the contract that says
//! who may connect as whom.
//!
//! Every chat user logs in with their chat name and password in the CONNECT
//! `user`/`pass` fields; nats-server asks the auth worker (auth callout), which answers
//! with the user's permissions in the `CHAT` account. A connection without a password is
//! a guest in the `GUEST` account and may only register. `docs/protocol.md` lists the
//! permissions; this module names the accounts, the static users, the subjects and the
//! bodies.

use serde::{Deserialize, Serialize};

use crate::names::UserName;

/// Account of chat users and of the presence and history workers.
pub const CHAT_ACCOUNT: &str = "CHAT";
/// Account of the auth worker and its user table; no chat user can read it.
pub const AUTH_ACCOUNT: &str = "AUTH";
/// Account of connections without a password: they may only register.
pub const GUEST_ACCOUNT: &str = "GUEST";
/// The server's system account.
pub const SYSTEM_ACCOUNT: &str = "SYS";

/// The static users of the server configuration, one per worker plus an operator
/// account. Each starts with `@`, which no chat name may contain, so that no chat user
/// can ever register one of these names.
pub mod static_users {
    /// The auth worker (account `AUTH`).
    pub const AUTH: &str = "@auth";
    /// The presence worker (account `CHAT`).
    pub const PRESENCE: &str = "@presence";
    /// The history worker (account `CHAT`).
    pub const HISTORY: &str = "@history";
    /// The moderation worker (account `CHAT`).
    pub const MODERATION: &str = "@moderation";
    /// The moderation worker's second connection, in the system account: it may only
    /// list connections (`CONNZ`) and kick them.
    pub const MODERATION_SYS: &str = "@moderation_sys";
    /// An operator with every right in `CHAT` (tools, tests, `nats` CLI sessions).
    pub const ADMIN: &str = "@admin";
    /// An operator in the system account (`nats server report ...`).
    pub const SYSTEM: &str = "@sys";
    /// All of them, as listed in the callout's `auth_users`.
    pub const ALL: [&str; 7] = [
        AUTH,
        PRESENCE,
        HISTORY,
        MODERATION,
        MODERATION_SYS,
        ADMIN,
        SYSTEM,
    ];
}

/// `chat.auth.register` (from `GUEST`): create an account. [`RegisterRequest`] →
/// [`AuthReply`].
pub const REGISTER: &str = "chat.auth.register";
/// `chat.auth.passwd` (from `CHAT`): change one's own password. [`PasswdRequest`] →
/// [`AuthReply`].
pub const PASSWD: &str = "chat.auth.passwd";
/// `chat.auth.resume` (from `CHAT`): a resume token for fast reconnects. Empty body →
/// [`ResumeReply`].
pub const RESUME: &str = "chat.auth.resume";
/// The subject nats-server sends auth callout requests on (in the `AUTH` account).
pub const CALLOUT: &str = "$SYS.REQ.USER.AUTH";
/// The header nats-server adds to an imported request (`share: true`): who asks.
pub const REQUEST_INFO_HEADER: &str = "Nats-Request-Info";

/// The prefix of the inbox subjects of `user`'s connections: `_INBOX_<user>`. Clients
/// must set it (async-nats `custom_inbox_prefix`, nats.js `inboxPrefix`); a user may
/// subscribe to `_INBOX_<user>.>` and nothing else, so no one reads another's replies.
pub fn inbox_prefix(user: &UserName) -> String {
    format!("_INBOX_{user}")
}

/// The password prefix that marks a resume token rather than a password.
pub const RESUME_TOKEN_PREFIX: &str = "resume.v1.";

/// Shortest password accepted at registration or change, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest password accepted, in bytes (hashing cost must not be a lever).
pub const MAX_PASSWORD_BYTES: usize = 256;

/// Why a password is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    /// Fewer than [`MIN_PASSWORD_CHARS`] characters.
    #[error("the password is too short ({0} characters); use at least {MIN_PASSWORD_CHARS}")]
    TooShort(usize),
    /// More than [`MAX_PASSWORD_BYTES`] bytes.
    #[error("the password is too long ({0} bytes); use at most {MAX_PASSWORD_BYTES} bytes")]
    TooLong(usize),
    /// The same as the user name.
    #[error("the password must not be the user name")]
    IsUserName,
    /// Starts like a resume token, which login would read as one.
    #[error("the password must not start with {RESUME_TOKEN_PREFIX:?}")]
    LooksLikeToken,
    /// Contains control characters (a typing accident, or an attempt at one).
    #[error("the password must not contain control characters")]
    Control,
}

/// Checks a new password against the rules above (the auth worker enforces them; the
/// client checks first to say so before sending anything).
pub fn check_password(user: &UserName, password: &str) -> Result<(), PasswordError> {
    let chars = password.chars().count();
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(PasswordError::TooLong(password.len()));
    }
    if chars < MIN_PASSWORD_CHARS {
        return Err(PasswordError::TooShort(chars));
    }
    if password.chars().any(char::is_control) {
        return Err(PasswordError::Control);
    }
    if password.eq_ignore_ascii_case(user.as_str()) {
        return Err(PasswordError::IsUserName);
    }
    if password.starts_with(RESUME_TOKEN_PREFIX) {
        return Err(PasswordError::LooksLikeToken);
    }
    Ok(())
}

/// Body of `chat.auth.register`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterRequest {
    /// The chat name wanted (the user-name rules apply; names differing only in case
    /// from an existing one are taken).
    pub user: String,
    /// The password.
    pub password: String,
}

/// Body of `chat.auth.passwd` (the user is whoever is logged in on the connection).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswdRequest {
    /// The current password.
    pub old: String,
    /// The new password.
    pub new: String,
}

/// Success reply of `chat.auth.register` and `chat.auth.passwd`: `{"ok": true, "user"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthReply {
    /// Always true (failures are an [`ErrorReply`](crate::body::ErrorReply)).
    pub ok: bool,
    /// The user concerned.
    pub user: UserName,
}

/// Reply of `chat.auth.resume`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumeReply {
    /// Always true.
    pub ok: bool,
    /// Present it as the CONNECT password (with the same user name) to log in again
    /// without the password's hashing cost. It stops working when it expires or when
    /// the password changes.
    pub token: String,
    /// When it expires (RFC 3339).
    #[serde(with = "crate::body::rfc3339")]
    pub expires: chrono::DateTime<chrono::Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_rules() {
        let alice = UserName::new("alice").unwrap();
        assert!(check_password(&alice, "correct horse").is_ok());
        assert_eq!(
            check_password(&alice, "short"),
            Err(PasswordError::TooShort(5))
        );
        assert_eq!(check_password(&alice, ""), Err(PasswordError::TooShort(0)));
        assert_eq!(
            check_password(&UserName::new("alice_long").unwrap(), "ALICE_LONG"),
            Err(PasswordError::IsUserName)
        );
        assert!(matches!(
            check_password(&alice, &"x".repeat(300)),
            Err(PasswordError::TooLong(300))
        ));
        assert_eq!(
            check_password(&alice, "resume.v1.abcdefgh"),
            Err(PasswordError::LooksLikeToken)
        );
        assert_eq!(
            check_password(&alice, "tab\there!"),
            Err(PasswordError::Control)
        );
    }

    #[test]
    fn static_users_are_never_chat_names() {
        for name in static_users::ALL {
            assert!(UserName::new(name).is_err(), "{name}");
        }
    }

    #[test]
    fn inbox() {
        assert_eq!(inbox_prefix(&UserName::new("bob").unwrap()), "_INBOX_bob");
    }
}
