//! Scenario rooms (run only when named, `--only rooms`: it is long at full size): a
//! room is a JetStream stream, so what does a room cost the server?
//!
//! R rooms are made the chat's way: a few sessions (`--rooms-sessions`) each join
//! their share of the rooms one after another and leave again, so the presence worker
//! creates every room stream on its first join and stores a `joined` and a `left`
//! event in it, and the session's feed consumer comes and goes. Measured:
//!
//! - the first join of a room (stream created) and, on a sample, the join of a room
//!   that exists, and `/rooms` listing all R;
//! - at rest with R rooms (nobody in them): the server's resident memory and open
//!   file descriptors (and both per room, over the server before the rooms), the
//!   server's CPU, and the workers' memory and CPU;
//! - on the bench's own server only: the time from killing and starting the server
//!   again until every room stream answers, the first join after that, and the
//!   server's memory and descriptors after the restart.
//!
//! On a cluster (`--cluster N`: every room stream R3) the server figures are given for
//! each node and for all of them together, and two restarts are timed: one node alone
//! (until it listens, and until every room's replicas are current again), then every
//! node at once (until the last room's stream answers, and until every room has its
//! leader and current replicas).
//!
//! If making a room fails (the storage budget refusing the stream, say), the rooms
//! made so far are measured and the failure is reported, with the end of the presence
//! worker's log: what breaks first is a finding too.
//!
//! No raw baseline runs in the same process (it would double the streams on the
//! server); BENCHMARKS.md sets the figures beside the probe of plain streams.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use chat_protocol::{streams::stream_name, RoomName};
use futures::{StreamExt, TryStreamExt};

use crate::procfs::{self, Sample};
use crate::report::Row;
use crate::setup::{self, poll_within, BenchError, Stage};
use crate::stats::{rate, Samples};

/// Rooms whose join is timed again once they exist.
const EXISTING_SAMPLE: usize = 200;

/// How long a restart may take to bring every room back before it is reported as not
/// back: as long as the harness waits for a server to start.
const BACK_PATIENCE: Duration = test_support::SERVER_START_PATIENCE;

/// Stream infos asked at once while checking that every room's replicas are current.
const CHECKS_IN_FLIGHT: usize = 32;

/// A server at one moment: memory, CPU time and open file descriptors.
#[derive(Debug, Clone, Copy)]
struct ServerLook {
    sample: Sample,
    fds: usize,
}

impl ServerLook {
    fn of(pid: Option<u32>) -> Option<Self> {
        let pid = pid?;
        Some(Self {
            sample: Sample::of(pid)?,
            fds: procfs::open_files(pid)?,
        })
    }

    /// Every server of the stage (each node of a cluster), in order.
    fn all(stage: &Stage) -> Vec<Option<Self>> {
        stage.server_pids().into_iter().map(Self::of).collect()
    }

    /// The servers together: memory, CPU time and descriptors summed (`None` if one
    /// could not be read).
    fn total(looks: &[Option<Self>]) -> Option<Self> {
        let first = (*looks.first()?)?;
        looks.iter().skip(1).try_fold(first, |sum, look| {
            let look = (*look)?;
            Some(Self {
                sample: Sample {
                    rss_mb: sum.sample.rss_mb + look.sample.rss_mb,
                    hwm_mb: sum.sample.hwm_mb + look.sample.hwm_mb,
                    cpu: sum.sample.cpu + look.sample.cpu,
                    at: sum.sample.at,
                },
                fds: sum.fds + look.fds,
            })
        })
    }
}

/// What the rows call each server: "server" alone, "node 1", "node 2" ... and "all N
/// nodes" on a cluster, with the looks of each (the sum last).
fn labelled(looks: &[Option<ServerLook>]) -> Vec<(String, Option<ServerLook>)> {
    if looks.len() == 1 {
        return vec![("server".into(), looks[0])];
    }
    let mut out: Vec<_> = looks
        .iter()
        .enumerate()
        .map(|(i, look)| (format!("node {}", i + 1), *look))
        .collect();
    out.push((
        format!("all {} nodes", looks.len()),
        ServerLook::total(looks),
    ));
    out
}

