//! Paging over real room streams: both directions, the `user` filter, deleted
//! sequences, invalid stored messages and the byte bound.

mod common;

use chat_protocol::body::{HistoryPage, HistoryRequest, RoomPayload};
use chat_protocol::subjects;
use common::*;
use history_worker::{config::MIN_PAGE_BYTES, Config};

fn forward(limit: u32) -> HistoryRequest {
    HistoryRequest {
        limit: Some(limit),
        after: Some(0),
        ..Default::default()
    }
}

fn backward(limit: u32) -> HistoryRequest {
    HistoryRequest {
        limit: Some(limit),
        ..Default::default()
    }
}

#[tokio::test]
async fn pages_forwards_and_backwards_over_a_large_room() {
    let s = setup(Config::default()).await;
    let general = room("general");
    let (alice, bob) = (user("alice"), user("bob"));
    create_room(&s.js, &general).await;
    let mut items = vec![Item::Joined(&alice), Item::Joined(&bob)];
    items.extend(chats(&[&alice, &bob], 248));
    let stored = store(&s.js, &general, items).await;
    assert_eq!(stored, (1..=250).collect::<Vec<_>>());

    let (entries, sizes) = all_pages(&s.client, &general, forward(40), true).await;
    assert_eq!(seqs(&entries), stored);
    assert_eq!(sizes, vec![40, 40, 40, 40, 40, 40, 10]);
    // Bodies come back as stored, and decode the way live messages do.
    assert!(matches!(
        entries[0].decode().unwrap(),
        RoomPayload::System(_)
    ));
    match entries[2].decode().unwrap() {
        RoomPayload::Chat { user, message, .. } => {
            assert_eq!(user, alice);
            assert_eq!(message.text, "m0");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(entries[2].subject, subjects::room_message(&general, &alice));

    let (back, sizes) = all_pages(&s.client, &general, backward(40), true).await;
    assert_eq!(seqs(&back), stored);
    assert_eq!(sizes, vec![40, 40, 40, 40, 40, 40, 10]);
    assert_eq!(back, entries);

    // Defaults: the newest 100, and a cursor to go further back.
    let newest = page(&s.client, &general, &HistoryRequest::default()).await;
    assert_eq!(seqs(&newest.messages), (151..=250).collect::<Vec<_>>());
    assert_eq!(newest.next, Some(151));
    // Past either end: an empty page, no cursor.
    let past = HistoryRequest {
        after: Some(250),
        ..Default::default()
    };
    assert_eq!(page(&s.client, &general, &past).await.messages, vec![]);
    assert_eq!(page(&s.client, &general, &past).await.next, None);
    let before_start = HistoryRequest {
        before: Some(1),
        ..Default::default()
    };
    let empty = page(&s.client, &general, &before_start).await;
    assert!(empty.messages.is_empty() && empty.next.is_none());
}

#[tokio::test]
async fn a_limit_above_the_cap_is_capped() {
    let s = setup(Config {
        max_limit: 25,
        ..Config::default()
    })
    .await;
    let general = room("general");
    let alice = user("alice");
    create_room(&s.js, &general).await;
    store(&s.js, &general, chats(&[&alice], 60)).await;
    let (entries, sizes) = all_pages(&s.client, &general, forward(1000), true).await;
    assert_eq!(seqs(&entries), (1..=60).collect::<Vec<_>>());
    assert_eq!(sizes, vec![25, 25, 10]);
}

#[tokio::test]
async fn the_user_filter_keeps_only_that_users_messages() {
    let s = setup(Config::default()).await;
    let general = room("general");
    let (alice, bob, carol) = (user("alice"), user("bob"), user("carol"));
    create_room(&s.js, &general).await;
    let mut items = vec![Item::Joined(&alice)];
    items.extend(chats(&[&alice, &bob, &carol, &bob], 200));
    items.push(Item::Joined(&bob));
    let stored = store(&s.js, &general, items).await;
    // bob sent items 2, 4 of every 4 chats: stream sequences 3, 5, 7, ... (1 is the joined).
    let bobs: Vec<u64> = stored[1..201]
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, seq)| *seq)
        .collect();
    assert_eq!(bobs.len(), 100);

    for first in [forward(30), backward(30)] {
        let request = HistoryRequest {
            user: Some(bob.clone()),
            ..first
        };
        let (entries, sizes) = all_pages(&s.client, &general, request, true).await;
        assert_eq!(seqs(&entries), bobs);
        assert_eq!(sizes.iter().sum::<usize>(), 100);
        assert!(entries
            .iter()
            .all(|e| e.subject == subjects::room_message(&general, &bob)));
    }
    // A user who never spoke: nothing, and no cursor.
    let nobody = HistoryRequest {
        user: Some(user("dave")),
        ..Default::default()
    };
    let page = page(&s.client, &general, &nobody).await;
    assert!(page.messages.is_empty() && page.next.is_none());
}

