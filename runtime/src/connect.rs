//! Connecting to NATS as a worker or tool: the flags every binary but the chat client
//! shares, the credentials they name, and a connect that retries briefly at start.

use std::time::Duration;

use crate::exit;

/// How long one connection attempt of [`connect`] may take.
const CONNECT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
/// Messages each subscription of a worker's connection buffers before the client drops
/// further ones (async-nats's default is 65,536, which let a flood of requests of the
/// largest payload queue gigabytes in a worker). The hosting loop never waits, so an
/// endpoint's buffer stays near empty; this bounds it even so at
/// `SUBSCRIPTION_CAPACITY x max_payload` (docs/limits.md), while staying above the
/// largest batch a reader pulls ([`crate::reading::MAX_BATCH`]) and the most keys one
/// multi-key direct get returns (1,024, the presence worker's `/users`).
pub const SUBSCRIPTION_CAPACITY: usize = 2048;
/// Pause between two connection attempts of [`connect`].
const CONNECT_RETRY_DELAY: Duration = Duration::from_millis(250);

/// Where a worker or tool connects and as whom: the flags every binary but the chat
/// client shares (`#[command(flatten)]`). Each worker is a static user of the server
/// configuration; its password comes from a file (made by `chat-admin init`, mode 0600)
/// or the environment, never from a flag's value on a command line that `ps` shows.
#[derive(Debug, Clone, clap::Args)]
pub struct NatsArgs {
    /// NATS server URL(s), comma-separated: the client fails over between them.
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,
    /// CA certificate (PEM) the server's TLS certificate must be signed by (then TLS is
    /// required); default: the system's root certificates, for tls:// URLs.
    #[arg(long = "tls-ca", env = "NATS_CA")]
    pub tls_ca: Option<std::path::PathBuf>,
    /// The NATS user to connect as (a static user of the server configuration).
    #[arg(long, env = "NATS_USER")]
    pub nats_user: Option<String>,
    /// A file holding that user's password (first line).
    #[arg(long, env = "NATS_PASSWORD_FILE")]
    pub nats_password_file: Option<std::path::PathBuf>,
}

/// A user and password for [`connect`].
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The NATS user.
    pub user: String,
    /// Its password.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    // Never print a password, not even in a debug log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// Reads the password of `user` from the first line of `path`.
    pub fn from_file(user: &str, path: &std::path::Path) -> std::io::Result<Self> {
        let text = std::fs::read_to_string(path)?;
        Ok(Self {
            user: user.to_string(),
            password: text.lines().next().unwrap_or_default().to_string(),
        })
    }
}

impl NatsArgs {
    /// The credentials these flags name: `None` without a user (an open server).
    /// `NATS_PASSWORD` in the environment is taken when no file is named.
    pub fn credentials(&self) -> std::io::Result<Option<Credentials>> {
        let Some(user) = self.nats_user.clone() else {
            return Ok(None);
        };
        match &self.nats_password_file {
            Some(path) => Credentials::from_file(&user, path).map(Some).map_err(|e| {
                std::io::Error::new(e.kind(), format!("password file {}: {e}", path.display()))
            }),
            None => Ok(Some(Credentials {
                user,
                password: std::env::var("NATS_PASSWORD").unwrap_or_default(),
            })),
        }
    }
}

/// Connects to NATS as `name` (shown by `nats server report connections`), retrying for
/// up to `patience` so that a binary started together with its server does not fail on
/// a race, yet one pointed at a wrong address gives up soon (the caller then exits with
/// [`exit::UNAVAILABLE`]). A refused login is not retried: it will not get better.
/// Once connected, the client reconnects by itself.
///
/// ```no_run
/// # async fn run() -> Result<(), async_nats::ConnectError> {
/// use std::time::Duration;
/// let client = chat_runtime::connect("nats://127.0.0.1:4222", "my-worker", None, Duration::from_secs(5)).await?;
/// # drop(client);
/// # Ok(())
/// # }
/// ```
pub async fn connect(
    url: &str,
    name: &str,
    credentials: Option<&Credentials>,
    patience: Duration,
) -> Result<async_nats::Client, async_nats::ConnectError> {
    connect_trusting(url, None, name, credentials, patience).await
}

