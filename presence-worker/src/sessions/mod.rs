//! The `chat_presence` bucket: one key per online session, `<room>.<user>.<session>`,
//! written with a per-message TTL so that a session whose client died disappears by
//! itself, even while no worker runs.
//!
//! Joins and heartbeats publish the key with `Nats-TTL`; a leave purges it (with a
//! TTL, so tombstones do not pile up). Who is online is the set of keys whose latest
//! message is a value, not a marker.
//!
//! [`Sessions`] is the handle; each concern has its file, and every read says in its
//! name how fresh its answer is:
//!
//! - `write.rs`: join, heartbeat, leave (each returns the write's stream sequence).
//! - `view.rs`: the in-memory view, fed by a KV watch.
//! - `listed.rs`: `listed_…` reads, from the server through a short-lived consumer
//!   or a direct get: they know every write acknowledged before the call.
//! - `consistency.rs`: the rules choosing between the two: `confirmed_…` reads know
//!   at least a given write (from the view once it has applied that far, else
//!   listed), and `cached_…` reads may lag by moments (for showing, never deciding).

mod consistency;
mod listed;
mod view;
mod write;

use std::time::Duration;

use async_nats::jetstream::{self, kv};

use crate::listing::Lister;
use chat_runtime::replicas::{create_with_retries, CREATE_PATIENCE};
use view::OnlineView;

pub(crate) use write::{Heartbeat, SessionError};

/// Handle on the sessions bucket.
#[derive(Clone)]
pub(crate) struct Sessions {
    js: jetstream::Context,
    store: kv::Store,
    lister: Lister,
    view: OnlineView,
    ttl: Duration,
    marker_ttl: Duration,
}

impl Sessions {
    /// Creates (or updates) the bucket.
    pub async fn open(
        js: jetstream::Context,
        lister: Lister,
        replicas: usize,
        ttl: Duration,
        marker_ttl: Duration,
    ) -> Result<Self, jetstream::context::CreateKeyValueError> {
        let config = chat_runtime::storage::presence_bucket_config(replicas, marker_ttl);
        let store = create_with_retries("presence bucket", CREATE_PATIENCE, || {
            js.create_or_update_key_value(config.clone())
        })
        .await?;
        Ok(Self {
            js,
            store,
            lister,
            view: OnlineView::default(),
            ttl,
            marker_ttl,
        })
    }

    /// The bucket's stream, where the expiry consumer reads markers.
    pub fn stream(&self) -> &jetstream::stream::Stream {
        &self.store.stream
    }

    /// The lister shared by this worker's listings.
    pub fn lister(&self) -> &Lister {
        &self.lister
    }

    /// Subject prefix of the bucket's keys (`$KV.<bucket>.`).
    pub fn prefix(&self) -> &str {
        &self.store.prefix
    }

    /// Keeps the in-memory view of who is online up to date; runs until aborted.
    pub async fn follow(&self) {
        self.view.clone().follow(self.store.clone()).await
    }
}
