//! Moderators' commands against the real stack: mute, unmute, kick, ban, unban and
//! delete by a moderator (granted by `chat-admin role`), each written to the room;
//! refused with 403 for a plain user; a banned user's login is refused, and a guest
//! learns why from the standing.

mod common;

use chat_protocol::body::{
    decode_reply, Action, ModerationRequest, Reason, Role, Standing, SystemKind,
};
use chrono::Utc;
use common::*;

async fn grant(server: &test_support::NatsServer, who: &str, role: Role) {
    let secrets = chat_admin::secrets::Secrets::load_or_create(server.secrets_dir()).unwrap();
    let reply = chat_admin::role::grant(&server.url(), None, &secrets, &user(who), role)
        .await
        .unwrap();
    assert_eq!(reply.role, Some(role));
}

fn about(action: Action, target: &str) -> ModerationRequest {
    ModerationRequest::about(action, user(target))
}

/// The events of `kind` in general, once there are `count` of them.
async fn events_of(
    server: &test_support::NatsServer,
    kind: SystemKind,
    count: usize,
) -> Vec<chat_protocol::body::SystemEvent> {
    events_until(server, "general", |all| {
        all.iter().filter(|e| e.kind == kind).count() >= count
    })
    .await
    .into_iter()
    .filter(|e| e.kind == kind)
    .collect()
}

#[tokio::test]
async fn moderators_mute_unmute_kick_ban_and_unban() {
    let server = stack(1, contract(600));
    create_room(&server, "general").await;
    let alice = server.user_client("alice").await;
    let bob = server.user_client("bob").await;
    grant(&server, "alice", Role::Moderator).await;
    assert_eq!(standing(&server, "alice").await.role, Role::Moderator);

    // A plain user may not; neither may a moderator act on themselves.
    let refused = moderate(&bob, "general", "bob", &about(Action::Mute, "alice")).await;
    let (code, why) = refused.unwrap_err();
    assert_eq!(code, "403");
    assert_eq!(why, "only moderators may mute; you are a user");
    let (code, _) = moderate(&alice, "general", "alice", &about(Action::Kick, "alice"))
        .await
        .unwrap_err();
    assert_eq!(code, "400");

    // Mute, with a duration and a reason: bob is kicked and logs in without the right
    // to speak.
    let mut mute = about(Action::Mute, "bob");
    mute.seconds = Some(600);
    mute.reason = Some("spam".into());
    let reply = moderate(&alice, "general", "alice", &mute).await.unwrap();
    assert_eq!(reply.action, Some(Action::Mute));
    let until = reply.until.unwrap();
    assert!(until > Utc::now());
    let muted = &events_of(&server, SystemKind::Muted, 1).await[0];
    assert_eq!(
        (muted.reason, muted.user.as_str()),
        (Reason::Moderator, "bob")
    );
    assert_eq!(muted.detail.by.as_ref().map(|u| u.as_str()), Some("alice"));
    assert_eq!(muted.detail.note.as_deref(), Some("spam"));
    assert_eq!(muted.detail.until, Some(until));
    assert_eq!(
        standing(&server, "bob").await.reason.as_deref(),
        Some("spam")
    );
    connects_at_least(&bob, 2).await;
    assert!(send(&bob, "general", "bob", "hello?").await.is_err());

    // Unmute: bob is kicked again and comes back with his rights.
    moderate(&alice, "general", "alice", &about(Action::Unmute, "bob"))
        .await
        .unwrap();
    events_of(&server, SystemKind::Unmuted, 1).await;
    assert_eq!(standing(&server, "bob").await.muted_until, None);
    connects_at_least(&bob, 3).await;
    let mut sent = Err(String::new());
    for _ in 0..10 {
        sent = send(&bob, "general", "bob", "thanks").await;
        if sent.is_ok() {
            break;
        }
    }
    sent.expect("bob talks again once unmuted");
    let (code, why) = moderate(&alice, "general", "alice", &about(Action::Unmute, "bob"))
        .await
        .unwrap_err();
    assert_eq!((code.as_str(), why.as_str()), ("400", "bob is not muted"));

    // Kick: every connection of bob goes (he may come back).
    let second = server.user_client("bob").await;
    let mut kick = about(Action::Kick, "bob");
    kick.reason = Some("calm down".into());
    moderate(&alice, "general", "alice", &kick).await.unwrap();
    let kicked = &events_of(&server, SystemKind::Kicked, 1).await[0];
    assert_eq!(kicked.detail.note.as_deref(), Some("calm down"));
    connects_at_least(&second, 2).await;

    // Ban without end: kicked, and every login refused; a guest learns why.
    let mut ban = about(Action::Ban, "bob");
    ban.reason = Some("enough".into());
    let reply = moderate(&alice, "general", "alice", &ban).await.unwrap();
    assert_eq!(reply.until, None);
    let banned = &events_of(&server, SystemKind::Banned, 1).await[0];
    assert_eq!(banned.detail.until, None);
    assert!(
        login(&server, "bob").await.is_err(),
        "a banned user logs in"
    );
    let guest = async_nats::connect(server.url()).await.unwrap();
    let reply = guest
        .request(chat_protocol::subjects::standing(&user("bob")), "".into())
        .await
        .unwrap();
    let seen: Standing = decode_reply(&reply.payload).unwrap();
    assert!(seen.banned_at(Utc::now()));
    assert_eq!(seen.reason.as_deref(), Some("enough"));

    // Unban: bob logs in again.
    moderate(&alice, "general", "alice", &about(Action::Unban, "bob"))
        .await
        .unwrap();
    events_of(&server, SystemKind::Unbanned, 1).await;
    login(&server, "bob")
        .await
        .expect("bob may log in once unbanned");

    // A moderator cannot act on an admin; an admin on a moderator can.
    grant(&server, "carol", Role::Admin).await;
    let (code, _) = moderate(&alice, "general", "alice", &about(Action::Mute, "carol"))
        .await
        .unwrap_err();
    assert_eq!(code, "403");
    let carol = server.user_client("carol").await;
    moderate(&carol, "general", "carol", &about(Action::Kick, "alice"))
        .await
        .unwrap();
}

