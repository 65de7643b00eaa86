//! Events as terminal text: one line per event, every string from the wire passed
//! through [`chat_protocol::display::sanitize`], names optionally in colour.

use chat_protocol::body::{EventDetail, MessageKind, Reason, SystemKind};
use chat_protocol::display::sanitize;
use chat_protocol::{RoomName, UserName};
use chrono::Local;

use crate::event::Event;

/// How to render.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    /// Colour names with ANSI escapes (interactive terminals only).
    pub color: bool,
    /// For a person at a terminal: `history_progress` events are shown and `/help`
    /// takes one line per command (line mode keeps one line per event).
    pub interactive: bool,
    /// Messages show their stream sequence (`#123`), for `/delete SEQ` (`/seq`).
    pub seq: bool,
}

/// Colours a name gets, chosen by a stable hash of the name.
const PALETTE: [u8; 12] = [31, 32, 33, 34, 35, 36, 91, 92, 93, 94, 95, 96];

/// The ANSI colour code of `name`: the same name always gets the same colour.
pub fn color_of(name: &str) -> u8 {
    // FNV-1a: stable across runs and platforms, unlike std's RandomState.
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    PALETTE[(hash % PALETTE.len() as u64) as usize]
}

fn name(user: &UserName, style: Style) -> String {
    if style.color {
        format!("\x1b[1;{}m{user}\x1b[0m", color_of(user.as_str()))
    } else {
        user.to_string()
    }
}

/// `[room] ` for lines of another room than the current one.
fn room_tag(room: &RoomName, current: Option<&RoomName>) -> String {
    if Some(room) == current {
        String::new()
    } else {
        format!("[{room}] ")
    }
}

/// How far continuation lines of a multi-line message are indented.
const CONTINUATION: &str = "\n      ";

/// A multi-line text for a person: each line break starts an indented continuation
/// line and a tab becomes spaces, instead of both showing as U+FFFD; every line is
/// sanitized on its own.
fn continued(text: &str) -> String {
    text_lines(text).join(CONTINUATION)
}

/// The lines of a multi-line text, each sanitized on its own, tabs as four spaces.
pub fn text_lines(text: &str) -> Vec<String> {
    text.replace("\r\n", "\n")
        .split(['\n', '\r'])
        .map(|line| sanitize(&line.replace('\t', "    ")).into_owned())
        .collect()
}

/// `HH:MM` in local time for a message of today, `YYYY-MM-DD HH:MM` otherwise.
pub fn time_of(ts: &chrono::DateTime<chrono::Utc>) -> String {
    let local = ts.with_timezone(&Local);
    if local.date_naive() == Local::now().date_naive() {
        local.format("%H:%M").to_string()
    } else {
        local.format("%Y-%m-%d %H:%M").to_string()
    }
}

/// Who a joined/left event names: `alice`, `alice and bob`, `alice, bob and carol`,
/// or for a burst `alice, bob and 37 others` (each name shown by `show`).
pub fn names_of(
    user: &UserName,
    others: &[UserName],
    show: impl Fn(&UserName) -> String,
) -> String {
    match others {
        [] => show(user),
        [one] => format!("{} and {}", show(user), show(one)),
        [one, two] => format!("{}, {} and {}", show(user), show(one), show(two)),
        [one, rest @ ..] => format!("{}, {} and {} others", show(user), show(one), rest.len()),
    }
}

/// What a joined/left event says happened.
pub fn what_happened(kind: SystemKind, reason: Reason) -> &'static str {
    match (kind, reason) {
        (SystemKind::Joined, _) => "joined",
        (SystemKind::Left, Reason::Timeout) => "left (timed out)",
        (SystemKind::Left, _) => "left",
        (SystemKind::Muted, _) => "was muted",
        (SystemKind::Unmuted, _) => "was unmuted",
        (SystemKind::Kicked, _) => "was kicked",
        (SystemKind::Banned, _) => "was banned",
        (SystemKind::Unbanned, _) => "was unbanned",
        (SystemKind::Deleted, _) => "had messages deleted",
    }
}

