//! Line mode (stdin is not a terminal): each input line is a message or a command;
//! each event is one output line, or one JSON object with `--json`.
//!
//! Input is handled strictly in order (a history replay finishes before the next line
//! is read), so a script's output is deterministic. End of input, `/quit`, Ctrl-C or
//! SIGTERM: wait for acks, leave, exit.

use std::io::Write;

use chat_protocol::runtime::shutdown_signal;
use chat_protocol::RoomName;
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
        let mut input = BufReader::new(tokio::io::stdin()).lines();
        loop {
            let line = tokio::select! {
                line = input.next_line() => line,
                _ = &mut stop => break,
            };
            match line {
                Ok(Some(line)) => {
                    if session.handle_line(&line).await == Flow::Quit {
                        break;
                    }
                }
                Ok(None) => break,
                Err(err) => {
                    tracing::warn!("cannot read input: {err}");
                    break;
                }
            }
        }
    }
    let code = session.finish().await;
    let _ = done.send(());
    let _ = printer.await;
    code
}

/// Prints events until `finished`, then whatever is still queued.
async fn print(
    mut events: mpsc::Receiver<Event>,
    current: watch::Receiver<Option<RoomName>>,
    json: bool,
    mut finished: oneshot::Receiver<()>,
) {
    let style = Style {
        color: false,
        interactive: false,
    };
    let show = |event: &Event| {
        let current = current.borrow().clone();
        let text = if json {
            if matches!(event, Event::HistoryProgress { .. }) {
                return true;
            }
            serde_json::to_string(event).expect("events serialize")
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
