//! Accounts as people use them: register, log in, wrong password, unknown name, name
//! taken, password change, logins that expire while chatting, and auth workers killed,
//! restarted and running side by side. Real nats-server, real auth worker(s), the real
//! chat client library.

use std::time::Duration;

use chat_client::{AccountError, Chat, ConnectError, Event, Options};
use chat_protocol::body::MessageKind;
use chat_protocol::{RoomName, UserName};
use serde_json::json;
use test_support::{run_server, run_server_with, NatsServer, StackOptions};
use tokio::sync::mpsc;

const PATIENCE: Duration = Duration::from_secs(30);

fn user(name: &str) -> UserName {
    UserName::new(name).unwrap()
}

async fn login(
    server: &NatsServer,
    name: &str,
    password: &str,
) -> Result<(Chat, mpsc::Receiver<Event>), ConnectError> {
    let mut options = Options::new(server.url(), user(name), password);
    options.request_timeout = Duration::from_secs(5);
    Chat::connect(options).await
}

async fn register(
    server: &NatsServer,
    name: &str,
    password: &str,
) -> Result<UserName, AccountError> {
    chat_client::login::register(&server.url(), name, password, Duration::from_secs(10)).await
}

async fn wait_for<T>(
    events: &mut mpsc::Receiver<Event>,
    mut pick: impl FnMut(&Event) -> Option<T>,
) -> T {
    tokio::time::timeout(PATIENCE, async {
        loop {
            let event = events.recv().await.expect("events open");
            if let Some(found) = pick(&event) {
                return found;
            }
        }
    })
    .await
    .expect("the expected event in time")
}

/// A presence worker for `server` (so that rooms can be joined).
async fn presence(server: &NatsServer) -> presence_worker::PresenceWorker {
    presence_worker::PresenceWorker::start(server.presence_client().await, Default::default())
        .await
        .unwrap()
}

/// Joins `room` and waits for the welcome.
async fn join(chat: &Chat, events: &mut mpsc::Receiver<Event>, room: &RoomName, history: usize) {
    chat.join(room, history);
    wait_for(events, |e| matches!(e, Event::Welcome { .. }).then_some(())).await;
}

/// Sends a chat message as `chat` into `room` and waits until JetStream stored it;
/// returns its stream sequence.
async fn say(chat: &Chat, room: &RoomName, text: &str) -> u64 {
    chat.send(room, MessageKind::Chat, text)
        .await
        .unwrap()
        .acked()
        .await
        .unwrap()
}

fn text_of(room: &RoomName) -> impl FnMut(&Event) -> Option<(String, String)> + '_ {
    move |e| match e {
        Event::Message {
            room: r,
            user,
            text,
            ..
        } if r == room => Some((user.to_string(), text.clone())),
        _ => None,
    }
}

#[tokio::test]
async fn register_then_login_and_the_refusals_say_what_was_wrong() {
    let server = run_server();
    assert_eq!(
        register(&server, "alice", "correct horse").await.unwrap(),
        user("alice")
    );
    let (alice, _events) = login(&server, "alice", "correct horse").await.unwrap();
    assert_eq!(alice.user().as_str(), "alice");

    // A wrong password and an unknown name get the same refusal.
    let wrong = login(&server, "alice", "wrong horse")
        .await
        .err()
        .expect("refused");
    let unknown = login(&server, "nobody", "correct horse")
        .await
        .err()
        .expect("refused");
    for refusal in [&wrong, &unknown] {
        assert!(matches!(refusal, ConnectError::Refused { .. }), "{refusal}");
        let said = refusal.to_string();
        assert!(
            said.contains("wrong name or password") && said.contains("register"),
            "{said}"
        );
    }
    // The name is taken (in any case), and the rules are said.
    let taken = register(&server, "Alice", "another horse")
        .await
        .unwrap_err()
        .to_string();
    assert!(taken.contains("taken"), "{taken}");
    let weak = register(&server, "bob", "short")
        .await
        .unwrap_err()
        .to_string();
    assert!(weak.contains("at least 8"), "{weak}");
    let empty = register(&server, "bob", "").await.unwrap_err().to_string();
    assert!(empty.contains("at least 8"), "{empty}");
    let invalid = register(&server, "al ice", "correct horse")
        .await
        .unwrap_err()
        .to_string();
    assert!(invalid.contains("A-Z"), "{invalid}");
    // The worker enforces the rules too, for clients that do not check first.
    let guest = async_nats::connect(server.url()).await.unwrap();
    for (body, expected) in [
        (json!({"user": "bob", "password": "short"}), "at least 8"),
        (json!({"user": "b.b", "password": "long enough"}), "A-Z"),
        (json!({"user": "alice", "password": "long enough"}), "taken"),
        (json!({"nonsense": 1}), "malformed"),
    ] {
        let reply = guest
            .request("chat.auth.register", body.to_string().into())
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&reply.payload);
        assert!(
            text.contains("\"ok\":false") && text.contains(expected),
            "{text}"
        );
        let headers = reply.headers.expect("service error headers");
        assert!(headers.get("Nats-Service-Error-Code").is_some());
    }
    // An empty password never connects as a guest by mistake.
    assert!(matches!(
        login(&server, "alice", "").await,
        Err(ConnectError::Refused { .. })
    ));
}

