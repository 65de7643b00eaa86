//! What a person types, understood: one input line becomes one [`Command`], or a
//! [`CommandError`] that says what was wrong and what is allowed.
//!
//! Parsing is pure (no NATS), so every rule about input is checked here before
//! anything is sent: room names, empty and over-long texts, unknown commands.

use chat_protocol::body::{validate_text, MessageKind, TextError};
use chat_protocol::display::sanitize;
use chat_protocol::{NameError, RoomName};

pub mod moderation;

pub use moderation::Moderation;

/// Every command, with its usage, as `/help` shows it.
pub const HELP: &[(&str, &str)] = &[
    ("TEXT", "send TEXT to the current room"),
    ("/me ACTION", "send an action (shown as `* you ACTION`)"),
    ("/users", "who is online in the current room"),
    (
        "/join ROOM [ROOM...]",
        "join rooms; the last one becomes current",
    ),
    ("/leave [ROOM]", "leave a room (default: the current one)"),
    (
        "/rooms",
        "every room, with users online and messages stored",
    ),
    ("#all_messages", "the complete history of the current room"),
    ("#my_messages", "your messages in every room you are in"),
    (
        "/seq",
        "show (or hide) each message's stream sequence, for /delete",
    ),
    (
        "/delete SEQ",
        "delete the message at SEQ (your own; moderators: any)",
    ),
    (
        moderation::MUTE,
        "moderators: mute USER (DURATION 30s, 10m, 2h, 1d; default 10m)",
    ),
    (moderation::UNMUTE, "moderators: end USER's mute"),
    (
        moderation::KICK,
        "moderators: disconnect every session of USER",
    ),
    (
        moderation::BAN,
        "moderators: ban USER (for DURATION, or until /unban)",
    ),
    (moderation::UNBAN, "moderators: end USER's ban"),
    ("/passwd", "change your password (asked without echo)"),
    ("/help", "this list"),
    ("/quit or !exit", "leave every room and exit"),
];

/// The command names listed in errors about unknown commands.
const NAMES: &str = "/me, /users, /join, /leave, /rooms, /passwd, /help, /quit, !exit, \
     #all_messages, #my_messages, /seq, /delete, /mute, /unmute, /kick, /ban, /unban";

/// One understood input line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Send a chat message (text already trimmed and checked).
    Say(MessageKind, String),
    /// Ask who is online in the current room.
    Users,
    /// Join these rooms (the last becomes current).
    Join(Vec<RoomName>),
    /// Leave this room, or the current one.
    Leave(Option<RoomName>),
    /// List every room.
    Rooms,
    /// Replay the current room's complete history.
    AllMessages,
    /// Replay the user's own messages across their rooms.
    MyMessages,
    /// Change the password.
    Passwd,
    /// Show the commands.
    Help,
    /// Show or hide stream sequences next to messages.
    Seq,
    /// A moderation request for the current room.
    Moderate(Moderation),
    /// Leave everything and exit.
    Quit,
}

/// Why an input line was refused; nothing is sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// The line held nothing.
    #[error("empty line: type a message, or /help for the commands")]
    Empty,
    /// The message text is empty or too long.
    #[error(transparent)]
    Text(#[from] TextError),
    /// A room name breaks the naming rules.
    #[error(transparent)]
    Name(#[from] NameError),
    /// Not a known command.
    #[error(
        "unknown command {0:?}; the commands are {NAMES} (anything else is sent as a message)"
    )]
    Unknown(String),
    /// A command got the wrong arguments.
    #[error("usage: {0}")]
    Usage(&'static str),
    /// An argument is malformed: the message says which and what is allowed.
    #[error("{0}")]
    Invalid(String),
}

/// Parses one input line.
///
/// A line starting with `/` (or one of `!exit`, `#all_messages`, `#my_messages`) is a
/// command; anything else is a message. `//text` sends `/text` literally.
pub fn parse(line: &str) -> Result<Command, CommandError> {
    let line = line.trim();
    if line.is_empty() {
        return Err(CommandError::Empty);
    }
    if let Some(literal) = line.strip_prefix("//") {
        return say(MessageKind::Chat, &format!("/{literal}"));
    }
    let (word, rest) = match line.split_once(char::is_whitespace) {
        Some((word, rest)) => (word, rest.trim()),
        None => (line, ""),
    };
    let no_args = |command: Command, usage| {
        if rest.is_empty() {
            Ok(command)
        } else {
            Err(CommandError::Usage(usage))
        }
    };
    match word {
        "/me" => say(MessageKind::Me, rest),
        "/users" => no_args(Command::Users, "/users"),
        "/rooms" => no_args(Command::Rooms, "/rooms"),
        "/help" => no_args(Command::Help, "/help"),
        "/seq" => no_args(Command::Seq, "/seq"),
        "/passwd" => no_args(
            Command::Passwd,
            "/passwd (the passwords are asked without echo)",
        ),
        "/quit" | "!exit" => no_args(Command::Quit, "/quit"),
        "#all_messages" => no_args(Command::AllMessages, "#all_messages"),
        "#my_messages" => no_args(Command::MyMessages, "#my_messages"),
        "/join" => {
            let rooms = rest
                .split_whitespace()
                .map(RoomName::parse_input)
                .collect::<Result<Vec<_>, _>>()?;
            if rooms.is_empty() {
                return Err(CommandError::Usage("/join ROOM [ROOM...]"));
            }
            Ok(Command::Join(rooms))
        }
        "/leave" => match rest.split_whitespace().collect::<Vec<_>>().as_slice() {
            [] => Ok(Command::Leave(None)),
            [room] => Ok(Command::Leave(Some(RoomName::parse_input(room)?))),
            _ => Err(CommandError::Usage("/leave [ROOM]")),
        },
        _ => match moderation::parse(word, rest) {
            Some(moderation) => moderation.map(Command::Moderate),
            None if word.starts_with('/') => {
                Err(CommandError::Unknown(sanitize(word).into_owned()))
            }
            None => say(MessageKind::Chat, line),
        },
    }
}

