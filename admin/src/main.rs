//! `chat-admin`: set up and check a chat server.
//!
//! - `chat-admin init`: makes the secrets (first start only) and renders the server
//!   configuration into the run folder: `nats-server.conf`, or with `--cluster N`
//!   `nats-1.conf` ... `nats-N.conf` for N nodes on this machine (or, with `--node I`,
//!   the `nats-server.conf` of node I of a cluster on several machines); with `--tls`
//!   also a local CA and certificate in `tls/` (first start only).
//! - `chat-admin ready`: waits until nats-server and every worker answer.
//! - `chat-admin role USER ROLE`: grants a role (user, moderator, admin), as `@admin`.
//!
//! Exit codes: 0 done, 1 failed (the message says what), 2 bad arguments, 69 the stack
//! did not become ready in time (or no moderation worker answered `role`).

use std::path::PathBuf;
use std::time::Duration;

use chat_admin::config::{self, Cluster, ServerConfig};
use chat_admin::secrets::Secrets;
use chat_admin::tls;
use chat_runtime::{exit, LogFormat};
use clap::{Parser, Subcommand};

/// Sets up and checks a chat server (keys, passwords, configuration, readiness).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The run folder: secrets in `secrets/`, the configuration, the store.
    #[arg(long, env = "CHAT_RUN_DIR", default_value = ".run", global = true)]
    run_dir: PathBuf,
    /// Log line format; the level comes from LOG_LEVEL or RUST_LOG (default info).
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Makes missing secrets (mode 0600) and writes <run-dir>/nats-server.conf.
    Init {
        /// Interface the server listens on.
        #[arg(long, env = "NATS_HOST", default_value = "127.0.0.1")]
        host: String,
        /// Client port.
        #[arg(long, env = "NATS_PORT", default_value_t = 4222)]
        port: i32,
        /// Monitoring port (/healthz).
        #[arg(long, env = "NATS_MONITOR_PORT", default_value_t = 8222)]
        monitor_port: i32,
        /// WebSocket port (browser clients).
        #[arg(long, env = "NATS_WS_PORT", default_value_t = 8080)]
        ws_port: i32,
        /// Port the web page is served on (its origin may open the WebSocket).
        #[arg(long, env = "CHAT_WEB_PORT", default_value_t = 8000)]
        web_port: u16,
        /// JetStream store (default: <run-dir>/data/jetstream; for nodes on this
        /// machine <run-dir>/data/nats-<n>/jetstream).
        #[arg(long, env = "NATS_STORE_DIR")]
        store_dir: Option<PathBuf>,
        /// JetStream fsync: a duration such as `2m` (nats-server's default), or `always`
        /// to fsync every message before acknowledging it (docs/durability.md).
        #[arg(long, env = "NATS_SYNC_INTERVAL", default_value = "2m", value_parser = parse_sync_interval)]
        sync_interval: String,
        /// TLS on every listener, with a local CA and certificate made in <run-dir>/tls
        /// on first use (clients then need NATS_CA=<run-dir>/tls/ca.pem).
        #[arg(long, env = "NATS_TLS")]
        tls: bool,
        /// More names (host names or addresses) the certificate is valid for, besides
        /// localhost and loopback: the machines of a cluster. Only used when it is made.
        #[arg(long, value_delimiter = ',')]
        tls_name: Vec<String>,
        /// Nodes of a cluster (3 or more for replication). Without --node: that many
        /// nodes on this machine, on the base ports plus 0, 1, 2, ...
        #[arg(long, env = "NATS_CLUSTER", value_parser = clap::value_parser!(u16).range(2..=32))]
        cluster: Option<u16>,
        /// With --cluster, for a cluster on several machines: render only this node
        /// (1-based) into nats-server.conf, on the base ports, routing to --routes.
        #[arg(long, requires = "cluster", requires = "routes")]
        node: Option<u16>,
        /// Route port (nodes on this machine: plus 0, 1, 2, ...).
        #[arg(long, env = "NATS_ROUTE_PORT", default_value_t = 6222)]
        route_port: i32,
        /// With --node: every node's route address, host:port, comma-separated.
        #[arg(long, value_delimiter = ',', value_parser = parse_route)]
        routes: Vec<String>,
    },
    /// Waits until nats-server accepts logins and every worker answers $SRV.PING.
    Ready {
        /// NATS server URL(s), comma-separated: every one must answer.
        #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
        nats_url: String,
        /// CA certificate (PEM) the servers' TLS certificates must be signed by.
        #[arg(long = "tls-ca", env = "NATS_CA")]
        tls_ca: Option<PathBuf>,
        /// Seconds to wait.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
        /// Services that must answer.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "chat-presence,chat-history,chat-moderation"
        )]
        services: Vec<String>,
    },
    /// Grants USER a role: user, moderator or admin (as @admin, through the
    /// moderation worker).
    Role {
        /// The chat user.
        #[arg(value_parser = parse_user)]
        user: chat_protocol::UserName,
        /// user, moderator or admin.
        role: chat_protocol::body::Role,
        /// NATS server URL(s), comma-separated.
        #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
        nats_url: String,
        /// CA certificate (PEM) the servers' TLS certificates must be signed by.
        #[arg(long = "tls-ca", env = "NATS_CA")]
        tls_ca: Option<PathBuf>,
    },
}

