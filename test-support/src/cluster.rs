//! [`run_cluster`]: a cluster of real nats-servers for a test, with the project's
//! configuration (`chat-admin`'s template with the cluster section), TLS on every
//! listener (a CA and certificate made by `chat-admin`'s `tls` module), random
//! loopback ports and a temporary store per node, and one auth worker. Nodes can be
//! killed (-9) and restarted on the same ports and store, one at a time or all at once
//! ([`Cluster::restart_all`]); dropping the [`Cluster`] kills everything.

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

/// One node: its process while it runs, its fixed ports, configuration and log.
struct Node {
    child: Option<Child>,
    port: u16,
    route_port: u16,
    conf: PathBuf,
    log: PathBuf,
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

/// How many times a new cluster is tried on fresh ports: a port picked free can be
/// taken by another process (a test's server on a random port) before the node binds
/// it, and the node then exits at once.
const START_ATTEMPTS: usize = 3;

/// `count` distinct free loopback ports (bound together, then freed: another process
/// could take one meanwhile, which [`START_ATTEMPTS`] covers).
fn free_ports(count: usize) -> Vec<u16> {
    let listeners: Vec<std::net::TcpListener> = (0..count)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("a free loopback port"))
        .collect();
    listeners
        .iter()
        .map(|listener| listener.local_addr().expect("a bound port").port())
        .collect()
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
    // As the auth worker process chooses on a cluster: the user table survives a node.
    options.auth.kv_replicas = chat_runtime::replicas::CLUSTER_REPLICAS.min(nodes);
    let mut cluster = Cluster {
        nodes: Vec::new(),
        dir,
        secrets,
        tls,
        options,
        auth_workers: Vec::new(),
        _turn: turn,
    };
    for attempt in 1..=START_ATTEMPTS {
        cluster.nodes = cluster.configure(nodes, attempt);
        match (0..nodes).try_for_each(|node| cluster.try_start(node)) {
            Ok(()) => break,
            Err(failed) if attempt < START_ATTEMPTS => {
                eprintln!("cluster start {attempt} failed, trying fresh ports: {failed}");
                (0..nodes).for_each(|node| cluster.kill(node));
            }
            Err(failed) => panic!("{failed}"),
        }
    }
    cluster.wait_for_jetstream();
    for _ in 0..cluster.options.auth_workers {
        let worker = cluster.start_auth_worker();
        cluster.auth_workers.push(worker);
    }
    cluster
}

impl Cluster {
    /// Configurations for `nodes` nodes on fresh ports, with stores and logs in a
    /// folder of their own for start `attempt`.
    fn configure(&self, nodes: usize, attempt: usize) -> Vec<Node> {
        let run_dir = self.dir.path().join(format!("start-{attempt}"));
        let ports = free_ports(2 * nodes);
        let (ports, route_ports) = ports.split_at(nodes);
        let routes: Vec<String> = route_ports
            .iter()
            .map(|route| format!("127.0.0.1:{route}"))
            .collect();
        let mut base = ServerConfig::local(&run_dir, 0, -1, -1);
        base.tls = Some(self.tls.clone());
        (0..nodes)
            .map(|i| {
                let mut server = ServerConfig::local_node(&base, &run_dir, nodes, i + 1, 0);
                server.port = i32::from(ports[i]);
                if let Some(cluster) = server.cluster.as_mut() {
                    cluster.route_port = i32::from(route_ports[i]);
                    cluster.routes = routes.clone();
                }
                std::fs::create_dir_all(&run_dir).expect("the start's folder");
                let conf = run_dir.join(format!("nats-{}.conf", i + 1));
                let text = server.render(&self.secrets).expect("the template renders");
                config::write(&conf, &text).expect("write the node's configuration");
                Node {
                    child: None,
                    port: ports[i],
                    route_port: route_ports[i],
                    conf,
                    log: run_dir.join(format!("nats-{}.log", i + 1)),
                }
            })
            .collect()
    }

    /// Starts node `node` (0-based), which must not run, and waits until it accepts
    /// connections from clients and other nodes.
    pub fn start(&mut self, node: usize) {
        if let Err(failed) = self.try_start(node) {
            panic!("{failed}");
        }
    }

    fn try_start(&mut self, node: usize) -> Result<(), crate::StartFailed> {
        self.spawn(node);
        self.wait_until_accepting(node)
    }

    /// Kills every node (SIGKILL: a power cut of the whole cluster, as far as the store
    /// can tell) and starts them all again at once, on the same ports and stores;
    /// returns once each accepts connections. JetStream may still be recovering: see
    /// [`Cluster::wait_for_jetstream`].
    pub fn restart_all(&mut self) {
        (0..self.len()).for_each(|node| self.kill(node));
        (0..self.len()).for_each(|node| self.spawn(node));
        for node in 0..self.len() {
            if let Err(failed) = self.wait_until_accepting(node) {
                panic!("{failed}");
            }
        }
    }

    /// Starts node `node`'s process, which must not run.
    fn spawn(&mut self, node: usize) {
        let n = &mut self.nodes[node];
        assert!(n.child.is_none(), "node {node} already runs");
        let child = Command::new(crate::nats_server_bin())
            .arg("-c")
            .arg(&n.conf)
            .stdout(Stdio::null())
            .stderr(crate::server_log(&n.log))
            .spawn()
            .expect("start nats-server");
        n.child = Some(child);
    }

    /// Waits until node `node`, just spawned, accepts connections from clients and
    /// other nodes; an error if it exits first.
    fn wait_until_accepting(&mut self, node: usize) -> Result<(), crate::StartFailed> {
        let n = &mut self.nodes[node];
        let child = n.child.as_mut().expect("the node was spawned");
        // The route port last: a node listens for clients before it binds it, and
        // exits if that port is taken.
        crate::wait_until_accepting(n.port, child, &n.log)?;
        crate::wait_until_accepting(n.route_port, child, &n.log)
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

    /// Node `node`'s process id while it runs (to measure it from `/proc`).
    pub fn pid(&self, node: usize) -> Option<u32> {
        self.nodes[node].child.as_ref().map(Child::id)
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
