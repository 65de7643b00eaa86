//! # test-support: the real chat stack for every test
//!
//! Tests of this workspace never mock NATS. [`run_server`] starts, per test, what
//! `scripts/up` starts for people, on random loopback ports with a temporary store:
//! nats-server with the project's configuration (rendered from
//! `nats/nats-server.conf.template` by `chat-admin`, with freshly made secrets: the
//! accounts, the static worker users, the auth callout), one auth worker and one
//! moderation worker (with an allowance no other test reaches; see
//! [`StackOptions::moderation`]). Dropping the returned [`NatsServer`] kills them and
//! deletes the store.
//!
//! Everyone connects as somebody: [`NatsServer::client`] is the operator (`@admin`),
//! [`NatsServer::presence_client`] and [`NatsServer::history_client`] are the workers'
//! least-privilege users, and [`NatsServer::user_client`] registers a chat user and
//! logs in as them, with exactly the permissions a real user gets.
//!
//! [`flood`] sends many requests at once and counts what came back (served, refused
//! by code, unanswered): how the tests prove that each worker stays bounded.
//!
//! [`run_cluster`] starts a cluster of nats-servers instead (the same configuration
//! with the cluster section, TLS on every listener), whose nodes a test can kill and
//! restart.
//!
//! The crates' own test helpers live here too, so that each is compiled once as a
//! library instead of once per test file: [`presence`] (workers with short TTLs,
//! requests, the room streams' events), [`history`] (rooms filled straight into
//! their streams, page requests), [`client`] (chats, events awaited, workers
//! in-process, the `chat-client` binary in `--json` mode), [`tui`] (a full-screen
//! UI state with a fixed clock and known events) and [`moderation`] (the contract's
//! allowance, a raw flooder, standings and commands).
//!
//! The nats-server binary is found by `scripts/nats-server-path`, the same script the
//! README's commands use, so tests and people run the same pinned server. A starting
//! server is waited for up to [`SERVER_START_PATIENCE`] (it listens only once it has
//! recovered its streams), and the rooms the helpers make keep
//! [`TEST_ROOM_MAX_BYTES`], more than the default cap, so that long replays stay whole.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use chat_admin::config::{self, ServerConfig};
use chat_admin::secrets::{password_file, Secrets};
use chat_protocol::auth::{self, static_users};
use chat_protocol::UserName;
use chat_runtime::Credentials;

pub mod client;
pub mod cluster;
pub mod flood;
pub mod history;
pub mod moderation;
pub mod presence;
pub mod tui;
pub use cluster::{run_cluster, run_cluster_with, Cluster};
pub use flood::{flood, padded, Flood};

/// The byte cap of the room streams tests make (through the in-process presence workers
/// of [`presence`] and [`client`], and the rooms filled by [`history`] and
/// [`moderation`]): 16 MiB, above the default of 1 MiB
/// ([`chat_runtime::storage::DEFAULT_ROOM_MAX_BYTES`], sized so that one server holds
/// 10,000 rooms), because tests replay rooms of up to 20,000 messages in full and a
/// room at its cap discards its oldest. The storage tests set a small cap of their own.
pub const TEST_ROOM_MAX_BYTES: i64 = 16 * 1024 * 1024;

/// The room stream settings of tests: the defaults with [`TEST_ROOM_MAX_BYTES`].
pub fn room_settings() -> chat_runtime::storage::RoomStreamSettings {
    chat_runtime::storage::RoomStreamSettings {
        max_bytes: TEST_ROOM_MAX_BYTES,
        ..Default::default()
    }
}

/// The nats-server binary, found (and if needed installed) once per test process.
pub fn nats_server_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/nats-server-path");
        let out = Command::new("bash")
            .arg(&script)
            .stderr(Stdio::inherit())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        assert!(
            out.status.success(),
            "{} failed; see its message above",
            script.display()
        );
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
    })
}

/// A `nats://` URL on loopback where nothing listens (a port bound, then freed): for
/// testing what a program does when NATS is unreachable.
pub fn unreachable_url() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port();
    format!("nats://127.0.0.1:{port}")
}

