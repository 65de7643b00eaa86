//! The browser client in a real browser: Debian's chromium, driven by puppeteer-core
//! from `web/tests/browser.mjs`, against the real stack (nats-server with the auth
//! callout and its auth worker, the presence and history workers, chat-web serving
//! `web/`) and the real terminal client.
//!
//! This test owns the stack; the node script drives the pages and the terminal client
//! and asks for the server to be stopped and started again (lines `stop` / `start` on
//! its stdout, answered with `stopped` / `started` on its stdin). Screenshots go to
//! `target/browser-screenshots/`.
//!
//! Needs `chromium` at /usr/bin/chromium (or `CHROMIUM`), node, and `npm ci` run in
//! `web/` (`.ci/run` does all three).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use test_support::{run_server_with, StackOptions};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::process::Command;

/// The whole browser session may take this long.
const BUDGET: Duration = Duration::from_secs(300);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The chat-client binary of this build (built by `cargo test --workspace`, or
/// `cargo build -p chat-client`), next to this test's own executable.
fn chat_client_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let mut dir = exe.parent().expect("a folder").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let bin = dir.join("chat-client");
    assert!(
        bin.is_file(),
        "{} not found: run `cargo build -p chat-client` first (scripts/test builds it)",
        bin.display()
    );
    bin
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_browser_pages_and_a_terminal_chat() {
    let driver = repo().join("web/tests/browser.mjs");
    assert!(
        repo().join("web/node_modules/puppeteer-core").is_dir(),
        "run `npm ci` in web/ first (the test driver, puppeteer-core, comes from there)"
    );
    let client_bin = chat_client_bin();

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let web_port = listener.local_addr().unwrap().port();
    let mut server = tokio::task::spawn_blocking(move || {
        run_server_with(StackOptions {
            web_port,
            // The contract's allowance (a burst of 20, then 5 per second): the pages
            // pace themselves to it.
            moderation: moderation_worker::Config::default(),
            ..Default::default()
        })
    })
    .await
    .unwrap();
    let presence = presence_worker::PresenceWorker::start(
        server.presence_client().await,
        presence_worker::Config {
            ttl: Duration::from_secs(6),
            ..Default::default()
        },
    )
    .await
    .expect("presence worker starts");
    let history = history_worker::HistoryWorker::start(
        server.history_client().await,
        history_worker::Config::default(),
    )
    .await
    .expect("history worker starts");
    let site = chat_web::Site::new(&repo().join("web"), &server.ws_url()).unwrap();
    let (stop_web, web_stopped) = tokio::sync::oneshot::channel::<()>();
    let web = tokio::spawn(chat_web::serve(listener, site, async {
        let _ = web_stopped.await;
    }));

    let bob = server.register("bob").await;
    let carol = server.register("carol").await;
    // carol (the terminal client) is a moderator: the pages show what she does.
    let grant = r#"{"user":"carol","role":"moderator"}"#.to_string();
    let granted = server
        .client()
        .await
        .request("chat.admin.role", grant.into())
        .await
        .expect("the moderation worker answers");
    assert!(String::from_utf8_lossy(&granted.payload).contains("\"ok\":true"));
    let shots = repo().join("target/browser-screenshots");
    std::fs::create_dir_all(&shots).unwrap();

    let mut node = Command::new("node")
        .arg(&driver)
        .env("WEB_URL", format!("http://127.0.0.1:{web_port}/"))
        .env("NATS_URL", server.url())
        .env("CHAT_CLIENT_BIN", &client_bin)
        .env("BOB_PASSWORD", bob)
        .env("CAROL_PASSWORD", carol)
        .env("SCREENSHOT_DIR", &shots)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("run node (is it installed?)");
    let mut to_node = node.stdin.take().unwrap();
    let mut from_node = BufReader::new(node.stdout.take().unwrap()).lines();

    let outcome = tokio::time::timeout(BUDGET, async {
        while let Some(line) = from_node.next_line().await.unwrap() {
            match line.as_str() {
                "stop" => {
                    server = tokio::task::spawn_blocking(move || {
                        server.stop();
                        server
                    })
                    .await
                    .unwrap();
                    to_node.write_all(b"stopped\n").await.unwrap();
                }
                "start" => {
                    server = tokio::task::spawn_blocking(move || {
                        server.restart();
                        server
                    })
                    .await
                    .unwrap();
                    to_node.write_all(b"started\n").await.unwrap();
                }
                other => println!("{other}"),
            }
        }
        node.wait().await.unwrap()
    })
    .await;
    let _ = stop_web.send(());
    let _ = web.await;
    drop((presence, history));
    let status = outcome.expect("the browser test finished in time");
    assert!(
        status.success(),
        "the browser test failed ({status}); its output is above, screenshots in {}",
        shots.display()
    );
}
