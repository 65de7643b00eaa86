//! The JSON bodies of the contract, one file per thing they describe.
//!
//! Serialization follows `docs/protocol.md` field for field. Deserialization is
//! tolerant the way the contract asks (unknown fields ignored, optional fields may be
//! missing) but never trusting: names are validated, the sender of a chat message is
//! taken from the subject, and over-long or empty texts are refused.
//!
//! - [`room`]: what a room stream holds (chat messages, joined/left events) and
//!   [`decode_room_payload`], the single decoder for it.
//! - [`presence`]: presence requests and replies, `/users`, `/rooms`, session records.
//! - [`history`]: history requests and pages, replay requests and plans.
//! - [`moderation`]: moderation commands, a user's standing and role, the rate
//!   allowance.
//! - [`reply`]: the error reply every request may get, and [`decode_reply`].
//! - [`rfc3339`]: the time stamps in all of them.

pub mod history;
pub mod moderation;
pub mod presence;
pub mod reply;
pub mod rfc3339;
pub mod room;

pub use history::{HistoryEntry, HistoryPage, HistoryRequest, ReplayPlan, ReplayRequest};
pub use moderation::{
    Action, ModerationReply, ModerationRequest, Rate, RequestError, Role, RoleRequest, Standing,
};
pub use presence::{
    PresenceAction, PresenceRecord, PresenceReply, PresenceRequest, RoomSummary, RoomsReply,
    UsersReply, MAX_LISTED_ROOMS,
};
pub use reply::{decode_reply, ErrorReply, ReplyError};
pub use room::{
    decode_room_payload, validate_text, ChatMessage, DecodeError, EventDetail, MessageKind, Reason,
    RoomPayload, SystemEvent, SystemKind, TextError, MAX_TEXT_CHARS,
};

/// Version of the contract written into every body.
pub const VERSION: u32 = 1;