/// What a moderation event says (none for joined/left), every name and note
/// sanitized: `bob was muted by alice until 09:10 (spam)`, `alice deleted 3 messages
/// from bob`.
pub fn moderation_text(
    user: &UserName,
    kind: SystemKind,
    reason: Reason,
    detail: &EventDetail,
) -> Option<String> {
    let by = match &detail.by {
        Some(by) => format!(" by {by}"),
        None => String::new(),
    };
    let until = match detail.until {
        Some(until) => format!(" until {}", time_of(&until)),
        None if kind == SystemKind::Banned => " until unbanned".to_string(),
        None => String::new(),
    };
    let why = match (&detail.note, reason) {
        (Some(note), _) => format!(" ({})", sanitize(note)),
        (None, Reason::Flood) => " (flooding: over the allowed rate)".to_string(),
        (None, _) => String::new(),
    };
    Some(match kind {
        SystemKind::Joined | SystemKind::Left => return None,
        SystemKind::Muted => format!("{user} was muted{by}{until}{why}"),
        SystemKind::Unmuted => format!("{user} was unmuted{by}{why}"),
        SystemKind::Kicked => format!("{user} was kicked{by}{why}"),
        SystemKind::Banned => format!("{user} was banned{by}{until}{why}"),
        SystemKind::Unbanned => format!("{user} was unbanned{by}{why}"),
        SystemKind::Deleted => {
            let count = match detail.seqs.len() {
                1 => "a message".to_string(),
                n => format!("{n} messages"),
            };
            match (&detail.by, reason) {
                (_, Reason::Author) => format!("{user} deleted {count}{why}"),
                (Some(by), _) => format!("{by} deleted {count} from {user}{why}"),
                (None, _) => format!("{count} from {user} removed{why}"),
            }
        }
    })
}

/// For a printed chat (scrollback cannot be edited): which sequences shown above a
/// `deleted` event are gone.
pub fn tombstone_note(seqs: &[u64]) -> String {
    match seqs {
        [] => String::new(),
        [one] => format!(" [#{one} above is deleted]"),
        few if few.len() <= 10 => {
            let list: Vec<String> = few.iter().map(|s| format!("#{s}")).collect();
            format!(" [{} above are deleted]", list.join(", "))
        }
        many => format!(
            " [{} messages above, #{} to #{}, are deleted]",
            many.len(),
            many.iter().min().unwrap_or(&0),
            many.iter().max().unwrap_or(&0)
        ),
    }
}

/// The line showing `event`, or none if this style does not show it.
/// `current` is the room messages go to; lines of other rooms name their room.
pub fn line(event: &Event, current: Option<&RoomName>, style: Style) -> Option<String> {
    Some(match event {
        Event::Message {
            room,
            user,
            kind,
            text,
            ts,
            replay,
            spoofed,
            seq,
            ..
        } => {
            let time = time_of(ts);
            let mark = if *replay { "·" } else { " " };
            let flag = if *spoofed {
                " (body claimed another sender)"
            } else {
                ""
            };
            let who = name(user, style);
            let text = if style.interactive {
                continued(text)
            } else {
                sanitize(text).into_owned()
            };
            let tag = room_tag(room, current);
            let tag = match style.seq {
                true => format!("#{seq} {tag}"),
                false => tag,
            };
            match kind {
                MessageKind::Chat => format!("{time}{mark}{tag}{who}{flag}: {text}"),
                MessageKind::Me => format!("{time}{mark}{tag}* {who}{flag} {text}"),
            }
        }
        Event::System {
            room,
            user,
            kind,
            reason,
            users,
            detail,
            ..
        } => {
            let tag = room_tag(room, current);
            match moderation_text(user, *kind, *reason, detail) {
                Some(text) => format!("* {tag}{text}{}", tombstone_note(&detail.seqs)),
                None => format!(
                    "-- {tag}{} {} {room} ({users} online)",
                    names_of(user, &detail.others, |u| name(u, style)),
                    what_happened(*kind, *reason)
                ),
            }
        }
        Event::Welcome {
            room, users, text, ..
        } => match sanitize(text) {
            text if text.is_empty() => format!("== [{room}] joined ({users} online)"),
            text => format!("== [{room}] {text}"),
        },
        Event::Users { room, users } => {
            let names: Vec<String> = users.iter().map(|u| name(u, style)).collect();
            format!("users in {room} ({}): {}", users.len(), names.join(", "))
        }
        Event::Rooms { rooms, unlisted } => {
            if rooms.is_empty() {
                "no rooms yet".to_string()
            } else {
                let list: Vec<String> = rooms
                    .iter()
                    .map(|r| format!("{} ({} online, {} messages)", r.room, r.users, r.messages))
                    .collect();
                format!("rooms: {}{}", list.join(", "), more_rooms(*unlisted))
            }
        }
        Event::Help { commands } if style.interactive => commands.join("\n"),
        Event::Help { commands } => format!("commands: {}", commands.join(" | ")),
        Event::Error { message } => format!("error: {}", sanitize(message)),
        Event::Status { message, .. } => format!("** {}", sanitize(message)),
        Event::HistoryProgress { room, count } if style.interactive => {
            format!(".. {count} messages of {room} replayed so far")
        }
        Event::HistoryProgress { .. } => return None,
        Event::HistoryEnd { room, user, count } => match user {
            Some(user) => format!("== end of {user}'s messages: {count}"),
            None => format!("== end of the history of {room}: {count} messages"),
        },
    })
}

