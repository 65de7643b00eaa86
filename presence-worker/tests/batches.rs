//! Bursts: many transitions of a room at once are announced by few events naming
//! several users (`others`), each transition still exactly once, also when a worker
//! dies in the middle of a batch.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use chat_protocol::body::{EventDetail, PresenceAction, Reason, SystemEvent, SystemKind};
use chat_protocol::streams::{presence_key, PRESENCE_BUCKET};
use chat_protocol::{subjects, RoomName, SessionId, UserName};
use common::*;
use futures::StreamExt;
use presence_worker::{presence_users_key, AnnouncedState, PRESENCE_USERS_BUCKET};
use test_support::run_server;

const USERS: usize = 200;

/// Every user's transitions in `room`, in stream order, each user named once per event.
async fn transitions(
    js: &async_nats::jetstream::Context,
    room: &RoomName,
) -> BTreeMap<UserName, Vec<SystemKind>> {
    let mut by_user: BTreeMap<UserName, Vec<SystemKind>> = BTreeMap::new();
    for event in events(js, room).await {
        by_user.entry(event.user).or_default().push(event.kind);
    }
    by_user
}

#[tokio::test]
async fn a_burst_of_joins_names_every_joiner_exactly_once() {
    let server = run_server();
    let _w1 = steady_worker(&server).await;
    let _w2 = steady_worker(&server).await;
    let client = server.client().await;
    let js = server.jetstream().await;
    let general = room("general");
    let sessions: Vec<(UserName, SessionId)> = (0..USERS)
        .map(|i| (user(&format!("user{i}")), SessionId::random()))
        .collect();

    let burst = |action: PresenceAction| {
        let (client, general) = (client.clone(), general.clone());
        futures::stream::iter(sessions.clone())
            .map(move |(u, s)| {
                let (client, general) = (client.clone(), general.clone());
                async move { presence(&client, &general, &u, action, s).await }
            })
            .buffer_unordered(100)
            .collect::<Vec<_>>()
    };
    for reply in burst(PresenceAction::Join).await {
        assert_eq!(reply["ok"], true, "{reply}");
    }
    // Every join's reply waits for its event: all are stored now.
    let joined = transitions(&js, &general).await;
    assert_eq!(joined.len(), USERS, "every joiner is named");
    for (u, kinds) in &joined {
        assert_eq!(kinds, &[SystemKind::Joined], "{u}");
    }
    let stored = stored_events(&js, &general).await;
    assert!(
        stored.iter().any(|e| !e.detail.others.is_empty()),
        "{USERS} joins at once make at least one event naming several users ({} events)",
        stored.len()
    );
    for event in &stored {
        assert!(
            event.detail.others.len() < 300,
            "an event names at most 300 users"
        );
        assert!(event.users as usize <= USERS);
    }

    for reply in burst(PresenceAction::Leave).await {
        assert_eq!(reply["ok"], true, "{reply}");
    }
    settled(&js).await;
    for (u, kinds) in transitions(&js, &general).await {
        assert_eq!(kinds, [SystemKind::Joined, SystemKind::Left], "{u}");
    }
    for event in events(&js, &general).await {
        if event.kind == SystemKind::Left {
            assert_eq!(event.reason, Reason::Leave, "{event:?}");
        }
    }
    assert!(users(&client, &general).await.is_empty());

    // No claim is left behind in the outbox.
    let announced = js.get_key_value(PRESENCE_USERS_BUCKET).await.unwrap();
    for (u, _) in &sessions {
        let value = announced
            .get(presence_users_key(&general, u))
            .await
            .unwrap()
            .unwrap();
        let state: AnnouncedState = serde_json::from_slice(&value).unwrap();
        assert!(state.pending.is_none() && state.batch.is_none() && !state.online);
    }
}

fn config() -> presence_worker::Config {
    let mut config = test_config();
    config.ttl = Duration::from_secs(30);
    config.streams.duplicate_window = Duration::from_secs(1);
    config
}

/// What a worker killed in the middle of a batch of leaves left behind.
enum Crash {
    /// The batch's record was written (naming both users), nothing published.
    Recorded,
    /// The claims were written, the record not.
    Claimed,
    /// Record written, event published, then the record expired.
    PublishedRecordGone,
}

