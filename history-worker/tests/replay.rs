//! Replay plans (`chat.replay.<room>`): what the worker answers, that a chat user
//! reading the plan with its own ordered consumer gets exactly the replay, that the
//! worker creates nothing on the server, and clear errors for bad requests.

mod common;

use async_nats::jetstream::consumer::{pull::OrderedConfig, DeliverPolicy};
use async_nats::service::NATS_SERVICE_ERROR_CODE;
use chat_protocol::body::{decode_reply, ErrorReply, ReplayPlan, ReplayRequest};
use chat_protocol::{streams, subjects};
use common::*;
use futures::StreamExt;
use history_worker::Config;

/// The plan for `request` on `room`; panics on an error reply.
async fn plan(client: &async_nats::Client, room: &str, request: &ReplayRequest) -> ReplayPlan {
    let body = serde_json::to_string(request).unwrap();
    let reply = request_raw(client, subjects::replay(&common::room(room)), &body).await;
    decode_reply(&reply.payload).expect("a plan")
}

/// Reads `plan` the way the contract says a reader does: an ordered consumer from
/// `start` with the plan's filter, up to `end` or nothing pending. Returns the
/// sequences and subjects read.
async fn follow(client: &async_nats::Client, plan: &ReplayPlan) -> Vec<(u64, String)> {
    let Some(end) = plan.end else {
        return Vec::new();
    };
    let stream = async_nats::jetstream::new(client.clone())
        .get_stream_no_info(&plan.stream)
        .await
        .unwrap();
    let consumer = stream
        .create_consumer(OrderedConfig {
            filter_subject: plan.filter.clone().unwrap_or_default(),
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: plan.start,
            },
            ..Default::default()
        })
        .await
        .expect("a chat user may read a room stream");
    let name = consumer.cached_info().name.clone();
    let mut read = Vec::new();
    let mut messages = consumer.messages().await.unwrap();
    while let Some(message) = tokio::time::timeout(REPLY_TIMEOUT, messages.next())
        .await
        .expect("the replay goes on")
    {
        let message = message.unwrap();
        let info = message.info().unwrap();
        if info.stream_sequence > end {
            break;
        }
        read.push((info.stream_sequence, message.subject.to_string()));
        if info.stream_sequence == end || info.pending == 0 {
            break;
        }
    }
    // Done: the reader deletes its own consumer.
    stream.delete_consumer(&name).await.unwrap();
    read
}

#[tokio::test]
async fn plans_are_read_by_the_user_exactly_and_leave_nothing_behind() {
    let s = setup(Config::default()).await;
    let general = room("general");
    let stream = create_room(&s.js, &general).await;
    let (alice, bob) = (user("alice"), user("bob"));
    let mut items = chats(&[&alice, &bob], 300);
    items.push(Item::Joined(&bob));
    let seqs = store(&s.js, &general, items).await;
    let last = *seqs.last().unwrap();
    let reader = s.server.user_client("carol").await;

    let whole = plan(&reader, "general", &ReplayRequest::default()).await;
    assert_eq!(
        serde_json::to_value(&whole).unwrap(),
        serde_json::json!({"room": "general", "stream": "CHAT_general", "start": 1, "end": last})
    );
    let read = follow(&reader, &whole).await;
    assert_eq!(read.iter().map(|r| r.0).collect::<Vec<_>>(), seqs);

    let own = ReplayRequest {
        user: Some(bob.clone()),
        after: Some(seqs[100]),
    };
    let bobs = plan(&reader, "general", &own).await;
    assert_eq!(bobs.filter.as_deref(), Some("chat.room.general.msg.bob"));
    assert_eq!((bobs.start, bobs.end), (seqs[100] + 1, Some(last)));
    let read = follow(&reader, &bobs).await;
    // Bob's chat messages after the cursor: every odd one of 101..300, not his join.
    let expected: Vec<u64> = (101..300).filter(|i| i % 2 == 1).map(|i| seqs[i]).collect();
    assert_eq!(read.iter().map(|r| r.0).collect::<Vec<_>>(), expected);
    assert!(read
        .iter()
        .all(|(_, subject)| subject == "chat.room.general.msg.bob"));

    // Messages stored after the plan was made are not part of it.
    store(&s.js, &general, chats(&[&alice], 5)).await;
    let read = follow(&reader, &whole).await;
    assert_eq!(read.len(), seqs.len());

    // Nothing to replay: past the end, or a room with an empty stream.
    let past = ReplayRequest {
        after: Some(last + 10),
        ..Default::default()
    };
    assert_eq!(plan(&reader, "general", &past).await.end, None);
    create_room(&s.js, &room("empty")).await;
    let empty = plan(&reader, "empty", &ReplayRequest::default()).await;
    assert_eq!((empty.stream.as_str(), empty.end), ("CHAT_empty", None));

    // The worker created no consumer for any of these plans, and the readers deleted
    // theirs: a worker killed at any time leaves nothing behind.
    assert_eq!(
        stream.cached_info().config.name,
        streams::stream_name(&general)
    );
    let mut names = stream.consumer_names();
    let mut consumers = Vec::new();
    while let Some(name) = names.next().await {
        consumers.push(name.unwrap());
    }
    assert!(consumers.is_empty(), "consumers left: {consumers:?}");
}

#[tokio::test]
async fn bad_replay_requests_get_clear_errors() {
    let s = setup(Config::default()).await;
    create_room(&s.js, &room("general")).await;
    let cases = [
        (
            "chat.replay.nosuch",
            "",
            "404",
            "room 'nosuch' does not exist",
        ),
        ("chat.replay.general", "not json", "400", "malformed"),
        (
            "chat.replay.general",
            r#"{"user":"no spaces"}"#,
            "400",
            "user name",
        ),
        ("chat.replay.general", r#"{"after":-1}"#, "400", "malformed"),
        // Not a room: the worker never plans a read of another stream.
        ("chat.replay.KV_chat_moderation", "", "400", "room"),
    ];
    for (subject, body, code, says) in cases {
        let reply = request_raw(&s.client, subject.to_string(), body).await;
        let error: ErrorReply = serde_json::from_slice(&reply.payload).expect("an error body");
        assert!(!error.ok);
        assert!(
            error.error.contains(says),
            "{subject} {body}: {}",
            error.error
        );
        let headers = reply.headers.expect("error headers");
        assert_eq!(headers.get(NATS_SERVICE_ERROR_CODE).unwrap().as_str(), code);
    }
}
