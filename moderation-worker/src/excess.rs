//! A flood's excess: which of the user's stored messages went beyond the allowance
//! ([`find`]), and removing them ([`delete`]).
//!
//! The allowance is replayed ([`rate::excess`]) over the user's messages of every room
//! they wrote to lately, by their stream times, from a full bucket at the record's
//! `since` (a little before the crossing). Reading from the stream rather than
//! remembering what went by makes the answer the same in every instance, so a worker
//! that finishes a dead one's work removes the same messages.

use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull, consumer::DeliverPolicy};
use chat_protocol::body::Rate;
use chat_protocol::{streams, subjects, RoomName, UserName};
use futures::StreamExt;

use crate::rate;
use crate::record::Purge;

/// Most messages of one user read back per purge (bounds memory: 24 bytes each).
pub const MAX_SCANNED: usize = 2_000_000;
/// Deletions in flight at once.
const DELETE_CONCURRENCY: usize = 64;
/// How long to wait for each message of a scan.
const SCAN_PATIENCE: Duration = Duration::from_secs(5);

/// Why the excess could not be found or removed.
#[derive(Debug, thiserror::Error)]
pub enum ExcessError {
    /// A room stream could not be read.
    #[error("cannot read room {room}: {source}")]
    Read {
        /// Which.
        room: RoomName,
        /// Why.
        source: async_nats::Error,
    },
    /// A message could not be deleted.
    #[error("cannot delete message {seq} of room {room}: {source}")]
    Delete {
        /// Where.
        room: RoomName,
        /// Which.
        seq: u64,
        /// Why.
        source: async_nats::Error,
    },
}

/// The sequences, per room, of what `user` published beyond `rate` since
/// `purge.since`, in ascending order. Rooms without a stream are skipped.
pub async fn find(
    js: &jetstream::Context,
    rate: &Rate,
    user: &UserName,
    purge: &Purge,
) -> Result<Vec<(RoomName, Vec<u64>)>, ExcessError> {
    let since_nanos = purge.since.timestamp_nanos_opt().unwrap_or_default();
    let start_time =
        async_nats::datetime::from_nanos(i128::from(since_nanos)).expect("a time within range");
    let mut stored = Vec::new();
    for (index, room) in purge.rooms.iter().enumerate() {
        let read = |source: async_nats::Error| ExcessError::Read {
            room: room.clone(),
            source,
        };
        let stream = match js.get_stream(streams::stream_name(room)).await {
            Ok(stream) => stream,
            Err(e)
                if matches!(e.kind(), jetstream::context::GetStreamErrorKind::JetStream(j)
                    if j.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND) =>
            {
                continue
            }
            Err(e) => return Err(read(e.into())),
        };
        let config = pull::OrderedConfig {
            filter_subject: subjects::room_message(room, user),
            deliver_policy: DeliverPolicy::ByStartTime { start_time },
            ..Default::default()
        };
        chat_runtime::scan::scan(&stream, config, SCAN_PATIENCE, |_, info| {
            let published = info.published;
            let time = published.unix_timestamp() as f64 + f64::from(published.nanosecond()) / 1e9;
            stored.push((index, time, info.stream_sequence));
            stored.len() < MAX_SCANNED
        })
        .await
        .map_err(|e| read(e.into()))?;
    }
    if stored.len() >= MAX_SCANNED {
        tracing::warn!(%user, "more than {MAX_SCANNED} messages to check; the rest stays");
    }
    let since = since_nanos as f64 / 1e9;
    let mut per_room: Vec<Vec<u64>> = vec![Vec::new(); purge.rooms.len()];
    for (index, seq) in rate::excess(rate, since, &stored) {
        per_room[index].push(seq);
    }
    Ok(purge
        .rooms
        .iter()
        .cloned()
        .zip(per_room)
        .filter(|(_, seqs)| !seqs.is_empty())
        .map(|(room, mut seqs)| {
            seqs.sort_unstable();
            (room, seqs)
        })
        .collect())
}

/// Deletes `seqs` from `room`'s stream; a message already gone counts as deleted.
pub async fn delete(
    js: &jetstream::Context,
    room: &RoomName,
    seqs: &[u64],
) -> Result<(), ExcessError> {
    let name = streams::stream_name(room);
    let stream = js
        .get_stream_no_info(&name)
        .await
        .map_err(|e| ExcessError::Read {
            room: room.clone(),
            source: e.into(),
        })?;
    let mut deletions = futures::stream::iter(seqs.iter().copied())
        .map(|seq| {
            let stream = &stream;
            async move { (seq, stream.delete_message(seq).await) }
        })
        .buffer_unordered(DELETE_CONCURRENCY);
    while let Some((seq, result)) = deletions.next().await {
        match result {
            Ok(_) => {}
            Err(e) if is_gone(&e) => {}
            Err(e) => {
                return Err(ExcessError::Delete {
                    room: room.clone(),
                    seq,
                    source: e.into(),
                })
            }
        }
    }
    Ok(())
}

/// Whether a delete failed only because the message is not there (any more).
pub fn is_gone(error: &jetstream::stream::DeleteMessageError) -> bool {
    matches!(
        error.kind(),
        jetstream::stream::DeleteMessageErrorKind::JetStream(e)
            if e.error_code() == jetstream::ErrorCode::SEQUENCE_NOT_FOUND
                || e.error_code() == jetstream::ErrorCode::NO_MESSAGE_FOUND
                || e.error_code() == jetstream::ErrorCode::STREAM_MESSAGE_DELETE_FAILED
    )
}
