//! Key handling of the full-screen UI: switching rooms, drafts, scrollback fetching
//! the earlier page (against a real history worker), completion, multi-line input.

mod common;
mod tui_common;

use chat_client::history::Page;
use chat_client::ui::tui::app::{Action, App, Entry};
use chat_client::ui::tui::keys;
use chat_protocol::body::MAX_TEXT_CHARS;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use tui_common::*;

fn key(app: &mut App, code: KeyCode) {
    keys::on_key(app, KeyEvent::new(code, KeyModifiers::NONE));
}

fn ctrl(app: &mut App, c: char) {
    keys::on_key(app, KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL));
}

fn alt(app: &mut App, code: KeyCode) {
    keys::on_key(app, KeyEvent::new(code, KeyModifiers::ALT));
}

fn type_text(app: &mut App, text: &str) {
    for c in text.chars() {
        key(app, KeyCode::Char(c));
    }
}

fn lines_sent(app: &mut App) -> Vec<(Option<String>, String)> {
    app.take_actions()
        .into_iter()
        .filter_map(|a| match a {
            Action::Line { room, text } => Some((room.map(|r| r.to_string()), text)),
            _ => None,
        })
        .collect()
}

fn shown(app: &App) -> String {
    app.room().unwrap().name.to_string()
}

#[test]
fn switching_rooms_keeps_a_draft_per_room_and_clears_marks() {
    let mut app = busy_app();
    assert_eq!(shown(&app), "general");
    let random = &app.rooms[1];
    assert_eq!((random.unread, random.mention), (3, true));
    alt(&mut app, KeyCode::Char('2'));
    assert_eq!(shown(&app), "random");
    assert_eq!((app.rooms[1].unread, app.rooms[1].mention), (0, false));
    assert!(app.input.is_empty(), "random has no draft");
    type_text(&mut app, "for random");
    ctrl(&mut app, 'n');
    assert_eq!(shown(&app), "rust-dev");
    ctrl(&mut app, 'n');
    assert_eq!(shown(&app), "general", "Ctrl-N wraps around");
    assert_eq!(app.input.text(), "half typed");
    ctrl(&mut app, 'p');
    ctrl(&mut app, 'p');
    assert_eq!(shown(&app), "random");
    assert_eq!(app.input.text(), "for random");
    key(&mut app, KeyCode::Enter);
    assert_eq!(
        lines_sent(&mut app),
        [(Some("random".to_string()), "for random".to_string())]
    );
    alt(&mut app, KeyCode::Char('9'));
    assert_eq!(shown(&app), "random", "no room 9: nothing happens");
}

#[test]
fn a_mention_elsewhere_marks_the_room_and_rings_once() {
    let mut app = busy_app();
    app.take_actions();
    app.on_event(said("rust-dev", "bob", 3, 0, "alice, look"));
    app.on_event(said("rust-dev", "bob", 4, 0, "@alice again"));
    app.on_event(said("general", "bob", 30, 0, "alice here"));
    let bells = app
        .take_actions()
        .into_iter()
        .filter(|a| *a == Action::Bell)
        .count();
    assert_eq!(bells, 1, "once per room until it is looked at");
    assert_eq!((app.rooms[2].unread, app.rooms[2].mention), (2, true));
    assert_eq!(app.rooms[0].unread, 0, "the room shown has nothing unread");
    // Own messages and bare substrings are no mentions.
    app.on_event(said("random", "alice", 40, 0, "alice"));
    app.on_event(said("random", "bob", 41, 0, "malice aforethought"));
    let random = &app.rooms[1];
    assert!(random
        .entries
        .iter()
        .rev()
        .take(2)
        .all(|e| matches!(e, Entry::Message { mention: false, .. })));
}

#[test]
fn enter_sends_multi_line_input_and_pastes_as_one_message() {
    let mut app = busy_app();
    app.input.take();
    let before = app.rooms[0].entries.len();
    key(&mut app, KeyCode::Enter);
    type_text(&mut app, "  ");
    key(&mut app, KeyCode::Enter);
    assert!(
        lines_sent(&mut app).is_empty(),
        "an empty Enter does nothing"
    );
    assert_eq!(app.rooms[0].entries.len(), before, "and says nothing");
    app.input.take();
    type_text(&mut app, "one");
    alt(&mut app, KeyCode::Enter);
    type_text(&mut app, "two");
    keys::on_key(&mut app, KeyEvent::new(KeyCode::Enter, KeyModifiers::SHIFT));
    type_text(&mut app, "three");
    key(&mut app, KeyCode::Enter);
    keys::on_paste(&mut app, "pasted\r\nlines\nand Enter\n");
    assert_eq!(app.input.line_count(), 4);
    key(&mut app, KeyCode::Enter);
    let sent: Vec<String> = lines_sent(&mut app).into_iter().map(|(_, t)| t).collect();
    assert_eq!(sent, ["one\ntwo\nthree", "pasted\nlines\nand Enter\n"]);
    assert_eq!(app.pending, 2);
}

