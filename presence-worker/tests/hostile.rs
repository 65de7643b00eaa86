//! Hostile requests get `{"ok": false}` replies with the service error headers, are
//! counted in `$SRV.STATS`, and the worker keeps answering.

mod common;

use chat_protocol::SessionId;
use common::*;
use test_support::run_server;

#[tokio::test]
async fn hostile_requests_are_refused_and_the_worker_keeps_answering() {
    let server = run_server();
    let _worker = steady_worker(&server).await;
    let client = server.client().await;
    let session = SessionId::random().to_string();
    let valid = format!(r#"{{"type":"join","session":"{session}"}}"#);
    let cases: Vec<(String, Vec<u8>)> = vec![
        ("chat.presence.general.alice".into(), b"not json".to_vec()),
        (
            "chat.presence.general.alice".into(),
            b"\xff\xfe\x00".to_vec(),
        ),
        ("chat.presence.general.alice".into(), b"".to_vec()),
        (
            "chat.presence.general.alice".into(),
            br#"{"type":"dance","session":"x"}"#.to_vec(),
        ),
        (
            "chat.presence.general.alice".into(),
            br#"{"type":"join","session":"nope"}"#.to_vec(),
        ),
        (
            "chat.presence.general.alice".into(),
            br#"{"type":"join","session":5}"#.to_vec(),
        ),
        (
            "chat.presence.General.alice".into(),
            valid.clone().into_bytes(),
        ),
        (
            "chat.presence.general.al\u{1b}[31m".into(),
            valid.clone().into_bytes(),
        ),
        (
            "chat.presence.-bad.alice".into(),
            valid.clone().into_bytes(),
        ),
        ("chat.users.UPPER".into(), b"".to_vec()),
    ];
    for (subject, body) in &cases {
        let (reply, headers) = raw(&client, subject.clone(), body.clone()).await;
        assert_eq!(reply["ok"], false, "{subject}: {reply}");
        let error = reply["error"].as_str().expect("error text");
        assert!(!error.is_empty() && !error.contains('\u{1b}'), "{error}");
        let headers = headers.expect("service error headers");
        assert!(headers.get("Nats-Service-Error").is_some());
        let code = headers.get("Nats-Service-Error-Code").unwrap().as_str();
        assert_eq!(code, "400", "{subject}: {reply}");
    }
    // A body above any the contract has is refused before any work (413).
    let (reply, headers) = raw(
        &client,
        "chat.presence.general.alice",
        vec![b'{'; 100 * 1024],
    )
    .await;
    assert_eq!(reply["ok"], false, "{reply}");
    assert!(
        reply["error"]
            .as_str()
            .unwrap()
            .contains("request too large"),
        "{reply}"
    );
    let headers = headers.expect("service error headers");
    assert_eq!(
        headers.get("Nats-Service-Error-Code").unwrap().as_str(),
        "413"
    );

    // The body's user is ignored: the subject's token is the user.
    let spoof = format!(r#"{{"type":"join","session":"{session}","user":"mallory"}}"#);
    let (reply, _) = raw(&client, "chat.presence.general.alice", spoof).await;
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(users(&client, &room("general")).await, ["alice"]);

    // $SRV.STATS counts the failures in the endpoint's data.
    let stats = client
        .request("$SRV.STATS.chat-presence", "".into())
        .await
        .unwrap();
    let stats: serde_json::Value = serde_json::from_slice(&stats.payload).unwrap();
    let endpoints = stats["endpoints"].as_array().unwrap();
    let failures = |name: &str| {
        endpoints
            .iter()
            .find(|e| e["name"] == name)
            .map(|e| e["data"]["failures"].as_u64().unwrap())
            .unwrap()
    };
    assert_eq!(failures("presence"), cases.len() as u64 - 1);
    assert_eq!(failures("users"), 1);
}

/// A flood of the largest requests allowed: at most `concurrency + queue` are taken,
/// the excess is refused at once with 503 "busy, try again", every request is
/// answered, and the worker answers normally afterwards.
#[tokio::test]
async fn a_flood_is_refused_beyond_the_bound_and_every_request_answered() {
    use chat_runtime::hosting::code;
    let server = run_server();
    let config = presence_worker::Config {
        ttl: STEADY_TTL,
        max_concurrent_requests: 1,
        ..test_config()
    };
    // The presence worker's own bound on a request body, below the hosting's.
    let largest = config.max_request_bytes;
    let _worker = worker_with(&server, config).await;
    let client = server.client().await;
    let general = room("general");
    let subject = chat_protocol::subjects::users(&general);
    let requests = 600;
    let got = test_support::flood(
        &client,
        &subject,
        test_support::padded("{}", largest),
        requests,
    )
    .await;
    assert_eq!(got.unanswered, 0, "{got:?}");
    assert_eq!(
        got.served + got.refused_with(code::UNAVAILABLE),
        requests,
        "{got:?}"
    );
    assert!(got.served >= 1, "{got:?}");
    assert!(
        got.refused_with(code::UNAVAILABLE) >= 1,
        "the excess is refused: {got:?}"
    );
    assert!(users(&client, &general).await.is_empty());
}
