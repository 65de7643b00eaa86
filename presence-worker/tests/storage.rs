//! One room cannot fill the store: each room stream has a byte cap discarding the
//! oldest, so a room at its cap keeps taking messages and never blocks joins or other
//! rooms; the `CHAT` account has a storage budget the caps are reserved in.

mod common;

use async_nats::jetstream;
use chat_protocol::body::{ChatMessage, MessageKind};
use chat_protocol::streams::stream_name;
use chat_protocol::{subjects, RoomName, SessionId, UserName};
use chat_runtime::storage::RoomStreamSettings;
use common::*;
use presence_worker::Config;
use test_support::run_server;

/// The small cap the test's worker gives rooms.
const CAP: i64 = 256 * 1024;

/// Publishes a message of about `bytes` as `user` into `room` and waits for its ack.
async fn say(js: &jetstream::Context, room: &RoomName, user: &UserName, text: &str) -> u64 {
    let message = ChatMessage::new(room, user, MessageKind::Chat, text).unwrap();
    let body = serde_json::to_vec(&message).unwrap();
    js.publish(subjects::room_message(room, user), body.into())
        .await
        .expect("published")
        .await
        .expect("stored")
        .sequence
}

async fn state(js: &jetstream::Context, room: &RoomName) -> jetstream::stream::State {
    let mut stream = js.get_stream(stream_name(room)).await.expect("stream");
    stream.info().await.expect("stream info").state.clone()
}

#[tokio::test]
async fn a_full_room_keeps_taking_messages_and_blocks_no_join_or_other_room() {
    let server = run_server();
    let config = Config {
        ttl: STEADY_TTL,
        streams: RoomStreamSettings {
            max_bytes: CAP,
            ..RoomStreamSettings::default()
        },
        ..test_config()
    };
    let _worker = worker_with(&server, config).await;
    let (full, other) = (room("full"), room("other"));
    let (alice, bob) = (user("alice"), user("bob"));
    let alice_client = server.user_client("alice").await;
    let bob_client = server.user_client("bob").await;
    let reply = join(&alice_client, &full, &alice, SessionId::random()).await;
    assert_eq!(reply["ok"], true, "{reply}");

    // The room stream carries the cap, discarding the oldest.
    let admin = server.jetstream().await;
    let mut stream = admin.get_stream(stream_name(&full)).await.unwrap();
    let config = stream.info().await.unwrap().config.clone();
    assert_eq!(config.max_bytes, CAP);
    assert_eq!(config.discard, jetstream::stream::DiscardPolicy::Old);

    // Fill it three times over with messages of about 3,900 characters.
    let alice_js = jetstream::new(alice_client.clone());
    let text = "x".repeat(3900);
    let mut last = 0;
    let mut sent = 0;
    while (sent as i64) < 3 * CAP {
        last = say(&alice_js, &full, &alice, &text).await;
        sent += text.len();
    }
    let at_cap = state(&admin, &full).await;
    assert!(at_cap.bytes as i64 <= CAP, "{} bytes stored", at_cap.bytes);
    assert!(at_cap.first_sequence > 1, "the oldest were discarded");
    assert_eq!(at_cap.last_sequence, last);

    // The full room still takes messages (discarding the oldest) and joins.
    let newest = say(&alice_js, &full, &alice, "still talking").await;
    assert_eq!(newest, last + 1);
    let reply = join(&bob_client, &full, &bob, SessionId::random()).await;
    assert_eq!(reply["ok"], true, "{reply}");
    let after = state(&admin, &full).await;
    assert!(after.first_sequence > at_cap.first_sequence);
    assert!(after.bytes as i64 <= CAP);

    // Another room is created, joined and written as usual.
    let reply = join(&bob_client, &other, &bob, SessionId::random()).await;
    assert_eq!(reply["ok"], true, "{reply}");
    let bob_js = jetstream::new(bob_client.clone());
    say(&bob_js, &other, &bob, "hello in another room").await;
    assert_eq!(state(&admin, &other).await.messages, 2, "joined + message");

    // The account has a storage budget, which holds the caps' reservations.
    let account = admin.query_account().await.unwrap();
    assert!(
        account.limits.max_storage.is_some_and(|max| max > 0),
        "{:?}",
        account.limits
    );
}

/// A room holds more members online than nats-server 2.15's default of 1,000
/// consumers per stream: each member's live feed is a consumer of the room's stream,
/// and the `CHAT` account lifts that cap (nats/nats-server.conf.template).
#[tokio::test]
async fn a_room_holds_more_than_a_thousand_feeds() {
    let server = run_server();
    let js = server.jetstream().await;
    let room = RoomName::new("crowded").unwrap();
    let config = chat_runtime::storage::room_stream_config(&room, &test_support::room_settings());
    let stream = js.create_stream(config).await.expect("room stream");
    // What a member's live feed makes: an ephemeral ordered consumer.
    for n in 1..=1_100 {
        let feed = jetstream::consumer::pull::OrderedConfig::default();
        if let Err(err) = stream.create_consumer(feed).await {
            panic!("the feed of member {n} was refused: {err}");
        }
    }
}
