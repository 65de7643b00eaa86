//! Moderation from this session's side: its own standing, its moderation requests, and
//! what the rooms' moderation events mean for it.
//!
//! - After every login (the first and each reconnect) the client asks the moderation
//!   worker for its own standing (`chat.standing.<user>`): the allowance the pacing
//!   follows, and whether the user is muted. A mute is said once (`you are muted until
//!   09:10 (spam)`) and a message typed meanwhile is refused locally; when the mute
//!   ends (the server ends the restricted login, the client logs in again, the standing
//!   says so, or its end has passed) the client says sending works again.
//! - A `kicked` or `banned` event naming this user ends the session ([`Ended`]): the
//!   binary says why and exits 77 rather than reconnecting silently.
//! - A refused login asks the standing as a guest, so a ban is told with its end.

use std::sync::Arc;
use std::time::Duration;

use chat_protocol::body::moderation::ban_forever;
use chat_protocol::body::{
    Action, ModerationReply, ModerationRequest, Standing, SystemKind, VERSION,
};
use chat_protocol::display::sanitize;
use chat_protocol::{subjects, RoomName, UserName};
use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, watch};

use crate::call::{self, RequestError};
use crate::command::Moderation;
use crate::event::{Event, State};
use crate::pacing::Pacer;
use crate::render::time_of;

/// The service name in errors.
const SERVICE: &str = "moderation";

/// How long after a mute's end the standing is asked again if no new login came.
const AFTER_END: Duration = Duration::from_secs(1);

/// A mute in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mute {
    /// When it ends.
    pub until: DateTime<Utc>,
    /// Why, as the moderator (or the rate limit) said.
    pub reason: Option<String>,
}

impl std::fmt::Display for Mute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "you are muted until {}", time_of(&self.until))?;
        if let Some(reason) = &self.reason {
            write!(f, " ({})", sanitize(reason))?;
        }
        Ok(())
    }
}

/// Why the session was ended by a moderator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// Kicked (every session of the user disconnected).
    Kicked {
        /// By whom.
        by: Option<UserName>,
        /// Why.
        reason: Option<String>,
    },
    /// Banned: logins are refused until `until` (none: until unbanned).
    Banned {
        /// By whom (none: the server's own rule).
        by: Option<UserName>,
        /// Until when.
        until: Option<DateTime<Utc>>,
        /// Why.
        reason: Option<String>,
    },
}

impl std::fmt::Display for Ended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (what, by, until, reason) = match self {
            Ended::Kicked { by, reason } => ("you were kicked", by, None, reason),
            Ended::Banned { by, until, reason } => {
                let until = match until {
                    Some(until) => format!(" until {}", time_of(until)),
                    None => " until a moderator lifts it".to_string(),
                };
                ("you are banned", by, Some(until), reason)
            }
        };
        f.write_str(what)?;
        if let Some(by) = by {
            write!(f, " by {by}")?;
        }
        f.write_str(until.as_deref().unwrap_or(""))?;
        if let Some(reason) = reason {
            write!(f, " ({})", sanitize(reason))?;
        }
        Ok(())
    }
}

/// The ban a standing tells of, if it is in force at `now`.
pub fn ban_of(standing: &Standing, now: DateTime<Utc>) -> Option<Ended> {
    if !standing.banned_at(now) {
        return None;
    }
    Some(Ended::Banned {
        by: None,
        until: standing.banned_until.filter(|until| *until < ban_forever()),
        reason: standing.reason.clone(),
    })
}

/// This session's standing as the client knows it.
pub(crate) struct Own {
    user: UserName,
    mute: watch::Sender<Option<Mute>>,
    ended: watch::Sender<Option<Ended>>,
    events: mpsc::Sender<Event>,
}

impl Own {
    pub(crate) fn new(user: UserName, events: mpsc::Sender<Event>) -> Arc<Self> {
        Arc::new(Self {
            user,
            mute: watch::channel(None).0,
            ended: watch::channel(None).0,
            events,
        })
    }

    /// The mute in force now, if any.
    pub(crate) fn muted(&self) -> Option<Mute> {
        let mute = self.mute.borrow().clone()?;
        (mute.until > Utc::now()).then_some(mute)
    }

    /// Completes when a moderator ended the session.
    pub(crate) async fn ended(&self) -> Ended {
        let mut ended = self.ended.subscribe();
        let result = ended.wait_for(Option::is_some).await.map(|e| e.clone());
        match result {
            Ok(Some(ended)) => ended,
            _ => std::future::pending().await,
        }
    }

    /// Takes a new mute (or none), saying so when it starts, moves or ends.
    async fn set_mute(&self, mute: Option<Mute>) {
        let before = self.mute.send_replace(mute.clone());
        let message = match (before, mute) {
            (before, Some(mute)) if before.as_ref().map(|b| b.until) != Some(mute.until) => (
                State::Muted,
                format!("{mute}; what you type is not sent until then"),
            ),
            (Some(_), None) => (
                State::Unmuted,
                "your mute has ended: you can send messages again".to_string(),
            ),
            _ => return,
        };
        let _ = self
            .events
            .send(Event::status(message.0, None, message.1))
            .await;
    }

    /// A live room event: one naming this user may mute it, unmute it or end the
    /// session.
    pub(crate) async fn on_event(&self, event: &Event) {
        let Event::System {
            user, kind, detail, ..
        } = event
        else {
            return;
        };
        let (by, until, note) = (&detail.by, &detail.until, &detail.note);
        if user != &self.user {
            return;
        }
        match kind {
            SystemKind::Muted => {
                if let Some(until) = until {
                    let reason = note.clone();
                    self.set_mute(Some(Mute {
                        until: *until,
                        reason,
                    }))
                    .await;
                }
            }
            SystemKind::Unmuted => self.set_mute(None).await,
            SystemKind::Kicked => {
                self.ended.send_replace(Some(Ended::Kicked {
                    by: by.clone(),
                    reason: note.clone(),
                }));
            }
            SystemKind::Banned => {
                self.ended.send_replace(Some(Ended::Banned {
                    by: by.clone(),
                    until: *until,
                    reason: note.clone(),
                }));
            }
            _ => {}
        }
    }

