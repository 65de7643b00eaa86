//! The moderation worker's test helpers live in `test_support::moderation`, shared by
//! every test file of this crate without each compiling its own copy.

pub use test_support::moderation::*;
