//! The moderation worker's test helpers (re-exported by its `tests/common`): the stack
//! with the contract's allowance, rooms, a raw flooder, reading a room's events,
//! asking standings, sending commands.

use std::time::Duration;

use crate::{run_server_with, NatsServer, StackOptions};
use async_nats::jetstream;
use chat_protocol::body::{
    decode_reply, ChatMessage, MessageKind, ModerationReply, ModerationRequest, ReplyError,
    Standing, SystemEvent,
};
use chat_protocol::{streams, subjects, RoomName, UserName};
use chat_runtime::storage::room_stream_config;

pub fn room(s: &str) -> RoomName {
    RoomName::new(s).unwrap()
}
pub fn user(s: &str) -> UserName {
    UserName::new(s).unwrap()
}

/// The stack with `instances` moderation workers enforcing `config`.
pub fn stack(instances: usize, config: moderation_worker::Config) -> NatsServer {
    run_server_with(StackOptions {
        moderation_workers: instances,
        moderation: config,
        ..StackOptions::default()
    })
}

/// The contract's allowance (20, 5/s) and a flood mute of `mute_secs`.
pub fn contract(mute_secs: u64) -> moderation_worker::Config {
    moderation_worker::Config {
        flood_mute: Duration::from_secs(mute_secs),
        ..moderation_worker::Config::default()
    }
}

/// Creates room `name`'s stream as the presence worker would.
pub async fn create_room(server: &NatsServer, name: &str) -> jetstream::stream::Stream {
    server
        .jetstream()
        .await
        .create_stream(room_stream_config(&room(name), &crate::room_settings()))
        .await
        .unwrap()
}

/// A chat message body from `who` in `room`.
pub fn body(room_name: &str, who: &str, text: &str) -> bytes::Bytes {
    let m = ChatMessage::new(&room(room_name), &user(who), MessageKind::Chat, text).unwrap();
    serde_json::to_vec(&m).unwrap().into()
}

/// Publishes `count` messages as fast as the connection takes them (core NATS, no
/// acknowledgement awaited): a raw flooder.
pub async fn flood(client: &async_nats::Client, room_name: &str, who: &str, count: usize) {
    let subject = subjects::room_message(&room(room_name), &user(who));
    for i in 0..count {
        if client
            .publish(subject.clone(), body(room_name, who, &format!("flood {i}")))
            .await
            .is_err()
        {
            break;
        }
    }
    let _ = client.flush().await;
}

