//! The client under faults (issue 10): a server killed, frozen or restarted while
//! messages are in flight. It never hangs, never misreports, keeps every sender's
//! order, and says what it could not do.

mod common;

use std::time::Duration;

use chat_client::{Event, RetryPolicy, SendError, State};
use chat_protocol::body::{MessageKind, SystemKind};
use chat_protocol::{streams, subjects};
use common::*;
use futures::StreamExt;
use serde_json::Value;
use tokio::io::AsyncWriteExt;

/// Waits for the exit of `child`, which must come in time.
async fn exit_code(child: &mut tokio::process::Child) -> Option<i32> {
    tokio::time::timeout(PATIENCE, child.wait())
        .await
        .expect("the client exits in bounded time")
        .unwrap()
        .code()
}

/// Every line left on `out` until it ends, as JSON.
async fn rest(
    out: &mut tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
) -> Vec<Value> {
    let mut events = Vec::new();
    while let Ok(Ok(Some(line))) = tokio::time::timeout(PATIENCE, out.next_line()).await {
        events.push(serde_json::from_str(&line).unwrap());
    }
    events
}

fn errors(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["event"] == "error")
        .map(|e| e["message"].as_str().unwrap().to_string())
        .collect()
}

/// Point 1: with the server frozen (no ack, no answer, the connection still open),
/// the end of input quits within the quit timeout, says "you left", names the
/// unconfirmed message by its text and exits 1.
#[tokio::test]
async fn quitting_while_the_server_is_frozen_is_bounded_and_names_what_is_unconfirmed() {
    let server = test_support::run_server();
    let _presence = presence(&server).await;
    let mut command = client(&server, "alice").await;
    let (mut alice, mut out) = spawn(command.args(["--quit-timeout", "1"]));
    next_event(&mut out, "welcome").await;
    server.pause();
    let mut stdin = alice.stdin.take().unwrap();
    stdin.write_all(b"said into the void\n").await.unwrap();
    drop(stdin);
    let code = exit_code(&mut alice).await;
    server.resume();
    let events = rest(&mut out).await;
    assert_eq!(code, Some(1), "{events:?}");
    let errors = errors(&events);
    assert!(
        errors
            .iter()
            .any(|e| e.contains("unconfirmed") && e.contains("\"said into the void\"")),
        "{errors:?}"
    );
    assert!(
        events.iter().any(|e| e["state"] == "left"),
        "says it left: {events:?}"
    );
}

/// Point 1: a second Ctrl-C while quitting waits ends the client at once.
#[tokio::test]
async fn a_second_interrupt_quits_at_once() {
    let server = test_support::run_server();
    let _presence = presence(&server).await;
    let mut command = client(&server, "alice").await;
    let (mut alice, mut out) = spawn(command.args(["--quit-timeout", "600"]));
    next_event(&mut out, "welcome").await;
    server.pause();
    let mut stdin = alice.stdin.take().unwrap();
    stdin.write_all(b"waiting forever\n").await.unwrap();
    let pid = alice.id().unwrap().to_string();
    let interrupt = || {
        std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
    };
    // The first interrupt starts quitting (which would wait 600 s for the ack); a
    // further one, once quitting has begun, ends it. Interrupts are repeated until it
    // exits, since one that came before quitting had begun would not be seen.
    interrupt();
    let code = tokio::time::timeout(PATIENCE, async {
        loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if let Some(status) = alice.try_wait().unwrap() {
                return status.code();
            }
            interrupt();
        }
    })
    .await
    .expect("the client exits at once on a second interrupt");
    server.resume();
    assert_eq!(code, Some(130));
}

