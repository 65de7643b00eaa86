//! Stopping gracefully, one scheme for the workspace: the process waits for
//! [`shutdown_signal`], then stops its parts; a part's background task learns through a
//! [`Shutdown`] that it is asked to stop, finishes what it holds, and returns (a
//! hosted service stops through `hosting::Hosted::stop`, which does the same for
//! requests).

use tokio::sync::watch;

/// Asks every [`Shutdown`] made from it to stop; dropping it asks too.
#[derive(Debug)]
pub struct Stopper(watch::Sender<bool>);

/// A task's side of a graceful stop: [`Shutdown::requested`] completes once the
/// [`Stopper`] asked (or is gone). Cheap to clone, one per task.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

/// A new stop request, not yet made: the stopper and the tasks' side.
pub fn stopper() -> (Stopper, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (Stopper(tx), Shutdown(rx))
}

impl Stopper {
    /// Asks the tasks to stop (they finish what they hold first).
    pub fn stop(&self) {
        self.0.send_replace(true);
    }
}

impl Shutdown {
    /// Completes once a stop is asked for; at once if it already was.
    pub async fn requested(&mut self) {
        // An error means the stopper is gone: that asks to stop too.
        let _ = self.0.wait_for(|&stop| stop).await;
    }
}

/// Completes when the process is asked to stop: SIGTERM, or Ctrl-C (SIGINT).
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
