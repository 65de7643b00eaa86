//! The full-screen UI's test helpers live in `test_support::tui`, shared by the
//! snapshot and key tests without each compiling its own copy.

pub use test_support::tui::*;
