//! Scenario flood (only when named: `--only flood`): one raw flooder at full speed,
//! two members chatting. The flooder is a registered chat user on a raw async-nats connection publishing chat messages
//! into the room as fast as the connection takes them (no pacing, no
//! acknowledgements); the members are [`chat_client::Chat`] sessions sending stamped
//! messages to each other at 4 per second each (under the allowance) before, during
//! and after the flood. A moderation worker with the contract's allowance (burst 20,
//! 5 per second) runs for the scenario.
//!
//! Reported: the members' end-to-end latency before and during the flood (target p99
//! under 1 s), how long after its first message the flooder was stopped (its
//! connection kicked; target under 1 s), how many of its messages the stream
//! accepted, and how many are left once the excess is removed.

use std::ffi::OsStr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use chat_client::Event;
use chat_protocol::auth::static_users;
use chat_protocol::body::{MessageKind, SystemEvent, SystemKind};
use chat_protocol::{auth, streams, subjects, UserName};
use futures::future::try_join_all;

use crate::processes::Process;
use crate::report::{Row, Target};
use crate::setup::{self, BenchError, Stage};
use crate::stamp;
use crate::stats::Percentiles;

/// Each member's sending interval (4 per second, under the allowance of 5).
const MEMBER_INTERVAL: Duration = Duration::from_millis(250);
/// Members chat this long before the flood starts, and after it ends.
const CALM: Duration = Duration::from_secs(2);

/// Latency samples with the time they were taken (since the scenario started).
type Timed = Arc<Mutex<Vec<(Duration, u64)>>>;

