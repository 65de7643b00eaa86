//! The client end to end against a real nats-server and an in-process presence worker.

mod common;

use std::time::Duration;

use async_nats::jetstream::message::PublishMessage;
use chat_client::command::{self, CommandError};
use chat_client::publish::Publisher;
use chat_client::render::{self, Style};
use chat_client::{Event, RetryPolicy, SendError};
use chat_protocol::body::{ChatMessage, MessageKind};
use chat_protocol::{streams, subjects};
use common::*;
use futures::future::join_all;

#[tokio::test]
async fn two_clients_exchange_messages_in_order() {
    let server = test_support::run_server();
    let _presence = presence(&server).await;
    let general = room("general");
    let (alice, mut alice_events) = connect(&server, "alice").await;
    let (bob, mut bob_events) = connect(&server, "bob").await;
    join(&alice, &mut alice_events, &general, 0).await;
    join(&bob, &mut bob_events, &general, 0).await;

    let mut handles = Vec::new();
    for i in 0..20 {
        handles.push(
            alice
                .send(&general, MessageKind::Chat, &format!("m{i}"))
                .await
                .unwrap(),
        );
    }
    for handle in handles {
        handle.acked().await.unwrap();
    }
    let got = messages(&mut bob_events, &general, 20).await;
    let texts: Vec<_> = got.iter().map(|(_, t, _)| t.clone()).collect();
    let expected: Vec<_> = (0..20).map(|i| format!("m{i}")).collect();
    assert_eq!(texts, expected);
    assert!(got.windows(2).all(|w| w[0].0 < w[1].0), "sequences ascend");
    assert!(got.iter().all(|(_, _, replay)| !replay));

    bob.send(&general, MessageKind::Me, "waves back")
        .await
        .unwrap()
        .acked()
        .await
        .unwrap();
    let from_bob = wait_for(&mut alice_events, |e| match e {
        Event::Message {
            user, kind, text, ..
        } if user.as_str() == "bob" => Some((*kind, text.clone())),
        _ => None,
    })
    .await;
    assert_eq!(from_bob, (MessageKind::Me, "waves back".to_string()));
    assert!(alice.close().await.is_empty());
    assert!(bob.close().await.is_empty());
}

#[tokio::test]
async fn replay_on_join_returns_exactly_the_last_n() {
    let server = test_support::run_server();
    let _presence = presence(&server).await;
    let general = room("general");
    let (alice, _alice_events) = joined(&server, "alice", &general, 0).await;
    let mut handles = Vec::new();
    for i in 0..30 {
        handles.push(
            alice
                .send(&general, MessageKind::Chat, &format!("m{i}"))
                .await
                .unwrap(),
        );
    }
    join_all(handles.into_iter().map(|h| h.acked())).await;

    let (_carol, mut carol_events) = joined(&server, "carol", &general, 10).await;
    let got = messages(&mut carol_events, &general, 10).await;
    let texts: Vec<_> = got.iter().map(|(_, t, _)| t.clone()).collect();
    let expected: Vec<_> = (20..30).map(|i| format!("m{i}")).collect();
    assert_eq!(texts, expected);
    assert!(got.iter().all(|(_, _, replay)| *replay));
    no_more_messages(&mut carol_events, &general).await;
}

