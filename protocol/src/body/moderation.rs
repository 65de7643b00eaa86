//! Moderation: commands (`chat.moderate.<room>.<user>`), a user's standing
//! (`chat.standing.<user>`), roles (`chat.admin.role`) and the rate allowance.
//!
//! The moderation worker answers all three; what it does is announced in the room as a
//! [`SystemEvent`](super::SystemEvent) of a moderation kind (`muted`, `deleted`, ...).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{rfc3339, v1, VERSION};
use crate::names::UserName;

/// Longest free-text reason of a command, in characters.
pub const MAX_REASON_CHARS: usize = 200;
/// Longest mute or ban a command may ask for: a year, in seconds.
pub const MAX_SECONDS: u64 = 31_536_000;
/// A moderator's mute without `seconds` lasts this long (ten minutes).
pub const DEFAULT_MUTE_SECONDS: u64 = 600;

/// What a moderation command does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// No chat messages until a time (the user stays connected, reading).
    Mute,
    /// End a mute now.
    Unmute,
    /// Disconnect every session of the user (they may log in again).
    Kick,
    /// Disconnect and refuse every login until a time, or until unbanned.
    Ban,
    /// End a ban now.
    Unban,
    /// Remove one message from the room (its author or a moderator).
    Delete,
}

impl Action {
    /// The command's name as written on the wire (`mute`, `delete`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Mute => "mute",
            Action::Unmute => "unmute",
            Action::Kick => "kick",
            Action::Ban => "ban",
            Action::Unban => "unban",
            Action::Delete => "delete",
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a [`ModerationRequest`] is not acceptable (the worker answers 400 with it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// `target` missing for a command about a user.
    #[error("{0} needs a target user (\"target\": \"<user>\")")]
    NoTarget(Action),
    /// `seq` missing for `delete`.
    #[error("delete needs the stream sequence of the message (\"seq\": <number>)")]
    NoSeq,
    /// `seconds` outside 1..=[`MAX_SECONDS`].
    #[error("seconds must be 1 to {MAX_SECONDS} (a year); got {0}")]
    Seconds(u64),
    /// `seconds` given to a command that takes no duration.
    #[error("{0} takes no duration; only mute and ban do")]
    NoDuration(Action),
    /// The reason is too long.
    #[error("the reason is {0} characters long; at most {MAX_REASON_CHARS} are allowed")]
    ReasonTooLong(usize),
    /// The reason contains control characters.
    #[error("the reason must not contain control characters")]
    ReasonControl,
}

/// Body of `chat.moderate.<room>.<user>` (`user` is who asks; `room` is where the
/// event is written).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModerationRequest {
    /// Contract version.
    #[serde(default = "v1")]
    pub v: u32,
    /// What to do.
    pub action: Action,
    /// Whom it concerns (every action but `delete`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<UserName>,
    /// How long a mute or ban lasts, 1..=[`MAX_SECONDS`]; mute defaults to
    /// [`DEFAULT_MUTE_SECONDS`], ban to no end (until unbanned).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<u64>,
    /// For `delete`: the stream sequence of the message in this room.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// Free text shown with the event, at most [`MAX_REASON_CHARS`] characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl ModerationRequest {
    /// A command about `target` (every action but `delete`).
    pub fn about(action: Action, target: UserName) -> Self {
        Self {
            v: VERSION,
            action,
            target: Some(target),
            seconds: None,
            seq: None,
            reason: None,
        }
    }

    /// `delete` of the message with stream sequence `seq`.
    pub fn delete(seq: u64) -> Self {
        Self {
            v: VERSION,
            action: Action::Delete,
            target: None,
            seconds: None,
            seq: Some(seq),
            reason: None,
        }
    }

    /// Checks the fields against the rules above: what the worker enforces, and what a
    /// client checks before sending.
    pub fn validate(&self) -> Result<(), RequestError> {
        match self.action {
            Action::Delete if self.seq.is_none() => return Err(RequestError::NoSeq),
            Action::Delete => {}
            action if self.target.is_none() => return Err(RequestError::NoTarget(action)),
            _ => {}
        }
        if let Some(seconds) = self.seconds {
            if !matches!(self.action, Action::Mute | Action::Ban) {
                return Err(RequestError::NoDuration(self.action));
            }
            if seconds == 0 || seconds > MAX_SECONDS {
                return Err(RequestError::Seconds(seconds));
            }
        }
        if let Some(reason) = &self.reason {
            check_reason(reason)?;
        }
        Ok(())
    }
}

