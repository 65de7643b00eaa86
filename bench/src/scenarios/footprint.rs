//! Scenario 5, footprint: resident memory and CPU of an idle terminal client (the real
//! `chat-client` binary in line mode, joined to a room where nobody talks) against an
//! idle raw async-nats process subscribed to the same subjects, and of each worker at
//! rest and (measured by the fan-out scenario) under load.
//!
//! The raw process is `chat-bench` itself started with a hidden flag
//! (`--idle-raw-client`): connect (as `@admin`, the user and password passed in
//! [`USER_ENV`] and [`PASSWORD_ENV`]), subscribe, wait for stdin to close. The client
//! logs in as the registered chat user `idle` (`CHAT_PASSWORD`).

use std::ffi::OsStr;
use std::process::Stdio;

use async_nats::Client;
use chat_protocol::subjects;
use futures::StreamExt;
use tokio::io::AsyncReadExt;

use crate::processes::Process;
use crate::report::{Row, Target};
use crate::scenarios::fanout::{UnderLoad, WorkersUnderLoad};
use crate::setup::{log_tail, BenchError, Stage, PATIENCE};

/// The raw process prints this line once subscribed.
pub const READY: &str = "ready";

/// The environment variable giving the idle raw process its NATS user.
pub const USER_ENV: &str = "CHAT_BENCH_RAW_USER";
/// The environment variable giving the idle raw process its NATS password.
pub const PASSWORD_ENV: &str = "CHAT_BENCH_RAW_PASSWORD";

/// Runs the scenario; `under_load` comes from the fan-out scenario, if it ran.
pub async fn run(
    stage: &Stage,
    under_load: Option<WorkersUnderLoad>,
) -> Result<Vec<Row>, BenchError> {
    let room = stage.room("idle")?;
    stage.progress.phase("footprint: starting an idle client");
    stage.register(["idle".to_string()]).await?;
    let password = test_support::password_of("idle");
    let mut client = Process::spawn(
        "chat-client",
        &stage.bins.client,
        &[
            "--nats-url",
            &stage.url,
            "--user",
            "idle",
            "--room",
            room.as_str(),
            "--json",
            "--history",
            "0",
        ],
        &[("CHAT_PASSWORD", OsStr::new(&password))],
        stage.logs.path(),
        (Stdio::piped(), Stdio::piped()),
    )
    .map_err(|e| BenchError::Spawn("chat-client".into(), e))?;
    let bench = std::env::current_exe().map_err(|e| BenchError::Spawn("chat-bench".into(), e))?;
    let mut raw = Process::spawn(
        "idle-raw-client",
        &bench,
        &[
            "--idle-raw-client",
            &stage.url,
            "--idle-subject",
            &subjects::room_all(&room),
        ],
        &[
            (USER_ENV, OsStr::new(&stage.admin().user)),
            (PASSWORD_ENV, OsStr::new(&stage.admin().password)),
        ],
        stage.logs.path(),
        (Stdio::piped(), Stdio::piped()),
    )
    .map_err(|e| BenchError::Spawn("idle raw client".into(), e))?;
    // Holding stdin open keeps both running; their output is drained in the background.
    let _client_stdin = ready(&mut client, |line| {
        serde_json::from_str::<serde_json::Value>(line).is_ok_and(|v| v["event"] == "welcome")
    })
    .await?;
    let _raw_stdin = ready(&mut raw, |line| line == READY).await?;

    stage
        .progress
        .phase(format!("footprint: idle for {} s", stage.sizes.idle_secs));
    let measured = [&client, &raw, &stage.presence, &stage.history];
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let before = measured.map(|p| p.sample());
    tokio::time::sleep(stage.sizes.idle_duration()).await;
    let after = measured.map(|p| p.sample());
    let idle = |i: usize| -> Option<UnderLoad> {
        let (before, after) = (before[i]?, after[i]?);
        Some(UnderLoad {
            rss_mb: after.rss_mb,
            cpu_percent: after.cpu_percent_since(&before),
        })
    };
    let (chat, raw_idle) = (idle(0), idle(1));
    let raw_name = "raw async-nats process, subscribed";
    let mut rows = vec![
        Row::new("idle client resident memory", "MiB", chat.map(|c| c.rss_mb))
            .baseline(raw_name, raw_idle.map(|r| r.rss_mb))
            .target(Target::Below(20.0))
            .note("chat-client --json in one room, nobody talking; VmRSS"),
        Row::new(
            "idle client CPU",
            "% of a core",
            chat.map(|c| c.cpu_percent),
        )
        .baseline(raw_name, raw_idle.map(|r| r.cpu_percent))
        .target(Target::Below(0.5))
        .note(format!(
            "over {} s of silence (heartbeats every {} s)",
            stage.sizes.idle_secs,
            (stage.sizes.presence_ttl_secs / 3).max(1)
        )),
    ];
    let under_load = under_load.unwrap_or_default();
    for (i, name, loaded) in [
        (2, "presence worker", under_load.presence),
        (3, "history worker", under_load.history),
    ] {
        let rest = idle(i);
        rows.push(Row::new(
            format!("{name} at rest: memory"),
            "MiB",
            rest.map(|r| r.rss_mb),
        ));
        rows.push(Row::new(
            format!("{name} at rest: CPU"),
            "% of a core",
            rest.map(|r| r.cpu_percent),
        ));
        let note = "while the chat side of the fan-out ran (peak VmRSS, average CPU)";
        rows.push(
            Row::new(
                format!("{name} under fan-out: memory"),
                "MiB",
                loaded.map(|l| l.rss_mb),
            )
            .note(note),
        );
        rows.push(
            Row::new(
                format!("{name} under fan-out: CPU"),
                "% of a core",
                loaded.map(|l| l.cpu_percent),
            )
            .note(note),
        );
    }
    Ok(rows)
}

