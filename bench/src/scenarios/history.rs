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

use crate::procfs::CpuMeter;
use crate::report::{Row, Target};
use crate::setup::{self, BenchError, Stage, PATIENCE};
use crate::stamp;
use crate::stats::rate;

/// Messages written between two waits for their acks while filling the room.
const FILL_CHUNK: usize = 5_000;

/// Reads of each kind (raw and chat, whole room and one user's messages), taking
/// turns; the figures are their medians.
const ROUNDS: usize = 5;

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

    let js = jetstream::new(stage.raw().await?);
    let stream = js
        .get_stream(streams::stream_name(&room))
        .await
        .map_err(BenchError::nats)?;
    let stored = stream.cached_info().state.messages;
    let filter = subjects::room_message(&room, &UserName::new(WRITER).map_err(BenchError::nats)?);
    let (reader, mut events) = stage.chat("reader").await?;
    let (me, mut own_events) = stage.chat(WRITER).await?;
    setup::join(&me, &mut own_events, &room).await?;
    let drained = setup::drain(own_events);

    // Each read is timed on its own, the raw and the chat reads taking turns, so that
    // a slow moment of the machine or a cold cache does not land on one side only.
    let pids = [Some(std::process::id()), stage.server_pid()];
    let mut reads = Reads::default();
    for round in 1..=ROUNDS {
        stage
            .progress
            .phase(format!("history: raw ordered consumer ({round}/{ROUNDS})"));
        let clock = Clock::start(&pids);
        let mut messages = setup::raw_room_feed(&stream, DeliverPolicy::All).await?;
        let read = read_raw(&mut messages, stored, "the raw replay").await?;
        reads.raw_all.add(read, &clock);
        drop(messages);

        stage
            .progress
            .phase(format!("history: #all_messages ({round}/{ROUNDS})"));
        let clock = Clock::start(&pids);
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
                events
            })
        };
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
        events = tokio::time::timeout(PATIENCE, counter)
            .await
            .map_err(|_| BenchError::Timeout("the end of #all_messages".into()))?
            .map_err(|e| BenchError::Timeout(format!("the replay's reader: {e}")))?;
        reads.chat_all.add(count, &clock);

        stage.progress.phase(format!(
            "history: raw ordered consumer, one user's messages ({round}/{ROUNDS})"
        ));
        let clock = Clock::start(&pids);
        let consumer = stream
            .create_consumer(pull::OrderedConfig {
                filter_subject: filter.clone(),
                ..Default::default()
            })
            .await
            .map_err(BenchError::nats)?;
        let own_stored = consumer.cached_info().num_pending;
        let mut messages = consumer.messages().await.map_err(BenchError::nats)?;
        let read = read_raw(&mut messages, own_stored, "the raw filtered replay").await?;
        reads.raw_own.add(read, &clock);
        drop(messages);

        stage
            .progress
            .phase(format!("history: #my_messages ({round}/{ROUNDS})"));
        let clock = Clock::start(&pids);
        let count = me.my_messages(&room).await.map_err(BenchError::nats)?;
        reads.chat_own.add(count, &clock);
    }
    me.close().await;
    drained.abort();
    let after = stage.history.sample();
    let count = reads.chat_all.counts.iter().copied().min().unwrap_or(0);

    let mut rows = vec![
        rate_row(
            ("full replay", "raw ordered consumer"),
            (&reads.chat_all, &reads.raw_all),
            ("#all_messages showed", "chat messages"),
            ("the raw consumer read all", "stored messages"),
        ),
        rate_row(
            ("own messages replay", "raw consumer, same filter"),
            (&reads.chat_own, &reads.raw_own),
            ("#my_messages showed", "of the writer's messages"),
            ("the raw consumer filtered on them read", "messages"),
        ),
    ];
    for (what, chat, raw) in [
        ("full replay", &reads.chat_all, &reads.raw_all),
        ("own messages replay", &reads.chat_own, &reads.raw_own),
    ] {
        for (i, process) in ["reader", "nats-server"].iter().enumerate() {
            rows.push(
                Row::new(format!("{process} CPU per message, {what}"), "µs", chat.cpu_us(i))
                    .baseline("the raw read's", raw.cpu_us(i))
                    .note(format!(
                        "user + system time of the {} over the {ROUNDS} reads (/proc/<pid>/stat) / messages read",
                        if i == 0 { "bench process (the reader)" } else { "nats-server" }
                    )),
            );
        }
    }
    rows.push(
        Row::new(
            "history worker peak memory",
            "MiB",
            after.map(|s| s.hwm_mb),
        )
        .target(Target::Below(64.0))
        .note(format!(
            "VmHWM of the history-worker process after replaying {total} messages {ROUNDS} times; {} MiB resident at rest before",
            at_rest.map_or("n/a".into(), |s| format!("{:.1}", s.rss_mb))
        )),
    );
    rows.push(
        Row::new(
            "replayed messages missing",
            "msg",
            Some((total as u64).saturating_sub(count) as f64),
        )
        .note(
            "chat messages written but not shown by #all_messages (in its worst read); 0 expected",
        ),
    );
    Ok(rows)
}

