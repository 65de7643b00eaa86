//! Keys, pastes and the mouse wheel, applied to the [`App`]: editing, sending,
//! scrolling, switching rooms. What needs the network becomes an [`Action`].

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseEvent, MouseEventKind};
use ratatui_textarea::CursorMove;

use super::app::{Action, App};
use crate::command::{self, Command, CommandError, HELP};

/// Entries one wheel notch scrolls.
const WHEEL: usize = 3;

/// Applies one key press.
pub fn on_key(app: &mut App, key: KeyEvent) {
    if key.kind == KeyEventKind::Release {
        return;
    }
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    let alt = key.modifiers.contains(KeyModifiers::ALT);
    let shift = key.modifiers.contains(KeyModifiers::SHIFT);
    let page = app.page_rows.saturating_sub(2).max(1);
    let input = &mut app.input;
    match key.code {
        KeyCode::Enter if alt || shift => {
            input.area.insert_newline();
            input.edited();
        }
        KeyCode::Char('j') if ctrl => {
            input.area.insert_newline();
            input.edited();
        }
        KeyCode::Enter => submit(app),
        KeyCode::Char('c') if ctrl => app.quit = true,
        KeyCode::Char('d') if ctrl && input.is_empty() => app.quit = true,
        KeyCode::Char(n @ '1'..='9') if alt => {
            app.switch_to(n as usize - '1' as usize);
        }
        KeyCode::Char('n') if ctrl => {
            let next = (app.current + 1) % app.rooms.len().max(1);
            app.switch_to(next);
        }
        KeyCode::Char('p') if ctrl => {
            let count = app.rooms.len().max(1);
            app.switch_to((app.current + count - 1) % count);
        }
        KeyCode::Char('a') if ctrl => input.area.move_cursor(CursorMove::Head),
        KeyCode::Char('e') if ctrl => input.area.move_cursor(CursorMove::End),
        KeyCode::Char('w') if ctrl => {
            input.area.delete_word();
            input.edited();
        }
        KeyCode::Char('u') if ctrl => {
            input.area.delete_line_by_head();
            input.edited();
        }
        KeyCode::Char('k') if ctrl => {
            input.area.delete_line_by_end();
            input.edited();
        }
        KeyCode::Char('l') if ctrl => {} // every key redraws the screen
        KeyCode::Up if input.at_edge(true) => input.older(),
        KeyCode::Down if input.at_edge(false) => input.newer(),
        KeyCode::Tab => complete(app),
        KeyCode::PageUp => app.scroll_up(page),
        KeyCode::PageDown => app.scroll_down(page),
        KeyCode::Home => app.scroll_up(usize::MAX / 2),
        KeyCode::End => app.scroll_down(usize::MAX),
        _ => {
            if input.area.input(key) {
                input.edited();
            }
        }
    }
}

/// A paste: inserted as it is, line breaks included (Enter sends it as one message).
pub fn on_paste(app: &mut App, text: &str) {
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    app.input.area.insert_str(text);
    app.input.edited();
}

/// The mouse wheel scrolls the room shown.
pub fn on_mouse(app: &mut App, mouse: MouseEvent) {
    match mouse.kind {
        MouseEventKind::ScrollUp => app.scroll_up(WHEEL),
        MouseEventKind::ScrollDown => app.scroll_down(WHEEL),
        _ => {}
    }
}

/// Enter: the input as one line (line breaks kept: one message). Nothing happens for
/// an empty input; a line refused as it stands (too long, a typo in a command) stays
/// in the box to be fixed, with the error shown.
fn submit(app: &mut App) {
    let text = app.input.text();
    match command::parse(&text) {
        Err(CommandError::Empty) => {}
        Err(err) => app.note(err.to_string(), true),
        Ok(Command::Quit) => app.quit = true,
        Ok(Command::Passwd) => app.note(
            "/passwd needs the plain terminal: use `chat-client passwd --user NAME`, or `chat-client --plain`",
            true,
        ),
        Ok(_) => {
            app.input.take();
            app.input.remember(text.clone());
            let room = app.room().map(|r| r.name.clone());
            if let Some(r) = app.room_mut() {
                // Sending returns to the newest messages (where the echo will show).
                r.scroll = 0;
                r.marker = None;
            }
            app.pending += 1;
            app.act(Action::Line { room, text });
        }
    }
}

/// Tab: a command at the start of the input, else a name in the room shown (a name
/// at the start of the input gets `: ` after it, as in IRC).
fn complete(app: &mut App) {
    let mut names: Vec<String> = Vec::new();
    if let Some(room) = app.room() {
        names.extend(room.users.iter().map(|u| u.to_string()));
        // Those who spoke recently count, even when the users pane is not filled yet.
        let recent = room.entries.iter().rev().take(200).filter_map(|e| match e {
            super::app::Entry::Message { user, .. } => Some(user.to_string()),
            _ => None,
        });
        names.extend(recent);
    }
    names.sort();
    names.dedup();
    let me = app.user.to_string();
    names.retain(|n| *n != me);
    app.input.complete(|row, start, prefix| {
        let lower = prefix.to_lowercase();
        if row == 0
            && start == 0
            && (prefix.starts_with('/') || prefix.starts_with('#') || prefix.starts_with('!'))
        {
            let mut commands: Vec<String> = HELP
                .iter()
                .flat_map(|(usage, _)| usage.split_whitespace())
                .filter(|w| {
                    w.len() > 1 && (w.starts_with('/') || w.starts_with('#') || w.starts_with('!'))
                })
                .filter(|w| w.starts_with(prefix))
                .map(|w| format!("{w} "))
                .collect();
            commands.dedup();
            return commands;
        }
        let at = if lower.starts_with('@') { "@" } else { "" };
        let lower = lower.trim_start_matches('@');
        names
            .iter()
            .filter(|n| n.to_lowercase().starts_with(lower))
            .map(|n| match (row, start, at) {
                (0, 0, "") => format!("{n}: "),
                _ => format!("{at}{n} "),
            })
            .collect()
    });
}