/// Runs the scenario (it restarts the bench's own server at the end).
pub async fn run(stage: &mut Stage) -> Result<Vec<Row>, BenchError> {
    let n = stage.sizes.rooms.max(1);
    let k = stage.sizes.rooms_sessions.clamp(1, n);
    let rooms: Vec<RoomName> = (0..n)
        .map(|i| stage.room(&format!("r{i}")))
        .collect::<Result<_, _>>()?;
    stage
        .progress
        .phase(format!("rooms: connecting {k} sessions"));
    let mut sessions = Vec::with_capacity(k);
    for i in 0..k {
        sessions.push(stage.chat(&format!("rooms{i}")).await?);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let empty = ServerLook::all(stage);

    stage.progress.phase(format!(
        "rooms: creating {n} rooms (first join and leave), {k} at a time"
    ));
    let first = Samples::default();
    let made = Mutex::new(Vec::with_capacity(n));
    let failure = Mutex::new(None);
    let started = Instant::now();
    let shares = sessions.iter_mut().enumerate().map(|(i, (chat, events))| {
        let (rooms, first, progress) = (&rooms, &first, &stage.progress);
        let (made, failure) = (&made, &failure);
        async move {
            for room in rooms.iter().skip(i).step_by(k) {
                let t = Instant::now();
                if let Err(err) = setup::join(chat, events, room).await {
                    // What breaks first: keep the first failure, measure what was made.
                    let mut failure = failure.lock().unwrap_or_else(|e| e.into_inner());
                    failure.get_or_insert_with(|| format!("{room}: {err}"));
                    return;
                }
                first.record(t.elapsed());
                made.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(room.clone());
                chat.leave(room).await;
                if i == 0 {
                    progress.update(format!("{} of {n}", first.len()));
                }
            }
        }
    });
    futures::future::join_all(shares).await;
    let creation = started.elapsed();
    let rooms = made.into_inner().unwrap_or_else(|e| e.into_inner());
    let failure = failure.into_inner().unwrap_or_else(|e| e.into_inner());
    if rooms.is_empty() {
        return Err(BenchError::Timeout(failure.unwrap_or_default()));
    }
    if let Some(failure) = &failure {
        stage.progress.phase(format!(
            "rooms: making rooms stopped after {} of {n}: {failure}; the presence worker's log ends:\n{}",
            rooms.len(),
            setup::log_tail(&stage.presence.log)
        ));
    }

    stage
        .progress
        .phase("rooms: joining rooms that exist, and /rooms");
    let existing = Samples::default();
    let every = (rooms.len() / EXISTING_SAMPLE.min(rooms.len())).max(1);
    let (chat, events) = &mut sessions[0];
    for room in rooms.iter().step_by(every) {
        let t = Instant::now();
        setup::join(chat, events, room).await?;
        existing.record(t.elapsed());
        chat.leave(room).await;
    }
    let t = Instant::now();
    let listed = chat.list_rooms().await;
    let list_ms = t.elapsed().as_secs_f64() * 1000.0;
    let wanted: HashSet<String> = rooms.iter().map(stream_name).collect();
    let listed = listed.ok().map(|reply| {
        let ours = reply
            .rooms
            .iter()
            .filter(|r| wanted.contains(&stream_name(&r.room)));
        ours.count() as f64
    });

    let js = jetstream::new(stage.raw().await?);
    let streams = js
        .stream_names()
        .try_collect::<Vec<String>>()
        .await
        .map_err(BenchError::nats)?;
    let stored = streams.iter().filter(|s| wanted.contains(*s)).count();

    let idle = stage.sizes.idle_duration();
    stage.progress.phase(format!(
        "rooms: at rest with {} rooms for {} s",
        rooms.len(),
        stage.sizes.idle_secs
    ));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let workers = [&stage.presence, &stage.history];
    let before = (ServerLook::all(stage), workers.map(|w| w.sample()));
    tokio::time::sleep(idle).await;
    let after = (ServerLook::all(stage), workers.map(|w| w.sample()));

    let n = rooms.len();
    let mut rows = vec![
        Row::new("room streams stored", "streams", Some(stored as f64)).note(format!(
            "of {} rooms asked for, made by {k} sessions{}",
            stage.sizes.rooms,
            match &failure {
                Some(failure) => format!("; making rooms stopped at the first failure: {failure}"),
                None => String::new(),
            }
        )),
        Row::new(
            "rooms made per second",
            "rooms/s",
            Some(rate(n as u64, creation)),
        )
        .note("first join (the presence worker creates the stream) and leave"),
    ];
    for (what, samples) in [
        ("first join of a room", &first),
        ("join of an existing room", &existing),
    ] {
        let p = samples.percentiles();
        for (name, value) in [("p50", p.map(|p| p.p50)), ("p99", p.map(|p| p.p99))] {
            rows.push(Row::new(format!("{what} {name}"), "ms", value));
        }
    }
    rows.push(
        Row::new("/rooms listing every room", "ms", Some(list_ms))
            .note("one request to the presence worker"),
    );
    rows.push(Row::new("rooms listed by /rooms", "rooms", listed));

    let cpu = |b: Option<Sample>, a: Option<Sample>| Some(a?.cpu_percent_since(&b?));
    let (empty, at_rest, rest_began) = (labelled(&empty), labelled(&after.0), labelled(&before.0));
    for (((name, at_rest), (_, empty)), (_, rest_began)) in
        at_rest.into_iter().zip(empty).zip(rest_began)
    {
        let per_room = |f: fn(&ServerLook) -> f64| -> Option<f64> {
            Some((f(&at_rest?) - f(&empty?)) / n as f64)
        };
        rows.push(
            Row::new(
                format!("{name} memory with {n} rooms"),
                "MiB",
                at_rest.map(|s| s.sample.rss_mb),
            )
            .note(format!(
                "nats-server VmRSS at rest; {:.1} MiB before the rooms",
                empty.map_or(f64::NAN, |s| s.sample.rss_mb)
            )),
        );
        rows.push(Row::new(
            format!("{name} memory per room"),
            "KiB",
            per_room(|s| s.sample.rss_mb * 1024.0),
        ));
        rows.push(
            Row::new(
                format!("{name} open files with {n} rooms"),
                "fds",
                at_rest.map(|s| s.fds as f64),
            )
            .note(format!("{} before the rooms", empty.map_or(0, |s| s.fds))),
        );
        rows.push(Row::new(
            format!("{name} open files per room"),
            "fds",
            per_room(|s| s.fds as f64),
        ));
        rows.push(
            Row::new(
                format!("{name} CPU at rest with {n} rooms"),
                "% of a core",
                cpu(rest_began.map(|s| s.sample), at_rest.map(|s| s.sample)),
            )
            .note(format!(
                "over {} s, nobody in the rooms",
                stage.sizes.idle_secs
            )),
        );
    }
    for (i, name) in ["presence worker", "history worker"].iter().enumerate() {
        rows.push(Row::new(
            format!("{name} memory with {n} rooms"),
            "MiB",
            after.1[i].map(|s| s.rss_mb),
        ));
        rows.push(Row::new(
            format!("{name} CPU at rest with {n} rooms"),
            "% of a core",
            cpu(before.1[i], after.1[i]),
        ));
    }
    // A long run may still fail in a restart: the figures so far are on stderr.
    show(stage, &rows);

    for (chat, _) in &sessions {
        chat.close().await;
    }
    drop(sessions);
    if stage.server_pids().len() > 1 {
        let restarted = restart_one_node(stage, &js, &rooms).await;
        show(stage, &restarted);
        rows.extend(restarted);
    }
    let restarted = restart(stage, &js, &rooms).await?;
    show(stage, &restarted);
    rows.extend(restarted);
    Ok(rows)
}

/// Prints `rows` on the progress line (stderr) as they are measured: a long run may
/// fail or be stopped before the table is printed (and deleting a cluster's store
/// of thousands of rooms takes minutes).
fn show(stage: &Stage, rows: &[Row]) {
    for row in rows {
        let value = row
            .chat
            .map_or("not measured".into(), |v| format!("{v:.2}"));
        stage
            .progress
            .phase(format!("rooms: {}: {value} {}", row.figure, row.unit));
    }
}

/// The user who joins a room once the restarted servers are back.
const AFTER_RESTART: &str = "rooms-after";

/// Milliseconds a new session takes to join `room` once it is logged in (the login
/// tried again for up to [`setup::PATIENCE`] while the auth worker's user table
/// recovers), or `None` if it could not log in or join.
async fn first_join(stage: &Stage, room: &RoomName) -> Option<f64> {
    let deadline = Instant::now() + setup::PATIENCE;
    let (chat, mut events) = loop {
        match stage.chat(AFTER_RESTART).await {
            Ok(session) => break session,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(500)).await
            }
            Err(_) => return None,
        }
    };
    let t = Instant::now();
    let joined = setup::join(&chat, &mut events, room).await.is_ok();
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    chat.close().await;
    joined.then_some(ms)
}