/// The row comparing the median rates of `chat` and `raw` reads (`figure` and
/// `baseline` name them), each read's rate in the note (`chat_did` and `raw_did` say
/// what the reads did, around their counts).
fn rate_row(
    (figure, baseline): (&str, &str),
    (chat, raw): (&Timed, &Timed),
    chat_did: (&str, &str),
    raw_did: (&str, &str),
) -> Row {
    let first = |t: &Timed| t.counts.first().copied().unwrap_or(0);
    Row::new(figure, "msg/s", chat.median_rate())
        .baseline(baseline, raw.median_rate())
        .target(Target::RatioAtLeast(0.8))
        .note(format!(
            "median of {ROUNDS} reads each, taking turns: {} {} {} at {} msg/s; {} {} {} at {} msg/s",
            chat_did.0,
            first(chat),
            chat_did.1,
            chat.rates(),
            raw_did.0,
            first(raw),
            raw_did.1,
            raw.rates(),
        ))
}

/// Reads of each kind, and each reader's CPU time.
#[derive(Default)]
struct Reads {
    raw_all: Timed,
    chat_all: Timed,
    raw_own: Timed,
    chat_own: Timed,
}

/// The reads of one kind: messages, time, and CPU milliseconds per message of the
/// bench process and of nats-server.
#[derive(Default)]
struct Timed {
    counts: Vec<u64>,
    times: Vec<Duration>,
    cpu_ms: [f64; 2],
    cpu_known: [bool; 2],
}

/// The time and the CPU of the bench process and of nats-server since a read began.
struct Clock {
    started: Instant,
    meter: CpuMeter,
}

impl Clock {
    fn start(pids: &[Option<u32>]) -> Self {
        Self {
            meter: CpuMeter::start(pids),
            started: Instant::now(),
        }
    }
}

impl Timed {
    /// Records a read of `count` messages that began at `clock`.
    fn add(&mut self, count: u64, clock: &Clock) {
        let time = clock.started.elapsed();
        for (i, per) in clock.meter.ms_per(count).into_iter().enumerate().take(2) {
            if let Some(per) = per {
                self.cpu_ms[i] += per * count as f64;
                self.cpu_known[i] = true;
            }
        }
        self.counts.push(count);
        self.times.push(time);
    }

    fn each_rate(&self) -> Vec<f64> {
        let pairs = self.counts.iter().zip(&self.times);
        pairs.map(|(&count, &time)| rate(count, time)).collect()
    }

    fn median_rate(&self) -> Option<f64> {
        let mut rates = self.each_rate();
        rates.sort_by(f64::total_cmp);
        rates.get(rates.len() / 2).copied()
    }

    fn rates(&self) -> String {
        let rates: Vec<String> = self.each_rate().iter().map(|r| format!("{r:.0}")).collect();
        rates.join(", ")
    }

    /// Microseconds of CPU per message of process `i` (0: the bench, 1: the server).
    fn cpu_us(&self, i: usize) -> Option<f64> {
        let messages: u64 = self.counts.iter().sum();
        (self.cpu_known[i] && messages > 0).then(|| self.cpu_ms[i] * 1e3 / messages as f64)
    }
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
