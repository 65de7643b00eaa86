//! A worker killed in the middle of announcing a transition leaves a pending event in
//! the internal bucket; the next worker publishes it with the same id, exactly once,
//! also after the room stream's duplicate window has passed.

mod common;

use std::time::Duration;

use chat_protocol::body::{Reason, SystemEvent, SystemKind};
use chat_protocol::streams::{presence_key, PRESENCE_BUCKET};
use chat_protocol::{subjects, SessionId};
use common::*;
use presence_worker::{presence_users_key, AnnouncedState, PRESENCE_USERS_BUCKET};
use test_support::run_server;

fn config() -> presence_worker::Config {
    let mut config = test_config();
    config.ttl = Duration::from_secs(30);
    config.streams.duplicate_window = Duration::from_secs(1);
    config
}

/// Joins bob, then leaves the bucket as a worker killed during bob's leave would:
/// session purged, `left` claimed in the outbox, maybe published, not cleared.
async fn crash_during_leave(server: &test_support::NatsServer, published: bool) -> SystemEvent {
    let client = server.client().await;
    let js = server.jetstream().await;
    let (general, bob) = (room("general"), user("bob"));
    let session = SessionId::random();
    let w1 = worker_with(server, config()).await;
    join(&client, &general, &bob, session).await;
    drop(w1);
    let sessions = js.get_key_value(PRESENCE_BUCKET).await.unwrap();
    sessions
        .purge(presence_key(&general, &bob, &session))
        .await
        .unwrap();
    let event = SystemEvent {
        v: 1,
        kind: SystemKind::Left,
        id: uuid::Uuid::new_v4().to_string(),
        room: general.clone(),
        user: bob.clone(),
        reason: Reason::Leave,
        users: 0,
        ts: Some(chrono::Utc::now() - chrono::TimeDelta::seconds(10)),
        detail: Default::default(),
    };
    let announced = js.get_key_value(PRESENCE_USERS_BUCKET).await.unwrap();
    let key = presence_users_key(&general, &bob);
    let revision = announced.entry(&key).await.unwrap().unwrap().revision;
    let claimed = AnnouncedState {
        online: false,
        pending: Some(event.clone()),
        listed_through: None,
        batch: None,
    };
    announced
        .update(&key, serde_json::to_vec(&claimed).unwrap().into(), revision)
        .await
        .unwrap();
    if published {
        js.send_publish(
            subjects::room_system(&general),
            async_nats::jetstream::message::PublishMessage::build()
                .payload(serde_json::to_vec(&event).unwrap().into())
                .message_id(&event.id),
        )
        .await
        .unwrap()
        .await
        .unwrap();
        // Let the stream's duplicate window pass: only the worker can avoid a repeat.
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    event
}

async fn check_recovery(published: bool) {
    let server = run_server();
    let js = server.jetstream().await;
    let event = crash_during_leave(&server, published).await;
    let _w2 = worker_with(&server, config()).await;
    let (general, bob) = (room("general"), user("bob"));
    wait_for_events(
        &js,
        &general,
        &bob,
        &[
            (SystemKind::Joined, Reason::Join),
            (SystemKind::Left, Reason::Leave),
        ],
    )
    .await;
    let announced = js.get_key_value(PRESENCE_USERS_BUCKET).await.unwrap();
    let key = presence_users_key(&general, &bob);
    eventually("the outbox to be cleared", || async {
        let state: AnnouncedState =
            serde_json::from_slice(&announced.get(&key).await.unwrap().unwrap()).unwrap();
        (!state.online && state.pending.is_none()).then_some(())
    })
    .await;
    settled(&js).await;
    let events = events(&js, &general).await;
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[1].id, event.id, "the pending event, with its own id");
}

#[tokio::test]
async fn a_pending_event_is_published_by_the_next_worker() {
    check_recovery(false).await;
}

#[tokio::test]
async fn a_pending_event_already_stored_is_not_repeated_after_the_duplicate_window() {
    check_recovery(true).await;
}
