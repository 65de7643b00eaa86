//! Drawing: the screen as a pure function of the [`App`].
//!
//! ```text
//! ┌ rooms ┐┌ messages of the room shown ─────────────┐┌ users ┐
//! │       ││                                          ││       │
//! └───────┘└──────────────────────────────────────────┘└───────┘
//!  ─ input (1-5 lines) ───────────────────────────────────────
//!  status: connection · you · room · what is awaited
//! ```
//!
//! The users pane goes below 80 columns, the room list below 60 (the status line then
//! names the rooms with unread messages). Only the entries in view are laid out, from
//! the bottom up, so a frame costs the same with ten or ten thousand entries loaded.

use chrono::{DateTime, NaiveDate, Utc};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};
use ratatui::Frame;
use unicode_width::UnicodeWidthChar;

use super::app::{App, Connection, Entry, Room};
use crate::render::color_of;

/// Width of the room list.
const ROOMS_WIDTH: u16 = 16;
/// Width of the users pane.
const USERS_WIDTH: u16 = 16;
/// Most lines the input box grows to.
const INPUT_LINES: u16 = 5;

/// The panes' places for a screen of `area`.
pub struct Panes {
    /// The room list, if shown.
    pub rooms: Option<Rect>,
    /// The messages.
    pub messages: Rect,
    /// The users pane, if shown.
    pub users: Option<Rect>,
    /// The input box (with its top rule).
    pub input: Rect,
    /// The status line.
    pub status: Rect,
}

/// Where each pane goes.
pub fn panes(area: Rect, input_lines: usize) -> Panes {
    let input_height = (input_lines as u16).clamp(1, INPUT_LINES) + 1;
    let [main, input, status] = Layout::vertical([
        Constraint::Min(1),
        Constraint::Length(input_height),
        Constraint::Length(1),
    ])
    .areas(area);
    let rooms_width = if area.width >= 60 { ROOMS_WIDTH } else { 0 };
    let users_width = if area.width >= 80 { USERS_WIDTH } else { 0 };
    let [rooms, messages, users] = Layout::horizontal([
        Constraint::Length(rooms_width),
        Constraint::Min(1),
        Constraint::Length(users_width),
    ])
    .areas(main);
    Panes {
        rooms: (rooms_width > 0).then_some(rooms),
        messages,
        users: (users_width > 0).then_some(users),
        input,
        status,
    }
}

/// Rows of the message pane on a screen of `area` (a page for PageUp/PageDown).
pub fn message_rows(area: Rect, app: &App) -> usize {
    panes(area, input_rows(app, area.width)).messages.height as usize
}

/// Rows the input takes at `width`, wrapped as the editor wraps it (and room for the
/// cursor after the last character), so a long draft shows whole.
fn input_rows(app: &App, width: u16) -> usize {
    let mut rows = Vec::new();
    for line in app.input.area.lines() {
        wrap(
            vec![Span::raw(format!("{line} "))],
            width.max(1) as usize,
            0,
            &mut rows,
        );
    }
    rows.len()
}

/// Draws the whole screen; returns the scroll shown (see [`App::settle_scroll`]).
pub fn draw(frame: &mut Frame, app: &App) -> usize {
    let area = frame.area();
    let panes = panes(area, input_rows(app, area.width));
    let theme = Theme { color: app.color };
    if let Some(rect) = panes.rooms {
        frame.render_widget(rooms(app, &theme, rect), rect);
    }
    let (lines, scroll) = messages(
        app,
        &theme,
        panes.messages.width as usize,
        panes.messages.height as usize,
    );
    frame.render_widget(Paragraph::new(lines), panes.messages);
    if let Some(rect) = panes.users {
        frame.render_widget(users(app, &theme), rect);
    }
    let title = match app.room() {
        Some(room) => format!(" {} ", room.name),
        None => " no room: /join ROOM ".to_string(),
    };
    let mut input = app.input.area.clone();
    input.set_block(
        Block::new()
            .borders(Borders::TOP)
            .border_style(theme.dim())
            .title(title),
    );
    frame.render_widget(&input, panes.input);
    frame.render_widget(Paragraph::new(status(app)), panes.status);
    scroll
}

/// Styles, with or without colour (`NO_COLOR`).
struct Theme {
    color: bool,
}

impl Theme {
    fn dim(&self) -> Style {
        Style::new().add_modifier(Modifier::DIM)
    }

