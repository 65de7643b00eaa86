//! Registration is throttled per client host, across every auth worker instance: the
//! count lives in a KV bucket of the AUTH account, so two instances serving the same
//! host's registrations let exactly the burst through and refuse the rest with 429,
//! saying when to try again.

use std::time::Duration;

use chat_protocol::auth;
use test_support::{run_server_with, StackOptions};

#[tokio::test]
async fn registrations_beyond_a_hosts_burst_are_refused_across_instances() {
    let options = StackOptions {
        auth_workers: 2,
        auth: auth_worker::Config {
            register_burst: 3,
            register_interval: Duration::from_secs(3600),
            ..StackOptions::default().auth
        },
        ..StackOptions::default()
    };
    let server = run_server_with(options);
    let guest = async_nats::connect(server.url()).await.unwrap();

    // A weak password is refused for what it is, and spends nothing.
    let weak = serde_json::json!({ "user": "weakling", "password": "short" });
    for _ in 0..5 {
        let reply = guest
            .request(auth::REGISTER, weak.to_string().into())
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&reply.payload).to_string();
        assert!(text.contains("password"), "{text}");
        assert!(!text.contains("too many"), "{text}");
    }

    // Twelve registrations at once, served by both instances: exactly three pass.
    let replies = futures::future::join_all((0..12).map(|i| {
        let body = serde_json::json!({ "user": format!("user{i}"), "password": "a-good-password" });
        guest.request(auth::REGISTER, body.to_string().into())
    }))
    .await;
    let mut passed = 0;
    let mut throttled = Vec::new();
    for reply in replies {
        let reply = reply.expect("answered");
        let text = String::from_utf8_lossy(&reply.payload).to_string();
        if text.contains("\"ok\":true") {
            passed += 1;
        } else {
            let code = reply
                .headers
                .as_ref()
                .and_then(|h| h.get(async_nats::service::NATS_SERVICE_ERROR_CODE))
                .map(|v| v.as_str().to_string());
            assert_eq!(code.as_deref(), Some("429"), "{text}");
            throttled.push(text);
        }
    }
    assert_eq!(passed, 3, "the burst, counted once across instances");
    assert_eq!(throttled.len(), 9);
    let text = &throttled[0];
    assert!(
        text.contains("too many registrations from your address"),
        "{text}"
    );
    assert!(text.contains("try again in"), "{text}");
    assert!(
        text.contains("3 accounts at once, then one every 3600 s"),
        "{text}"
    );

    // Both instances took part, so the count was shared, not per instance.
    let stats = test_support::service_stats(&server.client_as("@auth").await, "chat-auth", 2).await;
    let registered: Vec<u64> = stats
        .iter()
        .map(|s| {
            s["endpoints"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["name"] == "register")
                .map(|e| e["num_requests"].as_u64().unwrap())
                .unwrap()
        })
        .collect();
    assert!(registered.iter().all(|n| *n > 0), "{registered:?}");
}
