//! Snapshots of the full-screen UI's layout at fixed sizes, with a fixed clock.

mod tui_common;

use tui_common::*;

#[test]
fn wide_120x40() {
    let mut app = busy_app();
    insta::assert_snapshot!(draw(&mut app, 120, 40).backend());
}

#[test]
fn standard_80x24() {
    let mut app = busy_app();
    insta::assert_snapshot!(draw(&mut app, 80, 24).backend());
}

#[test]
fn narrow_50x20_hides_the_panes() {
    let mut app = busy_app();
    insta::assert_snapshot!(draw(&mut app, 50, 20).backend());
}

#[test]
fn resizing_loses_nothing() {
    let mut app = busy_app();
    let wide = format!("{}", draw(&mut app, 120, 40).backend());
    let _narrow = draw(&mut app, 50, 20);
    let again = format!("{}", draw(&mut app, 120, 40).backend());
    assert_eq!(wide, again);
    assert_eq!(app.input.text(), "half typed");
}

#[test]
fn no_terminal_control_reaches_the_screen() {
    let mut app = busy_app();
    let terminal = draw(&mut app, 120, 40);
    let buffer = terminal.backend().buffer();
    for cell in buffer.content() {
        assert!(
            cell.symbol()
                .chars()
                .all(chat_protocol::display::is_displayable),
            "{:?}",
            cell.symbol()
        );
    }
    let screen = format!("{}", terminal.backend());
    assert!(screen.contains("clear screen?"), "{screen}");
}

#[test]
fn scrolled_to_the_top_shows_loading_then_the_beginning() {
    let mut app = busy_app();
    app.scroll_up(100);
    let screen = format!("{}", draw(&mut app, 80, 24).backend());
    assert!(screen.contains("loading earlier messages"), "{screen}");
    app.on_page(
        &room("general"),
        chat_client::history::Page::Before(10),
        Ok((
            vec![replayed(said("general", "bob", 9, 3000, "the first word"))],
            None,
        )),
    );
    app.scroll_up(100);
    insta::assert_snapshot!(draw(&mut app, 80, 24).backend());
}

#[test]
fn no_room_yet() {
    let mut app = chat_client::ui::tui::app::App::new(
        user("alice"),
        now(),
        chrono::FixedOffset::east_opt(0).unwrap(),
    );
    app.on_event(chat_client::Event::error("presence service unavailable"));
    let screen = format!("{}", draw(&mut app, 50, 20).backend());
    assert!(screen.contains("no room: /join ROOM"), "{screen}");
    assert!(
        screen.contains("error: presence service unavailable"),
        "{screen}"
    );
}

#[test]
fn the_status_line_counts_unconfirmed_messages() {
    let mut app = busy_app();
    let screen = format!("{}", draw(&mut app, 120, 40).backend());
    assert!(!screen.contains("unconfirmed"), "{screen}");
    app.unconfirmed = 2;
    let screen = format!("{}", draw(&mut app, 120, 40).backend());
    assert!(
        screen.contains("waiting for 2 unconfirmed message(s)"),
        "{screen}"
    );
}

/// Moderation on the screen: sequences shown (`/seq`), a deleted message gone (the
/// tombstone names mallory's hostile one), a kick with a hostile note sanitized, a ban
/// without end, and a paced batch on the status line.
#[test]
fn moderation_events_tombstones_sequences_and_pacing_80x24() {
    use chat_client::Event;
    use chat_protocol::body::{EventDetail, Reason, SystemKind};
    let mut app = busy_app();
    let system = |seq, kind, reason, by: &str, note: Option<&str>, seqs: Vec<u64>| Event::System {
        room: room("general"),
        user: user("mallory"),
        kind,
        reason,
        users: 0,
        seq,
        detail: EventDetail {
            by: Some(user(by)),
            until: None,
            note: note.map(str::to_string),
            seqs,
            others: Vec::new(),
        },
    };
    app.on_event(system(
        19,
        SystemKind::Deleted,
        Reason::Moderator,
        "bob",
        None,
        vec![18],
    ));
    app.on_event(system(
        20,
        SystemKind::Kicked,
        Reason::Moderator,
        "bob",
        Some("stop \u{1b}[31mthat\u{202e}"),
        vec![],
    ));
    app.on_event(system(
        21,
        SystemKind::Banned,
        Reason::Moderator,
        "bob",
        None,
        vec![],
    ));
    app.show_seq = true;
    app.sending = chat_client::pacing::Progress {
        sent: 37,
        total: 100,
        paced: true,
    };
    let terminal = draw(&mut app, 80, 24);
    let screen = format!("{}", terminal.backend());
    assert!(!screen.contains("clear screen?"), "deleted: {screen}");
    assert!(
        screen.contains("bob deleted a message from mallory"),
        "{screen}"
    );
    insta::assert_snapshot!(terminal.backend());
}
