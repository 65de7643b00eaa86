//! Resume tokens: a login that costs a signature check instead of an argon2 hash.
//!
//! After logging in with the password, a client asks `chat.auth.resume` for a token and
//! presents it as the password when it reconnects. A thousand clients reconnecting after
//! a server restart then cost a thousand ed25519 verifications (microseconds each), not
//! a thousand argon2 hashes (tens of milliseconds and 19 MiB each). A token names the
//! user, its expiry and the revision of the user's record, and is signed with the
//! issuer key: it stops working when it expires or when the password changes.
//!
//! Format: `resume.v1.<user>.<expiry, unix seconds>.<record revision>.<signature>`.

use chat_protocol::auth::RESUME_TOKEN_PREFIX;
use chat_protocol::UserName;
use data_encoding::BASE64URL_NOPAD;
use nkeys::KeyPair;

/// What a valid token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resume {
    /// Whose it is.
    pub user: String,
    /// Expiry, unix seconds.
    pub expires: i64,
    /// The user record's revision when it was issued.
    pub revision: u64,
}

fn signed_text(user: &str, expires: i64, revision: u64) -> String {
    format!("chat-resume-v1|{user}|{expires}|{revision}")
}

/// A token for `user` at record `revision`, valid until `expires`.
pub fn issue(key: &KeyPair, user: &UserName, expires: i64, revision: u64) -> String {
    let signature = key
        .sign(signed_text(user.as_str(), expires, revision).as_bytes())
        .expect("an account seed can sign");
    format!(
        "{RESUME_TOKEN_PREFIX}{user}.{expires}.{revision}.{}",
        BASE64URL_NOPAD.encode(&signature)
    )
}

/// Whether `password` is a resume token at all (it is then never tried as a password).
pub fn is_token(password: &str) -> bool {
    password.starts_with(RESUME_TOKEN_PREFIX)
}

/// The token's content if its signature holds and it has not expired at `now`.
pub fn verify(key: &KeyPair, token: &str, now: i64) -> Option<Resume> {
    let rest = token.strip_prefix(RESUME_TOKEN_PREFIX)?;
    let mut parts = rest.split('.');
    let (user, expires, revision, signature) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let expires: i64 = expires.parse().ok()?;
    let revision: u64 = revision.parse().ok()?;
    let signature = BASE64URL_NOPAD.decode(signature.as_bytes()).ok()?;
    key.verify(signed_text(user, expires, revision).as_bytes(), &signature)
        .ok()?;
    (expires > now).then(|| Resume {
        user: user.to_string(),
        expires,
        revision,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_verify_expire_tamper() {
        let key = KeyPair::new_account();
        let alice = UserName::new("alice").unwrap();
        let token = issue(&key, &alice, 1_000, 7);
        assert!(is_token(&token));
        assert_eq!(
            verify(&key, &token, 999),
            Some(Resume {
                user: "alice".into(),
                expires: 1_000,
                revision: 7
            })
        );
        assert_eq!(verify(&key, &token, 1_000), None, "expired");
        let tampered = token.replace(".7.", ".8.");
        assert_eq!(verify(&key, &tampered, 0), None);
        let other = KeyPair::new_account();
        assert_eq!(verify(&other, &token, 0), None);
        assert_eq!(verify(&key, "resume.v1.alice", 0), None);
    }
}