/// The password tests give chat user `user` (registration rules: 8+ characters, not
/// the name).
pub fn password_of(user: &str) -> String {
    format!("pw-{user}-secret")
}

/// How the stack is set up.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// Auth worker instances started with the server (0: none, logins then fail).
    pub auth_workers: usize,
    /// The auth workers' configuration (login lifetime, ...).
    pub auth: auth_worker::Config,
    /// Port of the web page whose origin may open the WebSocket (`allowed_origins`).
    pub web_port: u16,
    /// Moderation worker instances started with the server (0: none; logins then get
    /// full rights for a short time, standing being unknown).
    pub moderation_workers: usize,
    /// Their configuration. The default allows a burst of a million messages, so that
    /// tests of other things are never rate-limited; moderation tests set the
    /// contract's allowance ([`moderation_worker::Config::default`]).
    pub moderation: moderation_worker::Config,
}

impl Default for StackOptions {
    fn default() -> Self {
        Self {
            auth_workers: 1,
            auth: auth_worker::Config {
                // Tests register many users; keep the hashing bounded but parallel.
                hash_slots: 4,
                // Every test registers from 127.0.0.1: no throttle unless a test asks.
                register_burst: 1_000_000,
                ..auth_worker::Config::default()
            },
            web_port: 8000,
            moderation_workers: 1,
            moderation: moderation_worker::Config {
                rate: chat_protocol::body::Rate {
                    burst: 1_000_000,
                    per_second: 1_000_000.0,
                },
                ..moderation_worker::Config::default()
            },
        }
    }
}

/// A running stack: nats-server and its auth workers; killed, and the store deleted,
/// on drop.
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    ws_port: u16,
    store: tempfile::TempDir,
    secrets: Secrets,
    options: StackOptions,
    auth_workers: Vec<AuthWorkerHandle>,
    moderation_workers: Vec<WorkerHandle>,
}

/// Starts the stack with one auth worker.
pub fn run_server() -> NatsServer {
    run_server_with(StackOptions::default())
}

/// Starts the stack as `options` say.
pub fn run_server_with(options: StackOptions) -> NatsServer {
    let store = tempfile::tempdir().expect("temporary store");
    let secrets = Secrets::load_or_create(&store.path().join("secrets")).expect("secrets");
    let mut server = NatsServer {
        child: None,
        port: 0,
        ws_port: 0,
        store,
        secrets,
        options,
        auth_workers: Vec::new(),
        moderation_workers: Vec::new(),
    };
    server.spawn();
    for _ in 0..server.options.auth_workers {
        let worker = server.start_auth_worker();
        server.auth_workers.push(worker);
    }
    for _ in 0..server.options.moderation_workers {
        let worker = server.start_moderation_worker();
        server.moderation_workers.push(worker);
    }
    server
}

impl NatsServer {
    fn spawn(&mut self) {
        let ports_dir = self.store.path().join("ports");
        let _ = std::fs::remove_dir_all(&ports_dir);
        std::fs::create_dir_all(&ports_dir).expect("ports dir");
        let port = if self.port == 0 { -1 } else { self.port as i32 };
        let conf = self.store.path().join("nats-server.conf");
        let log = self.store.path().join("nats-server.log");
        let ws_port = if self.ws_port == 0 {
            -1
        } else {
            self.ws_port as i32
        };
        let mut server_config = ServerConfig::local(self.store.path(), port, -1, ws_port);
        server_config.web_port = self.options.web_port;
        let text = server_config
            .render(&self.secrets)
            .expect("the template renders");
        config::write(&conf, &text).expect("write the server configuration");
        let child = Command::new(nats_server_bin())
            .arg("-c")
            .arg(&conf)
            .arg("--ports_file_dir")
            .arg(&ports_dir)
            .stdout(Stdio::null())
            .stderr(server_log(&log))
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
        let child = self.child.as_mut().expect("just started");
        (self.port, self.ws_port) = wait_for_ports(&ports_dir, child, &log);
        if let Err(failed) = wait_until_accepting(self.port, child, &log) {
            panic!("{failed}");
        }
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The port it listens on (kept across [`NatsServer::restart`]).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `ws://127.0.0.1:<port>`: the WebSocket listener for browsers (kept across
    /// [`NatsServer::restart`]; pages may connect from `StackOptions::web_port`'s
    /// origin only).
    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.ws_port)
    }

