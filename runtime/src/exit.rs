//! Exit codes shared by the binaries (from `sysexits.h` where one fits).

/// Ran and stopped normally.
pub const OK: i32 = 0;
/// Failed while running.
pub const FAILURE: i32 = 1;
/// Bad command-line arguments (clap's own code).
pub const USAGE: i32 = 2;
/// NATS could not be reached, or a needed service did not answer.
pub const UNAVAILABLE: i32 = 69;
/// The server refused the login (wrong name or password).
pub const NOPERM: i32 = 77;
/// The server could not be trusted: its TLS certificate does not verify against
/// the CA given (or the system's roots), or TLS is wanted on one side only.
pub const CONFIG: i32 = 78;
