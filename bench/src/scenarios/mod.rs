//! The scenarios, one file each; every one measures the chat through its real
//! client and workers and, in the same run, raw NATS of the same shape. They run in
//! the order of [`crate::Scenario`].

pub mod fanout;
pub mod footprint;
pub mod history;
pub mod login;
pub mod presence;
pub mod publish;
pub mod rooms;
