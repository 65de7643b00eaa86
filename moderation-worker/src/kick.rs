//! Disconnecting every connection of a user, through the server's system account:
//! `$SYS.REQ.SERVER.PING.CONNZ` (every server answers with its connections of that
//! user in `CHAT`), then `$SYS.REQ.SERVER.<id>.KICK` with `{"cid": N}` for each.
//!
//! This is the only use of the worker's second connection, as `@moderation_sys` in
//! `SYS`, which may publish those two subjects and nothing else. A kicked client
//! reconnects at once and logs in again, so a kick sticks only together with a mute or
//! a ban recorded before it (the login then gets no right to speak, or is refused).

use std::time::Duration;

use bytes::Bytes;
use chat_protocol::auth::CHAT_ACCOUNT;
use chat_protocol::UserName;
use futures::StreamExt;
use serde::Deserialize;

/// Most connections of one user listed per server (the server's own page size).
const CONNZ_LIMIT: usize = 1024;
/// How long to wait for the first server's answer.
const FIRST_ANSWER: Duration = Duration::from_secs(1);
/// After an answer, how long to wait for another server's (a cluster answers once per
/// server; a single server once).
const NEXT_ANSWER: Duration = Duration::from_millis(150);

/// Why a kick failed (the caller retries or reports 503).
#[derive(Debug, thiserror::Error)]
pub enum KickError {
    /// The request could not be sent.
    #[error("cannot ask the servers for connections: {0}")]
    Send(#[source] async_nats::Error),
    /// No server answered.
    #[error("no server answered the connection listing within {FIRST_ANSWER:?}")]
    NoAnswer,
}

/// What one server answers to CONNZ (only the fields used).
#[derive(Debug, Deserialize)]
struct ConnzAnswer {
    server: ServerId,
    #[serde(default)]
    data: Option<ConnzData>,
}

#[derive(Debug, Deserialize)]
struct ServerId {
    id: String,
}

#[derive(Debug, Deserialize)]
struct ConnzData {
    #[serde(default)]
    connections: Vec<Connection>,
}

#[derive(Debug, Deserialize)]
struct Connection {
    cid: u64,
}

/// Kicks users through the system account.
#[derive(Clone)]
pub struct Kicker {
    sys: async_nats::Client,
}

impl Kicker {
    /// Kicks through `sys`, a connection as `@moderation_sys`.
    pub fn new(sys: async_nats::Client) -> Self {
        Self { sys }
    }

    /// Disconnects every connection of `user` on every server; how many were kicked.
    /// Each server's connections are kicked as soon as it answers.
    pub async fn kick(&self, user: &UserName) -> Result<usize, KickError> {
        let inbox = self.sys.new_inbox();
        let mut answers = self
            .sys
            .subscribe(inbox.clone())
            .await
            .map_err(|e| KickError::Send(e.into()))?;
        let filter =
            serde_json::json!({ "acc": CHAT_ACCOUNT, "user": user.as_str(), "limit": CONNZ_LIMIT });
        self.sys
            .publish_with_reply(
                "$SYS.REQ.SERVER.PING.CONNZ",
                inbox,
                Bytes::from(filter.to_string()),
            )
            .await
            .map_err(|e| KickError::Send(e.into()))?;
        let mut kicked = 0;
        let mut servers = 0;
        let mut patience = FIRST_ANSWER;
        while let Ok(Some(message)) = tokio::time::timeout(patience, answers.next()).await {
            patience = NEXT_ANSWER;
            servers += 1;
            let answer: ConnzAnswer = match serde_json::from_slice(&message.payload) {
                Ok(answer) => answer,
                Err(error) => {
                    tracing::warn!(%error, "unexpected CONNZ answer");
                    continue;
                }
            };
            let cids = answer
                .data
                .map(|d| d.connections)
                .unwrap_or_default()
                .into_iter()
                .map(|c| c.cid);
            let subject = format!("$SYS.REQ.SERVER.{}.KICK", answer.server.id);
            for cid in cids {
                let body = Bytes::from(serde_json::json!({ "cid": cid }).to_string());
                match self.sys.request(subject.clone(), body).await {
                    Ok(reply) if !has_error(&reply.payload) => kicked += 1,
                    Ok(reply) => tracing::debug!(
                        %user, cid, answer = %String::from_utf8_lossy(&reply.payload),
                        "kick refused (the connection may be gone already)"
                    ),
                    Err(error) => tracing::warn!(%user, cid, %error, "cannot kick"),
                }
            }
        }
        let _ = answers.unsubscribe().await;
        if servers == 0 {
            return Err(KickError::NoAnswer);
        }
        tracing::debug!(%user, kicked, servers, "kicked");
        Ok(kicked)
    }
}

/// Whether a system API answer reports an error.
fn has_error(payload: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct Answer {
        #[serde(default)]
        error: Option<serde_json::Value>,
    }
    serde_json::from_slice::<Answer>(payload).map_or(true, |a| a.error.is_some())
}
