//! # chat-bench: the chat against raw NATS, in one run
//!
//! The claim is that this design costs almost nothing on top of NATS itself. This
//! crate measures it: every scenario drives the real code paths (the `chat-client`
//! library, the real `presence-worker` and `history-worker` binaries) and, in the
//! same run and on the same server, raw async-nats of the same shape, and reports
//! both and their ratio next to the targets. `BENCHMARKS.md` at the top of
//! the repository holds the published figures and how to reproduce them.
//!
//! ## A tour
//!
//! - [`options`]: which [`Scenario`]s run and their [`Sizes`] (full and `--quick`).
//! - [`setup`]: the [`Stage`]: nats-server (via `test_support`, or `--nats-url`), the
//!   worker processes, chat sessions connected like the terminal client.
//! - [`processes`]: locating the real binaries and running them as children.
//! - [`procfs`]: memory and CPU of a process from `/proc`.
//! - [`stamp`]: send times carried inside messages, for end-to-end latency.
//! - [`stats`]: percentiles and rates.
//! - [`report`]: rows of figures, the `--json` document and the Markdown table.
//! - [`progress`]: the progress line on stderr.
//! - [`scenarios`]: publish, fan-out, history, footprint, presence.
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
    let stage = Stage::start(
        settings.nats_url.clone(),
        bins,
        settings.sizes.clone(),
        progress.clone(),
    )
    .await?;
    let nats_server = stage
        .raw()
        .await
        .map(|c| format!("nats-server {}", c.server_info().version))?;
    let mut selected = settings.scenarios.clone();
    selected.sort();
    selected.dedup();
    let mut scenarios = BTreeMap::new();
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
        };
        scenarios.insert(scenario, rows);
    }
    progress.phase("cleaning up");
    stage.clean_up().await?;
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
