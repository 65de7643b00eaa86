//! How many copies the workers keep of what they create (room streams, buckets), and
//! creating those when another instance may be creating them at the same moment.
//!
//! Replication is the default wherever the cluster has room for it: one replica on a
//! single server, three on a cluster (the server's INFO names its cluster), two on a
//! cluster that shows exactly two servers, unless the operator configured a count
//! (`--stream-replicas`, `--kv-replicas`). The worker logs what it chose and why.
//!
//! Why two, not one, on a cluster of two: with R2 every acknowledged message is on
//! both machines, so losing one machine's disk loses nothing, as with R3. What R2 does
//! not give is availability: writes stop while either node is down. R1 would not give
//! that either: JetStream's own metadata needs both nodes of two for a majority, and
//! every room whose stream sat on the lost node would be gone with it. So the second
//! node buys durability, and only a third buys availability.
//!
//! Three is chosen for a cluster showing one server (routes not up yet) or three or
//! more. A cluster of three with one node down at the worker's start shows two, and
//! gets two for the streams and buckets created by that worker run (what exists
//! already keeps its replicas: streams and buckets are opened, not made again); the
//! warning in the log says so, and `--stream-replicas 3 --kv-replicas 3` pins it.
//!
//! Workers start in any order and at the same time: [`create_with_retries`] retries
//! what a fresh cluster or a concurrent creation makes fail for a moment (no meta
//! leader elected yet, "already in use" while another instance's identical create is
//! in flight, a timeout during a leader election).

use std::future::Future;
use std::time::Duration;

/// Replicas on a cluster.
pub const CLUSTER_REPLICAS: usize = 3;

/// The replica count to create with: `configured` if set, else 1 on a single server,
/// 2 on a cluster showing two servers and [`CLUSTER_REPLICAS`] on other clusters. Logs the choice for `what` (e.g. "room
/// streams").
pub fn choose(client: &async_nats::Client, configured: Option<usize>, what: &str) -> usize {
    let info = client.server_info();
    let (replicas, why) = match (configured, &info.cluster) {
        (Some(n), _) => (n, "configured".to_string()),
        (None, None) => (
            1,
            format!("server {} is not in a cluster", info.server_name),
        ),
        (None, Some(cluster)) => match info.connect_urls.len() {
            2 => {
                tracing::warn!(
                    %cluster,
                    "the cluster shows 2 servers: 2 replicas (every acknowledged message on \
                     both; writes pause while either is down). If this is a cluster of 3 with \
                     a node down, set --stream-replicas 3 --kv-replicas 3 or restart this \
                     worker once the node is back"
                );
                (
                    2,
                    format!(
                        "server {} is in cluster {cluster} of 2 servers",
                        info.server_name
                    ),
                )
            }
            known => {
                if known < CLUSTER_REPLICAS {
                    tracing::warn!(
                        %cluster,
                        servers_known = known,
                        "the cluster shows only this server yet; creating with \
                         {CLUSTER_REPLICAS} replicas"
                    );
                }
                (
                    CLUSTER_REPLICAS,
                    format!("server {} is in cluster {cluster}", info.server_name),
                )
            }
        },
    };
    tracing::info!(what, replicas, reason = %why, "replicas chosen");
    replicas
}

/// How long [`create_with_retries`] keeps trying: long enough for a fresh cluster to
/// elect its meta leader.
pub const CREATE_PATIENCE: Duration = Duration::from_secs(30);

/// Runs `create` (an idempotent create-or-get of a stream, bucket or durable consumer)
/// until it succeeds, retrying for up to `patience` on any error: what makes such a call
/// fail at start (JetStream not ready on a fresh cluster, a concurrent identical
/// creation, a leader election) passes, and what does not (no permission, a conflicting
/// configuration) is returned once the patience is spent, with the last error.
pub async fn create_with_retries<T, E, F, Fut>(
    what: &str,
    patience: Duration,
    mut create: F,
) -> Result<T, E>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let deadline = tokio::time::Instant::now() + patience;
    let mut delay = Duration::from_millis(50);
    loop {
        match create().await {
            Ok(value) => return Ok(value),
            Err(error) if tokio::time::Instant::now() + delay < deadline => {
                tracing::info!(what, %error, retry_in = ?delay, "cannot create yet; retrying");
                // Jitter: instances started together do not retry in lockstep.
                let jitter = Duration::from_millis(rand_millis(delay.as_millis() as u64 / 2 + 1));
                tokio::time::sleep(delay + jitter).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            Err(error) => return Err(error),
        }
    }
}

/// A number in `0..bound` from the clock: enough to spread retries apart.
fn rand_millis(bound: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64);
    nanos % bound.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn retries_until_it_works_or_patience_ends() {
        let mut calls = 0;
        let result: Result<u32, String> =
            create_with_retries("thing", Duration::from_secs(5), || {
                calls += 1;
                let n = calls;
                async move {
                    if n < 3 {
                        Err(format!("not yet {n}"))
                    } else {
                        Ok(n)
                    }
                }
            })
            .await;
        assert_eq!(result, Ok(3));
        let result: Result<u32, String> =
            create_with_retries("thing", Duration::from_millis(200), || async {
                Err("never".to_string())
            })
            .await;
        assert_eq!(result, Err("never".to_string()));
    }
}
