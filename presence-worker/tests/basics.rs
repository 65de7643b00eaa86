//! Join, heartbeat, leave, users and rooms against a real nats-server.

mod common;

use async_nats::jetstream::kv::Operation;
use chat_protocol::body::{PresenceRecord, Reason, SystemKind};
use chat_protocol::streams::{presence_key, stream_name, PRESENCE_BUCKET};
use chat_protocol::{subjects, SessionId};
use common::*;
use test_support::run_server;

#[tokio::test]
async fn join_heartbeat_leave() {
    let server = run_server();
    let _worker = steady_worker(&server).await;
    let client = server.client().await;
    let js = server.jetstream().await;
    let (general, alice) = (room("general"), user("alice"));
    let session = SessionId::random();

    let reply = join(&client, &general, &alice, session).await;
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(reply["room"], "general");
    assert_eq!(reply["users"], 1);
    assert_eq!(
        reply["heartbeat"],
        STEADY_TTL.as_secs() / 3,
        "a third of the TTL"
    );
    assert!(reply["welcome"].as_str().unwrap().contains("general"));
    assert!(reply.get("rejoined").is_none());

    // The room stream exists and holds the joined event.
    js.get_stream(stream_name(&general))
        .await
        .expect("room stream created");
    let evs = events(&js, &general).await;
    assert_eq!(evs.len(), 1);
    assert_eq!(evs[0].kind, SystemKind::Joined);
    assert_eq!(evs[0].reason, Reason::Join);
    assert_eq!(evs[0].users, 1);
    assert!(uuid::Uuid::parse_str(&evs[0].id).is_ok());

    // The session is in KV as the contract says.
    let kv = js.get_key_value(PRESENCE_BUCKET).await.unwrap();
    let key = presence_key(&general, &alice, &session);
    let record: PresenceRecord =
        serde_json::from_slice(&kv.get(&key).await.unwrap().expect("session key")).unwrap();
    assert_eq!(
        (record.room.clone(), record.user.clone()),
        (general.clone(), alice.clone())
    );
    assert_eq!(record.session, session);

    let reply = heartbeat(&client, &general, &alice, session).await;
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(reply["users"], 1);
    assert!(reply.get("rejoined").is_none(), "{reply}");
    let refreshed: PresenceRecord =
        serde_json::from_slice(&kv.get(&key).await.unwrap().unwrap()).unwrap();
    assert_eq!(refreshed.joined_at, record.joined_at);
    assert!(refreshed.last_seen >= record.last_seen);

    let reply = leave(&client, &general, &alice, session).await;
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(reply["users"], 0);
    assert!(kv.get(&key).await.unwrap().is_none(), "session removed");
    let entry = kv.entry(&key).await.unwrap().expect("purge marker");
    assert_eq!(entry.operation, Operation::Purge);
    assert_eq!(
        events_of(&js, &general, &alice).await,
        vec![
            (SystemKind::Joined, Reason::Join),
            (SystemKind::Left, Reason::Leave)
        ]
    );
    assert!(users(&client, &general).await.is_empty());
}

#[tokio::test]
async fn users_are_distinct_and_sorted_and_rooms_are_counted() {
    let server = run_server();
    let _worker = steady_worker(&server).await;
    let client = server.client().await;
    let (general, rust) = (room("general"), room("rust-dev"));
    for name in ["bob", "alice", "Carl", "alice"] {
        let reply = join(&client, &general, &user(name), SessionId::random()).await;
        assert_eq!(reply["ok"], true, "{reply}");
    }
    let reply = join(&client, &rust, &user("dora"), SessionId::random()).await;
    assert_eq!(reply["users"], 1);
    assert_eq!(users(&client, &general).await, ["Carl", "alice", "bob"]);
    assert_eq!(users(&client, &rust).await, ["dora"]);
    assert!(users(&client, &room("empty")).await.is_empty());

    // A chat message stored in rust-dev counts as a stored message.
    let js = server.jetstream().await;
    js.publish(
        subjects::room_message(&rust, &user("dora")),
        r#"{"text":"hi"}"#.into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    let (reply, _) = raw(&client, subjects::ROOMS, "").await;
    assert_eq!(
        reply,
        serde_json::json!({"rooms": [
            {"room": "general", "users": 3, "messages": 3},
            {"room": "rust-dev", "users": 1, "messages": 2},
        ]})
    );
}

#[tokio::test]
async fn a_user_with_two_sessions_is_one_user() {
    let server = run_server();
    let _worker = steady_worker(&server).await;
    let client = server.client().await;
    let js = server.jetstream().await;
    let (general, alice) = (room("general"), user("alice"));
    let (s1, s2) = (SessionId::random(), SessionId::random());
    assert_eq!(join(&client, &general, &alice, s1).await["users"], 1);
    assert_eq!(join(&client, &general, &alice, s2).await["users"], 1);
    assert_eq!(leave(&client, &general, &alice, s1).await["users"], 1);
    assert_eq!(users(&client, &general).await, ["alice"]);
    assert_eq!(
        events_of(&js, &general, &alice).await,
        vec![(SystemKind::Joined, Reason::Join)]
    );
    assert_eq!(leave(&client, &general, &alice, s2).await["users"], 0);
    assert_eq!(
        events_of(&js, &general, &alice).await,
        vec![
            (SystemKind::Joined, Reason::Join),
            (SystemKind::Left, Reason::Leave)
        ]
    );
}