    /// Its process id while it runs, to measure it (the benchmark reads its CPU time).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The folder of the stack's secrets (issuer seed, static users' password files).
    pub fn secrets_dir(&self) -> &Path {
        self.secrets.dir()
    }

    /// The file holding static user `user`'s password (for worker processes:
    /// `NATS_PASSWORD_FILE`).
    pub fn password_file(&self, user: &str) -> PathBuf {
        password_file(self.secrets.dir(), user)
    }

    /// The issuer account key the auth workers sign with.
    pub fn issuer(&self) -> nkeys::KeyPair {
        self.secrets.issuer()
    }

    /// The credentials of static user `user` (one of [`static_users::ALL`]).
    pub fn credentials(&self, user: &str) -> Credentials {
        Credentials {
            user: user.to_string(),
            password: self.secrets.password(user).to_string(),
        }
    }

    /// A client connected as static user `user`.
    pub async fn client_as(&self, user: &str) -> async_nats::Client {
        async_nats::ConnectOptions::with_user_and_password(
            user.to_string(),
            self.secrets.password(user).to_string(),
        )
        .connect(self.url())
        .await
        .unwrap_or_else(|e| panic!("connect as {user}: {e}"))
    }

    /// A client with every right in `CHAT` (`@admin`): what tests use to look at or
    /// set up the chat's state from outside.
    pub async fn client(&self) -> async_nats::Client {
        self.client_as(static_users::ADMIN).await
    }

    /// A JetStream context on a fresh `@admin` client.
    pub async fn jetstream(&self) -> async_nats::jetstream::Context {
        async_nats::jetstream::new(self.client().await)
    }

    /// A client as the presence worker's user (`@presence`).
    pub async fn presence_client(&self) -> async_nats::Client {
        self.client_as(static_users::PRESENCE).await
    }

    /// A client as the history worker's user (`@history`).
    pub async fn history_client(&self) -> async_nats::Client {
        self.client_as(static_users::HISTORY).await
    }

    /// Registers chat user `user` with [`password_of`] (through the real registration,
    /// as a guest); a name already registered is fine. Returns the password.
    pub async fn register(&self, user: &str) -> String {
        let password = password_of(user);
        let guest = async_nats::connect(self.url())
            .await
            .expect("connect as a guest (is an auth worker running?)");
        let body = serde_json::json!({ "user": user, "password": password });
        let reply = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                match guest.request(auth::REGISTER, body.to_string().into()).await {
                    Ok(reply) => return reply,
                    // An auth worker just started may not be subscribed yet.
                    Err(error) if error.kind() == async_nats::RequestErrorKind::NoResponders => {
                        tokio::time::sleep(Duration::from_millis(50)).await
                    }
                    Err(error) => panic!("registering {user}: {error}"),
                }
            }
        })
        .await
        .expect("registration answered in time");
        let text = String::from_utf8_lossy(&reply.payload);
        assert!(
            text.contains("\"ok\":true") || text.contains("taken"),
            "registering {user}: {text}"
        );
        password
    }

    /// A raw client logged in as chat user `user` (registered first if needed), with
    /// the inbox prefix its permissions require: exactly what that user may do.
    pub async fn user_client(&self, user: &str) -> async_nats::Client {
        let password = self.register(user).await;
        let name = UserName::new(user).expect("a valid user name");
        async_nats::ConnectOptions::with_user_and_password(user.to_string(), password)
            .custom_inbox_prefix(auth::inbox_prefix(&name))
            .connect(self.url())
            .await
            .unwrap_or_else(|e| panic!("log in as {user}: {e}"))
    }

    /// Starts one more auth worker instance (in-process, on its own runtime thread),
    /// running until the handle is dropped (which kills it, as a crash would).
    pub fn start_auth_worker(&self) -> AuthWorkerHandle {
        AuthWorkerHandle::start(
            self.url(),
            self.credentials(static_users::AUTH),
            self.secrets.issuer(),
            self.options.auth.clone(),
        )
    }

    /// Starts one more moderation worker instance (in-process, on its own runtime
    /// thread) with the stack's moderation configuration, running until the handle is
    /// dropped (which kills it, as a crash would).
    pub fn start_moderation_worker(&self) -> WorkerHandle {
        WorkerHandle::start_moderation(
            self.url(),
            self.credentials(static_users::MODERATION),
            self.credentials(static_users::MODERATION_SYS),
            self.options.moderation.clone(),
        )
    }

    /// Kills the moderation workers started with the server.
    pub fn kill_moderation_workers(&mut self) {
        self.moderation_workers.clear();
    }

    /// Kills the auth workers started with the server.
    pub fn kill_auth_workers(&mut self) {
        self.auth_workers.clear();
    }

    /// Kills the server (as a crash would), keeping its store.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes the server (SIGSTOP): connections stay open but nothing is answered,
    /// as with a hung server or a network partition.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a paused server run again (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self.pid().expect("the server runs").to_string();
        let status = Command::new("kill")
            .args([signal, &pid])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} {pid} failed");
    }

    /// Starts the server again on the same port with the same store and secrets.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.moderation_workers.clear();
        self.auth_workers.clear();
        self.stop();
    }
}

