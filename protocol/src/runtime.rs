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

/// Connects to NATS as `name` (shown by `nats server report connections`), retrying for
/// up to `patience` so that a binary started together with its server does not fail on
/// a race, yet one pointed at a wrong address gives up soon (the caller then exits with
/// [`exit::UNAVAILABLE`]). Once connected, the client reconnects by itself.
pub async fn connect(
    url: &str,
    name: &str,
    patience: Duration,
) -> Result<async_nats::Client, async_nats::ConnectError> {
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        let attempt = async_nats::ConnectOptions::new()
            .name(name)
            .connection_timeout(CONNECT_ATTEMPT_TIMEOUT)
            .connect(url)
            .await;
        match attempt {
            Ok(client) => return Ok(client),
            Err(error) if tokio::time::Instant::now() + CONNECT_RETRY_DELAY >= deadline => {
                return Err(error)
            }
            Err(error) => {
                tracing::warn!(%url, %error, "cannot reach NATS yet; retrying");
                tokio::time::sleep(CONNECT_RETRY_DELAY).await;
            }
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
        assert!(connect(&url, "test", Duration::from_millis(600))
            .await
            .is_err());
    }

    #[tokio::test]
    async fn connect_reaches_a_server() {
        let server = test_support::run_server();
        let client = connect(&server.url(), "test", Duration::from_secs(5))
            .await
            .unwrap();
        client.flush().await.unwrap();
    }
}
