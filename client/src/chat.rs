//! The [`Chat`] handle: one connected session of one user, in any number of rooms.
//!
//! This is the library API that the terminal UIs, the tests and the benchmark drive.
//! [`Chat::connect`] returns the handle and the receiver of every [`Event`] to show;
//! everything else is a method: join, send, leave, users, rooms, history, close.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream;
use chat_protocol::body::{ChatMessage, MessageKind, ModerationReply, RoomsReply, UsersReply};
use chat_protocol::{auth, subjects, RoomName, SessionId, UserName};
use chat_runtime::servers;
use tokio::sync::{mpsc, watch};
use tokio::task::AbortHandle;

use crate::call::{self, RequestError};
use crate::command::Moderation;
use crate::echo::Echoes;
use crate::event::{Event, State};
use crate::history;
use crate::login::{self, AccountError, Login};
use crate::moderation::{self, Ended, Mute, Own};
use crate::pacing::{Pacer, Progress};
use crate::presence::Presence;
use crate::publish::{Publisher, RetryPolicy, SendError, SendHandle};
use crate::room::Feed;
use chat_protocol::body::Rate;

/// How to connect and how patient to be.
#[derive(Debug, Clone)]
pub struct Options {
    /// NATS server URL(s), comma-separated.
    pub url: String,
    /// CA certificate (PEM) the server's TLS certificate must be signed by; `None`:
    /// the system's roots (see [`chat_runtime::servers`]).
    pub tls_ca: Option<std::path::PathBuf>,
    /// Who this session is.
    pub user: UserName,
    /// Their password (kept in memory to log in again when the server asks).
    pub password: String,
    /// Password refusals in a row, while reconnecting, after which the session ends
    /// (the password was changed elsewhere or the account closed), once they have
    /// also lasted [`login::REFUSALS_PATIENCE`] (a cluster recovering refuses logins
    /// for a moment too).
    pub max_login_refusals: u32,
    /// How long to wait for a worker's reply.
    pub request_timeout: Duration,
    /// How publishes are confirmed and retried.
    pub retry: RetryPolicy,
    /// Events buffered for a slow UI before the feeds wait for it.
    pub event_buffer: usize,
    /// How long closing waits for outstanding acknowledgements (and the echoes of
    /// acknowledged messages) before it reports what is left and leaves anyway.
    pub quit_timeout: Duration,
    /// The allowance to pace own messages to until the user's standing says what it
    /// is (see [`crate::pacing`]); `None`: no pacing (raw throughput, in tests and
    /// benchmarks on a stack without a rate limit).
    pub pacing: Option<Rate>,
}

impl Options {
    /// Defaults for `user`, logging in with `password`, at `url`.
    pub fn new(url: impl Into<String>, user: UserName, password: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            tls_ca: None,
            user,
            password: password.into(),
            max_login_refusals: 5,
            request_timeout: Duration::from_secs(3),
            retry: RetryPolicy::default(),
            event_buffer: 1024,
            quit_timeout: Duration::from_secs(5),
            pacing: Some(Rate::default()),
        }
    }
}

/// Why the client could not start.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The server refused the login: unknown name or wrong password (they look the
    /// same from outside, on purpose).
    #[error("login refused for {user}: wrong name or password (a new name must be registered first: chat-client register --user {user})")]
    Refused {
        /// The name tried.
        user: UserName,
    },
    /// The login is refused because the user is banned (the standing says until when).
    #[error("login refused for {user}: {ban}")]
    Banned {
        /// The name tried.
        user: UserName,
        /// The ban.
        ban: Ended,
    },
    /// The server could not check the login: no auth worker answered it.
    #[error("cannot log in at {url}: the server's login service (auth worker) is not answering; try again later")]
    AuthUnavailable {
        /// The URL tried.
        url: String,
    },
    /// The server could not be verified (TLS): the message says against what, and
    /// what to give instead.
    #[error("{0}")]
    Untrusted(String),
    /// NATS did not accept the connection.
    #[error("cannot reach NATS at {url}: {source}")]
    Unreachable {
        /// The URL tried.
        url: String,
        /// What async-nats said.
        #[source]
        source: async_nats::ConnectError,
    },
}

