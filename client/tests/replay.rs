//! `#all_messages` and `#my_messages` read the room stream with the client's own
//! ordered consumer, as the history worker plans it (`chat.replay.<room>`), on the real
//! stack with the real auth: deleted messages are not shown, the reader's consumer is
//! gone afterwards, and nobody can have the worker feed another user's inbox or read
//! what they may not.

mod common;

use std::time::Duration;

use async_nats::jetstream::consumer::pull::OrderedConfig;
use async_nats::jetstream::stream::Stream;
use chat_client::Event;
use chat_protocol::body::{ModerationRequest, ReplayPlan};
use common::*;
use futures::StreamExt;
use test_support::moderation::{contract, moderate, stack};

/// The names of the consumers on `stream`.
async fn consumers(stream: &Stream) -> Vec<String> {
    let mut names: Vec<String> = stream
        .consumer_names()
        .map(|name| name.unwrap())
        .collect()
        .await;
    names.sort();
    names
}

/// Waits (up to 10 s) until `stream` holds exactly the consumers in `expected`.
async fn consumers_back_to(stream: &Stream, expected: &[String]) {
    for _ in 0..100 {
        if consumers(stream).await == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        consumers(stream).await,
        expected,
        "a replay left its consumer"
    );
}

/// The texts of the replayed messages up to `history_end`, and its count.
async fn replayed(events: &mut tokio::sync::mpsc::Receiver<Event>) -> (Vec<String>, u64) {
    let mut texts = Vec::new();
    let count = wait_for(events, |e| match e {
        Event::Message {
            text, replay: true, ..
        } => {
            texts.push(text.clone());
            None
        }
        Event::HistoryEnd { count, .. } => Some(*count),
        _ => None,
    })
    .await;
    (texts, count)
}

#[tokio::test]
async fn replays_skip_deleted_messages_and_leave_no_consumer() {
    let server = stack(1, contract(60));
    let _presence = presence(&server).await;
    let _history = history(&server).await;
    let general = room("general");
    let (alice, mut alice_events) = joined(&server, "alice", &general, 0).await;
    let mut seqs = Vec::new();
    for i in 0..5 {
        seqs.push(say(&alice, &general, &format!("m{i}")).await);
    }
    // Alice deletes her own m2 through the moderation worker, as `/delete` does.
    let raw_alice = server.user_client("alice").await;
    moderate(
        &raw_alice,
        "general",
        "alice",
        &ModerationRequest::delete(seqs[2]),
    )
    .await
    .expect("an author may delete her message");
    let (bob, mut bob_events) = joined(&server, "bob", &general, 0).await;
    let stream = server
        .jetstream()
        .await
        .get_stream("CHAT_general")
        .await
        .unwrap();
    // The live feeds of alice and bob.
    let feeds = consumers(&stream).await;

    assert_eq!(bob.all_messages(&general).await, Ok(4));
    let (texts, count) = replayed(&mut bob_events).await;
    assert_eq!(texts, ["m0", "m1", "m3", "m4"]);
    assert_eq!(count, 4);
    consumers_back_to(&stream, &feeds).await;

    while alice_events.try_recv().is_ok() {}
    assert_eq!(alice.my_messages(&general).await, Ok(4));
    let (texts, _) = replayed(&mut alice_events).await;
    assert_eq!(texts, ["m0", "m1", "m3", "m4"]);
    consumers_back_to(&stream, &feeds).await;
}

