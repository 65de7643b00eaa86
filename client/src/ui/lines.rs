//! Line mode (stdin is not a terminal): each input line is a message or a command;
//! each event is one output line, or one JSON object with `--json`.
//!
//! Input is handled strictly in order (a history replay finishes before the next line
//! is read), so a script's output is deterministic. End of input, `/quit`, Ctrl-C or
//! SIGTERM: wait for acks, leave, exit. A line that is not UTF-8 is reported as that
//! line's error and skipped. `--json` output escapes every control and invisible
//! format character, so it is safe to show on a terminal.

use std::io::Write;

use chat_protocol::display::escape_json;
use chat_protocol::RoomName;
use chat_runtime::shutdown_signal;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{mpsc, oneshot, watch};

use super::{Flow, Session, Settings};
use crate::event::Event;
use crate::render::{self, Style};
use crate::Chat;

/// Runs line mode on stdin and stdout until the input ends; returns the exit code.
pub async fn run(chat: Chat, events: mpsc::Receiver<Event>, settings: Settings) -> i32 {
    let mut session = Session::new(chat, settings.history, false);
    let (done, finished) = oneshot::channel();
    let printer = tokio::spawn(print(
        events,
        session.current_room(),
        session.show_seq(),
        settings.json,
        finished,
    ));
    let stop = shutdown_signal();
    tokio::pin!(stop);
    // Input is read once the first room is live (a script's lines then always land
    // after its welcome), but a stop request is honoured while waiting for that.
    let joined = tokio::select! {
        _ = session.run(crate::command::Command::Join(vec![settings.room])) => true,
        _ = &mut stop => false,
    };
    if joined {
        let mut input = BufReader::new(tokio::io::stdin());
        let mut line = Vec::new();
        let mut number = 0u64;
        loop {
            line.clear();
            let read = tokio::select! {
                read = input.read_until(b'\n', &mut line) => read,
                _ = &mut stop => break,
            };
            match read {
                Ok(0) => break,
                Ok(_) => number += 1,
                Err(err) => {
                    session.error(format!("cannot read input: {err}")).await;
                    break;
                }
            }
            // One bad line is that line's error, not the end of the session.
            let text = match std::str::from_utf8(trim_line_end(&line)) {
                Ok(text) => text,
                Err(err) => {
                    let message = format!(
                        "input line {number} is not valid UTF-8 (bad byte at offset {}); it was not sent: input must be UTF-8 text",
                        err.valid_up_to()
                    );
                    session.error(message).await;
                    continue;
                }
            };
            if session.handle_line(text).await == Flow::Quit {
                break;
            }
        }
    }
    let code = session.finish().await;
    let _ = done.send(());
    let _ = printer.await;
    code
}

/// `line` without its `\n` or `\r\n`.
fn trim_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Prints events until `finished`, then whatever is still queued.
async fn print(
    mut events: mpsc::Receiver<Event>,
    current: watch::Receiver<Option<RoomName>>,
    seq: watch::Receiver<bool>,
    json: bool,
    mut finished: oneshot::Receiver<()>,
) {
    let show = |event: &Event| {
        let current = current.borrow().clone();
        let style = Style {
            color: false,
            interactive: false,
            seq: *seq.borrow(),
        };
        let text = if json {
            if matches!(event, Event::HistoryProgress { .. }) {
                return true;
            }
            // Escaped: a script that echoes the JSON to a terminal stays safe.
            escape_json(serde_json::to_string(event).expect("events serialize"))
        } else {
            match render::line(event, current.as_ref(), style) {
                Some(line) => line,
                None => return true,
            }
        };
        let mut out = std::io::stdout().lock();
        writeln!(out, "{text}").and_then(|_| out.flush()).is_ok()
    };
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(event) => if !show(&event) { return },
                None => return,
            },
            _ = &mut finished => break,
        }
    }
    while let Ok(event) = events.try_recv() {
        if !show(&event) {
            return;
        }
    }
}
