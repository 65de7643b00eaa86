//! `history-worker`: the `chat-history` NATS service as a process.
//!
//! Parses flags (with environment fallbacks), sets up logging, connects, serves until
//! SIGTERM or Ctrl-C, then stops gracefully. Exit codes: 0 after a normal stop, 2 for
//! bad arguments, 69 when NATS cannot be reached at start, 77 when it refuses the
//! login, 78 when the server's TLS certificate cannot be verified (`--tls-ca`), 1 for
//! any other failure.

use chat_protocol::auth::static_users;
use chat_runtime::{exit, process, LogFormat, NatsArgs};
use clap::Parser;
use history_worker::{Config, HistoryWorker, StartError};

/// Serves pages of chat rooms' stored messages on chat.history.<room> and replay plans
/// on chat.replay.<room> (NATS service `chat-history`). Run any number of instances
/// side by side.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    nats: NatsArgs,
    /// Most messages in one page, whatever a request asks for.
    #[arg(long, env = "HISTORY_MAX_LIMIT", default_value_t = Config::default().max_limit)]
    max_limit: u32,
    /// Most bytes in one page (serialized), well under the server's max payload.
    #[arg(long, env = "HISTORY_MAX_PAGE_BYTES", default_value_t = Config::default().max_page_bytes)]
    max_page_bytes: usize,
    /// Most requests served at once.
    #[arg(long, env = "HISTORY_CONCURRENCY", default_value_t = Config::default().concurrency)]
    concurrency: usize,
    /// Log line format; the level comes from LOG_LEVEL or RUST_LOG (default info).
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty)]
    log_format: LogFormat,
}

#[tokio::main]
async fn main() {
    let mut args = Args::parse();
    process::begin(args.log_format, &mut args.nats, static_users::HISTORY);
    std::process::exit(run(args).await);
}

async fn run(args: Args) -> i32 {
    let config = Config {
        max_limit: args.max_limit,
        max_page_bytes: args.max_page_bytes,
        concurrency: args.concurrency,
        ..Config::default()
    };
    if let Err(error) = config.validate() {
        tracing::error!(%error, "invalid arguments");
        return exit::USAGE;
    }
    let client = match process::connect(&args.nats, "history-worker").await {
        Ok(client) => client,
        Err(code) => return code,
    };
    process::serve(
        HistoryWorker::start(client, config).await,
        |error| match error {
            StartError::Config(_) => exit::USAGE,
            _ => exit::FAILURE,
        },
        HistoryWorker::stop,
    )
    .await
}
