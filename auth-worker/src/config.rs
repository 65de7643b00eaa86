//! The auth worker's settings.

use std::time::Duration;

/// How long logins last and how much work is done at once.
#[derive(Debug, Clone)]
pub struct Config {
    /// Lifetime of a chat user's JWT: the server disconnects the connection then and
    /// the client logs in again (unnoticed), so a password change or a ban takes effect
    /// by then at the latest. `AUTH_TOKEN_TTL`, default 1 hour.
    pub token_ttl: Duration,
    /// Lifetime of a guest's JWT (time enough to register).
    pub guest_ttl: Duration,
    /// Lifetime of a resume token.
    pub resume_ttl: Duration,
    /// Password hashes computed at once (each takes 19 MiB and a core for tens of ms).
    pub hash_slots: usize,
    /// Requests served at once; more wait in the subscription.
    pub concurrency: usize,
    /// Replicas of the user table bucket (3 in a cluster).
    pub kv_replicas: usize,
    /// How long a graceful stop waits for requests in progress.
    pub drain_timeout: Duration,
    /// Registrations one client host may make at once (the throttle's burst).
    pub register_burst: u32,
    /// After the burst, one more registration per host per this interval.
    pub register_interval: Duration,
    /// How long the server waits for a callout answer (its `authorization.timeout`):
    /// requests older than that are skipped, the server having refused them already.
    pub callout_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            token_ttl: Duration::from_secs(3600),
            guest_ttl: Duration::from_secs(300),
            resume_ttl: Duration::from_secs(24 * 3600),
            hash_slots: std::thread::available_parallelism().map_or(2, |n| n.get()),
            concurrency: 256,
            kv_replicas: 1,
            drain_timeout: Duration::from_secs(5),
            callout_timeout: Duration::from_secs(3),
            register_burst: 10,
            register_interval: Duration::from_secs(30),
        }
    }
}
