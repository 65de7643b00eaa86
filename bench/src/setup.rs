//! The stage every scenario runs on: a nats-server (started through `test_support`,
//! or the one at `--nats-url`), the real presence and history workers as child
//! processes, and helpers to connect chat sessions the way a person's client does.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use chat_client::{service::RequestError, Chat, Event, Options};
use chat_protocol::{RoomName, SessionId, UserName};
use futures::TryStreamExt;
use test_support::NatsServer;
use tokio::sync::mpsc;

use crate::options::Sizes;
use crate::processes::{Binaries, LocateError, Process};
use crate::progress::Progress;

/// Longest wait for something that should happen (a welcome, a worker answering);
/// reaching it is a failure of the run, not a figure.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Why a run could not go on.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The worker or client binaries are missing.
    #[error(transparent)]
    Locate(#[from] LocateError),
    /// A child process could not be started.
    #[error("cannot start {0}: {1}")]
    Spawn(String, std::io::Error),
    /// A child process never got ready; the end of its log says why.
    #[error("{0} did not become ready within {PATIENCE:?}; the end of its log:\n{1}")]
    NotReady(String, String),
    /// A chat session could not connect.
    #[error(transparent)]
    Connect(#[from] chat_client::ConnectError),
    /// Raw NATS failed.
    #[error("NATS: {0}")]
    Nats(String),
    /// Something expected did not happen in time.
    #[error("timed out waiting for {0}")]
    Timeout(String),
    /// A name built by the bench was refused (a bug).
    #[error("bad name: {0}")]
    Name(#[from] chat_protocol::NameError),
}

impl BenchError {
    /// Wraps any NATS error.
    pub fn nats(err: impl std::fmt::Display) -> Self {
        BenchError::Nats(err.to_string())
    }
}

/// A raw ordered consumer on everything of a room's stream, from `deliver`: the
/// baseline reader every scenario compares the chat's feeds with. Unfiltered, like the
/// chat's feed (the stream holds only the room's subjects).
pub async fn raw_room_feed(
    stream: &async_nats::jetstream::stream::Stream,
    deliver: async_nats::jetstream::consumer::DeliverPolicy,
) -> Result<async_nats::jetstream::consumer::pull::Ordered, BenchError> {
    stream
        .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig {
            deliver_policy: deliver,
            ..Default::default()
        })
        .await
        .map_err(BenchError::nats)?
        .messages()
        .await
        .map_err(BenchError::nats)
}

/// Where and how a run takes place.
pub struct Stage {
    /// The server started for this run (none with `--nats-url`).
    server: Option<NatsServer>,
    /// Its URL.
    pub url: String,
    /// The real binaries.
    pub bins: Binaries,
    /// Log files of the child processes (kept with `--keep-logs`).
    pub logs: tempfile::TempDir,
    /// The presence worker.
    pub presence: Process,
    /// The history worker.
    pub history: Process,
    /// The sizes of this run.
    pub sizes: Sizes,
    /// The progress line.
    pub progress: Progress,
    /// Prefix of every room of this run, so that runs against one server never meet.
    tag: String,
}

impl Stage {
    /// Starts the server (unless `url` is given) and the workers, and waits until both
    /// workers answer.
    pub async fn start(
        url: Option<String>,
        bins: Binaries,
        sizes: Sizes,
        progress: Progress,
    ) -> Result<Self, BenchError> {
        let server = match url {
            Some(_) => None,
            None => {
                progress.phase("starting nats-server");
                Some(
                    tokio::task::spawn_blocking(test_support::run_server)
                        .await
                        .map_err(|e| {
                            BenchError::Spawn("nats-server".into(), std::io::Error::other(e))
                        })?,
                )
            }
        };
        let url = url.unwrap_or_else(|| server.as_ref().expect("started").url());
        let logs = tempfile::Builder::new()
            .prefix("chat-bench-")
            .tempdir()
            .map_err(|e| BenchError::Spawn("log directory".into(), e))?;
        progress.phase("starting the presence and history workers");
        let ttl = sizes.presence_ttl_secs.to_string();
        let presence = Process::spawn(
            "presence-worker",
            &bins.presence,
            &["--nats-url", &url, "--ttl", &ttl],
            logs.path(),
            (Stdio::null(), Stdio::null()),
        )
        .map_err(|e| BenchError::Spawn("presence-worker".into(), e))?;
        let history = Process::spawn(
            "history-worker",
            &bins.history,
            &["--nats-url", &url],
            logs.path(),
            (Stdio::null(), Stdio::null()),
        )
        .map_err(|e| BenchError::Spawn("history-worker".into(), e))?;
        let tag = SessionId::random().to_string()[..6].to_string();
        let stage = Self {
            server,
            url,
            bins,
            logs,
            presence,
            history,
            sizes,
            progress,
            tag,
        };
        stage.wait_for_workers().await?;
        Ok(stage)
    }

    /// The process id of the bench's own nats-server (none with `--nats-url`).
    pub fn server_pid(&self) -> Option<u32> {
        self.server.as_ref().and_then(NatsServer::pid)
    }

    /// Waits until the presence worker lists rooms and the history worker answers.
    async fn wait_for_workers(&self) -> Result<(), BenchError> {
        let (probe, _events) = self.chat("probe").await?;
        let unknown = self.room("never-joined")?;
        let deadline = Instant::now() + PATIENCE;
        loop {
            let presence = probe.list_rooms().await.is_ok();
            let history = !matches!(
                probe.all_messages(&unknown).await,
                Err(RequestError::Unavailable(_) | RequestError::TimedOut(..))
            );
            if presence && history {
                return Ok(());
            }
            if Instant::now() > deadline {
                let (name, log) = if presence {
                    (&self.history.name, &self.history.log)
                } else {
                    (&self.presence.name, &self.presence.log)
                };
                return Err(BenchError::NotReady(name.clone(), log_tail(log)));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Deletes the streams this run created (room streams, the raw baselines' streams
    /// and bucket) when the server is not the bench's own: someone else's server is
    /// left as it was found, but for presence entries, which expire by themselves.
    pub async fn clean_up(&self) -> Result<(), BenchError> {
        if self.server.is_some() {
            return Ok(());
        }
        let js = async_nats::jetstream::new(self.raw().await?);
        let names: Vec<String> = js
            .stream_names()
            .try_collect()
            .await
            .map_err(BenchError::nats)?;
        for name in names.iter().filter(|name| name.contains(&self.tag)) {
            js.delete_stream(name).await.map_err(BenchError::nats)?;
        }
        Ok(())
    }

    /// A room name unique to this run.
    pub fn room(&self, name: &str) -> Result<RoomName, BenchError> {
        Ok(RoomName::new(format!("{}-{name}", self.tag))?)
    }

    /// A chat session of user `name`, connected like the terminal client connects.
    pub async fn chat(&self, name: &str) -> Result<(Chat, mpsc::Receiver<Event>), BenchError> {
        let mut options = Options::new(&self.url, UserName::new(name)?);
        // A slow machine under load must not turn a queued request into a failure.
        options.request_timeout = Duration::from_secs(10);
        // The terminal client's --publish-window, from the same variable, so that the
        // publish scenario can measure what keeping every sender's order costs.
        if let Some(window) = std::env::var("CHAT_PUBLISH_WINDOW")
            .ok()
            .and_then(|w| w.parse().ok())
        {
            options.retry.window = window;
        }
        Ok(Chat::connect(options).await?)
    }

    /// A raw async-nats connection, for the baselines.
    pub async fn raw(&self) -> Result<async_nats::Client, BenchError> {
        async_nats::connect(&self.url)
            .await
            .map_err(BenchError::nats)
    }
}

/// Joins `room` with `chat` (no replay) and waits for the presence worker's welcome.
pub async fn join(
    chat: &Chat,
    events: &mut mpsc::Receiver<Event>,
    room: &RoomName,
) -> Result<(), BenchError> {
    chat.join(room, 0);
    until(
        events,
        |e| matches!(e, Event::Welcome { room: r, .. } if r == room),
    )
    .await
    .map_err(|_| BenchError::Timeout(format!("the welcome to {room}")))
}

/// Waits (at most [`PATIENCE`]) for an event matching `pick`, skipping others.
pub async fn until(
    events: &mut mpsc::Receiver<Event>,
    mut pick: impl FnMut(&Event) -> bool,
) -> Result<(), BenchError> {
    tokio::time::timeout(PATIENCE, async {
        while let Some(event) = events.recv().await {
            if pick(&event) {
                return Ok(());
            }
        }
        Err(BenchError::Timeout("an event (the session closed)".into()))
    })
    .await
    .map_err(|_| BenchError::Timeout("an event".into()))?
}

/// Reads and drops every event of a session until it closes, so that its feeds never
/// wait for a reader.
pub fn drain(mut events: mpsc::Receiver<Event>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move { while events.recv().await.is_some() {} })
}

/// Polls `check` every `every` until it is true or [`PATIENCE`] runs out.
pub async fn poll_until<F, Fut>(every: Duration, what: &str, mut check: F) -> Result<(), BenchError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + PATIENCE;
    while !check().await {
        if Instant::now() > deadline {
            return Err(BenchError::Timeout(what.to_string()));
        }
        tokio::time::sleep(every).await;
    }
    Ok(())
}

/// The last lines of a child's log file, for error messages.
pub fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}
