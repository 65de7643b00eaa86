//! Scenario 2, fan-out: R rooms × U members, messages sent at a total rate for T
//! seconds by the members themselves, every member receiving every message of its
//! room (its own included). Measured three times with the same topology, each member
//! on its own connection:
//!
//! - chat: [`chat_client::Chat`] sessions joined through the presence worker, sending
//!   with [`chat_client::Chat::send`] and receiving `message` events from their room feeds;
//! - raw JetStream: one stream per room of the same configuration, a raw ordered
//!   consumer per member, raw async publish;
//! - core NATS: plain publish and subscribe, no persistence at all.
//!
//! Latency is from the sending call to the receiving task seeing the message (the
//! send time travels in the message). While the chat side runs, the workers' memory
//! and CPU are sampled for the footprint scenario.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::DeliverPolicy};
use chat_client::Event;
use chat_protocol::body::MessageKind;
use chat_protocol::{subjects, RoomName, UserName};
use futures::future::try_join_all;
use futures::StreamExt;
use tokio::task::JoinHandle;

use crate::procfs::Sample;
use crate::report::{latency_rows, Row, Target};
use crate::setup::{self, BenchError, Stage};
use crate::stamp;
use crate::stats::{rate, Percentiles, Samples};

/// How long deliveries may stall after sending ends before the rest count as lost.
const DRAIN_GRACE: Duration = Duration::from_secs(10);

/// Memory and CPU of one worker while the chat side of the fan-out ran.
#[derive(Debug, Clone, Copy)]
pub struct UnderLoad {
    /// Largest resident memory seen, MiB.
    pub rss_mb: f64,
    /// CPU used, percent of one core.
    pub cpu_percent: f64,
}

/// What the fan-out leaves for the footprint scenario: the presence and history
/// workers under load.
#[derive(Debug, Clone, Copy, Default)]
pub struct WorkersUnderLoad {
    /// The presence worker.
    pub presence: Option<UnderLoad>,
    /// The history worker.
    pub history: Option<UnderLoad>,
}

/// Deliveries seen by every receiving task of one measurement.
#[derive(Debug)]
struct Tally {
    samples: Samples,
    delivered: AtomicU64,
    /// Microseconds from `start` to the latest delivery.
    last: AtomicU64,
    start: Instant,
}

impl Tally {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            samples: Samples::default(),
            delivered: AtomicU64::new(0),
            last: AtomicU64::new(0),
            start: Instant::now(),
        })
    }

    fn saw(&self, stamped: &[u8]) {
        if let Some(age) = stamp::age(stamped) {
            self.samples.record(age);
        }
        self.delivered.fetch_add(1, Ordering::Relaxed);
        let at = u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.last.fetch_max(at, Ordering::Relaxed);
    }
}

/// One side's figures.
#[derive(Debug, Clone, Copy)]
struct Outcome {
    sent: u64,
    delivered: u64,
    rate: f64,
    latency: Option<Percentiles>,
}

/// Runs the scenario; also returns the workers' footprint while the chat side ran.
pub async fn run(stage: &Stage) -> Result<(Vec<Row>, WorkersUnderLoad), BenchError> {
    let s = &stage.sizes;
    let shape = format!(
        "{} rooms × {} members, {} msg/s for {} s",
        s.fanout_rooms, s.fanout_members, s.fanout_rate, s.fanout_secs
    );
    let (chat, under_load) = chat_side(stage).await?;
    let raw = raw_jetstream_side(stage).await?;
    let core = core_side(stage).await?;

    let mut rows = Vec::new();
    rows.push(
        Row::new("delivered rate", "msg/s", Some(chat.rate))
            .baseline("raw JetStream ordered consumers", Some(raw.rate))
            .target(Target::RatioAtLeast(0.9))
            .note(format!(
                "{shape}; every member receives every message of its room"
            )),
    );
    rows.push(
        Row::new("delivered rate", "msg/s", Some(chat.rate)).baseline("core NATS", Some(core.rate)),
    );
    rows.extend(latency_rows(
        "latency",
        chat.latency,
        "raw JetStream ordered consumers",
        raw.latency,
        Some(Target::RatioAtMost(1.5)),
    ));
    rows.extend(latency_rows(
        "latency",
        chat.latency,
        "core NATS",
        core.latency,
        None,
    ));
    for (name, outcome) in [("chat", chat), ("raw JetStream", raw), ("core NATS", core)] {
        let expected = outcome.sent * s.fanout_members as u64;
        let lost = expected.saturating_sub(outcome.delivered);
        rows.push(
            Row::new(
                format!("{name}: deliveries missing"),
                "msg",
                Some(lost as f64),
            )
            .note(format!("{} of {expected} delivered", outcome.delivered)),
        );
    }
    Ok((rows, under_load))
}