    /// Takes on a standing: the allowance for the pacing, and the mute.
    async fn apply(&self, standing: &Standing, pacer: &Pacer) {
        pacer.set_allowance(standing.rate);
        let now = Utc::now();
        let mute = standing
            .muted_until
            .filter(|until| *until > now)
            .map(|until| Mute {
                until,
                reason: standing.reason.clone(),
            });
        self.set_mute(mute).await;
    }
}

/// Asks `user`'s standing as a guest (after a refused login: a ban says until when);
/// none if it cannot be known.
pub(crate) async fn guest_standing(
    url: &str,
    tls_ca: Option<&std::path::Path>,
    user: &UserName,
    timeout: Duration,
) -> Option<Standing> {
    let guest = chat_runtime::servers::trust(async_nats::ConnectOptions::new(), tls_ca)
        .name(format!("chat-client standing {user}"))
        .connection_timeout(Duration::from_secs(5))
        .max_reconnects(Some(1))
        .connect(chat_runtime::servers::list(url))
        .await
        .ok()?;
    match standing(&guest, user, timeout).await {
        Ok(standing) => Some(standing),
        Err(err) => {
            tracing::info!("standing of {user} not known after a refused login: {err}");
            None
        }
    }
}

impl Own {
    /// After a login refused while reconnecting: a ban (the server kicked this user and
    /// refuses the login) ends the session, with its end and reason.
    pub(crate) async fn check_ban(
        &self,
        url: &str,
        tls_ca: Option<&std::path::Path>,
        timeout: Duration,
    ) {
        let Some(standing) = guest_standing(url, tls_ca, &self.user, timeout).await else {
            return;
        };
        if let Some(ban) = ban_of(&standing, Utc::now()) {
            self.ended.send_replace(Some(ban));
        }
    }
}

/// Asks `user`'s standing.
pub async fn standing(
    client: &async_nats::Client,
    user: &UserName,
    timeout: Duration,
) -> Result<Standing, RequestError> {
    let subject = subjects::standing(user);
    call::request(client, SERVICE, subject, bytes::Bytes::new(), timeout).await
}

/// Keeps the standing known: after the first login and every reconnect, and once a
/// mute's end has passed. A stack without a moderation worker leaves the default
/// allowance and no mute (logged, not shown).
pub(crate) async fn keep_standing(
    client: async_nats::Client,
    own: Arc<Own>,
    pacer: Pacer,
    mut reconnects: watch::Receiver<u64>,
    timeout: Duration,
) {
    loop {
        match standing(&client, &own.user, timeout).await {
            Ok(standing) => own.apply(&standing, &pacer).await,
            Err(err) => {
                pacer.standing_unknown();
                tracing::info!("own standing not known: {err}");
            }
        }
        let recheck = own.muted().map(|mute| {
            let left = (mute.until - Utc::now()).to_std().unwrap_or_default();
            tokio::time::Instant::now() + left + AFTER_END
        });
        tokio::select! {
            changed = reconnects.changed() => if changed.is_err() { return },
            _ = sleep_until(recheck) => {}
        }
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The request body for `moderation`.
pub fn request(moderation: &Moderation) -> ModerationRequest {
    let (action, target, seconds, reason) = match moderation.clone() {
        Moderation::Mute {
            user,
            seconds,
            reason,
        } => (Action::Mute, user, seconds, reason),
        Moderation::Ban {
            user,
            seconds,
            reason,
        } => (Action::Ban, user, seconds, reason),
        Moderation::Kick { user, reason } => (Action::Kick, user, None, reason),
        Moderation::Unmute { user } => (Action::Unmute, user, None, None),
        Moderation::Unban { user } => (Action::Unban, user, None, None),
        Moderation::Delete { seq } => return ModerationRequest::delete(seq),
    };
    ModerationRequest {
        v: VERSION,
        seconds,
        reason,
        ..ModerationRequest::about(action, target)
    }
}

/// Sends `moderation` for `room` as `user`; the reply or the worker's refusal.
pub(crate) async fn moderate(
    client: &async_nats::Client,
    room: &RoomName,
    user: &UserName,
    moderation: &Moderation,
    timeout: Duration,
) -> Result<ModerationReply, RequestError> {
    let subject = subjects::moderate(room, user);
    let body = call::body(&request(moderation));
    call::request(client, SERVICE, subject, body, timeout).await
}

/// What a moderation reply says was done, for the user who asked.
pub fn done(moderation: &Moderation, reply: &ModerationReply) -> String {
    let until = reply
        .until
        .map(|until| format!(" until {}", time_of(&until)))
        .unwrap_or_default();
    match moderation {
        Moderation::Mute { user, .. } => format!("{user} is muted{until}"),
        Moderation::Unmute { user } => format!("{user} is no longer muted"),
        Moderation::Kick { user, .. } => format!("{user} was kicked"),
        Moderation::Ban { user, .. } if until.is_empty() => {
            format!("{user} is banned until unbanned")
        }
        Moderation::Ban { user, .. } => format!("{user} is banned{until}"),
        Moderation::Unban { user } => format!("{user} is no longer banned"),
        Moderation::Delete { seq } => format!("message #{seq} deleted"),
    }
}