/// Joins bob and carol, then leaves the buckets as a worker killed during the batch
/// of their leaves would; starts a worker and returns the batch id.
async fn crash_in_batch(server: &test_support::NatsServer, crash: Crash) -> String {
    let client = server.client().await;
    let js = server.jetstream().await;
    let general = room("general");
    let (bob, carol) = (user("bob"), user("carol"));
    let w1 = worker_with(server, config()).await;
    let mut sessions = Vec::new();
    for u in [&bob, &carol] {
        let session = SessionId::random();
        join(&client, &general, u, session).await;
        sessions.push((u.clone(), session));
    }
    drop(w1);
    let kv = js.get_key_value(PRESENCE_BUCKET).await.unwrap();
    let announced = js.get_key_value(PRESENCE_USERS_BUCKET).await.unwrap();
    let batch = uuid::Uuid::new_v4().simple().to_string();
    let left = |u: &UserName, id: String, others: Vec<UserName>| SystemEvent {
        v: 1,
        kind: SystemKind::Left,
        id,
        room: general.clone(),
        user: u.clone(),
        reason: Reason::Leave,
        users: 0,
        ts: Some(chrono::Utc::now()),
        detail: EventDetail {
            others,
            ..Default::default()
        },
    };
    for (u, session) in &sessions {
        kv.purge(presence_key(&general, u, session)).await.unwrap();
        let key = presence_users_key(&general, u);
        let revision = announced.entry(&key).await.unwrap().unwrap().revision;
        let claimed = AnnouncedState {
            online: false,
            pending: Some(left(u, format!("{batch}.{u}"), Vec::new())),
            listed_through: None,
            batch: Some(batch.clone()),
        };
        announced
            .update(&key, serde_json::to_vec(&claimed).unwrap().into(), revision)
            .await
            .unwrap();
    }
    let together = left(&bob, format!("{batch}-0"), vec![carol.clone()]);
    let record = serde_json::json!({ "events": [together] });
    let record_key = format!("_batch.{batch}");
    match crash {
        Crash::Claimed => {}
        Crash::Recorded => {
            announced
                .create(&record_key, serde_json::to_vec(&record).unwrap().into())
                .await
                .unwrap();
        }
        Crash::PublishedRecordGone => {
            js.send_publish(
                subjects::room_system(&general),
                async_nats::jetstream::message::PublishMessage::build()
                    .payload(serde_json::to_vec(&together).unwrap().into())
                    .message_id(&together.id),
            )
            .await
            .unwrap()
            .await
            .unwrap();
            // Past the duplicate window: only the worker's search can avoid a repeat.
            tokio::time::sleep(Duration::from_millis(1500)).await;
        }
    }
    batch
}

/// After the crash, a new worker settles both claims: bob and carol each get exactly
/// one `joined` and one `left`; returns the ids of the stored `left` events.
async fn check_settled(crash: Crash) -> (String, Vec<String>) {
    let server = run_server();
    let js = server.jetstream().await;
    let batch = crash_in_batch(&server, crash).await;
    let _w2 = worker_with(&server, config()).await;
    let general = room("general");
    for u in [user("bob"), user("carol")] {
        wait_for_events(
            &js,
            &general,
            &u,
            &[
                (SystemKind::Joined, Reason::Join),
                (SystemKind::Left, Reason::Leave),
            ],
        )
        .await;
    }
    let announced = js.get_key_value(PRESENCE_USERS_BUCKET).await.unwrap();
    for u in [user("bob"), user("carol")] {
        let key = presence_users_key(&general, &u);
        eventually("the claims to be cleared", || async {
            let state: AnnouncedState =
                serde_json::from_slice(&announced.get(&key).await.unwrap().unwrap()).unwrap();
            (state.pending.is_none() && state.batch.is_none()).then_some(())
        })
        .await;
    }
    settled(&js).await;
    let events = events(&js, &general).await;
    assert_eq!(events.len(), 4, "{events:?}");
    let lefts = events
        .iter()
        .filter(|e| e.kind == SystemKind::Left)
        .map(|e| e.id.clone())
        .collect();
    (batch, lefts)
}

#[tokio::test]
async fn a_recorded_batch_is_published_by_the_next_worker() {
    let (batch, lefts) = check_settled(Crash::Recorded).await;
    assert_eq!(lefts, [format!("{batch}-0"), format!("{batch}-0")]);
}

#[tokio::test]
async fn a_batch_without_record_is_given_up_and_each_claim_published_alone() {
    let (batch, mut lefts) = check_settled(Crash::Claimed).await;
    lefts.sort();
    assert_eq!(lefts, [format!("{batch}.bob"), format!("{batch}.carol")]);
}

#[tokio::test]
async fn a_published_batch_whose_record_expired_is_not_repeated() {
    let (batch, lefts) = check_settled(Crash::PublishedRecordGone).await;
    assert_eq!(lefts, [format!("{batch}-0"), format!("{batch}-0")]);
}
