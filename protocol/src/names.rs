//! Room, user and session names: the rules of the contract, checked before anything
//! reaches NATS.
//!
//! Names become subject tokens and KV keys, so a name that broke the rules could
//! address another room or smuggle in a wildcard. Every name is therefore a newtype
//! that can only be built through validation; code that holds a [`RoomName`] knows it
//! is safe to put into a subject.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize};

/// Longest room name, in characters.
pub const ROOM_MAX_LEN: usize = 64;
/// Longest user name, in characters.
pub const USER_MAX_LEN: usize = 32;

/// Why a name was refused. The message says what was wrong and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name was empty.
    #[error("{kind} name is empty; {rule}")]
    Empty {
        kind: &'static str,
        rule: &'static str,
    },
    /// The name was longer than allowed.
    #[error("{kind} name {name:?} is {len} characters long; {rule}")]
    TooLong {
        kind: &'static str,
        name: String,
        len: usize,
        rule: &'static str,
    },
    /// The name held a character outside the allowed set.
    #[error("{kind} name {name:?} contains {found:?}; {rule}")]
    BadChar {
        kind: &'static str,
        name: String,
        found: char,
        rule: &'static str,
    },
    /// The session id was not a UUID.
    #[error("session id {0:?} is not a UUID (simple or hyphenated form)")]
    BadSession(String),
}

const ROOM_RULE: &str =
    "a room name is 1-64 characters of a-z, 0-9, '-' and '_', starting with a letter or digit";
const USER_RULE: &str = "a user name is 1-32 characters of A-Z, a-z, 0-9, '-' and '_'";

fn check(
    kind: &'static str,
    rule: &'static str,
    name: &str,
    max: usize,
    allowed: impl Fn(usize, char) -> bool,
) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty { kind, rule });
    }
    let len = name.chars().count();
    if len > max {
        return Err(NameError::TooLong {
            kind,
            name: crate::display::sanitize(name).into_owned(),
            len,
            rule,
        });
    }
    if let Some(found) = name.chars().enumerate().find(|&(i, c)| !allowed(i, c)) {
        return Err(NameError::BadChar {
            kind,
            name: crate::display::sanitize(name).into_owned(),
            found: found.1,
            rule,
        });
    }
    Ok(())
}

/// A valid room name: `[a-z0-9][a-z0-9_-]{0,63}`.
///
/// [`RoomName::parse_input`] lower-cases what a person typed first; [`RoomName::new`]
/// (used for names from the wire) does not, so a subject with upper-case letters in
/// the room token is rejected rather than silently mapped to another room.
///
/// Shared, not copied, when cloned: every event of a room names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomName(Arc<str>);

impl RoomName {
    /// Validates a room name exactly as given (wire input).
    pub fn new(name: impl Into<String>) -> Result<Self, NameError> {
        let name = name.into();
        check("room", ROOM_RULE, &name, ROOM_MAX_LEN, |i, c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || (i > 0 && (c == '-' || c == '_'))
        })?;
        Ok(Self(name.into()))
    }

    /// Validates a room name typed by a person: surrounding blanks are trimmed and the
    /// name is lower-cased first, as the contract says.
    pub fn parse_input(input: &str) -> Result<Self, NameError> {
        Self::new(input.trim().to_lowercase())
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A valid user name: `[A-Za-z0-9_-]{1,32}`, case kept.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct UserName(String);

impl UserName {
    /// Validates a user name.
    pub fn new(name: impl Into<String>) -> Result<Self, NameError> {
        let name = name.into();
        check("user", USER_RULE, &name, USER_MAX_LEN, |_, c| {
            c.is_ascii_alphanumeric() || c == '-' || c == '_'
        })?;
        Ok(Self(name))
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One running client process. Kept in the simple (32 hex digits) form on the wire
/// and in KV keys, since KV keys may not hold every character of other forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(uuid::Uuid);

impl SessionId {
    /// A fresh random session id.
    pub fn random() -> Self {
        Self(uuid::Uuid::new_v4())
    }

    /// Parses a UUID in simple or hyphenated form.
    pub fn new(text: &str) -> Result<Self, NameError> {
        uuid::Uuid::try_parse(text)
            .map(Self)
            .map_err(|_| NameError::BadSession(crate::display::sanitize(text).into_owned()))
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.simple(), f)
    }
}

impl Serialize for RoomName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl Serialize for SessionId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

macro_rules! name_impls {
    ($($ty:ty),*) => {$(
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
        impl FromStr for $ty {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, NameError> {
                Self::new(s)
            }
        }
    )*};
}
name_impls!(RoomName, UserName);

impl FromStr for SessionId {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, NameError> {
        Self::new(s)
    }
}

macro_rules! deserialize_validated {
    ($($ty:ty),*) => {$(
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                // Validated as it came: no second copy of the text.
                let s = String::deserialize(d)?;
                <$ty>::new(s).map_err(serde::de::Error::custom)
            }
        }
    )*};
}
deserialize_validated!(RoomName, UserName);

impl<'de> Deserialize<'de> for SessionId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::new(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_rules() {
        assert!(RoomName::new("general").is_ok());
        assert!(RoomName::new("rust-dev").is_ok());
        assert!(RoomName::new("team_42").is_ok());
        assert!(RoomName::new("4chan").is_ok());
        assert!(RoomName::new("a".repeat(64)).is_ok());
        assert!(matches!(RoomName::new(""), Err(NameError::Empty { .. })));
        assert!(matches!(
            RoomName::new("a".repeat(65)),
            Err(NameError::TooLong { len: 65, .. })
        ));
        assert!(matches!(
            RoomName::new("-x"),
            Err(NameError::BadChar { found: '-', .. })
        ));
        assert!(matches!(
            RoomName::new("General"),
            Err(NameError::BadChar { found: 'G', .. })
        ));
        assert!(matches!(
            RoomName::new("a.b"),
            Err(NameError::BadChar { found: '.', .. })
        ));
        assert!(matches!(
            RoomName::new("a*"),
            Err(NameError::BadChar { .. })
        ));
        assert!(matches!(
            RoomName::new("a>"),
            Err(NameError::BadChar { .. })
        ));
        assert!(matches!(
            RoomName::new("a b"),
            Err(NameError::BadChar { .. })
        ));
        assert_eq!(
            RoomName::parse_input(" General ").unwrap().as_str(),
            "general"
        );
    }

    #[test]
    fn user_rules() {
        assert!(UserName::new("alice").is_ok());
        assert!(UserName::new("Bob_2").is_ok());
        assert!(UserName::new("-dash-").is_ok());
        assert!(UserName::new("").is_err());
        assert!(UserName::new("x".repeat(33)).is_err());
        assert!(UserName::new("al ice").is_err());
        assert!(UserName::new("é").is_err());
        let err = UserName::new("a.b").unwrap_err().to_string();
        assert!(err.contains("'.'") && err.contains("A-Z"), "{err}");
    }

    #[test]
    fn session_forms() {
        let s = SessionId::random();
        let simple = s.to_string();
        assert_eq!(simple.len(), 32);
        assert_eq!(SessionId::new(&simple).unwrap(), s);
        let hyphenated = uuid::Uuid::parse_str(&simple)
            .unwrap()
            .hyphenated()
            .to_string();
        assert_eq!(SessionId::new(&hyphenated).unwrap(), s);
        assert!(SessionId::new("nope").is_err());
    }

    #[test]
    fn error_messages_are_safe_to_print() {
        let err = UserName::new("\u{1b}[31mevil").unwrap_err().to_string();
        assert!(!err.contains('\u{1b}'), "{err}");
    }
}