/// Points 1 and 2: messages typed while the server is down are never published
/// while it is down; once it is back they are published, stored once each, in order,
/// shown, and the client exits 0.
#[tokio::test]
async fn messages_typed_during_an_outage_are_sent_when_the_server_is_back() {
    let mut server = test_support::run_server();
    let _presence = presence(&server).await;
    let (mut alice, mut out) = spawn(&mut client(&server, "alice").await);
    next_event(&mut out, "welcome").await;
    server.stop();
    loop {
        let status = next_event(&mut out, "status").await;
        if status["state"] == "disconnected" {
            break;
        }
    }
    let mut stdin = alice.stdin.take().unwrap();
    stdin
        .write_all(b"during 1\nduring 2\nduring 3\n")
        .await
        .unwrap();
    // Longer than the old client tried (8 attempts, about a minute with its default
    // timings, sooner with its tests' timings) would not do in a test; what matters is
    // that nothing is given up on while the server is away and that nothing is lost.
    tokio::time::sleep(Duration::from_secs(3)).await;
    server.restart();
    let mut texts = Vec::new();
    while texts.len() < 3 {
        let message = next_event(&mut out, "message").await;
        texts.push(message["text"].as_str().unwrap().to_string());
    }
    assert_eq!(texts, ["during 1", "during 2", "during 3"]);
    drop(stdin);
    let code = exit_code(&mut alice).await;
    let events = rest(&mut out).await;
    assert_eq!(code, Some(0), "{events:?}");
    assert!(errors(&events).is_empty(), "{events:?}");
    assert_eq!(stored_texts(&server, "alice").await, texts);
}

/// Point 2: with quick retries, an outage longer than the old retry budget (eight
/// attempts) loses nothing and reports nothing as failed.
#[tokio::test]
async fn an_outage_longer_than_a_few_attempts_is_waited_out() {
    let server = test_support::run_server();
    let _presence = presence(&server).await;
    let general = room("general");
    let mut options = options(&server, "alice").await;
    options.retry = RetryPolicy {
        ack_timeout: Duration::from_millis(200),
        backoff: Duration::from_millis(10),
        ..RetryPolicy::default()
    };
    let (alice, mut events) = chat_client::Chat::connect(options).await.unwrap();
    join(&alice, &mut events, &general, 0).await;
    let mut handles = Vec::new();
    for i in 0..5 {
        handles.push(
            alice
                .send(&general, MessageKind::Chat, &format!("before {i}"))
                .await
                .unwrap(),
        );
    }
    server.pause();
    for i in 0..5 {
        handles.push(
            alice
                .send(&general, MessageKind::Chat, &format!("frozen {i}"))
                .await
                .unwrap(),
        );
    }
    // 8 attempts of 200 ms plus backoffs of 10 ms doubling: under 4 s.
    tokio::time::sleep(Duration::from_secs(6)).await;
    server.resume();
    for handle in handles {
        handle
            .acked()
            .await
            .expect("acknowledged once the server is back");
    }
    let expected: Vec<String> = (0..5)
        .map(|i| format!("before {i}"))
        .chain((0..5).map(|i| format!("frozen {i}")))
        .collect();
    assert_eq!(stored_texts(&server, "alice").await, expected);
    let shown: Vec<String> = messages(&mut events, &general, 10)
        .await
        .into_iter()
        .map(|(_, text, _)| text)
        .collect();
    assert_eq!(shown, expected, "the feed shows them all once it recovers");
    let report = alice.close().await;
    assert!(report.is_empty(), "{report:?}");
}

/// Point 3: the server is killed (kill -9) with many messages in flight and started
/// again; every message is stored once, in the order it was sent.
#[tokio::test]
async fn a_killed_server_keeps_the_senders_order() {
    const TOTAL: usize = 2000;
    let mut server = test_support::run_server();
    let _presence = presence(&server).await;
    let general = room("general");
    let mut options = options(&server, "alice").await;
    options.retry.ack_timeout = Duration::from_secs(1);
    let (alice, mut events) = chat_client::Chat::connect(options).await.unwrap();
    join(&alice, &mut events, &general, 0).await;
    let drain = tokio::spawn(async move { while events.recv().await.is_some() {} });
    let sender = {
        let alice = alice.clone();
        let general = general.clone();
        tokio::spawn(async move {
            let mut handles = Vec::new();
            for i in 0..TOTAL {
                let handle = alice
                    .send(&general, MessageKind::Chat, &format!("m{i}"))
                    .await
                    .unwrap();
                handles.push(handle);
            }
            handles
        })
    };
    // Kill it while the sender is busy, then again once it runs.
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.stop();
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.restart();
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.stop();
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.restart();
    let handles = tokio::time::timeout(PATIENCE * 3, sender)
        .await
        .expect("every message queued")
        .unwrap();
    for handle in handles {
        tokio::time::timeout(PATIENCE * 3, handle.acked())
            .await
            .expect("acknowledged in time")
            .expect("acknowledged");
    }
    let expected: Vec<String> = (0..TOTAL).map(|i| format!("m{i}")).collect();
    let stored = stored_texts(&server, "alice").await;
    let inversions: Vec<_> = stored
        .windows(2)
        .filter(|w| number(&w[0]) > number(&w[1]))
        .collect();
    assert!(
        inversions.is_empty(),
        "messages stored out of order: {inversions:?}"
    );
    assert_eq!(stored, expected, "every message once, in order");
    drain.abort();
}

