//! # chat-protocol: the wire contract, in one crate
//!
//! A chat over NATS JetStream with no central server: clients publish straight into a
//! room's stream, and stateless workers keep presence and serve history. Everything
//! those parts agree on lives here, so that no subject string, KV key or JSON field
//! name is written anywhere else in the workspace. `docs/protocol.md` describes the same
//! contract for people and for other languages. How the binaries run and do their
//! NATS chores (connecting, hosting services, reading streams) is `chat-runtime`.
//!
//! ## A tour
//!
//! - [`auth`]: accounts, static users, the `chat.auth.*` subjects and bodies, password
//!   rules.
//! - [`names`]: room, user and session names, validated before anything is sent.
//! - [`subjects`]: every subject, built and parsed.
//! - [`body`]: the JSON bodies, one file per thing they describe: [`body::room`] (chat
//!   messages, joined/left events, [`body::decode_room_payload`], the single decoder
//!   for what a room stream holds), [`body::presence`] (presence requests, `/users`,
//!   `/rooms`, session records), [`body::history`] (pages), [`body::moderation`]
//!   (moderation commands, standing, roles, the rate allowance), [`body::reply`] (the error
//!   reply, [`body::decode_reply`]), [`body::rfc3339`] (time stamps).
//! - [`streams`]: the names of the room streams, the presence and moderation buckets,
//!   and their keys.
//! - [`display`]: making text from the wire safe to print on a terminal.

pub mod auth;
pub mod body;
pub mod display;
pub mod names;
pub mod streams;
pub mod subjects;

pub use names::{NameError, RoomName, SessionId, UserName};