/// Checks a free-text reason: at most [`MAX_REASON_CHARS`], no control characters.
pub fn check_reason(reason: &str) -> Result<(), RequestError> {
    let len = reason.chars().count();
    if len > MAX_REASON_CHARS {
        return Err(RequestError::ReasonTooLong(len));
    }
    if reason.chars().any(char::is_control) {
        return Err(RequestError::ReasonControl);
    }
    Ok(())
}

/// Success reply of `chat.moderate.<room>.<user>` and `chat.admin.role`; failures are
/// the usual [`ErrorReply`](super::ErrorReply) with codes 400, 403, 404, 503.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModerationReply {
    /// Always true.
    pub ok: bool,
    /// What was done (absent in a `chat.admin.role` reply).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
    /// Whom it concerned (for `delete`, the author of the message).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<UserName>,
    /// End of the mute or ban (absent: none, or no end).
    #[serde(
        default,
        with = "rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub until: Option<DateTime<Utc>>,
    /// The role now held (a `chat.admin.role` reply).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
}

/// A user's role. Only admins grant roles (`chat-admin role USER ROLE`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everyone: may delete their own messages.
    #[default]
    User,
    /// May mute, unmute, kick, ban, unban and delete any message.
    Moderator,
    /// A moderator that moderators cannot act on.
    Admin,
}

impl Role {
    /// The role's name as written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Moderator => "moderator",
            Role::Admin => "admin",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "user" => Ok(Role::User),
            "moderator" => Ok(Role::Moderator),
            "admin" => Ok(Role::Admin),
            other => Err(format!(
                "unknown role {:?}; a role is user, moderator or admin",
                crate::display::sanitize(other)
            )),
        }
    }
}

/// The message-rate allowance per user, across all rooms: a token bucket.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rate {
    /// Messages that may go out at once.
    pub burst: u32,
    /// Messages per second on average after the burst.
    pub per_second: f64,
}

impl Default for Rate {
    /// Burst 20, then 5 per second: what clients assume when standing is unavailable.
    fn default() -> Self {
        Self {
            burst: 20,
            per_second: 5.0,
        }
    }
}

/// Reply of `chat.standing.<user>`: public (mutes, bans and roles are announced in
/// rooms anyway). An unknown user gets role `user` and nulls, not an error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Standing {
    /// Contract version.
    #[serde(default = "v1")]
    pub v: u32,
    /// Whom it describes.
    pub user: UserName,
    /// Their role.
    #[serde(default)]
    pub role: Role,
    /// End of the current mute, if muted.
    #[serde(default, with = "rfc3339::option")]
    pub muted_until: Option<DateTime<Utc>>,
    /// End of the current ban, if banned with an end. A ban without end is written as
    /// [`BAN_FOREVER`].
    #[serde(default, with = "rfc3339::option")]
    pub banned_until: Option<DateTime<Utc>>,
    /// The reason of the current mute or ban.
    #[serde(default)]
    pub reason: Option<String>,
    /// The allowance the worker enforces: clients pace themselves to it.
    #[serde(default)]
    pub rate: Rate,
}

impl Standing {
    /// Whether the user is muted at `now`.
    pub fn muted_at(&self, now: DateTime<Utc>) -> bool {
        in_force(self.muted_until, now)
    }

    /// Whether the user is banned at `now`.
    pub fn banned_at(&self, now: DateTime<Utc>) -> bool {
        in_force(self.banned_until, now)
    }
}

/// Whether a mute or ban ending at `until` is in force at `now`.
pub fn in_force(until: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    until.is_some_and(|t| t > now)
}

/// `banned_until` of a ban without end (until unbanned): 9999-12-31T23:59:59Z.
pub fn ban_forever() -> DateTime<Utc> {
    DateTime::from_timestamp(253_402_300_799, 0).expect("a valid time")
}

/// The same, for documentation links.
pub const BAN_FOREVER: &str = "9999-12-31T23:59:59.000Z";

