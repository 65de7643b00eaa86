//! The server's secrets: the account key that signs every login (the callout's issuer)
//! and a password per static user. Made once, on first start, into a folder of files
//! with mode 0600 (the folder 0700), never committed (the run folder is git-ignored)
//! and never logged; later starts read them back, so restarts keep every login valid.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use chat_protocol::auth::static_users;
use rand::Rng;

/// File of the issuer account seed.
pub const ISSUER_FILE: &str = "issuer.seed";

/// The secrets of one server.
#[derive(Clone)]
pub struct Secrets {
    dir: PathBuf,
    issuer_seed: String,
    passwords: BTreeMap<&'static str, String>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// Why the secrets could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// A file could not be written or read.
    #[error("{path}: {source}")]
    Io {
        /// Which.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The issuer seed file holds no account seed.
    #[error("{0} does not hold an account seed (SA...)")]
    BadSeed(PathBuf),
}

/// The file holding the password of static user `user` (`@presence` →
/// `presence.password`).
pub fn password_file(dir: &Path, user: &str) -> PathBuf {
    dir.join(format!("{}.password", user.trim_start_matches('@')))
}

impl Secrets {
    /// Reads the secrets in `dir`, first making whichever are missing.
    pub fn load_or_create(dir: &Path) -> Result<Self, SecretsError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| SecretsError::Io { path, source }
        };
        create_private_dir(dir).map_err(io(dir))?;
        let issuer_path = dir.join(ISSUER_FILE);
        let issuer_seed = read_or_create(&issuer_path, || {
            nkeys::KeyPair::new_account()
                .seed()
                .expect("a new key has a seed")
        })
        .map_err(io(&issuer_path))?;
        if !nkeys::KeyPair::from_seed(&issuer_seed).is_ok_and(|k| k.public_key().starts_with('A')) {
            return Err(SecretsError::BadSeed(issuer_path));
        }
        let mut passwords = BTreeMap::new();
        for user in static_users::ALL {
            let path = password_file(dir, user);
            let password = read_or_create(&path, random_password).map_err(io(&path))?;
            passwords.insert(user, password);
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            issuer_seed,
            passwords,
        })
    }

    /// The folder they are in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The issuer account key pair.
    pub fn issuer(&self) -> nkeys::KeyPair {
        nkeys::KeyPair::from_seed(&self.issuer_seed).expect("checked when loaded")
    }

    /// The password of static user `user` (one of [`static_users::ALL`]).
    pub fn password(&self, user: &str) -> &str {
        self.passwords
            .get(user)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("{user} is not a static user"))
    }
}

fn random_password() -> String {
    rand::thread_rng()
        .sample_iter(&rand::distributions::Alphanumeric)
        .take(40)
        .map(char::from)
        .collect()
}

#[cfg(unix)]
pub(crate) fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

#[cfg(not(unix))]
pub(crate) fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

/// Writes `text` to a new file readable by its owner only (fails if it exists).
pub fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

fn read_or_create(path: &Path, make: impl FnOnce() -> String) -> std::io::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text.trim().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let value = make();
            match write_private(path, &value) {
                Ok(()) => Ok(value),
                // Made by a concurrent start meanwhile: use theirs.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    Ok(std::fs::read_to_string(path)?.trim().to_string())
                }
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_once_private_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let secrets_dir = dir.path().join("secrets");
        let first = Secrets::load_or_create(&secrets_dir).unwrap();
        let second = Secrets::load_or_create(&secrets_dir).unwrap();
        assert_eq!(first.issuer().public_key(), second.issuer().public_key());
        assert_eq!(
            first.password(static_users::PRESENCE),
            second.password(static_users::PRESENCE)
        );
        assert_ne!(
            first.password(static_users::PRESENCE),
            first.password(static_users::HISTORY)
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&secrets_dir), 0o700);
            assert_eq!(mode(&secrets_dir.join(ISSUER_FILE)), 0o600);
            assert_eq!(
                mode(&password_file(&secrets_dir, static_users::ADMIN)),
                0o600
            );
        }
    }
}
