//! # chat-bench: the chat against raw NATS, in one run
//!
//! The claim is that this design costs almost nothing on top of NATS itself. This
//! crate measures it: every scenario drives the real code paths (the `chat-client`
//! library, the real `auth-worker`, `presence-worker`, `history-worker` and
//! `moderation-worker` binaries,
//! on the authenticated stack: every connection logs in) and, in the same run and on
//! the same server, raw async-nats of the same shape (logged in as `@admin`), and
//! reports both and their ratio next to the targets. `BENCHMARKS.md` at the top of
//! the repository holds the published figures and how to reproduce them.
//!
//! ## A tour
//!
//! - [`options`]: which [`Scenario`]s run and their [`Sizes`] (full and `--quick`).
//! - [`setup`]: the [`Stage`]: nats-server with its auth callout (via `test_support`:
//!   one server, or a TLS cluster with `--cluster N`; or `--nats-url` and
//!   `--secrets-dir`), the worker processes, chat users registered and sessions
//!   logged in like the terminal client.
//! - [`processes`]: locating the real binaries and running them as children.
//! - [`procfs`]: memory and CPU of a process from `/proc`.
//! - [`stamp`]: send times carried inside messages, for end-to-end latency.
//! - [`stats`]: percentiles and rates.
//! - [`report`]: rows of figures, the `--json` document and the Markdown table.
//! - [`progress`]: the progress line on stderr.
//! - [`scenarios`]: publish, fan-out, history, footprint, presence, login (logins
//!   through the callout, with the password and with a resume token, and the
//!   reconnect storm after a server restart), flood (only when named: a raw flooder against the rate
//!   limit while two members chat), overload (every worker flooded with hostile
//!   requests: its replies and its memory), and, only when named, chaos (a 3-node TLS
//!   cluster whose nodes and workers are killed under traffic: what is lost,
//!   duplicated or reordered) and rooms (what a room, a stream, costs the server).
//!
//! Nothing here asserts a timing: the benchmark reports, people judge.

pub mod options;
pub mod processes;
pub mod procfs;
pub mod progress;
pub mod report;
pub mod scenarios;
pub mod setup;
pub mod stamp;
pub mod stats;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

pub use options::{Scenario, Sizes};
pub use report::Report;
pub use setup::{BenchError, Stage};

use crate::processes::Binaries;
use crate::progress::Progress;
use crate::report::Meta;

/// What one run does.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The server to use; `None` starts one through `test_support`.
    pub nats_url: Option<String>,
    /// With `nats_url`: the stack's secrets folder (`admin.password`, the workers'
    /// password files, `issuer.seed`).
    pub secrets_dir: PathBuf,
    /// With `nats_url`: start an auth worker too (the stack's own answer otherwise).
    pub auth_worker: bool,
    /// Without `nats_url`: start a local TLS cluster of this many nodes instead of one
    /// server (the rooms scenario measures each node).
    pub cluster: Option<usize>,
    /// Where the worker and client binaries are; `None`: next to this executable.
    pub bin_dir: Option<PathBuf>,
    /// The scenarios to run.
    pub scenarios: Vec<Scenario>,
    /// Their sizes.
    pub sizes: Sizes,
    /// Whether `sizes` started from the `--quick` preset.
    pub quick: bool,
}

/// Runs the selected scenarios in order and returns every figure.
pub async fn run(settings: Settings, progress: Progress) -> Result<Report, BenchError> {
    let bins = Binaries::locate(settings.bin_dir.as_deref())?;
    let started_at = chrono::Utc::now();
    let started = Instant::now();
    let load_before = procfs::load_average();
    let mut selected = settings.scenarios.clone();
    selected.sort();
    selected.dedup();
    let mut scenarios = BTreeMap::new();
    let mut nats_server = String::new();
    // The chaos scenario brings its own cluster; the others share one stage.
    let chaos = selected.contains(&Scenario::Chaos);
    selected.retain(|s| *s != Scenario::Chaos);
    if !selected.is_empty() {
        let mut stage = Stage::start(&settings, bins.clone(), progress.clone()).await?;
        nats_server = stage
            .raw()
            .await
            .map(|c| format!("nats-server {}", c.server_info().version))?;
        let mut under_load = None;
        for scenario in selected {
            let rows = match scenario {
                Scenario::Publish => scenarios::publish::run(&stage).await?,
                Scenario::Fanout => {
                    let (rows, load) = scenarios::fanout::run(&stage).await?;
                    under_load = Some(load);
                    rows
                }
                Scenario::History => scenarios::history::run(&stage).await?,
                Scenario::Presence => scenarios::presence::run(&stage).await?,
                Scenario::Footprint => scenarios::footprint::run(&stage, under_load).await?,
                Scenario::Flood => scenarios::flood::run(&stage).await?,
                Scenario::Login => scenarios::login::run(&mut stage).await?,
                Scenario::Overload => scenarios::overload::run(&stage).await?,
                Scenario::Rooms => scenarios::rooms::run(&mut stage).await?,
                Scenario::Chaos => unreachable!("run apart below"),
            };
            scenarios.insert(scenario, rows);
        }
        progress.phase("cleaning up");
        stage.clean_up().await?;
    }
    if chaos {
        let (rows, version) = scenarios::chaos::run(&bins, &settings.sizes, &progress).await?;
        nats_server = format!("nats-server {version}");
        scenarios.insert(Scenario::Chaos, rows);
    }
    progress.finish();
    Ok(Report {
        meta: Meta {
            started: chat_protocol::body::rfc3339::format(&started_at),
            seconds: started.elapsed().as_secs_f64(),
            nats_server,
            machine: procfs::machine(),
            load_before,
            load_after: procfs::load_average(),
            release_build: !cfg!(debug_assertions),
            quick: settings.quick,
            sizes: settings.sizes,
        },
        scenarios,
    })
}
