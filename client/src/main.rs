//! `chat-client`: parses arguments, sets up logging, logs in, picks the UI. Everything
//! else is in the library.
//!
//! - `chat-client --user NAME`: chat (the password from `CHAT_PASSWORD`, else asked
//!   without echo on a terminal, else the first line of stdin). On a terminal, a login
//!   refused for a name offers to register it.
//! - `chat-client register --user NAME`: create an account (the password asked twice).
//! - `chat-client passwd --user NAME`: change the password (`CHAT_NEW_PASSWORD`).
//!
//! Exit codes: 0 normal end, 1 a message could not be confirmed or an account request
//! was refused, 2 bad arguments, 69 NATS unreachable, 77 login refused (a ban says
//! until when) or the session ended by a moderator (kicked, banned), 78 the
//! server's TLS certificate cannot be verified (see --tls-ca).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use chat_client::login::{self, AccountError};
use chat_client::ui::{self, Settings};
use chat_client::{Chat, ConnectError, Event, Options};
use chat_protocol::{RoomName, UserName};
use chat_runtime::{exit, LogFormat};
use clap::{Parser, Subcommand};
use tokio::sync::mpsc;

/// Chat over NATS JetStream from a terminal (or a script, when stdin is not a terminal).
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Your user name: 1-32 characters of A-Z, a-z, 0-9, '-' and '_'.
    #[arg(long, env = "CHAT_USER", value_parser = parse_user, global = true)]
    user: Option<UserName>,
    /// The room to join first: 1-64 characters of a-z, 0-9, '-' and '_'.
    #[arg(long, env = "CHAT_ROOM", default_value = "general", value_parser = parse_room)]
    room: RoomName,
    /// NATS server URL.
    #[arg(
        long,
        env = "NATS_URL",
        default_value = "nats://127.0.0.1:4222",
        global = true
    )]
    nats_url: String,
    /// CA certificate (PEM) the server's TLS certificate must be signed by (then TLS is
    /// required); default: the system's root certificates, for tls:// URLs.
    #[arg(long = "tls-ca", env = "NATS_CA", global = true)]
    tls_ca: Option<PathBuf>,
    /// Past messages replayed on join (0 for none).
    #[arg(long, env = "CHAT_HISTORY", default_value_t = 50)]
    history: usize,
    /// Line mode: one JSON object per event.
    #[arg(long)]
    json: bool,
    /// On a terminal, the plain line editor instead of the full-screen UI (for
    /// screen readers and simple terminals).
    #[arg(long, env = "CHAT_PLAIN")]
    plain: bool,
    /// Log file (interactive default: chat-client-<user>.log in the temp dir; line
    /// mode logs to stderr unless this is given).
    #[arg(long, env = "CHAT_LOG_FILE", global = true)]
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
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Option<Account>,
}

/// Account commands (without one: chat).
#[derive(Debug, Subcommand)]
enum Account {
    /// Create an account: the password comes from CHAT_PASSWORD, else is asked twice
    /// without echo, else is the first line of stdin.
    Register,
    /// Change the password: the current one from CHAT_PASSWORD and the new one from
    /// CHAT_NEW_PASSWORD, else asked without echo, else the first two lines of stdin.
    Passwd,
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

/// How long account requests wait for the auth worker.
const ACCOUNT_TIMEOUT: Duration = Duration::from_secs(10);

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let Some(user) = args.user.clone() else {
        eprintln!("chat-client: --user NAME (or CHAT_USER) is required");
        std::process::exit(exit::USAGE);
    };
    let terminal = std::io::stdin().is_terminal();
    let interactive = terminal && !args.json && args.command.is_none();
    if args.command.is_some()
        && std::env::var_os("LOG_LEVEL").is_none()
        && std::env::var_os("RUST_LOG").is_none()
    {
        // An account command says what happened itself; the NATS client's connection
        // chatter (a refused login is an error to async-nats) would only blur it.
        std::env::set_var("LOG_LEVEL", "warn,async_nats=off");
    }
    let log_file = args.log_file.clone().or_else(|| {
        interactive.then(|| std::env::temp_dir().join(format!("chat-client-{user}.log")))
    });
    match &log_file {
        Some(path) => match chat_runtime::log_file(path) {
            Ok(file) => chat_runtime::init_logging_to(args.log_format, file),
            Err(err) => {
                eprintln!("cannot open log file {}: {err}", path.display());
                std::process::exit(exit::FAILURE);
            }
        },
        None => chat_runtime::init_logging(args.log_format),
    }
    let code = match args.command {
        Some(Account::Register) => register(&args, &user, terminal).await,
        Some(Account::Passwd) => passwd(&args, &user, terminal).await,
        None => chat(args, user, interactive, terminal).await,
    };
    // The line editor's thread may still be blocked reading the terminal.
    std::process::exit(code);
}

