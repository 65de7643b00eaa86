//! Scenario 1, publish: N chat messages through [`Chat::send`] (validation, JSON,
//! JetStream publish with ack and message id, the publisher's pipelining) against
//! raw JetStream async publish of bodies of the same size, acks awaited concurrently.
//!
//! The chat's sender is joined to its room, as every sender is, so its own feed
//! receives what it sends while it sends; the raw side has no subscriber. Each side
//! writes to its own stream of the same configuration. Two more raw runs tell the
//! costs apart: one sets a `Nats-Msg-Id` on every message, as the client does (the
//! server's de-duplication), and one also reads the stream live on the publishing
//! connection, as the sender's own room feed does (the same shape as the chat).
//!
//! The target compares the chat with a raw sender of exactly its shape: message ids,
//! its own stream read live on the publishing connection, and no more acks awaited at
//! once than the chat's publish window (`CHAT_PUBLISH_WINDOW`, 1 by default: the
//! client publishes a message once the one before it is stored, to keep the sender's
//! order). The unbounded raw runs say what the window itself costs.

use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::{self, message::PublishMessage};
use chat_client::Chat;
use chat_protocol::body::MessageKind;
use chat_protocol::{streams, subjects, RoomName, UserName};
use futures::stream::FuturesUnordered;
use futures::StreamExt;

use crate::procfs::Sample;
use crate::report::{Row, Target};
use crate::setup::{self, BenchError, Stage};
use crate::stamp;
use crate::stats::rate;

/// Runs the scenario.
pub async fn run(stage: &Stage) -> Result<Vec<Row>, BenchError> {
    let n = stage.sizes.publish_messages;
    let warmup = (n / 10).clamp(1, 1000);
    let room = stage.room("pub")?;
    let raw_room = stage.room("pub-raw")?;
    let user = UserName::new("sender")?;
    let body_len = stamp::chat_body_len(&room, &user, stage.sizes.text_chars);

    let window = stage.options(user.as_str())?.retry.window.max(1);

    stage.progress.phase("publish: joining");
    let (chat, mut events) = stage.chat(user.as_str()).await?;
    setup::join(&chat, &mut events, &room).await?;
    let drained = setup::drain(events);

    let raw = stage.raw().await?;
    let js = jetstream::new(raw.clone());
    js.create_stream(chat_runtime::storage::room_stream_config(
        &raw_room,
        &chat_runtime::storage::RoomStreamSettings::default(),
    ))
    .await
    .map_err(BenchError::nats)?;
    let raw_subject = subjects::room_message(&raw_room, &user);

    stage.progress.phase("publish: warming up");
    raw_publish(&js, &raw_subject, warmup, body_len, None, None).await?;
    chat_publish(&chat, &room, warmup, stage.sizes.text_chars).await?;

    stage
        .progress
        .phase(format!("publish: raw JetStream, {n} messages"));
    let meter = CpuMeter::start(stage);
    let raw_time = raw_publish(&js, &raw_subject, n, body_len, None, None).await?;
    let raw_cpu = meter.per_message(n);
    let ids = format!("{raw_room}-");
    let meter = CpuMeter::start(stage);
    let raw_id_time = raw_publish(&js, &raw_subject, n, body_len, Some(&ids), None).await?;
    let raw_id_cpu = meter.per_message(n);
    let echo = echo(&js, &raw_room).await?;
    let ids = format!("{raw_room}-echo-");
    let meter = CpuMeter::start(stage);
    let raw_echo_time = raw_publish(&js, &raw_subject, n, body_len, Some(&ids), None).await?;
    let raw_echo_cpu = meter.per_message(n);
    let ids = format!("{raw_room}-shape-");
    let meter = CpuMeter::start(stage);
    let raw_shape_time =
        raw_publish(&js, &raw_subject, n, body_len, Some(&ids), Some(window)).await?;
    let raw_shape_cpu = meter.per_message(n);
    echo.abort();
    stage
        .progress
        .phase(format!("publish: chat client, {n} messages"));
    let meter = CpuMeter::start(stage);
    let chat_time = chat_publish(&chat, &room, n, stage.sizes.text_chars).await?;
    let chat_cpu = meter.per_message(n);

    chat.close().await;
    drained.abort();
    let chat_rate = rate(n as u64, chat_time);
    let raw_rate = rate(n as u64, raw_time);
    let shape = format!(
        "raw of the same shape: Nats-Msg-Id, reading its stream on the same connection, \
         at most {window} awaiting its ack"
    );
    Ok(vec![
        Row::new("acknowledged publishes", "msg/s", Some(chat_rate))
            .baseline(&shape, Some(rate(n as u64, raw_shape_time)))
            .target(Target::RatioAtLeast(0.95))
            .note(format!(
                "{n} messages of {body_len} bytes of JSON each side, after {warmup} warm-up \
                 messages; the chat's publish window is {window} (CHAT_PUBLISH_WINDOW)"
            )),
        Row::new("acknowledged publishes", "msg/s", Some(chat_rate))
            .baseline("raw JetStream async publish", Some(raw_rate)),
        Row::new("acknowledged publishes", "msg/s", Some(chat_rate)).baseline(
            "raw, with Nats-Msg-Id",
            Some(rate(n as u64, raw_id_time)),
        ),
        Row::new("acknowledged publishes", "msg/s", Some(chat_rate))
            .baseline(
                "raw, with Nats-Msg-Id, reading its stream on the same connection",
                Some(rate(n as u64, raw_echo_time)),
            )
            .note("the chat sender's shape: joined to its room, its feed shares the connection"),
        Row::new("sender CPU per message", "µs", chat_cpu.sender)
            .baseline(&shape, raw_shape_cpu.sender)
            .target(Target::RatioAtMost(1.2))
            .note("CPU time of the sending process (the bench: the client library, or raw async-nats) per message; unlike a rate, hardly moved by other load on the machine"),
        Row::new("sender CPU per message", "µs", chat_cpu.sender)
            .baseline("raw JetStream async publish", raw_cpu.sender),
        Row::new("sender CPU per message", "µs", chat_cpu.sender).baseline(
            "raw, with Nats-Msg-Id, reading its stream on the same connection",
            raw_echo_cpu.sender,
        ),
        Row::new("nats-server CPU per message", "µs", chat_cpu.server)
            .baseline("raw JetStream async publish", raw_cpu.server)
            .note("CPU time of the bench's nats-server per message (none with --nats-url)"),
        Row::new("nats-server CPU per message", "µs", chat_cpu.server)
            .baseline("raw, with Nats-Msg-Id", raw_id_cpu.server),
        Row::new("nats-server CPU per message", "µs", chat_cpu.server).baseline(
            "raw, with Nats-Msg-Id, reading its stream on the same connection",
            raw_echo_cpu.server,
        ),
        Row::new("nats-server CPU per message", "µs", chat_cpu.server)
            .baseline(&shape, raw_shape_cpu.server),
    ])
}

