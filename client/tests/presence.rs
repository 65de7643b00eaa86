//! What the client tells its user when the presence service goes away and comes back.

mod common;

use chat_client::{Event, State};
use common::*;

/// The presence worker dies while a client is in a room: the client says presence is
/// unavailable (once), keeps heartbeating, and when a worker is back it says so — or,
/// if its session expired meanwhile, that it was registered again.
#[tokio::test]
async fn heartbeats_report_an_outage_and_the_recovery() {
    let server = test_support::run_server();
    let worker = presence(&server).await;
    let general = room("general");
    let (alice, mut events) = joined(&server, "alice", &general, 0).await;

    drop(worker); // a crash: no presence worker answers any more
    let state_of = |e: &Event| match e {
        Event::Status { state, .. } => Some(*state),
        _ => None,
    };
    let down = wait_for(&mut events, state_of).await;
    assert_eq!(down, State::PresenceUnavailable);

    let _back = presence(&server).await;
    let recovered = wait_for(&mut events, state_of).await;
    assert!(
        matches!(recovered, State::PresenceAvailable | State::Rejoined),
        "{recovered:?}"
    );
    let users = alice.users(&general).await.unwrap();
    assert_eq!(users.users, vec![user("alice")]);
}

/// Everyone leaves at once, more than the presence worker takes at a time: the
/// leaves it refuses as busy are asked again, so every member is announced as having
/// left (`leave`), none as timed out a TTL later.
#[tokio::test]
async fn a_crowd_leaving_at_once_is_announced_as_leaving() {
    use chat_protocol::body::{Reason, SystemKind};

    let server = test_support::run_server();
    // One request at a time, four more waiting: a crowd of twenty is refused in part.
    let config = presence_worker::Config {
        ttl: std::time::Duration::from_secs(3),
        streams: test_support::room_settings(),
        max_concurrent_requests: 1,
        max_queued_requests: 4,
        ..Default::default()
    };
    let _worker = presence_worker::PresenceWorker::start(server.presence_client().await, config)
        .await
        .expect("presence worker starts");
    let general = room("general");
    let (_watcher, mut watched) = joined(&server, "watcher", &general, 0).await;
    let mut crowd = Vec::new();
    for i in 0..20 {
        crowd.push(joined(&server, &format!("u{i}"), &general, 0).await);
    }
    let leaves = crowd.iter().map(|(chat, _)| chat.leave(&general));
    assert!(futures::future::join_all(leaves)
        .await
        .into_iter()
        .all(|left| left));

    let mut reasons = std::collections::BTreeMap::new();
    while reasons.len() < crowd.len() {
        let (user, others, reason) = wait_for(&mut watched, |e| match e {
            Event::System {
                kind: SystemKind::Left,
                user,
                reason,
                detail,
                ..
            } => Some((user.clone(), detail.others.clone(), *reason)),
            _ => None,
        })
        .await;
        for name in std::iter::once(user).chain(others) {
            assert!(
                reasons.insert(name.clone(), reason).is_none(),
                "{name} left twice"
            );
        }
    }
    let timed_out: Vec<_> = reasons
        .iter()
        .filter(|(_, r)| **r != Reason::Leave)
        .collect();
    assert!(
        timed_out.is_empty(),
        "not announced as leaving: {timed_out:?}"
    );
}