#[tokio::test]
async fn deleted_sequences_are_simply_absent() {
    let s = setup(Config::default()).await;
    let general = room("general");
    let alice = user("alice");
    let stream = create_room(&s.js, &general).await;
    let stored = store(&s.js, &general, chats(&[&alice], 60)).await;
    let deleted: Vec<u64> = (20..=35).chain([1, 2, 50, 60]).collect();
    for seq in &deleted {
        stream.delete_message(*seq).await.expect("delete");
    }
    let kept: Vec<u64> = stored
        .into_iter()
        .filter(|s| !deleted.contains(s))
        .collect();
    for first in [forward(7), backward(7)] {
        let (entries, _) = all_pages(&s.client, &general, first, true).await;
        assert_eq!(seqs(&entries), kept);
    }
}

#[tokio::test]
async fn invalid_stored_messages_are_skipped() {
    let s = setup(Config::default()).await;
    let general = room("general");
    let alice = user("alice");
    let msg = subjects::room_message(&general, &alice);
    let sys = subjects::room_system(&general);
    create_room(&s.js, &general).await;
    let raw = |subject: &str, body: &[u8]| Item::Raw(subject.to_string(), body.to_vec());
    let too_long = format!(r#"{{"text":"{}"}}"#, "x".repeat(4001));
    let items = vec![
        Item::Chat(&alice, "first".into()),
        raw(&msg, b"not json"),
        raw(&msg, b"\xff\xfe{"),
        raw(&msg, too_long.as_bytes()),
        raw(&msg, br#"{"text":"wrong room","room":"other"}"#),
        raw(&sys, br#"{"type":"joined"}"#),
        raw("chat.room.general.weird", br#"{"text":"odd subject"}"#),
        Item::Chat(&alice, "second".into()),
        raw(&msg, br#"{"text":"from a script"}"#),
        raw(&msg, b""),
    ];
    let stored = store(&s.js, &general, items).await;
    let valid = vec![stored[0], stored[7], stored[8]];
    // Small pages, so that some pages hold nothing valid at all.
    for first in [forward(2), backward(2), forward(100), backward(100)] {
        let (entries, _) = all_pages(&s.client, &general, first, false).await;
        assert_eq!(seqs(&entries), valid);
        assert!(entries.iter().all(|e| e.decode().is_ok()));
    }
}

#[tokio::test]
async fn pages_stay_under_the_byte_bound_with_large_messages() {
    let s = setup(Config {
        max_page_bytes: MIN_PAGE_BYTES,
        ..Config::default()
    })
    .await;
    let general = room("general");
    let (alice, bob) = (user("alice"), user("bob"));
    create_room(&s.js, &general).await;
    // Control characters are escaped as \u00XX: six bytes per character on the wire,
    // the largest a valid text gets.
    let huge = "\u{1}".repeat(4000);
    let mut items: Vec<Item> = (0..30)
        .map(|i| {
            let who = if i % 3 == 0 { &bob } else { &alice };
            let text = if i % 2 == 0 {
                huge.clone()
            } else {
                format!("small {i}")
            };
            Item::Chat(who, text)
        })
        .collect();
    items.push(Item::Joined(&bob));
    // Many small messages: there the envelope (sequence, time, subject) weighs as much
    // as the bodies, so bounding the bodies alone would not be enough.
    items.extend(chats(&[&alice, &bob], 1500));
    let stored = store(&s.js, &general, items).await;
    for first in [forward(1000), backward(1000)] {
        let forward = first.after.is_some();
        let mut request = first;
        let mut seen = Vec::new();
        loop {
            let reply = request_raw(
                &s.client,
                subjects::history(&general),
                &serde_json::to_string(&request).unwrap(),
            )
            .await;
            assert!(
                reply.payload.len() <= MIN_PAGE_BYTES,
                "page of {} bytes",
                reply.payload.len()
            );
            let page: HistoryPage = serde_json::from_slice(&reply.payload).unwrap();
            assert!(!page.messages.is_empty());
            if forward {
                seen.extend(seqs(&page.messages));
                request.after = page.next;
            } else {
                seen.splice(0..0, seqs(&page.messages));
                request.before = page.next;
            }
            if page.next.is_none() {
                break;
            }
        }
        assert_eq!(seen, stored);
    }
}

/// A forward page whose messages fill the byte bound exactly. The server then ends the
/// pull silently (it sends the 409 "Message Size Exceeds MaxBytes" only when a message
/// does not fit), so a reader waiting for the end of the batch waited until its
/// timeout, after the client had given up, and again on every retry: the bench's
/// history replay stalled this way on whichever page happened to fill its bound.
#[tokio::test]
async fn a_page_filling_the_byte_bound_exactly_comes_back() {
    let server = test_support::run_server();
    let client = server.client().await;
    let js = async_nats::jetstream::new(client.clone());
    let general = room("general");
    let (alice, bob) = (user("alice"), user("bob"));
    let stream = create_room(&js, &general).await;
    let texts = (0..400).map(|i| format!("{i} {}", "y".repeat(100 + i % 7)));
    let items = texts
        .enumerate()
        .map(|(i, text)| Item::Chat(if i % 2 == 0 { &alice } else { &bob }, text))
        .collect();
    let stored = store(&js, &general, items).await;

    // What the server counts against a pull's byte bound for each message, read with
    // a consumer like the worker's: subject, reply subject, headers and body, which is
    // what the client library reports as a message's length.
    let consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::Config {
            ack_policy: async_nats::jetstream::consumer::AckPolicy::None,
            deliver_policy: async_nats::jetstream::consumer::DeliverPolicy::ByStartSequence {
                start_sequence: 1,
            },
            memory_storage: true,
            num_replicas: 1,
            inactive_threshold: std::time::Duration::from_secs(30),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut batch = consumer
        .fetch()
        .max_messages(stored.len())
        .messages()
        .await
        .unwrap();
    let mut exact = 0;
    let mut fitting = 0;
    while exact < MIN_PAGE_BYTES {
        let message = futures::StreamExt::next(&mut batch).await.unwrap().unwrap();
        exact += message.length;
        fitting += 1;
    }
    assert!(fitting < stored.len(), "the room fills more than one page");

    let config = Config {
        max_page_bytes: exact,
        ..Config::default()
    };
    let _worker = history_worker::HistoryWorker::start(server.history_client().await, config)
        .await
        .expect("worker starts");
    let mut request = forward(1000);
    let mut seen = Vec::new();
    loop {
        // Within the client's own patience (10 s), which the worker's read timeout
        // matches: a stalled read answers too late.
        let reply = tokio::time::timeout(
            std::time::Duration::from_secs(8),
            client.request(
                subjects::history(&general),
                serde_json::to_vec(&request).unwrap().into(),
            ),
        )
        .await
        .unwrap_or_else(|_| panic!("no page after {:?} in time", request.after))
        .expect("a reply");
        let page: HistoryPage = chat_protocol::body::decode_reply(&reply.payload).unwrap();
        assert!(page.messages.len() <= fitting);
        seen.extend(seqs(&page.messages));
        match page.next {
            Some(next) => request.after = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, stored);
}
