//! The worker as a NATS service: error replies, an empty room, several instances.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use async_nats::service::{NATS_SERVICE_ERROR, NATS_SERVICE_ERROR_CODE};
use chat_protocol::body::{decode_reply, ErrorReply, HistoryPage, HistoryRequest, ReplyError};
use chat_protocol::subjects;
use common::*;
use history_worker::{Config, HistoryWorker, SERVICE_NAME};

/// The reply's error body and `Nats-Service-Error-Code` header.
async fn error_reply(client: &async_nats::Client, subject: String, body: &str) -> (String, String) {
    let reply = request_raw(client, subject, body).await;
    let error: ErrorReply = serde_json::from_slice(&reply.payload).expect("an error body");
    assert!(!error.ok);
    let headers = reply.headers.expect("error headers");
    assert!(headers.get(NATS_SERVICE_ERROR).is_some());
    let code = headers.get(NATS_SERVICE_ERROR_CODE).unwrap().to_string();
    (error.error, code)
}

#[tokio::test]
async fn bad_requests_get_error_replies_not_timeouts() {
    let s = setup(Config::default()).await;
    let general = room("general");
    create_room(&s.js, &general).await;
    let subject = subjects::history(&general);

    let (error, code) = error_reply(&s.client, history_subject("nosuch"), "").await;
    assert_eq!(error, "room 'nosuch' does not exist");
    assert_eq!(code, "404");
    // Through the shared decoder, as the client sees it.
    let reply = request_raw(&s.client, history_subject("nosuch"), "{}").await;
    assert!(matches!(
        decode_reply::<HistoryPage>(&reply.payload),
        Err(ReplyError::Refused(e)) if e == "room 'nosuch' does not exist"
    ));

    let (error, code) = error_reply(&s.client, subject.clone(), r#"{"before":5,"after":1}"#).await;
    assert!(error.contains("exclusive"), "{error}");
    assert_eq!(code, "400");
    let (error, code) = error_reply(&s.client, subject.clone(), r#"{"limit":0}"#).await;
    assert!(error.contains("limit"), "{error}");
    assert_eq!(code, "400");
    for body in ["not json", r#"{"user":"no spaces"}"#, r#"{"after":"x"}"#] {
        let (_, code) = error_reply(&s.client, subject.clone(), body).await;
        assert_eq!(code, "400", "{body}");
    }
    let (_, code) = error_reply(&s.client, history_subject("Bad!"), "").await;
    assert_eq!(code, "400");

    // The worker is still serving: an existing empty room gives an empty page.
    let page: HistoryPage =
        decode_reply(&request_raw(&s.client, subject, "").await.payload).unwrap();
    assert_eq!(page.room, general);
    assert!(page.messages.is_empty() && page.next.is_none());
}

/// `num_requests` of the page endpoint of each of `instances` instances of the
/// service, by instance id.
async fn requests_per_instance(
    client: &async_nats::Client,
    instances: usize,
) -> HashMap<String, u64> {
    test_support::service_stats(client, SERVICE_NAME, instances)
        .await
        .iter()
        .map(|stats| {
            let id = stats["id"].as_str().expect("id").to_string();
            // The page endpoint (the service also has `replay`).
            let endpoints = stats["endpoints"].as_array().expect("endpoints");
            let history = endpoints.iter().find(|e| e["name"] == "history");
            let count = history.and_then(|e| e["num_requests"].as_u64());
            (id, count.expect("num_requests"))
        })
        .collect()
}

#[tokio::test]
async fn two_instances_share_concurrent_requests() {
    let s = setup(Config::default()).await;
    let second = HistoryWorker::start(s.server.history_client().await, Config::default())
        .await
        .unwrap();
    let general = room("general");
    let (alice, bob) = (user("alice"), user("bob"));
    create_room(&s.js, &general).await;
    store(&s.js, &general, chats(&[&alice, &bob], 300)).await;

    let concurrent = |n: usize| {
        let (client, general, bob) = (s.client.clone(), general.clone(), bob.clone());
        futures::future::join_all((0..n).map(move |i| {
            let (client, general) = (client.clone(), general.clone());
            let request = HistoryRequest {
                limit: Some(50),
                after: Some(i as u64 % 250),
                user: (i % 2 == 0).then(|| bob.clone()),
                ..Default::default()
            };
            async move {
                let page = page(&client, &general, &request).await;
                assert!(!page.messages.is_empty());
                assert!(page.messages[0].seq > request.after.unwrap());
            }
        }))
    };
    concurrent(64).await;
    let before = requests_per_instance(&s.client, 2).await;
    assert_eq!(before.values().sum::<u64>(), 64);
    assert!(before.values().all(|c| *c > 0), "{before:?}");

    // One instance stops; the other answers everything.
    second.stop().await;
    concurrent(32).await;
    let after = requests_per_instance(&s.client, 1).await;
    let (id, count) = after.into_iter().next().unwrap();
    assert_eq!(count, before[&id] + 32);
}

#[tokio::test]
async fn a_long_replay_does_not_stall_other_requests() {
    let s = setup(Config {
        max_limit: 1000,
        ..Config::default()
    })
    .await;
    let (big, small) = (room("big"), room("small"));
    let alice = user("alice");
    create_room(&s.js, &big).await;
    create_room(&s.js, &small).await;
    store(&s.js, &big, chats(&[&alice], 20_000)).await;
    store(&s.js, &small, chats(&[&alice], 3)).await;

    let replay = {
        let (client, big) = (s.client.clone(), big.clone());
        tokio::spawn(async move {
            all_pages(
                &client,
                &big,
                HistoryRequest {
                    limit: Some(1000),
                    after: Some(0),
                    ..Default::default()
                },
                true,
            )
            .await
        })
    };
    // Meanwhile, small requests keep being answered.
    for _ in 0..20 {
        let page = page(&s.client, &small, &HistoryRequest::default()).await;
        assert_eq!(page.messages.len(), 3);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (entries, _) = replay.await.unwrap();
    assert_eq!(seqs(&entries), (1..=20_000).collect::<Vec<_>>());
}

#[tokio::test]
async fn keeps_serving_after_the_server_restarts() {
    let mut s = setup(Config::default()).await;
    let general = room("general");
    let alice = user("alice");
    create_room(&s.js, &general).await;
    store(&s.js, &general, chats(&[&alice], 5)).await;
    s.server.restart();
    // Both connections reconnect by themselves; wait (generously) until a page comes.
    let body = serde_json::to_vec(&HistoryRequest::default()).unwrap();
    let deadline = tokio::time::Instant::now() + REPLY_TIMEOUT;
    let page: HistoryPage = loop {
        let attempt = s
            .client
            .request(subjects::history(&general), body.clone().into());
        let reply = tokio::time::timeout(Duration::from_secs(1), attempt).await;
        match reply.map(|r| r.map(|r| decode_reply::<HistoryPage>(&r.payload))) {
            Ok(Ok(Ok(page))) => break page,
            other if tokio::time::Instant::now() > deadline => panic!("no page: {other:?}"),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    assert_eq!(seqs(&page.messages), vec![1, 2, 3, 4, 5]);
    s.worker.stop().await;
}
