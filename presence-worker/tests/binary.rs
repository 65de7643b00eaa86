//! The real binary: answers `$SRV.PING`, exits 0 after SIGTERM, 69 without NATS.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use chat_protocol::SessionId;
use common::*;
use test_support::run_server;

const BIN: &str = env!("CARGO_BIN_EXE_presence-worker");

#[tokio::test]
async fn answers_ping_and_drains_on_sigterm() {
    let server = run_server();
    let mut child = Command::new(BIN)
        .env("NATS_URL", server.url())
        .env("NATS_PASSWORD_FILE", server.password_file("@presence"))
        .env("PRESENCE_TTL", "3")
        .args(["--log-format", "json"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the binary");
    let client = server.client().await;
    let pong = eventually("$SRV.PING answers", || {
        let client = client.clone();
        async move {
            let reply = tokio::time::timeout(
                Duration::from_secs(1),
                client.request("$SRV.PING.chat-presence", "".into()),
            )
            .await
            .ok()?
            .ok()?;
            serde_json::from_slice::<serde_json::Value>(&reply.payload).ok()
        }
    })
    .await;
    assert_eq!(pong["name"], "chat-presence");
    let reply = join(
        &client,
        &room("general"),
        &user("alice"),
        SessionId::random(),
    )
    .await;
    assert_eq!(reply["heartbeat"], 1, "{reply}");

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let output = tokio::task::spawn_blocking(move || {
        let status = child.wait().unwrap();
        let mut stderr = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
        (status, stderr)
    })
    .await
    .unwrap();
    assert_eq!(output.0.code(), Some(0), "{}", output.1);
    // Every log line is one JSON object, and the join was logged with its names.
    let lines: Vec<serde_json::Value> = output
        .1
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON log line"))
        .collect();
    assert!(lines.iter().any(|l| l["message"] == "session joined"
        && l["room"] == "general"
        && l["user"] == "alice"));
}

#[test]
fn exits_69_when_nats_is_unreachable() {
    let status = Command::new(BIN)
        .env("NATS_URL", test_support::unreachable_url())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(69));
}

/// A worker whose password is wrong is refused by the server and says so with exit 77,
/// without retrying.
#[test]
fn exits_77_when_the_login_is_refused() {
    let server = run_server();
    let wrong = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(wrong.path(), "not-the-password\n").unwrap();
    let status = Command::new(BIN)
        .env("NATS_URL", server.url())
        .env("NATS_PASSWORD_FILE", wrong.path())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(77));
}
