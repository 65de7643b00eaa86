//! # chat-protocol: the wire contract, in one crate
//!
//! A chat over NATS JetStream with no central server: clients publish straight into a
//! room's stream, and stateless workers keep presence and serve history. Everything
//! those parts agree on lives here, so that no subject string, KV key or JSON field
//! name is written anywhere else in the workspace. `PROTOCOL.md` at the top of the
//! repository describes the same contract for people and for other languages.
//!
//! ## A tour
//!
//! - [`auth`]: accounts, static users, the `chat.auth.*` subjects and bodies, password
//!   rules.
//! - [`names`]: room, user and session names, validated before anything is sent.
//! - [`subjects`]: every subject, built and parsed.
//! - [`body`]: the JSON bodies (chat messages, system events, presence, users, rooms,
//!   history), and [`body::decode_room_payload`], the single decoder for what a room
//!   stream holds.
//! - [`streams`]: the room streams and the presence bucket, and how they are configured
//!   (plus the presence worker's internal announced-state bucket, not part of the contract).
//! - [`reading`]: bounded forward and backward reads of a stream, shared by the
//!   client's replay on join and the history worker's pages.
//! - [`display`]: making text from the wire safe to print on a terminal.
//! - [`runtime`]: logging, shutdown signals and exit codes shared by the binaries.
//! - [`servers`]: the server list of `NATS_URL` and the TLS trust (`NATS_CA`).
//! - [`replicas`]: how many replicas the workers create with, and creating what
//!   another instance may be creating at the same moment.

pub mod auth;
pub mod body;
pub mod display;
pub mod names;
pub mod reading;
pub mod replicas;
pub mod runtime;
pub mod servers;
pub mod streams;
pub mod subjects;

pub use names::{NameError, RoomName, SessionId, UserName};
