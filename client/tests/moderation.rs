//! Moderation as the client sees it, end to end on the real stack (auth worker,
//! moderation worker, presence worker): a moderator's commands, a plain user's
//! refusals, a muted user's client refusing what is typed and sending again once the
//! mute ends, tombstones, kicks and bans ending the session (and the binary's exit
//! code 77 with the reason).

mod common;

use chat_client::command::Moderation;
use chat_client::moderation::Ended;
use chat_client::ui::{Flow, Session};
use chat_client::{Chat, Event, State};
use chat_protocol::body::{Reason, Role, RoleRequest, SystemKind};
use common::*;
use test_support::NatsServer;
use tokio::sync::mpsc;

/// Makes `name` a moderator (as chat-admin does, with the operator's `@admin`).
async fn grant_moderator(server: &NatsServer, name: &str) {
    let admin = server.client().await;
    let body = serde_json::to_vec(&RoleRequest {
        user: user(name),
        role: Role::Moderator,
    })
    .unwrap();
    let reply = tokio::time::timeout(PATIENCE, admin.request("chat.admin.role", body.into()))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&reply.payload);
    assert!(text.contains("\"ok\":true"), "{text}");
}

/// Waits for a status event of `state`; its message.
async fn status(events: &mut mpsc::Receiver<Event>, state: State) -> String {
    wait_for(events, |e| match e {
        Event::Status {
            state: s, message, ..
        } if *s == state => Some(message.clone()),
        _ => None,
    })
    .await
}

/// Waits for a system event of `kind`; it whole.
async fn system(events: &mut mpsc::Receiver<Event>, kind: SystemKind) -> Event {
    wait_for(events, |e| match e {
        Event::System { kind: k, .. } if *k == kind => Some(e.clone()),
        _ => None,
    })
    .await
}

async fn error(events: &mut mpsc::Receiver<Event>) -> String {
    wait_for(events, |e| match e {
        Event::Error { message } => Some(message.clone()),
        _ => None,
    })
    .await
}

fn mute(target: &str, seconds: Option<u64>, reason: Option<&str>) -> Moderation {
    Moderation::Mute {
        user: user(target),
        seconds,
        reason: reason.map(str::to_string),
    }
}

#[tokio::test]
async fn a_muted_user_is_told_refuses_typed_lines_and_talks_again_after_the_mute() {
    let server = test_support::run_server();
    let _presence = presence(&server).await;
    grant_moderator(&server, "alice").await;
    let general = room("general");
    let (alice, mut alice_events) = joined(&server, "alice", &general, 0).await;
    let (bob, mut bob_events) = joined(&server, "bob", &general, 0).await;

    // A plain user may not mute: the worker's refusal is what the client says.
    let refused = bob.moderate(&general, &mute("alice", None, None)).await;
    let refused = refused.unwrap_err().to_string();
    assert!(refused.contains("only moderators may mute"), "{refused}");

    let reply = alice
        .moderate(&general, &mute("bob", Some(3), Some("spam")))
        .await
        .unwrap();
    assert!(reply.until.is_some());
    let said = status(&mut bob_events, State::Muted).await;
    assert!(
        said.starts_with("you are muted until ") && said.contains("(spam)"),
        "{said}"
    );
    let event = system(&mut alice_events, SystemKind::Muted).await;
    let line = chat_client::render::line(&event, Some(&general), plain()).unwrap();
    assert!(
        line.starts_with("* bob was muted by alice until "),
        "{line}"
    );
    assert!(line.ends_with("(spam)"), "{line}");

    // A line typed meanwhile is refused here and given back; nothing is sent.
    let mut session = Session::new(bob.clone(), 0, false);
    session.switch(&general);
    assert_eq!(session.handle_line("let me speak").await, Flow::Retype);
    let refusal = error(&mut bob_events).await;
    assert!(
        refusal.starts_with("not sent: you are muted until "),
        "{refusal}"
    );

    // The mute ends (the server ends the restricted login, the client logs in again):
    // the client says so, and sending works again.
    let said = status(&mut bob_events, State::Unmuted).await;
    assert!(said.contains("you can send messages again"), "{said}");
    assert!(bob.muted().is_none());
    assert_eq!(session.handle_line("back again").await, Flow::Continue);
    let (_, text, _) = wait_for(&mut alice_events, message_in(&general)).await;
    assert_eq!(text, "back again");
    drop(alice);
}

