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

mod faults;
mod members;
pub mod tally;
mod workers;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chat_client::Chat;
use chat_protocol::body::SystemKind;
use chat_protocol::{RoomName, SessionId};
use test_support::StackOptions;
use tokio::sync::watch;

use self::faults::{kill_nodes, kill_workers, Replicated, CATCH_UP};
use self::members::{connect, probe, receive, register, send, Churner};
use self::tally::Received;
use self::workers::Workers;
use crate::options::Sizes;
use crate::processes::Binaries;
use crate::progress::Progress;
use crate::report::{Row, Target};
use crate::setup::BenchError;

/// Nodes of the cluster.
const NODES: usize = 3;
/// How long, after the faults stopped, members may take to receive everything.
const SETTLE: Duration = Duration::from_secs(90);

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
