//! [`run_cluster`]: a cluster of real nats-servers for a test, with the project's
//! configuration (`chat-admin`'s template with the cluster section), TLS on every
//! listener (a CA and certificate made by `chat-admin`'s `tls` module), random
//! loopback ports and a temporary store per node, and one auth worker. Nodes can be
//! killed (-9) and restarted on the same ports and store; dropping the [`Cluster`]
//! kills everything.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chat_admin::config::{self, ServerConfig};
use chat_admin::secrets::{password_file, Secrets};
use chat_admin::tls::{self, TlsFiles};
use chat_protocol::auth::{self, static_users};
use chat_protocol::UserName;
use chat_runtime::servers;
use chat_runtime::Credentials;

use crate::{password_of, AuthWorkerHandle, StackOptions};

/// One node: its process while it runs, its fixed ports and configuration.
struct Node {
    child: Option<Child>,
    port: u16,
    conf: PathBuf,
}

/// A running cluster; every node killed, and the stores deleted, on drop.
pub struct Cluster {
    nodes: Vec<Node>,
    dir: tempfile::TempDir,
    secrets: Secrets,
    tls: TlsFiles,
    options: StackOptions,
    auth_workers: Vec<AuthWorkerHandle>,
    /// Held while the cluster lives: see [`ONE_AT_A_TIME`].
    _turn: std::sync::MutexGuard<'static, ()>,
}

/// One cluster at a time per test process: three TLS servers electing leaders are a
/// heavy load for a small machine, and the route ports are picked free and then
/// released, so clusters started side by side could take each other's ports.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A free loopback port (bound, then freed: another process could take it meanwhile,
/// which on a test machine is rare enough).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}

/// Starts `nodes` nats-servers as one cluster with TLS on every listener, waits until
/// JetStream has a meta leader, and starts one auth worker.
pub fn run_cluster(nodes: usize) -> Cluster {
    run_cluster_with(nodes, StackOptions::default())
}

/// [`run_cluster`] with `options.auth_workers` in-process auth workers (0: none, for
/// a caller running the real binaries) configured by `options.auth` (whose
/// `kv_replicas` is set as the auth worker process chooses on a cluster).
pub fn run_cluster_with(nodes: usize, mut options: StackOptions) -> Cluster {
    // A test that failed while holding the turn poisons the lock; the turn is still free.
    let turn = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let dir = tempfile::tempdir().expect("temporary folder");
    let secrets = Secrets::load_or_create(&dir.path().join("secrets")).expect("secrets");
    let tls = tls::load_or_create(&dir.path().join("tls"), &[]).expect("certificates");
    let ports: Vec<(u16, u16)> = (0..nodes).map(|_| (free_port(), free_port())).collect();
    let routes: Vec<String> = ports
        .iter()
        .map(|(_, route)| format!("127.0.0.1:{route}"))
        .collect();
    let mut base = ServerConfig::local(dir.path(), 0, -1, -1);
    base.tls = Some(tls.clone());
    let nodes: Vec<Node> = ports
        .iter()
        .enumerate()
        .map(|(i, (port, route))| {
            let mut server = ServerConfig::local_node(&base, dir.path(), nodes, i + 1, 0);
            server.port = i32::from(*port);
            if let Some(cluster) = server.cluster.as_mut() {
                cluster.route_port = i32::from(*route);
                cluster.routes = routes.clone();
            }
            let conf = dir.path().join(format!("nats-{}.conf", i + 1));
            let text = server.render(&secrets).expect("the template renders");
            config::write(&conf, &text).expect("write the node's configuration");
            Node {
                child: None,
                port: *port,
                conf,
            }
        })
        .collect();
    // As the auth worker process chooses on a cluster: the user table survives a node.
    options.auth.kv_replicas = chat_runtime::replicas::CLUSTER_REPLICAS.min(nodes.len());
    let mut cluster = Cluster {
        nodes,
        dir,
        secrets,
        tls,
        options,
        auth_workers: Vec::new(),
        _turn: turn,
    };
    for node in 0..cluster.nodes.len() {
        cluster.start(node);
    }
    cluster.wait_for_jetstream();
    for _ in 0..cluster.options.auth_workers {
        let worker = cluster.start_auth_worker();
        cluster.auth_workers.push(worker);
    }
    cluster
}

impl Cluster {
    /// Starts node `node` (0-based), which must not run, and waits until it accepts
    /// connections.
    pub fn start(&mut self, node: usize) {
        let log = std::env::var_os("NATS_SERVER_LOG").is_some();
        let n = &mut self.nodes[node];
        assert!(n.child.is_none(), "node {node} already runs");
        let child = Command::new(crate::nats_server_bin())
            .arg("-c")
            .arg(&n.conf)
            .stdout(Stdio::null())
            .stderr(if log { Stdio::inherit() } else { Stdio::null() })
            .spawn()
            .expect("start nats-server");
        let child = n.child.insert(child);
        crate::wait_until_accepting(n.port, child);
    }

