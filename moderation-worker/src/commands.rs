//! What the three endpoints do: a moderation command (`chat.moderate.<room>.<user>`),
//! a standing (`chat.standing.<user>`) and a role grant (`chat.admin.role`), each from
//! subject and body to the contract's reply or a [`CommandError`] with its code.

use std::time::Duration;

use async_nats::jetstream;
use chat_protocol::body::moderation::{ban_forever, DEFAULT_MUTE_SECONDS};
use chat_protocol::body::{
    Action, EventDetail, ModerationReply, ModerationRequest, Rate, Reason, Role, RoleRequest,
    Standing, SystemKind, VERSION,
};
use chat_protocol::subjects::{self, RoomSubject};
use chat_protocol::{streams, RoomName, UserName};
use chat_runtime::hosting::code;
use chrono::Utc;

use crate::event;
use crate::outbox::{Outbox, OutboxError, Step};
use crate::record::{Pending, StandingRecord, StoreError};

/// Why a request was refused; [`CommandError::code`] is its service error code.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The subject or body breaks the contract.
    #[error("{0}")]
    BadRequest(String),
    /// The requester lacks the role.
    #[error("{0}")]
    Forbidden(String),
    /// The message or room does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The bucket, a stream or the kick failed.
    #[error("moderation unavailable: {0}")]
    Unavailable(String),
}

impl CommandError {
    /// The service error code (`Nats-Service-Error-Code`).
    pub fn code(&self) -> u16 {
        match self {
            CommandError::BadRequest(_) => code::BAD_REQUEST,
            CommandError::Forbidden(_) => code::FORBIDDEN,
            CommandError::NotFound(_) => code::NOT_FOUND,
            CommandError::Unavailable(_) => code::UNAVAILABLE,
        }
    }
}

impl From<OutboxError> for CommandError {
    fn from(error: OutboxError) -> Self {
        CommandError::Unavailable(error.to_string())
    }
}

impl From<StoreError> for CommandError {
    fn from(error: StoreError) -> Self {
        CommandError::Unavailable(error.to_string())
    }
}

fn bad(why: impl std::fmt::Display) -> CommandError {
    CommandError::BadRequest(why.to_string())
}

/// `chat.standing.<user>`: role, mute, ban and the allowance. An unknown user is a
/// plain user with nothing against them.
pub async fn standing(
    outbox: &Outbox,
    rate: &Rate,
    subject: &str,
) -> Result<Standing, CommandError> {
    let user = subjects::parse_standing(subject).map_err(bad)?;
    let store = outbox.store();
    let (role, (record, _)) = tokio::try_join!(store.role(&user), store.standing(&user))?;
    let now = Utc::now();
    let muted = record.muted_at(now);
    let banned = record.banned_at(now);
    Ok(Standing {
        v: VERSION,
        user,
        role,
        muted_until: record.muted_until.filter(|_| muted),
        banned_until: record.banned_until.filter(|_| banned),
        reason: record.reason.filter(|_| muted || banned),
        rate: *rate,
    })
}

/// `chat.admin.role` (only `@admin` may publish it): grants a role.
pub async fn grant(outbox: &Outbox, body: &[u8]) -> Result<ModerationReply, CommandError> {
    let request: RoleRequest = serde_json::from_slice(body).map_err(|e| {
        bad(format!(
            "malformed role request ({e}); send {{\"user\": \"<name>\", \"role\": \"user|moderator|admin\"}}"
        ))
    })?;
    outbox.store().set_role(&request.user, request.role).await?;
    tracing::info!(user = %request.user, role = %request.role, "role granted");
    Ok(ModerationReply {
        ok: true,
        action: None,
        target: Some(request.user),
        until: None,
        role: Some(request.role),
    })
}

