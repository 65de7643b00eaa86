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
