//! How fast the full-screen UI draws and how much memory its scrollback takes: a
//! frame with 10,000 messages loaded, and 200 messages a second arriving.
//!
//! `cargo run --release -p chat-client --example tui_bench` (no NATS needed: the
//! state is fed the events the library would send). Prints a Markdown table; nothing
//! is asserted (timings belong in benchmarks, not tests).

use std::time::{Duration, Instant};

use chat_client::ui::tui::app::App;
use chat_client::ui::tui::view;
use chat_client::Event;
use chat_protocol::body::MessageKind;
use chat_protocol::{RoomName, UserName};
use chrono::{FixedOffset, Utc};
use ratatui::backend::TestBackend;
use ratatui::Terminal;

const LINES: u64 = 10_000;
const FRAMES: usize = 300;

fn message(room: &RoomName, seq: u64) -> Event {
    let users = ["bob", "carol", "dave", "erin", "frank"];
    let text = match seq % 7 {
        0 => format!("message {seq} with a second line\nand more on it"),
        1 => format!(
            "message {seq} {}",
            "long enough to wrap on a narrow terminal ".repeat(3)
        ),
        _ => format!("message {seq}: the quick brown fox jumps over the lazy dog"),
    };
    Event::Message {
        room: room.clone(),
        user: UserName::new(users[(seq % 5) as usize]).unwrap(),
        kind: MessageKind::Chat,
        text,
        id: format!("id-{seq}"),
        seq,
        ts: Utc::now() - chrono::Duration::seconds((LINES - seq.min(LINES)) as i64),
        replay: seq < LINES,
        spoofed: false,
    }
}

/// Resident memory of this process, in KiB (Linux).
fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p) as usize]
}

fn frames(app: &mut App, terminal: &mut Terminal<TestBackend>, scroll: usize) -> Vec<Duration> {
    let mut times = Vec::with_capacity(FRAMES);
    for _ in 0..FRAMES {
        app.rooms[0].scroll = scroll;
        let start = Instant::now();
        terminal
            .draw(|frame| {
                view::draw(frame, app);
            })
            .unwrap();
        times.push(start.elapsed());
    }
    times.sort();
    times
}

fn main() {
    let room = RoomName::new("general").unwrap();
    let before = rss_kib();
    let mut app = App::new(
        UserName::new("alice").unwrap(),
        Utc::now(),
        FixedOffset::east_opt(0).unwrap(),
    );
    app.on_event(Event::Welcome {
        room: room.clone(),
        user: UserName::new("alice").unwrap(),
        users: 5,
        text: "welcome".into(),
    });
    app.follow(Some(&room));
    for seq in 1..=LINES {
        app.on_event(message(&room, seq));
    }
    let after = rss_kib();
    println!("| figure | value |\n|---|---|");
    println!("| messages loaded | {} |", app.rooms[0].entries.len());
    if let (Some(before), Some(after)) = (before, after) {
        println!(
            "| resident memory of the bench: before / with {LINES} messages | {} KiB / {} KiB |",
            before, after
        );
    }
    for (width, height) in [(80, 24), (120, 40), (200, 60)] {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
        let bottom = frames(&mut app, &mut terminal, 0);
        let middle = frames(&mut app, &mut terminal, LINES as usize / 2);
        println!(
            "| frame at {width}x{height}, at the bottom: median / p99 | {:?} / {:?} |",
            percentile(&bottom, 0.5),
            percentile(&bottom, 0.99)
        );
        println!(
            "| frame at {width}x{height}, 5,000 messages up: median / p99 | {:?} / {:?} |",
            percentile(&middle, 0.5),
            percentile(&middle, 0.99)
        );
    }
    // 200 messages a second for 5 seconds, drawn as the runner does: one frame per
    // batch (here, per message: the worst case).
    let mut terminal = Terminal::new(TestBackend::new(120, 40)).unwrap();
    app.rooms[0].scroll = 0;
    let mut busy = Duration::ZERO;
    let mut worst = Duration::ZERO;
    for seq in LINES + 1..=LINES + 1000 {
        let start = Instant::now();
        app.on_event(message(&room, seq));
        terminal
            .draw(|frame| {
                view::draw(frame, &app);
            })
            .unwrap();
        let took = start.elapsed();
        busy += took;
        worst = worst.max(took);
    }
    println!(
        "| 1,000 live messages (200/s for 5 s), event + frame each: total / worst | {busy:?} / {worst:?} ({:.1}% of 5 s) |",
        busy.as_secs_f64() / 5.0 * 100.0
    );
    println!(
        "| messages kept after them | {} |",
        app.rooms[0].entries.len()
    );
    if let Some(rss) = rss_kib() {
        println!("| resident memory of the bench at the end | {rss} KiB |");
    }
}
