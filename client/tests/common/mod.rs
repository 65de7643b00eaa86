//! The client's test helpers live in `test_support::client`, shared by every test
//! file of this crate without each compiling its own copy.

pub use test_support::client::*;
