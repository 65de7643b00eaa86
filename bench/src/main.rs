//! `chat-bench`: flags in, figures out. All the work is in the library.

use std::path::PathBuf;

use chat_bench::{options::Scenario, progress::Progress, scenarios, BenchError, Settings, Sizes};
use chat_runtime::{exit, LogFormat};
use clap::Parser;

/// Measures the chat's real client and workers against raw NATS of the same shape, in
/// one run, and prints a Markdown table (and, with --json, every figure as JSON).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Use this NATS server instead of starting one (pinned nats-server, temporary store).
    #[arg(long, env = "CHAT_BENCH_NATS_URL")]
    nats_url: Option<String>,
    /// With --nats-url: the stack's secrets folder (admin.password for the raw
    /// baselines, the workers' password files, issuer.seed for --auth-worker).
    #[arg(long, env = "CHAT_SECRETS_DIR", default_value = ".run/secrets")]
    secrets_dir: PathBuf,
    /// With --nats-url: start an auth worker as well (by default the stack's own
    /// auth worker answers logins). The bench's own server always gets one.
    #[arg(long, env = "CHAT_BENCH_AUTH_WORKER")]
    auth_worker: bool,
    /// Start a local cluster of this many nodes (TLS on every listener, room streams
    /// replicated on three) instead of one server; with --only rooms, whose figures
    /// are then given per node and in total.
    #[arg(long, value_parser = clap::value_parser!(u16).range(2..=5))]
    cluster: Option<u16>,
    /// Small sizes: finishes in well under a minute on 2 cores.
    #[arg(long)]
    quick: bool,
    /// Scenarios to run (comma-separated); all but rooms by default.
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Scenario>,
    /// Write every figure, the sizes and the machine to this JSON file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Where the worker binaries and chat-client are (default: next to chat-bench).
    #[arg(long, env = "CHAT_BENCH_BIN_DIR")]
    bin_dir: Option<PathBuf>,
    /// Publish: messages per side.
    #[arg(long)]
    publish_messages: Option<usize>,
    /// Characters of text per chat message.
    #[arg(long)]
    text_chars: Option<usize>,
    /// Fan-out: rooms.
    #[arg(long)]
    fanout_rooms: Option<usize>,
    /// Fan-out: members per room.
    #[arg(long)]
    fanout_members: Option<usize>,
    /// Fan-out: messages per second, all rooms together.
    #[arg(long)]
    fanout_rate: Option<u64>,
    /// Fan-out: seconds of sending.
    #[arg(long)]
    fanout_secs: Option<f64>,
    /// Presence: sessions (the big room has this many users).
    #[arg(long)]
    presence_sessions: Option<usize>,
    /// Presence: small rooms.
    #[arg(long)]
    presence_rooms: Option<usize>,
    /// Presence: joins in flight at once (default 1,000: all of the default sessions).
    #[arg(long)]
    join_concurrency: Option<usize>,
    /// Presence: /users requests timed.
    #[arg(long)]
    users_requests: Option<usize>,
    /// Presence: sessions crashed and timed until gone.
    #[arg(long)]
    crashed_sessions: Option<usize>,
    /// Presence: the presence worker's session TTL, seconds.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    presence_ttl: Option<u64>,
    /// History: messages in the replayed room.
    #[arg(long)]
    history_messages: Option<usize>,
    /// Footprint: seconds of each idle measurement.
    #[arg(long)]
    idle_secs: Option<f64>,
    /// Login: logins timed (one after the other, then several at once), each kind.
    #[arg(long)]
    logins: Option<usize>,
    /// Login: logins in flight at once for the logins per second.
    #[arg(long)]
    login_concurrency: Option<usize>,
    /// Login: chat sessions connected when the server restarts (reconnect storm).
    #[arg(long)]
    storm_clients: Option<usize>,
    /// Overload: requests sent to each worker per request size.
    #[arg(long)]
    overload_requests: Option<usize>,
    /// Overload: connections sending them.
    #[arg(long)]
    overload_clients: Option<usize>,
    /// Chaos: seconds of faults (nodes and worker instances killed at random).
    #[arg(long)]
    chaos_secs: Option<f64>,
    /// Chaos: members chatting, spread over the three nodes.
    #[arg(long)]
    chaos_members: Option<usize>,
    /// Chaos: members who leave and come back over and over.
    #[arg(long)]
    chaos_churners: Option<usize>,
    /// Chaos: messages per second each member sends.
    #[arg(long)]
    chaos_rate: Option<f64>,
    /// Chaos: the presence workers' session TTL, seconds.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    chaos_ttl: Option<u64>,
    /// Chaos: instances of each worker (auth, presence, history).
    #[arg(long)]
    chaos_instances: Option<usize>,
    /// Flood: seconds the flooder sends.
    #[arg(long)]
    flood_secs: Option<f64>,
    /// Rooms: rooms made (each a stream; run with --only rooms).
    #[arg(long)]
    rooms: Option<usize>,
    /// Rooms: sessions making the rooms at once.
    #[arg(long)]
    rooms_sessions: Option<usize>,
    /// Internal: run as the idle raw async-nats client of the footprint scenario.
    #[arg(long, hide = true)]
    idle_raw_client: Option<String>,
    /// Internal: what the idle raw client subscribes to.
    #[arg(long, hide = true, requires = "idle_raw_client")]
    idle_subject: Option<String>,
}

