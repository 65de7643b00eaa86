//! A compare-and-set that loses its race is told apart from a failure, on one server
//! and on a cluster (where nats-server answers with another error code that
//! async-nats does not recognise).

use async_nats::jetstream::{self, kv};
use chat_runtime::cas::lost_race;
use test_support::{run_cluster, run_server};

/// Writers updating one key at the same revision at once.
const RACERS: usize = 20;

/// Loses every kind of race once on `js` (a bucket of `replicas`) and checks that
/// each is a lost race, and that another refusal is not.
async fn races_are_lost_races(js: &jetstream::Context, replicas: usize) {
    let kv = js
        .create_key_value(kv::Config {
            bucket: "races".into(),
            num_replicas: replicas,
            ..Default::default()
        })
        .await
        .expect("bucket");
    let first = kv.put("k", "1".into()).await.expect("put");
    kv.update("k", "2".into(), first)
        .await
        .expect("update at its revision");

    let stale = kv
        .update("k", "3".into(), first)
        .await
        .expect_err("stale revision");
    assert!(
        lost_race(&stale),
        "a stale update is a lost race: {stale:?}"
    );
    let taken = kv
        .create("k", "4".into())
        .await
        .expect_err("the key exists");
    assert!(
        lost_race(&taken),
        "creating a taken key is a lost race: {taken:?}"
    );

    // Writers racing for the same revision: one wins, every other one lost a race.
    // (On a cluster, those refused only when the leader applies them come back with
    // the other error code.)
    let revision = kv.put("k", "5".into()).await.expect("put");
    let racers = (0..RACERS).map(|n| kv.update("k", format!("r{n}").into(), revision));
    let results = futures::future::join_all(racers).await;
    let won = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(won, 1, "exactly one racer wins: {results:?}");
    for lost in results.iter().filter_map(|r| r.as_ref().err()) {
        assert!(lost_race(lost), "a racer that lost lost a race: {lost:?}");
    }

    // Not a race: a value over the bucket's size limit.
    let small = js
        .create_key_value(kv::Config {
            bucket: "small".into(),
            num_replicas: replicas,
            max_value_size: 8,
            ..Default::default()
        })
        .await
        .expect("bucket");
    let refused = small
        .update("k", "far too long".into(), 0)
        .await
        .expect_err("too large");
    assert!(
        !lost_race(&refused),
        "a value too large is no race: {refused:?}"
    );
}

#[tokio::test]
async fn on_one_server() {
    let server = run_server();
    races_are_lost_races(&server.jetstream().await, 1).await;
}

#[tokio::test]
async fn on_a_cluster() {
    let cluster = run_cluster(3);
    races_are_lost_races(&jetstream::new(cluster.client().await), 3).await;
}
