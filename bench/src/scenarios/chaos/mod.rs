//! Scenario chaos (run only with `--only chaos`; not a timed test): members chat
//! across the three nodes of a TLS cluster (as test-support and `scripts/up --cluster 3
//! --tls` make it), with the real auth, presence and history workers, several
//! instances each, while random nodes are killed with SIGKILL and restarted and random
//! worker instances are killed and restarted, for `--chaos-secs`.
//!
//! - Members (`--chaos-members`, each connected to one node, which it leaves for
//!   another when that node dies) send `chaos <n>` at `--chaos-rate` per second each;
//!   a message counts once JetStream acknowledged it.
//! - Churners (`--chaos-churners`) leave the room (closing their session) and come
//!   back, logging in again, over and over: each leave and each join is a presence
//!   transition, of which every member must see exactly one event. Nobody else may be
//!   seen leaving or joining.
//! - One member asks for a history page and `/users` every few seconds.
//!
//! At the end, faults stop, every node and instance runs again, senders wait for their
//! last acknowledgements, and members get time to receive the rest. The report gives
//! acknowledged messages, lost, duplicated and reordered deliveries, joined/left events
//! per transition, and the longest time a member saw no message (see [`tally`]).

pub mod tally;
mod workers;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chat_client::history::Page;
use chat_client::login::{self, AccountError};
use chat_client::service::RequestError;
use chat_client::{Chat, Event, Options};
use chat_protocol::body::{MessageKind, SystemKind};
use chat_protocol::{streams, RoomName, SessionId, UserName};
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use rand::{Rng, SeedableRng};
use test_support::{password_of, Cluster, StackOptions};
use tokio::sync::{mpsc, watch};

use self::tally::Received;
use self::workers::Workers;
use crate::options::Sizes;
use crate::processes::Binaries;
use crate::progress::Progress;
use crate::report::{Row, Target};
use crate::setup::{BenchError, PATIENCE};

/// Nodes of the cluster.
const NODES: usize = 3;
/// Pause between two node kills, and how long a killed node stays down (seconds).
const NODE_PAUSE: std::ops::Range<f64> = 10.0..25.0;
const NODE_DOWN: std::ops::Range<f64> = 5.0..15.0;
/// The same for worker instances.
const WORKER_PAUSE: std::ops::Range<f64> = 4.0..12.0;
const WORKER_DOWN: std::ops::Range<f64> = 1.0..4.0;
/// How long a churner stays in the room before leaving again (seconds).
const CHURN_ONLINE: std::ops::Range<f64> = 5.0..15.0;
/// How often the probing member asks for a history page and `/users`.
const PROBE_EVERY: Duration = Duration::from_secs(5);
/// How long, after the faults stopped, members may take to receive everything.
const SETTLE: Duration = Duration::from_secs(90);
/// How long a restarted node gets to catch up (every replica of the room stream and
/// the buckets current) before the next node may be killed: R3 survives one node down,
/// not a second one while the first is still behind.
const CATCH_UP: Duration = Duration::from_secs(60);

/// Shared between the tasks of the run.
#[derive(Default)]
struct Shared {
    /// Sender → counters JetStream acknowledged.
    acked: Mutex<BTreeMap<String, BTreeSet<u64>>>,
    /// Messages given up on (not acknowledged in the publisher's patience).
    unconfirmed: AtomicU64,
    /// Churner → the transitions it went through.
    made: Mutex<BTreeMap<String, Vec<SystemKind>>>,
    /// Logins of churners that failed and were tried again.
    login_retries: AtomicU64,
    /// Probe answers and failures: history pages, `/users`.
    history_ok: AtomicU64,
    history_failed: AtomicU64,
    users_ok: AtomicU64,
    users_failed: AtomicU64,
    /// Events are counted once the chaos starts (not the joins of the setup).
    counting: AtomicBool,
    /// Every fault and recovery, seconds from the start: to tell what a long silence
    /// followed.
    faults: Mutex<Vec<(f64, String)>>,
    /// Restarted nodes that had not caught up within [`CATCH_UP`].
    behind: AtomicU64,
}

