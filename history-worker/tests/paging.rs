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