/// A third party publishes fast, in the documented format, while a client joins:
/// replay plus live shows every message exactly once, in order.
#[tokio::test]
async fn no_gap_or_duplicate_between_replay_and_live() {
    let server = test_support::run_server();
    let _presence = presence(&server).await;
    let general = room("general");
    let (_alice, _alice_events) = joined(&server, "alice", &general, 0).await;

    // dave publishes without pause from before bob joins until 200 messages after
    // bob's welcome, so messages land before, during and after bob's replay.
    let js = server.jetstream().await;
    let (started_tx, started) = tokio::sync::oneshot::channel();
    let (welcomed_tx, mut welcomed) = tokio::sync::oneshot::channel::<()>();
    let publisher = tokio::spawn(async move {
        let mut started_tx = Some(started_tx);
        let subject = subjects::room_message(&room("general"), &user("dave"));
        let mut acks = Vec::new();
        let mut stop_at = usize::MAX;
        let mut i = 0;
        while i < stop_at {
            let body = format!(
                r#"{{"v":1,"type":"chat","id":"d{i}","room":"general","user":"dave","text":"m{i}"}}"#
            );
            acks.push(js.publish(subject.clone(), body.into()).await.unwrap());
            if i == 100 {
                acks.pop().unwrap().await.unwrap();
                started_tx.take().unwrap().send(()).unwrap();
            }
            if stop_at == usize::MAX && welcomed.try_recv().is_ok() {
                stop_at = i + 200;
            }
            i += 1;
            tokio::task::yield_now().await;
        }
        for ack in acks {
            ack.await.unwrap();
        }
        i
    });
    started.await.unwrap();
    let (_bob, mut bob_events) = joined(&server, "bob", &general, 100_000).await;
    welcomed_tx.send(()).unwrap();
    let total = publisher.await.unwrap();
    let got = messages(&mut bob_events, &general, total).await;
    let texts: Vec<_> = got.iter().map(|(_, t, _)| t.clone()).collect();
    let expected: Vec<_> = (0..total).map(|i| format!("m{i}")).collect();
    assert_eq!(texts, expected, "every message once, in order");
    assert!(got.windows(2).all(|w| w[0].0 < w[1].0));
    assert!(
        got.iter().any(|(_, _, replay)| *replay),
        "some came from the replay"
    );
    assert!(got.iter().any(|(_, _, replay)| !*replay), "some came live");
    no_more_messages(&mut bob_events, &general).await;
}

#[tokio::test]
async fn a_retried_publish_is_stored_once() {
    let server = test_support::run_server();
    let _presence = presence(&server).await;
    let general = room("general");
    let (_alice, mut alice_events) = joined(&server, "alice", &general, 0).await;

    let js = server.jetstream().await;
    let (events, _rx) = tokio::sync::mpsc::channel(16);
    let (_reconnected, reconnects) = tokio::sync::watch::channel(0);
    let publisher = Publisher::start(
        js.clone(),
        RetryPolicy::default(),
        events,
        reconnects,
        Default::default(),
    );
    let message = ChatMessage::new(&general, &user("alice"), MessageKind::Chat, "once").unwrap();
    let subject = subjects::room_message(&general, &user("alice"));
    let first = publisher
        .send(&general, subject.clone(), &message)
        .await
        .acked()
        .await
        .unwrap();
    let again = publisher
        .send(&general, subject, &message)
        .await
        .acked()
        .await
        .unwrap();
    assert_eq!(first, again, "the retry was recognised as the same message");
    assert!(publisher.flush().await.is_empty());

    let stream = js.get_stream(streams::stream_name(&general)).await.unwrap();
    let info = stream.get_info().await.unwrap();
    let last = stream
        .get_last_raw_message_by_subject(&subjects::room_messages(&general))
        .await
        .unwrap();
    assert_eq!(last.sequence, first);
    assert_eq!(info.state.last_sequence, first, "nothing stored after it");
    let (seq, text, _) = wait_for(&mut alice_events, message_in(&general)).await;
    assert_eq!((seq, text.as_str()), (first, "once"));
    no_more_messages(&mut alice_events, &general).await;
}

#[tokio::test]
async fn plain_nats_publisher_in_the_documented_format_is_shown() {
    let server = test_support::run_server();
    let _presence = presence(&server).await;
    let general = room("general");
    let (_alice, mut events) = joined(&server, "alice", &general, 0).await;
    let client = server.client().await;
    client
        .publish(
            "chat.room.general.msg.dave",
            r#"{"v":1,"type":"chat","id":"6f1c7d1e-1111-4222-8333-944445555666","room":"general","user":"dave","text":"hi from the nats CLI","ts":"2026-11-21T04:20:00.123Z"}"#.into(),
        )
        .await
        .unwrap();
    client.flush().await.unwrap();
    let shown = wait_for(&mut events, |e| match e {
        Event::Message {
            user,
            text,
            id,
            spoofed,
            ..
        } => Some((user.to_string(), text.clone(), id.clone(), *spoofed)),
        _ => None,
    })
    .await;
    assert_eq!(
        shown,
        (
            "dave".into(),
            "hi from the nats CLI".into(),
            "6f1c7d1e-1111-4222-8333-944445555666".into(),
            false
        )
    );
}