    /// Kills node `node` with SIGKILL (a crash or a power cut, as far as the others
    /// can tell), keeping its store.
    pub fn kill(&mut self, node: usize) {
        if let Some(mut child) = self.nodes[node].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether it has no nodes (never: for clippy).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// `tls://127.0.0.1:<port>` of node `node`.
    pub fn node_url(&self, node: usize) -> String {
        format!("tls://127.0.0.1:{}", self.nodes[node].port)
    }

    /// Every node's URL, comma-separated (what `NATS_URL` holds for a cluster).
    pub fn url(&self) -> String {
        (0..self.nodes.len())
            .map(|n| self.node_url(n))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The CA every node's certificate is signed by (`NATS_CA`).
    pub fn ca(&self) -> &Path {
        &self.tls.ca
    }

    /// The temporary folder holding the configurations, stores, secrets and CA.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The folder of the cluster's secrets (issuer seed, static users' password files).
    pub fn secrets_dir(&self) -> &Path {
        self.secrets.dir()
    }

    /// Whether node `node` runs (it was not killed, or was started again).
    pub fn runs(&self, node: usize) -> bool {
        self.nodes[node].child.is_some()
    }

    /// The file holding static user `user`'s password (`NATS_PASSWORD_FILE`).
    pub fn password_file(&self, user: &str) -> PathBuf {
        password_file(self.secrets.dir(), user)
    }

    /// The credentials of static user `user`.
    pub fn credentials(&self, user: &str) -> Credentials {
        Credentials {
            user: user.to_string(),
            password: self.secrets.password(user).to_string(),
        }
    }

    /// Connection options trusting the cluster's CA, with user and password.
    fn options_as(&self, user: &str, password: &str) -> async_nats::ConnectOptions {
        let options =
            async_nats::ConnectOptions::with_user_and_password(user.into(), password.into());
        servers::trust(options, Some(self.ca()))
    }

    /// A client connected as static user `user` to `url` (one node's, or the list).
    pub async fn client_as(&self, user: &str, url: &str) -> async_nats::Client {
        self.options_as(user, self.secrets.password(user))
            .connect(servers::list(url))
            .await
            .unwrap_or_else(|e| panic!("connect as {user} to {url}: {e}"))
    }

    /// `@admin` connected to any node.
    pub async fn client(&self) -> async_nats::Client {
        self.client_as(static_users::ADMIN, &self.url()).await
    }

    /// Registers chat user `user` with [`password_of`] (a name already taken is fine).
    pub async fn register(&self, user: &str) -> String {
        let password = password_of(user);
        let guest = servers::trust(async_nats::ConnectOptions::new(), Some(self.ca()))
            .connect(servers::list(&self.url()))
            .await
            .expect("connect as a guest");
        let body = serde_json::json!({ "user": user, "password": password });
        let reply = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                // No answer, or the user table unavailable while JetStream elects its
                // leader after a node went or came back: ask again.
                match guest.request(auth::REGISTER, body.to_string().into()).await {
                    Ok(reply)
                        if !String::from_utf8_lossy(&reply.payload).contains("unavailable") =>
                    {
                        return reply
                    }
                    _ => tokio::time::sleep(Duration::from_millis(100)).await,
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

    /// A raw client logged in as chat user `user` (registered first) at `url`.
    pub async fn user_client(&self, user: &str, url: &str) -> async_nats::Client {
        let password = self.register(user).await;
        let name = UserName::new(user).expect("a valid user name");
        self.options_as(user, &password)
            .custom_inbox_prefix(auth::inbox_prefix(&name))
            .connect(servers::list(url))
            .await
            .unwrap_or_else(|e| panic!("log in as {user}: {e}"))
    }

    /// Starts one more auth worker instance (in-process), connected to any node.
    pub fn start_auth_worker(&self) -> AuthWorkerHandle {
        AuthWorkerHandle::start_trusting(
            self.url(),
            Some(self.ca().to_path_buf()),
            self.credentials(static_users::AUTH),
            self.secrets.issuer(),
            self.options.auth.clone(),
        )
    }

    /// Waits until JetStream answers on every node (a meta leader is elected and
    /// each node knows it).
    pub fn wait_for_jetstream(&self) {
        // On a thread of its own: callable from a test's runtime as well as outside one.
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("a runtime")
                        .block_on(self.jetstream_answers())
                })
                .join()
                .expect("waiting for JetStream")
        });
    }

    async fn jetstream_answers(&self) {
        // As long as a single server may take to start: a node recovers its streams
        // before it takes part.
        let deadline = Instant::now() + crate::SERVER_START_PATIENCE;
        for node in 0..self.nodes.len() {
            let client = self
                .client_as(static_users::ADMIN, &self.node_url(node))
                .await;
            let js = async_nats::jetstream::new(client);
            while js.query_account().await.is_err() {
                assert!(
                    Instant::now() < deadline,
                    "JetStream did not become ready on node {node} in time"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.auth_workers.clear();
        for node in 0..self.nodes.len() {
            self.kill(node);
        }
    }
}
