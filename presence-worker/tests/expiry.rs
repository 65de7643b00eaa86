//! Crash expiry: sessions whose client died disappear after the TTL and exactly one
//! `left` (reason timeout) is announced, whichever workers run or die.

mod common;

use std::time::Duration;

use chat_protocol::body::{Reason, SystemKind};
use chat_protocol::streams::{presence_key, PRESENCE_BUCKET};
use chat_protocol::SessionId;
use common::*;
use test_support::run_server;

const JOINED: (SystemKind, Reason) = (SystemKind::Joined, Reason::Join);
const TIMED_OUT: (SystemKind, Reason) = (SystemKind::Left, Reason::Timeout);

#[tokio::test]
async fn dead_client_times_out_once_with_two_workers() {
    let server = run_server();
    let _w1 = worker(&server).await;
    let _w2 = worker(&server).await;
    let client = server.client().await;
    let js = server.jetstream().await;
    let (general, alice, bob) = (room("general"), user("alice"), user("bob"));
    join(&client, &general, &alice, SessionId::random()).await;
    join(&client, &general, &bob, SessionId::random()).await;
    assert_eq!(users(&client, &general).await, ["alice", "bob"]);
    // Nobody sends heartbeats: both sessions die.
    wait_for_events(&js, &general, &alice, &[JOINED, TIMED_OUT]).await;
    wait_for_events(&js, &general, &bob, &[JOINED, TIMED_OUT]).await;
    assert!(users(&client, &general).await.is_empty());
    settled(&js).await;
    assert_eq!(events_of(&js, &general, &alice).await, [JOINED, TIMED_OUT]);
    assert_eq!(events_of(&js, &general, &bob).await, [JOINED, TIMED_OUT]);
}

#[tokio::test]
async fn the_worker_that_saw_the_join_dies() {
    let server = run_server();
    let w1 = worker(&server).await;
    let client = server.client().await;
    let js = server.jetstream().await;
    let (general, alice) = (room("general"), user("alice"));
    join(&client, &general, &alice, SessionId::random()).await;
    let _w2 = worker(&server).await;
    drop(w1);
    wait_for_events(&js, &general, &alice, &[JOINED, TIMED_OUT]).await;
    settled(&js).await;
    assert_eq!(events_of(&js, &general, &alice).await, [JOINED, TIMED_OUT]);
    assert!(users(&client, &general).await.is_empty());
}

#[tokio::test]
async fn heartbeats_keep_a_session_and_an_expired_one_rejoins() {
    let server = run_server();
    let _worker = worker(&server).await;
    let client = server.client().await;
    let js = server.jetstream().await;
    let (general, alice) = (room("general"), user("alice"));
    let session = SessionId::random();
    join(&client, &general, &alice, session).await;
    // Heartbeats for a few TTLs keep the session online.
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let reply = heartbeat(&client, &general, &alice, session).await;
        assert_eq!(reply["ok"], true, "{reply}");
        assert!(reply.get("rejoined").is_none(), "{reply}");
    }
    assert_eq!(events_of(&js, &general, &alice).await, [JOINED]);
    // The laptop lid closes: the session expires and is announced as gone.
    wait_for_events(&js, &general, &alice, &[JOINED, TIMED_OUT]).await;
    // The lid opens: the next heartbeat registers the session again.
    let reply = heartbeat(&client, &general, &alice, session).await;
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(reply["rejoined"], true, "{reply}");
    assert_eq!(reply["users"], 1);
    assert_eq!(users(&client, &general).await, ["alice"]);
    assert_eq!(
        events_of(&js, &general, &alice).await,
        [JOINED, TIMED_OUT, JOINED]
    );
}

#[tokio::test]
async fn expiries_while_no_worker_runs_are_announced_by_the_next_one() {
    let server = run_server();
    let client = server.client().await;
    let js = server.jetstream().await;
    let general = room("general");
    let config = || presence_worker::Config {
        ttl: Duration::from_secs(8),
        ..test_config()
    };
    let w1 = worker_with(&server, config()).await;
    let stay: Vec<_> = (0..4)
        .map(|i| (user(&format!("stay{i}")), SessionId::random()))
        .collect();
    let go: Vec<_> = (0..4)
        .map(|i| (user(&format!("go{i}")), SessionId::random()))
        .collect();
    for (u, s) in stay.iter().chain(&go) {
        assert_eq!(join(&client, &general, u, *s).await["ok"], true);
    }
    // Traffic: the "stay" sessions send heartbeats all along, also while no worker
    // answers (those requests fail, as a client's would).
    let beating = tokio::spawn({
        let (client, general, stay) = (client.clone(), general.clone(), stay.clone());
        async move {
            loop {
                for (u, s) in &stay {
                    let body = serde_json::to_vec(&chat_protocol::body::PresenceRequest {
                        action: chat_protocol::body::PresenceAction::Heartbeat,
                        session: *s,
                    })
                    .unwrap();
                    let _ = tokio::time::timeout(
                        Duration::from_millis(500),
                        client.request(chat_protocol::subjects::presence(&general, u), body.into()),
                    )
                    .await;
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
    });
    // The "go" clients die now; the worker is killed a few seconds later, mid-traffic.
    tokio::time::sleep(Duration::from_secs(3)).await;
    drop(w1);
    // The "go" sessions expire while no worker runs.
    let kv = js.get_key_value(PRESENCE_BUCKET).await.unwrap();
    for (u, s) in &go {
        let key = presence_key(&general, u, s);
        eventually("a dead session to expire", || async {
            kv.get(&key).await.unwrap().is_none().then_some(())
        })
        .await;
    }
    let _w2 = worker_with(&server, config()).await;
    for (u, _) in &go {
        wait_for_events(&js, &general, u, &[JOINED, TIMED_OUT]).await;
    }
    settled(&js).await;
    beating.abort();
    let mut expected: Vec<String> = stay.iter().map(|(u, _)| u.to_string()).collect();
    expected.sort();
    assert_eq!(users(&client, &general).await, expected);
    for (u, _) in &stay {
        assert_eq!(events_of(&js, &general, u).await, [JOINED]);
    }
    for (u, _) in &go {
        assert_eq!(events_of(&js, &general, u).await, [JOINED, TIMED_OUT]);
    }
}

#[tokio::test]
async fn markers_that_aged_out_while_no_worker_ran_are_swept() {
    let server = run_server();
    let client = server.client().await;
    let js = server.jetstream().await;
    let (general, alice) = (room("general"), user("alice"));
    let config = || presence_worker::Config {
        marker_ttl: Duration::from_secs(1),
        ..test_config()
    };
    let w1 = worker_with(&server, config()).await;
    let session = SessionId::random();
    join(&client, &general, &alice, session).await;
    drop(w1);
    // The session expires, and then its marker too: nothing is left in the bucket.
    let kv = js.get_key_value(PRESENCE_BUCKET).await.unwrap();
    let key = presence_key(&general, &alice, &session);
    eventually("the session and its marker to be gone", || async {
        kv.entry(&key).await.unwrap().is_none().then_some(())
    })
    .await;
    let _w2 = worker_with(&server, config()).await;
    wait_for_events(&js, &general, &alice, &[JOINED, TIMED_OUT]).await;
    settled(&js).await;
    assert_eq!(events_of(&js, &general, &alice).await, [JOINED, TIMED_OUT]);
}
