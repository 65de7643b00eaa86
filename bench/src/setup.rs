//! The stage every scenario runs on: the authenticated stack (nats-server with its
//! auth callout, started through `test_support` without in-process auth workers, or a
//! local TLS cluster of `--cluster N` such nodes, or the one at `--nats-url`), the real
//! auth, presence and history workers as child processes, and helpers to register and
//! log in chat sessions the way a person's client does.
//!
//! Everyone logs in: chat sessions as registered chat users (each registered once per
//! run, before anything is timed: registering costs an argon2 hash), raw baseline
//! clients as the operator `@admin` (a static user, so no callout), the workers as
//! their own static users with the passwords from the secrets folder.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chat_client::login::{self, AccountError};
use chat_client::{call::RequestError, Chat, Event, Options};
use chat_protocol::auth::static_users;
use chat_protocol::{RoomName, SessionId, UserName};
use chat_runtime::Credentials;
use futures::{StreamExt, TryStreamExt};
use test_support::{password_of, Cluster, NatsServer, StackOptions};
use tokio::sync::{mpsc, Semaphore};

use crate::options::{Scenario, Sizes};
use crate::processes::{Binaries, LocateError, Process};
use crate::progress::Progress;
use crate::Settings;

/// Registrations in flight at once (the auth worker hashes a few at a time; more only
/// queue).
const REGISTER_CONCURRENCY: usize = 8;

/// Chat logins with the password in flight at once through [`Stage::chat`], so that
/// none waits in the auth worker's queue longer than the server's callout timeout (3 s).
const LOGIN_CONCURRENCY: usize = 16;

/// The registrations per client host the bench's own auth worker allows at once: more
/// than any run registers, all from this host.
const BENCH_REGISTER_BURST: &str = "1000000";

/// The `auth-worker`'s log filter: warnings, and one line per accepted login with its
/// verdict (`Password` or `Resumed`), which the login scenario counts.
pub const AUTH_LOG_LEVEL: &str = "warn,auth_worker::callout=debug";

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
    /// A secret (a static user's password) could not be read.
    #[error("cannot read {0}: {1} (with --nats-url, pass the stack's --secrets-dir)")]
    Secret(PathBuf, std::io::Error),
    /// A chat user could not be registered.
    #[error("cannot register {0}: {1}")]
    Register(String, String),
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

/// The file holding static user `user`'s password in a secrets folder made by
/// `chat-admin init` (`@admin` → `admin.password`).
pub fn password_file(secrets: &Path, user: &str) -> PathBuf {
    secrets.join(format!("{}.password", user.trim_start_matches('@')))
}

/// The servers the bench started for its run.
enum Servers {
    /// One nats-server.
    Single(NatsServer),
    /// A cluster (`--cluster N`): N nodes on loopback, TLS on every listener, the
    /// workers choosing R3 (R2 for two nodes) for what they create.
    Cluster(Cluster),
}

/// Where and how a run takes place.
pub struct Stage {
    /// The server or cluster started for this run (none with `--nats-url`).
    server: Option<Servers>,
    /// Its URL (every node's, comma-separated, for a cluster).
    pub url: String,
    /// The CA the servers' certificates are signed by (the bench's own cluster).
    ca: Option<PathBuf>,
    /// The stack's secrets folder (the static users' passwords, the issuer seed).
    pub secrets: PathBuf,
    /// `@admin`, as whom the raw baselines connect.
    admin: Credentials,
    /// The real binaries.
    pub bins: Binaries,
    /// Log files of the child processes (kept when `CHAT_BENCH_KEEP_LOGS` is set).
    pub logs: tempfile::TempDir,
    /// The auth worker (none with `--nats-url` unless `--auth-worker`).
    pub auth: Option<Process>,
    /// The presence worker.
    pub presence: Process,
    /// The history worker.
    pub history: Process,
    /// A moderation worker whose allowance no scenario reaches (logins ask it for the
    /// user's standing, as they do in production); the flood scenario starts one with
    /// the contract's allowance beside it.
    pub moderation: Process,
    /// The sizes of this run.
    pub sizes: Sizes,
    /// The progress line.
    pub progress: Progress,
    /// Prefix of every room of this run, so that runs against one server never meet.
    tag: String,
    /// Chat users registered (or found registered) in this run.
    registered: Mutex<HashSet<String>>,
    /// Bounds the chat logins with the password in flight.
    logins: Semaphore,
}