async fn chat(args: Args, user: UserName, interactive: bool, terminal: bool) -> i32 {
    let password = match password(terminal, "password: ") {
        Ok(password) => password,
        Err(code) => return code,
    };
    let mut options = Options::new(&args.nats_url, user.clone(), password);
    options.tls_ca = args.tls_ca.clone();
    options.quit_timeout = std::time::Duration::from_secs_f64(args.quit_timeout);
    options.retry.window = usize::from(args.publish_window);
    let (chat, events) = match connect(options, interactive).await {
        Ok(connected) => connected,
        Err(code) => return code,
    };
    let settings = Settings {
        room: args.room,
        history: args.history,
        json: args.json,
    };
    let refused = chat.clone();
    let ended = chat.clone();
    let run = async {
        if interactive && !args.plain && std::io::stdout().is_terminal() {
            match ui::tui::run(chat, events, settings).await {
                Ok(code) => code,
                Err(err) => {
                    eprintln!("chat-client: cannot start the full-screen UI: {err} (try --plain)");
                    exit::FAILURE
                }
            }
        } else if interactive {
            match ui::interactive::run(chat, events, settings).await {
                Ok(code) => code,
                Err(err) => {
                    eprintln!("chat-client: {err}");
                    exit::FAILURE
                }
            }
        } else {
            ui::lines::run(chat, events, settings).await
        }
    };
    tokio::select! {
        code = run => code,
        // Kicked or banned by a moderator: said, and ended, rather than reconnecting.
        why = ended.ended() => {
            eprintln!("chat-client: {why}");
            exit::NOPERM
        }
        _ = refused.login_refused() => {
            eprintln!(
                "chat-client: the server keeps refusing the login for {user} \
                 (password changed elsewhere, or the account is closed); giving up"
            );
            exit::NOPERM
        }
    }
}

/// Logs in; on a terminal, a refused login offers to register the name.
async fn connect(
    options: Options,
    interactive: bool,
) -> Result<(Chat, mpsc::Receiver<Event>), i32> {
    let (url, user) = (options.url.clone(), options.user.clone());
    match Chat::connect(options.clone()).await {
        Ok(connected) => Ok(connected),
        Err(err @ ConnectError::Refused { .. }) if interactive => {
            eprintln!("chat-client: {err}");
            if !confirm(&format!("Register {user} as a new user? [y/N] ")) {
                return Err(exit::NOPERM);
            }
            let password = login::ask_new_password(&user).map_err(|e| {
                eprintln!("chat-client: cannot read the password: {e}");
                exit::FAILURE
            })?;
            let ca = options.tls_ca.as_deref();
            account_result(
                login::register_trusting(&url, ca, user.as_str(), &password, ACCOUNT_TIMEOUT).await,
            )?;
            eprintln!("registered {user}");
            Chat::connect(Options {
                password,
                ..options
            })
            .await
            .map_err(connect_failed)
        }
        Err(err) => Err(connect_failed(err)),
    }
}

