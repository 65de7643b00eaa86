//! One replay request, from its subject and body to a [`ReplayPlan`].
//!
//! A whole replay (`#all_messages`, `#my_messages`) is not carried through the worker:
//! the worker checks the request, looks the room's stream up once and answers with
//! the plan (stream, filter, first and last sequence); the reader then reads the
//! stream itself with an ordered consumer of its own, under its own permissions and
//! into its own inbox. The worker creates nothing on the server, so there is nothing
//! to clean up whenever it dies, and it never sends more than one small reply per
//! request, whoever that reply goes to.

use async_nats::jetstream;
use chat_protocol::body::{ReplayPlan, ReplayRequest};
use chat_protocol::subjects;

use crate::page::{decode, open, PageError};

/// Serves one request on `subject` (`chat.replay.<room>`) with `body` (a
/// [`ReplayRequest`]; empty asks for the whole room): the plan, or why not.
pub async fn plan(
    js: &jetstream::Context,
    subject: &str,
    body: &[u8],
) -> Result<ReplayPlan, PageError> {
    let room = subjects::parse_replay(subject)?;
    let request: ReplayRequest = decode(body)?;
    // The lookup is the stream info: its last sequence is where the replay ends.
    let last = open(js, &room).await?.cached_info().state.last_sequence;
    Ok(ReplayPlan::new(room, &request, last))
}
