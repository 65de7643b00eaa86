//! The `moderation-worker` binary: its three logins, health check, graceful stop, exit
//! codes.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chat_protocol::auth::static_users;
use moderation_worker::SERVICE_NAME;
use test_support::{run_server_with, StackOptions};

const BIN: &str = env!("CARGO_BIN_EXE_moderation-worker");

/// Waits (generously) for the child to exit and returns its exit code.
fn wait_exit(child: &mut std::process::Child) -> Option<i32> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    panic!("moderation-worker did not exit");
}

fn no_worker() -> test_support::NatsServer {
    run_server_with(StackOptions {
        moderation_workers: 0,
        ..StackOptions::default()
    })
}

#[tokio::test]
async fn answers_standings_and_exits_cleanly_on_sigterm() {
    let server = no_worker();
    let mut child = Command::new(BIN)
        .args(["--nats-url", &server.url(), "--log-format", "json"])
        .env(
            "NATS_PASSWORD_FILE",
            server.password_file(static_users::MODERATION),
        )
        .env(
            "NATS_SYS_PASSWORD_FILE",
            server.password_file(static_users::MODERATION_SYS),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let client = server.client().await;
    let ask = chat_protocol::subjects::standing(&chat_protocol::UserName::new("bob").unwrap());
    let deadline = Instant::now() + Duration::from_secs(30);
    let reply = loop {
        match client.request(ask.clone(), "".into()).await {
            Ok(reply) => break reply,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => {
                let _ = child.kill();
                panic!("no standing: {e}");
            }
        }
    };
    let standing: chat_protocol::body::Standing =
        chat_protocol::body::decode_reply(&reply.payload).unwrap();
    assert_eq!(standing.rate, chat_protocol::body::Rate::default());
    let pong = client
        .request(format!("$SRV.PING.{SERVICE_NAME}"), "".into())
        .await
        .unwrap();
    let pong: serde_json::Value = serde_json::from_slice(&pong.payload).unwrap();
    assert_eq!(pong["name"], SERVICE_NAME);

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert_eq!(wait_exit(&mut child), Some(0));
}

#[test]
fn exits_77_when_the_system_login_is_refused() {
    let server = no_worker();
    let mut child = Command::new(BIN)
        .args(["--nats-url", &server.url()])
        .env(
            "NATS_PASSWORD_FILE",
            server.password_file(static_users::MODERATION),
        )
        // Another user's password: the system account refuses it.
        .env(
            "NATS_SYS_PASSWORD_FILE",
            server.password_file(static_users::MODERATION),
        )
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert_eq!(wait_exit(&mut child), Some(77));
}

#[test]
fn exits_69_when_nats_is_unreachable_and_2_on_a_bad_rate() {
    let mut child = Command::new(BIN)
        .args(["--nats-url", &test_support::unreachable_url()])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert_eq!(wait_exit(&mut child), Some(69));
    let mut child = Command::new(BIN)
        .args(["--per-second", "0"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert_eq!(wait_exit(&mut child), Some(2));
}

#[tokio::test]
async fn without_any_moderation_worker_logins_keep_full_rights() {
    let server = no_worker();
    let room = chat_protocol::RoomName::new("general").unwrap();
    server
        .jetstream()
        .await
        .create_stream(chat_runtime::storage::room_stream_config(
            &room,
            &chat_runtime::storage::RoomStreamSettings::default(),
        ))
        .await
        .unwrap();
    let bob = server.user_client("bob").await;
    let bob_name = chat_protocol::UserName::new("bob").unwrap();
    let js = async_nats::jetstream::new(bob);
    js.publish(
        chat_protocol::subjects::room_message(&room, &bob_name),
        r#"{"text":"standing unknown, still talking"}"#.into(),
    )
    .await
    .unwrap()
    .await
    .expect("stored");
}