#[test]
fn a_refused_line_stays_for_editing() {
    let mut app = busy_app();
    app.input.take();
    let long = "x".repeat(MAX_TEXT_CHARS + 1);
    keys::on_paste(&mut app, &long);
    key(&mut app, KeyCode::Enter);
    assert!(lines_sent(&mut app).is_empty());
    assert_eq!(app.input.text(), long, "kept to be shortened");
    let Some(Entry::Note { lines, error: true }) = app.rooms[0].entries.back() else {
        panic!("an error is shown")
    };
    assert!(lines[0].contains("at most 4000"), "{lines:?}");
    // The error is said once, not inside itself.
    assert_eq!(lines[0].matches("at most").count(), 1, "{lines:?}");
    ctrl(&mut app, 'u');
    assert!(app.input.is_empty());
}

#[test]
fn shell_keys_and_sent_line_history() {
    let mut app = busy_app();
    app.input.take();
    type_text(&mut app, "first message");
    key(&mut app, KeyCode::Enter);
    type_text(&mut app, "second one");
    key(&mut app, KeyCode::Enter);
    type_text(&mut app, "typing");
    key(&mut app, KeyCode::Up);
    assert_eq!(app.input.text(), "second one");
    key(&mut app, KeyCode::Up);
    assert_eq!(app.input.text(), "first message");
    key(&mut app, KeyCode::Down);
    key(&mut app, KeyCode::Down);
    assert_eq!(app.input.text(), "typing", "back to what was typed");
    ctrl(&mut app, 'w');
    assert_eq!(app.input.text(), "");
    type_text(&mut app, "abc def");
    ctrl(&mut app, 'a');
    type_text(&mut app, ">");
    ctrl(&mut app, 'e');
    type_text(&mut app, "<");
    assert_eq!(app.input.text(), ">abc def<");
}

#[test]
fn tab_completes_names_and_commands() {
    let mut app = busy_app();
    app.input.take();
    type_text(&mut app, "c");
    key(&mut app, KeyCode::Tab);
    assert_eq!(app.input.text(), "carol: ");
    type_text(&mut app, "ask @b");
    key(&mut app, KeyCode::Tab);
    assert_eq!(app.input.text(), "carol: ask @bob ");
    app.input.take();
    type_text(&mut app, "/l");
    key(&mut app, KeyCode::Tab);
    assert_eq!(app.input.text(), "/leave ");
    app.input.take();
    // Tab again cycles: bob, then mallory (who spoke), then bob again.
    app.on_event(said("general", "bobby", 19, 0, "hi"));
    type_text(&mut app, "hi b");
    key(&mut app, KeyCode::Tab);
    assert_eq!(app.input.text(), "hi bob ");
    key(&mut app, KeyCode::Tab);
    assert_eq!(app.input.text(), "hi bobby ");
    key(&mut app, KeyCode::Tab);
    assert_eq!(app.input.text(), "hi bob ");
    type_text(&mut app, "x");
    key(&mut app, KeyCode::Tab);
    assert_eq!(app.input.text(), "hi bob x", "no name starts with x");
}

#[test]
fn scrolling_above_the_top_asks_for_the_earlier_page_once() {
    let mut app = busy_app();
    key(&mut app, KeyCode::PageUp);
    draw(&mut app, 80, 24);
    key(&mut app, KeyCode::Home);
    let fetches: Vec<Action> = app
        .take_actions()
        .into_iter()
        .filter(|a| matches!(a, Action::Fetch { .. }))
        .collect();
    assert_eq!(
        fetches,
        [Action::Fetch {
            room: room("general"),
            page: Page::Before(10)
        }]
    );
    key(&mut app, KeyCode::PageUp);
    assert!(app.take_actions().is_empty(), "one request at a time");
    key(&mut app, KeyCode::End);
    assert_eq!(app.rooms[0].scroll, 0);
}

