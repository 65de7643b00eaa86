//! Password hashing: argon2id (the RustCrypto `argon2` crate's defaults, which are
//! OWASP's: 19 MiB, 2 passes, 1 lane), stored as PHC strings. Hashing costs tens of
//! milliseconds of CPU and 19 MiB by design, so it runs on tokio's blocking pool, never
//! on the async runtime, and at most [`Hasher::new`]'s `slots` at once: a flood of
//! logins queues instead of taking the memory of hundreds of hashes.

use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use tokio::sync::Semaphore;

/// Hashes and verifies passwords with bounded concurrency.
#[derive(Clone)]
pub struct Hasher {
    slots: Arc<Semaphore>,
    /// A real hash of nothing anyone knows, verified when the user does not exist so
    /// that a refusal takes as long for an unknown name as for a wrong password.
    decoy: Arc<String>,
}

/// Hashing failed (a bug, or the blocking pool is gone at shutdown).
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

impl Hasher {
    /// At most `slots` hashes at once.
    pub fn new(slots: usize) -> Self {
        let decoy = hash_now(&rand_string()).unwrap_or_default();
        Self {
            slots: Arc::new(Semaphore::new(slots.max(1))),
            decoy: Arc::new(decoy),
        }
    }

    /// The PHC string of `password` with a fresh salt.
    pub async fn hash(&self, password: &str) -> Result<String, HashError> {
        let password = password.to_string();
        self.blocking(move || hash_now(&password)).await?
    }

    /// Whether `password` matches the PHC string `hash`; `None` for a user that does
    /// not exist (verified against a decoy, and false).
    pub async fn verify(&self, hash: Option<&str>, password: &str) -> Result<bool, HashError> {
        let known = hash.is_some();
        let hash = hash.unwrap_or(&self.decoy).to_string();
        let password = password.to_string();
        let matches = self
            .blocking(move || {
                PasswordHash::new(&hash)
                    .map(|parsed| {
                        Argon2::default()
                            .verify_password(password.as_bytes(), &parsed)
                            .is_ok()
                    })
                    .unwrap_or(false)
            })
            .await?;
        Ok(known && matches)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|e| HashError(e.to_string()))?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| HashError(e.to_string()))
    }
}

fn hash_now(password: &str) -> Result<String, HashError> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| HashError(e.to_string()))
}

fn rand_string() -> String {
    use rand::Rng;
    rand::thread_rng()
        .sample_iter(&rand::distributions::Alphanumeric)
        .take(32)
        .map(char::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_and_verify() {
        let hasher = Hasher::new(2);
        let hash = hasher.hash("correct horse").await.unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(hasher.verify(Some(&hash), "correct horse").await.unwrap());
        assert!(!hasher.verify(Some(&hash), "wrong horse").await.unwrap());
        assert!(!hasher.verify(None, "correct horse").await.unwrap());
        assert!(!hasher.verify(Some("not a hash"), "x").await.unwrap());
    }
}
