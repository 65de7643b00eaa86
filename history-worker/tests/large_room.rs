//! A room of 100,000 messages replayed in full through the binary, watching the
//! worker's memory. Slow (it fills the room first), so run by hand:
//! `cargo test --release -p history-worker --test large_room -- --ignored --nocapture`.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chat_protocol::body::HistoryRequest;
use common::*;

/// Resident memory of a process, in KiB (Linux).
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::test]
#[ignore = "slow: fills a room of 100,000 messages"]
async fn a_room_of_100k_messages_replays_in_full_with_bounded_memory() {
    const MESSAGES: usize = 100_000;
    let server = test_support::run_server();
    let client = server.client().await;
    let js = async_nats::jetstream::new(client.clone());
    let big = room("big");
    let (alice, bob) = (user("alice"), user("bob"));
    create_room(&js, &big).await;
    // Texts of ~1 KiB, so the room is ~130 MB: far more than the worker may hold.
    let filler = "y".repeat(1000);
    let items = (0..MESSAGES)
        .map(|i| {
            Item::Chat(
                if i % 2 == 0 { &alice } else { &bob },
                format!("{i} {filler}"),
            )
        })
        .collect();
    store(&js, &big, items).await;

    let mut child = Command::new(env!("CARGO_BIN_EXE_history-worker"))
        .args(["--nats-url", &server.url()])
        .env("NATS_PASSWORD_FILE", server.password_file("@history"))
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let started = Instant::now();
    let mut peak = 0;
    let mut next = Some(0);
    let mut count = 0;
    let mut last_seq = 0;
    while let Some(after) = next {
        let request = HistoryRequest {
            limit: Some(1000),
            after: Some(after),
            ..Default::default()
        };
        let reply = loop {
            match client
                .request(
                    chat_protocol::subjects::history(&big),
                    serde_json::to_vec(&request).unwrap().into(),
                )
                .await
            {
                Ok(reply) => break reply,
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        let page: chat_protocol::body::HistoryPage =
            chat_protocol::body::decode_reply(&reply.payload).unwrap();
        for entry in &page.messages {
            assert_eq!(entry.seq, last_seq + 1);
            last_seq = entry.seq;
        }
        count += page.messages.len();
        next = page.next;
        peak = peak.max(rss_kib(pid).unwrap_or(0));
    }
    println!(
        "replayed {count} messages in {:?}; worker peak RSS {} MiB",
        started.elapsed(),
        peak / 1024
    );
    assert_eq!(count, MESSAGES);
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = child.wait();
    // Pages are 256 KiB; the room is ~130 MB. A worker that loaded the room would be
    // far above this.
    assert!(peak < 64 * 1024, "worker RSS peaked at {peak} KiB");
}
