//! # test-support: a real nats-server for every test
//!
//! Tests of this workspace never mock NATS. [`run_server`] starts a fresh nats-server
//! with JetStream on a random loopback port and a temporary store; dropping the
//! returned [`NatsServer`] kills it and deletes the store. The binary is found by
//! `scripts/nats-server-path`, the same script the README's commands use, so tests
//! and people run the same pinned server.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

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

/// A running nats-server; killed, and its store deleted, on drop.
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    store: tempfile::TempDir,
}

/// Starts a nats-server with JetStream on a random port and a temporary store.
pub fn run_server() -> NatsServer {
    let store = tempfile::tempdir().expect("temporary store");
    let mut server = NatsServer {
        child: None,
        port: 0,
        store,
    };
    server.spawn();
    server
}

impl NatsServer {
    fn spawn(&mut self) {
        let ports_dir = self.store.path().join("ports");
        let _ = std::fs::remove_dir_all(&ports_dir);
        std::fs::create_dir_all(&ports_dir).expect("ports dir");
        let port = if self.port == 0 {
            "-1".to_string()
        } else {
            self.port.to_string()
        };
        let child = Command::new(nats_server_bin())
            .args(["-a", "127.0.0.1", "-p", &port, "-js", "-sd"])
            .arg(self.store.path().join("jetstream"))
            .arg("--ports_file_dir")
            .arg(&ports_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
        self.port = wait_for_port(&ports_dir);
        wait_until_accepting(self.port);
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The port it listens on (kept across [`NatsServer::restart`]).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its process id while it runs, to measure it (the benchmark reads its CPU time).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// A connected client.
    pub async fn client(&self) -> async_nats::Client {
        async_nats::connect(self.url())
            .await
            .expect("connect to test nats-server")
    }

    /// A JetStream context on a fresh client.
    pub async fn jetstream(&self) -> async_nats::jetstream::Context {
        async_nats::jetstream::new(self.client().await)
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

    /// Starts the server again on the same port with the same store.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn wait_for_port(dir: &Path) -> u16 {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Some(port) = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .filter_map(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
            .filter_map(|v| v["nats"][0].as_str()?.rsplit(':').next()?.parse().ok())
            .next()
        {
            return port;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("nats-server did not report its port within 20 s");
}

fn wait_until_accepting(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
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
