//! The shared stream reader against a real room stream: exact `more` flags, cursors past
//! the end, filters, and no consumer left behind.

use async_nats::jetstream::{self, stream::Stream};
use chat_protocol::{subjects, RoomName, UserName};
use chat_runtime::reading::{fetch_forward, read_backward, Limits, ReadError};
use chat_runtime::storage::{room_stream_config, RoomStreamSettings};
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

fn seqs(messages: &[chat_runtime::reading::StoredMessage]) -> Vec<u64> {
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

    let consumers: Vec<String> = stream.consumer_names().try_collect().await.unwrap();
    assert_eq!(consumers, Vec::<String>::new());
    assert_eq!(stream.info().await.unwrap().state.consumer_count, 0);
}

#[tokio::test]
async fn fetched_pages_step_over_gaps_filter_bound_and_end_exactly() {
    let server = test_support::run_server();
    let js = server.jetstream().await;
    let senders: Vec<&str> = (0..30)
        .map(|i| if i % 3 == 0 { "alice" } else { "bob" })
        .collect();
    let (stream, room) = room_with(&js, &senders).await;
    // A handle without a stream lookup, as the history worker uses.
    let name = stream.cached_info().config.name.clone();
    let handle = js.get_stream_no_info(&name).await.unwrap();
    let all = subjects::room_all(&room);
    let alice = subjects::room_message(&room, &UserName::new("alice").unwrap());
    // Deleted messages leave gaps that the read steps over.
    for seq in [2, 3, 11] {
        stream.delete_message(seq).await.unwrap();
    }
    let (page, more) = fetch_forward(&handle, None, 1, LIMITS).await.unwrap();
    assert_eq!(seqs(&page), [1, 4, 5, 6, 7, 8, 9, 10, 12, 13]);
    assert!(more);
    assert_eq!(page[0].subject, alice);
    assert_eq!(&page[0].payload[..], br#"{"text":"hi"}"#);
    let stored = stream.get_raw_message(1).await.unwrap();
    assert_eq!(
        page[0].time.timestamp_nanos_opt(),
        Some(stored.time.unix_timestamp_nanos() as i64)
    );
    // A filter matching everything reads the same.
    let (same, more) = fetch_forward(&handle, Some(&all), 1, LIMITS).await.unwrap();
    assert_eq!(seqs(&same), seqs(&page));
    assert!(more);
    // A filter: alice sent 1, 4, 7, ... 28; `more` is exact at the end of the stream.
    let (page, more) = fetch_forward(&handle, Some(&alice), 5, LIMITS)
        .await
        .unwrap();
    assert_eq!(seqs(&page), (7..=28).step_by(3).collect::<Vec<_>>());
    assert!(!more);
    // A page ending exactly at the end of the stream.
    let (page, more) = fetch_forward(&handle, None, 21, LIMITS).await.unwrap();
    assert_eq!(seqs(&page), (21..=30).collect::<Vec<_>>());
    assert!(!more);
    // An empty range: past the end, or nothing matching.
    let (page, more) = fetch_forward(&handle, None, 31, LIMITS).await.unwrap();
    assert!(page.is_empty() && !more);
    let carol = subjects::room_message(&room, &UserName::new("carol").unwrap());
    let (page, more) = fetch_forward(&handle, Some(&carol), 1, LIMITS)
        .await
        .unwrap();
    assert!(page.is_empty() && !more);
    // The byte bound (the server counts subjects and headers too) cuts a page short,
    // and paging on from its last message reads everything.
    let tight = Limits {
        messages: 10,
        bytes: 400,
    };
    let mut read = Vec::new();
    let mut from = 1;
    loop {
        let (page, more) = fetch_forward(&handle, None, from, tight).await.unwrap();
        assert!(!page.is_empty() && page.len() < 10, "{}", page.len());
        read.extend(seqs(&page));
        if !more {
            break;
        }
        from = read.last().unwrap() + 1;
    }
    let mut expected: Vec<u64> = (1..=30).collect();
    expected.retain(|s| ![2, 3, 11].contains(s));
    assert_eq!(read, expected);
    // No stream.
    let missing = js.get_stream_no_info("CHAT_nowhere").await.unwrap();
    let error = fetch_forward(&missing, None, 1, LIMITS).await.unwrap_err();
    assert!(matches!(error, ReadError::NoStream), "{error:?}");
    // The consumers go away once their pages are read.
    let gone = async {
        while stream.get_info().await.unwrap().state.consumer_count > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(30), gone)
        .await
        .expect("no consumer left behind");
}
