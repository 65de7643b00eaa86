//! Scenario 7, overload: hostile requests on every worker. Each worker's endpoint gets
//! [`Sizes::overload_requests`](crate::Sizes) requests as fast as
//! [`Sizes::overload_clients`](crate::Sizes) raw connections can send them (each with
//! [`IN_FLIGHT`] requests outstanding), first of the largest body a worker takes
//! ([`MAX_REQUEST_BYTES`], 32 KiB), then of the largest the server lets through
//! (`max_payload` minus room for headers, which the worker refuses as too large). The
//! figures: how each reply came back (served, busy, too large, none) and the worker's
//! resident memory before, at its peak during the flood, and after.
//!
//! Before the bound (issue 12), 1,500 requests of 1 MiB drove the history worker to
//! 953 MB: the serving loop waited for a free slot while the requests piled up in the
//! subscription's channel of 65,536 messages.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chat_protocol::body::{ChatMessage, MessageKind};
use chat_protocol::{auth, subjects, UserName};
use chat_runtime::hosting::{code, MAX_REQUEST_BYTES};
use futures::StreamExt;
use test_support::Flood;

use crate::processes::Process;
use crate::report::Row;
use crate::setup::{BenchError, Stage};

/// Requests each flooding connection has outstanding at once.
pub const IN_FLIGHT: usize = 256;

/// How often the worker's memory is sampled during a flood.
const SAMPLE_EVERY: Duration = Duration::from_millis(20);

/// Runs the scenario.
pub async fn run(stage: &Stage) -> Result<Vec<Row>, BenchError> {
    let room = stage.room("flood")?;
    // A room to page through, so that served history requests do real work.
    let admin = stage.raw().await?;
    let js = async_nats::jetstream::new(admin.clone());
    js.create_stream(chat_runtime::storage::room_stream_config(
        &room,
        &chat_runtime::storage::RoomStreamSettings::default(),
    ))
    .await
    .map_err(BenchError::nats)?;
    let writer = UserName::new("flooder").map_err(BenchError::nats)?;
    for i in 0..200 {
        let message = ChatMessage::new(&room, &writer, MessageKind::Chat, &format!("message {i}"))
            .map_err(BenchError::nats)?;
        let body = serde_json::to_vec(&message).map_err(BenchError::nats)?;
        js.publish(subjects::room_message(&room, &writer), body.into())
            .await
            .map_err(BenchError::nats)?
            .await
            .map_err(BenchError::nats)?;
    }
    let largest_payload = admin.server_info().max_payload - 1024;
    let mut rows = Vec::new();
    // Each worker, its endpoint, a request, the largest body it takes, and whether a
    // guest sends it (registration).
    let mut targets: Vec<(&str, &Process, String, &str, usize, bool)> = vec![
        (
            "history",
            &stage.history,
            subjects::history(&room),
            r#"{"limit":100}"#,
            MAX_REQUEST_BYTES,
            false,
        ),
        (
            "presence",
            &stage.presence,
            subjects::users(&room),
            "{}",
            PRESENCE_MAX_REQUEST_BYTES,
            false,
        ),
    ];
    if let Some(auth_worker) = &stage.auth {
        targets.push((
            "auth",
            auth_worker,
            auth::REGISTER.to_string(),
            r#"{"user":"flooder","password":"short"}"#,
            MAX_REQUEST_BYTES,
            true,
        ));
    }
    for (name, process, subject, json, largest, as_guest) in targets {
        for (label, size) in [
            ("largest allowed", largest),
            ("max_payload", largest_payload),
        ] {
            stage.progress.phase(format!(
                "flood: {name} worker, {} requests of {size} bytes",
                stage.sizes.overload_requests
            ));
            let clients = connections(stage, as_guest).await?;
            let body = test_support::padded(json, size);
            let (got, memory, secs) = flood(stage, process, &clients, &subject, body).await;
            let figure =
                |what: &str| format!("{name} worker, {label} ({} KiB): {what}", size / 1024);
            rows.push(
                Row::new(
                    figure("requests served"),
                    "requests",
                    Some(got.served as f64),
                )
                .note(format!(
                    "of {} sent by {} connections, {IN_FLIGHT} in flight each, in {secs:.2} s",
                    stage.sizes.overload_requests, stage.sizes.overload_clients
                )),
            );
            rows.push(Row::new(
                figure("refused busy (503)"),
                "requests",
                Some(got.refused_with(code::UNAVAILABLE) as f64),
            ));
            rows.push(Row::new(
                figure("refused too large (413)"),
                "requests",
                Some(got.refused_with(code::TOO_LARGE) as f64),
            ));
            let other: usize = got
                .refused
                .iter()
                .filter(|(c, _)| ![code::UNAVAILABLE, code::TOO_LARGE].contains(c))
                .map(|(_, n)| n)
                .sum();
            rows.push(Row::new(figure("refused otherwise"), "requests", Some(other as f64)).note(
                "the request's own error (history: none; presence: none; auth: the weak password, 400)",
            ));
            rows.push(Row::new(
                figure("unanswered"),
                "requests",
                Some(got.unanswered as f64),
            ));
            rows.push(Row::new(figure("memory before"), "MiB", memory.before));
            rows.push(
                Row::new(figure("memory peak during"), "MiB", memory.peak)
                    .note("VmRSS sampled every 20 ms"),
            );
            rows.push(Row::new(figure("memory 2 s after"), "MiB", memory.after));
            for client in clients {
                drop(client);
            }
        }
    }
    let _ = js
        .delete_stream(chat_protocol::streams::stream_name(&room))
        .await;
    Ok(rows)
}

