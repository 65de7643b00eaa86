//! The user table: one key per user in the KV bucket `chat_auth_users` of the `AUTH`
//! account, which no chat user can read.
//!
//! The key is the name in lower case, so that `Alice` cannot register beside `alice`;
//! the record keeps the name as registered, and a login must use exactly that. A
//! registration is a KV create (the first writer wins, whichever auth worker serves
//! it); a password change is a compare-and-set on the record's revision. The revision
//! also stamps resume tokens: a change of password invalidates them.

use std::time::Duration;

use async_nats::jetstream::{self, kv};
use chat_protocol::auth::{check_password, PasswordError};
use chat_protocol::{NameError, UserName};
use chat_runtime::hosting::code;
use serde::{Deserialize, Serialize};

use crate::password::{HashError, Hasher};
use chat_runtime::cas;
use chat_runtime::replicas::{create_with_retries, CREATE_PATIENCE};

/// The bucket's name.
pub const BUCKET: &str = "chat_auth_users";

/// How long a read of the user table keeps being tried while the table is unavailable
/// (its stream electing a leader after a node died, or a request lost with the node):
/// long enough to ride out most of an election, short enough to answer within the
/// server's callout timeout (3 s) with the password hash still to check.
pub const STORE_PATIENCE: Duration = Duration::from_secs(2);

/// How long one read may take before it is given up and tried again: a request that
/// went to a node that just died is never answered, and waiting for the JetStream
/// context's own timeout (5 s) would outlast the server's patience.
const STORE_ATTEMPT: Duration = Duration::from_millis(600);

/// A registered user.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    /// The name as registered.
    pub user: UserName,
    /// Argon2id PHC string.
    pub hash: String,
    /// When registered.
    #[serde(with = "chat_protocol::body::rfc3339")]
    pub created: chrono::DateTime<chrono::Utc>,
}

