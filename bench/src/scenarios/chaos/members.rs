//! The chaos scenario's people: members who register, log in (again while a fault
//! refuses them), send numbered messages and record what they receive; the churners
//! who leave and come back; the member who probes history and `/users`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chat_client::call::RequestError;
use chat_client::history::Page;
use chat_client::login::{self, AccountError};
use chat_client::{Chat, Event, Options};
use chat_protocol::body::{MessageKind, SystemKind};
use chat_protocol::{RoomName, UserName};
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use rand::{Rng, SeedableRng};
use test_support::{password_of, Cluster};
use tokio::sync::{mpsc, watch};

use super::tally::{self, Received};
use super::{lock, Shared};
use crate::setup::{BenchError, PATIENCE};

/// How long a churner stays in the room before leaving again (seconds).
const CHURN_ONLINE: std::ops::Range<f64> = 5.0..15.0;
/// How often the probing member asks for a history page and `/users`.
const PROBE_EVERY: Duration = Duration::from_secs(5);

/// Registers `name`, asking again while the auth workers or the user table are not
/// there yet.
pub(super) async fn register(cluster: &Cluster, name: &str) -> Result<(), BenchError> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let result = login::register_trusting(
            &cluster.url(),
            Some(cluster.ca()),
            name,
            &password_of(name),
            Duration::from_secs(10),
        )
        .await;
        match result {
            Ok(_) => return Ok(()),
            Err(AccountError::Request(RequestError::Refused(_, why))) if why.contains("taken") => {
                return Ok(())
            }
            Err(err) if Instant::now() > deadline => {
                return Err(BenchError::Register(name.into(), err.to_string()))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// A session of `name` at `url` (one node, or the list), logging in again while the
/// login fails (a node, the auth workers or the user table in the middle of a fault).
pub(super) async fn connect(
    ca: &Path,
    url: &str,
    name: &str,
    shared: &Shared,
) -> Result<(Chat, mpsc::Receiver<Event>), BenchError> {
    let mut options = Options::new(url, UserName::new(name)?, password_of(name));
    options.tls_ca = Some(ca.to_path_buf());
    // Patient requests: a worker call may wait for a leader election.
    options.request_timeout = Duration::from_secs(10);
    let deadline = Instant::now() + PATIENCE * 2;
    loop {
        match Chat::connect(options.clone()).await {
            Ok(session) => return Ok(session),
            Err(err) if Instant::now() > deadline => return Err(err.into()),
            Err(err) => {
                tracing::warn!(name, "login failed, trying again: {err}");
                shared.login_retries.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

/// Completes once the run is told to stop.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Records every live message and presence event a member receives (once counting).
pub(super) async fn receive(
    mut events: mpsc::Receiver<Event>,
    received: Arc<Mutex<Received>>,
    shared: Arc<Shared>,
) {
    while let Some(event) = events.recv().await {
        if !shared.counting.load(Ordering::SeqCst) {
            continue;
        }
        match event {
            Event::Message {
                user,
                text,
                replay: false,
                ..
            } => {
                if let Some(n) = tally::counter(&text) {
                    lock(&received).message(user.as_str(), n, Instant::now());
                }
            }
            // A burst of arrivals is one event naming several users: each counts.
            Event::System {
                user, kind, detail, ..
            } => {
                let mut received = lock(&received);
                for who in std::iter::once(&user).chain(&detail.others) {
                    received.presence(who.as_str(), kind);
                }
            }
            _ => {}
        }
    }
}

/// Sends `chaos 1`, `chaos 2`, … at `rate` per second until stopped, then waits for the
/// fate of every message sent.
pub(super) async fn send(
    chat: Chat,
    room: RoomName,
    name: String,
    rate: f64,
    mut stop: watch::Receiver<bool>,
    shared: Arc<Shared>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(0.01)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pending = FuturesUnordered::new();
    let mut sending = true;
    let mut n = 0u64;
    loop {
        if !sending && pending.is_empty() {
            return;
        }
        tokio::select! {
            Some((n, result)) = pending.next(), if !pending.is_empty() => match result {
                Ok(_) => {
                    lock(&shared.acked).entry(name.clone()).or_default().insert(n);
                }
                Err(err) => {
                    tracing::warn!(name, n, "unconfirmed: {err}");
                    shared.unconfirmed.fetch_add(1, Ordering::SeqCst);
                }
            },
            _ = tick.tick(), if sending => {
                n += 1;
                match chat.send(&room, MessageKind::Chat, &tally::text(n)).await {
                    Ok(handle) => pending.push(async move { (n, handle.acked().await) }),
                    Err(err) => {
                        tracing::warn!(name, n, "not sent: {err}");
                        shared.unconfirmed.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
            _ = stopped(&mut stop), if sending => sending = false,
        }
    }
}

/// Asks for the room's latest history page and `/users` every [`PROBE_EVERY`].
pub(super) async fn probe(
    chat: Chat,
    room: RoomName,
    mut stop: watch::Receiver<bool>,
    shared: Arc<Shared>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(PROBE_EVERY) => {}
            _ = stopped(&mut stop) => return,
        }
        let (history, users) = tokio::join!(
            chat.history_page(&room, Page::Before(u64::MAX), 20),
            chat.users(&room)
        );
        let counter = |ok: bool, yes: &AtomicU64, no: &AtomicU64| {
            if ok { yes } else { no }.fetch_add(1, Ordering::SeqCst);
        };
        if let Err(err) = &history {
            tracing::warn!("history page failed: {err}");
        }
        if let Err(err) = &users {
            tracing::warn!("/users failed: {err}");
        }
        counter(history.is_ok(), &shared.history_ok, &shared.history_failed);
        counter(users.is_ok(), &shared.users_ok, &shared.users_failed);
    }
}

/// A member who leaves and comes back, over and over.
pub(super) struct Churner {
    name: String,
    url: String,
    ca: PathBuf,
    chat: Chat,
}

impl Churner {
    /// Logs `name` in (with every node's URL) and joins `room`.
    pub(super) async fn join(
        cluster: &Cluster,
        name: &str,
        room: &RoomName,
        shared: &Shared,
    ) -> Result<Self, BenchError> {
        let url = cluster.url();
        let chat = Self::online(cluster.ca(), &url, name, room, shared).await?;
        Ok(Self {
            name: name.to_string(),
            url,
            ca: cluster.ca().to_path_buf(),
            chat,
        })
    }

    async fn online(
        ca: &Path,
        url: &str,
        name: &str,
        room: &RoomName,
        shared: &Shared,
    ) -> Result<Chat, BenchError> {
        let (chat, mut events) = connect(ca, url, name, shared).await?;
        crate::setup::join(&chat, &mut events, room).await?;
        crate::setup::drain(events);
        Ok(chat)
    }

    /// Stays online for a while, leaves (closing the session), stays away for
    /// `offline` (longer than the presence TTL, so that even a leave lost to a fault
    /// has turned into a timeout by then), comes back; until stopped (after a whole
    /// cycle).
    pub(super) async fn churn(
        mut self,
        room: RoomName,
        offline: Duration,
        mut stop: watch::Receiver<bool>,
        shared: Arc<Shared>,
    ) -> Result<(), BenchError> {
        let mut rng = rand::rngs::StdRng::from_entropy();
        loop {
            let online = Duration::from_secs_f64(rng.gen_range(CHURN_ONLINE));
            tokio::select! {
                _ = tokio::time::sleep(online) => {}
                _ = stopped(&mut stop) => break,
            }
            self.chat.close().await;
            lock(&shared.made)
                .entry(self.name.clone())
                .or_default()
                .push(SystemKind::Left);
            tokio::time::sleep(offline).await;
            self.chat = Self::online(&self.ca, &self.url, &self.name, &room, &shared).await?;
            lock(&shared.made)
                .entry(self.name.clone())
                .or_default()
                .push(SystemKind::Joined);
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), self.chat.close()).await;
        lock(&shared.made)
            .entry(self.name.clone())
            .or_default()
            .push(SystemKind::Left);
        Ok(())
    }
}
