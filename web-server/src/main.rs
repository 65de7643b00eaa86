//! `chat-web`: serves the browser client (`web/`) over HTTP on loopback.
//!
//! Exit codes: 0 stopped on SIGTERM/Ctrl-C, 1 cannot listen, 2 bad arguments (a folder
//! that is missing, a NATS URL that is not ws:// or wss://).

use std::net::SocketAddr;
use std::path::PathBuf;

use chat_runtime::{self as runtime, exit, LogFormat};
use clap::Parser;

/// Serves the chat's web page; the page then talks to NATS over WebSocket itself.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "CHAT_WEB_HOST", default_value = "127.0.0.1")]
    host: std::net::IpAddr,
    /// Port to listen on (0: any free port, printed at start).
    #[arg(long, env = "CHAT_WEB_PORT", default_value_t = 8000)]
    port: u16,
    /// The folder holding the page (index.html, app.js, vendor/nats.js, ...).
    #[arg(long, env = "CHAT_WEB_ROOT", default_value = "web")]
    root: PathBuf,
    /// nats-server's WebSocket listener, as the browser reaches it (its origin is the
    /// only one besides the page's own that the page may connect to).
    #[arg(long, env = "NATS_WS_URL", default_value = "ws://127.0.0.1:8080")]
    nats_ws_url: String,
    /// Log line format; the level comes from LOG_LEVEL or RUST_LOG (default info).
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty)]
    log_format: LogFormat,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    runtime::init_logging(args.log_format);
    let site = match chat_web::Site::new(&args.root, &args.nats_ws_url) {
        Ok(site) => site,
        Err(error) => {
            eprintln!("chat-web: {error}");
            std::process::exit(exit::USAGE);
        }
    };
    let address = SocketAddr::new(args.host, args.port);
    let listener = match tokio::net::TcpListener::bind(address).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("chat-web: cannot listen on {address}: {error}");
            std::process::exit(exit::FAILURE);
        }
    };
    let address = listener.local_addr().unwrap_or(address);
    tracing::info!(
        %address,
        root = %site.root().display(),
        nats = site.nats_ws_url(),
        "serving the web client at http://{address}/"
    );
    chat_web::serve(listener, site, runtime::shutdown_signal()).await;
    std::process::exit(exit::OK);
}
