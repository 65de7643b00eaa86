//! A flood of the largest requests allowed keeps the history worker bounded: at most
//! `concurrency + queue` are taken, the excess is refused at once with 503 "busy, try
//! again", every request gets an answer, and the worker serves normally afterwards. A
//! body above the largest allowed is refused with 413.

mod common;

use std::time::Duration;

use chat_protocol::auth::static_users;
use chat_protocol::body::HistoryPage;
use chat_protocol::subjects;
use chat_runtime::hosting::{code, MAX_REQUEST_BYTES};
use common::*;
use history_worker::{Config, HistoryWorker};
use test_support::{flood, padded};

#[tokio::test]
async fn a_flood_of_the_largest_requests_is_refused_beyond_the_bound_and_all_answered() {
    let server = test_support::run_server();
    let admin = server.client().await;
    let js = async_nats::jetstream::new(admin.clone());
    let general = room("general");
    create_room(&js, &general).await;
    let alice = user("alice");
    store(
        &js,
        &general,
        (0..300)
            .map(|i| Item::Chat(&alice, format!("message {i}")))
            .collect(),
    )
    .await;
    // The worker connects as the binary does (its subscription bound included).
    let credentials = server.credentials(static_users::HISTORY);
    let worker_client = chat_runtime::connect(
        &server.url(),
        "history-worker",
        Some(&credentials),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    let config = Config {
        concurrency: 2,
        ..Config::default()
    };
    let _worker = HistoryWorker::start(worker_client, config).await.unwrap();

    let subject = subjects::history(&general);
    let largest = padded(r#"{"limit": 1000}"#, MAX_REQUEST_BYTES);
    let requests = 600;
    let got = flood(&admin, &subject, largest.clone(), requests).await;
    assert_eq!(got.unanswered, 0, "{got:?}");
    assert_eq!(
        got.served + got.refused_with(code::UNAVAILABLE),
        requests,
        "{got:?}"
    );
    assert!(got.served >= 1, "{got:?}");
    assert!(
        got.refused_with(code::UNAVAILABLE) >= 1,
        "the excess is refused: {got:?}"
    );

    // The refusal says what happened and what to do.
    let busy = loop {
        let replies = futures::future::join_all(
            (0..50).map(|_| admin.request(subject.clone(), largest.clone())),
        )
        .await;
        if let Some(busy) = replies.into_iter().flatten().find(|r| r.headers.is_some()) {
            break busy;
        }
    };
    let text = String::from_utf8_lossy(&busy.payload).to_string();
    assert!(text.contains("busy, try again"), "{text}");

    // One byte more than the largest allowed: refused before any work.
    let too_large = padded(r#"{"limit": 1}"#, MAX_REQUEST_BYTES + 1);
    let reply = admin.request(subject.clone(), too_large).await.unwrap();
    let text = String::from_utf8_lossy(&reply.payload).to_string();
    assert!(text.contains("request too large"), "{text}");

    // And the worker serves as before.
    let reply = admin.request(subject, largest).await.unwrap();
    let page: HistoryPage = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(page.messages.len(), 300);
}
