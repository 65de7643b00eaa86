//! What a logged-in chat user (or a guest) may not do, tried the way an attacker with a
//! plain NATS client would, each refused by nats-server itself: the server answers
//! "Permissions Violation" and nothing changes.

use std::time::Duration;

use async_nats::jetstream;
use chat_protocol::auth;
use futures::StreamExt;
use serde_json::json;
use test_support::{run_server, NatsServer};
use tokio::sync::mpsc;

const PATIENCE: Duration = Duration::from_secs(20);

/// A raw client logged in as `user`, and the server errors it receives.
async fn attacker(
    server: &NatsServer,
    user: &str,
) -> (async_nats::Client, mpsc::UnboundedReceiver<String>) {
    let password = server.register(user).await;
    let name = chat_protocol::UserName::new(user).unwrap();
    let options = async_nats::ConnectOptions::with_user_and_password(user.into(), password)
        .custom_inbox_prefix(auth::inbox_prefix(&name));
    with_errors(server, options).await
}

/// Connects with `options`, passing on the server errors it receives.
async fn with_errors(
    server: &NatsServer,
    options: async_nats::ConnectOptions,
) -> (async_nats::Client, mpsc::UnboundedReceiver<String>) {
    let (errors_tx, errors) = mpsc::unbounded_channel();
    let client = options
        .event_callback(move |event| {
            let errors_tx = errors_tx.clone();
            async move {
                if let async_nats::Event::ServerError(error) = event {
                    let _ = errors_tx.send(error.to_string());
                }
            }
        })
        .connect(server.url())
        .await
        .unwrap();
    (client, errors)
}