#[tokio::test]
async fn two_users_chat_and_a_password_change_takes_effect() {
    let server = run_server();
    let _presence = presence(&server).await;
    let general = RoomName::new("general").unwrap();
    let alice_password = server.register("alice").await;
    let bob_password = server.register("bob").await;
    let (alice, mut alice_events) = login(&server, "alice", &alice_password).await.unwrap();
    let (bob, mut bob_events) = login(&server, "bob", &bob_password).await.unwrap();
    for (chat, events) in [(&alice, &mut alice_events), (&bob, &mut bob_events)] {
        join(chat, events, &general, 0).await;
    }
    say(&alice, &general, "hi bob").await;
    assert_eq!(
        wait_for(&mut bob_events, text_of(&general)).await,
        ("alice".into(), "hi bob".into())
    );

    // A wrong current password changes nothing; the right one does.
    let wrong = bob
        .change_password("not mine", "new password 1")
        .await
        .unwrap_err();
    assert!(
        wrong.to_string().contains("current password is wrong"),
        "{wrong}"
    );
    bob.change_password(&bob_password, "new password 1")
        .await
        .unwrap();
    assert!(matches!(
        login(&server, "bob", &bob_password).await,
        Err(ConnectError::Refused { .. })
    ));
    login(&server, "bob", "new password 1").await.unwrap();
    // Bob's session goes on.
    say(&bob, &general, "still here").await;
    let from_bob = wait_for(&mut alice_events, |e| {
        text_of(&general)(e).filter(|(sender, _)| sender == "bob")
    })
    .await;
    assert_eq!(from_bob.1, "still here");
}

/// The password change acts for whoever is logged in: a forged `Nats-Request-Info`
/// header is overwritten by the server.
#[tokio::test]
async fn a_forged_request_info_header_changes_nothing() {
    let server = run_server();
    let bob_password = server.register("bob").await;
    let mallory = server.user_client("mallory").await;
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Request-Info", r#"{"acc":"CHAT","user":"bob"}"#);
    let body = json!({"old": bob_password, "new": "mallory owns bob"});
    let reply = mallory
        .request_with_headers("chat.auth.passwd", headers, body.to_string().into())
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&reply.payload);
    assert!(text.contains("\"ok\":false"), "{text}");
    login(&server, "bob", &bob_password)
        .await
        .expect("bob's password is unchanged");
}