fn number(text: &str) -> usize {
    text[1..].parse().unwrap()
}

/// Point 4: own messages acknowledged but not shown when the server dies are named
/// when the client closes; every message is either shown or named.
#[tokio::test]
async fn echoes_not_shown_before_closing_are_named() {
    const TOTAL: usize = 3000;
    let mut server = test_support::run_server();
    let _presence = presence(&server).await;
    let general = room("general");
    let mut options = options(&server, "alice").await;
    // The UI reads nothing until closing: the feed falls behind the acks.
    options.event_buffer = 1;
    options.quit_timeout = Duration::from_secs(2);
    let (alice, mut events) = chat_client::Chat::connect(options).await.unwrap();
    join(&alice, &mut events, &general, 0).await;
    let mut handles = Vec::new();
    for i in 0..TOTAL {
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
    server.stop();
    let shown = tokio::spawn(async move {
        let mut shown = Vec::new();
        let mut named = Vec::new();
        while let Some(event) = events.recv().await {
            match event {
                Event::Message { text, .. } => shown.push(text),
                Event::Error { message } if message == "END" => break,
                Event::Error { message } => named.push(message),
                _ => {}
            }
        }
        (shown, named)
    });
    let report = tokio::time::timeout(PATIENCE, alice.close())
        .await
        .expect("closing is bounded");
    assert!(report.failed.is_empty());
    alice.notify(Event::error("END")).await;
    let (shown, named) = tokio::time::timeout(PATIENCE, shown)
        .await
        .unwrap()
        .unwrap();
    let mut all: Vec<String> = shown.clone();
    all.extend(report.not_shown.iter().map(|(_, _, text)| text.clone()));
    all.sort_by_key(|t| number(t));
    let expected: Vec<String> = (0..TOTAL).map(|i| format!("m{i}")).collect();
    assert_eq!(all, expected, "each message is shown or named, once");
    assert_eq!(named.len(), report.not_shown.len(), "{named:?}");
    if let Some((_, _, text)) = report.not_shown.first() {
        assert!(named[0].contains(&format!("{text:?}")), "{named:?}");
    }
}

/// Point 2: a message never published (the connection was down all along) is "not
/// sent", named by its text, and the client reports it at once on closing.
#[tokio::test]
async fn never_published_is_not_sent() {
    let mut server = test_support::run_server();
    let _presence = presence(&server).await;
    let general = room("general");
    let mut options = options(&server, "alice").await;
    options.quit_timeout = Duration::from_secs(1);
    let (alice, mut events) = chat_client::Chat::connect(options).await.unwrap();
    join(&alice, &mut events, &general, 0).await;
    server.stop();
    wait_for(&mut events, |e| match e {
        Event::Status {
            state: State::Disconnected,
            ..
        } => Some(()),
        _ => None,
    })
    .await;
    let handle = alice
        .send(
            &general,
            MessageKind::Chat,
            "a long message that is cut short in the report",
        )
        .await
        .unwrap();
    let report = tokio::time::timeout(PATIENCE, alice.close()).await.unwrap();
    assert!(matches!(
        handle.acked().await,
        Err(SendError::NotSent { .. })
    ));
    assert_eq!(report.failed.len(), 1);
    let text = report.failed[0].to_string();
    assert!(
        text.starts_with("not sent: \"a long message that is cut short in the…\""),
        "{text}"
    );
}

/// The texts of `user`'s chat messages in `CHAT_general`, in stream order.
async fn stored_texts(server: &test_support::NatsServer, user_name: &str) -> Vec<String> {
    let js = server.jetstream().await;
    let general = room("general");
    let stream = js.get_stream(streams::stream_name(&general)).await.unwrap();
    let consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig {
            filter_subject: subjects::room_message(&general, &user(user_name)),
            ..Default::default()
        })
        .await
        .unwrap();
    let pending = consumer.cached_info().num_pending as usize;
    let mut messages = consumer.messages().await.unwrap().take(pending);
    let mut texts = Vec::new();
    while let Some(message) = messages.next().await {
        let body: Value = serde_json::from_slice(&message.unwrap().payload).unwrap();
        texts.push(body["text"].as_str().unwrap().to_string());
    }
    texts
}