    fn name(&self, user: &str) -> Style {
        let style = Style::new().add_modifier(Modifier::BOLD);
        if !self.color {
            return style;
        }
        style.fg(match color_of(user) {
            31 => Color::Red,
            32 => Color::Green,
            33 => Color::Yellow,
            34 => Color::Blue,
            35 => Color::Magenta,
            36 => Color::Cyan,
            91 => Color::LightRed,
            92 => Color::LightGreen,
            93 => Color::LightYellow,
            94 => Color::LightBlue,
            95 => Color::LightMagenta,
            _ => Color::LightCyan,
        })
    }

    fn mention(&self) -> Style {
        match self.color {
            true => Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
            false => Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED),
        }
    }

    fn error(&self) -> Style {
        match self.color {
            true => Style::new().fg(Color::Red),
            false => Style::new().add_modifier(Modifier::BOLD),
        }
    }

    fn marker(&self) -> Style {
        match self.color {
            true => Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
            false => Style::new().add_modifier(Modifier::BOLD),
        }
    }
}

fn rooms<'a>(app: &'a App, theme: &Theme, rect: Rect) -> Paragraph<'a> {
    let mut lines = vec![Line::styled("Rooms", theme.dim())];
    // Room of the border, the key and the space after it.
    let room_for_name = (rect.width as usize).saturating_sub(3);
    for (i, room) in app.rooms.iter().enumerate() {
        let key = if i < 9 {
            format!("{}", i + 1)
        } else {
            " ".into()
        };
        let unread = match room.unread {
            0 => String::new(),
            n if n > 999 => " 999+".to_string(),
            n => format!(" {n}"),
        };
        let mention = if room.mention { " @" } else { "" };
        // A long name gives way to the marks.
        let name: String = room
            .name
            .as_str()
            .chars()
            .take(room_for_name.saturating_sub(unread.len() + mention.len()))
            .collect();
        let mut spans = vec![
            Span::styled(key, theme.dim()),
            Span::raw(" "),
            Span::raw(name),
        ];
        if !unread.is_empty() {
            spans.push(Span::styled(
                unread,
                Style::new().add_modifier(Modifier::BOLD),
            ));
        }
        if room.mention {
            spans.push(Span::styled(mention, theme.mention()));
        }
        let mut line = Line::from(spans);
        if i == app.current {
            line = line.style(Style::new().add_modifier(Modifier::REVERSED));
        }
        lines.push(line);
    }
    Paragraph::new(lines).block(
        Block::new()
            .borders(Borders::RIGHT)
            .border_style(theme.dim()),
    )
}

fn users<'a>(app: &'a App, theme: &Theme) -> Paragraph<'a> {
    let mut lines = Vec::new();
    if let Some(room) = app.room() {
        lines.push(Line::styled(
            format!("Users ({})", room.online.max(room.users.len() as u64)),
            theme.dim(),
        ));
        for user in &room.users {
            lines.push(Line::styled(user.to_string(), theme.name(user.as_str())));
        }
    }
    Paragraph::new(lines).block(
        Block::new()
            .borders(Borders::LEFT)
            .border_style(theme.dim()),
    )
}

/// The status line.
fn status(app: &App) -> Line<'static> {
    let bar = Style::new().add_modifier(Modifier::REVERSED);
    let (state, state_style) = match app.connection {
        Connection::Connected => ("connected", bar),
        Connection::Reconnecting => ("reconnecting…", bar.add_modifier(Modifier::BOLD)),
        Connection::Refused => ("login refused", bar.add_modifier(Modifier::BOLD)),
    };
    let mut parts = vec![Span::styled(format!(" {state} "), state_style)];
    let mut add = |text: String| {
        parts.push(Span::styled(format!("│ {text} "), bar));
    };
    add(app.user.to_string());
    if let Some(room) = app.room() {
        add(format!("{} ({} online)", room.name, room.online));
    }
    if !app.presence {
        add("presence unavailable".into());
    }
    if let Some(mute) = &app.muted {
        add(format!(
            "muted until {}",
            crate::render::time_of(&mute.until)
        ));
    }
    let mut waiting = Vec::new();
    if app.pending > 0 {
        waiting.push(format!("{} line(s)", app.pending));
    }
    if app.unconfirmed > 0 {
        waiting.push(format!("{} unconfirmed message(s)", app.unconfirmed));
    }
    if app.sending.paced {
        add(format!(
            "sending {}/{}",
            app.sending.sent, app.sending.total
        ));
    }
    if let Some(room) = app.room() {
        if room.loading {
            waiting.push("a page of history".into());
        }
        if let Some(count) = room.replaying {
            waiting.push(format!("history ({count} so far)"));
        }
        if room.scroll > 0 {
            add(format!("scrolled up ({} below)", room.scroll));
        }
    }
    if !waiting.is_empty() {
        add(format!("waiting for {}", waiting.join(", ")));
    }
    // Without the room list, the rooms with news are named here.
    let others: Vec<String> = app
        .rooms
        .iter()
        .enumerate()
        .filter(|(i, r)| *i != app.current && (r.unread > 0 || r.mention))
        .map(|(i, r)| {
            format!(
                "{}:{} {}{}",
                i + 1,
                r.name,
                r.unread,
                if r.mention { "@" } else { "" }
            )
        })
        .collect();
    if !others.is_empty() {
        add(others.join(" "));
    }
    Line::from(parts).style(bar)
}

