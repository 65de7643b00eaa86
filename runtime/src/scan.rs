//! The short-lived consumer: create an ordered consumer, read until nothing is
//! pending (or the reader has seen enough), delete it. How the stream reads, the
//! presence worker's listings and its search for an already stored event all read a
//! stream once, written once.
//!
//! Ordered consumers are ephemeral and would linger on the server until their
//! inactivity threshold; deleting each one when its scan ends leaves nothing behind.
//! A consumer with nothing pending is deleted without reading.

use std::time::Duration;

use async_nats::jetstream::consumer::pull;
use async_nats::jetstream::message::Info;
use async_nats::jetstream::stream::{ConsumerError, Stream};
use async_nats::jetstream::Message;
use futures::StreamExt;

/// Why a scan failed; each kind keeps its cause.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// The consumer could not be created (the stream may be gone).
    #[error("cannot create a reading consumer: {0}")]
    Consumer(#[from] ConsumerError),
    /// The consumer's messages could not be read.
    #[error("reading from a consumer failed: {0}")]
    Messages(#[source] async_nats::Error),
    /// A message arrived without its JetStream metadata.
    #[error("a message without JetStream metadata: {0}")]
    Metadata(#[source] async_nats::Error),
    /// Nothing arrived in time.
    #[error("no message arrived within {0:?}")]
    Timeout(Duration),
    /// The consumer ended before nothing was pending.
    #[error("the reading consumer ended early")]
    Ended,
}

/// Reads the messages `config` selects from `stream`, oldest first, handing each to
/// `visit` with its metadata, until `visit` returns false or nothing is pending; each
/// message must arrive within `patience`. The consumer is deleted when the scan ends,
/// whatever its outcome.
///
/// ```no_run
/// # async fn run(stream: async_nats::jetstream::stream::Stream) -> Result<(), chat_runtime::scan::ScanError> {
/// use std::time::Duration;
/// use async_nats::jetstream::consumer::pull::OrderedConfig;
/// // Count the messages stored on one subject.
/// let config = OrderedConfig { filter_subject: "chat.room.general.msg.alice".into(), ..Default::default() };
/// let mut count = 0;
/// chat_runtime::scan::scan(&stream, config, Duration::from_secs(10), |_message, _info| {
///     count += 1;
///     true // go on
/// })
/// .await?;
/// # Ok(())
/// # }
/// ```
pub async fn scan<I>(
    stream: &Stream<I>,
    config: pull::OrderedConfig,
    patience: Duration,
    mut visit: impl FnMut(&Message, &Info<'_>) -> bool,
) -> Result<(), ScanError> {
    let consumer = stream.create_consumer(config).await?;
    let name = consumer.cached_info().name.clone();
    let result = if consumer.cached_info().num_pending == 0 {
        Ok(())
    } else {
        read(consumer, patience, &mut visit).await
    };
    if let Err(error) = stream.delete_consumer(&name).await {
        tracing::debug!(%error, consumer = %name, "cannot delete a reading consumer");
    }
    result
}

/// The reading loop of [`scan`].
async fn read(
    consumer: async_nats::jetstream::consumer::Consumer<pull::OrderedConfig>,
    patience: Duration,
    visit: &mut impl FnMut(&Message, &Info<'_>) -> bool,
) -> Result<(), ScanError> {
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| ScanError::Messages(e.into()))?;
    loop {
        let message = tokio::time::timeout(patience, messages.next())
            .await
            .map_err(|_| ScanError::Timeout(patience))?
            .ok_or(ScanError::Ended)?
            .map_err(|e| ScanError::Messages(e.into()))?;
        let info = message.info().map_err(ScanError::Metadata)?;
        if !visit(&message, &info) || info.pending == 0 {
            return Ok(());
        }
    }
}