fn connect_failed(err: ConnectError) -> i32 {
    eprintln!("chat-client: {err}");
    match err {
        ConnectError::Refused { .. } | ConnectError::Banned { .. } => exit::NOPERM,
        ConnectError::Untrusted(_) => exit::CONFIG,
        ConnectError::Unreachable { .. } | ConnectError::AuthUnavailable { .. } => {
            exit::UNAVAILABLE
        }
    }
}

async fn register(args: &Args, user: &UserName, terminal: bool) -> i32 {
    let (url, ca) = (&args.nats_url, args.tls_ca.as_deref());
    let password = match new_password(user, "CHAT_PASSWORD", terminal) {
        Ok(password) => password,
        Err(code) => return code,
    };
    match account_result(
        login::register_trusting(url, ca, user.as_str(), &password, ACCOUNT_TIMEOUT).await,
    ) {
        Ok(user) => {
            println!("registered {user}; chat with: chat-client --user {user}");
            exit::OK
        }
        Err(code) => code,
    }
}

async fn passwd(args: &Args, user: &UserName, terminal: bool) -> i32 {
    let old = match password(terminal, "current password: ") {
        Ok(password) => password,
        Err(code) => return code,
    };
    let new = match new_password(user, "CHAT_NEW_PASSWORD", terminal) {
        Ok(password) => password,
        Err(code) => return code,
    };
    let mut options = Options::new(&args.nats_url, user.clone(), old.clone());
    options.tls_ca = args.tls_ca.clone();
    let (chat, _events) = match Chat::connect(options).await {
        Ok(connected) => connected,
        Err(err) => return connect_failed(err),
    };
    match account_result(chat.change_password(&old, &new).await) {
        Ok(()) => {
            println!("password changed for {user}");
            exit::OK
        }
        Err(code) => code,
    }
}

/// Prints an account request's failure; the exit code: 2 for what the rules refuse
/// before sending, 69 for NATS unreachable, 1 for a refusal by the auth service.
fn account_result<T>(result: Result<T, AccountError>) -> Result<T, i32> {
    result.map_err(|err| {
        eprintln!("chat-client: {err}");
        match err {
            AccountError::Invalid(_) => exit::USAGE,
            AccountError::Unreachable { .. } => exit::UNAVAILABLE,
            AccountError::Request(_) => exit::FAILURE,
        }
    })
}

/// The login password: `CHAT_PASSWORD`, else asked without echo on a terminal, else
/// the first line of stdin.
fn password(terminal: bool, prompt: &str) -> Result<String, i32> {
    if let Ok(password) = std::env::var("CHAT_PASSWORD") {
        return Ok(password);
    }
    if terminal {
        return rpassword::prompt_password(prompt).map_err(|e| {
            eprintln!("chat-client: cannot read the password: {e}");
            exit::FAILURE
        });
    }
    stdin_line()
}

/// A new password: from the environment variable `var`, else asked twice without echo
/// on a terminal (until it meets the rules), else the next line of stdin.
fn new_password(user: &UserName, var: &str, terminal: bool) -> Result<String, i32> {
    if let Ok(password) = std::env::var(var) {
        return Ok(password);
    }
    if terminal {
        return login::ask_new_password(user).map_err(|e| {
            eprintln!("chat-client: cannot read the password: {e}");
            exit::FAILURE
        });
    }
    stdin_line()
}

/// One line of stdin, without its line end. std's stdin buffer is shared with the
/// tokio stdin that line mode reads next, so nothing after this line is lost.
fn stdin_line() -> Result<String, i32> {
    let mut line = String::new();
    match std::io::stdin().read_line(&mut line) {
        Ok(0) => {
            eprintln!(
                "chat-client: no password: set CHAT_PASSWORD or give it as the first input line"
            );
            Err(exit::USAGE)
        }
        Ok(_) => Ok(line.trim_end_matches(['\n', '\r']).to_string()),
        Err(e) => {
            eprintln!("chat-client: cannot read the password from stdin: {e}");
            Err(exit::USAGE)
        }
    }
}

fn confirm(question: &str) -> bool {
    use std::io::Write;
    eprint!("{question}");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer).is_ok()
        && matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}