/// CPU time used by this process (the sending side) and by the bench's nats-server
/// from its start: what one side of the scenario cost, whatever else ran meanwhile.
struct CpuMeter {
    sender: Option<Sample>,
    server: Option<(u32, Sample)>,
}

/// Microseconds of CPU per message.
struct CpuPerMessage {
    sender: Option<f64>,
    server: Option<f64>,
}

impl CpuMeter {
    fn start(stage: &Stage) -> Self {
        Self {
            sender: Sample::of(std::process::id()),
            server: stage
                .server_pid()
                .and_then(|pid| Some((pid, Sample::of(pid)?))),
        }
    }

    fn per_message(&self, n: usize) -> CpuPerMessage {
        let micros = |before: &Sample, pid: u32| {
            let now = Sample::of(pid)?;
            Some(now.cpu.saturating_sub(before.cpu).as_secs_f64() * 1e6 / n.max(1) as f64)
        };
        CpuPerMessage {
            sender: self
                .sender
                .as_ref()
                .and_then(|before| micros(before, std::process::id())),
            server: self
                .server
                .as_ref()
                .and_then(|(pid, before)| micros(before, *pid)),
        }
    }
}

/// Sends `n` messages through the client library and waits until JetStream
/// acknowledged every one.
async fn chat_publish(
    chat: &Chat,
    room: &RoomName,
    n: usize,
    chars: usize,
) -> Result<Duration, BenchError> {
    let started = Instant::now();
    for _ in 0..n {
        chat.send(room, MessageKind::Chat, &stamp::text(chars))
            .await
            .map_err(BenchError::nats)?;
    }
    let failed = chat.flush().await;
    if let Some(err) = failed.first() {
        return Err(BenchError::nats(format!(
            "{} chat messages unconfirmed: {err}",
            failed.len()
        )));
    }
    Ok(started.elapsed())
}

/// Reads `room`'s stream live on the connection of `js` with an ordered consumer, as a
/// joined sender's room feed does; abort the task to stop.
async fn echo(
    js: &jetstream::Context,
    room: &RoomName,
) -> Result<tokio::task::JoinHandle<()>, BenchError> {
    let stream = js
        .get_stream(streams::stream_name(room))
        .await
        .map_err(BenchError::nats)?;
    let mut messages = setup::raw_room_feed(&stream, DeliverPolicy::New).await?;
    Ok(tokio::spawn(async move {
        while let Some(Ok(_)) = messages.next().await {}
    }))
}

/// Publishes `n` bodies of `len` bytes with raw JetStream async publish, awaiting
/// the acks concurrently, and waits for every ack. With `ids`, every message gets a
/// `Nats-Msg-Id` made of that prefix and a counter; with `window`, a message is
/// published only while fewer than that many await their ack.
async fn raw_publish(
    js: &jetstream::Context,
    subject: &str,
    n: usize,
    len: usize,
    ids: Option<&str>,
    window: Option<usize>,
) -> Result<Duration, BenchError> {
    let started = Instant::now();
    let window = std::sync::Arc::new(tokio::sync::Semaphore::new(
        window.unwrap_or(tokio::sync::Semaphore::MAX_PERMITS),
    ));
    let (acks, mut pending) = tokio::sync::mpsc::unbounded_channel::<(
        jetstream::context::PublishAckFuture,
        tokio::sync::OwnedSemaphorePermit,
    )>();
    let confirmer = tokio::spawn(async move {
        let mut inflight = FuturesUnordered::new();
        loop {
            tokio::select! {
                Some((ack, permit)) = pending.recv() => inflight.push(async move {
                    let done = ack.await;
                    drop(permit);
                    done
                }),
                Some(done) = inflight.next(), if !inflight.is_empty() => {
                    done.map_err(BenchError::nats)?;
                }
                else => return Ok::<_, BenchError>(()),
            }
        }
    });
    for i in 0..n {
        let permit = window.clone().acquire_owned().await.expect("never closed");
        let message = PublishMessage::build().payload(stamp::body(len));
        let message = match ids {
            Some(prefix) => message.message_id(format!("{prefix}{i}")),
            None => message,
        };
        let ack = js
            .send_publish(subject.to_string(), message)
            .await
            .map_err(BenchError::nats)?;
        if acks.send((ack, permit)).is_err() {
            break;
        }
    }
    drop(acks);
    confirmer.await.map_err(BenchError::nats)??;
    Ok(started.elapsed())
}