/// Waits for the server's permission violation about `subject`.
async fn refused(errors: &mut mpsc::UnboundedReceiver<String>, what: &str, subject: &str) {
    let subject = subject.to_ascii_lowercase();
    tokio::time::timeout(PATIENCE, async {
        loop {
            let error = errors
                .recv()
                .await
                .expect("error channel open")
                .to_ascii_lowercase();
            if error.contains("permissions violation") && error.contains(&subject) {
                return;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what}: no permissions violation for {subject}"));
}

/// Publishes `body` on `subject` (a request when it is the JetStream API) and expects
/// the server to refuse it.
async fn try_publish(
    client: &async_nats::Client,
    errors: &mut mpsc::UnboundedReceiver<String>,
    what: &str,
    subject: &str,
    body: serde_json::Value,
) {
    let inbox = client.new_inbox();
    client
        .publish_with_reply(subject.to_string(), inbox, body.to_string().into())
        .await
        .unwrap();
    client.flush().await.unwrap();
    refused(errors, what, subject).await;
}

/// A room with a message from alice, made as a real user would (a presence worker
/// creates the stream on join; here the operator does, with the project's config).
async fn room_with_message(server: &NatsServer, room: &str) -> jetstream::Context {
    let js = server.jetstream().await;
    let room = chat_protocol::RoomName::new(room).unwrap();
    js.get_or_create_stream(chat_runtime::storage::room_stream_config(
        &room,
        &Default::default(),
    ))
    .await
    .unwrap();
    let alice = server.user_client("alice").await;
    jetstream::new(alice)
        .publish(
            chat_protocol::subjects::room_message(
                &room,
                &chat_protocol::UserName::new("alice").unwrap(),
            ),
            json!({"text": "hello"}).to_string().into(),
        )
        .await
        .unwrap()
        .await
        .expect("alice may post as herself");
    js
}

async fn messages(js: &jetstream::Context, stream: &str) -> u64 {
    js.get_stream(stream)
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .state
        .messages
}

#[tokio::test]
async fn cannot_post_as_someone_else_or_forge_events() {
    let server = run_server();
    let js = room_with_message(&server, "general").await;
    let (mallory, mut errors) = attacker(&server, "mallory").await;
    let forged =
        json!({"v":1,"type":"chat","id":"x","room":"general","user":"alice","text":"forged"});
    try_publish(
        &mallory,
        &mut errors,
        "post as alice",
        "chat.room.general.msg.alice",
        forged,
    )
    .await;
    let event = json!({"v":1,"type":"left","id":"y","room":"general","user":"alice","reason":"leave","users":0});
    try_publish(
        &mallory,
        &mut errors,
        "forge a left event",
        "chat.room.general.sys",
        event,
    )
    .await;
    try_publish(
        &mallory,
        &mut errors,
        "join as alice",
        "chat.presence.general.alice",
        json!({"type":"join","session":"6f1c7d1e111142228333944445555666"}),
    )
    .await;
    assert_eq!(
        messages(&js, "CHAT_general").await,
        1,
        "only alice's own message"
    );
}

#[tokio::test]
async fn cannot_touch_presence_state() {
    let server = run_server();
    let js = room_with_message(&server, "general").await;
    // The presence buckets exist as the presence worker makes them.
    let _worker = presence_worker::PresenceWorker::start(
        server.presence_client().await,
        presence_worker::Config::default(),
    )
    .await
    .unwrap();
    let (mallory, mut errors) = attacker(&server, "mallory").await;
    for bucket in [
        "KV_chat_presence",
        "KV_chat_presence_users",
        "KV_chat_moderation",
    ] {
        try_publish(
            &mallory,
            &mut errors,
            "read sessions",
            &format!("$JS.API.CONSUMER.CREATE.{bucket}"),
            json!({"stream_name": bucket, "config": {}}),
        )
        .await;
        try_publish(
            &mallory,
            &mut errors,
            "read sessions (named)",
            &format!("$JS.API.CONSUMER.CREATE.{bucket}.x.$KV.>"),
            json!({"stream_name": bucket, "config": {"name": "x"}}),
        )
        .await;
        try_publish(
            &mallory,
            &mut errors,
            "direct get",
            &format!("$JS.API.DIRECT.GET.{bucket}"),
            json!({"seq": 1}),
        )
        .await;
        try_publish(
            &mallory,
            &mut errors,
            "delete a session",
            &format!("$JS.API.STREAM.MSG.DELETE.{bucket}"),
            json!({"seq": 1}),
        )
        .await;
        try_publish(
            &mallory,
            &mut errors,
            "purge presence",
            &format!("$JS.API.STREAM.PURGE.{bucket}"),
            json!({}),
        )
        .await;
        try_publish(
            &mallory,
            &mut errors,
            "delete the bucket",
            &format!("$JS.API.STREAM.DELETE.{bucket}"),
            json!({}),
        )
        .await;
    }
    try_publish(
        &mallory,
        &mut errors,
        "insert a ghost session",
        "$KV.chat_presence.general.ghost.6f1c7d1e111142228333944445555666",
        json!({"room":"general","user":"ghost"}),
    )
    .await;
    try_publish(
        &mallory,
        &mut errors,
        "write announced state",
        "$KV.chat_presence_users.general.alice",
        json!({}),
    )
    .await;
    let kv = js.get_key_value("chat_presence").await.unwrap();
    assert!(kv
        .get("general.ghost.6f1c7d1e111142228333944445555666")
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn cannot_delete_purge_or_squat_rooms() {
    let server = run_server();
    let js = room_with_message(&server, "general").await;
    let (mallory, mut errors) = attacker(&server, "mallory").await;
    for (what, subject, body) in [
        (
            "delete a room",
            "$JS.API.STREAM.DELETE.CHAT_general",
            json!({}),
        ),
        (
            "purge a room",
            "$JS.API.STREAM.PURGE.CHAT_general",
            json!({}),
        ),
        (
            "delete a message",
            "$JS.API.STREAM.MSG.DELETE.CHAT_general",
            json!({"seq": 1}),
        ),
        (
            "change a room",
            "$JS.API.STREAM.UPDATE.CHAT_general",
            json!({"name": "CHAT_general", "subjects": ["x"]}),
        ),
        (
            "squat a room before its first join",
            "$JS.API.STREAM.CREATE.SQUAT",
            json!({"name": "SQUAT", "subjects": ["chat.room.future.>"]}),
        ),
        (
            "create a room stream",
            "$JS.API.STREAM.CREATE.CHAT_future",
            json!({"name": "CHAT_future", "subjects": ["chat.room.future.>"]}),
        ),
    ] {
        try_publish(&mallory, &mut errors, what, subject, body).await;
    }
    assert_eq!(messages(&js, "CHAT_general").await, 1);
    let mut names: Vec<String> = js.stream_names().map(|n| n.unwrap()).collect().await;
    names.sort();
    // The room, and the moderation worker's bucket (the stack runs one).
    assert_eq!(names, ["CHAT_general", "KV_chat_moderation"]);
}

#[tokio::test]
async fn cannot_listen_to_others_or_answer_as_a_worker() {
    let server = run_server();
    let (mallory, mut errors) = attacker(&server, "mallory").await;
    for subject in [
        ">",
        "_INBOX.>",
        "_INBOX_alice.>",
        "chat.users.*",
        "chat.presence.*.*",
        "chat.room.>",
        "$SRV.>",
    ] {
        let _sub = mallory.subscribe(subject.to_string()).await.unwrap();
        mallory.flush().await.unwrap();
        refused(&mut errors, "subscribe", subject).await;
    }
    // Nor answer someone's request by publishing into their inbox.
    try_publish(
        &mallory,
        &mut errors,
        "reply as a worker",
        "_INBOX_alice.abc",
        json!({"room":"general","users":["mallory"]}),
    )
    .await;
    // Its own inbox is fine: a request to a worker gets its answer.
    let _history =
        history_worker::HistoryWorker::start(server.history_client().await, Default::default())
            .await
            .unwrap();
    // (The worker's subscription reaches the server shortly after it starts.)
    let reply = tokio::time::timeout(PATIENCE, async {
        loop {
            match mallory.request("chat.history.general", "{}".into()).await {
                Ok(reply) => return reply,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    })
    .await
    .expect("the history worker answers");
    assert!(
        String::from_utf8_lossy(&reply.payload).contains("error"),
        "an unknown room is an error reply"
    );
}

/// A consumer's deliver subject is chosen by whoever creates it: one that delivers a
/// room's messages onto another room's subject of someone else must not store
/// anything there (nats-server does not let consumer deliveries into streams).
#[tokio::test]
async fn a_consumer_cannot_deliver_into_another_room_as_someone_else() {
    let server = run_server();
    let js = room_with_message(&server, "general").await;
    room_with_message(&server, "random").await;
    let (mallory, _errors) = attacker(&server, "mallory").await;
    let mallory_js = jetstream::new(mallory.clone());
    mallory_js
        .publish(
            "chat.room.random.msg.mallory",
            json!({"user":"bob","text":"forged"}).to_string().into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    let request = json!({"stream_name": "CHAT_random", "config": {
        "deliver_subject": "chat.room.general.msg.bob", "deliver_policy": "all", "ack_policy": "none"}});
    let _ = mallory
        .request(
            "$JS.API.CONSUMER.CREATE.CHAT_random",
            request.to_string().into(),
        )
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        messages(&js, "CHAT_general").await,
        1,
        "nothing was delivered into general"
    );
}

#[tokio::test]
async fn the_user_table_is_out_of_reach() {
    let server = run_server();
    let mallory = server.user_client("mallory").await;
    let reply = mallory
        .request("$JS.API.STREAM.INFO.KV_chat_auth_users", "".into())
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&reply.payload);
    assert!(text.contains("stream not found"), "{text}");
}

#[tokio::test]
async fn a_guest_may_only_register() {
    let server = run_server();
    let (guest, mut errors) = with_errors(&server, async_nats::ConnectOptions::new()).await;
    for subject in [
        "chat.room.general.msg.guest",
        "chat.users.general",
        "chat.auth.passwd",
        "$JS.API.STREAM.INFO.CHAT_general",
    ] {
        try_publish(&guest, &mut errors, "guest", subject, json!({})).await;
    }
    let reply = guest
        .request(
            auth::REGISTER,
            json!({"user": "newbie", "password": "long enough"})
                .to_string()
                .into(),
        )
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&reply.payload).contains("\"ok\":true"));
}
