//! The shape every failed request shares (`{"ok": false, "error"}`) and the decoder
//! of a worker's reply that turns it into an error.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// Any failed request: `{"ok": false, "error": "<why>"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReply {
    /// Always false.
    pub ok: bool,
    /// What was wrong.
    pub error: String,
}

impl ErrorReply {
    /// An error reply saying `why` (sanitized: it also goes into a header and logs).
    pub fn new(why: impl std::fmt::Display) -> Self {
        Self {
            ok: false,
            error: crate::display::sanitize(&why.to_string()).into_owned(),
        }
    }
}

/// Why a reply could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ReplyError {
    /// The worker answered `{"ok": false}`.
    #[error("{}", crate::display::sanitize(.0))]
    Refused(String),
    /// The reply was not the expected JSON.
    #[error("malformed reply: {0}")]
    Malformed(#[from] serde_json::Error),
}

/// Decodes a worker's reply: an [`ErrorReply`] becomes [`ReplyError::Refused`].
///
/// The body is decoded straight into `T` after a first pass that only looks at `ok`
/// and `error` (skipping everything else without building anything): no JSON tree is
/// built, which matters for big replies such as history pages.
pub fn decode_reply<T: serde::de::DeserializeOwned>(payload: &[u8]) -> Result<T, ReplyError> {
    /// The two fields telling an [`ErrorReply`], whatever their types.
    #[derive(Deserialize)]
    struct Verdict<'a> {
        #[serde(default, borrow)]
        ok: Option<&'a RawValue>,
        #[serde(default)]
        error: Option<serde_json::Value>,
    }
    let verdict: Verdict = serde_json::from_slice(payload)?;
    if verdict.ok.map(RawValue::get) == Some("false") {
        let error = match verdict.error {
            Some(serde_json::Value::String(error)) => error,
            _ => "request refused".to_string(),
        };
        return Err(ReplyError::Refused(error));
    }
    Ok(serde_json::from_slice(payload)?)
}
