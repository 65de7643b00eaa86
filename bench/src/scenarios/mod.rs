//! The measured scenarios, one file each; every one measures the chat through its
//! real client and workers and, in the same run, raw NATS of the same shape. They run
//! in the order of [`crate::Scenario`]. [`chaos`] runs only when named: it counts what
//! faults cost (nothing, is the target) rather than timing anything; [`rooms`] runs
//! only when named too (it makes thousands of streams).

pub mod chaos;
pub mod fanout;
pub mod flood;
pub mod footprint;
pub mod history;
pub mod login;
pub mod overload;
pub mod presence;
pub mod publish;
pub mod rooms;