#[tokio::test]
async fn nobody_can_have_another_inbox_fed_or_read_what_it_may_not() {
    let server = test_support::run_server();
    let _presence = presence(&server).await;
    let _history = history(&server).await;
    let general = room("general");
    let (alice, _alice_events) = joined(&server, "alice", &general, 0).await;
    for i in 0..50 {
        say(&alice, &general, &format!("m{i}")).await;
    }
    let stream = server
        .jetstream()
        .await
        .get_stream("CHAT_general")
        .await
        .unwrap();
    let feeds = consumers(&stream).await;
    let bob = server.user_client("bob").await;
    let mut bob_inbox = bob.subscribe("_INBOX_bob.>").await.unwrap();
    bob.flush().await.unwrap();

    // Mallory asks for a replay with bob's inbox as the reply subject (nats-server
    // 2.15 does not check reply subjects against publish permissions): the worker
    // answers one small plan and sets up no delivery, so no message of the room ever
    // reaches bob.
    let mallory = server.user_client("mallory").await;
    mallory
        .publish_with_reply("chat.replay.general", "_INBOX_bob.stolen", "".into())
        .await
        .unwrap();
    mallory.flush().await.unwrap();
    let mut received = Vec::new();
    while let Ok(Some(message)) =
        tokio::time::timeout(Duration::from_secs(2), bob_inbox.next()).await
    {
        received.push(message);
    }
    assert!(received.len() <= 1, "{} messages fed", received.len());
    for message in &received {
        let plan: ReplayPlan = serde_json::from_slice(&message.payload).expect("only a plan");
        assert_eq!(plan.stream, "CHAT_general");
    }
    assert_eq!(consumers(&stream).await, feeds, "the worker set up nothing");

    // Following a plan is the reader's own consumer under its own permissions: a room
    // stream is readable, the private buckets are not, whatever a plan might say.
    let js = async_nats::jetstream::new(mallory.clone());
    let room_stream = js.get_stream_no_info("CHAT_general").await.unwrap();
    let consumer = room_stream
        .create_consumer(OrderedConfig::default())
        .await
        .expect("a chat user reads room streams");
    assert_eq!(
        consumer.cached_info().num_pending,
        51,
        "50 messages, a join"
    );
    for private in ["KV_chat_presence", "KV_chat_presence_users"] {
        let private = js.get_stream_no_info(private).await.unwrap();
        assert!(
            private
                .create_consumer(OrderedConfig::default())
                .await
                .is_err(),
            "mallory read a private stream"
        );
    }
}

/// The replay's consumer disappears mid-way (deleted by an operator here; a server
/// restart or a lost leader does the same): the client notices the quiet consumer,
/// follows again from the first sequence not shown, and the replay ends with every
/// message once, in order.
#[tokio::test]
async fn a_replay_whose_consumer_vanishes_resumes_without_gap_or_duplicate() {
    const TOTAL: usize = 20_000;
    let server = test_support::run_server();
    let _presence = presence(&server).await;
    let _history = history(&server).await;
    let general = room("general");
    let (alice, mut events) = joined(&server, "alice", &general, 0).await;
    let js = server.jetstream().await;
    let subject = chat_protocol::subjects::room_message(&general, &user("dave"));
    let mut acks = Vec::new();
    for i in 0..TOTAL {
        let body = format!(r#"{{"text":"m{i}"}}"#);
        acks.push(js.publish(subject.clone(), body.into()).await.unwrap());
        if acks.len() == 1000 {
            for ack in acks.drain(..) {
                ack.await.unwrap();
            }
        }
    }
    for ack in acks {
        ack.await.unwrap();
    }
    while tokio::time::timeout(Duration::from_millis(300), events.recv())
        .await
        .is_ok()
    {}
    let stream = js.get_stream("CHAT_general").await.unwrap();
    let feeds = consumers(&stream).await;

    let replay = {
        let alice = alice.clone();
        let general = general.clone();
        tokio::spawn(async move { alice.all_messages(&general).await })
    };
    let mut next = 0;
    let count = tokio::time::timeout(PATIENCE * 3, async {
        loop {
            match events.recv().await.unwrap() {
                Event::Message { text, replay, .. } if replay => {
                    assert_eq!(text, format!("m{next}"), "in order, none missing or twice");
                    next += 1;
                    if next == 3000 {
                        for name in consumers(&stream).await {
                            if !feeds.contains(&name) {
                                stream.delete_consumer(&name).await.unwrap();
                            }
                        }
                    }
                }
                Event::HistoryEnd { count, .. } => return count,
                _ => {}
            }
        }
    })
    .await
    .expect("the replay ends");
    assert_eq!((count as usize, next), (TOTAL, TOTAL));
    assert_eq!(replay.await.unwrap(), Ok(TOTAL as u64));
    consumers_back_to(&stream, &feeds).await;
}
