//! Scenario 3, presence: S sessions (distinct users, each its own connection) join
//! through [`Chat::join`], a bounded number at a time: first one of P rooms each (the
//! join rate: S sessions across rooms), then all of them one big room (the rate of
//! filling one room of S users, timed apart: each `joined` event goes to the feed of
//! every member already there, so filling it costs the server S²/2 deliveries, whatever
//! the presence worker does, unless it announces several arrivals in one event); a
//! member who was there first counts every `joined` it sees, each user named (as
//! `user` or in `others`) exactly once; then `/users` of the big room is timed; then C sessions
//! crash (dropped without leaving) and the time until `/users` no longer lists them is
//! measured.
//!
//! Baselines of the same shape, raw async-nats in the bench process: for a join, a
//! request answered after one KV put (the least a join must do); for `/users`, a
//! request answered with a reply of the same size from memory; for the crash, the
//! session TTL itself. Each join phase also reports the CPU time per join of
//! nats-server, the presence worker and the bench (the clients), which moves much less
//! with the machine's load than the rates.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use chat_client::{Chat, Event};
use chat_protocol::body::SystemKind;
use chat_protocol::RoomName;
use futures::{StreamExt, TryStreamExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::procfs::CpuMeter;
use crate::report::{latency_rows, Row, Target};
use crate::setup::{self, BenchError, Stage};
use crate::stats::{rate, Percentiles};

/// A joined session and the task draining its events.
type Session = (Chat, JoinHandle<()>);

/// Runs the scenario.
pub async fn run(stage: &Stage) -> Result<Vec<Row>, BenchError> {
    let s = &stage.sizes;
    let big = stage.room("big")?;
    let small: Vec<RoomName> = (0..s.presence_rooms.max(1))
        .map(|i| stage.room(&format!("small-{i}")))
        .collect::<Result<_, _>>()?;

    stage.progress.phase(format!(
        "presence: registering {} users (not timed)",
        s.presence_sessions
    ));
    stage
        .register((0..s.presence_sessions).map(|i| format!("p{i}")))
        .await?;
    stage.progress.phase(format!(
        "presence: connecting {} sessions",
        s.presence_sessions
    ));
    let connected: Vec<_> = futures::stream::iter(0..s.presence_sessions)
        .map(|i| async move { stage.chat(&format!("p{i}")).await })
        .buffered(s.join_concurrency.max(1))
        .try_collect()
        .await?;

    stage.progress.phase(format!(
        "presence: {} joins across {} rooms, {} at a time",
        s.presence_sessions,
        small.len(),
        s.join_concurrency
    ));
    let pids = [
        stage.server_pid(),
        stage.presence.pid(),
        Some(std::process::id()),
    ];
    let meter = CpuMeter::start(&pids);
    let started = Instant::now();
    let connected: Vec<_> = futures::stream::iter(connected.into_iter().enumerate())
        .map(|(i, (chat, mut events))| {
            let room = small[i % small.len()].clone();
            async move {
                setup::join(&chat, &mut events, &room).await?;
                Ok::<_, BenchError>((chat, events))
            }
        })
        .buffer_unordered(s.join_concurrency.max(1))
        .try_collect()
        .await?;
    let spread_time = started.elapsed();
    let spread_cpu = meter.ms_per(s.presence_sessions as u64);

    let (watcher, mut watched) = stage.chat("pwatch").await?;
    setup::join(&watcher, &mut watched, &big).await?;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let watching = watch(watched, seen.clone());

    stage.progress.phase(format!(
        "presence: {} joins of one room, {} at a time",
        s.presence_sessions, s.join_concurrency
    ));
    let meter = CpuMeter::start(&pids);
    let started = Instant::now();
    let sessions: Vec<Session> = futures::stream::iter(connected)
        .map(|(chat, mut events)| {
            let big = big.clone();
            async move {
                setup::join(&chat, &mut events, &big).await?;
                Ok::<_, BenchError>((chat, setup::drain(events)))
            }
        })
        .buffer_unordered(s.join_concurrency.max(1))
        .try_collect()
        .await?;
    let fill_time = started.elapsed();
    let joins = sessions.len() as u64;
    let fill_cpu = meter.ms_per(joins);
    stage.progress.phase("presence: the member's joined events");
    let expected = sessions.len();
    let all_seen = setup::poll_until(Duration::from_millis(50), "every joined event", || {
        let seen = seen.clone();
        async move { lock(&seen).named.len() >= expected }
    })
    .await;
    if all_seen.is_err() {
        tracing::warn!("the watching member did not see every joiner");
    }
    watching.abort();
    let seen = std::mem::take(&mut *lock(&seen));
    let raw = RawPresence::start(stage).await?;
    stage
        .progress
        .phase("presence: raw joins (request + KV put)");
    // The raw joins have no worker: their responder runs in the bench.
    let meter = CpuMeter::start(&[pids[0], None, pids[2]]);
    let raw_join_time = raw.joins(joins as usize, s.join_concurrency.max(1)).await?;
    let raw_cpu = meter.ms_per(joins);

    stage.progress.phase(format!(
        "presence: /users of a {}-user room",
        sessions.len()
    ));
    let asker = &sessions[0].0;
    let mut listed = 0;
    let mut users = Vec::with_capacity(s.users_requests);
    let mut reply_len = 0;
    for _ in 0..s.users_requests {
        let started = Instant::now();
        let reply = asker.users(&big).await.map_err(BenchError::nats)?;
        users.push(micros(started.elapsed()));
        listed = reply.users.len();
        reply_len = serde_json::to_vec(&reply).map_or(0, |v| v.len());
    }
    let raw_users = raw.users(s.users_requests, reply_len).await?;

    let crash = crash(stage).await?;

    stage.progress.phase("presence: leaving");
    watcher.close().await;
    futures::stream::iter(sessions)
        .for_each_concurrent(s.join_concurrency.max(1), |(chat, drained)| async move {
            chat.close().await;
            drained.abort();
        })
        .await;

    let raw_rate = Some(rate(joins, raw_join_time));
    let mut rows = vec![
        Row::new("join rate", "joins/s", Some(rate(joins, spread_time)))
            .baseline("request + KV put", raw_rate)
            .target(Target::AtLeast(2000.0))
            .note(format!(
                "{} sessions joining one of {} rooms each ({} at a time): presence request to the welcome event, stream opened",
                s.presence_sessions,
                small.len(),
                s.join_concurrency
            )),
        Row::new(
            format!("join rate, filling one {joins}-user room"),
            "joins/s",
            Some(rate(joins, fill_time)),
        )
        .baseline("request + KV put", raw_rate)
        .target(Target::AtLeast(1000.0))
        .note(format!(
            "the same sessions then join one room; each joined event reaches every member already there ({} joins, {} deliveries if each had its own event)",
            joins,
            joins * joins.saturating_sub(1) / 2
        )),
        Row::new(
            "joined events while filling the room",
            "events",
            Some(seen.events as f64),
        )
        .note(format!(
            "seen by a member who was there first: {} users named, each arrival once (user or others)",
            seen.named.len()
        )),
        Row::new(
            "joiners a member missed",
            "users",
            Some(joins.saturating_sub(seen.named.len() as u64) as f64),
        )
        .target(Target::Exactly(0.0)),
        Row::new(
            "joiners a member saw twice",
            "users",
            Some(seen.named.values().filter(|&&n| n > 1).count() as f64),
        )
        .target(Target::Exactly(0.0)),
    ];
    rows.extend(cpu_rows("across rooms", &spread_cpu, &raw_cpu));
    rows.extend(cpu_rows("filling the room", &fill_cpu, &raw_cpu));
    let users = Percentiles::of(users);
    rows.extend(
        latency_rows(
            &format!("/users ({listed} users)"),
            users,
            "request/reply of the same size",
            raw_users,
            Some(Target::Below(5.0)),
        )
        .into_iter()
        .filter(|row| row.figure.ends_with("p50") || row.figure.ends_with("p99")),
    );
    rows.push(
        Row::new("crashed sessions gone after", "s", crash)
            .baseline("session TTL", Some(s.presence_ttl_secs as f64))
            .note(format!(
                "{} sessions dropped without leaving, until /users lists none of them",
                s.crashed_sessions
            )),
    );
    Ok(rows)
}

/// The processes whose CPU per join is measured, in the order of their pids.
const MEASURED: [&str; 3] = ["nats-server", "presence worker", "bench (the clients)"];

/// CPU per join of each measured process and of all of them over one phase, against
/// the raw joins' (their responder runs in the bench process).
fn cpu_rows(phase: &str, chat: &[Option<f64>], raw: &[Option<f64>]) -> Vec<Row> {
    let total = |figures: &[Option<f64>]| figures.iter().flatten().sum::<f64>();
    let mut rows: Vec<Row> = MEASURED
        .iter()
        .zip(chat.iter().zip(raw))
        .map(|(name, (chat, raw))| {
            let row = Row::new(format!("CPU per join {phase}: {name}"), "ms", *chat);
            match raw {
                // The raw joins have no presence worker: nothing to compare with.
                None => row,
                Some(_) => row.baseline("request + KV put", *raw),
            }
        })
        .collect();
    rows.push(
        Row::new(format!("CPU per join {phase}: all three"), "ms", Some(total(chat)))
            .baseline("request + KV put", Some(total(raw)))
            .note("user + system time of each process over the phase (/proc/<pid>/stat) / joins; the phase includes the heartbeats sent meanwhile"),
    );
    rows
}

/// Crashes `crashed_sessions` joined sessions and returns the seconds until `/users`
/// no longer lists any of them.
async fn crash(stage: &Stage) -> Result<Option<f64>, BenchError> {
    let s = &stage.sizes;
    let room = stage.room("crash")?;
    stage.progress.phase(format!(
        "presence: {} sessions join, then crash",
        s.crashed_sessions
    ));
    stage
        .register(
            (0..s.crashed_sessions)
                .map(|i| format!("c{i}"))
                .chain(["observer".to_string()]),
        )
        .await?;
    let doomed: Vec<Session> = futures::stream::iter(0..s.crashed_sessions)
        .map(|i| {
            let room = room.clone();
            async move {
                let (chat, mut events) = stage.chat(&format!("c{i}")).await?;
                setup::join(&chat, &mut events, &room).await?;
                Ok::<_, BenchError>((chat, setup::drain(events)))
            }
        })
        .buffer_unordered(s.join_concurrency.max(1))
        .try_collect()
        .await?;
    let (observer, _events) = stage.chat("observer").await?;
    let online = observer.users(&room).await.map_err(BenchError::nats)?;
    if online.users.len() != s.crashed_sessions {
        return Err(BenchError::nats(format!(
            "{} of {} sessions online before the crash",
            online.users.len(),
            s.crashed_sessions
        )));
    }
    for (chat, drained) in doomed {
        drop(chat);
        drained.abort();
    }
    let started = Instant::now();
    stage
        .progress
        .phase("presence: waiting for the crashed sessions to go");
    let gone = setup::poll_until(
        Duration::from_millis(50),
        "crashed sessions to expire",
        || {
            let (observer, room) = (&observer, &room);
            async move {
                match observer.users(room).await {
                    Ok(reply) => {
                        stage
                            .progress
                            .update(format!("{} still listed", reply.users.len()));
                        reply.users.is_empty()
                    }
                    Err(_) => false,
                }
            }
        },
    )
    .await;
    Ok(gone.ok().map(|()| started.elapsed().as_secs_f64()))
}

/// What a member saw of the room filling: each user named by a `joined` event and
/// how often, and how many such events.
#[derive(Default)]
struct Seen {
    named: HashMap<String, u32>,
    events: u64,
}

fn lock(seen: &Mutex<Seen>) -> std::sync::MutexGuard<'_, Seen> {
    seen.lock().unwrap_or_else(|e| e.into_inner())
}