/// The presence worker's own bound on a request body (its default
/// `max_request_bytes`: presence requests are tiny), below the hosting's 32 KiB.
const PRESENCE_MAX_REQUEST_BYTES: usize = 4096;

/// Resident memory of a worker around a flood.
#[derive(Debug, Default, Clone, Copy)]
struct Memory {
    before: Option<f64>,
    peak: Option<f64>,
    after: Option<f64>,
}

/// The flooding connections: `@admin`, or guests (for registration).
async fn connections(stage: &Stage, as_guest: bool) -> Result<Vec<async_nats::Client>, BenchError> {
    let mut clients = Vec::new();
    for _ in 0..stage.sizes.overload_clients.max(1) {
        let client = if as_guest {
            async_nats::ConnectOptions::new()
                .request_timeout(Some(Duration::from_secs(30)))
                .connect(&stage.url)
                .await
                .map_err(BenchError::nats)?
        } else {
            async_nats::ConnectOptions::with_user_and_password(
                stage.admin().user.clone(),
                stage.admin().password.clone(),
            )
            .request_timeout(Some(Duration::from_secs(30)))
            .connect(&stage.url)
            .await
            .map_err(BenchError::nats)?
        };
        clients.push(client);
    }
    Ok(clients)
}

/// Sends the flood, sampling `process`'s memory meanwhile; returns what came back,
/// the memory and the seconds it took.
async fn flood(
    stage: &Stage,
    process: &Process,
    clients: &[async_nats::Client],
    subject: &str,
    body: Bytes,
) -> (Flood, Memory, f64) {
    let before = process.sample().map(|s| s.rss_mb);
    let done = Arc::new(AtomicBool::new(false));
    let pid = process.pid();
    let sampler = tokio::spawn({
        let done = done.clone();
        async move {
            let mut peak: Option<f64> = None;
            while !done.load(Ordering::Relaxed) {
                if let Some(sample) = pid.and_then(crate::procfs::Sample::of) {
                    peak = Some(peak.map_or(sample.rss_mb, |p: f64| p.max(sample.rss_mb)));
                }
                tokio::time::sleep(SAMPLE_EVERY).await;
            }
            peak
        }
    });
    let started = Instant::now();
    let per_client = stage.sizes.overload_requests.div_ceil(clients.len());
    let results = futures::future::join_all(clients.iter().map(|client| {
        let (subject, body) = (subject.to_string(), body.clone());
        async move {
            futures::stream::iter(0..per_client)
                .map(|_| client.request(subject.clone(), body.clone()))
                .buffer_unordered(IN_FLIGHT)
                .collect::<Vec<_>>()
                .await
        }
    }))
    .await;
    let secs = started.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    let peak = sampler.await.ok().flatten();
    let mut got = Flood::default();
    for reply in results.into_iter().flatten() {
        got.count(reply);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = process.sample().map(|s| s.rss_mb);
    (
        got,
        Memory {
            before,
            peak,
            after,
        },
        secs,
    )
}