/// The whole scrollback path against a real nats-server and history worker: a room of
/// 450 messages, 20 replayed on join; scrolling up fetches the pages before, in order,
/// with no gap and no duplicate, until the beginning.
#[tokio::test]
async fn scrollback_pages_come_from_the_history_worker() {
    let server = test_support::run_server();
    let _presence = common::presence(&server).await;
    let _history = common::history(&server).await;
    let general = room("general");
    let (bob, _bob_events) = common::joined(&server, "bob", &general, 0).await;
    for i in 1..=450 {
        let _ = bob
            .send(
                &general,
                chat_protocol::body::MessageKind::Chat,
                &format!("m{i}"),
            )
            .await
            .unwrap();
    }
    assert!(bob.flush().await.is_empty());
    let (alice, mut events) = common::connect(&server, "alice").await;
    alice.join(&general, 20);
    alice.wait_live(&general).await;
    let mut app = App::new(
        user("alice"),
        now(),
        chrono::FixedOffset::east_opt(0).unwrap(),
    );
    while let Ok(event) = events.try_recv() {
        app.on_event(event);
    }
    app.follow(Some(&general));
    draw(&mut app, 80, 24);
    let mut pages = 0;
    while !app.rooms[0].complete {
        key(&mut app, KeyCode::PageUp);
        draw(&mut app, 80, 24);
        for action in app.take_actions() {
            if let Action::Fetch { room, page } = action {
                let result = alice
                    .history_page(&room, page, chat_client::ui::tui::app::PAGE_SIZE)
                    .await
                    .map_err(|e| e.to_string());
                app.on_page(&room, page, result);
                pages += 1;
            }
        }
        assert!(pages <= 5, "the beginning is reached");
    }
    let texts: Vec<String> = app.rooms[0]
        .entries
        .iter()
        .filter_map(|e| match e {
            Entry::Message { lines, .. } => Some(lines.join("")),
            _ => None,
        })
        .collect();
    let expected: Vec<String> = (1..=450).map(|i| format!("m{i}")).collect();
    assert_eq!(texts, expected);
    assert_eq!(pages, 3, "430 earlier messages in pages of 200");
    key(&mut app, KeyCode::Home);
    let screen = format!("{}", draw(&mut app, 80, 24).backend());
    assert!(screen.contains("bob: m1 "), "{screen}");
}

/// A room never holds more than `MAX_ENTRIES`: the end far from the view is dropped,
/// and fetched again (the newer page) when scrolled back to.
#[test]
fn memory_stays_bounded_and_dropped_pages_come_back() {
    use chat_client::ui::tui::app::MAX_ENTRIES;
    let mut app = App::new(
        user("alice"),
        now(),
        chrono::FixedOffset::east_opt(0).unwrap(),
    );
    app.on_event(welcome("general", 1));
    app.follow(Some(&room("general")));
    let total = MAX_ENTRIES as u64 + 5_000;
    for seq in 1..=total {
        app.on_event(said("general", "bob", seq, 0, "x"));
    }
    let general = &app.rooms[0];
    assert_eq!(
        general.entries.len(),
        MAX_ENTRIES,
        "the oldest were dropped"
    );
    assert_eq!(general.first_seq(), Some(total - MAX_ENTRIES as u64 + 1));
    // Scrolled to the top, an earlier page comes: the newest end goes instead.
    key(&mut app, KeyCode::Home);
    draw(&mut app, 80, 24);
    key(&mut app, KeyCode::Home);
    let first = app.rooms[0].first_seq().unwrap();
    let page: Vec<_> = (first - 200..first)
        .map(|s| replayed(said("general", "bob", s, 0, "y")))
        .collect();
    app.on_page(
        &room("general"),
        Page::Before(first),
        Ok((page, Some(first - 200))),
    );
    let general = &app.rooms[0];
    assert_eq!(general.entries.len(), MAX_ENTRIES);
    assert!(general.newer_dropped);
    let last = general.last_seq().unwrap();
    assert_eq!(last, total - 200);
    // Live messages meanwhile wait; at the bottom, the dropped page is fetched.
    app.on_event(said("general", "bob", total + 1, 0, "live"));
    assert_eq!(app.rooms[0].last_seq(), Some(last));
    app.take_actions();
    key(&mut app, KeyCode::End);
    assert_eq!(
        app.take_actions(),
        [Action::Fetch {
            room: room("general"),
            page: Page::After(last)
        }]
    );
    let page: Vec<_> = (last + 1..=total)
        .map(|s| replayed(said("general", "bob", s, 0, "x")))
        .collect();
    app.on_page(&room("general"), Page::After(last), Ok((page, None)));
    let general = &app.rooms[0];
    assert!(!general.newer_dropped);
    assert_eq!(
        general.last_seq(),
        Some(total + 1),
        "the live one held back is added"
    );
    assert!(general.entries.len() <= MAX_ENTRIES);
}

#[test]
fn help_shows_the_commands_and_the_keys() {
    let mut app = busy_app();
    let commands = chat_client::command::help_lines().collect();
    app.on_event(chat_client::Event::Help { commands });
    let screen = format!("{}", draw(&mut app, 120, 40).backend());
    for text in [
        "/join ROOM",
        "#all_messages",
        "keys:",
        "Alt-1..9",
        "PageUp",
        "Tab",
    ] {
        assert!(screen.contains(text), "{text} missing:\n{screen}");
    }
}
