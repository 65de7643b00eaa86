//! Who is online, in memory: a view of the `chat_presence` bucket kept up to date by a
//! KV watch, so that `/users` and the counts in replies and events cost no round trip.
//!
//! Reading the room's keys from the server for every `/users`, join and heartbeat made
//! each of them O(room size) work for the server (see BENCHMARKS.md). The view is derived state, rebuilt from the bucket whenever a
//! worker starts or its watch breaks. It shows (lists and counts), and it decides
//! joined/left transitions once it has applied the bucket as far as the decision
//! requires (see `announce`): it applies the bucket's stream in order, so once it has
//! seen sequence `n` it knows every write up to `n`. Until the view has caught up,
//! readers fall back to asking the server.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_nats::jetstream::kv;
use chat_protocol::streams::parse_presence_key;
use chat_protocol::{RoomName, SessionId, UserName};
use futures::StreamExt;
use tokio::sync::watch;

use crate::listing::is_removal;

/// Sessions online per room and user.
type SessionsByRoom = HashMap<RoomName, BTreeMap<UserName, BTreeSet<SessionId>>>;

/// The shared view; cheap to clone.
#[derive(Clone)]
pub(crate) struct OnlineView {
    inner: Arc<RwLock<View>>,
    /// The bucket stream's sequence applied last (0 while catching up).
    applied: Arc<watch::Sender<u64>>,
}

impl Default for OnlineView {
    fn default() -> Self {
        Self {
            inner: Arc::default(),
            applied: Arc::new(watch::channel(0).0),
        }
    }
}

#[derive(Default)]
struct View {
    /// Whether the watch has delivered the bucket's state as of its start.
    current: bool,
    rooms: SessionsByRoom,
}

impl OnlineView {
    /// Distinct users online in `room`, sorted; none while the view is catching up.
    pub(crate) fn cached_users(&self, room: &RoomName) -> Option<Vec<UserName>> {
        let view = self.inner.read().unwrap_or_else(|e| e.into_inner());
        view.current.then(|| {
            view.rooms
                .get(room)
                .map(|users| users.keys().cloned().collect())
                .unwrap_or_default()
        })
    }

    /// Like [`OnlineView::users`], but only once the view has applied the bucket up to
    /// `sequence` (a write acknowledged before the caller asked), waiting up to `patience`
    /// for it: read-your-writes for `/users`.
    pub(crate) async fn users_through(
        &self,
        room: &RoomName,
        sequence: u64,
        patience: Duration,
    ) -> Option<Vec<UserName>> {
        let mut applied = self.applied.subscribe();
        let caught_up = tokio::time::timeout(patience, applied.wait_for(|&a| a >= sequence))
            .await
            .is_ok_and(|result| result.is_ok());
        if caught_up {
            self.cached_users(room)
        } else {
            None
        }
    }

    /// Whether `user` has a session in `room`, once the view has applied the bucket at
    /// least up to `sequence`, and how far it had applied it when it looked; none if it
    /// is rebuilding or does not get that far within `patience`. This is what a
    /// joined/left decision reads: the view applies the bucket's stream in order, so
    /// past `sequence` it knows every write up to it, without a round trip.
    pub(crate) async fn user_online_through(
        &self,
        room: &RoomName,
        user: &UserName,
        sequence: u64,
        patience: Duration,
    ) -> Option<(bool, u64)> {
        if !self.inner.read().unwrap_or_else(|e| e.into_inner()).current {
            return None;
        }
        let mut applied = self.applied.subscribe();
        tokio::time::timeout(patience, applied.wait_for(|&a| a >= sequence))
            .await
            .ok()?
            .ok()?;
        // `applied` is bumped under the write lock, with the entry it names: read under
        // the read lock, it says exactly how far the rooms below are.
        let view = self.inner.read().unwrap_or_else(|e| e.into_inner());
        let through = *self.applied.borrow();
        (view.current && through >= sequence).then(|| {
            let online = view
                .rooms
                .get(room)
                .and_then(|users| users.get(user))
                .is_some_and(|sessions| !sessions.is_empty());
            (online, through)
        })
    }

    /// Follows the bucket forever: the latest entry of every key first, then every
    /// change. A broken watch empties the view (readers fall back) and starts again.
    pub(crate) async fn follow(self, store: kv::Store) {
        loop {
            if let Err(err) = self.follow_once(&store).await {
                tracing::warn!(%err, "presence view: watch failed; rebuilding");
            }
            {
                let mut view = self.inner.write().unwrap_or_else(|e| e.into_inner());
                *view = View::default();
                self.applied.send_replace(0);
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    async fn follow_once(&self, store: &kv::Store) -> Result<(), async_nats::Error> {
        let empty = store.stream.get_info().await?.state.messages == 0;
        let mut watch = store.watch_with_history(">").await?;
        if empty {
            self.inner
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .current = true;
        }
        while let Some(entry) = watch.next().await {
            let entry = entry?;
            let mut view = self.inner.write().unwrap_or_else(|e| e.into_inner());
            match parse_presence_key(&entry.key) {
                Ok((room, user, session)) if is_removal(entry.operation) => {
                    view.remove(room, user, &session)
                }
                Ok((room, user, session)) => {
                    let users = view.rooms.entry(room).or_default();
                    users.entry(user).or_default().insert(session);
                }
                Err(err) => tracing::debug!(%err, "presence view: foreign key skipped"),
            }
            view.current |= entry.seen_current || entry.delta == 0;
            if view.current {
                self.applied.send_replace(entry.revision);
            }
        }
        Err("the watch ended".into())
    }
}

impl View {
    fn remove(&mut self, room: RoomName, user: UserName, session: &SessionId) {
        let Some(users) = self.rooms.get_mut(&room) else {
            return;
        };
        if let Some(sessions) = users.get_mut(&user) {
            sessions.remove(session);
            if sessions.is_empty() {
                users.remove(&user);
            }
        }
        if users.is_empty() {
            self.rooms.remove(&room);
        }
    }
}
