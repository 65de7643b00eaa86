//! [`PresenceWorker`]: wires the buckets, the expiry consumer and the NATS service
//! together, and stops them gracefully (or abruptly, on drop).

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, context::CreateKeyValueError};
use chat_runtime::{Hosted, Stopper};
use tokio::task::JoinHandle;

use crate::announce::Announcer;
use crate::availability;
use crate::config::Config;
use crate::context::Context;
use crate::expiry;
use crate::listing::Lister;
use crate::rooms::RoomStreams;
use crate::service;
use crate::sessions::Sessions;
use crate::stats::Stats;

/// How long [`PresenceWorker::stop`] waits for the expiry task to finish its marker.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Why a worker could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration cannot work.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The presence buckets could not be created (is JetStream enabled?).
    #[error("cannot create the presence buckets: {0}")]
    Buckets(#[from] CreateKeyValueError),
    /// The shared expiry consumer could not be created.
    #[error("cannot create the expiry consumer: {0}")]
    Consumer(#[from] async_nats::jetstream::stream::ConsumerError),
    /// The NATS service could not be started.
    #[error("cannot start the NATS service: {0}")]
    Service(async_nats::Error),
}

/// One running instance of the presence worker. Any number may run side by side
/// (against the same NATS); all state is in JetStream.
///
/// Dropping it aborts its tasks at once, as a crash would (tests rely on that; give
/// each instance its own `async_nats::Client` so its connection goes too).
pub struct PresenceWorker {
    hosted: Option<Hosted>,
    expiry: Option<JoinHandle<()>>,
    sweep: Option<JoinHandle<()>>,
    view: Option<JoinHandle<()>>,
    beats: Option<JoinHandle<()>>,
    stop: Stopper,
}

impl PresenceWorker {
    /// Creates the buckets and the expiry consumer if needed, starts the NATS service
    /// and its tasks, and sweeps for transitions missed while no worker ran.
    pub async fn start(client: async_nats::Client, config: Config) -> Result<Self, StartError> {
        config.validate().map_err(StartError::Config)?;
        let js = jetstream::new(client.clone());
        let stats = Arc::new(Stats::default());
        let lister = Lister::new(client.clone(), config.max_concurrent_listings);
        let sessions = Sessions::open(
            js.clone(),
            lister,
            config.kv_replicas,
            config.ttl,
            config.marker_ttl,
        )
        .await?;
        let rooms = Arc::new(RoomStreams::new(js.clone(), config.streams.clone()));
        let announcer = Announcer::open(
            js,
            config.kv_replicas,
            sessions.clone(),
            rooms.clone(),
            stats.clone(),
            config.event_gap,
        )
        .await?;
        // A beat before anything reads the clock: an outage that just ended is
        // recorded before the first expiry marker or the sweep is judged.
        let every = availability::beat_every(config.ttl);
        if let Err(err) = availability::beat(announcer.store(), every).await {
            tracing::warn!(%err, "cannot write the workers' clock");
        }
        let beats = tokio::spawn(availability::beats(announcer.store().clone(), every));
        let consumer = expiry::consumer(&sessions, &config).await?;
        let view = tokio::spawn({
            let sessions = sessions.clone();
            async move { sessions.follow().await }
        });
        let ctx = Arc::new(Context {
            config,
            sessions,
            announcer,
            rooms,
            stats,
        });
        let hosted = service::start(&client, ctx.clone())
            .await
            .map_err(StartError::Service)?;
        let (stop, stopped) = chat_runtime::shutdown::stopper();
        let expiry = tokio::spawn(expiry::run(ctx.clone(), consumer, stopped));
        let sweep = tokio::spawn(async move {
            match expiry::sweep(&ctx).await {
                Ok(0) => tracing::debug!("start-up sweep: nothing to do"),
                Ok(n) => tracing::info!(reconciled = n, "start-up sweep reconciled users"),
                Err(err) => tracing::warn!(%err, "start-up sweep failed"),
            }
        });
        tracing::info!(service = service::SERVICE_NAME, "presence worker started");
        Ok(Self {
            hosted: Some(hosted),
            expiry: Some(expiry),
            sweep: Some(sweep),
            view: Some(view),
            beats: Some(beats),
            stop,
        })
    }

    /// Graceful: stops taking requests, finishes the ones in flight and the marker in
    /// hand. Whatever is left (a pending event, an unacknowledged marker) is finished
    /// by another instance or the next start.
    pub async fn stop(mut self) {
        if let Some(hosted) = self.hosted.take() {
            hosted.stop().await;
        }
        self.stop.stop();
        let expiry = self.expiry.take();
        self.abort_background();
        if let Some(expiry) = expiry {
            let _ = tokio::time::timeout(STOP_GRACE, expiry).await;
        }
        tracing::info!("presence worker stopped");
    }
}

impl Drop for PresenceWorker {
    fn drop(&mut self) {
        // Dropping the hosted service aborts its tasks too.
        self.hosted.take();
        self.abort_background();
    }
}

impl PresenceWorker {
    /// Aborts the background tasks still held (all but the expiry task once a
    /// graceful stop has taken it to let it finish its marker).
    fn abort_background(&mut self) {
        let tasks = [
            self.expiry.take(),
            self.sweep.take(),
            self.view.take(),
            self.beats.take(),
        ];
        for task in tasks.into_iter().flatten() {
            task.abort();
        }
    }
}
