//! `chat-admin`: set up and check a chat server.
//!
//! - `chat-admin init`: makes the secrets (first start only) and renders the server
//!   configuration into the run folder.
//! - `chat-admin ready`: waits until nats-server and every worker answer.
//!
//! Exit codes: 0 done, 1 failed (the message says what), 2 bad arguments, 69 the stack
//! did not become ready in time.

use std::path::PathBuf;
use std::time::Duration;

use chat_admin::config::{self, ServerConfig};
use chat_admin::secrets::Secrets;
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
        /// JetStream store (default: <run-dir>/data/jetstream).
        #[arg(long, env = "NATS_STORE_DIR")]
        store_dir: Option<PathBuf>,
    },
    /// Waits until nats-server accepts logins and every worker answers $SRV.PING.
    Ready {
        /// NATS server URL.
        #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
        nats_url: String,
        /// Seconds to wait.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
        /// Services that must answer.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "chat-presence,chat-history"
        )]
        services: Vec<String>,
    },
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
            store_dir,
        } => {
            let run_dir = std::path::absolute(&args.run_dir).unwrap_or(args.run_dir.clone());
            let mut server = ServerConfig::local(&run_dir, port, monitor_port, ws_port);
            server.host = host;
            if let Some(store_dir) = store_dir {
                server.store_dir = store_dir;
            }
            let path = args.run_dir.join("nats-server.conf");
            match server
                .render(&secrets)
                .map_err(|e| e.to_string())
                .and_then(|text| config::write(&path, &text).map_err(|e| e.to_string()))
            {
                Ok(()) => {
                    println!("{}", path.display());
                    exit::OK
                }
                Err(error) => {
                    eprintln!("chat-admin: cannot write {}: {error}", path.display());
                    exit::FAILURE
                }
            }
        }
        Command::Ready {
            nats_url,
            timeout,
            services,
        } => {
            let services: Vec<&str> = services.iter().map(String::as_str).collect();
            let timeout = Duration::from_secs(timeout);
            match chat_admin::ready::wait(&nats_url, &secrets, &services, timeout).await {
                Ok(()) => exit::OK,
                Err(error) => {
                    eprintln!("chat-admin: the chat stack is {error}");
                    exit::UNAVAILABLE
                }
            }
        }
    };
    std::process::exit(code);
}
