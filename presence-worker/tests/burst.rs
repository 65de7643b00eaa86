//! A burst of 500 joins across 50 rooms on two workers (some users with two sessions,
//! joining through either worker at once), then a burst of leaves: every user gets
//! exactly one `joined` and one `left`, and KV and the streams agree.

mod common;

use std::collections::BTreeSet;

use chat_protocol::body::{Reason, SystemKind};
use chat_protocol::streams::PRESENCE_BUCKET;
use chat_protocol::{RoomName, SessionId, UserName};
use common::*;
use futures::StreamExt;
use presence_worker::{presence_users_key, AnnouncedState, PRESENCE_USERS_BUCKET};
use test_support::run_server;

const ROOMS: usize = 50;
/// Per room: 8 users, two of them with a second session: 10 joins.
const USERS: usize = 8;
const DOUBLE: usize = 2;

#[tokio::test]
async fn burst_of_500_joins_across_50_rooms() {
    let server = run_server();
    let _w1 = steady_worker(&server).await;
    let _w2 = steady_worker(&server).await;
    let client = server.client().await;
    let js = server.jetstream().await;

    let mut sessions: Vec<(RoomName, UserName, SessionId)> = Vec::new();
    for r in 0..ROOMS {
        for u in 0..USERS {
            let repeat = if u < DOUBLE { 2 } else { 1 };
            for _ in 0..repeat {
                sessions.push((
                    room(&format!("room-{r}")),
                    user(&format!("user{u}")),
                    SessionId::random(),
                ));
            }
        }
    }
    assert_eq!(sessions.len(), 500);

    let burst = |action: chat_protocol::body::PresenceAction| {
        let client = client.clone();
        futures::stream::iter(sessions.clone())
            .map(move |(r, u, s)| {
                let client = client.clone();
                async move { presence(&client, &r, &u, action, s).await }
            })
            .buffer_unordered(100)
            .collect::<Vec<_>>()
    };
    for reply in burst(chat_protocol::body::PresenceAction::Join).await {
        assert_eq!(reply["ok"], true, "{reply}");
    }

    let kv = js.get_key_value(PRESENCE_BUCKET).await.unwrap();
    let keys: Vec<String> = kv.keys().await.unwrap().map(|k| k.unwrap()).collect().await;
    assert_eq!(keys.len(), 500, "one live key per session");
    let expected_users: Vec<String> = (0..USERS).map(|u| format!("user{u}")).collect();
    let announced = js.get_key_value(PRESENCE_USERS_BUCKET).await.unwrap();
    for r in 0..ROOMS {
        let room = room(&format!("room-{r}"));
        assert_eq!(users(&client, &room).await, expected_users);
        let events = events(&js, &room).await;
        let joined: Vec<&UserName> = events.iter().map(|e| &e.user).collect();
        let distinct: BTreeSet<&UserName> = joined.iter().copied().collect();
        assert_eq!(
            joined.len(),
            USERS,
            "one joined per user in {room}: {events:?}"
        );
        assert_eq!(distinct.len(), USERS);
        assert!(events
            .iter()
            .all(|e| e.kind == SystemKind::Joined && e.reason == Reason::Join));
        for u in 0..USERS {
            let key = presence_users_key(&room, &user(&format!("user{u}")));
            let state: AnnouncedState =
                serde_json::from_slice(&announced.get(&key).await.unwrap().unwrap()).unwrap();
            assert!(state.online && state.pending.is_none(), "{key}: {state:?}");
        }
    }

    for reply in burst(chat_protocol::body::PresenceAction::Leave).await {
        assert_eq!(reply["ok"], true, "{reply}");
    }
    settled(&js).await;
    let keys: Vec<String> = kv.keys().await.unwrap().map(|k| k.unwrap()).collect().await;
    assert!(keys.is_empty(), "no live session left: {keys:?}");
    for r in 0..ROOMS {
        let room = room(&format!("room-{r}"));
        assert!(users(&client, &room).await.is_empty());
        for u in 0..USERS {
            assert_eq!(
                events_of(&js, &room, &user(&format!("user{u}"))).await,
                [
                    (SystemKind::Joined, Reason::Join),
                    (SystemKind::Left, Reason::Leave)
                ]
            );
        }
    }
}