/// Publishes one message through JetStream and waits for its acknowledgement: the
/// stream sequence, or why not (a muted user's publish is refused by the server and
/// never acknowledged).
pub async fn send(
    client: &async_nats::Client,
    room_name: &str,
    who: &str,
    text: &str,
) -> Result<u64, String> {
    let js = jetstream::new(client.clone());
    let subject = subjects::room_message(&room(room_name), &user(who));
    let ack = tokio::time::timeout(Duration::from_secs(3), async {
        js.publish(subject, body(room_name, who, text))
            .await
            .map_err(|e| e.to_string())?
            .await
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|_| "no acknowledgement".to_string())??;
    Ok(ack.sequence)
}

/// `who`'s standing, asked as the operator.
pub async fn standing(server: &NatsServer, who: &str) -> Standing {
    let client = server.client().await;
    let reply = client
        .request(subjects::standing(&user(who)), "".into())
        .await
        .unwrap();
    decode_reply(&reply.payload).unwrap()
}

/// Waits (up to 20 s) until `check` holds for `who`'s standing.
pub async fn standing_until(
    server: &NatsServer,
    who: &str,
    check: impl Fn(&Standing) -> bool,
) -> Standing {
    let client = server.client().await;
    for _ in 0..200 {
        if let Ok(reply) = client
            .request(subjects::standing(&user(who)), "".into())
            .await
        {
            if let Ok(s) = decode_reply::<Standing>(&reply.payload) {
                if check(&s) {
                    return s;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{who}'s standing never became as expected");
}

/// Every system event stored in `room_name`, in order.
pub async fn events(server: &NatsServer, room_name: &str) -> Vec<SystemEvent> {
    try_events(server, room_name).await.unwrap()
}

/// [`events`], or why they could not be read (the JetStream API may be busy with a
/// flood's deletions).
pub async fn try_events(server: &NatsServer, room_name: &str) -> Result<Vec<SystemEvent>, String> {
    let js = server.jetstream().await;
    let stream = js
        .get_stream(streams::stream_name(&room(room_name)))
        .await
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let config = jetstream::consumer::pull::OrderedConfig {
        filter_subject: subjects::room_system(&room(room_name)),
        ..Default::default()
    };
    chat_runtime::scan::scan(&stream, config, Duration::from_secs(5), |m, _| {
        out.push(serde_json::from_slice(&m.payload).unwrap());
        true
    })
    .await
    .map_err(|e| e.to_string())?;
    Ok(out)
}

/// Waits (up to 20 s) until the room holds an event `check` accepts; all events then.
pub async fn events_until(
    server: &NatsServer,
    room_name: &str,
    check: impl Fn(&[SystemEvent]) -> bool,
) -> Vec<SystemEvent> {
    for _ in 0..200 {
        if let Ok(all) = try_events(server, room_name).await {
            if check(&all) {
                return all;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the expected events never appeared in {room_name}");
}

/// The stream sequences and stream times (seconds) of `who`'s messages in the room.
pub async fn messages_of(server: &NatsServer, room_name: &str, who: &str) -> Vec<(u64, f64)> {
    let js = server.jetstream().await;
    let stream = js
        .get_stream(streams::stream_name(&room(room_name)))
        .await
        .unwrap();
    let mut out = Vec::new();
    let config = jetstream::consumer::pull::OrderedConfig {
        filter_subject: subjects::room_message(&room(room_name), &user(who)),
        ..Default::default()
    };
    chat_runtime::scan::scan(&stream, config, Duration::from_secs(5), |_, info| {
        let t = info.published;
        out.push((
            info.stream_sequence,
            t.unix_timestamp() as f64 + t.nanosecond() as f64 / 1e9,
        ));
        true
    })
    .await
    .unwrap();
    out
}

/// Sends a moderation command as `who` in `room_name`: the reply, or the refusal and
/// its service error code.
pub async fn moderate(
    client: &async_nats::Client,
    room_name: &str,
    who: &str,
    request: &ModerationRequest,
) -> Result<ModerationReply, (String, String)> {
    let reply = client
        .request(
            subjects::moderate(&room(room_name), &user(who)),
            serde_json::to_vec(request).unwrap().into(),
        )
        .await
        .unwrap();
    let code = reply
        .headers
        .as_ref()
        .and_then(|h| h.get("Nats-Service-Error-Code"))
        .map(|v| v.to_string())
        .unwrap_or_default();
    decode_reply(&reply.payload).map_err(|e| match e {
        ReplyError::Refused(why) => (code, why),
        other => (code, other.to_string()),
    })
}

/// Waits (up to 20 s) until `client` has connected `times` times (a kick makes it
/// reconnect).
pub async fn connects_at_least(client: &async_nats::Client, times: u64) {
    for _ in 0..200 {
        if client
            .statistics()
            .connects
            .load(std::sync::atomic::Ordering::Relaxed)
            >= times
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the client was never reconnected (kicked)");
}

/// Logs in as `who` (registered before), or the server's refusal.
pub async fn login(
    server: &NatsServer,
    who: &str,
) -> Result<async_nats::Client, async_nats::ConnectError> {
    async_nats::ConnectOptions::with_user_and_password(who.into(), crate::password_of(who))
        .custom_inbox_prefix(chat_protocol::auth::inbox_prefix(&user(who)))
        .max_reconnects(Some(1))
        .connect(server.url())
        .await
}