/// The byte cap of the rooms the bench's presence worker creates: the default (1 MiB,
/// sized so that a server holds 10,000 rooms, which the rooms scenario makes), or, when
/// the history scenario runs, enough for its room of `history_messages`: a room at its
/// cap discards its oldest messages, which the replay would then miss.
pub fn room_max_bytes(settings: &Settings) -> i64 {
    const MIB: i64 = 1024 * 1024;
    let default = chat_runtime::storage::DEFAULT_ROOM_MAX_BYTES;
    if !settings.scenarios.contains(&Scenario::History) {
        return default;
    }
    // A stored chat message: its text (escaped, at most 6 bytes a character), the JSON
    // fields, subject and headers, and the store's framing: well under 1 KiB more.
    let per_message = 6 * settings.sizes.text_chars as i64 + 1024;
    let room = settings.sizes.history_messages as i64 * per_message;
    default.max((room + MIB - 1) / MIB * MIB)
}

impl Stage {
    /// Starts the server (unless `settings.nats_url` is given) and the workers (the
    /// auth worker only on the bench's own server or when asked), and waits until every
    /// worker answers.
    pub async fn start(
        settings: &Settings,
        bins: Binaries,
        progress: Progress,
    ) -> Result<Self, BenchError> {
        let sizes = settings.sizes.clone();
        // The real auth-worker binary runs as a child below, not in-process. So do the
        // moderation workers.
        let options = StackOptions {
            auth_workers: 0,
            moderation_workers: 0,
            ..StackOptions::default()
        };
        let server = match (&settings.nats_url, settings.cluster) {
            (Some(_), _) => None,
            (None, Some(nodes)) => {
                progress.phase(format!("starting a {nodes}-node TLS cluster"));
                // Blocking, and the cluster is not `Send`: it stays on this task.
                Some(Servers::Cluster(tokio::task::block_in_place(|| {
                    test_support::run_cluster_with(nodes, options)
                })))
            }
            (None, None) => {
                progress.phase("starting nats-server");
                let server =
                    tokio::task::spawn_blocking(move || test_support::run_server_with(options))
                        .await
                        .map_err(|e| {
                            BenchError::Spawn("nats-server".into(), std::io::Error::other(e))
                        })?;
                Some(Servers::Single(server))
            }
        };
        let (url, secrets, ca) = match &server {
            None => (
                settings.nats_url.clone().expect("no server without a URL"),
                settings.secrets_dir.clone(),
                None,
            ),
            Some(Servers::Single(server)) => {
                (server.url(), server.secrets_dir().to_path_buf(), None)
            }
            Some(Servers::Cluster(cluster)) => (
                cluster.url(),
                cluster.secrets_dir().to_path_buf(),
                Some(cluster.ca().to_path_buf()),
            ),
        };
        let admin_file = password_file(&secrets, static_users::ADMIN);
        let admin = Credentials::from_file(static_users::ADMIN, &admin_file)
            .map_err(|e| BenchError::Secret(admin_file, e))?;
        let logs = tempfile::Builder::new()
            .prefix("chat-bench-")
            .disable_cleanup(std::env::var_os("CHAT_BENCH_KEEP_LOGS").is_some())
            .tempdir()
            .map_err(|e| BenchError::Spawn("log directory".into(), e))?;
        let worker = |name: &str, bin: &Path, user: &str, args: &[&str], level: &str| {
            let password = password_file(&secrets, user);
            let mut env: Vec<(&str, &OsStr)> = vec![
                ("NATS_USER", OsStr::new(user)),
                ("NATS_PASSWORD_FILE", password.as_os_str()),
                ("LOG_LEVEL", OsStr::new(level)),
            ];
            if let Some(ca) = &ca {
                env.push(("NATS_CA", ca.as_os_str()));
            }
            let mut all = vec!["--nats-url", url.as_str()];
            all.extend_from_slice(args);
            Process::spawn(
                name,
                bin,
                &all,
                &env,
                logs.path(),
                (Stdio::null(), Stdio::null()),
            )
            .map_err(|e| BenchError::Spawn(name.into(), e))
        };
        let auth = if server.is_some() || settings.auth_worker {
            progress.phase("starting the auth worker");
            let seed = secrets.join("issuer.seed");
            let seed = seed.to_string_lossy();
            Some(worker(
                "auth-worker",
                &bins.auth,
                static_users::AUTH,
                // The bench registers its users (up to thousands) from one host:
                // its own auth worker does not throttle them (docs/limits.md).
                &[
                    "--issuer-seed-file",
                    &seed,
                    "--register-burst",
                    BENCH_REGISTER_BURST,
                ],
                AUTH_LOG_LEVEL,
            )?)
        } else {
            None
        };
        progress.phase("starting the presence and history workers");
        let ttl = sizes.presence_ttl_secs.to_string();
        let cap = room_max_bytes(settings).to_string();
        let presence = worker(
            "presence-worker",
            &bins.presence,
            static_users::PRESENCE,
            &["--ttl", &ttl, "--stream-max-bytes", &cap],
            "warn",
        )?;
        let history = worker(
            "history-worker",
            &bins.history,
            static_users::HISTORY,
            &[],
            "warn",
        )?;
        let sys_password = password_file(&secrets, static_users::MODERATION_SYS);
        let sys_password = sys_password.to_string_lossy();
        let moderation = worker(
            "moderation-worker",
            &bins.moderation,
            static_users::MODERATION,
            &[
                "--burst",
                "1000000000",
                "--per-second",
                "1000000000",
                "--sys-password-file",
                &sys_password,
            ],
            "warn",
        )?;
        let tag = SessionId::random().to_string()[..6].to_string();
        let stage = Self {
            server,
            url,
            ca,
            secrets,
            admin,
            bins,
            logs,
            auth,
            presence,
            history,
            moderation,
            sizes,
            progress,
            tag,
            registered: Mutex::new(HashSet::new()),
            logins: Semaphore::new(LOGIN_CONCURRENCY),
        };
        stage.wait_for_auth().await?;
        stage.wait_for_workers().await?;
        Ok(stage)
    }

