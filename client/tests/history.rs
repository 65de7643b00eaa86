//! `#all_messages` and `#my_messages` against the real history worker.

mod common;

use std::process::Stdio;

use chat_client::call::RequestError;
use chat_client::Event;
use chat_protocol::subjects;
use common::*;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

/// 10,000 messages published fast by a plain JetStream publisher are all replayed, in
/// order, by the binary's `#all_messages` in `--json` line mode.
#[tokio::test]
async fn all_messages_replays_ten_thousand_in_order() {
    const TOTAL: usize = 10_000;
    let server = test_support::run_server();
    let _presence = presence(&server).await;
    let _history = history(&server).await;
    let general = room("general");
    let (_alice, _events) = joined(&server, "alice", &general, 0).await;

    let js = server.jetstream().await;
    let subject = subjects::room_message(&general, &user("dave"));
    let mut acks = Vec::with_capacity(TOTAL);
    for i in 0..TOTAL {
        let body = format!(
            r#"{{"v":1,"type":"chat","id":"d{i}","room":"general","user":"dave","text":"m{i}"}}"#
        );
        acks.push(js.publish(subject.clone(), body.into()).await.unwrap());
        // JetStream contexts allow a bounded number of unawaited acks.
        if acks.len() == 1000 {
            for ack in acks.drain(..) {
                ack.await.unwrap();
            }
        }
    }
    for ack in acks {
        ack.await.unwrap();
    }

    let password = server.register("bob").await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_chat-client"))
        .args([
            "--json",
            "--history",
            "0",
            "--user",
            "bob",
            "--nats-url",
            &server.url(),
        ])
        .env("CHAT_PASSWORD", password)
        .env("LOG_LEVEL", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"#all_messages\n").await.unwrap();
    drop(stdin);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = 0;
    let end = tokio::time::timeout(PATIENCE * 3, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let value: serde_json::Value = serde_json::from_str(&line).unwrap();
            match value["event"].as_str() {
                Some("message") => {
                    assert_eq!(
                        value["text"],
                        format!("m{next}"),
                        "in order, none missing or twice"
                    );
                    assert_eq!(value["replay"], true);
                    next += 1;
                }
                Some("history_end") => return value,
                _ => {}
            }
        }
        panic!("output ended without history_end");
    })
    .await
    .expect("the replay finished in time");
    assert_eq!(next, TOTAL);
    assert_eq!(end["room"], "general");
    assert_eq!(end["count"], TOTAL);
    let status = tokio::time::timeout(PATIENCE, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn my_messages_across_two_rooms_merged_by_time() {
    let server = test_support::run_server();
    let _presence = presence(&server).await;
    let _history = history(&server).await;
    let (general, random) = (room("general"), room("random"));
    let (alice, mut alice_events) = connect(&server, "alice").await;
    let (bob, mut bob_events) = connect(&server, "bob").await;
    for r in [&general, &random] {
        join(&alice, &mut alice_events, r, 0).await;
        join(&bob, &mut bob_events, r, 0).await;
    }
    let mut expected = Vec::new();
    for i in 0..6 {
        let r = if i % 2 == 0 { &general } else { &random };
        let text = format!("mine {i}");
        say(&alice, r, &text).await;
        say(&bob, r, &format!("not mine {i}")).await;
        expected.push((r.clone(), text));
    }
    let count = alice.my_messages(&general).await.unwrap();
    assert_eq!(count, 6);
    let mut got = Vec::new();
    let end = wait_for(&mut alice_events, |e| match e {
        Event::Message {
            room,
            user,
            text,
            replay: true,
            ..
        } => {
            assert_eq!(user.as_str(), "alice");
            got.push((room.clone(), text.clone()));
            None
        }
        Event::HistoryEnd { room, user, count } => Some((room.clone(), user.clone(), *count)),
        _ => None,
    })
    .await;
    assert_eq!(got, expected);
    assert_eq!(end, (general, Some(user("alice")), 6));
}

#[tokio::test]
async fn history_service_unavailable_is_a_clear_error() {
    let server = test_support::run_server();
    let _presence = presence(&server).await;
    let general = room("general");
    let (alice, _events) = joined(&server, "alice", &general, 0).await;
    let err = alice.all_messages(&general).await.unwrap_err();
    assert_eq!(err, RequestError::Unavailable("history"));
    assert!(
        err.to_string().contains("history service unavailable"),
        "{err}"
    );
    let err = alice.my_messages(&general).await.unwrap_err();
    assert_eq!(err, RequestError::Unavailable("history"));
}