/// Serde default of the `v` fields: the current version.
fn v1() -> u32 {
    VERSION
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::{RoomName, UserName};
    use chrono::{DateTime, Utc};

    fn room() -> RoomName {
        RoomName::new("general").unwrap()
    }
    fn alice() -> UserName {
        UserName::new("alice").unwrap()
    }

    #[test]
    fn chat_message_matches_contract() {
        let m = ChatMessage::new(&room(), &alice(), MessageKind::Chat, "  hello ").unwrap();
        let v: serde_json::Value = serde_json::to_value(&m).unwrap();
        assert_eq!(v["v"], 1);
        assert_eq!(v["type"], "chat");
        assert_eq!(v["room"], "general");
        assert_eq!(v["user"], "alice");
        assert_eq!(v["text"], "hello");
        let ts = v["ts"].as_str().unwrap();
        assert!(ts.ends_with('Z') && ts.len() == 24, "{ts}");
        assert!(uuid::Uuid::parse_str(v["id"].as_str().unwrap()).is_ok());
    }

    #[test]
    fn text_limits() {
        assert_eq!(validate_text("   "), Err(TextError::Empty));
        assert!(validate_text(&"é".repeat(MAX_TEXT_CHARS)).is_ok());
        assert_eq!(
            validate_text(&"x".repeat(MAX_TEXT_CHARS + 1)),
            Err(TextError::TooLong {
                len: MAX_TEXT_CHARS + 1
            })
        );
    }

    #[test]
    fn decodes_third_party_message() {
        let body = br#"{"text":"hi from python","extra":1}"#;
        match decode_room_payload("chat.room.general.msg.bob", body).unwrap() {
            RoomPayload::Chat {
                user,
                message,
                spoofed,
            } => {
                assert_eq!(user.as_str(), "bob");
                assert_eq!(message.text, "hi from python");
                assert_eq!(message.kind, MessageKind::Chat);
                assert!(!spoofed);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn flags_spoofed_sender() {
        let body = br#"{"v":1,"type":"chat","id":"x","room":"general","user":"alice","text":"hi"}"#;
        match decode_room_payload("chat.room.general.msg.mallory", body).unwrap() {
            RoomPayload::Chat { user, spoofed, .. } => {
                assert_eq!(user.as_str(), "mallory");
                assert!(spoofed);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rejects_hostile_bodies() {
        let s = "chat.room.general.msg.bob";
        assert!(decode_room_payload(s, b"not json").is_err());
        assert!(decode_room_payload(s, b"\xff\xfe").is_err());
        assert!(decode_room_payload(s, br#"{"text":5}"#).is_err());
        assert!(decode_room_payload(s, br#"{"text":""}"#).is_err());
        let long = format!(r#"{{"text":"{}"}}"#, "x".repeat(MAX_TEXT_CHARS + 1));
        assert!(decode_room_payload(s, long.as_bytes()).is_err());
        assert!(decode_room_payload(s, br#"{"text":"x","room":"other"}"#).is_err());
        assert!(decode_room_payload("chat.room.general.sys", br#"{"type":"joined"}"#).is_err());
        assert!(decode_room_payload("chat.room.Gen.msg.bob", br#"{"text":"x"}"#).is_err());
    }

    #[test]
    fn system_event_round_trip() {
        let e = SystemEvent {
            v: 1,
            kind: SystemKind::Left,
            id: "id".into(),
            room: room(),
            user: alice(),
            reason: Reason::Timeout,
            users: 2,
            ts: Some(Utc::now()),
            detail: EventDetail::default(),
        };
        let bytes = serde_json::to_vec(&e).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["type"], "left");
        assert_eq!(v["reason"], "timeout");
        for field in ["by", "until", "note", "seqs"] {
            assert!(v.get(field).is_none(), "{field}");
        }
        match decode_room_payload("chat.room.general.sys", &bytes).unwrap() {
            RoomPayload::System(got) => {
                assert_eq!((got.id, got.detail), (e.id.clone(), EventDetail::default()))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn old_events_decode_unchanged() {
        let body = br#"{"v":1,"type":"joined","id":"x","room":"general","user":"alice","reason":"join","users":3}"#;
        match decode_room_payload("chat.room.general.sys", body).unwrap() {
            RoomPayload::System(e) => {
                assert_eq!(
                    (e.kind, e.reason, e.users),
                    (SystemKind::Joined, Reason::Join, 3)
                );
                assert_eq!(e.detail, EventDetail::default());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn moderation_events_match_contract() {
        let body = br#"{"v":1,"type":"muted","id":"m1","room":"general","user":"bob",
            "reason":"moderator","users":0,"by":"alice","until":"2026-11-28T09:10:00.000Z",
            "note":"spam","ts":"2026-11-28T09:00:00.000Z"}"#;
        let RoomPayload::System(e) = decode_room_payload("chat.room.general.sys", body).unwrap()
        else {
            panic!("not a system event")
        };
        assert_eq!((e.kind, e.reason), (SystemKind::Muted, Reason::Moderator));
        assert_eq!(e.detail.by, Some(alice()));
        assert_eq!(e.detail.note.as_deref(), Some("spam"));
        assert!(e.detail.until.is_some());
        let tomb = br#"{"type":"deleted","id":"d","room":"general","user":"bob","reason":"flood","seqs":[4,5,9]}"#;
        let RoomPayload::System(t) = decode_room_payload("chat.room.general.sys", tomb).unwrap()
        else {
            panic!("not a system event")
        };
        assert_eq!((t.kind, t.reason), (SystemKind::Deleted, Reason::Flood));
        assert_eq!(t.detail.seqs, vec![4, 5, 9]);
        let v = serde_json::to_value(&t).unwrap();
        assert_eq!(v["seqs"], serde_json::json!([4, 5, 9]));
        assert!(v.get("detail").is_none() && v.get("by").is_none());
        for kind in ["unmuted", "kicked", "banned", "unbanned"] {
            let body =
                format!(r#"{{"type":"{kind}","room":"general","user":"bob","reason":"author"}}"#);
            assert!(decode_room_payload("chat.room.general.sys", body.as_bytes()).is_ok());
        }
    }

    #[test]
    fn history_entries_carry_bodies_verbatim() {
        let body = br#" {"text":"h\u00e9","extra":[1,2]} "#;
        let subject = "chat.room.general.msg.bob";
        // Pages carry times to the millisecond.
        let time = DateTime::from_timestamp_millis(1_700_000_000_123).unwrap();
        let entry = HistoryEntry::new(7, time, subject, body).unwrap();
        assert_eq!(entry.message.get(), r#"{"text":"h\u00e9","extra":[1,2]}"#);
        let page = HistoryPage {
            room: room(),
            messages: vec![entry.clone()],
            next: None,
        };
        let bytes = serde_json::to_vec(&page).unwrap();
        let back: HistoryPage = decode_reply(&bytes).unwrap();
        assert_eq!(back, page);
        match back.messages[0].decode().unwrap() {
            RoomPayload::Chat { message, .. } => assert_eq!(message.text, "hé"),
            other => panic!("{other:?}"),
        }
        assert!(HistoryEntry::new(1, Utc::now(), subject, b"{").is_none());
        assert!(HistoryEntry::new(1, Utc::now(), subject, b"\xff").is_none());
    }

    #[test]
    fn replies() {
        let err = decode_reply::<UsersReply>(br#"{"ok":false,"error":"bad room"}"#).unwrap_err();
        assert!(matches!(err, ReplyError::Refused(ref e) if e == "bad room"));
        let bare = decode_reply::<UsersReply>(br#"{"ok":false}"#).unwrap_err();
        assert!(matches!(bare, ReplyError::Refused(ref e) if e == "request refused"));
        // Only a JSON `false` refuses; anything else is decoded as the reply.
        let odd = decode_reply::<UsersReply>(br#"{"ok":"false","room":"general","users":[]}"#);
        assert!(odd.is_ok());
        assert!(matches!(
            decode_reply::<UsersReply>(b"{"),
            Err(ReplyError::Malformed(_))
        ));
        let ok: UsersReply = decode_reply(br#"{"room":"general","users":["alice"]}"#).unwrap();
        assert_eq!(ok.users, vec![alice()]);
        let p = PresenceReply {
            ok: true,
            room: room(),
            users: 1,
            welcome: "hi".into(),
            heartbeat: 10,
            rejoined: false,
        };
        let v = serde_json::to_value(&p).unwrap();
        assert!(v.get("rejoined").is_none());
        let r: PresenceRequest = serde_json::from_str(
            r#"{"type":"join","session":"6f1c7d1e-1111-4222-8333-944445555666"}"#,
        )
        .unwrap();
        assert_eq!(r.action, PresenceAction::Join);
    }
}