/// How long the first login may take: the server's callout timeout (a few seconds)
/// and then some.
const LOGIN_PATIENCE: Duration = Duration::from_secs(10);

/// Tells a wrong name or password from a login service that is down: nats-server
/// says "Authorization Violation" for both, but a guest login (no password) is refused
/// only when no auth worker answers.
async fn refusal(options: &Options) -> ConnectError {
    let guest = servers::trust(async_nats::ConnectOptions::new(), options.tls_ca.as_deref())
        .connection_timeout(Duration::from_secs(5))
        .max_reconnects(Some(1))
        .connect(servers::list(&options.url))
        .await;
    let guest = match guest {
        Ok(client) if login::guest_in(&client, LOGIN_PATIENCE).await => client,
        _ => {
            return ConnectError::AuthUnavailable {
                url: options.url.clone(),
            }
        }
    };
    // A ban is told with its end and reason (the standing is public).
    let (user, patience) = (&options.user, options.request_timeout);
    if let Ok(standing) = moderation::standing(&guest, user, patience).await {
        if let Some(ban) = moderation::ban_of(&standing, chrono::Utc::now()) {
            return ConnectError::Banned {
                user: user.clone(),
                ban,
            };
        }
    }
    ConnectError::Refused { user: user.clone() }
}

/// One connected chat session; cheap to clone (all clones share the session).
#[derive(Clone)]
pub struct Chat {
    inner: Arc<Inner>,
}

struct Inner {
    client: async_nats::Client,
    js: jetstream::Context,
    login: Arc<Login>,
    user: UserName,
    session: SessionId,
    options: Options,
    publisher: Publisher,
    pacer: Pacer,
    events: mpsc::Sender<Event>,
    reconnects: watch::Receiver<u64>,
    rooms: Mutex<BTreeMap<RoomName, JoinedRoom>>,
    echoes: Arc<Echoes>,
    /// This session's standing: mute, and whether a moderator ended it.
    own: Arc<Own>,
    /// Fetches a resume token after each reconnect; holds a client clone, so it must
    /// end with the session or the connection would outlive it.
    token_task: AbortHandle,
    /// The pacing task, which holds a client clone too.
    pacer_task: AbortHandle,
    /// Asks the standing after each login; holds a client clone too.
    standing_task: AbortHandle,
}

/// A joined room's background task, and how far its feed got.
struct JoinedRoom {
    task: AbortHandle,
    /// `None` until the welcome was sent and the replay shown; then the last sequence
    /// shown.
    shown: watch::Receiver<Option<u64>>,
}

/// What closing could not do: messages given up on, and acknowledged messages whose
/// echo was not shown (each has also been reported as an error event).
#[derive(Debug, Default)]
pub struct CloseReport {
    /// Messages not sent, or unconfirmed.
    pub failed: Vec<SendError>,
    /// `(room, sequence, start of the text)` of own stored messages not shown.
    pub not_shown: Vec<(RoomName, u64, String)>,
}

impl CloseReport {
    /// Whether everything was confirmed and shown.
    pub fn is_empty(&self) -> bool {
        self.failed.is_empty() && self.not_shown.is_empty()
    }
}

/// Shortest wait for a leave request when closing, even past the quit deadline.
const LEAVE_GRACE: Duration = Duration::from_secs(1);

impl Drop for Inner {
    fn drop(&mut self) {
        self.token_task.abort();
        self.pacer_task.abort();
        self.standing_task.abort();
        for task in self
            .rooms
            .lock()
            .map(|r| r.values().map(|room| room.task.clone()).collect::<Vec<_>>())
            .unwrap_or_default()
        {
            task.abort();
        }
    }
}

