//! Any number of instances, any of them killed: a flood is muted exactly once with two
//! instances counting, also when one is killed in the middle of it; work a dead
//! instance left pending in the bucket is finished by another, with the same ids.

mod common;

use chat_protocol::body::{Reason, SystemKind};
use chat_protocol::streams::{standing_key, MODERATION_BUCKET};
use chrono::Utc;
use common::*;
use moderation_worker::record::{Pending, StandingRecord};

#[tokio::test]
async fn a_flood_is_muted_once_when_an_instance_dies_in_the_middle() {
    let server = stack(1, contract(600));
    create_room(&server, "general").await;
    let second = server.start_moderation_worker();
    let eve = server.user_client("eve").await;
    // The first part of the flood reaches both instances; one of them dies while the
    // rest comes in.
    let flooding = {
        let eve = eve.clone();
        tokio::spawn(async move { flood(&eve, "general", "eve", 3000).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    drop(second);
    flooding.await.unwrap();

    standing_until(&server, "eve", |s| s.muted_until.is_some()).await;
    let all = events_until(&server, "general", |e| {
        e.iter().any(|e| e.kind == SystemKind::Muted)
    })
    .await;
    // Wait for a second chance at a duplicate: any pending work is finished by now.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let all_later = events(&server, "general").await;
    let mutes = all_later
        .iter()
        .filter(|e| e.kind == SystemKind::Muted)
        .count();
    assert_eq!(mutes, 1, "{all:?}");
    connects_at_least(&eve, 2).await;
    assert!(send(&eve, "general", "eve", "again").await.is_err());
}

#[tokio::test]
async fn work_left_pending_by_a_dead_instance_is_finished_once() {
    let server = stack(2, contract(600));
    create_room(&server, "general").await;
    let bob = server.user_client("bob").await;
    let kv = server
        .jetstream()
        .await
        .get_key_value(MODERATION_BUCKET)
        .await
        .unwrap();

    // What an instance killed right after recording a moderator's mute leaves: the
    // mute and its pending kick and event, written a while ago.
    let now = Utc::now();
    // Records keep milliseconds.
    let until = chrono::DateTime::from_timestamp_millis((now.timestamp() + 600) * 1000).unwrap();
    let event = moderation_worker::event::by_moderator(
        "crashed.muted".into(),
        SystemKind::Muted,
        &room("general"),
        &user("bob"),
        &user("alice"),
        Some(until),
        None,
    );
    let record = StandingRecord {
        muted_until: Some(until),
        by: Some(user("alice")),
        pending: Some(Pending {
            id: "crashed".into(),
            kick: true,
            purge: None,
            events: vec![event],
            since: now - chrono::Duration::seconds(10),
        }),
        ..StandingRecord::default()
    };
    kv.put(
        standing_key(&user("bob")),
        serde_json::to_vec(&record).unwrap().into(),
    )
    .await
    .unwrap();

    let all = events_until(&server, "general", |e| {
        e.iter().any(|e| e.kind == SystemKind::Muted)
    })
    .await;
    connects_at_least(&bob, 2).await;
    // Pending cleared, and still one event after both instances had their chance.
    for _ in 0..100 {
        let value = kv.get(standing_key(&user("bob"))).await.unwrap().unwrap();
        let now: StandingRecord = serde_json::from_slice(&value).unwrap();
        if now.pending.is_none() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let value = kv.get(standing_key(&user("bob"))).await.unwrap().unwrap();
    let left: StandingRecord = serde_json::from_slice(&value).unwrap();
    assert_eq!(left.pending, None);
    assert_eq!(left.muted_until, Some(until));
    let later = events(&server, "general").await;
    let mutes: Vec<_> = later
        .iter()
        .filter(|e| e.kind == SystemKind::Muted)
        .collect();
    assert_eq!(mutes.len(), 1, "{all:?}");
    assert_eq!(
        (mutes[0].id.as_str(), mutes[0].reason),
        ("crashed.muted", Reason::Moderator)
    );
    assert!(send(&bob, "general", "bob", "muted?").await.is_err());
}
