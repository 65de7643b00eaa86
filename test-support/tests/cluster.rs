//! The cluster as the harness makes it (`run_cluster`, the template of `chat-admin`
//! with its cluster section): a cluster's `CHAT` budget holds R3 rooms as one server's
//! holds rooms, and the whole cluster restarted at once comes back with its streams.

use async_nats::jetstream::{self, stream};
use test_support::run_cluster;

const GIB: i64 = 1 << 30;

/// An R3 stream of the `CHAT` account with a byte cap of `max_bytes`.
fn r3_stream(name: &str, max_bytes: i64) -> stream::Config {
    stream::Config {
        name: name.into(),
        subjects: vec![format!("{name}.>")],
        max_bytes,
        num_replicas: 3,
        storage: stream::StorageType::File,
        ..Default::default()
    }
}

/// nats-server counts every replica against the account's budget (an R3 room reserves
/// three times its cap): ten R3 streams of 1 GiB (30 GiB reserved) fit the cluster's
/// budget, which one server's 11 GiB would refuse from the fourth. Beyond the budget,
/// a stream is refused with the server's reason.
#[tokio::test(flavor = "multi_thread")]
async fn a_cluster_budget_holds_r3_rooms_as_a_server_holds_rooms() {
    let cluster = run_cluster(3);
    let js = jetstream::new(cluster.client().await);
    for i in 0..10 {
        js.create_stream(r3_stream(&format!("budget{i}"), GIB))
            .await
            .unwrap_or_else(|e| panic!("R3 stream {i} of 1 GiB refused: {e}"));
    }
    let refused = js
        .create_stream(r3_stream("beyond", 2 * GIB))
        .await
        .expect_err("6 GiB more than the 33 GiB budget");
    // nats-server says "insufficient storage resources available" (10047).
    assert!(
        refused
            .to_string()
            .contains("insufficient storage resources"),
        "{refused}"
    );
}

/// Every node killed at once and started again (`Cluster::restart_all`): the cluster
/// elects its leaders again and the R3 stream answers with its messages.
#[tokio::test(flavor = "multi_thread")]
async fn a_cluster_restarted_all_at_once_keeps_its_streams() {
    let mut cluster = run_cluster(3);
    let js = jetstream::new(cluster.client().await);
    js.create_stream(r3_stream("kept", 1 << 20)).await.unwrap();
    js.publish("kept.x", "1".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let pids: Vec<_> = (0..cluster.len()).map(|n| cluster.pid(n)).collect();
    cluster.restart_all();
    assert!((0..cluster.len()).all(|n| cluster.pid(n).is_some()));
    assert_ne!(
        pids,
        (0..cluster.len())
            .map(|n| cluster.pid(n))
            .collect::<Vec<_>>()
    );
    cluster.wait_for_jetstream();
    let js = jetstream::new(cluster.client().await);
    let deadline = std::time::Instant::now() + test_support::SERVER_START_PATIENCE;
    let messages = loop {
        match js.get_stream("kept").await {
            Ok(stream) => break stream.cached_info().state.messages,
            Err(e) => {
                assert!(std::time::Instant::now() < deadline, "no stream: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    };
    assert_eq!(messages, 1);
}
