//! Shared set-up of the history worker's tests: a real nats-server, a worker, rooms
//! filled by publishing straight into their streams, and page requests.

use std::time::Duration;

use crate::NatsServer;
use async_nats::jetstream::{self, stream::Stream};
use async_nats::Client;
use chat_protocol::body::{
    ChatMessage, HistoryEntry, HistoryPage, HistoryRequest, MessageKind, Reason, SystemEvent,
    SystemKind,
};
use chat_protocol::{subjects, RoomName, UserName};
use chat_runtime::storage::room_stream_config;
use history_worker::{Config, HistoryWorker};

/// Generous bound for one reply: waiting, not asserting a duration.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// A server, a client and one worker on its own connection.
pub struct Setup {
    pub server: NatsServer,
    pub client: Client,
    pub js: jetstream::Context,
    pub worker: HistoryWorker,
}

/// Starts a server and a worker with `config`.
pub async fn setup(config: Config) -> Setup {
    let server = crate::run_server();
    let client = server.client().await;
    let js = jetstream::new(client.clone());
    let worker = HistoryWorker::start(server.history_client().await, config)
        .await
        .expect("worker starts");
    Setup {
        server,
        client,
        js,
        worker,
    }
}

pub fn room(name: &str) -> RoomName {
    RoomName::new(name).unwrap()
}

pub fn user(name: &str) -> UserName {
    UserName::new(name).unwrap()
}

/// Creates the room's stream the way the presence worker does.
pub async fn create_room(js: &jetstream::Context, room: &RoomName) -> Stream {
    js.create_stream(room_stream_config(room, &crate::room_settings()))
        .await
        .expect("create room stream")
}

/// What to store in a room.
pub enum Item<'a> {
    /// A chat message from this user with this text.
    Chat(&'a UserName, String),
    /// A joined event for this user.
    Joined(&'a UserName),
    /// These bytes on this subject, as some other tool might write them.
    Raw(String, Vec<u8>),
}

/// Stores `items` in order, pipelining the publishes; returns their sequences.
pub async fn store(js: &jetstream::Context, room: &RoomName, items: Vec<Item<'_>>) -> Vec<u64> {
    let mut seqs = Vec::with_capacity(items.len());
    let mut pending = Vec::new();
    for item in items {
        let (subject, payload) = match item {
            Item::Chat(user, text) => {
                let message = ChatMessage::new(room, user, MessageKind::Chat, &text).unwrap();
                (
                    subjects::room_message(room, user),
                    serde_json::to_vec(&message).unwrap(),
                )
            }
            Item::Joined(user) => {
                let event = SystemEvent {
                    v: 1,
                    kind: SystemKind::Joined,
                    id: uuid::Uuid::new_v4().to_string(),
                    room: room.clone(),
                    user: user.clone(),
                    reason: Reason::Join,
                    users: 1,
                    ts: Some(chrono::Utc::now()),
                    detail: Default::default(),
                };
                (
                    subjects::room_system(room),
                    serde_json::to_vec(&event).unwrap(),
                )
            }
            Item::Raw(subject, payload) => (subject, payload),
        };
        pending.push(js.publish(subject, payload.into()).await.expect("publish"));
        if pending.len() == 500 {
            for ack in pending.drain(..) {
                seqs.push(ack.await.expect("stored").sequence);
            }
        }
    }
    for ack in pending {
        seqs.push(ack.await.expect("stored").sequence);
    }
    seqs
}

/// `n` chat messages alternating between `users`, texts `m<i>`.
pub fn chats<'a>(users: &[&'a UserName], n: usize) -> Vec<Item<'a>> {
    (0..n)
        .map(|i| Item::Chat(users[i % users.len()], format!("m{i}")))
        .collect()
}

/// The history subject for a room token that may break the naming rules.
pub fn history_subject(token: &str) -> String {
    subjects::endpoints::HISTORY.replace('*', token)
}

/// The raw reply to a history request on `subject`.
pub async fn request_raw(client: &Client, subject: String, body: &str) -> async_nats::Message {
    tokio::time::timeout(
        REPLY_TIMEOUT,
        client.request(subject, body.to_string().into()),
    )
    .await
    .expect("a reply in time")
    .expect("a reply")
}

/// The page for `request` on `room`; panics on an error reply.
pub async fn page(client: &Client, room: &RoomName, request: &HistoryRequest) -> HistoryPage {
    let reply = client
        .request(
            subjects::history(room),
            serde_json::to_vec(request).unwrap().into(),
        )
        .await
        .expect("a reply");
    chat_protocol::body::decode_reply(&reply.payload).expect("a page")
}

/// Every page in one direction, starting from `first` (its `before`/`after` is the
/// starting cursor, `None` for the newest page going backwards). Checks each page's
/// order and cursor (with `exact_cursors`, `next` is the last sequence returned going
/// forwards and the first going backwards; without, it may lie past skipped invalid
/// messages); returns the entries in ascending order and the pages' sizes.
pub async fn all_pages(
    client: &Client,
    room: &RoomName,
    first: HistoryRequest,
    exact_cursors: bool,
) -> (Vec<HistoryEntry>, Vec<usize>) {
    let forward = first.after.is_some();
    let mut request = first;
    let mut entries: Vec<HistoryEntry> = Vec::new();
    let mut sizes = Vec::new();
    for _ in 0..100_000 {
        let page = page(client, room, &request).await;
        assert_eq!(&page.room, room);
        assert!(
            page.messages.windows(2).all(|w| w[0].seq < w[1].seq),
            "page not in ascending order"
        );
        sizes.push(page.messages.len());
        let Some(next) = page.next else {
            if forward {
                entries.extend(page.messages);
            } else {
                entries.splice(0..0, page.messages);
            }
            return (entries, sizes);
        };
        if forward {
            let last = page.messages.last().map(|m| m.seq);
            if exact_cursors {
                assert_eq!(last, Some(next), "forward cursor");
            }
            assert!(last.is_none_or(|l| l <= next), "forward cursor");
            assert!(entries.last().is_none_or(|l| l.seq < next));
            entries.extend(page.messages);
            request.after = Some(next);
        } else {
            let first = page.messages.first().map(|m| m.seq);
            if exact_cursors {
                assert_eq!(first, Some(next), "backward cursor");
            }
            assert!(first.is_none_or(|f| f >= next), "backward cursor");
            assert!(entries.first().is_none_or(|f| next < f.seq));
            entries.splice(0..0, page.messages);
            request.before = Some(next);
        }
    }
    panic!("paging did not end");
}

pub fn seqs(entries: &[HistoryEntry]) -> Vec<u64> {
    entries.iter().map(|e| e.seq).collect()
}