/// Point 5: members of a room whose stream is deleted and recreated by the next join
/// are told so, and follow the new stream: they see later messages, their own too.
#[tokio::test]
async fn a_recreated_room_stream_is_noticed_and_followed() {
    let server = test_support::run_server();
    let _presence = presence(&server).await;
    let general = room("general");
    let (alice, mut alice_events) = joined(&server, "alice", &general, 0).await;
    let (_bob, mut bob_events) = joined(&server, "bob", &general, 0).await;
    say(&alice, &general, "before").await;
    let (_, text, _) = wait_for(&mut bob_events, message_in(&general)).await;
    assert_eq!(text, "before");

    let js = server.jetstream().await;
    js.delete_stream(streams::stream_name(&general))
        .await
        .unwrap();
    let state = |wanted: State| {
        move |e: &Event| match e {
            Event::Status { state, .. } if *state == wanted => Some(()),
            _ => None,
        }
    };
    wait_for(&mut bob_events, state(State::StreamGone)).await;
    let (_carol, _carol_events) = joined(&server, "carol", &general, 0).await;
    wait_for(&mut bob_events, state(State::StreamRecreated)).await;
    say(&alice, &general, "after").await;
    let (_, text, _) = wait_for(&mut bob_events, message_in(&general)).await;
    assert_eq!(text, "after", "bob follows the new stream");
    let (_, text, _) = wait_for(&mut alice_events, message_in(&general)).await;
    assert_eq!(text, "before");
    let (_, text, _) = wait_for(&mut alice_events, message_in(&general)).await;
    assert_eq!(
        text, "after",
        "alice sees her own message in the new stream"
    );
}