fn say(kind: MessageKind, text: &str) -> Result<Command, CommandError> {
    Ok(Command::Say(kind, validate_text(text)?.to_string()))
}

/// The `/help` text, one line per command.
pub fn help_lines() -> impl Iterator<Item = String> {
    HELP.iter()
        .map(|(usage, what)| format!("{usage:<22} {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_protocol::body::MAX_TEXT_CHARS;

    fn room(s: &str) -> RoomName {
        RoomName::new(s).unwrap()
    }

    #[test]
    fn messages_and_actions() {
        assert_eq!(
            parse("  hello world ").unwrap(),
            Command::Say(MessageKind::Chat, "hello world".into())
        );
        assert_eq!(
            parse("/me waves").unwrap(),
            Command::Say(MessageKind::Me, "waves".into())
        );
        assert_eq!(
            parse("//slash").unwrap(),
            Command::Say(MessageKind::Chat, "/slash".into())
        );
        assert_eq!(
            parse("#hashtag").unwrap(),
            Command::Say(MessageKind::Chat, "#hashtag".into())
        );
    }

    #[test]
    fn commands() {
        assert_eq!(parse("/users").unwrap(), Command::Users);
        assert_eq!(parse("/rooms").unwrap(), Command::Rooms);
        assert_eq!(parse("/help").unwrap(), Command::Help);
        assert_eq!(parse("/passwd").unwrap(), Command::Passwd);
        assert!(matches!(
            parse("/passwd secret"),
            Err(CommandError::Usage(_))
        ));
        assert_eq!(parse("/quit").unwrap(), Command::Quit);
        assert_eq!(parse("!exit").unwrap(), Command::Quit);
        assert_eq!(parse("#all_messages").unwrap(), Command::AllMessages);
        assert_eq!(parse("#my_messages").unwrap(), Command::MyMessages);
        assert_eq!(
            parse("/join Rust-Dev team_42").unwrap(),
            Command::Join(vec![room("rust-dev"), room("team_42")])
        );
        assert_eq!(parse("/leave").unwrap(), Command::Leave(None));
        assert_eq!(parse("/leave x").unwrap(), Command::Leave(Some(room("x"))));
    }

    #[test]
    fn refusals() {
        assert_eq!(parse("   "), Err(CommandError::Empty));
        assert!(matches!(
            parse("/me   "),
            Err(CommandError::Text(TextError::Empty))
        ));
        assert!(matches!(
            parse(&"x".repeat(MAX_TEXT_CHARS + 1)),
            Err(CommandError::Text(TextError::TooLong { .. }))
        ));
        assert!(parse(&"x".repeat(MAX_TEXT_CHARS)).is_ok());
        assert!(matches!(parse("/join"), Err(CommandError::Usage(_))));
        assert!(matches!(parse("/join a.b"), Err(CommandError::Name(_))));
        assert!(matches!(parse("/join -x"), Err(CommandError::Name(_))));
        assert!(matches!(parse("/users now"), Err(CommandError::Usage(_))));
        assert!(matches!(parse("/leave a b"), Err(CommandError::Usage(_))));
        let err = parse("/frobnicate").unwrap_err().to_string();
        assert!(
            err.contains("/frobnicate") && err.contains("/users"),
            "{err}"
        );
        let err = parse("/\u{1b}[2J").unwrap_err().to_string();
        assert!(!err.contains('\u{1b}'), "{err}");
    }

    #[test]
    fn help_lists_every_command() {
        let help: Vec<String> = help_lines().collect();
        for name in [
            "/me",
            "/users",
            "/join",
            "/leave",
            "/rooms",
            "#all_messages",
            "#my_messages",
            "/quit",
            "/seq",
            "/delete",
            "/mute",
            "/unmute",
            "/kick",
            "/ban",
            "/unban",
        ] {
            assert!(help.iter().any(|l| l.contains(name)), "{name}");
        }
    }
}
