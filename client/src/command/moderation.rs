//! The moderation commands: `/mute`, `/unmute`, `/kick`, `/ban`, `/unban`, `/delete`,
//! checked here before anything is sent (names, durations, reasons, sequences).
//!
//! Whether the user may do it is the moderation worker's call (a plain user may only
//! `/delete` their own messages); its refusal is shown as it comes.

use chat_protocol::body::moderation::{check_reason, MAX_SECONDS};
use chat_protocol::UserName;

use super::CommandError;

/// What DURATION may be, for error messages.
const DURATIONS: &str =
    "a number and a unit: 30s, 10m, 2h or 1d (seconds, minutes, hours, days; at most 365d)";

/// One moderation command, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Moderation {
    /// Mute `user` (for `seconds`, or the worker's default).
    Mute {
        user: UserName,
        seconds: Option<u64>,
        reason: Option<String>,
    },
    /// End `user`'s mute.
    Unmute { user: UserName },
    /// Disconnect every session of `user`.
    Kick {
        user: UserName,
        reason: Option<String>,
    },
    /// Ban `user` (for `seconds`, or until unbanned).
    Ban {
        user: UserName,
        seconds: Option<u64>,
        reason: Option<String>,
    },
    /// End `user`'s ban.
    Unban { user: UserName },
    /// Delete the message at stream sequence `seq` of the current room.
    Delete { seq: u64 },
}

/// Usages, as errors and `/help` show them.
pub const MUTE: &str = "/mute USER [DURATION] [REASON]";
pub const UNMUTE: &str = "/unmute USER";
pub const KICK: &str = "/kick USER [REASON]";
pub const BAN: &str = "/ban USER [DURATION] [REASON]";
pub const UNBAN: &str = "/unban USER";
pub const DELETE: &str = "/delete SEQ";

/// Parses the arguments `rest` of moderation command `word`; `None` if `word` is not
/// one.
pub fn parse(word: &str, rest: &str) -> Option<Result<Moderation, CommandError>> {
    let usage = match word {
        "/mute" => MUTE,
        "/unmute" => UNMUTE,
        "/kick" => KICK,
        "/ban" => BAN,
        "/unban" => UNBAN,
        "/delete" => DELETE,
        _ => return None,
    };
    if rest.is_empty() {
        return Some(Err(CommandError::Usage(usage)));
    }
    Some(match word {
        "/mute" => {
            target_duration_reason(rest, usage).map(|(user, seconds, reason)| Moderation::Mute {
                user,
                seconds,
                reason,
            })
        }
        "/ban" => {
            target_duration_reason(rest, usage).map(|(user, seconds, reason)| Moderation::Ban {
                user,
                seconds,
                reason,
            })
        }
        "/kick" => target(rest, usage).and_then(|(user, rest)| {
            Ok(Moderation::Kick {
                user,
                reason: reason(rest)?,
            })
        }),
        "/unmute" => alone(rest, usage).map(|user| Moderation::Unmute { user }),
        "/unban" => alone(rest, usage).map(|user| Moderation::Unban { user }),
        _ => seq(rest).map(|seq| Moderation::Delete { seq }),
    })
}

/// The user named first in `rest`, and what follows.
fn target<'a>(rest: &'a str, usage: &'static str) -> Result<(UserName, &'a str), CommandError> {
    let (name, rest) = match rest.split_once(char::is_whitespace) {
        Some((name, rest)) => (name, rest.trim()),
        None => (rest, ""),
    };
    if name.is_empty() {
        return Err(CommandError::Usage(usage));
    }
    let user = UserName::new(name.trim_start_matches('@')).map_err(CommandError::Name)?;
    Ok((user, rest))
}

/// A user and nothing else.
fn alone(rest: &str, usage: &'static str) -> Result<UserName, CommandError> {
    match target(rest, usage)? {
        (user, "") => Ok(user),
        _ => Err(CommandError::Usage(usage)),
    }
}

/// USER [DURATION] [REASON]: a word after the user that starts with a digit is the
/// duration (and must be a good one); anything else is the reason.
fn target_duration_reason(
    rest: &str,
    usage: &'static str,
) -> Result<(UserName, Option<u64>, Option<String>), CommandError> {
    let (user, rest) = target(rest, usage)?;
    let (first, after) = match rest.split_once(char::is_whitespace) {
        Some((first, after)) => (first, after.trim()),
        None => (rest, ""),
    };
    if first.starts_with(|c: char| c.is_ascii_digit()) {
        Ok((user, Some(duration(first)?), reason(after)?))
    } else {
        Ok((user, None, reason(rest)?))
    }
}

