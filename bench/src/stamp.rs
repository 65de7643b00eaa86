//! Timestamps carried in what is sent, so receivers measure end-to-end latency
//! without any shared table: a chat text or a raw body starts with the sending time
//! (nanoseconds since the bench started, one clock for the whole process) and is
//! padded to the size asked for.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chat_protocol::body::{ChatMessage, MessageKind};
use chat_protocol::{RoomName, UserName};

/// Digits of the time prefix.
const DIGITS: usize = 20;

fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

fn now_nanos() -> u64 {
    u64::try_from(base().elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// A text of `chars` characters (at least the prefix) stamped with the time now.
pub fn text(chars: usize) -> String {
    let mut text = format!("{:0DIGITS$} ", now_nanos());
    while text.len() < chars {
        text.push('x');
    }
    text
}

/// A raw body of `len` bytes (at least the prefix) stamped with the time now.
pub fn body(len: usize) -> Bytes {
    Bytes::from(text(len))
}

/// Time since the stamp at the start of `stamped`, if it has one.
pub fn age(stamped: &[u8]) -> Option<Duration> {
    let digits = std::str::from_utf8(stamped.get(..DIGITS)?).ok()?;
    let sent: u64 = digits.parse().ok()?;
    Some(Duration::from_nanos(now_nanos().saturating_sub(sent)))
}

/// Size of the JSON body the client publishes for a text of `chars` characters: raw
/// baselines send bodies of this size.
pub fn chat_body_len(room: &RoomName, user: &UserName, chars: usize) -> usize {
    ChatMessage::new(room, user, MessageKind::Chat, &text(chars))
        .ok()
        .and_then(|m| serde_json::to_vec(&m).ok())
        .map_or(chars, |body| body.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let t = text(100);
        assert_eq!(t.len(), 100);
        let age = age(t.as_bytes()).unwrap();
        assert!(age < Duration::from_secs(60));
        assert!(super::age(b"hello").is_none());
        assert_eq!(body(10).len(), DIGITS + 1);
        let room = RoomName::new("r").unwrap();
        let user = UserName::new("u").unwrap();
        assert!(chat_body_len(&room, &user, 100) > 100);
    }
}