/// A worker running on its own thread and runtime, so that a test blocking its own
/// runtime (or several tests' runtimes) never stalls it. Dropping it kills it (its
/// connections close, as in a crash).
pub struct WorkerHandle {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// An auth worker on its own thread ([`WorkerHandle`]).
pub type AuthWorkerHandle = WorkerHandle;

impl WorkerHandle {
    /// Runs the worker that `start` starts (and returns) on a thread named `name`,
    /// until the handle is dropped; returns once it has started.
    fn spawn<F, Fut, W>(name: &str, start: F) -> Self
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = W>,
        W: 'static,
    {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("a runtime for the worker");
                runtime.block_on(async move {
                    let worker = start().await;
                    let _ = ready_tx.send(());
                    let _ = stop_rx.await;
                    drop(worker);
                });
                // Its connections are closed when this returns: the worker is gone.
                runtime.shutdown_timeout(Duration::from_secs(5));
            })
            .expect("spawn the worker thread");
        ready_rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("the {name} started in time"));
        Self {
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    fn start(
        url: String,
        credentials: Credentials,
        issuer: nkeys::KeyPair,
        config: auth_worker::Config,
    ) -> Self {
        Self::start_trusting(url, None, credentials, issuer, config)
    }

    /// [`AuthWorkerHandle::start`] connecting to the servers of `url` (comma-separated)
    /// and trusting the CA in `ca`.
    fn start_trusting(
        url: String,
        ca: Option<PathBuf>,
        credentials: Credentials,
        issuer: nkeys::KeyPair,
        config: auth_worker::Config,
    ) -> Self {
        Self::spawn("auth-worker", move || async move {
            let client = chat_runtime::connect_trusting(
                &url,
                ca.as_deref(),
                "auth-worker (test)",
                Some(&credentials),
                Duration::from_secs(20),
            )
            .await
            .expect("the auth worker connects");
            auth_worker::AuthWorker::start(client, issuer, config)
                .await
                .expect("the auth worker starts")
        })
    }

    /// A moderation worker on the stack at `url`, with its three connections
    /// (`@moderation` twice, `@moderation_sys`).
    fn start_moderation(
        url: String,
        chat: Credentials,
        system: Credentials,
        config: moderation_worker::Config,
    ) -> Self {
        Self::spawn("moderation-worker", move || async move {
            let connect = |name, credentials| {
                let url = url.clone();
                async move {
                    chat_runtime::connect(&url, name, Some(&credentials), Duration::from_secs(20))
                        .await
                        .expect("the moderation worker connects")
                }
            };
            let links = moderation_worker::Links {
                chat: connect("moderation-worker (test)", chat.clone()).await,
                counting: connect("moderation-worker counting (test)", chat).await,
                system: connect("moderation-worker system (test)", system).await,
            };
            moderation_worker::ModerationWorker::start(links, config)
                .await
                .expect("the moderation worker starts")
        })
    }
}

