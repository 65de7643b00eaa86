//! `presence-worker`: the presence service as a process.
//!
//! Parses flags (with environment fallbacks), sets up logging, connects, serves until
//! SIGTERM or Ctrl-C, then stops gracefully (finishing the requests in flight). Exit
//! codes: 0 after a normal stop, 2 for bad arguments, 69 when NATS cannot be reached
//! at start or the worker cannot start, 77 when it refuses the login, 78 when the
//! server's TLS certificate cannot be verified (`--tls-ca`).

use std::time::Duration;

use chat_protocol::auth::static_users;
use chat_runtime::replicas;
use chat_runtime::storage::RoomStreamSettings;
use chat_runtime::{exit, process, LogFormat, NatsArgs};
use clap::Parser;
use presence_worker::{Config, PresenceWorker, StartError};

/// Keeps who is online in the chat_presence bucket and announces joined/left.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    nats: NatsArgs,
    /// Seconds a session stays online without a heartbeat.
    #[arg(long, env = "PRESENCE_TTL", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    ttl: u64,
    /// Log line format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty)]
    log_format: LogFormat,
    /// Replicas of the room streams it creates; default: 1 on a single server, 3 on a
    /// cluster.
    #[arg(long, env = "STREAM_REPLICAS", value_parser = clap::value_parser!(u8).range(1..=5))]
    stream_replicas: Option<u8>,
    /// Oldest message a room stream keeps, in seconds; 0 keeps them forever.
    #[arg(long, env = "STREAM_MAX_AGE", default_value_t = 0)]
    stream_max_age: u64,
    /// Most messages a room stream keeps; -1 for no limit.
    #[arg(long, env = "STREAM_MAX_MSGS", default_value_t = -1, allow_negative_numbers = true)]
    stream_max_msgs: i64,
    /// Most bytes a room stream keeps (the oldest are discarded beyond); each room's
    /// cap is reserved in the CHAT account's storage budget (docs/limits.md).
    #[arg(long, env = "STREAM_MAX_BYTES", default_value_t = RoomStreamSettings::default().max_bytes,
          value_parser = clap::value_parser!(i64).range(i64::from(chat_protocol::streams::MAX_MESSAGE_BYTES)..))]
    stream_max_bytes: i64,
    /// Replicas of the presence buckets; default: 1 on a single server, 3 on a cluster.
    #[arg(long, env = "KV_REPLICAS", value_parser = clap::value_parser!(u8).range(1..=5))]
    kv_replicas: Option<u8>,
    /// Shortest time between two joined/left events of one room, in milliseconds:
    /// arrivals within it share one event (0: only those arriving while the previous
    /// event is being stored). At most 1000: a join's reply waits up to this long, and
    /// clients give up on a request after 3 s.
    #[arg(long, env = "PRESENCE_EVENT_GAP_MS", default_value_t = 100, value_parser = clap::value_parser!(u64).range(0..=1_000))]
    event_gap_ms: u64,
    /// Requests one instance serves at once (256 more wait; beyond, 503 busy). A join
    /// holds its slot until its room's next event is stored, so this bounds how many
    /// joins one instance gathers per gap.
    #[arg(long, env = "PRESENCE_CONCURRENCY", default_value_t = Config::default().max_concurrent_requests as u64,
          value_parser = clap::value_parser!(u64).range(1..=65_536))]
    concurrency: u64,
}

#[tokio::main]
async fn main() {
    let mut args = Args::parse();
    process::begin(args.log_format, &mut args.nats, static_users::PRESENCE);
    std::process::exit(run(args).await);
}

async fn run(args: Args) -> i32 {
    let client = match process::connect(&args.nats, "presence-worker").await {
        Ok(client) => client,
        Err(code) => return code,
    };
    let config = Config {
        ttl: Duration::from_secs(args.ttl),
        streams: RoomStreamSettings {
            replicas: replicas::choose(
                &client,
                args.stream_replicas.map(usize::from),
                "room streams",
            ),
            max_age: Duration::from_secs(args.stream_max_age),
            max_messages: args.stream_max_msgs,
            max_bytes: args.stream_max_bytes,
            ..RoomStreamSettings::default()
        },
        kv_replicas: replicas::choose(
            &client,
            args.kv_replicas.map(usize::from),
            "presence buckets",
        ),
        event_gap: Duration::from_millis(args.event_gap_ms),
        max_concurrent_requests: args.concurrency as usize,
        ..Config::default()
    };
    process::serve(
        PresenceWorker::start(client, config).await,
        |error| match error {
            StartError::Config(_) => exit::USAGE,
            _ => exit::UNAVAILABLE,
        },
        PresenceWorker::stop,
    )
    .await
}
