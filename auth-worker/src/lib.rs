//! # auth-worker: who may connect, and as whom
//!
//! The third worker of the chat, beside presence and history. nats-server is set up
//! with an **auth callout** (config mode): every connection that is not one of the
//! static worker users is sent to this worker as a signed request on
//! `$SYS.REQ.USER.AUTH`, and the answer, signed with the issuer account key, is a user
//! JWT that places the connection in an account with exact permissions. Identity is
//! thus enforced by nats-server: a chat user can publish only on subjects that end in
//! its own name, so a forged sender is impossible, not merely detected.
//!
//! The worker is stateless (the user table is a KV bucket in the `AUTH` account), so any
//! number of instances share the requests, and any may be killed: connections already
//! made are unaffected; new logins wait for another instance or, with none, are refused
//! after the server's `authorization.timeout`.
//!
//! ## A tour
//!
//! - [`service`]: the NATS service `chat-auth` ([`AuthWorker`]) and its endpoints.
//! - [`callout`]: one callout request → a verdict → the signed answer; a chat login
//!   first asks the moderation worker for the user's standing (`chat.standing.<user>`,
//!   imported from `CHAT`): muted, banned, or unknown (full rights for 60 s).
//! - [`permissions`]: what a chat user (muted or not) and a guest may publish and
//!   subscribe to.
//! - [`users`]: the user table (register, find, login, change password).
//! - [`password`]: argon2id hashing off the async runtime, with bounded concurrency.
//! - [`resume`]: signed resume tokens, so reconnect storms cost no hashing.
//! - [`claims`], [`jwt`]: the callout's JWTs, written and checked.
//! - [`config`]: lifetimes and bounds ([`Config`]).
//!
//! The binary (`src/main.rs`) parses flags, reads the issuer seed and its password from
//! files made by `chat-admin init`, connects as `@auth` and serves until SIGTERM.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
//! let client = async_nats::ConnectOptions::with_user_and_password("@auth".into(), "…".into())
//!     .connect(url)
//!     .await?;
//! let issuer = nkeys::KeyPair::from_seed(&std::fs::read_to_string(".run/secrets/issuer.seed")?)?;
//! let worker = auth_worker::AuthWorker::start(client, issuer, auth_worker::Config::default()).await?;
//! // ... until asked to stop:
//! worker.stop().await;
//! # Ok(()) }
//! ```

pub mod callout;
pub mod claims;
pub mod config;
pub mod jwt;
pub mod password;
pub mod permissions;
pub mod resume;
pub mod service;
pub mod users;

pub use config::Config;
pub use service::{AuthWorker, StartError, SERVICE_NAME};
