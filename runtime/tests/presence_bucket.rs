//! The presence bucket's configuration does what the presence design relies on: a
//! session written with a TTL disappears by itself and leaves a marker that watchers
//! see as a removal.

use std::time::Duration;

use async_nats::jetstream::{kv::Operation, message::PublishMessage};
use chat_protocol::streams::PRESENCE_BUCKET;
use chat_runtime::storage::presence_bucket_config;
use futures::StreamExt;
use test_support::run_server;

#[tokio::test]
async fn expired_session_leaves_a_marker() {
    let server = run_server();
    let js = server.jetstream().await;
    let kv = js
        .create_key_value(presence_bucket_config(1, Duration::from_secs(60)))
        .await
        .unwrap();
    let mut watch = kv.watch_all().await.unwrap();
    let subject = format!("$KV.{PRESENCE_BUCKET}.general.alice.s1");
    js.send_publish(
        subject,
        PublishMessage::build()
            .payload("{}".into())
            .ttl(Duration::from_secs(1)),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    let put = watch.next().await.unwrap().unwrap();
    assert_eq!(put.operation, Operation::Put);
    let removed = tokio::time::timeout(Duration::from_secs(10), watch.next())
        .await
        .expect("a marker within 10 s")
        .unwrap()
        .unwrap();
    assert_eq!(removed.key, "general.alice.s1");
    assert_ne!(removed.operation, Operation::Put);
    assert!(kv.get("general.alice.s1").await.unwrap().is_none());
}
