//! Registrations are throttled per client host: a token bucket per host, kept in the KV
//! bucket `chat_auth_throttle` of the `AUTH` account so that every auth worker
//! instance shares the count (workers are stateless).
//!
//! The host comes from the `Nats-Request-Info` header the server adds to the imported
//! `chat.auth.register` request (`share: true`): a client cannot forge it. Each host
//! may register [`Throttle::burst`] accounts at once, then one more every
//! [`Throttle::interval`]; beyond that the request is refused with 429 and told when to
//! try again. Taking a token is a compare-and-set on the host's key, so concurrent
//! registrations served by different instances never both take the last token.

use std::time::Duration;

use async_nats::jetstream::{self, kv};
use chat_runtime::cas;
use chat_runtime::hosting::code;
use chat_runtime::replicas::{create_with_retries, CREATE_PATIENCE};
use serde::{Deserialize, Serialize};

/// The bucket's name.
pub const BUCKET: &str = "chat_auth_throttle";

/// Compare-and-set attempts before giving up on a host's key that keeps changing.
const ATTEMPTS: usize = 16;

/// Why a registration was not let through.
#[derive(Debug, thiserror::Error)]
pub enum ThrottleError {
    /// The host used up its allowance.
    #[error(
        "too many registrations from your address; try again in {} s \
         (each address may register {burst} accounts at once, then one every {} s)",
        retry_after.as_secs().max(1), interval.as_secs()
    )]
    TooMany {
        /// How long until the next registration is allowed.
        retry_after: Duration,
        /// The burst allowed.
        burst: u32,
        /// The refill interval.
        interval: Duration,
    },
    /// The count could not be read or written.
    #[error("registration throttle unavailable: {0}")]
    Store(#[source] async_nats::Error),
}

impl ThrottleError {
    /// The service error code: 429 for a host over its allowance, 503 otherwise.
    pub fn code(&self) -> u16 {
        match self {
            Self::TooMany { .. } => code::TOO_MANY,
            Self::Store(_) => code::UNAVAILABLE,
        }
    }
}

/// A host's bucket as stored: tokens left when last written (its time is the entry's).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Tokens {
    tokens: f64,
}

/// The per-host registration throttle.
#[derive(Clone)]
pub struct Throttle {
    kv: kv::Store,
    /// Registrations a host may make at once.
    pub burst: u32,
    /// One more registration per this interval, up to `burst`.
    pub interval: Duration,
}

impl Throttle {
    /// Opens (creating if needed) the bucket. A host's key expires once its bucket would
    /// be full again, so the bucket holds only hosts that registered recently.
    pub async fn open(
        js: &jetstream::Context,
        replicas: usize,
        burst: u32,
        interval: Duration,
    ) -> Result<Self, async_nats::Error> {
        let max_age = interval
            .saturating_mul(burst.max(1))
            .max(Duration::from_secs(1));
        let kv = create_with_retries("registration throttle bucket", CREATE_PATIENCE, || async {
            match js.get_key_value(BUCKET).await {
                Ok(kv) => Ok(kv),
                Err(_) => {
                    js.create_key_value(kv::Config {
                        bucket: BUCKET.to_string(),
                        description: "registrations per client host (auth worker only)".into(),
                        history: 1,
                        max_age,
                        max_bytes: 64 * 1024 * 1024,
                        num_replicas: replicas.max(1),
                        storage: jetstream::stream::StorageType::File,
                        ..Default::default()
                    })
                    .await
                }
            }
        })
        .await?;
        Ok(Self {
            kv,
            burst: burst.max(1),
            interval,
        })
    }

    /// Takes one registration from `host`'s allowance, or says when to try again.
    pub async fn take(&self, host: &str) -> Result<(), ThrottleError> {
        let key = key(host);
        let store = |e: &dyn std::fmt::Display| ThrottleError::Store(e.to_string().into());
        for _ in 0..ATTEMPTS {
            let entry = self.kv.entry(&key).await.map_err(|e| store(&e))?;
            let (tokens, revision) = match entry.filter(|e| e.operation == kv::Operation::Put) {
                Some(entry) => {
                    let stored: Tokens =
                        serde_json::from_slice(&entry.value).unwrap_or(Tokens { tokens: 0.0 });
                    let since = std::time::SystemTime::now()
                        .duration_since(std::time::SystemTime::from(entry.created))
                        .unwrap_or_default();
                    (self.refill(stored.tokens, since), Some(entry.revision))
                }
                None => (f64::from(self.burst), None),
            };
            if tokens < 1.0 {
                return Err(ThrottleError::TooMany {
                    retry_after: self.interval.mul_f64(1.0 - tokens),
                    burst: self.burst,
                    interval: self.interval,
                });
            }
            let body = serde_json::to_vec(&Tokens {
                tokens: tokens - 1.0,
            })
            .expect("tokens serialize");
            let raced = match revision {
                Some(revision) => match self.kv.update(&key, body.into(), revision).await {
                    Ok(_) => false,
                    Err(e) if cas::lost_race(&e) => true,
                    Err(e) => return Err(store(&e)),
                },
                None => match self.kv.create(&key, body.into()).await {
                    Ok(_) => false,
                    Err(e) if cas::lost_race(&e) => true,
                    Err(e) => return Err(store(&e)),
                },
            };
            if !raced {
                return Ok(());
            }
        }
        Err(ThrottleError::Store(
            "the host's count kept changing; try again".into(),
        ))
    }

    /// Tokens after `since` of refill from `tokens`, at most the burst.
    fn refill(&self, tokens: f64, since: Duration) -> f64 {
        let earned = if self.interval.is_zero() {
            f64::from(self.burst)
        } else {
            since.as_secs_f64() / self.interval.as_secs_f64()
        };
        (tokens + earned).min(f64::from(self.burst))
    }
}

/// The host's key: hex of its text (an IPv6 address has colons, which keys may not).
fn key(host: &str) -> String {
    format!("h.{}", data_encoding::HEXLOWER.encode(host.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_valid_for_any_host() {
        assert_eq!(key("127.0.0.1"), "h.3132372e302e302e31");
        assert!(key("::1")
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.'));
    }
}
