//! The real binaries, run as child processes so that `/proc` can measure them: the
//! presence, history and auth workers and the terminal client.
//!
//! They are looked up next to the `chat-bench` executable (the same `target/<profile>`
//! directory, so `cargo build --release -p presence-worker -p history-worker -p
//! auth-worker -p moderation-worker -p chat-client` is all it takes) or in `--bin-dir`.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::procfs::Sample;

/// Raises this process's soft limit of open files to its hard limit, for the bench and
/// the workers it starts (children inherit it), and returns the limit now in force: a
/// run holds a connection per session (1,000 in the presence scenario, the reconnect
/// storm's clients) beyond the usual soft limit of 1,024. nats-server, a Go program,
/// raises its own; its hard limit caps the rooms it holds (one descriptor per recently
/// written room stream, BENCHMARKS.md "Scale of rooms").
pub fn raise_open_files_limit() -> std::io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct they are given.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    Ok(limit.rlim_cur)
}

/// Where the binaries are.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// `presence-worker`.
    pub presence: PathBuf,
    /// `history-worker`.
    pub history: PathBuf,
    /// `auth-worker`.
    pub auth: PathBuf,
    /// `moderation-worker`.
    pub moderation: PathBuf,
    /// `chat-client`.
    pub client: PathBuf,
}

/// Why the binaries could not be found.
#[derive(Debug, thiserror::Error)]
pub enum LocateError {
    /// The directory to look in is unknown.
    #[error("cannot tell where chat-bench runs from: {0}")]
    NoExe(std::io::Error),
    /// A binary is missing.
    #[error(
        "{0} not found; build the binaries of the same profile first, e.g. \
         `cargo build --release -p presence-worker -p history-worker -p auth-worker \
         -p moderation-worker -p chat-client`, \
         or pass --bin-dir"
    )]
    Missing(PathBuf),
}

impl Binaries {
    /// Finds the four binaries in `dir`, or else next to the running executable
    /// (whose `deps/` folder, for a test binary, is looked past).
    pub fn locate(dir: Option<&Path>) -> Result<Self, LocateError> {
        let dir = match dir {
            Some(dir) => dir.to_path_buf(),
            None => {
                let exe = std::env::current_exe().map_err(LocateError::NoExe)?;
                let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
                if dir.ends_with("deps") {
                    dir.pop();
                }
                dir
            }
        };
        let find = |name: &str| {
            let path = dir.join(name);
            if path.is_file() {
                Ok(path)
            } else {
                Err(LocateError::Missing(path))
            }
        };
        Ok(Self {
            presence: find("presence-worker")?,
            history: find("history-worker")?,
            auth: find("auth-worker")?,
            moderation: find("moderation-worker")?,
            client: find("chat-client")?,
        })
    }
}

/// A running child process, killed on drop. Its stderr goes to a log file so that a
/// failing start can be diagnosed.
#[derive(Debug)]
pub struct Process {
    /// What it is, for messages.
    pub name: String,
    child: Child,
    /// Where its stderr goes.
    pub log: PathBuf,
}

impl Process {
    /// Starts `bin` with `args` and the environment variables `env`, logging at `warn`
    /// (unless `env` sets `LOG_LEVEL`) into `log_dir`.
    pub fn spawn(
        name: &str,
        bin: &Path,
        args: &[&str],
        env: &[(&str, &std::ffi::OsStr)],
        log_dir: &Path,
        stdio: (Stdio, Stdio),
    ) -> std::io::Result<Self> {
        let log = log_dir.join(format!("{name}.log"));
        let child = Command::new(bin)
            .args(args)
            .env("LOG_LEVEL", "warn")
            .envs(env.iter().copied())
            .stdin(stdio.0)
            .stdout(stdio.1)
            .stderr(std::fs::File::create(&log)?)
            .kill_on_drop(true)
            .spawn()?;
        Ok(Self {
            name: name.to_string(),
            child,
            log,
        })
    }

    /// Its pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Its memory and CPU now.
    pub fn sample(&self) -> Option<Sample> {
        Sample::of(self.pid()?)
    }

    /// Whether it has exited (then it cannot be measured).
    pub fn exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// Kills it with SIGKILL (a crash, as far as anyone else can tell) and reaps it.
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }

    /// Its stdin and the lines of its stdout, when they were piped.
    pub fn pipes(&mut self) -> Option<(ChildStdin, Lines<BufReader<ChildStdout>>)> {
        let stdin = self.child.stdin.take()?;
        let stdout = self.child.stdout.take()?;
        Some((stdin, BufReader::new(stdout).lines()))
    }
}
