//! The chaos scenario's faults: nodes killed with SIGKILL and started again (one at a
//! time, each caught up before the next), worker instances killed and started again,
//! each recorded with its time.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_protocol::{streams, RoomName};
use rand::{Rng, SeedableRng};
use test_support::Cluster;

use super::workers::Workers;
use super::Shared;
use crate::progress::Progress;
use crate::setup::BenchError;

/// Pause between two node kills, and how long a killed node stays down (seconds).
const NODE_PAUSE: std::ops::Range<f64> = 10.0..25.0;
const NODE_DOWN: std::ops::Range<f64> = 5.0..15.0;
/// The same for worker instances.
const WORKER_PAUSE: std::ops::Range<f64> = 4.0..12.0;
const WORKER_DOWN: std::ops::Range<f64> = 1.0..4.0;
/// How long a restarted node gets to catch up (every replica of the room stream and
/// the buckets current) before the next node may be killed: R3 survives one node down,
/// not a second one while the first is still behind.
pub(super) const CATCH_UP: Duration = Duration::from_secs(60);

/// Until `deadline`: kills a random node with SIGKILL, leaves it down a while, starts
/// it again (same ports, same store), waits until it has caught up, pauses. One node at
/// a time, so that R3 keeps a majority. Returns how many kills.
pub(super) async fn kill_nodes(
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
pub(super) struct Replicated {
    checks: Vec<(async_nats::jetstream::Context, String)>,
}

impl Replicated {
    pub(super) async fn new(cluster: &Cluster, room: &RoomName) -> Self {
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
                all &= crate::setup::replicas_current(js, name).await;
            }
            if all {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        false
    }
}

/// Until `deadline`: kills a random worker instance with SIGKILL, starts it again a
/// moment later, pauses. Returns the workers (all running) and how many kills.
pub(super) async fn kill_workers(
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
