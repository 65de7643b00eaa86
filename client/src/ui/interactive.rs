//! Interactive mode (stdin is a terminal): rustyline edits the input line, and
//! incoming events are printed above the prompt through its external printer, so a
//! half-typed line is never broken. Names are coloured, times are local. Logs never
//! come here (the binary sends them to a file).

use chat_protocol::{RoomName, UserName};
use chat_runtime::shutdown_signal;
use rustyline::error::ReadlineError;
use rustyline::{DefaultEditor, ExternalPrinter};
use tokio::sync::{mpsc, oneshot, watch};

use super::{Flow, Session, Settings};
use crate::command::Command;
use crate::event::Event;
use crate::render::{self, Style};
use crate::Chat;

/// Why interactive mode could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot start the line editor: {0}")]
pub struct EditorError(#[from] ReadlineError);

/// Runs the interactive chat until `/quit`, Ctrl-D, Ctrl-C or SIGTERM; returns the
/// exit code.
pub async fn run(
    chat: Chat,
    events: mpsc::Receiver<Event>,
    settings: Settings,
) -> Result<i32, EditorError> {
    let mut editor = DefaultEditor::new()?;
    let printer = editor.create_external_printer()?;
    let user = chat.user().clone();
    let mut session = Session::new(chat, settings.history, true);
    let current = session.current_room();
    let (done, finished) = oneshot::channel();
    let seq = session.show_seq();
    let printer = tokio::spawn(print(events, current.clone(), seq, printer, finished));
    let (lines_tx, mut lines) = mpsc::channel(16);
    // The room is current before the first prompt is drawn, so that it names it.
    session
        .run(crate::command::Command::Join(vec![settings.room]))
        .await;
    // rustyline blocks; it gets its own thread, which ends with the process.
    std::thread::spawn(move || read_lines(editor, user, current, lines_tx));
    let stop = shutdown_signal();
    tokio::pin!(stop);
    loop {
        let line = tokio::select! {
            line = lines.recv() => line,
            _ = &mut stop => None,
        };
        let Some((line, handled)) = line else { break };
        let again = match session.handle_line(&line).await {
            // Dropping `handled` ends the editor thread without a new prompt.
            Flow::Quit => break,
            Flow::Retype => Some(line),
            Flow::Continue => None,
        };
        let _ = handled.send(again);
    }
    let code = session.finish().await;
    let _ = done.send(());
    let _ = printer.await;
    Ok(code)
}

fn prompt(user: &UserName, current: &watch::Receiver<Option<RoomName>>) -> String {
    match current.borrow().as_ref() {
        Some(room) => format!("[{room}] {user}> "),
        None => format!("[no room] {user}> "),
    }
}

/// An input line, and how the session says it has handled it (with the line to edit
/// again when it was refused as it stands).
type Line = (String, oneshot::Sender<Option<String>>);

/// Reads lines until end of input or Ctrl-C, sending each to the session. The next
/// prompt waits until the line is handled, so it names the room a `/join` switched to.
fn read_lines(
    mut editor: DefaultEditor,
    user: UserName,
    current: watch::Receiver<Option<RoomName>>,
    lines: mpsc::Sender<Line>,
) {
    let mut draft: Option<String> = None;
    loop {
        let prompt = prompt(&user, &current);
        let read = match draft.take() {
            Some(draft) => editor.readline_with_initial(&prompt, (&draft, "")),
            None => editor.readline(&prompt),
        };
        match read {
            Ok(line) => {
                if !line.trim().is_empty() {
                    let _ = editor.add_history_entry(line.as_str());
                }
                if matches!(crate::command::parse(&line), Ok(Command::Say(..))) {
                    erase_entered(&prompt, &line);
                }
                let (handled, done) = oneshot::channel();
                if lines.blocking_send((line, handled)).is_err() {
                    return;
                }
                match done.blocking_recv() {
                    Ok(again) => draft = again,
                    Err(_) => return,
                }
            }
            Err(ReadlineError::Interrupted | ReadlineError::Eof) => return,
            Err(err) => {
                tracing::error!("line editor failed: {err}");
                return;
            }
        }
    }
}

/// Erases a message just entered (its prompt and text) from the screen: it comes back
/// as its echo once stored, and would otherwise show twice.
fn erase_entered(prompt: &str, line: &str) {
    use std::io::Write;
    use unicode_width::UnicodeWidthStr;
    let Ok((columns, _)) = crossterm::terminal::size() else {
        return;
    };
    let columns = usize::from(columns.max(1));
    let rows: usize = format!("{prompt}{line}")
        .split('\n')
        .map(|l| l.width().max(1).div_ceil(columns))
        .sum();
    let mut out = std::io::stdout().lock();
    let _ = write!(out, "\x1b[{rows}A\r\x1b[J").and_then(|_| out.flush());
}

/// Prints events above the prompt until `finished`, then whatever is still queued.
async fn print(
    mut events: mpsc::Receiver<Event>,
    current: watch::Receiver<Option<RoomName>>,
    seq: watch::Receiver<bool>,
    mut printer: impl ExternalPrinter + Send + 'static,
    mut finished: oneshot::Receiver<()>,
) {
    let mut show = |event: &Event| {
        let current = current.borrow().clone();
        let style = Style {
            color: true,
            interactive: true,
            seq: *seq.borrow(),
        };
        if let Some(mut line) = render::line(event, current.as_ref(), style) {
            // While rustyline is not reading, the printer writes straight to the
            // terminal and adds no line end of its own.
            line.push('\n');
            if let Err(err) = printer.print(line) {
                tracing::warn!("cannot print: {err}");
            }
        }
    };
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(event) => show(&event),
                None => return,
            },
            _ = &mut finished => break,
        }
    }
    while let Ok(event) = events.try_recv() {
        show(&event);
    }
}
