//! The JWTs of the auth callout exchange: nkey-signed (ed25519), as nats-server and the
//! nats-io/jwt library write them.
//!
//! A JWT is `base64url(header).base64url(claims).base64url(signature)` without padding;
//! the header is always `{"typ":"JWT","alg":"ed25519-nkey"}` and the signature is the
//! signer's nkey signature over `header.claims`. [`encode`] signs claims with a key;
//! [`decode`] checks a JWT's signature against the key its `iss` claim names (the
//! server signs its callout requests with its own key) and returns the claims.

use data_encoding::{BASE32_NOPAD, BASE64URL_NOPAD};
use nkeys::KeyPair;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha512_256};

const HEADER: &str = r#"{"typ":"JWT","alg":"ed25519-nkey"}"#;

/// Why a JWT could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    /// Not three base64url parts, or not JSON inside.
    #[error("malformed JWT: {0}")]
    Malformed(&'static str),
    /// The claims are not what was expected.
    #[error("unexpected JWT claims: {0}")]
    Claims(#[from] serde_json::Error),
    /// The signature does not verify against the issuer's key.
    #[error("JWT signature does not verify: {0}")]
    Signature(nkeys::error::Error),
}

/// Signs `claims` with `key`. The `jti` claim (an id of the claims, as nats-io/jwt
/// computes it: base32 of SHA-512/256 over the claims without it) is filled in here.
pub fn encode(claims: &impl Serialize, key: &KeyPair) -> Result<String, JwtError> {
    let mut value = serde_json::to_value(claims)?;
    let object = value
        .as_object_mut()
        .ok_or(JwtError::Malformed("claims are not a JSON object"))?;
    object.insert("jti".into(), "".into());
    let digest = Sha512_256::digest(serde_json::to_vec(object)?);
    object.insert("jti".into(), BASE32_NOPAD.encode(&digest).into());
    let signing_input = format!(
        "{}.{}",
        BASE64URL_NOPAD.encode(HEADER.as_bytes()),
        BASE64URL_NOPAD.encode(&serde_json::to_vec(&value)?)
    );
    let signature = key
        .sign(signing_input.as_bytes())
        .map_err(JwtError::Signature)?;
    Ok(format!(
        "{signing_input}.{}",
        BASE64URL_NOPAD.encode(&signature)
    ))
}

/// Reads a JWT's claims after checking its signature against the key in its `iss`.
pub fn decode<T: DeserializeOwned>(jwt: &str) -> Result<T, JwtError> {
    let jwt = jwt.trim();
    let (signing_input, signature) = jwt
        .rsplit_once('.')
        .ok_or(JwtError::Malformed("no signature part"))?;
    let (_, claims) = signing_input
        .split_once('.')
        .ok_or(JwtError::Malformed("no claims part"))?;
    let claims = BASE64URL_NOPAD
        .decode(claims.as_bytes())
        .map_err(|_| JwtError::Malformed("claims are not base64url"))?;
    let signature = BASE64URL_NOPAD
        .decode(signature.as_bytes())
        .map_err(|_| JwtError::Malformed("signature is not base64url"))?;
    #[derive(serde::Deserialize)]
    struct Issuer {
        iss: String,
    }
    let issuer: Issuer = serde_json::from_slice(&claims)?;
    KeyPair::from_public_key(&issuer.iss)
        .and_then(|key| key.verify(signing_input.as_bytes(), &signature))
        .map_err(JwtError::Signature)?;
    Ok(serde_json::from_slice(&claims)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Serialize, serde::Deserialize, PartialEq)]
    struct Claims {
        iss: String,
        sub: String,
    }

    #[test]
    fn round_trip_and_tamper() {
        let key = KeyPair::new_account();
        let claims = Claims {
            iss: key.public_key(),
            sub: "UXYZ".into(),
        };
        let jwt = encode(&claims, &key).unwrap();
        assert_eq!(decode::<Claims>(&jwt).unwrap(), claims);

        // Claims signed by another key but naming this one as issuer do not verify.
        let other = KeyPair::new_account();
        let forged = encode(&claims, &other).unwrap();
        assert!(matches!(
            decode::<Claims>(&forged),
            Err(JwtError::Signature(_))
        ));
        assert!(decode::<Claims>("a.b").is_err());
        assert!(decode::<Claims>("").is_err());
    }
}
