//! `auth-worker`: the `chat-auth` NATS service as a process.
//!
//! Parses flags (with environment fallbacks), sets up logging, reads the issuer seed,
//! connects as `@auth`, serves until SIGTERM or Ctrl-C, then stops gracefully. Exit
//! codes: 0 after a normal stop, 2 for bad arguments or an unreadable seed, 69 when
//! NATS cannot be reached at start, 77 when it refuses the worker's login, 78 when the
//! server's TLS certificate cannot be verified (`--tls-ca`), 1 for any other failure.

use std::path::PathBuf;
use std::time::Duration;

use auth_worker::{AuthWorker, Config};
use chat_protocol::auth::static_users;
use chat_runtime::replicas;
use chat_runtime::{exit, process, LogFormat, NatsArgs};
use clap::Parser;

/// Answers nats-server's auth callout (logins), registrations and password changes
/// (NATS service `chat-auth`). Run any number of instances side by side.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    nats: NatsArgs,
    /// The issuer account's seed (a file made by `chat-admin init`, mode 0600).
    #[arg(
        long,
        env = "AUTH_ISSUER_SEED_FILE",
        default_value = ".run/secrets/issuer.seed"
    )]
    issuer_seed_file: PathBuf,
    /// Lifetime of a chat user's login in seconds, after which the client logs in again
    /// (a password change takes effect by then).
    #[arg(long, env = "AUTH_TOKEN_TTL", default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..))]
    token_ttl: u64,
    /// Lifetime of a resume token in seconds.
    #[arg(long, env = "AUTH_RESUME_TTL", default_value_t = 86400, value_parser = clap::value_parser!(u64).range(1..))]
    resume_ttl: u64,
    /// Registrations one client host may make at once.
    #[arg(long, env = "AUTH_REGISTER_BURST", default_value_t = Config::default().register_burst, value_parser = clap::value_parser!(u32).range(1..))]
    register_burst: u32,
    /// After the burst, one more registration per host every this many seconds.
    #[arg(long, env = "AUTH_REGISTER_INTERVAL", default_value_t = Config::default().register_interval.as_secs())]
    register_interval: u64,
    /// Replicas of the user table bucket; default: 1 on a single server, 3 on a cluster.
    #[arg(long, env = "KV_REPLICAS", value_parser = clap::value_parser!(u8).range(1..=5))]
    kv_replicas: Option<u8>,
    /// Log line format; the level comes from LOG_LEVEL or RUST_LOG (default info).
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty)]
    log_format: LogFormat,
}

#[tokio::main]
async fn main() {
    let mut args = Args::parse();
    process::begin(args.log_format, &mut args.nats, static_users::AUTH);
    std::process::exit(run(args).await);
}

async fn run(args: Args) -> i32 {
    let issuer = match std::fs::read_to_string(&args.issuer_seed_file)
        .map_err(|e| e.to_string())
        .and_then(|seed| nkeys::KeyPair::from_seed(seed.trim()).map_err(|e| e.to_string()))
    {
        Ok(issuer) => issuer,
        Err(error) => {
            tracing::error!(file = %args.issuer_seed_file.display(), %error, "cannot read the issuer seed");
            return exit::USAGE;
        }
    };
    let client = match process::connect(&args.nats, "auth-worker").await {
        Ok(client) => client,
        Err(code) => return code,
    };
    let config = Config {
        token_ttl: Duration::from_secs(args.token_ttl),
        resume_ttl: Duration::from_secs(args.resume_ttl),
        register_burst: args.register_burst,
        register_interval: Duration::from_secs(args.register_interval),
        kv_replicas: replicas::choose(&client, args.kv_replicas.map(usize::from), "user table"),
        ..Config::default()
    };
    process::serve(
        AuthWorker::start(client, issuer, config).await,
        |_| exit::UNAVAILABLE,
        AuthWorker::stop,
    )
    .await
}
