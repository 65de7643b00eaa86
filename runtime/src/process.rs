//! A worker's life as a process, written once for the four workers' `main.rs`:
//! logging and the default NATS user ([`begin`]), connecting with a short patience at
//! start ([`connect`]), and serving until SIGTERM or Ctrl-C, then stopping gracefully
//! ([`serve`]). Each step returns the exit code to leave with (see [`exit`]).

use std::future::Future;
use std::time::Duration;

use crate::{exit, LogFormat, NatsArgs};

/// How long a worker keeps trying to reach NATS at start before exiting with
/// [`exit::UNAVAILABLE`]: long enough for a server started beside it, short enough
/// that a supervisor sees a wrong address at once.
pub const CONNECT_PATIENCE: Duration = Duration::from_secs(5);

/// Sets up logging, and makes `user` (the worker's static user) the NATS user unless
/// the flags name another.
pub fn begin(log_format: LogFormat, nats: &mut NatsArgs, user: &str) {
    crate::init_logging(log_format);
    nats.nats_user.get_or_insert_with(|| user.to_string());
}

/// Connects as `nats` says, named `name`, trying for [`CONNECT_PATIENCE`]; the exit
/// code to leave with if not (logged: see [`connect_with`](crate::connect_with)).
pub async fn connect(nats: &NatsArgs, name: &str) -> Result<async_nats::Client, i32> {
    crate::connect_with(nats, name, CONNECT_PATIENCE).await
}

/// Serves a worker once `started` gave it, until SIGTERM or Ctrl-C, then `stop`s it
/// (which finishes the requests in flight) and returns [`exit::OK`]. If it could not
/// start, logs why and returns `code_of` the error.
///
/// ```no_run
/// use chat_runtime::{exit, process, NatsArgs};
/// # struct Worker;
/// # impl Worker {
/// #     async fn start(_: async_nats::Client) -> Result<Worker, std::io::Error> { Ok(Worker) }
/// #     async fn stop(self) {}
/// # }
///
/// async fn run(nats: NatsArgs) -> i32 {
///     let client = match process::connect(&nats, "my-worker").await {
///         Ok(client) => client,
///         Err(code) => return code,
///     };
///     process::serve(Worker::start(client).await, |_| exit::UNAVAILABLE, Worker::stop).await
/// }
/// ```
pub async fn serve<W, E, S>(
    started: Result<W, E>,
    code_of: impl FnOnce(&E) -> i32,
    stop: impl FnOnce(W) -> S,
) -> i32
where
    E: std::fmt::Display,
    S: Future<Output = ()>,
{
    let worker = match started {
        Ok(worker) => worker,
        Err(error) => {
            tracing::error!(%error, "cannot start");
            return code_of(&error);
        }
    };
    crate::shutdown_signal().await;
    tracing::info!("stopping: finishing the requests in flight");
    stop(worker).await;
    exit::OK
}
