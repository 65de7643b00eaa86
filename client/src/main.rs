//! `chat-client`: parses arguments, sets up logging, picks the UI. Everything else is
//! in the library.

use std::io::IsTerminal;
use std::path::PathBuf;

use chat_client::ui::{self, Settings};
use chat_client::{Chat, Options};
use chat_protocol::runtime::{self, exit, LogFormat};
use chat_protocol::{RoomName, UserName};
use clap::Parser;

/// Chat over NATS JetStream from a terminal (or a script, when stdin is not a terminal).
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Your user name: 1-32 characters of A-Z, a-z, 0-9, '-' and '_'.
    #[arg(long, env = "CHAT_USER", value_parser = parse_user)]
    user: UserName,
    /// The room to join first: 1-64 characters of a-z, 0-9, '-' and '_'.
    #[arg(long, env = "CHAT_ROOM", default_value = "general", value_parser = parse_room)]
    room: RoomName,
    /// NATS server URL.
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
    /// Past messages replayed on join (0 for none).
    #[arg(long, env = "CHAT_HISTORY", default_value_t = 50)]
    history: usize,
    /// Line mode: one JSON object per event.
    #[arg(long)]
    json: bool,
    /// Log file (interactive default: chat-client-<user>.log in the temp dir; line
    /// mode logs to stderr unless this is given).
    #[arg(long, env = "CHAT_LOG_FILE")]
    log_file: Option<PathBuf>,
    /// Seconds quitting waits for acknowledgements (and the echoes of your messages)
    /// before it names what is unconfirmed and exits.
    #[arg(long, env = "CHAT_QUIT_TIMEOUT", default_value_t = 5.0, value_parser = parse_seconds)]
    quit_timeout: f64,
    /// Messages awaiting their acknowledgement at once (1-1000). 1 keeps your order
    /// whatever fails; more is faster for scripts that send a lot, but a server crash
    /// can then store a message after a later one.
    #[arg(long, env = "CHAT_PUBLISH_WINDOW", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=1000))]
    publish_window: u16,
    /// Log line format; the level comes from LOG_LEVEL or RUST_LOG (default info).
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty)]
    log_format: LogFormat,
}

fn parse_user(s: &str) -> Result<UserName, String> {
    UserName::new(s).map_err(|e| e.to_string())
}

fn parse_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(secs) if secs.is_finite() && (0.0..=3600.0).contains(&secs) => Ok(secs),
        _ => Err(format!("{s:?} is not a number of seconds from 0 to 3600")),
    }
}

fn parse_room(s: &str) -> Result<RoomName, String> {
    RoomName::parse_input(s).map_err(|e| e.to_string())
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let interactive = std::io::stdin().is_terminal() && !args.json;
    let log_file = args.log_file.clone().or_else(|| {
        interactive.then(|| std::env::temp_dir().join(format!("chat-client-{}.log", args.user)))
    });
    match &log_file {
        Some(path) => match runtime::log_file(path) {
            Ok(file) => runtime::init_logging_to(args.log_format, file),
            Err(err) => {
                eprintln!("cannot open log file {}: {err}", path.display());
                std::process::exit(exit::FAILURE);
            }
        },
        None => runtime::init_logging(args.log_format),
    }
    let mut options = Options::new(&args.nats_url, args.user.clone());
    options.quit_timeout = std::time::Duration::from_secs_f64(args.quit_timeout);
    options.retry.window = usize::from(args.publish_window);
    let (chat, events) = match Chat::connect(options).await {
        Ok(connected) => connected,
        Err(err) => {
            eprintln!("chat-client: {err}");
            std::process::exit(exit::UNAVAILABLE);
        }
    };
    let settings = Settings {
        room: args.room,
        history: args.history,
        json: args.json,
    };
    let code = if interactive {
        match ui::interactive::run(chat, events, settings).await {
            Ok(code) => code,
            Err(err) => {
                eprintln!("chat-client: {err}");
                exit::FAILURE
            }
        }
    } else {
        ui::lines::run(chat, events, settings).await
    };
    // The line editor's thread may still be blocked reading the terminal.
    std::process::exit(code);
}