/// Runs the scenario.
pub async fn run(stage: &Stage) -> Result<Vec<Row>, BenchError> {
    let flood_for = stage.sizes.flood_duration();
    let room = stage.room("flood")?;
    let flooder_name = "flooder";
    let names = ["flood-m1", "flood-m2"];
    stage
        .progress
        .phase("flood: starting a moderation worker with the contract's allowance");
    let strict = strict_worker(stage)?;
    wait_for_instances(stage, 2).await?;
    stage
        .register(names.iter().chain([&flooder_name]).map(|n| n.to_string()))
        .await?;

    stage.progress.phase("flood: members joining");
    let start = Instant::now();
    let samples: Timed = Arc::default();
    let members = try_join_all(names.iter().map(|name| {
        let (room, samples) = (room.clone(), samples.clone());
        async move {
            let (chat, mut events) = stage.chat(name).await?;
            setup::join(&chat, &mut events, &room).await?;
            let receiver = tokio::spawn(async move {
                while let Some(event) = events.recv().await {
                    if let Event::Message {
                        text,
                        replay: false,
                        ..
                    } = &event
                    {
                        if let Some(age) = stamp::age(text.as_bytes()) {
                            let micros = u64::try_from(age.as_micros()).unwrap_or(u64::MAX);
                            let mut s = samples.lock().unwrap_or_else(|e| e.into_inner());
                            s.push((start.elapsed(), micros));
                        }
                    }
                }
            });
            Ok::<_, BenchError>((chat, receiver))
        }
    }))
    .await?;
    let talking: Vec<_> = members
        .iter()
        .map(|(chat, _)| {
            let (chat, room) = (chat.clone(), room.clone());
            let text_chars = stage.sizes.text_chars;
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(MEMBER_INTERVAL);
                loop {
                    tick.tick().await;
                    let _ = chat
                        .send(&room, MessageKind::Chat, &stamp::text(text_chars))
                        .await;
                }
            })
        })
        .collect();

    tokio::time::sleep(CALM).await;
    stage
        .progress
        .phase(format!("flood: flooding for {} s", flood_for.as_secs_f64()));
    let kicked: Arc<Mutex<Option<Instant>>> = Arc::default();
    let flooder = {
        let kicked = kicked.clone();
        let user = UserName::new(flooder_name)?;
        async_nats::ConnectOptions::with_user_and_password(
            flooder_name.into(),
            test_support::password_of(flooder_name),
        )
        .custom_inbox_prefix(auth::inbox_prefix(&user))
        .event_callback(move |event| {
            let kicked = kicked.clone();
            async move {
                if matches!(event, async_nats::Event::Disconnected) {
                    kicked
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .get_or_insert_with(Instant::now);
                }
            }
        })
        .connect(&stage.url)
        .await
        .map_err(BenchError::nats)?
    };
    let flood_started = Instant::now();
    let flood_began = start.elapsed();
    let subject = subjects::room_message(&room, &UserName::new(flooder_name)?);
    let body = bytes::Bytes::from(
        serde_json::to_vec(
            &chat_protocol::body::ChatMessage::new(
                &room,
                &UserName::new(flooder_name)?,
                MessageKind::Chat,
                "FLOOD FLOOD FLOOD",
            )
            .expect("a valid text"),
        )
        .expect("messages serialize"),
    );
    let mut published = 0u64;
    while flood_started.elapsed() < flood_for {
        for _ in 0..256 {
            if flooder.publish(subject.clone(), body.clone()).await.is_ok() {
                published += 1;
            }
        }
        tokio::task::yield_now().await;
    }
    let _ = flooder.flush().await;
    let flood_ended = start.elapsed();
    tokio::time::sleep(CALM).await;
    for task in &talking {
        task.abort();
    }
    let stopped_after = kicked
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .map(|at| at.duration_since(flood_started));

    stage.progress.phase("flood: counting what is left");
    let (stored, left) = count_flooder(stage, &room, flooder_name).await?;
    stage.progress.phase("flood: leaving");
    futures::future::join_all(members.iter().map(|(chat, _)| chat.close())).await;
    for (_, receiver) in members {
        receiver.abort();
    }
    drop(strict);

    let samples = samples.lock().unwrap_or_else(|e| e.into_inner()).clone();
    // A message belongs to the window it was sent in (arrival minus its age), so that
    // one sent during the flood and delayed past its end still counts against it.
    let window = |from: Duration, to: Duration| {
        Percentiles::of(
            samples
                .iter()
                .filter(|(at, micros)| {
                    let sent = at.saturating_sub(Duration::from_micros(*micros));
                    sent >= from && sent < to
                })
                .map(|(_, micros)| *micros)
                .collect(),
        )
    };
    let before = window(Duration::ZERO, flood_began);
    let during = window(flood_began, flood_ended);
    let mut rows = Vec::new();
    for (name, pick) in [("p50", 0), ("p99", 1), ("max", 2)] {
        let get = |p: &Percentiles| [p.p50, p.p99, p.max][pick];
        let row = Row::new(
            format!("members' latency during the flood, {name}"),
            "ms",
            during.as_ref().map(get),
        )
        .baseline("before the flood", before.as_ref().map(get));
        rows.push(if name == "p99" {
            row.target(Target::Below(1000.0))
                .note("two members at 4 msg/s each, chat-client sessions")
        } else {
            row
        });
    }
    rows.push(
        Row::new(
            "flooder stopped (kicked) after its first message",
            "ms",
            stopped_after.map(|d| d.as_secs_f64() * 1000.0),
        )
        .target(Target::Below(1000.0))
        .note("raw async-nats at full speed as a registered user; muted, kicked, logs in without publish rights"),
    );
    rows.push(
        Row::new(
            "flooder's messages published",
            "msg",
            Some(published as f64),
        )
        .note(format!(
            "over {} s, most refused once it is muted",
            flood_for.as_secs_f64()
        )),
    );
    rows.push(
        Row::new(
            "flooder's messages stored, then removed",
            "msg",
            Some(stored.saturating_sub(left) as f64),
        )
        .note(format!(
            "{stored} stored before it was stopped; tombstoned and deleted"
        )),
    );
    rows.push(
        Row::new(
            "flooder's messages left in the room",
            "msg",
            Some(left as f64),
        )
        .note("within the allowance: burst 20, 5 per second"),
    );
    Ok(rows)
}