/// Counts the `joined` events of `events` (live only) into `seen`, every user named.
fn watch(mut events: mpsc::Receiver<Event>, seen: Arc<Mutex<Seen>>) -> JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            if let Event::System {
                user,
                kind: SystemKind::Joined,
                detail,
                ..
            } = event
            {
                let mut seen = lock(&seen);
                seen.events += 1;
                for who in std::iter::once(user).chain(detail.others) {
                    *seen.named.entry(who.to_string()).or_default() += 1;
                }
            }
        }
    })
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// The raw baselines: responders on the bench's own subjects.
struct RawPresence {
    client: async_nats::Client,
    join_subject: String,
    users_subject: String,
    users_reply: mpsc::UnboundedSender<Bytes>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for RawPresence {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl RawPresence {
    async fn start(stage: &Stage) -> Result<Self, BenchError> {
        let tag = stage.room("raw")?;
        let join_subject = format!("bench.{tag}.join");
        let users_subject = format!("bench.{tag}.users");
        let responder = stage.raw().await?;
        let js = jetstream::new(responder.clone());
        let store = js
            .create_key_value(kv::Config {
                bucket: format!("bench_{}", tag.as_str().replace('-', "_")),
                history: 1,
                ..Default::default()
            })
            .await
            .map_err(BenchError::nats)?;
        let mut joins = responder
            .queue_subscribe(join_subject.clone(), "bench".into())
            .await
            .map_err(BenchError::nats)?;
        let mut users = responder
            .subscribe(users_subject.clone())
            .await
            .map_err(BenchError::nats)?;
        responder.flush().await.map_err(BenchError::nats)?;
        let (users_reply, mut reply_body) = mpsc::unbounded_channel::<Bytes>();
        let join_task = {
            let responder = responder.clone();
            tokio::spawn(async move {
                while let Some(request) = joins.next().await {
                    let (responder, store) = (responder.clone(), store.clone());
                    tokio::spawn(async move {
                        let key = String::from_utf8_lossy(&request.payload).into_owned();
                        let _ = store.put(key, request.payload.clone()).await;
                        if let Some(reply) = request.reply {
                            let _ = responder.publish(reply, Bytes::from_static(b"{}")).await;
                        }
                    });
                }
            })
        };
        let users_task = {
            let responder = responder.clone();
            tokio::spawn(async move {
                let mut body = Bytes::new();
                while let Some(request) = users.next().await {
                    while let Ok(b) = reply_body.try_recv() {
                        body = b;
                    }
                    if let Some(reply) = request.reply {
                        let _ = responder.publish(reply, body.clone()).await;
                    }
                }
            })
        };
        Ok(Self {
            client: responder,
            join_subject,
            users_subject,
            users_reply,
            tasks: vec![join_task, users_task],
        })
    }

    /// `total` join-shaped requests from `concurrency` connections; the time taken.
    async fn joins(&self, total: usize, concurrency: usize) -> Result<Duration, BenchError> {
        let started = Instant::now();
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let workers = (0..concurrency).map(|_| {
            let next = next.clone();
            let subject = self.join_subject.clone();
            let client = self.client.clone();
            async move {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= total {
                        return Ok::<_, BenchError>(());
                    }
                    let key = format!("r{}.u{i}.s{i}", i % 7);
                    client
                        .request(subject.clone(), Bytes::from(key))
                        .await
                        .map_err(BenchError::nats)?;
                }
            }
        });
        futures::future::try_join_all(workers).await?;
        Ok(started.elapsed())
    }

    /// `n` sequential requests answered with `len` bytes from memory.
    async fn users(&self, n: usize, len: usize) -> Result<Option<Percentiles>, BenchError> {
        let _ = self.users_reply.send(Bytes::from(vec![b' '; len]));
        let mut samples = Vec::with_capacity(n);
        for _ in 0..n {
            let started = Instant::now();
            self.client
                .request(self.users_subject.clone(), Bytes::new())
                .await
                .map_err(BenchError::nats)?;
            samples.push(micros(started.elapsed()));
        }
        Ok(Percentiles::of(samples))
    }
}
