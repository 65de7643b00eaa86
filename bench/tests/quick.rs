//! `chat-bench --quick` keeps working: it runs every scenario against its own
//! authenticated stack (nats-server with its auth callout) and the real worker and
//! client binaries, and writes a JSON document
//! with every scenario's figures. Timings are never asserted; only that each figure
//! was measured, and that the chat lost nothing.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

const SCENARIOS: [&str; 7] = [
    "publish",
    "fanout",
    "history",
    "presence",
    "footprint",
    "login",
    "overload",
];

/// Builds the binaries the bench drives, in the profile of this test, so that the
/// bench never measures stale ones (a no-op when they are fresh).
fn build_binaries(bench: &Path) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target_dir = bench
        .parent()
        .and_then(Path::parent)
        .expect("chat-bench lives in target/<profile>/");
    let mut build = Command::new(cargo);
    build
        .args([
            "build",
            "-p",
            "presence-worker",
            "-p",
            "history-worker",
            "-p",
            "auth-worker",
            "-p",
            "moderation-worker",
            "-p",
            "chat-client",
        ])
        .env("CARGO_TARGET_DIR", target_dir);
    // What cargo sets for this test (package name, manifest dir, ...) would look like
    // changed build-script inputs to the nested build and rebuild half the tree.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        let inherited = name.starts_with("CARGO_") || name.starts_with("__CARGO");
        if inherited && name != "CARGO_HOME" && name != "CARGO_TARGET_DIR" {
            build.env_remove(name.as_ref());
        }
    }
    if !cfg!(debug_assertions) {
        build.arg("--release");
    }
    let status = build.status().expect("run cargo build");
    assert!(
        status.success(),
        "building the worker and client binaries failed"
    );
}

/// One run of the bench at a time: each is heavy for a small machine.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn quick_run_reports_every_scenario() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let bench = Path::new(env!("CARGO_BIN_EXE_chat-bench"));
    build_binaries(bench);
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("figures.json");
    let output = Command::new(bench)
        .args(["--quick", "--json"])
        .arg(&json)
        // Smaller still than --quick: this test runs in debug builds on busy machines.
        .args([
            "--fanout-secs",
            "1",
            "--history-messages",
            "1000",
            "--idle-secs",
            "1",
        ])
        .args(["--presence-sessions", "20", "--crashed-sessions", "5"])
        .args(["--logins", "10", "--storm-clients", "30"])
        .output()
        .expect("run chat-bench");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "chat-bench failed:\n{stderr}");
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(
        table.contains("| scenario | figure |"),
        "no table:\n{table}"
    );

    let report: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["meta"]["quick"], true);
    assert!(report["meta"]["nats_server"]
        .as_str()
        .unwrap()
        .starts_with("nats-server"));
    for scenario in SCENARIOS {
        let rows = report["scenarios"][scenario]
            .as_array()
            .unwrap_or_else(|| panic!("no {scenario} figures in {report:#}"));
        assert!(!rows.is_empty(), "{scenario} has no figures");
        for row in rows {
            assert!(
                row["chat"].as_f64().is_some_and(f64::is_finite),
                "{scenario}: {row} was not measured"
            );
            if row["baseline_name"].is_string() {
                assert!(
                    row["baseline"].as_f64().is_some_and(f64::is_finite),
                    "{scenario}: the baseline of {row} was not measured"
                );
            }
        }
        // The chat loses nothing, whatever the timings.
        for row in rows.iter().filter(|row| {
            let figure = row["figure"].as_str().unwrap_or_default();
            figure == "chat: deliveries missing"
                || figure == "replayed messages missing"
                || figure == "joiners a member missed"
                || figure == "joiners a member saw twice"
        }) {
            assert_eq!(row["chat"], 0.0, "{scenario}: {row}");
        }
    }
}

/// Runs chat-bench with `args` (one scenario, `scenario`, named in them) and returns
/// that scenario's figure of each row that has one, by figure name.
fn figures_of(scenario: &str, args: &[&str]) -> std::collections::BTreeMap<String, f64> {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let bench = Path::new(env!("CARGO_BIN_EXE_chat-bench"));
    build_binaries(bench);
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("figures.json");
    let output = Command::new(bench)
        .args(["--only", scenario, "--json"])
        .arg(&json)
        .args(args)
        .output()
        .expect("run chat-bench");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "chat-bench failed:\n{stderr}");
    let report: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let rows = report["scenarios"][scenario]
        .as_array()
        .unwrap_or_else(|| panic!("no {scenario} figures in {report:#}"));
    rows.iter()
        .filter_map(|row| Some((row["figure"].as_str()?.to_string(), row["chat"].as_f64()?)))
        .collect()
}

/// A short chaos run (a 3-node TLS cluster, nodes and workers killed at random) reports
/// its figures, and whatever was killed, no acknowledged message is lost, duplicated
/// or delivered out of its sender's order.
#[test]
fn short_chaos_run_loses_nothing() {
    let figures = figures_of(
        "chaos",
        &[
            "--chaos-secs",
            "25",
            "--chaos-members",
            "3",
            "--chaos-churners",
            "1",
            "--chaos-ttl",
            "10",
        ],
    );
    let figure = |name: &str| {
        *figures
            .get(name)
            .unwrap_or_else(|| panic!("no {name:?} in {figures:#?}"))
    };
    assert!(figure("acknowledged messages") > 0.0);
    for name in [
        "lost (acknowledged, never received)",
        "duplicated deliveries",
        "reordered deliveries (against the sender's order)",
    ] {
        assert_eq!(figure(name), 0.0, "{name}: {figures:#?}");
    }
}

/// The rooms scenario on a 3-node TLS cluster (`--cluster 3`, R3 rooms) reports every
/// node's figures and the three together, and both restarts bring every room back.
#[test]
fn rooms_on_a_cluster_report_every_node() {
    let figures = figures_of(
        "rooms",
        &[
            "--cluster",
            "3",
            "--rooms",
            "12",
            "--rooms-sessions",
            "3",
            "--idle-secs",
            "1",
        ],
    );
    let figure = |name: &str| {
        *figures
            .get(name)
            .unwrap_or_else(|| panic!("no {name:?} measured in {figures:#?}"))
    };
    assert_eq!(figure("room streams stored"), 12.0);
    for node in ["node 1", "node 2", "node 3", "all 3 nodes"] {
        assert!(figure(&format!("{node} memory with 12 rooms")) > 0.0);
        assert!(figure(&format!("{node} open files with 12 rooms")) > 0.0);
        figure(&format!("{node} CPU at rest with 12 rooms"));
        assert!(figure(&format!("{node} memory after the restart")) > 0.0);
    }
    for name in [
        "node 3 restart until its rooms are current",
        "every node restart with 12 rooms",
        "every node restart until every room is current",
        "first join after the restart",
    ] {
        assert!(figure(name) > 0.0, "{name}");
    }
}
