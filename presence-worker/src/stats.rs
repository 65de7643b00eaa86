//! Counters shown in the NATS service's `$SRV.STATS` (`data` of each endpoint), so an
//! operator sees failures and presence activity without reading logs.
//!
//! Failure replies carry the contract's JSON body, so they cannot go through the
//! service API's error path (which sends an empty body); they are counted here instead.

use std::sync::atomic::{AtomicU64, Ordering};

use chat_protocol::body::SystemKind;
use serde_json::{json, Value};

/// Which endpoint a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EndpointKind {
    /// `chat.presence.<room>.<user>`
    Presence,
    /// `chat.users.<room>`
    Users,
    /// `chat.rooms`
    Rooms,
}

impl EndpointKind {
    /// The endpoint's name in the service (what `nats micro info` shows).
    pub fn name(self) -> &'static str {
        match self {
            EndpointKind::Presence => "presence",
            EndpointKind::Users => "users",
            EndpointKind::Rooms => "rooms",
        }
    }
}

/// Activity counters of one worker instance.
#[derive(Debug, Default)]
pub struct Stats {
    presence_failures: AtomicU64,
    users_failures: AtomicU64,
    rooms_failures: AtomicU64,
    joins: AtomicU64,
    heartbeats: AtomicU64,
    rejoins: AtomicU64,
    leaves: AtomicU64,
    expiries: AtomicU64,
    joined_events: AtomicU64,
    left_events: AtomicU64,
    view_decisions: AtomicU64,
    server_decisions: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

fn get(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

impl Stats {
    pub(crate) fn failure(&self, endpoint: EndpointKind) {
        bump(match endpoint {
            EndpointKind::Presence => &self.presence_failures,
            EndpointKind::Users => &self.users_failures,
            EndpointKind::Rooms => &self.rooms_failures,
        });
    }
    pub(crate) fn join(&self) {
        bump(&self.joins);
    }
    pub(crate) fn heartbeat(&self, rejoined: bool) {
        bump(&self.heartbeats);
        if rejoined {
            bump(&self.rejoins);
        }
    }
    pub(crate) fn leave(&self) {
        bump(&self.leaves);
    }
    pub(crate) fn expiry(&self) {
        bump(&self.expiries);
    }
    pub(crate) fn event(&self, kind: SystemKind) {
        bump(match kind {
            SystemKind::Joined => &self.joined_events,
            SystemKind::Left => &self.left_events,
            // Moderation events are the moderation worker's.
            _ => return,
        });
    }
    /// A joined/left decision read the user's sessions from the in-memory view, or
    /// (when the view had not caught up) from the server through a consumer.
    pub(crate) fn listing(&self, from_view: bool) {
        bump(if from_view {
            &self.view_decisions
        } else {
            &self.server_decisions
        });
    }

    /// The `data` object of an endpoint's stats, by endpoint name.
    pub fn data(&self, endpoint: &str) -> Value {
        match endpoint {
            "presence" => json!({
                "failures": get(&self.presence_failures),
                "joins": get(&self.joins),
                "heartbeats": get(&self.heartbeats),
                "rejoins": get(&self.rejoins),
                "leaves": get(&self.leaves),
                "expiries": get(&self.expiries),
                "joined_events": get(&self.joined_events),
                "left_events": get(&self.left_events),
                "view_decisions": get(&self.view_decisions),
                "server_decisions": get(&self.server_decisions),
            }),
            "users" => json!({ "failures": get(&self.users_failures) }),
            "rooms" => json!({ "failures": get(&self.rooms_failures) }),
            _ => Value::Null,
        }
    }
}