impl Chat {
    /// Connects to NATS. Connection losses later are survived (and reported as
    /// `status` events); only an unreachable server at start is an error.
    pub async fn connect(options: Options) -> Result<(Chat, mpsc::Receiver<Event>), ConnectError> {
        if options.password.is_empty() {
            // Without a password the server would let it in as a guest, who can only
            // register: that is never what a chat session means.
            return Err(ConnectError::Refused { user: options.user });
        }
        let (events, rx) = mpsc::channel(options.event_buffer.max(1));
        let (reconnected, reconnects) = watch::channel(0u64);
        let callback_events = events.clone();
        let down = Arc::new(AtomicBool::new(false));
        let login = Login::new(
            options.user.clone(),
            options.password.clone(),
            options.max_login_refusals,
        );
        let callback_login = login.clone();
        let event_login = login.clone();
        let delay_login = login.clone();
        let own = Own::new(options.user.clone(), events.clone());
        let event_own = own.clone();
        let (ban_url, ban_ca) = (options.url.clone(), options.tls_ca.clone());
        let ban_patience = options.request_timeout;
        let client = servers::trust(
            async_nats::ConnectOptions::with_auth_callback(move |_nonce| {
                let credentials = callback_login.credentials();
                async move { Ok(credentials) }
            }),
            options.tls_ca.as_deref(),
        )
        .name(format!("chat-client {}", options.user))
        .custom_inbox_prefix(auth::inbox_prefix(&options.user))
        .reconnect_delay_callback(move |attempt| delay_login.reconnect_delay(attempt))
        .connection_timeout(Duration::from_secs(5))
        .event_callback(move |event| {
            let events = callback_events.clone();
            let down = down.clone();
            let reconnected = reconnected.clone();
            let login = event_login.clone();
            let own = event_own.clone();
            let (ban_url, ban_ca) = (ban_url.clone(), ban_ca.clone());
            async move {
                let status = match event {
                    async_nats::Event::Disconnected => {
                        down.store(true, Ordering::SeqCst);
                        Event::status(
                            State::Disconnected,
                            None,
                            "disconnected from NATS, reconnecting…",
                        )
                    }
                    async_nats::Event::Connected => {
                        login.on_connected();
                        if !down.swap(false, Ordering::SeqCst) {
                            return;
                        }
                        reconnected.send_modify(|n| *n += 1);
                        Event::status(State::Reconnected, None, "reconnected")
                    }
                    async_nats::Event::ClientError(async_nats::ClientError::Other(error))
                        if error.contains("authorization violation") =>
                    {
                        match login.on_refused() {
                            0 => return, // the resume token; the password comes next
                            n => {
                                // A ban refuses every login: find out, and end the
                                // session with its end and reason.
                                tokio::spawn(async move {
                                    own.check_ban(&ban_url, ban_ca.as_deref(), ban_patience)
                                        .await
                                });
                                Event::status(
                                    State::LoginRefused,
                                    None,
                                    format!(
                                        "the server refused the login ({n} in a row: a changed password, or the login service recovering); retrying"
                                    ),
                                )
                            }
                        }
                    }
                    async_nats::Event::ServerError(
                        async_nats::ServerError::AuthorizationViolation,
                    ) => {
                        // Refused on a connection that looked made (see `login::logged_in`).
                        login.on_refused();
                        return;
                    }
                    async_nats::Event::ServerError(error) => {
                        tracing::warn!(%error, "the server refused something");
                        Event::error(format!("refused by the server: {error}"))
                    }
                    other => {
                        tracing::info!("NATS connection event: {other}");
                        return;
                    }
                };
                tracing::info!("{status:?}");
                let _ = events.send(status).await;
            }
        })
        .connect(servers::list(&options.url))
        .await;
        if let Err(error) = &client {
            if servers::is_tls_failure(error) {
                let ca = options.tls_ca.as_deref();
                return Err(ConnectError::Untrusted(servers::explain(
                    error,
                    &options.url,
                    ca,
                )));
            }
        }
        let client = match client {
            Ok(client) if login.logged_in(&client, LOGIN_PATIENCE).await => client,
            Ok(client) => {
                drop(client);
                return Err(refusal(&options).await);
            }
            Err(err) if err.kind() == async_nats::ConnectErrorKind::AuthorizationViolation => {
                return Err(refusal(&options).await)
            }
            Err(source) => {
                return Err(ConnectError::Unreachable {
                    url: options.url.clone(),
                    source,
                })
            }
        };
        let token_task = tokio::spawn(login.clone().keep_token(
            client.clone(),
            reconnects.clone(),
            options.request_timeout,
        ))
        .abort_handle();
        // JetStream API calls (consumer creation, stream info) give up as quickly as
        // worker requests do, so a call lost in a reconnect is retried soon.
        let js = jetstream::context::ContextBuilder::new()
            .timeout(options.request_timeout)
            .build(client.clone());
        let echoes = Arc::new(Echoes::default());
        let publisher = Publisher::start(
            js.clone(),
            options.retry,
            events.clone(),
            reconnects.clone(),
            echoes.clone(),
        );
        let (pacer, pacer_task) = Pacer::start(
            publisher.clone(),
            client.clone(),
            options.pacing,
            events.clone(),
            options.retry.window,
        );
        let standing_task = tokio::spawn(moderation::keep_standing(
            client.clone(),
            own.clone(),
            pacer.clone(),
            reconnects.clone(),
            options.request_timeout,
        ))
        .abort_handle();
        let inner = Inner {
            client,
            js,
            login,
            user: options.user.clone(),
            session: SessionId::random(),
            options,
            publisher,
            pacer,
            events,
            reconnects,
            rooms: Mutex::new(BTreeMap::new()),
            echoes,
            own,
            token_task,
            pacer_task,
            standing_task,
        };
        Ok((
            Chat {
                inner: Arc::new(inner),
            },
            rx,
        ))
    }