/// The message pane's lines: the entries in view, laid out from the bottom up.
/// The message pane's lines, and the scroll they show: scrolled to the top of what is
/// loaded, the oldest entries start at the top of the pane rather than leaving it half
/// empty, so fewer entries are hidden below than asked.
fn messages(app: &App, theme: &Theme, width: usize, rows: usize) -> (Vec<Line<'static>>, usize) {
    let mut scroll = app.room().map_or(0, |r| r.scroll);
    loop {
        let (lines, filled) = compose(app, scroll, theme, width, rows);
        if filled || scroll == 0 {
            return (lines, scroll);
        }
        scroll -= 1;
    }
}

/// The message pane's lines with `scroll` entries hidden below, and whether they fill
/// the pane.
fn compose(
    app: &App,
    scroll: usize,
    theme: &Theme,
    width: usize,
    rows: usize,
) -> (Vec<Line<'static>>, bool) {
    let width = width.max(10);
    let mut out: Vec<Line<'static>> = Vec::new();
    let (entries, room): (Vec<&Entry>, Option<&Room>) = match app.room() {
        Some(room) => {
            let end = room.entries.len().saturating_sub(scroll);
            let start = end.saturating_sub(rows.max(1));
            (room.entries.range(start..end).collect(), Some(room))
        }
        None => {
            let start = app.lobby.len().saturating_sub(rows.max(1));
            (app.lobby.range(start..).collect(), None)
        }
    };
    // How many entries are loaded above the first one looked at.
    let above = match room {
        Some(room) => room
            .entries
            .len()
            .saturating_sub(scroll)
            .saturating_sub(entries.len()),
        None => 0,
    };
    let today = app.now.with_timezone(&app.offset).date_naive();
    let day = |ts: &DateTime<Utc>| ts.with_timezone(&app.offset).date_naive();
    let marker = room.and_then(|r| r.marker);
    // The day of the nearest message below what was laid out so far.
    let mut below: Option<NaiveDate> = None;
    // Whether the oldest entry looked at fitted whole: then what is above it is shown.
    let mut whole = true;
    for (k, entry) in entries.iter().enumerate().rev() {
        let mut block = Vec::new();
        layout(entry, app, theme, today, width, &mut block);
        if let (Entry::Message { ts, .. }, Some(d)) = (entry, below) {
            if day(ts) != d {
                out.push(separator(d, width, theme));
            }
        }
        if let Entry::Message { ts, .. } = entry {
            below = Some(day(ts));
        }
        // The "new messages" line goes above the first entry after the marker.
        if let (Some(mark), Some(seq)) = (marker, entry.seq()) {
            let previous = entries[..k].iter().rev().find_map(|e| e.seq());
            let first_new =
                seq > mark && previous.is_none_or(|p| p <= mark) && (k > 0 || above == 0);
            if first_new {
                block.insert(0, rule("new messages", width, theme.marker()));
            }
        }
        for line in block.into_iter().rev() {
            out.push(line);
        }
        if out.len() >= rows {
            whole = false;
            break;
        }
    }
    if whole && above == 0 {
        if let Some(d) = below {
            out.push(separator(d, width, theme));
        }
        if let Some(room) = room {
            if room.loading {
                out.push(Line::styled("… loading earlier messages", theme.dim()));
            } else if room.complete {
                out.push(rule(
                    &format!("beginning of {}", room.name),
                    width,
                    theme.dim(),
                ));
            }
        }
    }
    out.reverse();
    let skip = out.len().saturating_sub(rows);
    let mut out: Vec<Line<'static>> = out.into_iter().skip(skip).collect();
    // Short timelines sit at the bottom of the pane, as a chat's do.
    let pad = rows.saturating_sub(out.len());
    let mut padded = vec![Line::default(); pad];
    padded.append(&mut out);
    (padded, pad == 0)
}

