//! The `chat-client` binary in `--json` line mode, driven through stdin like a script.

mod common;

use common::*;
use serde_json::Value;
use tokio::io::AsyncWriteExt;

#[tokio::test]
async fn json_line_mode_end_to_end() {
    let server = test_support::run_server();
    let _presence = presence(&server).await;
    let (mut alice, mut out) = spawn(&mut client(&server, "alice").await);
    let welcome = next_event(&mut out, "welcome").await;
    assert_eq!(
        (welcome["room"].as_str(), welcome["user"].as_str()),
        (Some("general"), Some("alice"))
    );
    assert_eq!(welcome["users"], 1);

    let mut stdin = alice.stdin.take().unwrap();
    stdin
        .write_all(b"hello there\n/me waves\n/users\n/frobnicate\n")
        .await
        .unwrap();
    // Lines are handled in order, but the echo of a sent message comes back through
    // the room's feed, so it may be shown after the answer to a later /users.
    let (mut messages, mut rest) = (Vec::new(), Vec::new());
    while messages.len() < 2 || rest.len() < 2 {
        let event = next_event(&mut out, "").await;
        match event["event"].as_str() {
            Some("message") => messages.push(event),
            Some("users" | "error") => rest.push(event),
            _ => {}
        }
    }
    let hello = &messages[0];
    assert_eq!(hello["text"], "hello there");
    assert_eq!(hello["user"], "alice");
    assert_eq!(hello["type"], "chat");
    assert_eq!(hello["replay"], false);
    assert!(hello["seq"].as_u64().unwrap() > 0);
    assert!(hello["id"].as_str().is_some() && hello["ts"].as_str().is_some());
    let waves = &messages[1];
    assert_eq!(
        (waves["type"].as_str(), waves["text"].as_str()),
        (Some("me"), Some("waves"))
    );
    let users = &rest[0];
    assert_eq!(users["event"], "users");
    assert_eq!(users["users"], serde_json::json!(["alice"]));
    let error = &rest[1];
    assert_eq!(error["event"], "error");
    assert!(error["message"].as_str().unwrap().contains("/frobnicate"));

    drop(stdin);
    let status = tokio::time::timeout(PATIENCE, alice.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn bad_arguments_and_unreachable_nats() {
    let mut bad_user = command_at("nats://127.0.0.1:1", "al ice");
    let output = bad_user.output().await.unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("user name") && stderr.contains("A-Z"),
        "{stderr}"
    );

    let mut bad_room = command_at("nats://127.0.0.1:1", "alice");
    let output = bad_room.args(["--room", "no.dots"]).output().await.unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("room name"));

    let url = test_support::unreachable_url();
    let output = command_at(&url, "alice")
        .env("CHAT_PASSWORD", "whatever-it-is")
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(69));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&url), "{stderr}");
}

/// A script that pipes all its lines at once and closes stdin (`printf ... | chat-client`)
/// gets the welcome first, every message acknowledged and shown, and exit 0.
#[tokio::test]
async fn piped_script_is_joined_before_its_lines() {
    let server = test_support::run_server();
    let _presence = presence(&server).await;
    let mut command = client(&server, "scripted").await;
    let mut child = command.args(["--room", "fresh-room"]).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"one\ntwo\n/me three\n").await.unwrap();
    drop(stdin);
    let output = tokio::time::timeout(PATIENCE, child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let events: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(
        events.first().map(|e| e["event"].clone()),
        Some("welcome".into())
    );
    let texts: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "message")
        .map(|e| e["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["one", "two", "three"]);
}

/// Point 7: a line that is not UTF-8 is that line's error; later lines are sent. An
/// empty line is no error at all (point 10).
#[tokio::test]
async fn an_invalid_utf8_line_is_reported_and_the_session_goes_on() {
    let server = test_support::run_server();
    let _presence = presence(&server).await;
    let mut child = client(&server, "alice").await.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(b"first\nbad \xff\xfe line\n\n   \nthird\n")
        .await
        .unwrap();
    drop(stdin);
    let output = tokio::time::timeout(PATIENCE, child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let events: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let texts: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "message")
        .map(|e| e["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["first", "third"]);
    let errors: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "error")
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("line 2") && errors[0].contains("UTF-8"),
        "{errors:?}"
    );
    assert_eq!(output.status.code(), Some(0));
}

/// Point 8: `--json` output carries no control or invisible format character raw,
/// yet reads back as exactly the text that was sent.
#[tokio::test]
async fn json_output_escapes_controls_and_format_characters() {
    let server = test_support::run_server();
    let _presence = presence(&server).await;
    let (mut alice, mut out) = spawn(&mut client(&server, "alice").await);
    next_event(&mut out, "welcome").await;
    let hostile = "a\u{7f}b\u{9b}c\u{85}d\u{202e}e\u{2066}f\u{2069}g\u{200b}h\u{feff}i\u{e0041}j\u{2028}k\u{61c}l";
    let body = serde_json::json!({"v": 1, "type": "chat", "id": "6f1c7d1e-1111-4222-8333-944445555666", "text": hostile});
    let client = server.client().await;
    client
        .publish("chat.room.general.msg.mallory", body.to_string().into())
        .await
        .unwrap();
    client.flush().await.unwrap();
    let line = tokio::time::timeout(PATIENCE, out.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        line.chars().all(|c| c.is_ascii() && !c.is_ascii_control()),
        "raw control or format character in {line:?}"
    );
    let event: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(event["text"], hostile, "lossless");
    drop(alice.stdin.take());
    assert_eq!(
        tokio::time::timeout(PATIENCE, alice.wait())
            .await
            .unwrap()
            .unwrap()
            .code(),
        Some(0)
    );
}