    /// This session's user.
    pub fn user(&self) -> &UserName {
        &self.inner.user
    }

    /// This process's presence session id.
    pub fn session(&self) -> SessionId {
        self.inner.session
    }

    /// The rooms joined, sorted.
    pub fn joined(&self) -> Vec<RoomName> {
        self.rooms().keys().cloned().collect()
    }

    /// Whether `room` is joined.
    pub fn is_joined(&self, room: &RoomName) -> bool {
        self.rooms().contains_key(room)
    }

    fn rooms(&self) -> std::sync::MutexGuard<'_, BTreeMap<RoomName, JoinedRoom>> {
        // A panic elsewhere while holding the lock leaves a usable map.
        self.inner.rooms.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn presence(&self, room: &RoomName) -> Presence {
        Presence {
            client: self.inner.client.clone(),
            room: room.clone(),
            user: self.inner.user.clone(),
            session: self.inner.session,
            timeout: self.inner.options.request_timeout,
        }
    }

    /// Joins `room` in the background: join request (retried while no presence
    /// worker answers), `welcome` event, replay of the last `history` chat messages,
    /// then live events and heartbeats until [`Chat::leave`]. Everything published
    /// after the `welcome` event is shown live. Returns false if the room was already
    /// joined.
    pub fn join(&self, room: &RoomName, history: usize) -> bool {
        let mut rooms = self.rooms();
        if rooms.contains_key(room) {
            return false;
        }
        let presence = self.presence(room);
        let events = self.inner.events.clone();
        let (shown_tx, shown) = watch::channel(None);
        let feed = Feed {
            shown: shown_tx,
            js: self.inner.js.clone(),
            room: room.clone(),
            history,
            events: events.clone(),
            reconnects: self.inner.reconnects.clone(),
            echoes: self.inner.echoes.clone(),
            own: self.inner.own.clone(),
        };
        let task = tokio::spawn(async move {
            let reply = presence.join(&events).await;
            let welcome = Event::Welcome {
                room: presence.room.clone(),
                user: presence.user.clone(),
                users: reply.users,
                text: reply.welcome,
            };
            let every = Duration::from_secs(reply.heartbeat.max(1));
            tokio::join!(presence.heartbeats(every, &events), feed.run(welcome));
        });
        rooms.insert(
            room.clone(),
            JoinedRoom {
                task: task.abort_handle(),
                shown,
            },
        );
        true
    }

    /// Waits until `room`'s join is complete: the welcome was sent and the replay
    /// shown, so everything published from now on is shown live. Returns at once if
    /// the room is not joined. Line mode waits here so that a script's output is
    /// deterministic; the interactive UI does not wait.
    pub async fn wait_live(&self, room: &RoomName) {
        let shown = self.rooms().get(room).map(|r| r.shown.clone());
        if let Some(mut shown) = shown {
            let _ = shown.wait_for(Option::is_some).await;
        }
    }

