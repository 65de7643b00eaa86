//! # chat-runtime: what the binaries share beyond the wire contract
//!
//! `chat-protocol` says what goes over the wire; this crate is how the workspace's
//! binaries run and do their NATS chores, each written once.
//!
//! ## A tour
//!
//! - [`logging`]: [`init_logging`], `LOG_LEVEL`/`RUST_LOG`, `--log-format json`.
//! - [`exit`]: the exit codes every binary uses.
//! - [`process`]: a worker's life as a process (logging, connecting at start, serving
//!   until SIGTERM or Ctrl-C, stopping gracefully), shared by the four workers' `main`.
//! - [`connect`]: [`NatsArgs`] (the flags of the workers and tools), [`Credentials`],
//!   and [`connect`](connect()), which retries briefly at start and never past a refusal.
//! - [`hosting`]: [`Hosted`], a NATS service hosted and stopped gracefully, and
//!   [`error_reply`], a failed request's reply.
//! - [`backoff`]: [`Backoff`], the one retry delay (doubling up to a ceiling).
//! - [`publish`]: publishing to JetStream with the same `Nats-Msg-Id` on every retry,
//!   refusals surfaced, never retried forever (the client's messages, the presence
//!   worker's events).
//! - [`shutdown`]: [`shutdown_signal`] (SIGTERM or Ctrl-C), and [`Shutdown`], how a
//!   background task is asked to stop gracefully.
//! - [`scan`]: the short-lived consumer (create, read until nothing is pending,
//!   delete), under every one-off read of a stream.
//! - [`reading`]: bounded forward and backward reads of a stream, shared by the
//!   client's replay on join and the history worker's pages.
//! - [`storage`]: how the room streams and the presence bucket are configured.
//! - [`servers`]: the server list of `NATS_URL` and the TLS trust (`NATS_CA`).
//! - [`replicas`]: how many replicas the workers create with, and creating what
//!   another instance may be creating at the same moment.
//! - [`cas`]: [`cas::lost_race`], telling a compare-and-set that lost its race (a
//!   KV update or create, a publish expecting a last sequence) from a failure, on one
//!   server and on a cluster.

pub mod backoff;
pub mod cas;
pub mod connect;
pub mod exit;
pub mod hosting;
pub mod logging;
pub mod process;
pub mod publish;
pub mod reading;
pub mod replicas;
pub mod scan;
pub mod servers;
pub mod shutdown;
pub mod storage;

pub use backoff::Backoff;
pub use connect::{connect, connect_trusting, connect_with, Credentials, NatsArgs};
pub use hosting::{error_reply, Hosted};
pub use logging::{init_logging, init_logging_to, log_file, LogFormat};
pub use shutdown::{shutdown_signal, Shutdown, Stopper};
