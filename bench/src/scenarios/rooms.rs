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
//! No raw baseline runs in the same process (it would double the streams on the
//! server); BENCHMARKS.md sets the figures beside the probe of plain streams.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use chat_protocol::{streams::stream_name, RoomName};
use futures::TryStreamExt;

use crate::procfs::{self, Sample};
use crate::report::Row;
use crate::setup::{self, poll_until, BenchError, Stage};
use crate::stats::{rate, Samples};

/// Rooms whose join is timed again once they exist.
const EXISTING_SAMPLE: usize = 200;

/// The server at one moment: memory, CPU time and open file descriptors.
#[derive(Debug, Clone, Copy)]
struct ServerLook {
    sample: Sample,
    fds: usize,
}

impl ServerLook {
    fn of(stage: &Stage) -> Option<Self> {
        let pid = stage.server_pid()?;
        Some(Self {
            sample: Sample::of(pid)?,
            fds: procfs::open_files(pid)?,
        })
    }
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
    let empty = ServerLook::of(stage);

    stage.progress.phase(format!(
        "rooms: creating {n} rooms (first join and leave), {k} at a time"
    ));
    let first = Samples::default();
    let started = Instant::now();
    let shares = sessions.iter_mut().enumerate().map(|(i, (chat, events))| {
        let (rooms, first, progress) = (&rooms, &first, &stage.progress);
        async move {
            for room in rooms.iter().skip(i).step_by(k) {
                let t = Instant::now();
                setup::join(chat, events, room).await?;
                first.record(t.elapsed());
                chat.leave(room).await;
                if i == 0 {
                    progress.update(format!("{} of {n}", first.len()));
                }
            }
            Ok::<_, BenchError>(())
        }
    });
    futures::future::try_join_all(shares).await?;
    let creation = started.elapsed();

    stage
        .progress
        .phase("rooms: joining rooms that exist, and /rooms");
    let existing = Samples::default();
    let every = (n / EXISTING_SAMPLE.min(n)).max(1);
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
        "rooms: at rest with {n} rooms for {} s",
        stage.sizes.idle_secs
    ));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let workers = [&stage.presence, &stage.history];
    let before = (ServerLook::of(stage), workers.map(|w| w.sample()));
    tokio::time::sleep(idle).await;
    let after = (ServerLook::of(stage), workers.map(|w| w.sample()));

    let mut rows = vec![
        Row::new("room streams stored", "streams", Some(stored as f64))
            .note(format!("of {n} rooms made by {k} sessions")),
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

    let at_rest = after.0;
    let per_room =
        |f: fn(&ServerLook) -> f64| -> Option<f64> { Some((f(&at_rest?) - f(&empty?)) / n as f64) };
    rows.push(
        Row::new(
            format!("server memory with {n} rooms"),
            "MiB",
            at_rest.map(|s| s.sample.rss_mb),
        )
        .note(format!(
            "nats-server VmRSS at rest; {:.1} MiB before the rooms",
            empty.map_or(f64::NAN, |s| s.sample.rss_mb)
        )),
    );
    rows.push(Row::new(
        "server memory per room",
        "KiB",
        per_room(|s| s.sample.rss_mb * 1024.0),
    ));
    rows.push(
        Row::new(
            format!("server open files with {n} rooms"),
            "fds",
            at_rest.map(|s| s.fds as f64),
        )
        .note(format!("{} before the rooms", empty.map_or(0, |s| s.fds))),
    );
    rows.push(Row::new(
        "server open files per room",
        "fds",
        per_room(|s| s.fds as f64),
    ));
    let cpu = |b: Option<Sample>, a: Option<Sample>| Some(a?.cpu_percent_since(&b?));
    rows.push(
        Row::new(
            format!("server CPU at rest with {n} rooms"),
            "% of a core",
            cpu(before.0.map(|s| s.sample), after.0.map(|s| s.sample)),
        )
        .note(format!(
            "over {} s, nobody in the rooms",
            stage.sizes.idle_secs
        )),
    );
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

    for (chat, _) in &sessions {
        chat.close().await;
    }
    drop(sessions);
    rows.extend(restart(stage, &js, &rooms).await?);
    Ok(rows)
}

/// Kills and starts the bench's own server again and times it until every room
/// stream answers, then a first join; nothing with `--nats-url`.
async fn restart(
    stage: &mut Stage,
    js: &jetstream::Context,
    rooms: &[RoomName],
) -> Result<Vec<Row>, BenchError> {
    let n = rooms.len();
    stage
        .progress
        .phase(format!("rooms: restarting nats-server with {n} rooms"));
    let t = Instant::now();
    let restarted = stage.restart_server().await?;
    let mut back = None;
    let mut join = None;
    if restarted {
        let last = stream_name(rooms.last().expect("at least one room"));
        poll_until(
            Duration::from_millis(50),
            "the room streams after the restart",
            || async { js.get_stream(&last).await.is_ok() },
        )
        .await?;
        back = Some(t.elapsed().as_secs_f64());
        let (chat, mut events) = stage.chat("rooms-after").await?;
        let t = Instant::now();
        setup::join(&chat, &mut events, &rooms[0]).await?;
        join = Some(t.elapsed().as_secs_f64() * 1000.0);
        chat.close().await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let look = if restarted {
        ServerLook::of(stage)
    } else {
        None
    };
    Ok(vec![
        Row::new(format!("server restart with {n} rooms"), "s", back)
            .note("from the kill until the last room's stream answers"),
        Row::new("first join after the restart", "ms", join)
            .note("a new session, into a room that exists"),
        Row::new(
            "server memory after the restart",
            "MiB",
            look.map(|l| l.sample.rss_mb),
        ),
        Row::new(
            "server open files after the restart",
            "fds",
            look.map(|l| l.fds as f64),
        ),
    ])
}
