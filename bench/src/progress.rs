//! The progress line on stderr: which scenario and phase is running, and counters
//! while a phase waits. On a terminal the line is rewritten in place; otherwise (a
//! test, a log file) phases are printed one per line and counters at most every few
//! seconds.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Shared handle to the progress line.
#[derive(Debug, Clone)]
pub struct Progress {
    state: Arc<Mutex<State>>,
    tty: bool,
    started: Instant,
}

#[derive(Debug)]
struct State {
    phase: String,
    printed: Instant,
}

/// How often counters are printed when stderr is not a terminal.
const PLAIN_EVERY: Duration = Duration::from_secs(3);

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress {
    /// A progress line on stderr.
    pub fn new() -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                phase: String::new(),
                printed: Instant::now(),
            })),
            tty: std::io::stderr().is_terminal(),
            started: Instant::now(),
        }
    }

    /// Starts a phase: always shown.
    pub fn phase(&self, phase: impl Into<String>) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.phase = phase.into();
        state.printed = Instant::now();
        self.print(&state.phase);
    }

    /// Shows counters of the current phase (throttled when not on a terminal).
    pub fn update(&self, detail: impl AsRef<str>) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if !self.tty && state.printed.elapsed() < PLAIN_EVERY {
            return;
        }
        state.printed = Instant::now();
        let line = format!("{}: {}", state.phase, detail.as_ref());
        self.print(&line);
    }

    /// Ends the progress line (before the table is printed).
    pub fn finish(&self) {
        if self.tty {
            eprintln!();
        }
    }

    fn print(&self, line: &str) {
        let elapsed = self.started.elapsed().as_secs_f64();
        let mut err = std::io::stderr().lock();
        if self.tty {
            let _ = write!(err, "\r\x1b[K[{elapsed:6.1}s] {line}");
        } else {
            let _ = writeln!(err, "[{elapsed:6.1}s] {line}");
        }
        let _ = err.flush();
    }
}