#[tokio::test]
async fn hostile_payloads_neither_crash_nor_inject_escapes() {
    let server = test_support::run_server();
    let _presence = presence(&server).await;
    let general = room("general");
    let (alice, mut events) = joined(&server, "alice", &general, 0).await;
    let js = server.jetstream().await;
    let publish = |subject: &'static str, body: Vec<u8>| {
        let js = js.clone();
        async move {
            js.send_publish(subject, PublishMessage::build().payload(body.into()))
                .await
                .unwrap()
                .await
                .unwrap();
        }
    };
    let huge = format!(r#"{{"text":"{}"}}"#, "x".repeat(30_000));
    publish("chat.room.general.msg.mallory", b"not json {".to_vec()).await;
    publish("chat.room.general.msg.mallory", b"\xff\xfe\xfd".to_vec()).await;
    publish("chat.room.general.msg.mallory", br#"{"text": 42}"#.to_vec()).await;
    publish("chat.room.general.msg.mallory", huge.into_bytes()).await;
    publish(
        "chat.room.general.msg.mallory",
        br#"{"text":"elsewhere","room":"other"}"#.to_vec(),
    )
    .await;
    publish("chat.room.general.sys", br#"{"type":"joined"}"#.to_vec()).await;
    publish(
        "chat.room.general.msg.mallory",
        br#"{"user":"alice","text":"I am alice"}"#.to_vec(),
    )
    .await;
    publish(
        "chat.room.general.msg.mallory",
        br#"{"text":"\u001b[2J\u001b]0;owned\u0007clear\u009b"}"#.to_vec(),
    )
    .await;
    publish(
        "chat.room.general.msg.mallory",
        br#"{"text":"sentinel"}"#.to_vec(),
    )
    .await;

    let mut shown = Vec::new();
    loop {
        let event = wait_for(&mut events, |e| match e {
            Event::Message { .. } | Event::System { .. } => Some(e.clone()),
            _ => None,
        })
        .await;
        let done = matches!(&event, Event::Message { text, .. } if text == "sentinel");
        shown.push(event);
        if done {
            break;
        }
    }
    assert_eq!(
        shown.len(),
        3,
        "only the decodable ones are shown: {shown:?}"
    );
    match &shown[0] {
        Event::Message { user, spoofed, .. } => assert!(user.as_str() == "mallory" && *spoofed),
        other => panic!("{other:?}"),
    }
    let style = Style {
        color: true,
        interactive: true,
        seq: false,
    };
    for event in &shown {
        let line = render::line(event, Some(&general), style).unwrap();
        let without_our_colours = line
            .replace(&format!("\x1b[1;{}m", render::color_of("mallory")), "")
            .replace("\x1b[0m", "");
        assert!(
            !without_our_colours.contains('\x1b') && !line.contains('\x07'),
            "{line:?}"
        );
    }
    // Still alive and well.
    say(&alice, &general, "still here").await;
    let (_, text, _) = wait_for(&mut events, message_in(&general)).await;
    assert_eq!(text, "still here");
}

#[tokio::test]
async fn invalid_names_and_too_long_messages_are_refused_and_nothing_is_sent() {
    let server = test_support::run_server();
    let _presence = presence(&server).await;
    let general = room("general");
    let (alice, mut events) = joined(&server, "alice", &general, 0).await;
    let js = server.jetstream().await;
    let mut stream = js.get_stream(streams::stream_name(&general)).await.unwrap();
    let before = stream.info().await.unwrap().state.messages;

    let long = "x".repeat(4001);
    assert!(matches!(command::parse(&long), Err(CommandError::Text(_))));
    assert!(matches!(
        command::parse("/join bad.room"),
        Err(CommandError::Name(_))
    ));
    assert!(matches!(
        command::parse("/join"),
        Err(CommandError::Usage(_))
    ));
    assert!(matches!(command::parse("   "), Err(CommandError::Empty)));
    assert!(matches!(
        command::parse("/nope"),
        Err(CommandError::Unknown(_))
    ));
    assert!(matches!(
        alice.send(&general, MessageKind::Chat, &long).await,
        Err(SendError::Text(_))
    ));
    assert!(matches!(
        alice.send(&general, MessageKind::Chat, "  ").await,
        Err(SendError::Text(_))
    ));
    assert!(matches!(
        alice
            .send(&room("elsewhere"), MessageKind::Chat, "hi")
            .await,
        Err(SendError::NotJoined(_))
    ));
    assert!(chat_protocol::UserName::new("al ice").is_err());

    assert!(alice.flush().await.is_empty());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        stream.info().await.unwrap().state.messages,
        before,
        "nothing was stored"
    );
    no_more_messages(&mut events, &general).await;
}