#[tokio::test]
async fn everyone_deletes_their_own_messages_and_moderators_any() {
    let server = stack(1, contract(600));
    let stream = create_room(&server, "general").await;
    let alice = server.user_client("alice").await;
    let bob = server.user_client("bob").await;
    let carol = server.user_client("carol").await;
    grant(&server, "alice", Role::Moderator).await;
    let bobs = send(&bob, "general", "bob", "oops").await.unwrap();
    let alices = send(&alice, "general", "alice", "hello").await.unwrap();
    let carols = send(&carol, "general", "carol", "rude").await.unwrap();

    // Bob deletes his own message.
    let reply = moderate(&bob, "general", "bob", &ModerationRequest::delete(bobs))
        .await
        .unwrap();
    assert_eq!(reply.target.as_ref().map(|u| u.as_str()), Some("bob"));
    assert!(stream.get_raw_message(bobs).await.is_err());
    let own = &events_of(&server, SystemKind::Deleted, 1).await[0];
    assert_eq!(
        (own.reason, own.user.as_str(), own.detail.seqs.clone()),
        (Reason::Author, "bob", vec![bobs])
    );

    // Carol, a plain user, may not delete alice's; alice, a moderator, deletes carol's.
    let (code, why) = moderate(
        &carol,
        "general",
        "carol",
        &ModerationRequest::delete(alices),
    )
    .await
    .unwrap_err();
    assert_eq!(code, "403");
    assert!(why.contains("only moderators"), "{why}");
    assert!(stream.get_raw_message(alices).await.is_ok());
    moderate(
        &alice,
        "general",
        "alice",
        &ModerationRequest::delete(carols),
    )
    .await
    .unwrap();
    assert!(stream.get_raw_message(carols).await.is_err());
    let by_moderator = &events_of(&server, SystemKind::Deleted, 2).await[1];
    assert_eq!(
        (by_moderator.reason, by_moderator.user.as_str()),
        (Reason::Moderator, "carol")
    );
    assert_eq!(
        by_moderator.detail.by.as_ref().map(|u| u.as_str()),
        Some("alice")
    );

    // Nothing there: 404; a bad request says what is allowed.
    let (code, _) = moderate(&alice, "general", "alice", &ModerationRequest::delete(9999))
        .await
        .unwrap_err();
    assert_eq!(code, "404");
    let reply = alice
        .request(
            chat_protocol::subjects::moderate(&room("general"), &user("alice")),
            r#"{"action":"nuke"}"#.into(),
        )
        .await
        .unwrap();
    let why = decode_reply::<chat_protocol::body::ModerationReply>(&reply.payload)
        .unwrap_err()
        .to_string();
    assert!(why.contains("mute|unmute|kick|ban|unban|delete"), "{why}");
    // Someone else's subject is refused by the server itself.
    let forged = bob
        .request(
            chat_protocol::subjects::moderate(&room("general"), &user("alice")),
            serde_json::to_vec(&ModerationRequest::delete(alices))
                .unwrap()
                .into(),
        )
        .await;
    assert!(forged.is_err());
    assert!(stream.get_raw_message(alices).await.is_ok());
}
