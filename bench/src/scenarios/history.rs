//! Scenario 4, history: a room of H messages (written through the client library),
//! replayed whole with `#all_messages` ([`chat_client::Chat::all_messages`]) against a
//! raw ordered consumer reading the same stream, and the writer's `#my_messages`
//! ([`chat_client::Chat::my_messages`]) against a raw ordered consumer with the same
//! filter (`chat.room.<room>.msg.<writer>`), and the history worker's peak memory.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::pull, consumer::DeliverPolicy};
use chat_client::Event;
use chat_protocol::body::MessageKind;
use chat_protocol::{streams, subjects, UserName};
use futures::StreamExt;

use crate::report::{Row, Target};
use crate::setup::{self, BenchError, Stage, PATIENCE};
use crate::stamp;
use crate::stats::rate;

/// Messages written between two waits for their acks while filling the room.
const FILL_CHUNK: usize = 5_000;

/// The user who writes the room (and then replays its own messages).
const WRITER: &str = "writer";

/// Runs the scenario.
pub async fn run(stage: &Stage) -> Result<Vec<Row>, BenchError> {
    let total = stage.sizes.history_messages;
    let room = stage.room("history")?;
    stage
        .progress
        .phase(format!("history: writing {total} messages"));
    let (writer, mut events) = stage.chat(WRITER).await?;
    setup::join(&writer, &mut events, &room).await?;
    let drained = setup::drain(events);
    let mut written = 0;
    while written < total {
        let chunk = FILL_CHUNK.min(total - written);
        for _ in 0..chunk {
            writer
                .send(
                    &room,
                    MessageKind::Chat,
                    &stamp::text(stage.sizes.text_chars),
                )
                .await
                .map_err(BenchError::nats)?;
        }
        if let Some(err) = writer.flush().await.first() {
            return Err(BenchError::nats(err));
        }
        written += chunk;
        stage.progress.update(format!("{written} written"));
    }
    writer.close().await;
    drained.abort();

    let at_rest = stage.history.sample();

    stage.progress.phase("history: raw ordered consumer");
    let js = jetstream::new(stage.raw().await?);
    let stream = js
        .get_stream(streams::stream_name(&room))
        .await
        .map_err(BenchError::nats)?;
    let stored = stream.cached_info().state.messages;
    let started = Instant::now();
    let mut messages = setup::raw_room_feed(&stream, DeliverPolicy::All).await?;
    let read = read_raw(&mut messages, stored, "the raw replay").await?;
    let raw_time = started.elapsed();
    drop(messages);

    stage.progress.phase("history: #all_messages");
    let (reader, mut events) = stage.chat("reader").await?;
    let shown = Arc::new(AtomicU64::new(0));
    let counter = {
        let shown = shown.clone();
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                match event {
                    Event::Message { .. } => {
                        shown.fetch_add(1, Ordering::Relaxed);
                    }
                    Event::HistoryEnd { .. } => break,
                    _ => {}
                }
            }
        })
    };
    let started = Instant::now();
    let replay = reader.all_messages(&room);
    tokio::pin!(replay);
    let count = loop {
        tokio::select! {
            done = &mut replay => break done.map_err(BenchError::nats)?,
            _ = tokio::time::sleep(Duration::from_millis(500)) => stage
                .progress
                .update(format!("{} of {total} shown", shown.load(Ordering::Relaxed))),
        }
    };
    let _ = tokio::time::timeout(PATIENCE, counter).await;
    let chat_time = started.elapsed();

    stage
        .progress
        .phase("history: raw ordered consumer, one user's messages");
    let filter = subjects::room_message(&room, &UserName::new(WRITER).map_err(BenchError::nats)?);
    let started = Instant::now();
    let consumer = stream
        .create_consumer(pull::OrderedConfig {
            filter_subject: filter,
            ..Default::default()
        })
        .await
        .map_err(BenchError::nats)?;
    let own_stored = consumer.cached_info().num_pending;
    let mut messages = consumer.messages().await.map_err(BenchError::nats)?;
    let own_read = read_raw(&mut messages, own_stored, "the raw filtered replay").await?;
    let own_raw_time = started.elapsed();
    drop(messages);

    stage.progress.phase("history: #my_messages");
    let (me, mut events) = stage.chat(WRITER).await?;
    setup::join(&me, &mut events, &room).await?;
    let drained = setup::drain(events);
    let started = Instant::now();
    let own_count = me.my_messages(&room).await.map_err(BenchError::nats)?;
    let own_time = started.elapsed();
    me.close().await;
    drained.abort();
    let after = stage.history.sample();

    let mut rows = vec![Row::new("full replay", "msg/s", Some(rate(count, chat_time)))
        .baseline("raw ordered consumer", Some(rate(read, raw_time)))
        .target(Target::RatioAtLeast(0.8))
        .note(format!(
            "{count} chat messages shown by #all_messages in {:.2} s; the raw consumer read all {read} stored messages in {:.2} s",
            chat_time.as_secs_f64(),
            raw_time.as_secs_f64()
        ))];
    rows.push(
        Row::new("own messages replay", "msg/s", Some(rate(own_count, own_time)))
            .baseline("raw consumer, same filter", Some(rate(own_read, own_raw_time)))
            .target(Target::RatioAtLeast(0.8))
            .note(format!(
                "{own_count} of the writer's messages shown by #my_messages in {:.2} s; the raw consumer filtered on them read {own_read} in {:.2} s",
                own_time.as_secs_f64(),
                own_raw_time.as_secs_f64()
            )),
    );
    rows.push(
        Row::new(
            "history worker peak memory",
            "MiB",
            after.map(|s| s.hwm_mb),
        )
        .target(Target::Below(64.0))
        .note(format!(
            "VmHWM of the history-worker process after replaying {total} messages; {} MiB resident at rest before",
            at_rest.map_or("n/a".into(), |s| format!("{:.1}", s.rss_mb))
        )),
    );
    rows.push(
        Row::new(
            "replayed messages missing",
            "msg",
            Some((total as u64).saturating_sub(count) as f64),
        )
        .note("chat messages written but not shown by #all_messages; 0 expected"),
    );
    Ok(rows)
}

/// Reads `count` messages from a raw consumer (each within [`PATIENCE`]); `what` names
/// the read in the timeout error.
async fn read_raw(messages: &mut pull::Ordered, count: u64, what: &str) -> Result<u64, BenchError> {
    let mut read = 0u64;
    while read < count {
        match tokio::time::timeout(PATIENCE, messages.next()).await {
            Ok(Some(Ok(_))) => read += 1,
            _ => return Err(BenchError::Timeout(what.into())),
        }
    }
    Ok(read)
}
