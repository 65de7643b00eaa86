//! A nats-server restart mid-session: clients say so, resume from their last
//! sequence, lose nothing, show nothing twice, and retry sends that were not acked.

mod common;

use chat_client::{Event, State};
use chat_protocol::body::MessageKind;
use common::*;
use futures::future::join_all;

#[tokio::test]
async fn server_restart_resumes_from_the_last_sequence() {
    let mut server = test_support::run_server();
    let presence_worker = presence(&server).await;
    let general = room("general");
    let (alice, mut alice_events) = connect(&server, "alice").await;
    let (bob, mut bob_events) = connect(&server, "bob").await;
    let (carol, mut carol_events) = connect(&server, "carol").await;
    join(&alice, &mut alice_events, &general, 0).await;
    join(&bob, &mut bob_events, &general, 0).await;

    // bob's live feed has delivered messages before the restart...
    let mut before = Vec::new();
    for i in 0..5 {
        before.push(
            alice
                .send(&general, MessageKind::Chat, &format!("m{i}"))
                .await
                .unwrap(),
        );
    }
    for handle in join_all(before.into_iter().map(|h| h.acked())).await {
        handle.unwrap();
    }
    let got = messages(&mut bob_events, &general, 5).await;
    // ...carol's has not (she joins after them and replays nothing).
    join(&carol, &mut carol_events, &general, 0).await;

    server.stop();
    wait_for(&mut alice_events, |e| match e {
        Event::Status {
            state: State::Disconnected,
            ..
        } => Some(()),
        _ => None,
    })
    .await;
    // Sent while the server is down: not acked until it is back, then retried.
    let mut during = Vec::new();
    for i in 5..10 {
        during.push(
            alice
                .send(&general, MessageKind::Chat, &format!("m{i}"))
                .await
                .unwrap(),
        );
    }
    server.restart();
    wait_for(&mut alice_events, |e| match e {
        Event::Status {
            state: State::Reconnected,
            ..
        } => Some(()),
        _ => None,
    })
    .await;
    for handle in join_all(during.into_iter().map(|h| h.acked())).await {
        handle.expect("sent after reconnecting");
    }
    say(&alice, &general, "m10").await;

    let mut bob_all = got;
    bob_all.extend(messages(&mut bob_events, &general, 6).await);
    let texts: Vec<_> = bob_all.iter().map(|(_, t, _)| t.clone()).collect();
    let expected: Vec<_> = (0..=10).map(|i| format!("m{i}")).collect();
    assert_eq!(texts, expected, "bob: nothing lost, nothing twice");
    let carol_got = messages(&mut carol_events, &general, 6).await;
    let texts: Vec<_> = carol_got.iter().map(|(_, t, _)| t.clone()).collect();
    assert_eq!(
        texts,
        expected[5..].to_vec(),
        "carol: only what came after her join"
    );
    no_more_messages(&mut bob_events, &general).await;
    no_more_messages(&mut carol_events, &general).await;

    // Each message is stored exactly once.
    let js = server.jetstream().await;
    let mut stream = js.get_stream("CHAT_general").await.unwrap();
    let info = stream.info().await.unwrap();
    let chat_messages = info.state.messages - sys_count(&js).await;
    assert_eq!(chat_messages, 11);
    drop(presence_worker);
}

async fn sys_count(js: &async_nats::jetstream::Context) -> u64 {
    let stream = js.get_stream("CHAT_general").await.unwrap();
    let info = stream
        .info_with_subjects("chat.room.general.sys")
        .await
        .unwrap();
    use futures::StreamExt;
    let subjects: Vec<_> = info.collect().await;
    subjects.into_iter().map(|s| s.unwrap().1 as u64).sum()
}