/// Waits until `process` prints a line accepted by `is_ready`, then drains the rest
/// of its output in the background. Returns its stdin, to be held open.
async fn ready(
    process: &mut Process,
    is_ready: impl Fn(&str) -> bool,
) -> Result<tokio::process::ChildStdin, BenchError> {
    let name = process.name.clone();
    let log = process.log.clone();
    let (stdin, mut lines) = process
        .pipes()
        .ok_or_else(|| BenchError::Spawn(name.clone(), std::io::Error::other("no pipes")))?;
    let found = tokio::time::timeout(PATIENCE, async {
        while let Ok(Some(line)) = lines.next_line().await {
            if is_ready(line.trim()) {
                return true;
            }
        }
        false
    })
    .await;
    if found != Ok(true) {
        return Err(BenchError::NotReady(name, log_tail(&log)));
    }
    let mut rest = lines.into_inner();
    tokio::spawn(async move {
        let mut sink = Vec::new();
        while rest.read_buf(&mut sink).await.is_ok_and(|n| n > 0) {
            sink.clear();
        }
    });
    Ok(stdin)
}

/// The hidden `--idle-raw-client` mode: a raw async-nats process, subscribed to
/// `subject`, idle until stdin closes. Its footprint is the baseline of the idle client.
pub async fn idle_raw_client(url: &str, subject: &str) -> Result<(), BenchError> {
    let user = std::env::var(USER_ENV).unwrap_or_default();
    let password = std::env::var(PASSWORD_ENV).unwrap_or_default();
    let client: Client = async_nats::ConnectOptions::with_user_and_password(user, password)
        .connect(url)
        .await
        .map_err(BenchError::nats)?;
    let mut subscription = client
        .subscribe(subject.to_string())
        .await
        .map_err(BenchError::nats)?;
    client.flush().await.map_err(BenchError::nats)?;
    println!("{READY}");
    let mut stdin = tokio::io::stdin();
    let mut buf = [0u8; 64];
    loop {
        tokio::select! {
            read = stdin.read(&mut buf) => if read.map_or(true, |n| n == 0) { return Ok(()) },
            message = subscription.next() => if message.is_none() { return Ok(()) },
        }
    }
}