/// Members of room `r`, as (room index, member index) → user name.
fn member(r: usize, u: usize) -> String {
    format!("m{r}-{u}")
}

/// The chat side: sessions join through the presence worker and talk.
async fn chat_side(stage: &Stage) -> Result<(Outcome, WorkersUnderLoad), BenchError> {
    let s = &stage.sizes;
    let rooms: Vec<RoomName> = (0..s.fanout_rooms)
        .map(|r| stage.room(&format!("fan-{r}")))
        .collect::<Result<_, _>>()?;
    stage.progress.phase(format!(
        "fanout (chat): {} sessions joining",
        s.fanout_rooms * s.fanout_members
    ));
    stage
        .register(
            (0..s.fanout_rooms).flat_map(|r| (0..s.fanout_members).map(move |u| member(r, u))),
        )
        .await?;
    let tally = Tally::new();
    let joins = (0..s.fanout_rooms).flat_map(|r| (0..s.fanout_members).map(move |u| (r, u)));
    let members = try_join_all(joins.map(|(r, u)| {
        let room = rooms[r].clone();
        let tally = tally.clone();
        async move {
            let (chat, mut events) = stage.chat(&member(r, u)).await?;
            setup::join(&chat, &mut events, &room).await?;
            let receiver = tokio::spawn(async move {
                while let Some(event) = events.recv().await {
                    if let Event::Message {
                        text,
                        replay: false,
                        ..
                    } = &event
                    {
                        tally.saw(text.as_bytes());
                    }
                }
            });
            Ok::<_, BenchError>((chat, receiver))
        }
    }))
    .await?;

    let pids = [stage.presence.pid(), stage.history.pid()];
    let before = pids.map(|pid| pid.and_then(Sample::of));
    let peak = Arc::new(std::sync::Mutex::new([0f64; 2]));
    let sampler = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                for (i, pid) in pids.iter().enumerate() {
                    if let Some(sample) = pid.and_then(Sample::of) {
                        let mut peak = peak.lock().unwrap_or_else(|e| e.into_inner());
                        peak[i] = peak[i].max(sample.rss_mb);
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };

    let send = |i: u64| {
        let (r, u) = sender(stage, i);
        let (chat, _) = &members[r * s.fanout_members + u];
        let (chat, room) = (chat.clone(), rooms[r].clone());
        async move {
            chat.send(&room, MessageKind::Chat, &stamp::text(s.text_chars))
                .await
                .map(drop)
                .map_err(BenchError::nats)
        }
    };
    let outcome = drive(stage, "chat", &tally, send).await;
    sampler.abort();
    let after = pids.map(|pid| pid.and_then(Sample::of));
    let peak = *peak.lock().unwrap_or_else(|e| e.into_inner());
    let under = |i: usize| {
        let (before, after) = (before[i]?, after[i]?);
        Some(UnderLoad {
            rss_mb: peak[i].max(after.rss_mb),
            cpu_percent: after.cpu_percent_since(&before),
        })
    };
    let under_load = WorkersUnderLoad {
        presence: under(0),
        history: under(1),
    };
    stage.progress.phase("fanout (chat): leaving");
    futures::future::join_all(members.iter().map(|(chat, _)| chat.close())).await;
    for (_, receiver) in members {
        receiver.abort();
    }
    Ok((outcome?, under_load))
}

/// The raw JetStream side: a stream per room, an ordered consumer per member.
async fn raw_jetstream_side(stage: &Stage) -> Result<Outcome, BenchError> {
    let s = &stage.sizes;
    stage.progress.phase("fanout (raw JetStream): subscribing");
    let tally = Tally::new();
    let mut clients = Vec::new();
    let mut receivers: Vec<JoinHandle<()>> = Vec::new();
    let mut subjects_of = Vec::new();
    for r in 0..s.fanout_rooms {
        let room = stage.room(&format!("fan-raw-{r}"))?;
        let js = jetstream::new(stage.raw().await?);
        let stream = js
            .create_stream(chat_runtime::storage::room_stream_config(
                &room,
                &chat_runtime::storage::RoomStreamSettings::default(),
            ))
            .await
            .map_err(BenchError::nats)?;
        let mut room_subjects = Vec::new();
        for u in 0..s.fanout_members {
            let client = stage.raw().await?;
            let js = jetstream::new(client.clone());
            let stream = js
                .get_stream(stream.cached_info().config.name.clone())
                .await
                .map_err(BenchError::nats)?;
            let mut messages = setup::raw_room_feed(&stream, DeliverPolicy::New).await?;
            let tally = tally.clone();
            receivers.push(tokio::spawn(async move {
                while let Some(Ok(message)) = messages.next().await {
                    tally.saw(&message.payload);
                }
            }));
            room_subjects.push(subjects::room_message(&room, &UserName::new(member(r, u))?));
            clients.push(js);
        }
        subjects_of.push(room_subjects);
    }
    let len = body_len(stage);
    let send = |i: u64| {
        let (r, u) = sender(stage, i);
        let js = clients[r * s.fanout_members + u].clone();
        let subject = subjects_of[r][u].clone();
        async move {
            let ack = js
                .publish(subject, stamp::body(len))
                .await
                .map_err(BenchError::nats)?;
            tokio::spawn(std::future::IntoFuture::into_future(ack));
            Ok(())
        }
    };
    let outcome = drive(stage, "raw JetStream", &tally, send).await;
    for receiver in receivers {
        receiver.abort();
    }
    outcome
}

/// The core NATS side: publish and subscribe on the same subjects, no stream.
async fn core_side(stage: &Stage) -> Result<Outcome, BenchError> {
    let s = &stage.sizes;
    stage.progress.phase("fanout (core NATS): subscribing");
    let tally = Tally::new();
    let mut clients = Vec::new();
    let mut receivers = Vec::new();
    let mut subjects_of = Vec::new();
    for r in 0..s.fanout_rooms {
        let room = stage.room(&format!("fan-core-{r}"))?;
        let mut room_subjects = Vec::new();
        for u in 0..s.fanout_members {
            let client = stage.raw().await?;
            let mut subscription = client
                .subscribe(subjects::room_all(&room))
                .await
                .map_err(BenchError::nats)?;
            client.flush().await.map_err(BenchError::nats)?;
            let tally = tally.clone();
            receivers.push(tokio::spawn(async move {
                while let Some(message) = subscription.next().await {
                    tally.saw(&message.payload);
                }
            }));
            room_subjects.push(subjects::room_message(&room, &UserName::new(member(r, u))?));
            clients.push(client);
        }
        subjects_of.push(room_subjects);
    }
    let len = body_len(stage);
    let send = |i: u64| {
        let (r, u) = sender(stage, i);
        let client = clients[r * s.fanout_members + u].clone();
        let subject = subjects_of[r][u].clone();
        async move {
            client
                .publish(subject, stamp::body(len))
                .await
                .map_err(BenchError::nats)
        }
    };
    let outcome = drive(stage, "core NATS", &tally, send).await;
    for receiver in receivers {
        receiver.abort();
    }
    outcome
}

/// Who sends message `i`: rooms in turn, members of a room in turn.
fn sender(stage: &Stage, i: u64) -> (usize, usize) {
    let s = &stage.sizes;
    let i = i as usize;
    (i % s.fanout_rooms, (i / s.fanout_rooms) % s.fanout_members)
}

/// Raw bodies have the size of the chat's JSON body.
fn body_len(stage: &Stage) -> usize {
    let room = RoomName::new("fan-0").expect("valid");
    let user = UserName::new(member(0, 0)).expect("valid");
    stamp::chat_body_len(&room, &user, stage.sizes.text_chars)
}

/// Sends at the configured rate for the configured time, then waits until every
/// member received every message (or deliveries stall for [`DRAIN_GRACE`]).
async fn drive<F, Fut>(
    stage: &Stage,
    side: &str,
    tally: &Tally,
    mut send: F,
) -> Result<Outcome, BenchError>
where
    F: FnMut(u64) -> Fut,
    Fut: std::future::Future<Output = Result<(), BenchError>>,
{
    let s = &stage.sizes;
    stage.progress.phase(format!("fanout ({side}): sending"));
    let duration = s.fanout_duration();
    let start = Instant::now();
    let base_micros = u64::try_from(start.duration_since(tally.start).as_micros()).unwrap_or(0);
    let mut ticks = tokio::time::interval(Duration::from_millis(5));
    let mut sent = 0u64;
    while start.elapsed() < duration {
        ticks.tick().await;
        let due = (start.elapsed().min(duration).as_secs_f64() * s.fanout_rate as f64) as u64;
        while sent < due {
            send(sent).await?;
            sent += 1;
        }
        stage.progress.update(format!(
            "sent {sent}, delivered {}",
            tally.delivered.load(Ordering::Relaxed)
        ));
    }
    let expected = sent * s.fanout_members as u64;
    let mut seen = tally.delivered.load(Ordering::Relaxed);
    let mut stalled_since = Instant::now();
    while seen < expected && stalled_since.elapsed() < DRAIN_GRACE {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = tally.delivered.load(Ordering::Relaxed);
        if now > seen {
            stalled_since = Instant::now();
            seen = now;
        }
        stage
            .progress
            .update(format!("sent {sent}, delivered {seen} of {expected}"));
    }
    let last = Duration::from_micros(
        tally
            .last
            .load(Ordering::Relaxed)
            .saturating_sub(base_micros),
    );
    Ok(Outcome {
        sent,
        delivered: seen,
        rate: rate(seen, last),
        latency: tally.samples.percentiles(),
    })
}