/// Why a registration or a password change was refused, or failed.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    /// The name breaks the naming rules.
    #[error("{0}")]
    Name(#[from] NameError),
    /// The password breaks the password rules.
    #[error("{0}")]
    Password(#[from] PasswordError),
    /// Someone has that name (or the same name in another case).
    #[error("the name {0} is taken; choose another")]
    Taken(UserName),
    /// Wrong current password (password change).
    #[error("the current password is wrong")]
    WrongPassword,
    /// The user does not exist (password change of a deleted user).
    #[error("no such user")]
    Unknown,
    /// The record changed meanwhile (a concurrent password change); try again.
    #[error("the account changed meanwhile; try again")]
    Conflict,
    /// Hashing failed.
    #[error(transparent)]
    Hash(#[from] HashError),
    /// The user table could not be read or written.
    #[error("user table unavailable: {0}")]
    Store(#[source] async_nats::Error),
}

impl UsersError {
    /// The service error code: 400 for what the caller must change, 409 for a taken name
    /// or a race, 401 for a wrong password, 500/503 for our failures.
    pub fn code(&self) -> u16 {
        match self {
            UsersError::Name(_) | UsersError::Password(_) => code::BAD_REQUEST,
            UsersError::WrongPassword | UsersError::Unknown => code::UNAUTHORIZED,
            UsersError::Taken(_) | UsersError::Conflict => code::CONFLICT,
            UsersError::Hash(_) => code::INTERNAL,
            UsersError::Store(_) => code::UNAVAILABLE,
        }
    }
}

/// The user table.
#[derive(Clone)]
pub struct Users {
    kv: kv::Store,
    hasher: Hasher,
}

/// A user as found: the record and its revision.
#[derive(Debug, Clone)]
pub struct Found {
    /// The record.
    pub record: Record,
    /// Its KV revision.
    pub revision: u64,
}

fn key(user: &str) -> String {
    user.to_ascii_lowercase()
}

impl Users {
    /// Opens (creating if needed) the bucket.
    pub async fn open(
        js: &jetstream::Context,
        replicas: usize,
        hasher: Hasher,
    ) -> Result<Self, async_nats::Error> {
        let kv = create_with_retries("user table bucket", CREATE_PATIENCE, || async {
            match js.get_key_value(BUCKET).await {
                Ok(kv) => Ok(kv),
                Err(_) => {
                    js.create_key_value(kv::Config {
                        bucket: BUCKET.to_string(),
                        description: "chat users: name -> argon2id hash (auth worker only)".into(),
                        history: 1,
                        num_replicas: replicas.max(1),
                        storage: jetstream::stream::StorageType::File,
                        ..Default::default()
                    })
                    .await
                }
            }
        })
        .await?;
        Ok(Self { kv, hasher })
    }

    /// Creates `user` with `password`, unless the name is invalid, the password weak,
    /// or the name taken.
    pub async fn register(&self, user: &str, password: &str) -> Result<UserName, UsersError> {
        let user = UserName::new(user)?;
        check_password(&user, password)?;
        let record = Record {
            user: user.clone(),
            hash: self.hasher.hash(password).await?,
            created: chrono::Utc::now(),
        };
        let body = serde_json::to_vec(&record).expect("a record serializes");
        match self.kv.create(key(user.as_str()), body.into()).await {
            Ok(_) => Ok(user),
            Err(e) if cas::lost_race(&e) => Err(UsersError::Taken(user)),
            Err(e) => Err(UsersError::Store(e.into())),
        }
    }

    /// The user named exactly `user`, if registered.
    pub async fn find(&self, user: &str) -> Result<Option<Found>, UsersError> {
        if UserName::new(user).is_err() {
            return Ok(None);
        }
        let entry = self.entry_patiently(&key(user)).await?;
        let Some(entry) = entry.filter(|e| e.operation == kv::Operation::Put) else {
            return Ok(None);
        };
        let record: Record = match serde_json::from_slice(&entry.value) {
            Ok(record) => record,
            Err(error) => {
                tracing::error!(%error, "unreadable user record; refusing its logins");
                return Ok(None);
            }
        };
        Ok((record.user.as_str() == user).then_some(Found {
            record,
            revision: entry.revision,
        }))
    }

    /// The entry of `key`, read again (for at most [`STORE_PATIENCE`]) while the user
    /// table is unavailable or a read goes unanswered, so that a login during a leader
    /// election waits a moment instead of being refused as if the password were wrong.
    /// Only reads are retried: a write that timed out may have happened.
    async fn entry_patiently(&self, key: &str) -> Result<Option<kv::Entry>, UsersError> {
        let deadline = tokio::time::Instant::now() + STORE_PATIENCE;
        let mut pause = Duration::from_millis(50);
        loop {
            let error: async_nats::Error =
                match tokio::time::timeout(STORE_ATTEMPT, self.kv.entry(key)).await {
                    Ok(Ok(entry)) => return Ok(entry),
                    Ok(Err(error)) => error.into(),
                    Err(_) => format!("no answer within {STORE_ATTEMPT:?}").into(),
                };
            if tokio::time::Instant::now() + pause >= deadline {
                return Err(UsersError::Store(error));
            }
            tracing::info!(%error, retry_in = ?pause, "user table unavailable; reading again");
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(400));
        }
    }

    /// The user if `password` is theirs; `None` for a wrong name or password alike.
    pub async fn login(&self, user: &str, password: &str) -> Result<Option<Found>, UsersError> {
        let found = self.find(user).await?;
        let hash = found.as_ref().map(|f| f.record.hash.as_str());
        let ok = self.hasher.verify(hash, password).await?;
        Ok(found.filter(|_| ok))
    }

    /// Changes `user`'s password from `old` to `new`.
    pub async fn change_password(
        &self,
        user: &UserName,
        old: &str,
        new: &str,
    ) -> Result<(), UsersError> {
        check_password(user, new)?;
        let found = self.find(user.as_str()).await?.ok_or(UsersError::Unknown)?;
        if !self.hasher.verify(Some(&found.record.hash), old).await? {
            return Err(UsersError::WrongPassword);
        }
        let record = Record {
            hash: self.hasher.hash(new).await?,
            ..found.record
        };
        let body = serde_json::to_vec(&record).expect("a record serializes");
        match self
            .kv
            .update(key(user.as_str()), body.into(), found.revision)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if cas::lost_race(&e) => Err(UsersError::Conflict),
            Err(e) => Err(UsersError::Store(e.into())),
        }
    }
}
