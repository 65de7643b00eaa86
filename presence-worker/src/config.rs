//! The worker's settings: TTLs, how room streams and buckets are created, and the
//! limits that keep one instance well-behaved under load.

use std::time::Duration;

use chat_runtime::storage::RoomStreamSettings;

/// How a [`crate::PresenceWorker`] runs. Every field has a sensible default; tests
/// shorten the TTLs so that expiry takes seconds, not minutes.
#[derive(Debug, Clone)]
pub struct Config {
    /// How long a session stays online without a heartbeat (the contract's default is
    /// 30 s). Clients are told to send a heartbeat every third of it. Whole seconds,
    /// at least one: that is the resolution of JetStream's per-message TTL.
    pub ttl: Duration,
    /// How room streams are created on first join.
    pub streams: RoomStreamSettings,
    /// Replicas of the presence buckets (3 in a cluster).
    pub kv_replicas: usize,
    /// How long the markers left by an expired or departed session stay in the
    /// presence bucket. Markers are how expiry reaches the workers; the start-up sweep
    /// covers markers that aged out while no worker ran, so this only needs to
    /// outlast a short outage.
    pub marker_ttl: Duration,
    /// How long a worker may hold an expiry marker without acknowledging it before
    /// another worker gets it: bounds how late an expiry is announced when the worker
    /// holding it crashes.
    pub ack_wait: Duration,
    /// Requests handled at once by one instance; [`Config::max_queued_requests`] more
    /// wait for a slot, and beyond that a request is refused as busy (503). A join
    /// holds its slot while it waits for its room's next event, up to
    /// [`Config::event_gap`]: the slots and the queue must cover a crowd arriving at
    /// once, or it is served a few slots per gap and the rest refused as busy (64 slots
    /// and a 100 ms gap capped one worker at about 450 joins a second, on a machine
    /// that does 1,500). A join in progress holds about 50 KiB, which the allocator
    /// keeps afterwards: 64 MiB resident after a crowd of 1,000 (36 MiB with 512 slots).
    pub max_concurrent_requests: usize,
    /// Requests that may wait for a slot: a burst's overflow, each body held in memory
    /// (up to 32 KiB before it is refused as too large for presence), so a fixed
    /// number rather than the hosting's usual four per slot.
    pub max_queued_requests: usize,
    /// Consumer-based listings (the start-up sweep, and a joined/left decision while the
    /// in-memory view lags) run at once by one instance. Each uses a short-lived consumer, and the server caps a
    /// stream's consumers (1000 by default), so this stays well below that divided by
    /// the number of instances.
    pub max_concurrent_listings: usize,
    /// Largest request body accepted; a presence request is well under 200 bytes.
    pub max_request_bytes: usize,
    /// Shortest time between two joined/left events of one room (per instance): a
    /// join in a quiet room is announced at once, and the arrivals and departures
    /// within this time after a room's event share the next one. Members of a busy
    /// room then get at most one presence event per gap however many people come and
    /// go (each delivered to every member: the cost of a burst), and a join's reply
    /// waits up to this long.
    pub event_gap: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(30),
            streams: RoomStreamSettings::default(),
            kv_replicas: 1,
            marker_ttl: Duration::from_secs(15 * 60),
            ack_wait: Duration::from_secs(10),
            max_concurrent_requests: 1024,
            max_queued_requests: 256,
            max_concurrent_listings: 32,
            max_request_bytes: 4096,
            event_gap: Duration::from_millis(100),
        }
    }
}

impl Config {
    /// Seconds between heartbeats that join replies announce: a third of the TTL, so a
    /// session survives two lost heartbeats; at least one second.
    pub fn heartbeat_secs(&self) -> u64 {
        (self.ttl.as_secs() / 3).max(1)
    }

    /// Checks what JetStream cannot express or the worker cannot work with.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.ttl.as_secs() == 0 || self.ttl.subsec_nanos() != 0 {
            return Err(format!(
                "ttl must be a whole number of seconds, at least 1 (got {:?})",
                self.ttl
            ));
        }
        if self.marker_ttl.as_secs() == 0 {
            return Err("marker ttl must be at least 1 s".into());
        }
        if self.max_concurrent_requests == 0 || self.max_concurrent_listings == 0 {
            return Err(
                "max_concurrent_requests and max_concurrent_listings must be at least 1".into(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeat_is_a_third_of_the_ttl() {
        let mut config = Config::default();
        assert_eq!(config.heartbeat_secs(), 10);
        config.ttl = Duration::from_secs(2);
        assert_eq!(config.heartbeat_secs(), 1);
        assert!(config.validate().is_ok());
        config.ttl = Duration::from_millis(1500);
        assert!(config.validate().is_err());
        config.ttl = Duration::ZERO;
        assert!(config.validate().is_err());
    }
}
