//! # chat-web: serves the browser client's files, nothing else
//!
//! The browser client (`web/` at the top of the repository) talks straight to NATS over
//! nats-server's WebSocket listener; all this crate does is hand the browser the page,
//! because ES modules do not load from `file://`. It is a deliberately small HTTP/1.0
//! style file server on tokio:
//!
//! - [`files`] maps a request path to a file under the served folder (no `..`, no
//!   hidden files, no symlink leading out) and names its MIME type;
//! - [`http`] reads one request (bounded in size and time), answers `GET`/`HEAD`, and
//!   closes the connection;
//! - [`Site`] holds what every answer carries: the Content-Security-Policy (only the
//!   page's own scripts and styles, connections only to itself and the NATS WebSocket)
//!   and `/config.json`, which tells the page where that WebSocket is;
//! - [`serve`] accepts connections until told to stop, then lets the ones in flight
//!   finish (bounded).
//!
//! The binary (`src/main.rs`) adds flags, logging and the shutdown signal.

pub mod files;
pub mod http;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// Connections served at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 256;
/// How long shutdown waits for answers in flight.
const DRAIN: Duration = Duration::from_secs(5);

/// What is served and the headers that go with it.
#[derive(Debug, Clone)]
pub struct Site {
    root: PathBuf,
    nats_ws_url: String,
    csp: String,
    config_json: String,
}

/// Why a [`Site`] cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    /// The folder to serve is missing or unreadable.
    #[error("cannot serve {path}: {source}")]
    Root {
        /// The folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The NATS WebSocket URL is not `ws://host[:port]` or `wss://host[:port]`.
    #[error(
        "NATS WebSocket URL {0:?} is not allowed: give ws://HOST[:PORT] or wss://HOST[:PORT] \
         (letters, digits, '.', '-', ':', '[' and ']' only)"
    )]
    NatsUrl(String),
}

impl Site {
    /// Serves `root`, telling the page to connect to `nats_ws_url`.
    pub fn new(root: &Path, nats_ws_url: &str) -> Result<Self, SiteError> {
        let root = root.canonicalize().map_err(|source| SiteError::Root {
            path: root.to_path_buf(),
            source,
        })?;
        if !root.is_dir() {
            return Err(SiteError::Root {
                path: root,
                source: std::io::Error::other("not a folder"),
            });
        }
        let nats_ws_url = nats_ws_url.trim_end_matches('/').to_string();
        let host = nats_ws_url
            .strip_prefix("ws://")
            .or_else(|| nats_ws_url.strip_prefix("wss://"))
            .filter(|host| {
                !host.is_empty()
                    && host
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
            });
        if host.is_none() {
            return Err(SiteError::NatsUrl(nats_ws_url));
        }
        // The URL goes into a header and a JSON body: it was checked to hold nothing
        // that could break either.
        let csp = format!(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
             connect-src 'self' {nats_ws_url}; base-uri 'none'; form-action 'none'; \
             frame-ancestors 'none'"
        );
        let config_json = serde_json::json!({ "nats": nats_ws_url }).to_string();
        Ok(Self {
            root,
            nats_ws_url,
            csp,
            config_json,
        })
    }

    /// The folder served.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the page connects to NATS.
    pub fn nats_ws_url(&self) -> &str {
        &self.nats_ws_url
    }

    /// The Content-Security-Policy header every answer carries.
    pub fn csp(&self) -> &str {
        &self.csp
    }
}

/// Serves `site` on `listener` until `shutdown` completes, then waits (at most a few
/// seconds) for the answers in flight.
pub async fn serve(listener: TcpListener, site: Site, shutdown: impl Future<Output = ()>) {
    let site = Arc::new(site);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            permit = slots.clone().acquire_owned() => permit.expect("never closed"),
        };
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: wait a little, go on.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let site = site.clone();
        connections.spawn(async move {
            http::answer(stream, peer, &site).await;
            drop(permit);
        });
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    tracing::info!(in_flight = connections.len(), "stopping");
    if tokio::time::timeout(DRAIN, async {
        while connections.join_next().await.is_some() {}
    })
    .await
    .is_err()
    {
        tracing::warn!("answers still in flight after {DRAIN:?}; dropping them");
    }
}