impl Args {
    fn sizes(&self) -> Sizes {
        let mut s = if self.quick {
            Sizes::quick()
        } else {
            Sizes::full()
        };
        macro_rules! apply {
            ($($field:ident <- $arg:ident),* $(,)?) => {
                $(if let Some(v) = self.$arg { s.$field = v; })*
            };
        }
        apply!(
            publish_messages <- publish_messages,
            text_chars <- text_chars,
            fanout_rooms <- fanout_rooms,
            fanout_members <- fanout_members,
            fanout_rate <- fanout_rate,
            fanout_secs <- fanout_secs,
            presence_sessions <- presence_sessions,
            presence_rooms <- presence_rooms,
            join_concurrency <- join_concurrency,
            users_requests <- users_requests,
            crashed_sessions <- crashed_sessions,
            presence_ttl_secs <- presence_ttl,
            history_messages <- history_messages,
            idle_secs <- idle_secs,
            logins <- logins,
            login_concurrency <- login_concurrency,
            storm_clients <- storm_clients,
            overload_requests <- overload_requests,
            overload_clients <- overload_clients,
            chaos_secs <- chaos_secs,
            chaos_members <- chaos_members,
            chaos_churners <- chaos_churners,
            chaos_rate <- chaos_rate,
            chaos_ttl_secs <- chaos_ttl,
            chaos_instances <- chaos_instances,
            flood_secs <- flood_secs,
            rooms <- rooms,
            rooms_sessions <- rooms_sessions,
        );
        s
    }
}

fn main() {
    let args = Args::parse();
    // The library's info lines (one per connection) would drown the progress line.
    if std::env::var_os("LOG_LEVEL").is_none() && std::env::var_os("RUST_LOG").is_none() {
        std::env::set_var("LOG_LEVEL", "warn");
    }
    chat_runtime::init_logging(LogFormat::Pretty);
    if let Err(err) = chat_bench::processes::raise_open_files_limit() {
        eprintln!(
            "chat-bench: cannot raise the open files limit (sessions may fail beyond it): {err}"
        );
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("chat-bench: cannot start the async runtime: {err}");
            std::process::exit(exit::FAILURE);
        }
    };
    std::process::exit(runtime.block_on(async {
        match &args.idle_raw_client {
            Some(url) => idle(url, args.idle_subject.as_deref().unwrap_or(">")).await,
            None => run(args).await,
        }
    }));
}

async fn idle(url: &str, subject: &str) -> i32 {
    match scenarios::footprint::idle_raw_client(url, subject).await {
        Ok(()) => exit::OK,
        Err(err) => {
            eprintln!("chat-bench: {err}");
            exit::UNAVAILABLE
        }
    }
}

async fn run(args: Args) -> i32 {
    let sizes = args.sizes();
    if sizes.fanout_rooms == 0 || sizes.fanout_members == 0 || sizes.presence_sessions == 0 {
        eprintln!("chat-bench: rooms, members and sessions must be at least 1");
        return exit::USAGE;
    }
    if sizes.chaos_members == 0 || sizes.chaos_instances == 0 || sizes.chaos_rate <= 0.0 {
        eprintln!("chat-bench: chaos members, instances and rate must be above 0");
        return exit::USAGE;
    }
    if args.only.contains(&Scenario::Rooms) && args.only.contains(&Scenario::History) {
        eprintln!("chat-bench: run the rooms scenario without the history scenario: the history room needs a larger byte cap than the rooms' default, and thousands of rooms of that cap do not fit the storage budget (docs/limits.md)");
        return exit::USAGE;
    }
    if args.cluster.is_some() && (args.only != [Scenario::Rooms] || args.nats_url.is_some()) {
        eprintln!("chat-bench: --cluster runs the rooms scenario only (--only rooms), on a cluster of its own (leave out --nats-url); the other scenarios restart or measure a single server");
        return exit::USAGE;
    }
    if args.only.contains(&Scenario::Chaos) && args.nats_url.is_some() {
        eprintln!("chat-bench: the chaos scenario starts its own cluster (it kills its nodes); leave out --nats-url");
        return exit::USAGE;
    }
    let settings = Settings {
        nats_url: args.nats_url.clone(),
        secrets_dir: args.secrets_dir.clone(),
        auth_worker: args.auth_worker,
        cluster: args.cluster.map(usize::from),
        bin_dir: args.bin_dir.clone(),
        scenarios: if args.only.is_empty() {
            Scenario::ALL.to_vec()
        } else {
            args.only.clone()
        },
        sizes,
        quick: args.quick,
    };
    let report = match chat_bench::run(settings, Progress::new()).await {
        Ok(report) => report,
        Err(err) => {
            eprintln!("chat-bench: {err}");
            return match err {
                BenchError::Locate(_) => exit::USAGE,
                _ => exit::FAILURE,
            };
        }
    };
    if let Some(path) = &args.json {
        let written = serde_json::to_vec_pretty(&report)
            .map_err(std::io::Error::other)
            .and_then(|json| std::fs::write(path, json));
        if let Err(err) = written {
            eprintln!("chat-bench: cannot write {}: {err}", path.display());
            return exit::FAILURE;
        }
    }
    let meta = &report.meta;
    println!(
        "{} on {}; load {} before, {} after; {} build, {:.0} s\n",
        meta.nats_server,
        meta.machine,
        meta.load_before,
        meta.load_after,
        if meta.release_build {
            "release"
        } else {
            "debug"
        },
        meta.seconds
    );
    println!("{}", report.markdown());
    exit::OK
}