/// [`connect`] to any server of the comma-separated list `url`, trusting the CA in
/// `ca` (see [`crate::servers`]). A server that cannot be verified is not retried.
pub async fn connect_trusting(
    url: &str,
    ca: Option<&std::path::Path>,
    name: &str,
    credentials: Option<&Credentials>,
    patience: Duration,
) -> Result<async_nats::Client, async_nats::ConnectError> {
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        let mut options = async_nats::ConnectOptions::new()
            .name(name)
            .subscription_capacity(SUBSCRIPTION_CAPACITY)
            .connection_timeout(CONNECT_ATTEMPT_TIMEOUT);
        if let Some(credentials) = credentials {
            options =
                options.user_and_password(credentials.user.clone(), credentials.password.clone());
        }
        match crate::servers::trust(options, ca)
            .connect(crate::servers::list(url))
            .await
        {
            Ok(client) => return Ok(client),
            Err(error)
                if error.kind() == async_nats::ConnectErrorKind::AuthorizationViolation
                    || crate::servers::is_tls_failure(&error)
                    || tokio::time::Instant::now() + CONNECT_RETRY_DELAY >= deadline =>
            {
                return Err(error)
            }
            Err(error) => {
                tracing::warn!(%url, %error, "cannot reach NATS yet; retrying");
                tokio::time::sleep(CONNECT_RETRY_DELAY).await;
            }
        }
    }
}

/// [`connect`] with what [`NatsArgs`] say, logging why not and returning the exit code
/// to use: [`exit::UNAVAILABLE`] when NATS cannot be reached, [`exit::NOPERM`] when it
/// refused the login, [`exit::CONFIG`] when it cannot be verified (TLS),
/// [`exit::USAGE`] when the password file cannot be read.
pub async fn connect_with(
    args: &NatsArgs,
    name: &str,
    patience: Duration,
) -> Result<async_nats::Client, i32> {
    let credentials = args.credentials().map_err(|error| {
        tracing::error!(%error, "cannot read the NATS password");
        exit::USAGE
    })?;
    let ca = args.tls_ca.as_deref();
    connect_trusting(&args.nats_url, ca, name, credentials.as_ref(), patience)
        .await
        .map_err(|error| {
            if crate::servers::is_tls_failure(&error) {
                tracing::error!("{}", crate::servers::explain(&error, &args.nats_url, ca));
                return exit::CONFIG;
            }
            let refused = error.kind() == async_nats::ConnectErrorKind::AuthorizationViolation;
            tracing::error!(
                url = %args.nats_url,
                user = args.nats_user.as_deref().unwrap_or(""),
                %error,
                "{}",
                if refused { "NATS refused the login" } else { "cannot reach NATS" }
            );
            if refused {
                exit::NOPERM
            } else {
                exit::UNAVAILABLE
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connect_retries_then_gives_up() {
        // A port nothing listens on: bind one, note it, free it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("nats://127.0.0.1:{port}");
        assert!(connect(&url, "test", None, Duration::from_millis(600))
            .await
            .is_err());
    }

    #[tokio::test]
    async fn connect_reaches_a_server() {
        let server = test_support::run_server();
        // test-support links its own build of this crate: copy the fields over.
        let admin = server.credentials(chat_protocol::auth::static_users::ADMIN);
        let admin = Credentials {
            user: admin.user,
            password: admin.password,
        };
        let client = connect(&server.url(), "test", Some(&admin), Duration::from_secs(5))
            .await
            .unwrap();
        client.flush().await.unwrap();
        // A wrong password is refused at once, not retried for the whole patience.
        let wrong = Credentials {
            password: "wrong".into(),
            ..admin
        };
        let error = connect(&server.url(), "test", Some(&wrong), Duration::from_secs(60))
            .await
            .unwrap_err();
        assert_eq!(
            error.kind(),
            async_nats::ConnectErrorKind::AuthorizationViolation
        );
    }
}