/// `chat.moderate.<room>.<user>`: checks the request and the requester's role, does it
/// (taking effect at once: kicks are part of it) and writes the room event.
pub async fn moderate(
    outbox: &Outbox,
    js: &jetstream::Context,
    subject: &str,
    body: &[u8],
) -> Result<ModerationReply, CommandError> {
    let (room, actor) = subjects::parse_moderate(subject).map_err(bad)?;
    let request: ModerationRequest = serde_json::from_slice(body).map_err(|e| {
        bad(format!(
            "malformed moderation request ({e}); send {{\"action\": \"mute|unmute|kick|ban|unban|delete\", \"target\": \"<user>\", ...}}"
        ))
    })?;
    request.validate().map_err(bad)?;
    let note = request.reason.clone().filter(|r| !r.trim().is_empty());
    let role = outbox.store().role(&actor).await?;
    let stream = js
        .get_stream(streams::stream_name(&room))
        .await
        .map_err(|e| match e.kind() {
            jetstream::context::GetStreamErrorKind::JetStream(j)
                if j.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND =>
            {
                CommandError::NotFound(format!("there is no room {room} (nobody has joined it)"))
            }
            _ => CommandError::Unavailable(e.to_string()),
        })?;
    if request.action == Action::Delete {
        let seq = request.seq.expect("validated: delete has a seq");
        return delete(outbox, &stream, &room, &actor, role, seq, note).await;
    }
    let target = request.target.clone().expect("validated: a target");
    let action = request.action;
    check_role(outbox, action, &actor, role, &target).await?;
    let now = Utc::now();
    let id = uuid::Uuid::new_v4().simple().to_string();
    let make = |kind, until| {
        event::by_moderator(
            format!("{id}.{kind:?}"),
            kind,
            &room,
            &target,
            &actor,
            until,
            note.clone(),
        )
    };
    let pending = |kick, events| Pending {
        id: id.clone(),
        kick,
        purge: None,
        events,
        since: now,
    };
    let until = outbox
        .change(&target, |record: &StandingRecord| {
            let mut new = record.clone();
            let (kick, kind, until) = match action {
                Action::Mute => {
                    let secs = request.seconds.unwrap_or(DEFAULT_MUTE_SECONDS);
                    let until = now + Duration::from_secs(secs);
                    new.muted_until = Some(until);
                    (true, SystemKind::Muted, Some(until))
                }
                Action::Unmute if !record.muted_at(now) => {
                    return Err(bad(format!("{target} is not muted")))
                }
                Action::Unmute => {
                    new.muted_until = None;
                    (true, SystemKind::Unmuted, None)
                }
                Action::Kick => (true, SystemKind::Kicked, None),
                Action::Ban => {
                    let until = request.seconds.map(|s| now + Duration::from_secs(s));
                    new.banned_until = Some(until.unwrap_or_else(ban_forever));
                    (true, SystemKind::Banned, until)
                }
                Action::Unban if !record.banned_at(now) => {
                    return Err(bad(format!("{target} is not banned")))
                }
                Action::Unban => {
                    new.banned_until = None;
                    (false, SystemKind::Unbanned, None)
                }
                Action::Delete => unreachable!("handled above"),
            };
            if matches!(action, Action::Mute | Action::Ban) {
                new.reason = note.clone();
                new.by = Some(actor.clone());
            }
            new.pending = Some(pending(kick, vec![make(kind, until)]));
            Ok(Step::Write(new, until))
        })
        .await?;
    tracing::info!(%room, %actor, %target, %action, "moderation applied");
    Ok(ModerationReply {
        ok: true,
        action: Some(action),
        target: Some(target),
        until,
        role: None,
    })
}

/// Whether `actor` (of `role`) may do `action` to `target`: moderators act on users,
/// admins on users and moderators, nobody on an admin or on themselves.
async fn check_role(
    outbox: &Outbox,
    action: Action,
    actor: &UserName,
    role: Role,
    target: &UserName,
) -> Result<(), CommandError> {
    if role < Role::Moderator {
        return Err(CommandError::Forbidden(format!(
            "only moderators may {action}; you are a {role}"
        )));
    }
    if actor == target {
        return Err(bad(format!("you cannot {action} yourself")));
    }
    let theirs = outbox.store().role(target).await?;
    if theirs >= role {
        return Err(CommandError::Forbidden(format!(
            "a {role} may not {action} a {theirs} ({target})"
        )));
    }
    Ok(())
}

/// `delete`: the author may delete their own message, a moderator any; the tombstone
/// goes first, then the message leaves the stream.
async fn delete(
    outbox: &Outbox,
    stream: &jetstream::stream::Stream,
    room: &RoomName,
    actor: &UserName,
    role: Role,
    seq: u64,
    note: Option<String>,
) -> Result<ModerationReply, CommandError> {
    let not_found = || CommandError::NotFound(format!("room {room} has no message {seq}"));
    let message = stream
        .get_raw_message(seq)
        .await
        .map_err(|e| match e.kind() {
            jetstream::stream::RawMessageErrorKind::NoMessageFound => not_found(),
            _ => CommandError::Unavailable(e.to_string()),
        })?;
    let author = match subjects::parse_room_subject(message.subject.as_str()) {
        Ok(RoomSubject::Message { user, .. }) => user,
        _ => {
            return Err(bad(format!(
                "message {seq} is not a chat message; only those can be deleted"
            )))
        }
    };
    let reason = if &author == actor {
        Reason::Author
    } else if role >= Role::Moderator {
        Reason::Moderator
    } else {
        return Err(CommandError::Forbidden(format!(
            "only moderators may delete others' messages; you are a {role}"
        )));
    };
    let detail = EventDetail {
        by: Some(actor.clone()),
        until: None,
        note,
        seqs: vec![seq],
        others: Vec::new(),
    };
    let id = format!("{}.deleted.{seq}", uuid::Uuid::new_v4().simple());
    let tombstone = event::moderation(id, SystemKind::Deleted, reason, room, &author, detail);
    outbox.publish(&tombstone).await?;
    match stream.delete_message(seq).await {
        Ok(_) => {}
        Err(e) if crate::excess::is_gone(&e) => {}
        Err(e) => return Err(CommandError::Unavailable(e.to_string())),
    }
    tracing::info!(%room, %actor, %author, seq, "message deleted");
    Ok(ModerationReply {
        ok: true,
        action: Some(Action::Delete),
        target: Some(author),
        until: None,
        role: None,
    })
}