    /// Waits until registrations are answered (the auth worker, ours or the stack's,
    /// is up), registering the probe user on the way.
    async fn wait_for_auth(&self) -> Result<(), BenchError> {
        self.progress.phase("waiting for the auth worker");
        let deadline = Instant::now() + PATIENCE;
        loop {
            match self.register_one("probe").await {
                Ok(()) => {
                    self.registered_names().insert("probe".into());
                    return Ok(());
                }
                Err(err) if Instant::now() > deadline => {
                    let log = match &self.auth {
                        Some(auth) => log_tail(&auth.log),
                        None => "(not started by the bench: see --auth-worker)".into(),
                    };
                    return Err(BenchError::NotReady(
                        "auth-worker".into(),
                        format!("{err}\n{log}"),
                    ));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    fn registered_names(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.registered.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers chat user `name` with [`password_of`]; a name already taken is fine
    /// (the login that follows tells whether the password is that one).
    async fn register_one(&self, name: &str) -> Result<(), BenchError> {
        let timeout = Duration::from_secs(30);
        let ca = self.ca.as_deref();
        match login::register_trusting(&self.url, ca, name, &password_of(name), timeout).await {
            Ok(_) => Ok(()),
            Err(AccountError::Request(RequestError::Refused(_, why))) if why.contains("taken") => {
                Ok(())
            }
            Err(err) => Err(BenchError::Register(name.into(), err.to_string())),
        }
    }

    /// Registers every one of `names` not yet registered in this run, a few at a time.
    /// Never timed: each costs an argon2 hash in the auth worker.
    pub async fn register(
        &self,
        names: impl IntoIterator<Item = String>,
    ) -> Result<(), BenchError> {
        let todo: Vec<String> = {
            let done = self.registered_names();
            names.into_iter().filter(|n| !done.contains(n)).collect()
        };
        if todo.len() > 1 {
            self.progress
                .update(format!("registering {} users (not timed)", todo.len()));
        }
        futures::stream::iter(todo)
            .map(|name| async move { self.register_one(&name).await.map(|()| name) })
            .buffer_unordered(REGISTER_CONCURRENCY)
            .try_for_each(|name| {
                self.registered_names().insert(name);
                futures::future::ready(Ok(()))
            })
            .await
    }

    /// Kills the bench's own nats-server (every node of its cluster at once) and starts
    /// it again on the same port with the same store (clients and workers reconnect by
    /// themselves). Returns false, doing nothing, with `--nats-url`.
    pub async fn restart_server(&mut self) -> Result<bool, BenchError> {
        match self.server.take() {
            None => return Ok(false),
            Some(Servers::Single(mut server)) => {
                let server = tokio::task::spawn_blocking(move || {
                    server.restart();
                    server
                })
                .await
                .map_err(|e| BenchError::Spawn("nats-server".into(), std::io::Error::other(e)))?;
                self.server = Some(Servers::Single(server));
            }
            Some(Servers::Cluster(mut cluster)) => {
                tokio::task::block_in_place(|| cluster.restart_all());
                self.server = Some(Servers::Cluster(cluster));
            }
        }
        Ok(true)
    }

    /// Kills node `node` (0-based) of the bench's own cluster and starts it again on
    /// the same ports and store, returning once it accepts connections. Returns false,
    /// doing nothing, without a cluster.
    pub fn restart_node(&mut self, node: usize) -> bool {
        let Some(Servers::Cluster(cluster)) = &mut self.server else {
            return false;
        };
        tokio::task::block_in_place(|| {
            cluster.kill(node);
            cluster.start(node);
        });
        true
    }

    /// The process id of the bench's own nats-server (of the first node of its
    /// cluster; none with `--nats-url`).
    pub fn server_pid(&self) -> Option<u32> {
        self.server_pids().first().copied().flatten()
    }

    /// The process id of each of the bench's own servers: one for a single server,
    /// one per node of a cluster (none while a node is down), none with `--nats-url`.
    pub fn server_pids(&self) -> Vec<Option<u32>> {
        match &self.server {
            None => Vec::new(),
            Some(Servers::Single(server)) => vec![server.pid()],
            Some(Servers::Cluster(cluster)) => (0..cluster.len()).map(|n| cluster.pid(n)).collect(),
        }
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

    /// The options of a session of chat user `name` (with [`password_of`]).
    pub fn options(&self, name: &str) -> Result<Options, BenchError> {
        let mut options = Options::new(&self.url, UserName::new(name)?, password_of(name));
        options.tls_ca = self.ca.clone();
        // A slow machine under load must not turn a queued request into a failure.
        options.request_timeout = Duration::from_secs(10);
        // Throughput is measured unpaced: pacing would only measure the allowance.
        options.pacing = None;
        // The terminal client's --publish-window, from the same variable, so that the
        // publish scenario can measure what keeping every sender's order costs.
        if let Some(window) = std::env::var("CHAT_PUBLISH_WINDOW")
            .ok()
            .and_then(|w| w.parse().ok())
        {
            options.retry.window = window;
        }
        Ok(options)
    }

    /// A chat session of user `name` (registered first if this run has not yet),
    /// logged in and connected like the terminal client connects.
    pub async fn chat(&self, name: &str) -> Result<(Chat, mpsc::Receiver<Event>), BenchError> {
        self.register([name.to_string()]).await?;
        let options = self.options(name)?;
        let _slot = self.logins.acquire().await.expect("never closed");
        Ok(Chat::connect(options).await?)
    }

    /// `@admin`'s credentials (every right in `CHAT`).
    pub fn admin(&self) -> &Credentials {
        &self.admin
    }

    /// The file holding static user `user`'s password.
    pub fn password_file(&self, user: &str) -> PathBuf {
        password_file(&self.secrets, user)
    }

    /// A raw async-nats connection as `@admin`, for the baselines.
    pub async fn raw(&self) -> Result<async_nats::Client, BenchError> {
        let options = async_nats::ConnectOptions::with_user_and_password(
            self.admin.user.clone(),
            self.admin.password.clone(),
        );
        chat_runtime::servers::trust(options, self.ca.as_deref())
            .connect(chat_runtime::servers::list(&self.url))
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

/// Whether stream `name` of a cluster has a leader and every replica online and
/// current (false if it does not answer).
pub async fn replicas_current(js: &async_nats::jetstream::Context, name: &str) -> bool {
    let Ok(stream) = js.get_stream(name).await else {
        return false;
    };
    stream
        .cached_info()
        .cluster
        .as_ref()
        .is_some_and(|c| c.leader.is_some() && c.replicas.iter().all(|r| r.current && !r.offline))
}

/// Polls `check` every `every` until it is true or [`PATIENCE`] runs out.
pub async fn poll_until<F, Fut>(every: Duration, what: &str, check: F) -> Result<(), BenchError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    poll_within(PATIENCE, every, what, check).await
}

/// [`poll_until`] with a patience of its own.
pub async fn poll_within<F, Fut>(
    patience: Duration,
    every: Duration,
    what: &str,
    mut check: F,
) -> Result<(), BenchError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + patience;
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
