//! Joined/left decisions read the in-memory view of the sessions bucket once it has
//! applied the prompting write and what the previous decision knew (`listed_through`),
//! and list from the server when it cannot get that far: either way, exactly one
//! `joined` and one `left` per transition.

mod common;

use chat_protocol::body::{PresenceAction, SystemKind};
use chat_protocol::streams::PRESENCE_BUCKET;
use chat_protocol::SessionId;
use common::*;
use futures::StreamExt;
use presence_worker::{presence_users_key, AnnouncedState, PRESENCE_USERS_BUCKET};
use test_support::run_server;

/// The `presence` endpoint's data of every running worker (one `$SRV.STATS` reply each).
async fn presence_stats(client: &async_nats::Client, workers: usize) -> Vec<serde_json::Value> {
    test_support::service_stats(client, "chat-presence", workers)
        .await
        .iter()
        .map(|stats| {
            let endpoints = stats["endpoints"].as_array().unwrap();
            let presence = endpoints.iter().find(|e| e["name"] == "presence").unwrap();
            presence["data"].clone()
        })
        .collect()
}

fn total(stats: &[serde_json::Value], counter: &str) -> u64 {
    stats.iter().map(|s| s[counter].as_u64().unwrap()).sum()
}

/// Users whose sessions come and go through two workers at once, each round joining a
/// new session while leaving the previous one: whatever order the workers see them
/// in, each user's events alternate joined/left, the last is `left`, and the
/// decisions were read from the workers' views.
#[tokio::test]
async fn sessions_racing_through_two_workers_announce_each_transition_once() {
    const USERS: usize = 6;
    const ROUNDS: usize = 12;
    let server = run_server();
    let _w1 = steady_worker(&server).await;
    let _w2 = steady_worker(&server).await;
    let js = server.jetstream().await;
    let clients = [server.client().await, server.client().await];
    let general = room("general");

    futures::stream::iter(0..USERS)
        .for_each_concurrent(USERS, |u| {
            let (clients, general) = (&clients, &general);
            async move {
                let name = user(&format!("user{u}"));
                let mut previous: Option<SessionId> = None;
                for round in 0..ROUNDS {
                    let session = SessionId::random();
                    let (a, b) = (&clients[round % 2], &clients[(round + 1) % 2]);
                    let joining = presence(a, general, &name, PresenceAction::Join, session);
                    let leaving = async {
                        match previous {
                            Some(old) => {
                                Some(presence(b, general, &name, PresenceAction::Leave, old).await)
                            }
                            None => None,
                        }
                    };
                    let (joined, left) = futures::join!(joining, leaving);
                    assert_eq!(joined["ok"], true, "{joined}");
                    if let Some(left) = left {
                        assert_eq!(left["ok"], true, "{left}");
                    }
                    previous = Some(session);
                }
                let last = previous.unwrap();
                let reply =
                    presence(&clients[0], general, &name, PresenceAction::Leave, last).await;
                assert_eq!(reply["ok"], true, "{reply}");
            }
        })
        .await;
    settled(&js).await;

    assert!(users(&clients[0], &general).await.is_empty());
    let announced = js.get_key_value(PRESENCE_USERS_BUCKET).await.unwrap();
    for u in 0..USERS {
        let name = user(&format!("user{u}"));
        let kinds: Vec<SystemKind> = events_of(&js, &general, &name)
            .await
            .into_iter()
            .map(|(kind, _)| kind)
            .collect();
        assert!(
            kinds.len() >= 2 && kinds.len().is_multiple_of(2),
            "{name}: {kinds:?}"
        );
        for (i, kind) in kinds.iter().enumerate() {
            let expected = if i % 2 == 0 {
                SystemKind::Joined
            } else {
                SystemKind::Left
            };
            assert_eq!(*kind, expected, "{name}: {kinds:?}");
        }
        let key = presence_users_key(&general, &name);
        let state: AnnouncedState =
            serde_json::from_slice(&announced.get(&key).await.unwrap().unwrap()).unwrap();
        assert!(!state.online && state.pending.is_none(), "{key}: {state:?}");
        assert!(state.listed_through.is_some(), "{key}: {state:?}");
    }
    let stats = presence_stats(&clients[0], 2).await;
    assert!(total(&stats, "view_decisions") > 0, "{stats:?}");
}

/// A decision that requires more than the view can reach (here: a state claiming to
/// know a sequence the bucket never had, as after the bucket was recreated) lists
/// from the server instead, decides right, and records how far it really knew, so the
/// next decision is read from the view again.
#[tokio::test]
async fn a_decision_the_view_cannot_reach_is_listed_from_the_server() {
    let server = run_server();
    let _worker = steady_worker(&server).await;
    let client = server.client().await;
    let js = server.jetstream().await;
    let (general, bob) = (room("general"), user("bob"));

    // Let the view catch up with the (empty) bucket first, so that only the state
    // below can send the decision to the server.
    let warm_up = SessionId::random();
    join(&client, &general, &user("alice"), warm_up).await;

    let announced = js.get_key_value(PRESENCE_USERS_BUCKET).await.unwrap();
    let key = presence_users_key(&general, &bob);
    let future = AnnouncedState {
        online: false,
        pending: None,
        listed_through: Some(1_000_000_000),
        batch: None,
    };
    announced
        .put(&key, serde_json::to_vec(&future).unwrap().into())
        .await
        .unwrap();
    let before = presence_stats(&client, 1).await;

    let session = SessionId::random();
    let reply = join(&client, &general, &bob, session).await;
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(reply["users"], 2, "{reply}");
    let after = presence_stats(&client, 1).await;
    assert!(
        total(&after, "server_decisions") > total(&before, "server_decisions"),
        "{after:?}"
    );
    let state: AnnouncedState =
        serde_json::from_slice(&announced.get(&key).await.unwrap().unwrap()).unwrap();
    assert!(state.online && state.pending.is_none(), "{state:?}");
    let sessions = js.get_key_value(PRESENCE_BUCKET).await.unwrap();
    let last = sessions
        .stream
        .clone()
        .info()
        .await
        .unwrap()
        .state
        .last_sequence;
    assert!(
        state.listed_through.is_some_and(|s| s <= last),
        "healed: {state:?}, bucket at {last}"
    );

    let reply = leave(&client, &general, &bob, session).await;
    assert_eq!(reply["ok"], true, "{reply}");
    settled(&js).await;
    wait_for_events(
        &js,
        &general,
        &bob,
        &[
            (SystemKind::Joined, chat_protocol::body::Reason::Join),
            (SystemKind::Left, chat_protocol::body::Reason::Leave),
        ],
    )
    .await;
}