#[tokio::test]
async fn a_moderator_unmutes_deletes_kicks_and_bans_and_the_target_sees_it() {
    let server = test_support::run_server();
    let _presence = presence(&server).await;
    grant_moderator(&server, "alice").await;
    let general = room("general");
    let (alice, mut alice_events) = joined(&server, "alice", &general, 0).await;
    let (bob, mut bob_events) = joined(&server, "bob", &general, 0).await;

    // Unmute before the end.
    alice
        .moderate(&general, &mute("bob", Some(600), None))
        .await
        .unwrap();
    status(&mut bob_events, State::Muted).await;
    alice
        .moderate(&general, &Moderation::Unmute { user: user("bob") })
        .await
        .unwrap();
    status(&mut bob_events, State::Unmuted).await;

    // Deleting: bob his own message (reason author); not alice's; alice any.
    let own = say(&bob, &general, "oops, wrong room").await;
    let other = say(&alice, &general, "a moderator speaks").await;
    let later = say(&bob, &general, "something rude").await;
    let refused = bob
        .moderate(&general, &Moderation::Delete { seq: other })
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("moderation service refused"), "{refused}");
    bob.moderate(&general, &Moderation::Delete { seq: own })
        .await
        .unwrap();
    alice
        .moderate(&general, &Moderation::Delete { seq: later })
        .await
        .unwrap();
    let mut tombstones = Vec::new();
    while tombstones.len() < 2 {
        if let Event::System { reason, detail, .. } =
            system(&mut alice_events, SystemKind::Deleted).await
        {
            tombstones.push((reason, detail.seqs, detail.by));
        }
    }
    assert_eq!(
        (tombstones[0].0, &tombstones[0].1),
        (Reason::Author, &vec![own])
    );
    assert_eq!(
        tombstones[1],
        (Reason::Moderator, vec![later], Some(user("alice")))
    );

    // A kick ends bob's session, naming who and why.
    alice
        .moderate(
            &general,
            &Moderation::Kick {
                user: user("bob"),
                reason: Some("cool down".into()),
            },
        )
        .await
        .unwrap();
    let ended = tokio::time::timeout(PATIENCE, bob.ended()).await.unwrap();
    assert_eq!(
        ended,
        Ended::Kicked {
            by: Some(user("alice")),
            reason: Some("cool down".into())
        }
    );
    assert_eq!(ended.to_string(), "you were kicked by alice (cool down)");
    drop(bob);

    // A ban: a new login is refused, saying until when and why.
    let (carol, _carol_events) = joined(&server, "carol", &general, 0).await;
    alice
        .moderate(
            &general,
            &Moderation::Ban {
                user: user("carol"),
                seconds: Some(3600),
                reason: Some("trolling".into()),
            },
        )
        .await
        .unwrap();
    let ended = tokio::time::timeout(PATIENCE, carol.ended()).await.unwrap();
    assert!(
        ended.to_string().starts_with("you are banned") && ended.to_string().contains("trolling"),
        "{ended}"
    );
    drop(carol);
    let refused = Chat::connect(options(&server, "carol").await).await;
    let Err(err) = refused else {
        panic!("a banned user logged in")
    };
    let err = err.to_string();
    assert!(
        err.contains("you are banned until ") && err.ends_with("(trolling)"),
        "{err}"
    );
    // An unban lets carol in again.
    alice
        .moderate(
            &general,
            &Moderation::Unban {
                user: user("carol"),
            },
        )
        .await
        .unwrap();
    Chat::connect(options(&server, "carol").await)
        .await
        .expect("carol logs in once unbanned");
}

/// The binary: kicked while chatting in line mode, it says why and exits 77; banned,
/// its next start says until when and exits 77.
#[tokio::test]
async fn the_binary_exits_77_when_kicked_or_banned() {
    use tokio::io::AsyncWriteExt;
    let server = test_support::run_server();
    let _presence = presence(&server).await;
    grant_moderator(&server, "alice").await;
    let general = room("general");
    let (alice, _alice_events) = joined(&server, "alice", &general, 0).await;

    let mut command = client(&server, "bob").await;
    let (mut bob, mut out) = spawn(&mut command);
    next_event(&mut out, "welcome").await;
    let mut stdin = bob.stdin.take().unwrap();
    stdin.write_all(b"hello\n").await.unwrap();
    next_event(&mut out, "message").await;
    alice
        .moderate(
            &general,
            &Moderation::Kick {
                user: user("bob"),
                reason: None,
            },
        )
        .await
        .unwrap();
    let output = tokio::time::timeout(PATIENCE, bob.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(output.status.code(), Some(77));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("you were kicked by alice"), "{stderr}");

    alice
        .moderate(
            &general,
            &Moderation::Ban {
                user: user("bob"),
                seconds: None,
                reason: Some("enough".into()),
            },
        )
        .await
        .unwrap();
    let output = client(&server, "bob").await.output().await.unwrap();
    assert_eq!(output.status.code(), Some(77));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("you are banned until a moderator lifts it (enough)"),
        "{stderr}"
    );
}

fn plain() -> chat_client::render::Style {
    chat_client::render::Style {
        color: false,
        interactive: false,
        seq: false,
    }
}