fn parse_user(s: &str) -> Result<chat_protocol::UserName, String> {
    chat_protocol::UserName::new(s).map_err(|e| e.to_string())
}

fn parse_sync_interval(s: &str) -> Result<String, String> {
    let digits = s.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &s[digits.len()..];
    if s == "always"
        || (!digits.is_empty()
            && digits.chars().all(|c| c.is_ascii_digit())
            && ["ms", "s", "m", "h"].contains(&unit))
    {
        Ok(s.to_string())
    } else {
        Err(format!(
            "{s:?} is not `always` or a duration such as 100ms, 10s, 2m, 1h"
        ))
    }
}

fn parse_route(s: &str) -> Result<String, String> {
    let valid = s.rsplit_once(':').is_some_and(|(host, port)| {
        !host.is_empty()
            && port.parse::<u16>().is_ok()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-".contains(c))
    });
    match valid {
        true => Ok(s.to_string()),
        false => Err(format!(
            "{s:?} is not host:port (e.g. nats-2.example.org:6222)"
        )),
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if std::env::var_os("LOG_LEVEL").is_none() && std::env::var_os("RUST_LOG").is_none() {
        // A tool's own messages say what matters; the NATS client's chatter is noise.
        std::env::set_var("LOG_LEVEL", "warn");
    }
    chat_runtime::init_logging(args.log_format);
    let secrets = match Secrets::load_or_create(&args.run_dir.join("secrets")) {
        Ok(secrets) => secrets,
        Err(error) => {
            eprintln!("chat-admin: cannot make or read the secrets: {error}");
            std::process::exit(exit::FAILURE);
        }
    };
    let code = match args.command {
        Command::Init {
            host,
            port,
            monitor_port,
            ws_port,
            web_port,
            store_dir,
            sync_interval,
            tls,
            tls_name,
            cluster,
            node,
            route_port,
            routes,
        } => {
            let run_dir = std::path::absolute(&args.run_dir).unwrap_or(args.run_dir.clone());
            let mut server = ServerConfig::local(&run_dir, port, monitor_port, ws_port);
            server.host = host;
            server.web_port = web_port;
            server.sync_interval = sync_interval;
            if tls {
                match tls::load_or_create(&run_dir.join("tls"), &tls_name) {
                    Ok(files) => server.tls = Some(files),
                    Err(error) => {
                        eprintln!("chat-admin: cannot make the TLS certificates: {error}");
                        std::process::exit(exit::FAILURE);
                    }
                }
            }
            let configs = match (cluster, node) {
                (None, _) => vec![("nats-server.conf".to_string(), server)],
                (Some(nodes), None) => (1..=nodes as usize)
                    .map(|n| {
                        let node = ServerConfig::local_node(
                            &server,
                            &run_dir,
                            nodes.into(),
                            n,
                            route_port,
                        );
                        (format!("nats-{n}.conf"), node)
                    })
                    .collect(),
                (Some(_), Some(n)) => {
                    server.server_name = format!("chat-nats-{n}");
                    server.cluster = Some(Cluster {
                        name: "chat".into(),
                        route_port,
                        routes,
                    });
                    vec![("nats-server.conf".to_string(), server)]
                }
            };
            let mut code = exit::OK;
            for (file, mut server) in configs {
                if let Some(store_dir) = &store_dir {
                    server.store_dir = store_dir.clone();
                }
                let path = args.run_dir.join(file);
                match server
                    .render(&secrets)
                    .map_err(|e| e.to_string())
                    .and_then(|text| config::write(&path, &text).map_err(|e| e.to_string()))
                {
                    Ok(()) => println!("{}", path.display()),
                    Err(error) => {
                        eprintln!("chat-admin: cannot write {}: {error}", path.display());
                        code = exit::FAILURE;
                    }
                }
            }
            code
        }
        Command::Ready {
            nats_url,
            tls_ca,
            timeout,
            services,
        } => {
            let services: Vec<&str> = services.iter().map(String::as_str).collect();
            let timeout = Duration::from_secs(timeout);
            let ca = tls_ca.as_deref();
            let servers = chat_runtime::servers::list(&nats_url);
            let mut result = Ok(());
            for url in &servers {
                result = chat_admin::ready::wait(url, ca, &secrets, &services, timeout).await;
                if result.is_err() {
                    break;
                }
            }
            match result {
                Ok(()) => exit::OK,
                Err(error) => {
                    eprintln!("chat-admin: the chat stack is {error}");
                    exit::UNAVAILABLE
                }
            }
        }
        Command::Role {
            user,
            role,
            nats_url,
            tls_ca,
        } => {
            let ca = tls_ca.as_deref();
            match chat_admin::role::grant(&nats_url, ca, &secrets, &user, role).await {
                Ok(_) => {
                    eprintln!("{user} is now a {role}");
                    exit::OK
                }
                Err(error @ chat_admin::role::RoleError::NoAnswer(_)) => {
                    eprintln!("chat-admin: {error}");
                    exit::UNAVAILABLE
                }
                Err(error) => {
                    eprintln!("chat-admin: {error}");
                    exit::FAILURE
                }
            }
        }
    };
    std::process::exit(code);
}