    /// Queues a message for `room` (waiting while a thousand are already queued). It
    /// is published behind every message queued before it, paced to the allowed rate;
    /// await the handle to learn whether JetStream stored it.
    pub async fn send(
        &self,
        room: &RoomName,
        kind: MessageKind,
        text: &str,
    ) -> Result<SendHandle, SendError> {
        if !self.is_joined(room) {
            return Err(SendError::NotJoined(room.clone()));
        }
        let message = ChatMessage::new(room, &self.inner.user, kind, text)?;
        let subject = subjects::room_message(room, &self.inner.user);
        Ok(self.inner.pacer.send(room, subject, message).await)
    }

    /// The mute in force now, if any (what is typed meanwhile is not sent).
    pub fn muted(&self) -> Option<Mute> {
        self.inner.own.muted()
    }

    /// Completes when a moderator ended this session (kicked, or banned): UIs end it
    /// (exit code 77) rather than reconnecting silently.
    pub async fn ended(&self) -> Ended {
        self.inner.own.ended().await
    }

    /// Sends a moderation command about `room` (where its event is written); the
    /// worker's reply, or its refusal (403 for someone without the role).
    pub async fn moderate(
        &self,
        room: &RoomName,
        moderation: &Moderation,
    ) -> Result<ModerationReply, RequestError> {
        let timeout = self.inner.options.request_timeout;
        let (client, user) = (&self.inner.client, &self.inner.user);
        moderation::moderate(client, room, user, moderation, timeout).await
    }

    /// How far the current batch of paced messages has got (zero when idle).
    pub fn sending(&self) -> Progress {
        self.inner.pacer.progress()
    }

    /// Paces own messages to `allowance` from now on (from the user's standing); no
    /// effect when pacing is off.
    pub fn set_allowance(&self, allowance: Rate) {
        self.inner.pacer.set_allowance(allowance);
    }

    /// How many messages sent so far are not acknowledged by JetStream yet (nor given
    /// up on).
    pub fn unconfirmed(&self) -> usize {
        self.inner.publisher.unconfirmed()
    }

    /// Waits until every message sent so far is confirmed or given up on; returns
    /// those given up on since the last call.
    pub async fn flush(&self) -> Vec<SendError> {
        self.inner.pacer.drain().await;
        self.inner.publisher.flush().await
    }

    /// Leaves `room`: stops its feed and heartbeats and tells the presence worker.
    /// Returns false if the room was not joined.
    pub async fn leave(&self, room: &RoomName) -> bool {
        self.leave_within(room, self.inner.options.request_timeout)
            .await
    }

    /// [`Chat::leave`], waiting at most `patience` for the presence worker.
    async fn leave_within(&self, room: &RoomName, patience: Duration) -> bool {
        let Some(joined) = self.rooms().remove(room) else {
            return false;
        };
        joined.task.abort();
        self.inner.echoes.take(room);
        if let Err(err) = self.presence(room).leave(patience).await {
            tracing::warn!(%room, "leave request failed: {err}");
        }
        let message = format!("you left {room}");
        let _ = self
            .inner
            .events
            .send(Event::status(State::Left, Some(room), message))
            .await;
        true
    }

    /// Who is online in `room`.
    pub async fn users(&self, room: &RoomName) -> Result<UsersReply, RequestError> {
        self.ask("presence", subjects::users(room)).await
    }

    /// Every room with its online users and stored messages.
    pub async fn list_rooms(&self) -> Result<RoomsReply, RequestError> {
        self.ask("presence", subjects::ROOMS.to_string()).await
    }

    async fn ask<T: serde::de::DeserializeOwned>(
        &self,
        service: &'static str,
        subject: String,
    ) -> Result<T, RequestError> {
        let timeout = self.inner.options.request_timeout;
        call::request(
            &self.inner.client,
            service,
            subject,
            bytes::Bytes::new(),
            timeout,
        )
        .await
    }

    /// `#all_messages`: sends every stored message of `room` as a `message` event
    /// (`replay: true`), then `history_end`. Returns the count.
    pub async fn all_messages(&self, room: &RoomName) -> Result<u64, RequestError> {
        let timeout = self.inner.options.request_timeout;
        history::all_messages(&self.inner.client, room, timeout, &self.inner.events).await
    }

