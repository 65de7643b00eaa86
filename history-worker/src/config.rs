//! The bounds a history worker serves pages within.

use std::time::Duration;

/// How a [`HistoryWorker`](crate::HistoryWorker) bounds its work. Flags of the binary
/// set these; the defaults suit one server and rooms of any size.
#[derive(Debug, Clone)]
pub struct Config {
    /// Most messages in one page, whatever a request's `limit` says: bounds the time
    /// and memory one request takes.
    pub max_limit: u32,
    /// Most bytes of one serialized page, envelope included. Must stay well under the
    /// server's max payload (128 KiB in the project's configuration) and hold at least one message of
    /// [`MAX_MESSAGE_BYTES`](chat_protocol::streams::MAX_MESSAGE_BYTES).
    pub max_page_bytes: usize,
    /// Most requests served at once; further requests wait for a free slot, so memory
    /// stays bounded under load while a long replay never stalls the others.
    pub concurrency: usize,
    /// How long a graceful stop waits for requests in progress before abandoning them.
    pub drain_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_limit: 1000,
            max_page_bytes: 96 * 1024,
            concurrency: 32,
            drain_timeout: Duration::from_secs(10),
        }
    }
}

/// Smallest acceptable [`Config::max_page_bytes`]: one message of the largest size
/// the room streams accept, with room to spare for the page's envelope.
pub const MIN_PAGE_BYTES: usize = 2 * chat_protocol::streams::MAX_MESSAGE_BYTES as usize;

/// Why a [`Config`] cannot be served with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `max_limit` is zero.
    #[error("max_limit must be at least 1")]
    ZeroLimit,
    /// `max_page_bytes` cannot hold the largest message.
    #[error("max_page_bytes must be at least {MIN_PAGE_BYTES} (got {0})")]
    PageTooSmall(usize),
    /// `concurrency` is zero.
    #[error("concurrency must be at least 1")]
    ZeroConcurrency,
    /// Pages of `max_page_bytes` would not fit the server's max payload.
    #[error("max_page_bytes ({page}) must stay under the server's max payload ({max_payload})")]
    PageOverPayload {
        /// The configured page bound.
        page: usize,
        /// What the server accepts.
        max_payload: usize,
    },
}

impl Config {
    /// Checks the bounds make sense.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_limit == 0 {
            return Err(ConfigError::ZeroLimit);
        }
        if self.max_page_bytes < MIN_PAGE_BYTES {
            return Err(ConfigError::PageTooSmall(self.max_page_bytes));
        }
        if self.concurrency == 0 {
            return Err(ConfigError::ZeroConcurrency);
        }
        Ok(())
    }

    /// Checks the page bound against the server's max payload (`max_payload` 0: not
    /// known yet, nothing to check).
    pub fn validate_for_server(&self, max_payload: usize) -> Result<(), ConfigError> {
        self.validate()?;
        if max_payload > 0 && self.max_page_bytes >= max_payload {
            return Err(ConfigError::PageOverPayload {
                page: self.max_page_bytes,
                max_payload,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_bad_bounds_are_refused() {
        assert_eq!(Config::default().validate(), Ok(()));
        let bad = |f: fn(&mut Config)| {
            let mut c = Config::default();
            f(&mut c);
            c.validate().unwrap_err()
        };
        assert_eq!(bad(|c| c.max_limit = 0), ConfigError::ZeroLimit);
        assert_eq!(bad(|c| c.concurrency = 0), ConfigError::ZeroConcurrency);
        assert_eq!(
            bad(|c| c.max_page_bytes = 1000),
            ConfigError::PageTooSmall(1000)
        );
        let config = Config::default();
        // The project's max_payload (nats/nats-server.conf.template) fits the default.
        assert_eq!(config.validate_for_server(128 * 1024), Ok(()));
        assert_eq!(config.validate_for_server(0), Ok(()));
        assert!(matches!(
            config.validate_for_server(64 * 1024),
            Err(ConfigError::PageOverPayload { .. })
        ));
    }
}
