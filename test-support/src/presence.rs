//! Shared helpers of the presence worker's integration tests: workers with short TTLs,
//! requests, and reading what the room streams hold.

use std::future::Future;
use std::time::Duration;

use crate::NatsServer;
use async_nats::jetstream;
use chat_protocol::body::{PresenceAction, PresenceRequest, SystemEvent, SystemKind};
use chat_protocol::streams::stream_name;
use chat_protocol::{subjects, RoomName, SessionId, UserName};
use chat_runtime::reading::{fetch_forward, Limits};
use presence_worker::{Config, PresenceWorker};
use serde_json::Value;

/// TTL of the tests' workers: short so that expiry takes seconds.
pub const TTL: Duration = Duration::from_secs(2);

/// How long a test waits for something that must happen.
pub const PATIENCE: Duration = Duration::from_secs(30);

pub fn test_config() -> Config {
    Config {
        ttl: TTL,
        ack_wait: Duration::from_secs(2),
        marker_ttl: Duration::from_secs(60),
        streams: crate::room_settings(),
        ..Config::default()
    }
}

/// TTL of the workers of tests that are not about expiry: long enough that no
/// session expires however slowly a loaded machine runs the test.
pub const STEADY_TTL: Duration = Duration::from_secs(60);

/// A worker whose sessions do not expire during a test, on its own connection.
pub async fn steady_worker(server: &NatsServer) -> PresenceWorker {
    let config = Config {
        ttl: STEADY_TTL,
        ..test_config()
    };
    worker_with(server, config).await
}

/// A worker with the short test TTL, on its own connection, so that dropping it is a
/// crash.
pub async fn worker(server: &NatsServer) -> PresenceWorker {
    PresenceWorker::start(server.presence_client().await, test_config())
        .await
        .expect("worker starts")
}

pub fn room(name: &str) -> RoomName {
    RoomName::new(name).unwrap()
}

pub fn user(name: &str) -> UserName {
    UserName::new(name).unwrap()
}

/// Sends a raw request and returns the reply's JSON body and headers.
pub async fn raw(
    client: &async_nats::Client,
    subject: impl Into<String>,
    body: impl Into<bytes::Bytes>,
) -> (Value, Option<async_nats::HeaderMap>) {
    let reply = tokio::time::timeout(PATIENCE, client.request(subject.into(), body.into()))
        .await
        .expect("reply in time")
        .expect("reply");
    let value = serde_json::from_slice(&reply.payload).expect("reply is JSON");
    (value, reply.headers)
}

/// A presence request for `session` of `user` in `room`.
pub async fn presence(
    client: &async_nats::Client,
    room: &RoomName,
    user: &UserName,
    action: PresenceAction,
    session: SessionId,
) -> Value {
    let body = serde_json::to_vec(&PresenceRequest { action, session }).unwrap();
    raw(client, subjects::presence(room, user), body).await.0
}

pub async fn join(c: &async_nats::Client, r: &RoomName, u: &UserName, s: SessionId) -> Value {
    presence(c, r, u, PresenceAction::Join, s).await
}

pub async fn heartbeat(c: &async_nats::Client, r: &RoomName, u: &UserName, s: SessionId) -> Value {
    presence(c, r, u, PresenceAction::Heartbeat, s).await
}

pub async fn leave(c: &async_nats::Client, r: &RoomName, u: &UserName, s: SessionId) -> Value {
    presence(c, r, u, PresenceAction::Leave, s).await
}

/// `chat.users.<room>` as a list of names.
pub async fn users(client: &async_nats::Client, room: &RoomName) -> Vec<String> {
    let (reply, _) = raw(client, subjects::users(room), "").await;
    serde_json::from_value(reply["users"].clone()).expect("users list")
}

/// Every system event stored in the room's stream, oldest first, one per user named:
/// an event naming several users (`others`, a burst of joins) counts as one event
/// per user, each with the event's id, so that every transition can be counted.
pub async fn events(js: &jetstream::Context, room: &RoomName) -> Vec<SystemEvent> {
    stored_events(js, room)
        .await
        .into_iter()
        .flat_map(|event| {
            let others = event.detail.others.clone();
            let alone = |user| {
                let mut e = event.clone();
                e.user = user;
                e.detail.others = Vec::new();
                e
            };
            std::iter::once(alone(event.user.clone()))
                .chain(others.into_iter().map(alone))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Every system event stored in the room's stream, oldest first, as stored.
pub async fn stored_events(js: &jetstream::Context, room: &RoomName) -> Vec<SystemEvent> {
    let Ok(stream) = js.get_stream(stream_name(room)).await else {
        return Vec::new();
    };
    let limits = Limits {
        messages: 100_000,
        bytes: 1 << 30,
    };
    let filter = subjects::room_system(room);
    let (messages, _) = fetch_forward(&stream, Some(&filter), 1, limits)
        .await
        .expect("read the room stream");
    messages
        .iter()
        .map(|m| serde_json::from_slice(&m.payload).expect("system event"))
        .collect()
}

/// The events about `user`, as (kind, reason) pairs.
pub async fn events_of(
    js: &jetstream::Context,
    room: &RoomName,
    user: &UserName,
) -> Vec<(SystemKind, chat_protocol::body::Reason)> {
    events(js, room)
        .await
        .into_iter()
        .filter(|e| &e.user == user)
        .map(|e| (e.kind, e.reason))
        .collect()
}

/// Polls `check` until it returns `Some`, or fails the test after [`PATIENCE`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A worker with a custom configuration, on its own connection.
pub async fn worker_with(server: &NatsServer, config: Config) -> PresenceWorker {
    PresenceWorker::start(server.presence_client().await, config)
        .await
        .expect("worker starts")
}

/// Waits until the shared expiry consumer has handed out and had acknowledged every
/// marker: after this, no worker has an announcement left to make.
pub async fn settled(js: &jetstream::Context) {
    let kv = js
        .get_key_value(chat_protocol::streams::PRESENCE_BUCKET)
        .await
        .unwrap();
    eventually("the expiry consumer to be idle", || {
        let stream = kv.stream.clone();
        async move {
            let mut consumer: jetstream::consumer::PullConsumer = stream
                .get_consumer(presence_worker::EXPIRY_CONSUMER)
                .await
                .ok()?;
            let info = consumer.info().await.ok()?;
            (info.num_pending == 0 && info.num_ack_pending == 0).then_some(())
        }
    })
    .await;
}

/// Waits until `user`'s events in `room` are exactly `expected`.
pub async fn wait_for_events(
    js: &jetstream::Context,
    room: &RoomName,
    user: &UserName,
    expected: &[(SystemKind, chat_protocol::body::Reason)],
) {
    eventually(
        &format!("events of {user} in {room}: {expected:?}"),
        || async {
            let got = events_of(js, room, user).await;
            assert!(
                got.len() <= expected.len() && got[..] == expected[..got.len()],
                "unexpected events: {got:?}, expected {expected:?}"
            );
            (got.len() == expected.len()).then_some(())
        },
    )
    .await
}
