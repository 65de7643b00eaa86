//! The full-screen terminal UI (the default when stdin and stdout are terminals).
//!
//! - [`app`]: the one application state, and how events change it.
//! - [`view`]: the screen as a pure function of that state.
//! - [`keys`]: keys, pastes and the wheel applied to the state.
//! - [`input`]: the input box (multi-line editor, sent lines, completion).
//! - [`worker`]: the task that carries out what the state asks for (lines through
//!   the [`Session`], history pages, who is online) and replies.
//!
//! This runner owns the terminal and one loop: it waits for a library event, a key,
//! a worker reply or a stop signal, applies it to the state and draws once. Nothing
//! happens while nothing arrives (no redraw timer). Logs go to the log file (see the
//! binary), never here; leaving by any path, a panic included, restores the terminal.

pub mod app;
pub mod input;
pub mod keys;
pub mod view;
pub mod worker;

use std::io::Write;
use std::time::{Duration, Instant};

use chat_runtime::shutdown_signal;
use chrono::{Local, Offset, Utc};
use crossterm::event::{
    DisableBracketedPaste, DisableMouseCapture, EnableBracketedPaste, EnableMouseCapture,
    Event as Term, EventStream,
};
use crossterm::execute;
use futures::StreamExt;
use tokio::sync::mpsc;

use self::app::{Action, App};
use self::worker::Reply;
use super::{Session, Settings};
use crate::command::Command;
use crate::event::Event;
use crate::render::{self, Style};
use crate::Chat;

/// Library events applied at once before looking at the keys again.
const BATCH: usize = 512;

/// Shortest time between two frames drawn for library events (keys draw at once).
const FRAME: Duration = Duration::from_millis(16);

/// The terminal in full-screen mode while this lives; restored when dropped, and by
/// the panic hook on a panic.
struct Screen;

impl Screen {
    fn enter() -> std::io::Result<(Self, ratatui::DefaultTerminal)> {
        let terminal = ratatui::try_init()?;
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let _ = execute!(
                std::io::stdout(),
                DisableMouseCapture,
                DisableBracketedPaste
            );
            ratatui::restore();
            previous(info);
        }));
        execute!(std::io::stdout(), EnableBracketedPaste, EnableMouseCapture)?;
        Ok((Screen, terminal))
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        let _ = execute!(
            std::io::stdout(),
            DisableMouseCapture,
            DisableBracketedPaste
        );
        ratatui::restore();
    }
}

/// How often the status line's count of unconfirmed messages is read again while it
/// is not zero.
const UNCONFIRMED_RECHECK: Duration = Duration::from_millis(250);

/// Runs the full-screen chat until `/quit`, Ctrl-C, Ctrl-D on an empty input or
/// SIGTERM; returns the exit code.
pub async fn run(
    chat: Chat,
    mut events: mpsc::Receiver<Event>,
    settings: Settings,
) -> std::io::Result<i32> {
    let mut app = App::new(chat.user().clone(), Utc::now(), Local::now().offset().fix());
    app.color = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    app.bell = std::env::var("CHAT_BELL").map_or(true, |v| v != "0" && v != "off");
    let mut session = Session::new(chat.clone(), settings.history, true);
    let mut current = session.current_room();
    let mut show_seq = session.show_seq();
    // The room is current before the first frame, so that the screen names it.
    session.run(Command::Join(vec![settings.room])).await;
    let (jobs, replies_rx) = worker::start(session, chat.clone());
    let mut replies = replies_rx;
    let (screen, mut terminal) = Screen::enter()?;
    let mut keys = EventStream::new();
    let stop = shutdown_signal();
    tokio::pin!(stop);
    app.follow(current.borrow_and_update().as_ref());
    // Drawn at once after a key; after library events, at most once a frame interval,
    // so a flood of messages costs a few frames, not one each. With nothing new,
    // nothing is drawn and no timer runs.
    let mut last_frame = Instant::now();
    let mut due: Option<Instant> = Some(last_frame);
    loop {
        if due.is_some_and(|due| Instant::now() >= due) {
            app.now = Utc::now();
            app.unconfirmed = chat.unconfirmed();
            app.sending = chat.sending();
            app.muted = chat.muted();
            let mut shown = 0;
            terminal.draw(|frame| {
                app.page_rows = view::message_rows(frame.area(), &app);
                shown = view::draw(frame, &app);
            })?;
            app.settle_scroll(shown);
            last_frame = Instant::now();
            // While messages wait for their acknowledgement or their turn, look again
            // now and then: an ack comes with no event of its own.
            let busy = app.unconfirmed > 0 || app.sending.total > 0;
            due = busy.then(|| last_frame + UNCONFIRMED_RECHECK);
        }
        let mut keyed = false;
        tokio::select! {
            _ = tokio::time::sleep_until(due.unwrap_or_else(Instant::now).into()), if due.is_some() => continue,
            event = events.recv() => {
                let Some(event) = event else { break };
                app.on_event(event);
                for _ in 0..BATCH {
                    match events.try_recv() {
                        Ok(event) => app.on_event(event),
                        Err(_) => break,
                    }
                }
            }
            key = keys.next() => match key {
                Some(Ok(Term::Key(key))) => {
                    keys::on_key(&mut app, key);
                    keyed = true;
                }
                Some(Ok(Term::Paste(text))) => keys::on_paste(&mut app, &text),
                Some(Ok(Term::Mouse(mouse))) => keys::on_mouse(&mut app, mouse),
                Some(Ok(_)) => {} // a resize: the next frame fits the new size
                Some(Err(err)) => {
                    tracing::error!("cannot read the terminal: {err}");
                    break;
                }
                None => break,
            },
            reply = replies.recv() => match reply {
                Some(Reply::Handled { room, text, flow }) => {
                    app.pending = app.pending.saturating_sub(1);
                    match flow {
                        super::Flow::Quit => app.quit = true,
                        super::Flow::Retype => app.retype(room, text),
                        super::Flow::Continue => {}
                    }
                }
                Some(Reply::Page { room, page, result }) => app.on_page(&room, page, result),
                Some(Reply::Users { room, users }) => app.set_users(&room, users),
                None => break,
            },
            changed = current.changed() => {
                if changed.is_err() { break }
                app.follow(current.borrow_and_update().as_ref());
            }
            changed = show_seq.changed() => {
                if changed.is_err() { break }
                app.show_seq = *show_seq.borrow_and_update();
            }
            _ = &mut stop => break,
        }
        due = match keyed {
            true => Some(Instant::now()),
            false => Some(due.unwrap_or(last_frame + FRAME).max(last_frame + FRAME)),
        };
        for action in app.take_actions() {
            match action {
                Action::Bell => {
                    let mut out = std::io::stdout();
                    let _ = out.write_all(b"\x07").and_then(|_| out.flush());
                }
                action => jobs.send(action),
            }
        }
        if app.quit {
            break;
        }
    }
    drop(screen);
    drop(terminal);
    // Back on the plain terminal: what closing says (unconfirmed messages, rooms
    // left) is printed as the line editor would.
    println!("leaving…");
    let session = jobs.finish().await;
    let printer = tokio::spawn(async move {
        let style = Style {
            color: false,
            interactive: true,
            seq: false,
        };
        while let Some(event) = events.recv().await {
            if let Some(line) = render::line(&event, None, style) {
                println!("{line}");
            }
        }
    });
    let code = match session {
        Some(session) => session.finish().await,
        None => crate::ui::INTERRUPTED,
    };
    printer.abort();
    Ok(code)
}