/// Point 6: the history worker that planned `#all_messages` dies mid-replay (a second
/// instance starts afterwards); the client reads the stream itself, so the replay goes
/// on untouched: every message once, in order.
#[tokio::test]
async fn history_replay_survives_its_worker_dying() {
    const TOTAL: usize = 20_000;
    let server = test_support::run_server();
    let _presence = presence(&server).await;
    let first = history(&server).await;
    let general = room("general");
    let (alice, mut events) = joined(&server, "alice", &general, 0).await;
    let js = server.jetstream().await;
    let subject = subjects::room_message(&general, &user("dave"));
    let mut acks = Vec::new();
    for i in 0..TOTAL {
        let body = format!(
            r#"{{"v":1,"type":"chat","id":"d{i}","room":"general","user":"dave","text":"m{i}"}}"#
        );
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

    let replay = {
        let alice = alice.clone();
        let general = general.clone();
        tokio::spawn(async move { alice.all_messages(&general).await })
    };
    let mut first = Some(first);
    let mut second = None;
    let mut next = 0;
    let count = tokio::time::timeout(PATIENCE * 3, async {
        loop {
            match events.recv().await.unwrap() {
                Event::Message { text, replay, .. } if replay => {
                    assert_eq!(text, format!("m{next}"), "in order, none missing or twice");
                    next += 1;
                    if next == 3000 {
                        // Killed while the client reads the plan it gave; a second
                        // instance starts afterwards.
                        drop(first.take());
                        second = Some(history(&server).await);
                    }
                }
                Event::HistoryEnd { count, .. } => return count,
                _ => {}
            }
        }
    })
    .await
    .expect("the replay ends");
    assert_eq!(count as usize, TOTAL);
    assert_eq!(next, TOTAL);
    assert_eq!(replay.await.unwrap(), Ok(TOTAL as u64));
    drop(second);
}

/// Point 10: the error of an unanswered join says what failed once, not nested in
/// itself.
#[tokio::test]
async fn presence_errors_are_not_repeated_inside_themselves() {
    let server = test_support::run_server();
    let general = room("general");
    let (chat, mut events) = connect(&server, "alice").await;
    assert!(chat.join(&general, 0));
    let message = wait_for(&mut events, |e| match e {
        Event::Status {
            state: State::PresenceUnavailable,
            message,
            ..
        } => Some(message.clone()),
        _ => None,
    })
    .await;
    assert_eq!(
        message,
        "presence service unavailable: no presence worker is running; retrying"
    );
}

/// Point 11: an outage of the whole stack shorter than the session TTL makes nobody
/// leave and join again. The session's last heartbeat came up to a third of the TTL
/// before the outage, so it expires during it; the workers' clock
/// (`presence-worker/src/availability.rs`) tells the restarted worker that the expiry
/// happened during a short outage, so it waits for the reconnected client's next
/// heartbeat instead of announcing `left`.
#[tokio::test]
async fn an_outage_shorter_than_the_ttl_makes_nobody_leave() {
    let (_stack, mut bob_events) = alice_and_bob_after_an_outage(Duration::from_millis(2500)).await;
    wait_for(&mut bob_events, |e| match e {
        Event::Status {
            state: State::Reconnected,
            ..
        } => Some(()),
        _ => None,
    })
    .await;
    // Three TTLs: any expiry would have been announced by then.
    let announced = tokio::time::timeout(
        Duration::from_secs(9),
        announcement_of_alice(&mut bob_events),
    )
    .await;
    assert!(announced.is_err(), "alice was announced: {announced:?}");
}

/// Point 11, the other half: an outage longer than the TTL makes each member leave
/// and join again exactly once.
#[tokio::test]
async fn an_outage_longer_than_the_ttl_makes_each_member_leave_and_join_once() {
    // Five TTLs: more than the gap between the workers' beats that still counts as a
    // short outage (a TTL, a beat and 5 s for the restart).
    let (_stack, mut bob_events) = alice_and_bob_after_an_outage(Duration::from_secs(15)).await;
    let mut seen = Vec::new();
    // Left, then joined again once alice's client heartbeats; then nothing more
    // within three TTLs.
    while seen.len() < 2 {
        let kind = announcement_of_alice(&mut bob_events).await;
        seen.push(kind);
    }
    assert_eq!(seen, [SystemKind::Left, SystemKind::Joined]);
    let more = tokio::time::timeout(
        Duration::from_secs(9),
        announcement_of_alice(&mut bob_events),
    )
    .await;
    assert!(more.is_err(), "alice was announced again: {more:?}");
}

/// What an outage test keeps alive: the server, the restarted presence worker,
/// alice's chat and events, and bob's chat.
type Outage = (
    test_support::NatsServer,
    presence_worker::PresenceWorker,
    (chat_client::Chat, tokio::sync::mpsc::Receiver<Event>),
    chat_client::Chat,
);

/// Alice and bob in general (presence TTL 3 s), then the whole stack (the server and
/// the presence worker) down for `outage` and back; returns bob's events.
async fn alice_and_bob_after_an_outage(
    outage: Duration,
) -> (Outage, tokio::sync::mpsc::Receiver<Event>) {
    let mut server = test_support::run_server();
    let worker = presence(&server).await; // TTL 3 s
    let general = room("general");
    let alice = joined(&server, "alice", &general, 0).await;
    let (bob, bob_events) = joined(&server, "bob", &general, 0).await;
    server.stop();
    drop(worker);
    tokio::time::sleep(outage).await;
    server.restart();
    let worker = presence(&server).await;
    ((server, worker, alice, bob), bob_events)
}

/// The next joined/left event about alice.
async fn announcement_of_alice(events: &mut tokio::sync::mpsc::Receiver<Event>) -> SystemKind {
    wait_for(events, |e| match e {
        Event::System { user, kind, .. } if user.as_str() == "alice" => Some(*kind),
        _ => None,
    })
    .await
}