/// A duration like `30s`, `10m`, `2h`, `1d`, in seconds.
pub fn duration(text: &str) -> Result<u64, CommandError> {
    let bad = || CommandError::Invalid(format!("bad duration {text:?}: {DURATIONS}"));
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| bad())?;
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    match number.checked_mul(unit) {
        Some(seconds @ 1..=MAX_SECONDS) => Ok(seconds),
        _ => Err(bad()),
    }
}

/// An optional reason: at most 200 characters, no control characters.
fn reason(text: &str) -> Result<Option<String>, CommandError> {
    if text.is_empty() {
        return Ok(None);
    }
    check_reason(text).map_err(|e| CommandError::Invalid(e.to_string()))?;
    Ok(Some(text.to_string()))
}

/// A stream sequence: a positive whole number, optionally written `#123`.
fn seq(text: &str) -> Result<u64, CommandError> {
    let digits = text.strip_prefix('#').unwrap_or(text);
    match digits.parse::<u64>() {
        Ok(seq @ 1..) if digits.bytes().all(|b| b.is_ascii_digit()) => Ok(seq),
        _ => Err(CommandError::Invalid(format!(
            "bad sequence {:?}: /delete takes the stream sequence of one message, a \
             whole number such as 123 (/seq shows them next to each message)",
            chat_protocol::display::sanitize(text)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> UserName {
        UserName::new(name).unwrap()
    }

    fn ok(word: &str, rest: &str) -> Moderation {
        parse(word, rest).unwrap().unwrap()
    }

    fn err(word: &str, rest: &str) -> String {
        parse(word, rest).unwrap().unwrap_err().to_string()
    }

    #[test]
    fn durations() {
        assert_eq!(duration("30s"), Ok(30));
        assert_eq!(duration("10m"), Ok(600));
        assert_eq!(duration("2h"), Ok(7200));
        assert_eq!(duration("1d"), Ok(86_400));
        assert_eq!(duration("365d"), Ok(MAX_SECONDS));
        for bad in [
            "0s",
            "366d",
            "10",
            "10x",
            "1.5h",
            "99999999999999999999d",
            "m",
        ] {
            let message = duration(bad).unwrap_err().to_string();
            assert!(message.contains("30s, 10m, 2h or 1d"), "{bad}: {message}");
        }
    }

    #[test]
    fn commands_with_their_arguments() {
        assert_eq!(
            ok("/mute", "bob 10m spamming the room"),
            Moderation::Mute {
                user: user("bob"),
                seconds: Some(600),
                reason: Some("spamming the room".into())
            }
        );
        assert_eq!(
            ok("/mute", "@bob too loud"),
            Moderation::Mute {
                user: user("bob"),
                seconds: None,
                reason: Some("too loud".into())
            }
        );
        assert_eq!(
            ok("/ban", "bob"),
            Moderation::Ban {
                user: user("bob"),
                seconds: None,
                reason: None
            }
        );
        assert_eq!(
            ok("/ban", "bob 1d"),
            Moderation::Ban {
                user: user("bob"),
                seconds: Some(86_400),
                reason: None
            }
        );
        assert_eq!(
            ok("/kick", "bob go away"),
            Moderation::Kick {
                user: user("bob"),
                reason: Some("go away".into())
            }
        );
        assert_eq!(
            ok("/unmute", "bob"),
            Moderation::Unmute { user: user("bob") }
        );
        assert_eq!(ok("/unban", "bob"), Moderation::Unban { user: user("bob") });
        assert_eq!(ok("/delete", "#42"), Moderation::Delete { seq: 42 });
        assert_eq!(ok("/delete", "42"), Moderation::Delete { seq: 42 });
        assert!(parse("/users", "").is_none());
    }

    #[test]
    fn refusals_say_what_is_allowed() {
        assert!(err("/mute", "").contains(MUTE));
        assert!(err("/unmute", "bob now").contains(UNMUTE));
        assert!(err("/mute", "bob 10x spam").contains("30s, 10m"));
        assert!(err("/mute", "b.ob").contains("user name"));
        assert!(err("/delete", "abc").contains("whole number"));
        assert!(err("/delete", "0").contains("whole number"));
        assert!(err("/delete", "-3").contains("whole number"));
        assert!(err("/kick", &format!("bob {}", "x".repeat(201))).contains("at most 200"));
        assert!(err("/kick", "bob a\u{1b}[2J").contains("control"));
        assert!(!err("/delete", "\u{1b}[2J").contains('\u{1b}'));
    }
}