/// Body of `chat.admin.role` (only `@admin` may send it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleRequest {
    /// Whose role changes.
    pub user: UserName,
    /// The new role.
    pub role: Role,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bob() -> UserName {
        UserName::new("bob").unwrap()
    }

    #[test]
    fn request_matches_contract() {
        let r: ModerationRequest = serde_json::from_str(
            r#"{"v":1,"action":"mute","target":"bob","seconds":600,"reason":"spam"}"#,
        )
        .unwrap();
        assert_eq!(r.action, Action::Mute);
        assert_eq!(r.target, Some(bob()));
        assert_eq!(r.seconds, Some(600));
        assert!(r.validate().is_ok());
        let d = ModerationRequest::delete(42);
        let v = serde_json::to_value(&d).unwrap();
        assert_eq!(v, serde_json::json!({"v":1,"action":"delete","seq":42}));
        assert!(d.validate().is_ok());
    }

    #[test]
    fn request_rules() {
        let mut r = ModerationRequest::about(Action::Ban, bob());
        r.seconds = Some(0);
        assert_eq!(r.validate(), Err(RequestError::Seconds(0)));
        r.seconds = Some(MAX_SECONDS + 1);
        assert!(r.validate().is_err());
        let mut k = ModerationRequest::about(Action::Kick, bob());
        k.seconds = Some(5);
        assert_eq!(k.validate(), Err(RequestError::NoDuration(Action::Kick)));
        k.seconds = None;
        k.reason = Some("x".repeat(MAX_REASON_CHARS + 1));
        assert!(matches!(k.validate(), Err(RequestError::ReasonTooLong(_))));
        k.reason = Some("a\x1b[2J".into());
        assert_eq!(k.validate(), Err(RequestError::ReasonControl));
        let mut d = ModerationRequest::delete(1);
        d.seq = None;
        assert_eq!(d.validate(), Err(RequestError::NoSeq));
        let no_target: ModerationRequest = serde_json::from_str(r#"{"action":"unmute"}"#).unwrap();
        assert_eq!(
            no_target.validate(),
            Err(RequestError::NoTarget(Action::Unmute))
        );
        assert!(serde_json::from_str::<ModerationRequest>(r#"{"action":"nuke"}"#).is_err());
        assert!(
            serde_json::from_str::<ModerationRequest>(r#"{"action":"mute","target":"b b"}"#)
                .is_err()
        );
    }

    #[test]
    fn standing_matches_contract() {
        let s: Standing = serde_json::from_str(
            r#"{"v":1,"user":"bob","role":"user","muted_until":null,"banned_until":null,
                "reason":null,"rate":{"burst":20,"per_second":5.0}}"#,
        )
        .unwrap();
        assert_eq!(s.role, Role::User);
        assert_eq!(s.rate, Rate::default());
        assert!(!s.muted_at(Utc::now()));
        let v = serde_json::to_value(&s).unwrap();
        assert!(v["muted_until"].is_null() && v["banned_until"].is_null());
        let muted = Standing {
            muted_until: Some(Utc::now() + chrono::Duration::seconds(60)),
            ..s
        };
        assert!(muted.muted_at(Utc::now()));
        assert_eq!(rfc3339::format(&ban_forever()), BAN_FOREVER);
    }

    #[test]
    fn replies_and_roles() {
        let reply = ModerationReply {
            ok: true,
            action: Some(Action::Mute),
            target: Some(bob()),
            until: DateTime::from_timestamp_millis(1_795_000_000_000),
            role: None,
        };
        let v = serde_json::to_value(&reply).unwrap();
        assert_eq!(v["action"], "mute");
        assert!(v["until"].as_str().unwrap().ends_with('Z'));
        assert!(v.get("role").is_none());
        let r: RoleRequest =
            serde_json::from_str(r#"{"user":"alice","role":"moderator"}"#).unwrap();
        assert_eq!(r.role, Role::Moderator);
        assert_eq!("admin".parse::<Role>(), Ok(Role::Admin));
        assert!("root"
            .parse::<Role>()
            .unwrap_err()
            .contains("user, moderator or admin"));
        assert!(Role::Admin > Role::Moderator && Role::Moderator > Role::User);
    }
}