/// With logins lasting two seconds, the server disconnects the client again and again;
/// it logs in again by itself (with its resume token) and nothing is lost.
#[tokio::test]
async fn a_client_whose_login_expires_keeps_chatting() {
    let server = run_server_with(StackOptions {
        auth: auth_worker::Config {
            token_ttl: Duration::from_secs(2),
            ..StackOptions::default().auth
        },
        ..Default::default()
    });
    let _presence = presence(&server).await;
    let general = RoomName::new("general").unwrap();
    let password = server.register("alice").await;
    let (alice, mut events) = login(&server, "alice", &password).await.unwrap();
    join(&alice, &mut events, &general, 0).await;
    let mut reconnects = 0;
    let mut sent = Vec::new();
    for i in 0..12 {
        let text = format!("message {i}");
        let ack = alice
            .send(&general, MessageKind::Chat, &text)
            .await
            .unwrap();
        ack.acked().await.expect("stored");
        sent.push(text);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut seen = Vec::new();
    while seen.len() < sent.len() {
        match tokio::time::timeout(PATIENCE, events.recv())
            .await
            .unwrap()
            .unwrap()
        {
            Event::Message { text, .. } => seen.push(text),
            Event::Status {
                state: chat_client::State::Reconnected,
                ..
            } => reconnects += 1,
            Event::Status {
                state: chat_client::State::LoginRefused,
                message,
                ..
            } => {
                panic!("login refused: {message}")
            }
            _ => {}
        }
    }
    assert_eq!(seen, sent, "every message once, in order");
    assert!(
        reconnects >= 1,
        "the login expired at least once during the test"
    );
}

/// A resume token logs in without the password, and stops working when the password
/// changes.
#[tokio::test]
async fn resume_tokens_work_until_the_password_changes() {
    let server = run_server();
    let password = server.register("alice").await;
    let alice = server.user_client("alice").await;
    let reply = alice.request("chat.auth.resume", "".into()).await.unwrap();
    let token: chat_protocol::auth::ResumeReply = serde_json::from_slice(&reply.payload).unwrap();
    let with_token = |token: String| {
        async_nats::ConnectOptions::with_user_and_password("alice".into(), token)
            .max_reconnects(Some(1))
            .connect(server.url())
    };
    with_token(token.token.clone())
        .await
        .expect("the token logs in");
    let as_bob =
        async_nats::ConnectOptions::with_user_and_password("bob".into(), token.token.clone())
            .connect(server.url())
            .await;
    assert!(as_bob.is_err(), "a token is only for its user");
    let change = json!({"old": password, "new": "a new password"});
    alice
        .request("chat.auth.passwd", change.to_string().into())
        .await
        .unwrap();
    assert!(
        with_token(token.token).await.is_err(),
        "an old token is refused"
    );
}

/// Killing the auth worker leaves running clients alone; new logins fail clearly
/// while none runs, and work again once one is back. Two side by side share the work,
/// and either may die.
#[tokio::test]
async fn auth_workers_killed_restarted_and_side_by_side() {
    let mut server = run_server();
    let _presence = presence(&server).await;
    let general = RoomName::new("general").unwrap();
    let password = server.register("alice").await;
    let (alice, mut events) = login(&server, "alice", &password).await.unwrap();
    join(&alice, &mut events, &general, 0).await;

    server.kill_auth_workers();
    say(&alice, &general, "no auth worker").await;
    assert_eq!(
        wait_for(&mut events, text_of(&general)).await.1,
        "no auth worker"
    );
    let refused = login(&server, "alice", &password)
        .await
        .err()
        .expect("refused");
    assert!(
        matches!(refused, ConnectError::AuthUnavailable { .. }),
        "{refused}"
    );
    assert!(refused.to_string().contains("not answering"), "{refused}");

    let first = server.start_auth_worker();
    let second = server.start_auth_worker();
    // The server picks a queue member at random for each callout: 20 logins all going
    // to one instance has a chance of 2 in a million (6 had 3 in a hundred).
    for i in 0..20 {
        login(&server, "alice", &password)
            .await
            .unwrap_or_else(|e| panic!("login {i}: {e}"));
    }
    let admin = server.client_as("@auth").await;
    let stats = test_support::service_stats(&admin, "chat-auth", 2).await;
    for instance in &stats {
        let callouts = instance["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "callout")
            .unwrap()["num_requests"]
            .as_u64()
            .unwrap();
        assert!(callouts > 0, "both instances answered logins: {stats:?}");
    }
    drop(first);
    login(&server, "alice", &password)
        .await
        .expect("the other instance answers");
    drop(second);
}

/// Everything the client does in a normal session is within its permissions: joining
/// with a replay, chatting, /users, /rooms, both history replays, a reconnect, leaving.
/// (A permission the client lacks shows as a "refused by the server" error event.)
#[tokio::test]
async fn a_normal_session_is_never_refused_anything() {
    let mut server = run_server();
    let _presence = presence(&server).await;
    let _history =
        history_worker::HistoryWorker::start(server.history_client().await, Default::default())
            .await
            .unwrap();
    let general = RoomName::new("general").unwrap();
    let other = RoomName::new("other").unwrap();
    let password = server.register("alice").await;
    let (alice, events) = login(&server, "alice", &password).await.unwrap();
    let (mut events, refusals) = watch_refusals(events);
    for room in [&general, &other] {
        join(&alice, &mut events, room, 10).await;
        for i in 0..3 {
            say(&alice, room, &format!("{room} {i}")).await;
        }
    }
    alice.users(&general).await.unwrap();
    alice.list_rooms().await.unwrap();
    alice.all_messages(&general).await.unwrap();
    alice.my_messages(&general).await.unwrap();
    server.restart();
    wait_for(&mut events, |e| {
        matches!(
            e,
            Event::Status {
                state: chat_client::State::Reconnected,
                ..
            }
        )
        .then_some(())
    })
    .await;
    say(&alice, &general, "after").await;
    // A second session joins with a replay of what is stored.
    let (again, again_events) = login(&server, "alice", &password).await.unwrap();
    let (mut again_events, again_refusals) = watch_refusals(again_events);
    join(&again, &mut again_events, &general, 10).await;
    wait_for(&mut again_events, |e| match e {
        Event::Message {
            text, replay: true, ..
        } if text == "after" => Some(()),
        _ => None,
    })
    .await;
    alice.leave(&other).await;
    again.close().await;
    alice.close().await;
    drop((alice, again, events, again_events));
    tokio::time::sleep(Duration::from_millis(500)).await;
    for refusals in [refusals, again_refusals] {
        let refusals = refusals.lock().unwrap();
        assert!(refusals.is_empty(), "{refusals:?}");
    }
}

/// Passes `events` on, keeping every "refused by the server" error aside.
fn watch_refusals(
    mut events: mpsc::Receiver<Event>,
) -> (
    mpsc::Receiver<Event>,
    std::sync::Arc<std::sync::Mutex<Vec<String>>>,
) {
    let refusals = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let (tx, rx) = mpsc::channel(1024);
    let kept = refusals.clone();
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            if let Event::Error { message } = &event {
                if message.contains("refused by the server") {
                    kept.lock().unwrap().push(message.clone());
                }
            }
            let _ = tx.send(event).await;
        }
    });
    (rx, refusals)
}
