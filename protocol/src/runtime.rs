//! What every binary of the workspace does the same way: logging and shutdown.
//!
//! Log level comes from `LOG_LEVEL`, else `RUST_LOG`, else `info`; `--log-format json`
//! writes one JSON object per line for log shippers. Shutdown waits for SIGTERM or
//! Ctrl-C so that workers drain and clients leave their rooms cleanly.

use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Pretty,
    /// One JSON object per line.
    Json,
}

/// Exit codes shared by the binaries (from `sysexits.h` where one fits).
pub mod exit {
    /// Ran and stopped normally.
    pub const OK: i32 = 0;
    /// Failed while running.
    pub const FAILURE: i32 = 1;
    /// Bad command-line arguments (clap's own code).
    pub const USAGE: i32 = 2;
    /// NATS could not be reached, or a needed service did not answer.
    pub const UNAVAILABLE: i32 = 69;
    /// The server refused the login (wrong name or password).
    pub const NOPERM: i32 = 77;
    /// The server could not be trusted: its TLS certificate does not verify against
    /// the CA given (or the system's roots), or TLS is wanted on one side only.
    pub const CONFIG: i32 = 78;
}

fn filter() -> EnvFilter {
    EnvFilter::try_from_env("LOG_LEVEL")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info"))
}

/// Installs the global tracing subscriber writing to stderr.
pub fn init_logging(format: LogFormat) {
    init_logging_to(format, std::io::stderr);
}

/// Installs the global tracing subscriber writing to `writer` (a log file for the
/// interactive client, so that no log line lands on the chat screen).
pub fn init_logging_to<W>(format: LogFormat, writer: W)
where
    W: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_writer(writer);
    let result = match format {
        LogFormat::Pretty => builder.with_ansi(false).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    // A second initialisation (several components in one test process) keeps the first.
    let _ = result;
}

/// A log file usable as a tracing writer.
pub fn log_file(path: &std::path::Path) -> std::io::Result<Mutex<std::fs::File>> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    file.flush()?;
    Ok(Mutex::new(file))
}

/// How long one connection attempt of [`connect`] may take.
const CONNECT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
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

/// A NATS service (async-nats `service`) and the task serving its requests: how the
/// workers host a service and stop it, written once.
///
/// [`Hosted::stop`] stops gracefully; dropping it aborts the serving task at once (a
/// crash, as far as the service's callers can tell).
pub struct Hosted {
    name: &'static str,
    service: Option<async_nats::service::Service>,
    serving: Option<tokio::task::JoinHandle<()>>,
    client: async_nats::Client,
    drain_timeout: Duration,
}

impl Hosted {
    /// `service` (named `name`, on `client`), served by the task `serving`, which must
    /// end once the service's endpoints close and the requests it took are answered.
    pub fn new(
        name: &'static str,
        client: async_nats::Client,
        service: async_nats::service::Service,
        serving: tokio::task::JoinHandle<()>,
        drain_timeout: Duration,
    ) -> Self {
        Self {
            name,
            service: Some(service),
            serving: Some(serving),
            client,
            drain_timeout,
        }
    }

    /// Stops gracefully: stops taking requests (other instances get them from now on),
    /// waits up to the drain timeout for those already taken, and flushes the replies.
    pub async fn stop(mut self) {
        if let Some(service) = self.service.take() {
            let _ = service.stop().await;
        }
        if let Some(mut serving) = self.serving.take() {
            if tokio::time::timeout(self.drain_timeout, &mut serving)
                .await
                .is_err()
            {
                tracing::warn!(
                    service = self.name,
                    timeout = ?self.drain_timeout,
                    "requests still in progress at shutdown were abandoned"
                );
                serving.abort();
            }
        }
        if let Err(error) = self.client.flush().await {
            tracing::warn!(service = self.name, %error, "cannot flush the last replies");
        }
    }
}

impl Drop for Hosted {
    fn drop(&mut self) {
        if let Some(serving) = self.serving.take() {
            serving.abort();
        }
        if let Some(service) = self.service.take() {
            // `Service::stop` only signals and aborts; it completes without waiting.
            use futures::FutureExt;
            let _ = service.stop().now_or_never();
        }
    }
}

/// Completes when the process is asked to stop: SIGTERM, or Ctrl-C (SIGINT).
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
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
        let admin = server.credentials(crate::auth::static_users::ADMIN);
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