/// Starts a moderation worker with the contract's allowance (the stage's own allows
/// everything, so that the other scenarios' senders are never muted).
fn strict_worker(stage: &Stage) -> Result<Process, BenchError> {
    let password = stage.password_file(static_users::MODERATION);
    let sys_password = stage.password_file(static_users::MODERATION_SYS);
    let env: [(&str, &OsStr); 3] = [
        ("NATS_USER", OsStr::new(static_users::MODERATION)),
        ("NATS_PASSWORD_FILE", password.as_os_str()),
        ("NATS_SYS_PASSWORD_FILE", sys_password.as_os_str()),
    ];
    Process::spawn(
        "moderation-worker-strict",
        &stage.bins.moderation,
        &["--nats-url", &stage.url],
        &env,
        stage.logs.path(),
        (Stdio::null(), Stdio::null()),
    )
    .map_err(|e| BenchError::Spawn("moderation-worker".into(), e))
}

/// Waits until `count` moderation workers answer `$SRV.PING`.
async fn wait_for_instances(stage: &Stage, count: usize) -> Result<(), BenchError> {
    let client = stage.raw().await?;
    setup::poll_until(Duration::from_millis(100), "the moderation workers", || {
        let client = client.clone();
        async move {
            use futures::StreamExt;
            let inbox = client.new_inbox();
            let Ok(mut replies) = client.subscribe(inbox.clone()).await else {
                return false;
            };
            if client
                .publish_with_reply("$SRV.PING.chat-moderation", inbox, "".into())
                .await
                .is_err()
            {
                return false;
            }
            let mut seen = 0;
            while let Ok(Some(_)) =
                tokio::time::timeout(Duration::from_millis(300), replies.next()).await
            {
                seen += 1;
            }
            seen >= count
        }
    })
    .await
}

/// How many of the flooder's messages the room stored, and how many are left, once
/// the moderation worker has written its `muted` event (after removing the excess).
async fn count_flooder(
    stage: &Stage,
    room: &chat_protocol::RoomName,
    flooder: &str,
) -> Result<(usize, usize), BenchError> {
    let js = jetstream::new(stage.raw().await?);
    // The JetStream API may be busy for a while with the excess's deletions: every
    // read is retried until the muted event (written after them) is there.
    let read = |filter: String| {
        let js = js.clone();
        async move {
            let stream = js
                .get_stream(streams::stream_name(room))
                .await
                .map_err(BenchError::nats)?;
            let mut bodies = Vec::new();
            let config = jetstream::consumer::pull::OrderedConfig {
                filter_subject: filter,
                ..Default::default()
            };
            chat_runtime::scan::scan(&stream, config, Duration::from_secs(10), |m, _| {
                bodies.push(m.payload.clone());
                true
            })
            .await
            .map_err(BenchError::nats)?;
            Ok::<_, BenchError>(bodies)
        }
    };
    let events = |bodies: Vec<bytes::Bytes>| -> Vec<SystemEvent> {
        bodies
            .iter()
            .filter_map(|b| serde_json::from_slice(b).ok())
            .filter(|e: &SystemEvent| e.user.as_str() == flooder)
            .collect()
    };
    let deadline = Instant::now() + setup::PATIENCE;
    let system = loop {
        if let Ok(bodies) = read(subjects::room_system(room)).await {
            let system = events(bodies);
            if system.iter().any(|e| e.kind == SystemKind::Muted) {
                break system;
            }
        }
        if Instant::now() > deadline {
            return Err(BenchError::Timeout("the flooder's muted event".into()));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let removed: usize = system
        .iter()
        .filter(|e| e.kind == SystemKind::Deleted)
        .map(|e| e.detail.seqs.len())
        .sum();
    let user = UserName::new(flooder)?;
    let left = read(subjects::room_message(room, &user)).await?.len();
    Ok((left + removed, left))
}