fn separator(day: NaiveDate, width: usize, theme: &Theme) -> Line<'static> {
    rule(&day.format("%A %-d %B %Y").to_string(), width, theme.dim())
}

/// `── text ──────` across `width`.
fn rule(text: &str, width: usize, style: Style) -> Line<'static> {
    let head = format!("── {text} ");
    let fill = width.saturating_sub(head.chars().count());
    Line::styled(format!("{head}{}", "─".repeat(fill)), style)
}

/// `HH:MM` today, `MM-DD HH:MM` on another day (the day separators give the year).
fn time_of(ts: &DateTime<Utc>, app: &App, today: NaiveDate) -> String {
    let local = ts.with_timezone(&app.offset);
    if local.date_naive() == today {
        local.format("%H:%M").to_string()
    } else {
        local.format("%m-%d %H:%M").to_string()
    }
}

/// One entry's lines at `width`, wrapped, continuation lines indented.
fn layout(
    entry: &Entry,
    app: &App,
    theme: &Theme,
    today: NaiveDate,
    width: usize,
    out: &mut Vec<Line<'static>>,
) {
    match entry {
        Entry::Message {
            seq,
            ts,
            user,
            me,
            lines,
            replay,
            mention,
            spoofed,
        } => {
            let time = time_of(ts, app, today);
            let indent = time.chars().count() + 2;
            let mark = if *replay { "·" } else { " " };
            let text_style = if *mention {
                theme.mention()
            } else {
                Style::new()
            };
            let text_style = if *me {
                text_style.add_modifier(Modifier::ITALIC)
            } else {
                text_style
            };
            let mut first = vec![
                Span::styled(time, theme.dim()),
                Span::styled(mark.to_string(), theme.dim()),
                Span::raw(" "),
            ];
            if app.show_seq {
                first.push(Span::styled(format!("#{seq} "), theme.dim()));
            }
            if *me {
                first.push(Span::styled("* ", text_style));
            }
            first.push(Span::styled(user.to_string(), theme.name(user.as_str())));
            if *spoofed {
                first.push(Span::styled(
                    " (body claimed another sender)",
                    theme.error(),
                ));
            }
            first.push(Span::raw(if *me { " " } else { ": " }));
            let mut text = lines.iter();
            if let Some(line) = text.next() {
                first.push(Span::styled(line.clone(), text_style));
            }
            wrap(first, width, indent, out);
            for line in text {
                let spans = vec![
                    Span::raw(" ".repeat(indent)),
                    Span::styled(line.clone(), text_style),
                ];
                wrap(spans, width, indent, out);
            }
        }
        Entry::System { text, .. } => {
            wrap(
                vec![Span::styled(format!("-- {text}"), theme.dim())],
                width,
                3,
                out,
            );
        }
        Entry::Note { lines, error } => {
            let style = if *error { theme.error() } else { theme.dim() };
            for (i, line) in lines.iter().enumerate() {
                let text = match (i, error) {
                    (0, true) => format!("error: {line}"),
                    (0, false) => format!("== {line}"),
                    _ => format!("   {line}"),
                };
                wrap(vec![Span::styled(text, style)], width, 3, out);
            }
        }
    }
}

/// Cuts `spans` into lines of at most `width` columns; lines after the first start
/// with `indent` spaces. Breaks at the last space when there is one in the line.
fn wrap(spans: Vec<Span<'static>>, width: usize, indent: usize, out: &mut Vec<Line<'static>>) {
    let indent = indent.min(width / 2);
    let mut line: Vec<Span<'static>> = Vec::new();
    let mut used = 0;
    for span in spans {
        let style = span.style;
        let mut piece = String::new();
        for c in span.content.chars() {
            let w = c.width().unwrap_or(0);
            if used + w > width {
                // Move the word being cut to the next line when it started on this one.
                let mut carry = String::new();
                if c != ' ' {
                    if let Some(space) = piece.rfind(' ') {
                        carry = piece.split_off(space + 1);
                    }
                }
                if !piece.is_empty() {
                    line.push(Span::styled(std::mem::take(&mut piece), style));
                }
                out.push(Line::from(std::mem::take(&mut line)));
                line.push(Span::raw(" ".repeat(indent)));
                used = indent + carry.chars().map(|c| c.width().unwrap_or(0)).sum::<usize>();
                piece = carry;
                if c == ' ' {
                    continue;
                }
            }
            piece.push(c);
            used += w;
        }
        if !piece.is_empty() {
            line.push(Span::styled(piece, style));
        }
    }
    out.push(Line::from(line));
}
