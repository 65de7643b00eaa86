//! The rate limit against a raw flooder (async-nats at full speed, as a registered
//! user): muted, kicked, its next login without the right to speak, its excess
//! removed and tombstoned; a user at the allowed rate is never muted; the mute ends.

mod common;

use chat_protocol::body::{Rate, Reason, SystemKind};
use chrono::Utc;
use common::*;

#[tokio::test]
async fn a_raw_flooder_is_muted_kicked_and_its_excess_removed() {
    let server = stack(1, contract(600));
    let stream = create_room(&server, "general").await;
    let eve = server.user_client("eve").await;
    let t0 = std::time::Instant::now();
    flood(&eve, "general", "eve", 5000).await;
    eprintln!("flood sent after {:?}", t0.elapsed());

    let muted = standing_until(&server, "eve", |s| s.muted_until.is_some()).await;
    eprintln!("muted after {:?}", t0.elapsed());
    assert!(muted.muted_at(Utc::now()));
    assert!(
        muted.reason.as_deref().unwrap().contains("flooding"),
        "{muted:?}"
    );
    let all = events_until(&server, "general", |e| {
        e.iter().any(|e| e.kind == SystemKind::Muted)
    })
    .await;
    eprintln!("event after {:?}", t0.elapsed());

    // One muted event, by the rate limit; the tombstones name what was removed.
    let mutes: Vec<_> = all.iter().filter(|e| e.kind == SystemKind::Muted).collect();
    assert_eq!(mutes.len(), 1, "{all:?}");
    assert_eq!(
        (mutes[0].reason, mutes[0].detail.by.as_ref()),
        (Reason::Flood, None)
    );
    assert_eq!(mutes[0].detail.until, muted.muted_until);
    let tombstoned: Vec<u64> = all
        .iter()
        .filter(|e| e.kind == SystemKind::Deleted)
        .inspect(|e| assert_eq!((e.reason, e.user.as_str()), (Reason::Flood, "eve")))
        .flat_map(|e| e.detail.seqs.clone())
        .collect();
    assert!(!tombstoned.is_empty(), "nothing was removed");

    // What is left of eve is within the allowance, replayed over its stream times
    // from a full bucket; every tombstoned message is gone, and together they are
    // everything eve got stored.
    let left = messages_of(&server, "general", "eve").await;
    let times: Vec<(usize, f64, u64)> = left.iter().map(|(seq, t)| (0, *t, *seq)).collect();
    let since = left.first().map_or(0.0, |(_, t)| t - 60.0);
    assert!(moderation_worker::rate::excess(&Rate::default(), since, &times).is_empty());
    for seq in &tombstoned {
        assert!(
            stream.get_raw_message(*seq).await.is_err(),
            "message {seq} is still there"
        );
    }
    let info = server
        .jetstream()
        .await
        .get_stream("CHAT_general")
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .clone();
    assert_eq!(
        left.len() + tombstoned.len() + all.len(),
        info.state.last_sequence as usize,
        "every stored message of eve is either left or tombstoned"
    );

    // Kicked: eve's connection was closed and logged in again, without the right to
    // speak; a fresh login is muted too.
    connects_at_least(&eve, 2).await;
    assert!(send(&eve, "general", "eve", "still here?").await.is_err());
    let again = login(&server, "eve")
        .await
        .expect("a muted user may log in");
    assert!(send(&again, "general", "eve", "let me talk").await.is_err());
    // Reading and asking still work.
    assert!(again
        .request(chat_protocol::subjects::standing(&user("eve")), "".into())
        .await
        .is_ok());
}

#[tokio::test]
async fn a_user_at_the_allowed_rate_is_never_muted() {
    let server = stack(1, contract(600));
    create_room(&server, "general").await;
    let bob = server.user_client("bob").await;
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(200));
    for i in 0..30 {
        tick.tick().await;
        send(&bob, "general", "bob", &format!("line {i}"))
            .await
            .unwrap();
    }
    assert_eq!(standing(&server, "bob").await.muted_until, None);
    assert_eq!(messages_of(&server, "general", "bob").await.len(), 30);
    assert!(events(&server, "general").await.is_empty());
}

#[tokio::test]
async fn the_mute_ends_and_the_user_talks_again() {
    let server = stack(1, contract(5));
    create_room(&server, "general").await;
    let eve = server.user_client("eve").await;
    flood(&eve, "general", "eve", 500).await;
    let muted = standing_until(&server, "eve", |s| s.muted_until.is_some()).await;
    let until = muted.muted_until.expect("muted");
    events_until(&server, "general", |e| {
        e.iter().any(|e| e.kind == SystemKind::Muted)
    })
    .await;
    connects_at_least(&eve, 2).await;
    // While the mute lasts the server refuses eve's messages; on a slow machine the
    // short mute may already be over by now, and then a send may go through.
    let attempt = send(&eve, "general", "eve", "muted?").await;
    assert!(
        attempt.is_err() || Utc::now() >= until,
        "a muted user published before the mute ended ({until})"
    );

    standing_until(&server, "eve", |s| s.muted_until.is_none()).await;
    // The muted login expires with the mute: the same client logs in again by itself
    // with its full rights.
    let mut sent = Err(String::new());
    for _ in 0..20 {
        sent = send(&eve, "general", "eve", "sorry").await;
        if sent.is_ok() {
            break;
        }
    }
    sent.expect("eve can talk again after the mute");
}
