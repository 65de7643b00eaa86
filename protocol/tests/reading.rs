//! The shared stream reader against a real room stream: exact `more` flags, cursors past
//! the end, filters, and no consumer left behind.

use async_nats::jetstream::{self, stream::Stream};
use chat_protocol::reading::{read_backward, read_forward, Limits};
use chat_protocol::streams::{room_stream_config, RoomStreamSettings};
use chat_protocol::{subjects, RoomName, UserName};
use futures::TryStreamExt;

const LIMITS: Limits = Limits {
    messages: 10,
    bytes: 1 << 20,
};

/// A room whose messages are from `senders[i]` at sequence `i + 1`.
async fn room_with(js: &jetstream::Context, senders: &[&str]) -> (Stream, RoomName) {
    let room = RoomName::new("general").unwrap();
    let stream = js
        .create_stream(room_stream_config(&room, &RoomStreamSettings::default()))
        .await
        .unwrap();
    for sender in senders {
        let subject = subjects::room_message(&room, &UserName::new(*sender).unwrap());
        js.publish(subject, r#"{"text":"hi"}"#.into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    (stream, room)
}

fn seqs(messages: &[chat_protocol::reading::StoredMessage]) -> Vec<u64> {
    messages.iter().map(|m| m.seq).collect()
}

#[tokio::test]
async fn backward_more_is_exact_when_a_page_fills_at_a_window_start() {
    // 100 messages; alice sent ten of the newest 64 (one window for a limit of 10),
    // and, in the second case, also message 5.
    let alices: Vec<u64> = (0..10).map(|i| 40 + i * 6).collect();
    for older in [None, Some(5u64)] {
        let server = test_support::run_server();
        let js = server.jetstream().await;
        let mut senders = vec!["bob"; 100];
        for seq in alices.iter().chain(older.as_ref()) {
            senders[*seq as usize - 1] = "alice";
        }
        let (stream, room) = room_with(&js, &senders).await;
        let alice = subjects::room_message(&room, &UserName::new("alice").unwrap());
        let (page, more) = read_backward(&stream, &alice, u64::MAX, LIMITS)
            .await
            .unwrap();
        assert_eq!(seqs(&page), alices);
        assert_eq!(more, older.is_some(), "older message from alice: {older:?}");
        let (page, more) = read_backward(&stream, &alice, alices[0], LIMITS)
            .await
            .unwrap();
        assert_eq!(seqs(&page), Vec::from_iter(older));
        assert!(!more);
    }
}

#[tokio::test]
async fn reads_past_the_end_and_leave_no_consumer_behind() {
    let server = test_support::run_server();
    let js = server.jetstream().await;
    let (mut stream, room) = room_with(&js, &["alice"; 25]).await;
    let all = subjects::room_all(&room);

    let (page, more) = read_backward(&stream, &all, u64::MAX, LIMITS)
        .await
        .unwrap();
    assert_eq!(seqs(&page), (16..=25).collect::<Vec<_>>());
    assert!(more);
    let (page, more) = read_backward(&stream, &all, 11, LIMITS).await.unwrap();
    assert_eq!(seqs(&page), (1..=10).collect::<Vec<_>>());
    assert!(!more);
    let (page, more) = read_forward(&stream, &all, 16, u64::MAX, LIMITS)
        .await
        .unwrap();
    assert_eq!(seqs(&page), (16..=25).collect::<Vec<_>>());
    assert!(!more);
    let (page, more) = read_forward(&stream, &all, 26, u64::MAX, LIMITS)
        .await
        .unwrap();
    assert!(page.is_empty() && !more);

    let consumers: Vec<String> = stream.consumer_names().try_collect().await.unwrap();
    assert_eq!(consumers, Vec::<String>::new());
    assert_eq!(stream.info().await.unwrap().state.consumer_count, 0);
}
