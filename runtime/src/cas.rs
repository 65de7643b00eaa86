//! Compare-and-set on JetStream (a KV update or create at a revision, a publish that
//! expects a last sequence): telling a lost race from a failure, written once.
//!
//! nats-server refuses a write whose expected last sequence is not the stream's with
//! error 10071 ("wrong last sequence: N") or, on a clustered stream, 10164 ("wrong
//! last sequence", seen with 2.15.1). async-nats 0.51 knows only 10071: the other
//! comes back as an error of kind `Other`, and the workers took a lost race on a
//! cluster for a failure (a presence `leave` answered "unavailable").

use std::error::Error;

use async_nats::jetstream::context::{PublishError, PublishErrorKind};
use async_nats::jetstream::kv::{CreateError, CreateErrorKind, UpdateError, UpdateErrorKind};
use async_nats::jetstream::ErrorCode;

/// JetStream's "wrong last sequence" without the sequence (async-nats has no name
/// for it in its error kinds).
const WRONG_LAST_SEQUENCE_CONSTANT: ErrorCode = ErrorCode(10164);

/// Whether `err` (or any error it was caused by) says that the write lost a race: the
/// entry or stream was no longer at the expected revision or sequence, or a create
/// found the key taken.
pub fn lost_race(err: &(dyn Error + 'static)) -> bool {
    let mut cause = Some(err);
    while let Some(err) = cause {
        if let Some(e) = err.downcast_ref::<UpdateError>() {
            if e.kind() == UpdateErrorKind::WrongLastRevision {
                return true;
            }
        } else if let Some(e) = err.downcast_ref::<CreateError>() {
            if e.kind() == CreateErrorKind::AlreadyExists {
                return true;
            }
        } else if let Some(e) = err.downcast_ref::<PublishError>() {
            if e.kind() == PublishErrorKind::WrongLastSequence {
                return true;
            }
        } else if let Some(e) = err.downcast_ref::<async_nats::jetstream::Error>() {
            let code = e.error_code();
            return code == ErrorCode::STREAM_WRONG_LAST_SEQUENCE
                || code == WRONG_LAST_SEQUENCE_CONSTANT;
        }
        cause = err.source();
    }
    false
}