    /// One page of `room`'s stored history for scrollback (`replay: true` events,
    /// oldest first), paged and retried as `#all_messages` is, and the cursor of the
    /// following page in the same direction (none: nothing further that way).
    pub async fn history_page(
        &self,
        room: &RoomName,
        page: history::Page,
        limit: u32,
    ) -> Result<(Vec<Event>, Option<u64>), RequestError> {
        let timeout = self.inner.options.request_timeout;
        history::page(&self.inner.client, room, page, limit, timeout).await
    }

    /// `#my_messages`: this user's messages in every joined room, merged by time, then
    /// `history_end` naming `current`. Returns the count.
    pub async fn my_messages(&self, current: &RoomName) -> Result<u64, RequestError> {
        let timeout = self.inner.options.request_timeout;
        let rooms = self.joined();
        let user = &self.inner.user;
        history::my_messages(
            &self.inner.client,
            user,
            &rooms,
            current,
            timeout,
            &self.inner.events,
        )
        .await
    }

    /// Changes this user's password from `old` to `new`; reconnects use the new one.
    pub async fn change_password(&self, old: &str, new: &str) -> Result<(), AccountError> {
        let timeout = self.inner.options.request_timeout;
        self.inner
            .login
            .change_password(&self.inner.client, old, new, timeout)
            .await
    }

    /// Completes when the server keeps refusing this user's login while reconnecting
    /// ([`Options::max_login_refusals`] times in a row, over at least
    /// [`login::REFUSALS_PATIENCE`]): the session cannot go on, and
    /// UIs end it (exit code 77).
    pub async fn login_refused(&self) {
        self.inner.login.refused().await
    }

    /// Shows `event` in order with everything else (for UIs reporting their own errors).
    pub async fn notify(&self, event: Event) {
        let _ = self.inner.events.send(event).await;
    }

    /// Ends the session in bounded time: waits for outstanding acks and for each
    /// room's feed to show the echo of this session's stored messages, but not beyond
    /// [`Options::quit_timeout`]; reports (as error events too) what was given up on or
    /// not shown; leaves every room and flushes the connection, each briefly, since
    /// NATS may be down.
    pub async fn close(&self) -> CloseReport {
        // Paced messages still go out, for as long as they keep going (a long paste
        // takes its time); a stall as long as the quit timeout gives the rest up.
        let quit_timeout = self.inner.options.quit_timeout;
        let mut failed = self.inner.pacer.drain_for_close(quit_timeout).await;
        let deadline = tokio::time::Instant::now() + quit_timeout;
        failed.extend(self.inner.publisher.close(deadline).await);
        let mut not_shown = Vec::new();
        for room in self.joined() {
            let shown = self.rooms().get(&room).map(|r| r.shown.clone());
            if let (Some(mut shown), Some(last)) = (shown, self.inner.echoes.last(&room)) {
                let caught_up = shown.wait_for(|s| s.is_some_and(|s| s >= last));
                if tokio::time::timeout_at(deadline, caught_up).await.is_err() {
                    tracing::warn!(%room, "the feed did not show every echo before closing");
                }
            }
            for (seq, text) in self.inner.echoes.take(&room) {
                let message = format!(
                    "{text:?} was stored in {room} (sequence {seq}) but its echo was not shown before quitting"
                );
                self.notify(Event::error(message)).await;
                not_shown.push((room.clone(), seq, text));
            }
        }
        let patience = self.inner.options.request_timeout.min(
            deadline
                .saturating_duration_since(tokio::time::Instant::now())
                .max(LEAVE_GRACE),
        );
        let rooms = self.joined();
        futures::future::join_all(rooms.iter().map(|room| self.leave_within(room, patience))).await;
        match tokio::time::timeout(LEAVE_GRACE, self.inner.client.flush()).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::warn!("final flush failed: {err}"),
            Err(_) => tracing::warn!("final flush did not finish in {LEAVE_GRACE:?}"),
        }
        CloseReport { failed, not_shown }
    }
}
