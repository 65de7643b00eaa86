//! `moderation-worker`: the `chat-moderation` NATS service as a process.
//!
//! Parses flags (with environment fallbacks), sets up logging, connects (twice as
//! `@moderation`, once as `@moderation_sys`), serves until SIGTERM or Ctrl-C, then
//! stops gracefully. Exit codes: 0 after a normal stop, 2 for bad arguments, 69 when
//! NATS cannot be reached at start, 77 when it refuses a login, 78 when the server's
//! TLS certificate cannot be verified (`--tls-ca`), 1 for any other failure.

use std::time::Duration;

use chat_protocol::auth::static_users;
use chat_protocol::body::Rate;
use chat_runtime::{exit, process, LogFormat, NatsArgs};
use clap::Parser;
use moderation_worker::{Config, Links, ModerationWorker, StartError};

/// Enforces the message-rate allowance and serves moderation commands, standings and
/// roles (NATS service `chat-moderation`). Run any number of instances side by side.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    nats: NatsArgs,
    /// The system-account user that lists and kicks connections.
    #[arg(long, env = "NATS_SYS_USER", default_value = static_users::MODERATION_SYS)]
    sys_user: String,
    /// A file holding that user's password (first line).
    #[arg(long, env = "NATS_SYS_PASSWORD_FILE")]
    sys_password_file: Option<std::path::PathBuf>,
    /// Messages a user may send at once, across all rooms.
    #[arg(long, env = "MODERATION_BURST", default_value_t = Rate::default().burst)]
    burst: u32,
    /// Messages per second a user may send on average after the burst.
    #[arg(long, env = "MODERATION_PER_SECOND", default_value_t = Rate::default().per_second)]
    per_second: f64,
    /// Seconds a user who goes over the allowance is muted.
    #[arg(long, env = "MODERATION_FLOOD_MUTE", default_value_t = Config::default().flood_mute.as_secs())]
    flood_mute: u64,
    /// Most users whose allowance is tracked at once (bounds memory).
    #[arg(long, env = "MODERATION_MAX_TRACKED_USERS", default_value_t = Config::default().max_tracked_users)]
    max_tracked_users: usize,
    /// Replicas of the chat_moderation bucket (default: 1, or 3 on a cluster).
    #[arg(long, env = "MODERATION_REPLICAS")]
    replicas: Option<usize>,
    /// Most requests served at once.
    #[arg(long, env = "MODERATION_CONCURRENCY", default_value_t = Config::default().concurrency)]
    concurrency: usize,
    /// Log line format; the level comes from LOG_LEVEL or RUST_LOG (default info).
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty)]
    log_format: LogFormat,
}

#[tokio::main]
async fn main() {
    let mut args = Args::parse();
    process::begin(args.log_format, &mut args.nats, static_users::MODERATION);
    std::process::exit(run(args).await);
}

async fn run(args: Args) -> i32 {
    let config = Config {
        rate: Rate {
            burst: args.burst,
            per_second: args.per_second,
        },
        flood_mute: Duration::from_secs(args.flood_mute),
        max_tracked_users: args.max_tracked_users,
        replicas: args.replicas,
        concurrency: args.concurrency,
        ..Config::default()
    };
    if let Err(error) = config.validate() {
        tracing::error!(%error, "invalid arguments");
        return exit::USAGE;
    }
    let sys_args = NatsArgs {
        nats_user: Some(args.sys_user.clone()),
        nats_password_file: args.sys_password_file.clone(),
        ..args.nats.clone()
    };
    let links = match tokio::try_join!(
        process::connect(&args.nats, "moderation-worker"),
        process::connect(&args.nats, "moderation-worker counting"),
        process::connect(&sys_args, "moderation-worker system"),
    ) {
        Ok((chat, counting, system)) => Links {
            chat,
            counting,
            system,
        },
        Err(code) => return code,
    };
    process::serve(
        ModerationWorker::start(links, config).await,
        |error| match error {
            StartError::Config(_) => exit::USAGE,
            _ => exit::FAILURE,
        },
        ModerationWorker::stop,
    )
    .await
}
