//! Waiting until a stack answers: nats-server accepts the operator's login, every named
//! worker service answers `$SRV.PING.<name>`, and a guest login goes through (which
//! only happens once an auth worker answers the callout).

use std::path::Path;
use std::time::Duration;

use chat_protocol::auth::static_users;
use chat_runtime::servers;

use crate::secrets::Secrets;

/// What was still missing when time ran out.
#[derive(Debug, thiserror::Error)]
#[error("not ready after {waited:?}: {missing}")]
pub struct NotReady {
    /// How long it waited.
    pub waited: Duration,
    /// The last thing missing.
    pub missing: String,
}

/// Waits up to `timeout` for the stack at `url` to answer, with every service of
/// `services` (e.g. `chat-presence`) answering `$SRV.PING`.
pub async fn wait(
    url: &str,
    ca: Option<&Path>,
    secrets: &Secrets,
    services: &[&str],
    timeout: Duration,
) -> Result<(), NotReady> {
    let started = tokio::time::Instant::now();
    let mut missing;
    loop {
        missing = match check(url, ca, secrets, services).await {
            Ok(()) => return Ok(()),
            Err(why) => why,
        };
        if started.elapsed() >= timeout {
            return Err(NotReady {
                waited: started.elapsed(),
                missing,
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn check(
    url: &str,
    ca: Option<&Path>,
    secrets: &Secrets,
    services: &[&str],
) -> Result<(), String> {
    let admin = async_nats::ConnectOptions::with_user_and_password(
        static_users::ADMIN.into(),
        secrets.password(static_users::ADMIN).into(),
    );
    let admin = servers::trust(admin, ca)
        .connection_timeout(Duration::from_secs(1))
        .max_reconnects(Some(1))
        .connect(url)
        .await
        .map_err(|e| servers::explain(&e, url, ca))?;
    for service in services {
        let ping = admin.request(format!("$SRV.PING.{service}"), "".into());
        match tokio::time::timeout(Duration::from_secs(1), ping).await {
            Ok(Ok(_)) => {}
            _ => return Err(format!("service {service} does not answer $SRV.PING yet")),
        }
    }
    servers::trust(async_nats::ConnectOptions::new(), ca)
        .connection_timeout(Duration::from_secs(5))
        .max_reconnects(Some(1))
        .connect(url)
        .await
        .map_err(|e| format!("the auth worker does not answer logins yet ({e})"))?;
    Ok(())
}
