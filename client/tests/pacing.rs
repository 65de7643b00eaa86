//! Pacing against the real stack: a paste of 100 lines through the real binary goes
//! out complete and in order, paced (the client says `sending n/100`), the script still
//! ends normally once the last one is acknowledged, and the moderation worker enforcing
//! the contract's allowance (20 at once, 5 per second) never mutes its sender.

mod common;

use chat_protocol::body::SystemKind;
use common::*;
use tokio::io::AsyncWriteExt;

#[tokio::test]
async fn a_paste_of_100_lines_arrives_complete_in_order_and_paced_and_is_never_muted() {
    let server = test_support::run_server_with(test_support::StackOptions {
        moderation: moderation_worker::Config::default(),
        ..Default::default()
    });
    let _presence = presence(&server).await;
    let general = room("general");
    let (_bob, mut bob_events) = joined(&server, "bob", &general, 0).await;

    let (mut alice, mut out) = spawn(&mut client(&server, "alice").await);
    next_event(&mut out, "welcome").await;
    let paste: String = (1..=100).map(|i| format!("line {i}\n")).collect();
    let mut stdin = alice.stdin.take().unwrap();
    stdin.write_all(paste.as_bytes()).await.unwrap();
    drop(stdin);

    // Alice's own view: every echo in order, and the pacing said so on the way.
    let (mut echoed, mut progress) = (Vec::new(), Vec::new());
    while echoed.len() < 100 {
        let event = next_event(&mut out, "").await;
        match event["event"].as_str() {
            Some("message") => echoed.push(event["text"].as_str().unwrap().to_string()),
            Some("status") if event["state"] == "sending" => {
                progress.push(event["message"].as_str().unwrap().to_string())
            }
            Some("error") => panic!("{event}"),
            _ => {}
        }
    }
    let expected: Vec<String> = (1..=100).map(|i| format!("line {i}")).collect();
    assert_eq!(echoed, expected);
    // The end of the batch is said once the last acknowledgement is in (which may come
    // after its echo).
    while !progress.last().is_some_and(|p| p.starts_with("sent ")) {
        let event = next_event(&mut out, "status").await;
        if event["state"] == "sending" {
            progress.push(event["message"].as_str().unwrap().to_string());
        }
    }
    // Said when the pacing started, and at the end of the batch.
    assert!(
        progress
            .iter()
            .any(|p| p.contains(": paced to the allowed rate")),
        "{progress:?}"
    );
    let status = tokio::time::timeout(PATIENCE, alice.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));

    // What the others see: all of it, in the order typed.
    let seen = messages(&mut bob_events, &general, 100).await;
    let texts: Vec<String> = seen.into_iter().map(|(_, text, _)| text).collect();
    assert_eq!(texts, expected);
    no_more_messages(&mut bob_events, &general).await;
    // Never over the allowance: not muted, nothing removed.
    let standing =
        chat_client::moderation::standing(&server.client().await, &user("alice"), PATIENCE)
            .await
            .unwrap();
    assert_eq!(standing.rate, chat_protocol::body::Rate::default());
    assert_eq!((standing.muted_until, standing.reason), (None, None));
    while let Ok(event) = bob_events.try_recv() {
        assert!(
            !matches!(
                event,
                chat_client::Event::System {
                    kind: SystemKind::Deleted | SystemKind::Muted,
                    ..
                }
            ),
            "{event:?}"
        );
    }
}

/// The library's view of a batch, paced to the allowance the standing gives: it is
/// announced once it has to wait for tokens, its progress is zero again once the last
/// message is acknowledged, and every handle settles with its own sequence, in order.
#[tokio::test]
async fn progress_counts_the_batch_until_the_last_ack() {
    // The standing's allowance is what the client paces to.
    let server = test_support::run_server_with(test_support::StackOptions {
        moderation: moderation_worker::Config {
            rate: chat_protocol::body::Rate {
                burst: 5,
                per_second: 20.0,
            },
            ..Default::default()
        },
        ..Default::default()
    });
    let _presence = presence(&server).await;
    let general = room("general");
    let mut options = options(&server, "carol").await;
    options.pacing = Some(chat_protocol::body::Rate::default());
    let (carol, mut events) = chat_client::Chat::connect(options).await.unwrap();
    join(&carol, &mut events, &general, 0).await;
    let mut handles = Vec::new();
    for i in 0..30 {
        let text = format!("m{i}");
        let handle = carol
            .send(&general, chat_protocol::body::MessageKind::Chat, &text)
            .await
            .unwrap();
        handles.push(handle);
    }
    let mut last = 0;
    for handle in handles {
        let seq = handle.acked().await.unwrap();
        assert!(seq > last, "stored in the order sent");
        last = seq;
    }
    assert!(carol.flush().await.is_empty());
    assert_eq!(carol.sending(), chat_client::pacing::Progress::default());
    // More than the burst: the batch was paced, and said so.
    let (mut texts, mut said) = (Vec::new(), Vec::new());
    while texts.len() < 30 {
        match wait_for(&mut events, |e| Some(e.clone())).await {
            chat_client::Event::Message { text, .. } => texts.push(text),
            chat_client::Event::Status {
                state: chat_client::State::Sending,
                message,
                ..
            } => said.push(message),
            _ => {}
        }
    }
    assert_eq!(texts, (0..30).map(|i| format!("m{i}")).collect::<Vec<_>>());
    assert!(said.iter().any(|s| s.starts_with("sending ")), "{said:?}");
}