/// The note after a `/rooms` list that could not name every room.
pub fn more_rooms(unlisted: u64) -> String {
    match unlisted {
        0 => String::new(),
        n => format!(" (and {n} quieter rooms not listed)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    const PLAIN: Style = Style {
        color: false,
        interactive: false,
        seq: false,
    };

    fn message(text: &str, room: &str) -> Event {
        Event::Message {
            room: RoomName::new(room).unwrap(),
            user: UserName::new("alice").unwrap(),
            kind: MessageKind::Chat,
            text: text.into(),
            id: "i".into(),
            seq: 1,
            ts: Utc::now(),
            replay: false,
            spoofed: false,
        }
    }

    #[test]
    fn no_escape_reaches_the_terminal() {
        let current = RoomName::new("general").unwrap();
        let out = line(
            &message("\x1b[2J\x1b]0;pwned\x07hi\nthere", "general"),
            Some(&current),
            PLAIN,
        )
        .unwrap();
        assert!(
            !out.contains('\x1b') && !out.contains('\n') && !out.contains('\x07'),
            "{out:?}"
        );
        assert!(out.contains("alice: ") && out.contains("hi"), "{out}");
        let err = line(&Event::error("bad \x1b[31m"), None, PLAIN).unwrap();
        assert!(!err.contains('\x1b'));
    }

    #[test]
    fn multi_line_messages_get_continuation_lines_at_a_terminal() {
        let text = "first\r\n\tsecond\nthird \x1b[31m";
        let person = Style {
            color: false,
            interactive: true,
            seq: false,
        };
        let out = line(&message(text, "general"), None, person).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{out:?}");
        assert!(lines[0].ends_with("alice: first"), "{out:?}");
        assert_eq!(lines[1], "          second");
        assert_eq!(lines[2], "      third \u{fffd}[31m");
        let script = line(&message(text, "general"), None, PLAIN).unwrap();
        assert!(!script.contains('\n'), "line mode keeps one line per event");
    }

    #[test]
    fn times_of_other_days_have_a_date() {
        let mut old = message("x", "general");
        if let Event::Message { ts, .. } = &mut old {
            *ts = chrono::DateTime::parse_from_rfc3339("2020-02-03T12:00:00Z")
                .unwrap()
                .with_timezone(&Utc);
        }
        let out = line(&old, None, PLAIN).unwrap();
        assert!(out.starts_with("2020-02-0"), "{out}");
        let today = line(&message("x", "general"), None, PLAIN).unwrap();
        // Today's time alone: "HH:MM" (between 20:00 and 20:59 it starts with "20").
        assert_eq!(today.as_bytes()[2], b':', "no date: {today}");
        assert_eq!(today.find(' '), Some(5), "HH:MM then the mark: {today}");
    }

    #[test]
    fn other_rooms_are_named() {
        let current = RoomName::new("general").unwrap();
        let here = line(&message("x", "general"), Some(&current), PLAIN).unwrap();
        let there = line(&message("x", "random"), Some(&current), PLAIN).unwrap();
        assert!(!here.contains("[general]"));
        assert!(there.contains("[random] alice: x"), "{there}");
    }

    #[test]
    fn moderation_events_say_who_did_what_and_tombstones_are_noted() {
        let general = RoomName::new("general").unwrap();
        let event =
            |kind, reason, by: Option<&str>, note: Option<&str>, seqs: Vec<u64>| Event::System {
                room: general.clone(),
                user: UserName::new("bob").unwrap(),
                kind,
                reason,
                users: 0,
                seq: 9,
                detail: EventDetail {
                    by: by.map(|b| UserName::new(b).unwrap()),
                    until: None,
                    note: note.map(str::to_string),
                    seqs,
                    others: Vec::new(),
                },
            };
        let show = |e: &Event| line(e, Some(&general), PLAIN).unwrap();
        let kicked = event(
            SystemKind::Kicked,
            Reason::Moderator,
            Some("alice"),
            Some("out \x1b[2J\u{202e}"),
            vec![],
        );
        let out = show(&kicked);
        assert_eq!(out, "* bob was kicked by alice (out \u{fffd}[2J\u{fffd})");
        let flood = event(SystemKind::Muted, Reason::Flood, None, None, vec![]);
        assert_eq!(
            show(&flood),
            "* bob was muted (flooding: over the allowed rate)"
        );
        let banned = event(
            SystemKind::Banned,
            Reason::Moderator,
            Some("alice"),
            None,
            vec![],
        );
        assert_eq!(show(&banned), "* bob was banned by alice until unbanned");
        let own = event(
            SystemKind::Deleted,
            Reason::Author,
            Some("bob"),
            None,
            vec![7],
        );
        assert_eq!(show(&own), "* bob deleted a message [#7 above is deleted]");
        let removed = event(
            SystemKind::Deleted,
            Reason::Moderator,
            Some("alice"),
            None,
            vec![7, 8],
        );
        assert_eq!(
            show(&removed),
            "* alice deleted 2 messages from bob [#7, #8 above are deleted]"
        );
        let excess = event(
            SystemKind::Deleted,
            Reason::Flood,
            None,
            None,
            (1..=30).collect(),
        );
        assert_eq!(
            show(&excess),
            "* 30 messages from bob removed (flooding: over the allowed rate) \
             [30 messages above, #1 to #30, are deleted]"
        );
    }

    #[test]
    fn a_burst_of_joins_is_one_line_naming_a_few() {
        let general = RoomName::new("general").unwrap();
        let names = |n: usize| -> Vec<UserName> {
            (0..n)
                .map(|i| UserName::new(format!("u{i}")).unwrap())
                .collect()
        };
        let joined = |others: Vec<UserName>| Event::System {
            room: general.clone(),
            user: UserName::new("alice").unwrap(),
            kind: SystemKind::Joined,
            reason: Reason::Join,
            users: 40,
            seq: 3,
            detail: EventDetail {
                others,
                ..Default::default()
            },
        };
        let show = |e: &Event| line(e, Some(&general), PLAIN).unwrap();
        assert_eq!(show(&joined(vec![])), "-- alice joined general (40 online)");
        assert_eq!(
            show(&joined(names(1))),
            "-- alice and u0 joined general (40 online)"
        );
        assert_eq!(
            show(&joined(names(2))),
            "-- alice, u0 and u1 joined general (40 online)"
        );
        assert_eq!(
            show(&joined(names(38))),
            "-- alice, u0 and 37 others joined general (40 online)"
        );
    }

    #[test]
    fn colours_are_stable_and_only_when_asked() {
        assert_eq!(color_of("alice"), color_of("alice"));
        let colored = Style {
            color: true,
            interactive: true,
            seq: false,
        };
        let out = line(&message("x", "general"), None, colored).unwrap();
        assert!(out.contains(&format!("\x1b[1;{}malice\x1b[0m", color_of("alice"))));
        let progress = Event::HistoryProgress {
            room: RoomName::new("general").unwrap(),
            count: 5,
        };
        assert!(line(&progress, None, PLAIN).is_none());
        assert!(line(&progress, None, colored).is_some());
    }
}
