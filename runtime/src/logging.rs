//! Logging, the same in every binary.
//!
//! Log level comes from `LOG_LEVEL`, else `RUST_LOG`, else `info`; `--log-format json`
//! writes one JSON object per line for log shippers.

use std::io::Write;
use std::sync::Mutex;

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