/// Seconds from `t` until `check` is true (polled every 50 ms), or `None` if that
/// took longer than [`BACK_PATIENCE`].
async fn seconds_until<F, Fut>(t: Instant, what: &str, check: F) -> Option<f64>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let back = poll_within(BACK_PATIENCE, Duration::from_millis(50), what, check).await;
    back.ok().map(|()| t.elapsed().as_secs_f64())
}

/// Seconds from `t` until every room's stream has a leader and every replica online
/// and current (each room checked until it is, a few at a time), or `None` after
/// [`BACK_PATIENCE`].
async fn all_current(js: &jetstream::Context, rooms: &[RoomName], t: Instant) -> Option<f64> {
    let mut behind: Vec<String> = rooms.iter().map(stream_name).collect();
    while !behind.is_empty() {
        if t.elapsed() > BACK_PATIENCE {
            return None;
        }
        behind = futures::stream::iter(behind)
            .map(|name| async move {
                let current = setup::replicas_current(js, &name).await;
                (!current).then_some(name)
            })
            .buffer_unordered(CHECKS_IN_FLIGHT)
            .filter_map(|name| async move { name })
            .collect()
            .await;
        if !behind.is_empty() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Some(t.elapsed().as_secs_f64())
}

/// On a cluster: kills the last node and starts it again, timed until it listens and
/// until every room's replicas (its own among them) are current again.
async fn restart_one_node(
    stage: &mut Stage,
    js: &jetstream::Context,
    rooms: &[RoomName],
) -> Vec<Row> {
    let node = stage.server_pids().len() - 1;
    let n = rooms.len();
    stage.progress.phase(format!(
        "rooms: restarting node {} of the cluster with {n} rooms",
        node + 1
    ));
    let t = Instant::now();
    stage.restart_node(node);
    let listening = t.elapsed().as_secs_f64();
    let current = all_current(js, rooms, t).await;
    vec![
        Row::new(
            format!("node {} restart until it listens", node + 1),
            "s",
            Some(listening),
        )
        .note(format!(
            "killed (-9) and started again with {n} rooms; the other nodes kept running"
        )),
        Row::new(
            format!("node {} restart until its rooms are current", node + 1),
            "s",
            current,
        )
        .note("from the kill until every room stream has a leader and every replica current"),
    ]
}

/// Kills and starts the bench's own server (every node of its cluster at once) again
/// and times it until every room stream answers (and, on a cluster, until every room
/// has its leader and current replicas), then a first join; nothing with
/// `--nats-url`.
async fn restart(
    stage: &mut Stage,
    js: &jetstream::Context,
    rooms: &[RoomName],
) -> Result<Vec<Row>, BenchError> {
    let n = rooms.len();
    let nodes = stage.server_pids().len();
    let what = if nodes > 1 {
        "every node"
    } else {
        "nats-server"
    };
    stage
        .progress
        .phase(format!("rooms: restarting {what} with {n} rooms"));
    // Before the restart: registering needs the user table, which comes back later.
    stage.register([AFTER_RESTART.to_string()]).await?;
    let t = Instant::now();
    let restarted = stage.restart_server().await?;
    let mut back = None;
    let mut current = None;
    let mut join = None;
    if restarted {
        let last = stream_name(rooms.last().expect("at least one room"));
        back = seconds_until(t, "the room streams after the restart", || async {
            js.get_stream(&last).await.is_ok()
        })
        .await;
        if nodes > 1 {
            current = all_current(js, rooms, t).await;
        }
        join = first_join(stage, &rooms[0]).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let looks = if restarted {
        ServerLook::all(stage)
    } else {
        Vec::new()
    };
    let mut rows = vec![
        Row::new(format!("{what} restart with {n} rooms"), "s", back)
            .note("from the kill until the last room's stream answers"),
    ];
    if nodes > 1 {
        rows.push(
            Row::new(
                format!("{what} restart until every room is current"),
                "s",
                current,
            )
            .note("from the kill until every room stream has a leader and every replica current"),
        );
    }
    rows.push(
        Row::new("first join after the restart", "ms", join)
            .note("a new session, into a room that exists"),
    );
    for (name, look) in labelled(&looks) {
        rows.push(Row::new(
            format!("{name} memory after the restart"),
            "MiB",
            look.map(|l| l.sample.rss_mb),
        ));
        rows.push(Row::new(
            format!("{name} open files after the restart"),
            "fds",
            look.map(|l| l.fds as f64),
        ));
    }
    Ok(rows)
}