impl Shared {
    fn fault(&self, started: Instant, what: String) {
        tracing::info!(at = started.elapsed().as_secs_f64(), "{what}");
        lock(&self.faults).push((started.elapsed().as_secs_f64(), what));
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One chatting member.
struct Member {
    name: String,
    chat: Chat,
    received: Arc<Mutex<Received>>,
}

/// Runs the scenario on a cluster of its own; returns the rows and the nats-server
/// version.
pub async fn run(
    bins: &Binaries,
    sizes: &Sizes,
    progress: &Progress,
) -> Result<(Vec<Row>, String), BenchError> {
    progress.phase("chaos: starting a 3-node TLS cluster");
    let options = StackOptions {
        auth_workers: 0,
        ..StackOptions::default()
    };
    // Blocking (it waits for the nodes and JetStream); the cluster is not `Send`, so it
    // stays on this task and every node kill and restart below blocks in place too.
    let mut cluster =
        tokio::task::block_in_place(|| test_support::run_cluster_with(NODES, options));
    let version = cluster.client().await.server_info().version;
    let logs = tempfile::Builder::new()
        .prefix("chat-bench-chaos-")
        .disable_cleanup(std::env::var_os("CHAT_BENCH_KEEP_LOGS").is_some())
        .tempdir()
        .map_err(|e| BenchError::Spawn("log directory".into(), e))?;
    progress.phase("chaos: starting the workers");
    let ttl = sizes.chaos_ttl_secs;
    let workers = Workers::start(&cluster, bins, sizes.chaos_instances, ttl, logs.path())?;
    let tag = SessionId::random().to_string()[..6].to_string();
    let room = RoomName::new(format!("chaos-{tag}"))?;
    let shared = Arc::new(Shared::default());
    let member_names: Vec<String> = (0..sizes.chaos_members.max(1))
        .map(|i| format!("m{i}-{tag}"))
        .collect();
    let churner_names: Vec<String> = (0..sizes.chaos_churners)
        .map(|i| format!("c{i}-{tag}"))
        .collect();
    progress.phase("chaos: registering users");
    for name in member_names.iter().chain(&churner_names) {
        register(&cluster, name).await?;
    }

    progress.phase("chaos: churners join");
    let (stop_tx, stop) = watch::channel(false);
    let mut churners = Vec::new();
    for name in &churner_names {
        let session = Churner::join(&cluster, name, &room, &shared).await?;
        let stop = stop.clone();
        let room = room.clone();
        let shared = shared.clone();
        let offline = Duration::from_secs(ttl + 10);
        churners.push(tokio::spawn(session.churn(room, offline, stop, shared)));
    }
    progress.phase("chaos: members join");
    let mut members = Vec::new();
    for (i, name) in member_names.iter().enumerate() {
        // Each member on one node (it learns the others from the cluster).
        let url = cluster.node_url(i % NODES);
        let (chat, mut events) = connect(cluster.ca(), &url, name, &shared).await?;
        crate::setup::join(&chat, &mut events, &room).await?;
        let received = Arc::new(Mutex::new(Received::default()));
        tokio::spawn(receive(events, received.clone(), shared.clone()));
        members.push(Member {
            name: name.clone(),
            chat,
            received,
        });
    }

    let duration = Duration::from_secs_f64(sizes.chaos_secs);
    progress.phase(format!(
        "chaos: {} members and {} churners for {:.0} s, nodes and workers killed at random",
        members.len(),
        churners.len(),
        duration.as_secs_f64()
    ));
    shared.counting.store(true, Ordering::SeqCst);
    let started = Instant::now();
    for member in &members {
        lock(&member.received).start_clock(started);
    }
    let senders: Vec<_> = members
        .iter()
        .map(|m| {
            tokio::spawn(send(
                m.chat.clone(),
                room.clone(),
                m.name.clone(),
                sizes.chaos_rate,
                stop.clone(),
                shared.clone(),
            ))
        })
        .collect();
    let probe = tokio::spawn(probe(
        members[0].chat.clone(),
        room.clone(),
        stop.clone(),
        shared.clone(),
    ));
    let deadline = tokio::time::Instant::now() + duration;
    let worker_chaos = tokio::spawn(kill_workers(
        workers,
        deadline,
        progress.clone(),
        started,
        shared.clone(),
    ));
    let replicated = Replicated::new(&cluster, &room).await;
    let node_kills = kill_nodes(
        &mut cluster,
        deadline,
        progress,
        started,
        &shared,
        &replicated,
    )
    .await;
    let (mut workers, worker_kills) = worker_chaos.await.map_err(BenchError::nats)??;
    let ended = Instant::now();
    for member in &members {
        lock(&member.received).stop_clock(ended);
    }

    progress.phase("chaos: faults stopped; last acknowledgements and deliveries");
    let _ = stop_tx.send(true);
    for sender in senders {
        sender.await.map_err(BenchError::nats)?;
    }
    probe.await.map_err(BenchError::nats)?;
    for churner in churners {
        churner.await.map_err(BenchError::nats)??;
    }
    let acked = lock(&shared.acked).clone();
    let made = lock(&shared.made).clone();
    let settled = tokio::time::Instant::now() + SETTLE;
    let (delivery, transitions) = loop {
        let (delivery, transitions) = {
            let received: Vec<_> = members.iter().map(|m| lock(&m.received)).collect();
            let all: Vec<&Received> = received.iter().map(|r| &**r).collect();
            (
                tally::delivery(&acked, &all),
                tally::transitions(&made, &all),
            )
        };
        let done = delivery.lost == 0 && transitions.missing == 0;
        if done || tokio::time::Instant::now() > settled {
            break (delivery, transitions);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let exited = workers.exited();
    let (silent, longest, from) = members
        .iter()
        .map(|m| {
            let received = lock(&m.received);
            (
                m.name.clone(),
                received.longest_silence,
                received.silence_from,
            )
        })
        .max_by_key(|(_, silence, _)| *silence)
        .unwrap_or_default();
    // What happened from 20 s before the silence to its end.
    let (from, to) = (from.as_secs_f64(), (from + longest).as_secs_f64());
    let before: Vec<String> = lock(&shared.faults)
        .iter()
        .filter(|(at, _)| *at >= from - 20.0 && *at <= to)
        .map(|(at, what)| format!("{what} at {at:.1} s"))
        .collect();

    progress.phase("chaos: closing");
    for member in &members {
        let _ = tokio::time::timeout(Duration::from_secs(10), member.chat.close()).await;
    }
    drop(workers);
    tokio::task::block_in_place(|| drop(cluster));

    let count = |n: u64| Some(n as f64);
    let zero = Target::Exactly(0.0);
    let observers = members.len() as u64;
    let reordered = if delivery.senders_reordered.is_empty() {
        "no sender".to_string()
    } else {
        delivery
            .senders_reordered
            .iter()
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mismatches = if transitions.mismatches.is_empty() {
        "every member saw each transition once".to_string()
    } else {
        transitions
            .mismatches
            .iter()
            .map(|(user, what)| format!("{user}: {what}"))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let mut rows = vec![
        Row::new("chaos duration", "s", Some(ended.duration_since(started).as_secs_f64()))
            .note(format!(
                "{} members at {} msg/s each over a 3-node TLS cluster (R3), {} churners, {} instances of each worker, presence TTL {ttl} s",
                members.len(),
                sizes.chaos_rate,
                churner_names.len(),
                sizes.chaos_instances
            )),
        Row::new("nodes killed (-9) and restarted", "kills", count(node_kills)),
        Row::new("worker instances killed (-9) and restarted", "kills", count(worker_kills)),
        Row::new("acknowledged messages", "msgs", count(delivery.acknowledged)),
        Row::new("messages given up on (unconfirmed)", "msgs", count(shared.unconfirmed.load(Ordering::SeqCst)))
            .note("not acknowledged within the publisher's patience; not counted as lost (they may or may not be stored)"),
        Row::new("lost (acknowledged, never received)", "member×msg", count(delivery.lost))
            .target(zero)
            .note(format!("over {observers} members, each expected to receive every acknowledged message")),
        Row::new("duplicated deliveries", "deliveries", count(delivery.duplicated)).target(zero),
        Row::new("reordered deliveries (against the sender's order)", "deliveries", count(delivery.reordered))
            .target(zero)
            .note(format!("senders affected: {reordered}")),
        Row::new("presence transitions (leaves and joins)", "transitions", count(transitions.made)),
        Row::new("joined/left seen exactly once per transition", "member×transition", count(transitions.exactly_once))
            .target(Target::AtLeast((transitions.made * observers) as f64)),
        Row::new("joined/left missing", "events", count(transitions.missing)).target(zero),
        Row::new("joined/left extra (doubled, or someone who never left)", "events", count(transitions.extra))
            .target(zero)
            .note(mismatches),
        Row::new("longest time a member saw no message", "s", Some(longest.as_secs_f64()))
            .note(format!(
                "{silent}, from {from:.1} s to {to:.1} s after the start; members send {} msg/s together; faults from 20 s before: {}",
                sizes.chaos_rate * members.len() as f64,
                before.join(", ")
            )),
        Row::new("restarted nodes not caught up before the next kill", "nodes", count(shared.behind.load(Ordering::SeqCst)))
            .note(format!("a restarted node gets up to {CATCH_UP:?} for every replica of the room stream and the buckets to be current")),
        Row::new("churner logins tried again", "logins", count(shared.login_retries.load(Ordering::SeqCst)))
            .note("a login refused or unanswered during a fault, tried again by the churner"),
        Row::new("history pages answered", "requests", count(shared.history_ok.load(Ordering::SeqCst))),
        Row::new("history pages failed", "requests", count(shared.history_failed.load(Ordering::SeqCst))),
        Row::new("/users answered", "requests", count(shared.users_ok.load(Ordering::SeqCst))),
        Row::new("/users failed", "requests", count(shared.users_failed.load(Ordering::SeqCst))),
    ];
    if !exited.is_empty() {
        rows.push(
            Row::new(
                "worker instances that exited by themselves",
                "instances",
                count(exited.len() as u64),
            )
            .target(zero)
            .note(exited.join(", ")),
        );
    }
    Ok((rows, version))
}

/// Registers `name`, asking again while the auth workers or the user table are not
/// there yet.
async fn register(cluster: &Cluster, name: &str) -> Result<(), BenchError> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let result = login::register_trusting(
            &cluster.url(),
            Some(cluster.ca()),
            name,
            &password_of(name),
            Duration::from_secs(10),
        )
        .await;
        match result {
            Ok(_) => return Ok(()),
            Err(AccountError::Request(RequestError::Refused(_, why))) if why.contains("taken") => {
                return Ok(())
            }
            Err(err) if Instant::now() > deadline => {
                return Err(BenchError::Register(name.into(), err.to_string()))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// A session of `name` at `url` (one node, or the list), logging in again while the
/// login fails (a node, the auth workers or the user table in the middle of a fault).
async fn connect(
    ca: &Path,
    url: &str,
    name: &str,
    shared: &Shared,
) -> Result<(Chat, mpsc::Receiver<Event>), BenchError> {
    let mut options = Options::new(url, UserName::new(name)?, password_of(name));
    options.tls_ca = Some(ca.to_path_buf());
    // Patient requests: a worker call may wait for a leader election.
    options.request_timeout = Duration::from_secs(10);
    let deadline = Instant::now() + PATIENCE * 2;
    loop {
        match Chat::connect(options.clone()).await {
            Ok(session) => return Ok(session),
            Err(err) if Instant::now() > deadline => return Err(err.into()),
            Err(err) => {
                tracing::warn!(name, "login failed, trying again: {err}");
                shared.login_retries.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

/// Completes once the run is told to stop.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Records every live message and presence event a member receives (once counting).
async fn receive(
    mut events: mpsc::Receiver<Event>,
    received: Arc<Mutex<Received>>,
    shared: Arc<Shared>,
) {
    while let Some(event) = events.recv().await {
        if !shared.counting.load(Ordering::SeqCst) {
            continue;
        }
        match event {
            Event::Message {
                user,
                text,
                replay: false,
                ..
            } => {
                if let Some(n) = tally::counter(&text) {
                    lock(&received).message(user.as_str(), n, Instant::now());
                }
            }
            Event::System { user, kind, .. } => lock(&received).presence(user.as_str(), kind),
            _ => {}
        }
    }
}

/// Sends `chaos 1`, `chaos 2`, … at `rate` per second until stopped, then waits for the
/// fate of every message sent.
async fn send(
    chat: Chat,
    room: RoomName,
    name: String,
    rate: f64,
    mut stop: watch::Receiver<bool>,
    shared: Arc<Shared>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(0.01)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pending = FuturesUnordered::new();
    let mut sending = true;
    let mut n = 0u64;
    loop {
        if !sending && pending.is_empty() {
            return;
        }
        tokio::select! {
            Some((n, result)) = pending.next(), if !pending.is_empty() => match result {
                Ok(_) => {
                    lock(&shared.acked).entry(name.clone()).or_default().insert(n);
                }
                Err(err) => {
                    tracing::warn!(name, n, "unconfirmed: {err}");
                    shared.unconfirmed.fetch_add(1, Ordering::SeqCst);
                }
            },
            _ = tick.tick(), if sending => {
                n += 1;
                match chat.send(&room, MessageKind::Chat, &tally::text(n)).await {
                    Ok(handle) => pending.push(async move { (n, handle.acked().await) }),
                    Err(err) => {
                        tracing::warn!(name, n, "not sent: {err}");
                        shared.unconfirmed.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
            _ = stopped(&mut stop), if sending => sending = false,
        }
    }
}

/// Asks for the room's latest history page and `/users` every [`PROBE_EVERY`].
async fn probe(chat: Chat, room: RoomName, mut stop: watch::Receiver<bool>, shared: Arc<Shared>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(PROBE_EVERY) => {}
            _ = stopped(&mut stop) => return,
        }
        let (history, users) = tokio::join!(
            chat.history_page(&room, Page::Before(u64::MAX), 20),
            chat.users(&room)
        );
        let counter = |ok: bool, yes: &AtomicU64, no: &AtomicU64| {
            if ok { yes } else { no }.fetch_add(1, Ordering::SeqCst);
        };
        if let Err(err) = &history {
            tracing::warn!("history page failed: {err}");
        }
        if let Err(err) = &users {
            tracing::warn!("/users failed: {err}");
        }
        counter(history.is_ok(), &shared.history_ok, &shared.history_failed);
        counter(users.is_ok(), &shared.users_ok, &shared.users_failed);
    }
}

/// A member who leaves and comes back, over and over.
struct Churner {
    name: String,
    url: String,
    ca: PathBuf,
    chat: Chat,
}

impl Churner {
    /// Logs `name` in (with every node's URL) and joins `room`.
    async fn join(
        cluster: &Cluster,
        name: &str,
        room: &RoomName,
        shared: &Shared,
    ) -> Result<Self, BenchError> {
        let url = cluster.url();
        let chat = Self::online(cluster.ca(), &url, name, room, shared).await?;
        Ok(Self {
            name: name.to_string(),
            url,
            ca: cluster.ca().to_path_buf(),
            chat,
        })
    }

    async fn online(
        ca: &Path,
        url: &str,
        name: &str,
        room: &RoomName,
        shared: &Shared,
    ) -> Result<Chat, BenchError> {
        let (chat, mut events) = connect(ca, url, name, shared).await?;
        crate::setup::join(&chat, &mut events, room).await?;
        crate::setup::drain(events);
        Ok(chat)
    }

    /// Stays online for a while, leaves (closing the session), stays away for
    /// `offline` (longer than the presence TTL, so that even a leave lost to a fault
    /// has turned into a timeout by then), comes back; until stopped (after a whole
    /// cycle).
    async fn churn(
        mut self,
        room: RoomName,
        offline: Duration,
        mut stop: watch::Receiver<bool>,
        shared: Arc<Shared>,
    ) -> Result<(), BenchError> {
        let mut rng = rand::rngs::StdRng::from_entropy();
        loop {
            let online = Duration::from_secs_f64(rng.gen_range(CHURN_ONLINE));
            tokio::select! {
                _ = tokio::time::sleep(online) => {}
                _ = stopped(&mut stop) => break,
            }
            self.chat.close().await;
            lock(&shared.made)
                .entry(self.name.clone())
                .or_default()
                .push(SystemKind::Left);
            tokio::time::sleep(offline).await;
            self.chat = Self::online(&self.ca, &self.url, &self.name, &room, &shared).await?;
            lock(&shared.made)
                .entry(self.name.clone())
                .or_default()
                .push(SystemKind::Joined);
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), self.chat.close()).await;
        lock(&shared.made)
            .entry(self.name.clone())
            .or_default()
            .push(SystemKind::Left);
        Ok(())
    }
}

/// Until `deadline`: kills a random node with SIGKILL, leaves it down a while, starts
/// it again (same ports, same store), waits until it has caught up, pauses. One node at
/// a time, so that R3 keeps a majority. Returns how many kills.
async fn kill_nodes(
    cluster: &mut Cluster,
    deadline: tokio::time::Instant,
    progress: &Progress,
    started: Instant,
    shared: &Shared,
    replicated: &Replicated,
) -> u64 {
    let mut rng = rand::rngs::StdRng::from_entropy();
    let mut kills = 0;
    loop {
        let pause = Duration::from_secs_f64(rng.gen_range(NODE_PAUSE));
        if tokio::time::Instant::now() + pause >= deadline {
            tokio::time::sleep_until(deadline).await;
            return kills;
        }
        tokio::time::sleep(pause).await;
        let node = rng.gen_range(0..cluster.len());
        let what = format!("node {} killed", node + 1);
        progress.update(&what);
        shared.fault(started, what);
        tokio::task::block_in_place(|| cluster.kill(node));
        kills += 1;
        let down = Duration::from_secs_f64(rng.gen_range(NODE_DOWN));
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        tokio::time::sleep(down.min(left)).await;
        tokio::task::block_in_place(|| cluster.start(node));
        let what = format!("node {} back", node + 1);
        progress.update(&what);
        shared.fault(started, what);
        if replicated.wait().await {
            shared.fault(started, format!("node {} caught up", node + 1));
        } else {
            shared.behind.fetch_add(1, Ordering::SeqCst);
            shared.fault(started, format!("node {} not caught up", node + 1));
        }
    }
}

/// The streams whose replicas must be current before another node may die: the room
/// stream and the presence buckets (seen by `@admin`), the user table (by `@auth`).
struct Replicated {
    checks: Vec<(async_nats::jetstream::Context, String)>,
}

impl Replicated {
    async fn new(cluster: &Cluster, room: &RoomName) -> Self {
        let chat = async_nats::jetstream::new(cluster.client().await);
        let auth = async_nats::jetstream::new(
            cluster
                .client_as(chat_protocol::auth::static_users::AUTH, &cluster.url())
                .await,
        );
        let kv = |bucket: &str| format!("KV_{bucket}");
        Self {
            checks: vec![
                (chat.clone(), streams::stream_name(room)),
                (chat.clone(), kv(streams::PRESENCE_BUCKET)),
                (chat, kv(streams::PRESENCE_USERS_BUCKET)),
                (auth, kv("chat_auth_users")),
            ],
        }
    }

    /// Waits (at most [`CATCH_UP`]) until every stream has a leader and every replica
    /// is online and current; returns whether that happened.
    async fn wait(&self) -> bool {
        let deadline = tokio::time::Instant::now() + CATCH_UP;
        while tokio::time::Instant::now() < deadline {
            let mut all = true;
            for (js, name) in &self.checks {
                all &= Self::current(js, name).await;
            }
            if all {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        false
    }

    async fn current(js: &async_nats::jetstream::Context, name: &str) -> bool {
        let Ok(mut stream) = js.get_stream(name).await else {
            return false;
        };
        let Ok(info) = stream.info().await else {
            return false;
        };
        info.cluster.as_ref().is_some_and(|c| {
            c.leader.is_some() && c.replicas.iter().all(|r| r.current && !r.offline)
        })
    }
}

/// Until `deadline`: kills a random worker instance with SIGKILL, starts it again a
/// moment later, pauses. Returns the workers (all running) and how many kills.
async fn kill_workers(
    mut workers: Workers,
    deadline: tokio::time::Instant,
    progress: Progress,
    started: Instant,
    shared: Arc<Shared>,
) -> Result<(Workers, u64), BenchError> {
    let mut rng = rand::rngs::StdRng::from_entropy();
    let mut kills = 0;
    loop {
        let pause = Duration::from_secs_f64(rng.gen_range(WORKER_PAUSE));
        if tokio::time::Instant::now() + pause >= deadline {
            tokio::time::sleep_until(deadline).await;
            return Ok((workers, kills));
        }
        tokio::time::sleep(pause).await;
        let i = rng.gen_range(0..workers.count());
        let what = format!("{} killed", workers.name(i));
        progress.update(&what);
        shared.fault(started, what);
        workers.kill(i).await;
        kills += 1;
        tokio::time::sleep(Duration::from_secs_f64(rng.gen_range(WORKER_DOWN))).await;
        workers.restart(i)?;
        shared.fault(started, format!("{} started", workers.name(i)));
    }
}