impl Drop for WorkerHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// How long a starting nats-server may take to listen: generous, because the server
/// opens its client port only once JetStream has recovered every stream in its store
/// (each stream's configuration and the state of its last block), so the start-up of a
/// server holding many rooms grows with them: 10,000 rooms took over 20 s on the
/// loaded 2-core development machine (BENCHMARKS.md, "Scale of rooms"). A server that
/// fails to start is still seen at once: the wait ends when the process exits.
pub const SERVER_START_PATIENCE: Duration = Duration::from_secs(300);

/// Where a test's nats-server writes its log: the test's own output with
/// `NATS_SERVER_LOG=1`, otherwise the file `log` (appended to across restarts), whose
/// end is shown if the server fails to start.
pub(crate) fn server_log(log: &Path) -> Stdio {
    if std::env::var_os("NATS_SERVER_LOG").is_some() {
        return Stdio::inherit();
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map(Stdio::from)
        .unwrap_or_else(|_| Stdio::null())
}

/// A nats-server that exited while it was being waited for: why, from its log.
#[derive(Debug)]
pub(crate) struct StartFailed(String);

impl std::fmt::Display for StartFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// An error if `child` (a nats-server being waited for) has exited: its start failed,
/// and the end of its log (`log`) says why.
fn still_running(child: &mut Child, log: &Path) -> Result<(), StartFailed> {
    match child.try_wait() {
        Ok(Some(status)) => {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(10)..].join("\n");
            Err(StartFailed(format!(
                "nats-server exited while starting ({status}); the end of its log:\n{tail}"
            )))
        }
        _ => Ok(()),
    }
}

/// The client and WebSocket ports nats-server wrote into its ports file (once it
/// listens), waiting at most [`SERVER_START_PATIENCE`].
fn wait_for_ports(dir: &Path, child: &mut Child, log: &Path) -> (u16, u16) {
    let port = |v: &serde_json::Value, key: &str| -> Option<u16> {
        v[key][0].as_str()?.rsplit(':').next()?.parse().ok()
    };
    let deadline = Instant::now() + SERVER_START_PATIENCE;
    while Instant::now() < deadline {
        if let Some(ports) = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .filter_map(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
            .filter_map(|v| Some((port(&v, "nats")?, port(&v, "websocket")?)))
            .next()
        {
            return ports;
        }
        if let Err(failed) = still_running(child, log) {
            panic!("{failed}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("nats-server did not report its port within {SERVER_START_PATIENCE:?}");
}

/// Waits (at most [`SERVER_START_PATIENCE`]) until nats-server `child` accepts
/// connections on `port`; an error if it exits first.
pub(crate) fn wait_until_accepting(
    port: u16,
    child: &mut Child,
    log: &Path,
) -> Result<(), StartFailed> {
    let deadline = Instant::now() + SERVER_START_PATIENCE;
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        still_running(child, log)?;
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("nats-server is not accepting connections on port {port}");
}

/// The `$SRV.STATS` replies of the `instances` running instances of NATS service
/// `service`, one JSON object each, so that tests can check how work was shared or
/// counted across instances.
pub async fn service_stats(
    client: &async_nats::Client,
    service: &str,
    instances: usize,
) -> Vec<serde_json::Value> {
    use futures::StreamExt;
    let inbox = client.new_inbox();
    let mut replies = client.subscribe(inbox.clone()).await.expect("subscribe");
    client
        .publish_with_reply(format!("$SRV.STATS.{service}"), inbox, "".into())
        .await
        .expect("publish the stats request");
    let mut out = Vec::new();
    while out.len() < instances {
        let reply = tokio::time::timeout(Duration::from_secs(10), replies.next())
            .await
            .expect("every instance answers $SRV.STATS in time")
            .expect("subscription open");
        out.push(serde_json::from_slice(&reply.payload).expect("stats are JSON"));
    }
    out
}
