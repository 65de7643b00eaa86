//! What a moderation worker enforces and within which bounds.

use std::time::Duration;

use chat_protocol::body::Rate;

/// How a [`ModerationWorker`](crate::ModerationWorker) moderates. Flags of the binary
/// set these; the defaults are the contract's.
#[derive(Debug, Clone)]
pub struct Config {
    /// The allowance per user across all rooms (the Standing reply carries it).
    pub rate: Rate,
    /// How long a user who went over the allowance is muted.
    pub flood_mute: Duration,
    /// How far before the crossing the allowance is replayed over stored messages to
    /// find the excess (see `excess.rs`).
    pub lookback: Duration,
    /// Most users whose bucket is tracked at once (bounds the worker's memory).
    pub max_tracked_users: usize,
    /// How long a pending outbox entry may sit untouched before another instance
    /// finishes it (its writer is presumed dead).
    pub takeover_after: Duration,
    /// Replicas of the `chat_moderation` bucket (None: 1, or 3 on a cluster).
    pub replicas: Option<usize>,
    /// Most requests served at once.
    pub concurrency: usize,
    /// How long a graceful stop waits for requests and actions in progress.
    pub drain_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            rate: Rate::default(),
            flood_mute: Duration::from_secs(60),
            lookback: Duration::from_secs(2),
            max_tracked_users: 100_000,
            takeover_after: Duration::from_secs(2),
            replicas: None,
            concurrency: 32,
            drain_timeout: Duration::from_secs(10),
        }
    }
}

/// Why a [`Config`] cannot be served with.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// A zero or negative allowance would mute everyone.
    #[error("the rate must allow a burst of at least 1 and more than 0 per second (got {burst} and {per_second})")]
    Rate {
        /// The burst given.
        burst: u32,
        /// The rate given.
        per_second: f64,
    },
    /// A flood mute of nothing.
    #[error("the flood mute must last at least a second")]
    FloodMute,
    /// No users tracked, or no requests served.
    #[error("max_tracked_users and concurrency must be at least 1")]
    Zero,
}

impl Config {
    /// Checks that the settings make sense.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.rate.burst == 0 || !self.rate.per_second.is_finite() || self.rate.per_second <= 0.0
        {
            return Err(ConfigError::Rate {
                burst: self.rate.burst,
                per_second: self.rate.per_second,
            });
        }
        if self.flood_mute < Duration::from_secs(1) {
            return Err(ConfigError::FloodMute);
        }
        if self.max_tracked_users == 0 || self.concurrency == 0 {
            return Err(ConfigError::Zero);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_bad_settings_are_refused() {
        assert_eq!(Config::default().validate(), Ok(()));
        let mut c = Config::default();
        c.rate.per_second = 0.0;
        assert!(matches!(c.validate(), Err(ConfigError::Rate { .. })));
        c.rate.per_second = f64::NAN;
        assert!(c.validate().is_err());
        let c = Config {
            flood_mute: Duration::ZERO,
            ..Config::default()
        };
        assert_eq!(c.validate(), Err(ConfigError::FloodMute));
    }
}
