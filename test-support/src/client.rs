//! Shared by the client's integration tests: workers started in-process against a
//! real nats-server, and waiting for events with a generous timeout.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::NatsServer;
use chat_client::{Chat, Event, Options};
use chat_protocol::body::MessageKind;
use chat_protocol::{RoomName, UserName};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};
use tokio::sync::mpsc;

/// Long enough for anything that should happen; reaching it means it did not.
pub const PATIENCE: Duration = Duration::from_secs(20);

pub fn room(name: &str) -> RoomName {
    RoomName::new(name).unwrap()
}

pub fn user(name: &str) -> UserName {
    UserName::new(name).unwrap()
}

/// Options for tests, for `name` (registered first): short timeouts so failures
/// surface fast.
pub async fn options(server: &NatsServer, name: &str) -> Options {
    let password = server.register(name).await;
    let mut options = Options::new(server.url(), user(name), password);
    options.retry.ack_timeout = Duration::from_secs(2);
    // These tests send thousands of messages to test delivery, on a stack without a
    // rate limit; pacing has tests of its own (chat-client's tests/pacing.rs).
    options.pacing = None;
    options
}

/// A connected chat for `name`.
pub async fn connect(server: &NatsServer, name: &str) -> (Chat, mpsc::Receiver<Event>) {
    if std::env::var_os("LOG_LEVEL").is_some() {
        chat_runtime::init_logging(chat_runtime::LogFormat::Pretty);
    }
    Chat::connect(options(server, name).await).await.unwrap()
}

/// Sends a chat message as `chat` into `room` and waits until JetStream stored it;
/// returns its stream sequence.
pub async fn say(chat: &Chat, room: &RoomName, text: &str) -> u64 {
    chat.send(room, MessageKind::Chat, text)
        .await
        .unwrap()
        .acked()
        .await
        .unwrap()
}

/// Waits for the first event matching `pick`, skipping others.
pub async fn wait_for<T>(
    events: &mut mpsc::Receiver<Event>,
    mut pick: impl FnMut(&Event) -> Option<T>,
) -> T {
    tokio::time::timeout(PATIENCE, async {
        loop {
            let event = events.recv().await.expect("event channel open");
            tracing::debug!("test saw {event:?}");
            if let Some(found) = pick(&event) {
                return found;
            }
        }
    })
    .await
    .expect("the expected event did not arrive in time")
}

/// Joins `room` and waits for the welcome.
pub async fn join(
    chat: &Chat,
    events: &mut mpsc::Receiver<Event>,
    room: &RoomName,
    history: usize,
) {
    assert!(chat.join(room, history));
    wait_for(events, |e| match e {
        Event::Welcome { room: r, .. } if r == room => Some(()),
        _ => None,
    })
    .await;
}

/// A connected chat for `name` that has joined `room` (welcome seen).
pub async fn joined(
    server: &NatsServer,
    name: &str,
    room: &RoomName,
    history: usize,
) -> (Chat, mpsc::Receiver<Event>) {
    let (chat, mut events) = connect(server, name).await;
    join(&chat, &mut events, room, history).await;
    (chat, events)
}

/// `(seq, text, replay)` of a chat message event of `room`.
pub fn message_in(room: &RoomName) -> impl FnMut(&Event) -> Option<(u64, String, bool)> + '_ {
    move |e| match e {
        Event::Message {
            room: r,
            seq,
            text,
            replay,
            ..
        } if r == room => Some((*seq, text.clone(), *replay)),
        _ => None,
    }
}

/// Collects events until `count` chat messages of `room` arrived.
pub async fn messages(
    events: &mut mpsc::Receiver<Event>,
    room: &RoomName,
    count: usize,
) -> Vec<(u64, String, bool)> {
    let mut out = Vec::new();
    while out.len() < count {
        out.push(wait_for(events, message_in(room)).await);
    }
    out
}

/// Asserts that no chat message of `room` arrives within a short while.
pub async fn no_more_messages(events: &mut mpsc::Receiver<Event>, room: &RoomName) {
    let extra = tokio::time::timeout(
        Duration::from_millis(500),
        wait_for(events, message_in(room)),
    )
    .await;
    assert!(extra.is_err(), "unexpected extra message: {extra:?}");
}

/// Starts a presence worker in-process with a short TTL (heartbeats every second).
pub async fn presence(server: &NatsServer) -> presence_worker::PresenceWorker {
    let config = presence_worker::Config {
        ttl: Duration::from_secs(3),
        streams: crate::room_settings(),
        ..Default::default()
    };
    presence_worker::PresenceWorker::start(server.presence_client().await, config)
        .await
        .expect("presence worker starts")
}

/// Starts a history worker in-process.
pub async fn history(server: &NatsServer) -> history_worker::HistoryWorker {
    history_worker::HistoryWorker::start(
        server.history_client().await,
        history_worker::Config::default(),
    )
    .await
    .expect("history worker starts")
}

/// The `chat-client` binary in `--json` line mode as `user` (registered first),
/// logging in with `CHAT_PASSWORD`.
pub async fn client(server: &NatsServer, user: &str) -> Command {
    let password = server.register(user).await;
    let mut command = command_at(&server.url(), user);
    command.env("CHAT_PASSWORD", password);
    command
}

/// The `chat-client` binary in `--json` line mode as `user` at `url`, without a
/// password.
pub fn command_at(url: &str, user: &str) -> Command {
    let mut command = Command::new(chat_client_bin());
    command
        .args([
            "--json",
            "--history",
            "0",
            "--user",
            user,
            "--nats-url",
            url,
        ])
        .env_remove("CHAT_PASSWORD")
        .env_remove("CHAT_ROOM")
        .env_remove("CHAT_LOG_FILE")
        .env("LOG_LEVEL", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// The `chat-client` binary cargo built for the running test: the test runs from
/// `target/<profile>/deps/`, the crate's binaries sit in `target/<profile>/`.
fn chat_client_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    dir.join(format!("chat-client{}", std::env::consts::EXE_SUFFIX))
}

/// The next event of `kind` (any kind if empty), skipping others.
pub async fn next_event(lines: &mut Lines<BufReader<ChildStdout>>, kind: &str) -> Value {
    tokio::time::timeout(PATIENCE, async {
        loop {
            let line = lines
                .next_line()
                .await
                .unwrap()
                .expect("output ended early");
            let value: Value =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?} is not JSON: {e}"));
            if kind.is_empty() || value["event"] == kind {
                return value;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {kind} event in time"))
}

/// Starts `command`, returning it and its output lines.
pub fn spawn(command: &mut Command) -> (Child, Lines<BufReader<ChildStdout>>) {
    let mut child = command.spawn().unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    (child, lines)
}
