//! The `history-worker` binary: health check, graceful stop, exit codes.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use history_worker::SERVICE_NAME;

const BIN: &str = env!("CARGO_BIN_EXE_history-worker");

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
    panic!("history-worker did not exit");
}

#[tokio::test]
async fn answers_ping_and_exits_cleanly_on_sigterm() {
    let server = test_support::run_server();
    let mut child = Command::new(BIN)
        .args(["--nats-url", &server.url(), "--log-format", "json"])
        .env("NATS_PASSWORD_FILE", server.password_file("@history"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let client = server.client().await;
    let ping = format!("$SRV.PING.{SERVICE_NAME}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let pong = loop {
        match client.request(ping.clone(), "".into()).await {
            Ok(reply) => break reply,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => {
                let _ = child.kill();
                panic!("no pong: {e}");
            }
        }
    };
    let pong: serde_json::Value = serde_json::from_slice(&pong.payload).unwrap();
    assert_eq!(pong["name"], SERVICE_NAME);
    // What `nats micro info` shows: the endpoint, in the default queue group.
    let info = client
        .request(format!("$SRV.INFO.{SERVICE_NAME}"), "".into())
        .await
        .unwrap();
    let info: serde_json::Value = serde_json::from_slice(&info.payload).unwrap();
    // Found by name: the service has two endpoints, listed in no set order.
    let endpoints = info["endpoints"].as_array().expect("endpoints");
    let history = endpoints
        .iter()
        .find(|e| e["name"] == "history")
        .expect("the history endpoint");
    assert_eq!(
        history["subject"],
        chat_protocol::subjects::endpoints::HISTORY
    );
    assert_eq!(history["queue_group"], "q");

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert_eq!(wait_exit(&mut child), Some(0));
}

#[test]
fn exits_69_when_nats_is_unreachable() {
    let mut child = Command::new(BIN)
        .args(["--nats-url", &test_support::unreachable_url()])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert_eq!(wait_exit(&mut child), Some(69));
}
