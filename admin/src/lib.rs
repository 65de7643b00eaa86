//! # chat-admin: setting up and checking a chat server
//!
//! The operator's side of the chat, as a library (used by `scripts/up`, the compose
//! file's init step and the test-support crate, so that tests run the exact
//! configuration people run) and as the `chat-admin` binary.
//!
//! - [`secrets`]: the issuer account key and the static users' passwords, generated on
//!   first start into git-ignored files with mode 0600, and read back.
//! - [`config`]: the nats-server configuration rendered from the committed template
//!   `nats/nats-server.conf.template`, for a single server or each node of a cluster.
//! - [`tls`]: a local CA and the servers' certificate, for `--tls`.
//! - [`ready`]: waiting until nats-server and every worker answer.
//! - [`role`]: granting a user a role (`user`, `moderator`, `admin`).
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let run_dir = std::path::Path::new(".run");
//! let secrets = chat_admin::secrets::Secrets::load_or_create(&run_dir.join("secrets"))?;
//! let config = chat_admin::config::ServerConfig::local(run_dir, 4222, 8222, 8080);
//! chat_admin::config::write(&run_dir.join("nats-server.conf"), &config.render(&secrets)?)?;
//! # Ok(()) }
//! ```

pub mod config;
pub mod ready;
pub mod role;
pub mod secrets;
pub mod tls;
