//! Logging in, staying logged in, and the account requests (register, password change).
//!
//! A chat user connects with their name and password in CONNECT; nats-server asks the
//! auth worker, which gives the connection exactly that user's permissions for a
//! limited time (an hour by default). When that time is up the server disconnects the
//! client, which logs in again by itself like after any other disconnection. To keep
//! reconnects cheap (no password hashing on the server side), the client fetches a
//! *resume token* after each (re)connect and presents it instead of the password the
//! next time; a refused token falls back to the password at once.
//!
//! A refusal of the password itself (changed elsewhere, account gone, a ban) is shown
//! as it happens and, if it lasts, ends the session: it is never retried forever.
//! From outside, a refusal caused by the stack (the user table electing a leader after
//! a node died, the auth workers restarting) looks exactly the same: nats-server says
//! "Authorization Violation" whatever the reason. So refusals are retried with a
//! growing pause, each one shown, and the session ends only once they have lasted
//! [`REFUSALS_PATIENCE`] as well as numbered `max_refusals`: long enough for a cluster
//! to recover, short enough that a changed password ends a session within a minute.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chat_protocol::auth::{self, AuthReply, PasswdRequest, RegisterRequest, ResumeReply};
use chat_protocol::UserName;
use tokio::sync::watch;

use crate::call::{self, RequestError};

/// How long password refusals in a row must have lasted (besides their number) before
/// the session ends: a user table's leader election or an auth worker restart is over
/// well within it.
pub const REFUSALS_PATIENCE: Duration = Duration::from_secs(30);

/// Longest pause before logging in again after a refusal.
const REFUSAL_BACKOFF_MAX: Duration = Duration::from_secs(5);

/// What the auth callback presents, and what happened to it.
pub(crate) struct Login {
    user: UserName,
    password: Mutex<String>,
    token: Mutex<Option<String>>,
    /// The last attempt presented the token (so a refusal means the token).
    sent_token: AtomicBool,
    /// Refusals of the token in a row.
    token_refusals: AtomicU32,
    /// Password refusals in a row since the last successful connection.
    refusals: AtomicU32,
    /// When the first of those came.
    first_refusal: Mutex<Option<Instant>>,
    /// Set once the password has been refused `max_refusals` times in a row.
    refused: watch::Sender<bool>,
    /// Every refusal so far (token or password), for the first login's check.
    any_refusal: watch::Sender<u32>,
    max_refusals: u32,
}

impl Login {
    pub(crate) fn new(user: UserName, password: String, max_refusals: u32) -> Arc<Self> {
        Arc::new(Self {
            user,
            password: Mutex::new(password),
            token: Mutex::new(None),
            sent_token: AtomicBool::new(false),
            token_refusals: AtomicU32::new(0),
            refusals: AtomicU32::new(0),
            first_refusal: Mutex::new(None),
            refused: watch::channel(false).0,
            any_refusal: watch::channel(0).0,
            max_refusals: max_refusals.max(1),
        })
    }

    /// The credentials for the next connection attempt.
    pub(crate) fn credentials(&self) -> async_nats::Auth {
        let token = self.token.lock().unwrap_or_else(|e| e.into_inner()).clone();
        self.sent_token.store(token.is_some(), Ordering::SeqCst);
        let mut auth = async_nats::Auth::new();
        auth.username = Some(self.user.to_string());
        auth.password = Some(token.unwrap_or_else(|| self.password()));
        auth
    }

    fn password(&self) -> String {
        self.password
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The server refused an attempt. Returns how many password refusals in a row
    /// there have been (0 when it was the token).
    ///
    /// The server says "Authorization Violation" both for a bad token and for a login
    /// the auth worker did not answer in time (right after a server restart, a
    /// thousand clients log in at once). Dropping the token at the first refusal would
    /// turn a busy moment into a thousand password hashes, each slower than the server's
    /// patience: a spiral. So the token is kept for a second try, and only a second
    /// refusal in a row sends the client to its password.
    pub(crate) fn on_refused(&self) -> u32 {
        self.any_refusal.send_modify(|n| *n += 1);
        if self.sent_token.swap(false, Ordering::SeqCst) {
            if self.token_refusals.fetch_add(1, Ordering::SeqCst) + 1 >= 2 {
                *self.token.lock().unwrap_or_else(|e| e.into_inner()) = None;
            }
            return 0;
        }
        let refusals = self.refusals.fetch_add(1, Ordering::SeqCst) + 1;
        let first = *self
            .first_refusal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert_with(Instant::now);
        if refusals >= self.max_refusals && first.elapsed() >= REFUSALS_PATIENCE {
            self.refused.send_replace(true);
        }
        refusals
    }

    /// How long to wait before reconnect attempt `attempt`: [`reconnect_delay`], and
    /// after password refusals at least a pause doubling from half a second per
    /// refusal up to [`REFUSAL_BACKOFF_MAX`] (jittered), so that a user table
    /// recovering is not pressed and the refusals span [`REFUSALS_PATIENCE`] in a few
    /// attempts rather than hundreds.
    pub(crate) fn reconnect_delay(&self, attempt: usize) -> Duration {
        use rand::Rng;
        let delay = reconnect_delay(attempt);
        let refusals = self.refusals.load(Ordering::SeqCst);
        if refusals == 0 {
            return delay;
        }
        let backoff = Duration::from_millis(500)
            .saturating_mul(2u32.saturating_pow(refusals - 1))
            .min(REFUSAL_BACKOFF_MAX)
            .mul_f64(rand::thread_rng().gen_range(0.75..1.25));
        delay.max(backoff)
    }

    /// A connection went through.
    pub(crate) fn on_connected(&self) {
        self.refusals.store(0, Ordering::SeqCst);
        *self.first_refusal.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.token_refusals.store(0, Ordering::SeqCst);
    }

    /// Completes at the next refusal of any kind.
    pub(crate) async fn next_refusal(&self) {
        let mut refusals = self.any_refusal.subscribe();
        refusals.borrow_and_update();
        let _ = refusals.changed().await;
    }

    /// Completes once the server has refused the password too many times in a row.
    pub(crate) async fn refused(&self) {
        let mut refused = self.refused.subscribe();
        let _ = refused.wait_for(|r| *r).await;
    }

    /// Asks for a fresh resume token (after each connect; failures only cost the next
    /// reconnect a password check).
    pub(crate) async fn refresh_token(&self, client: &async_nats::Client, timeout: Duration) {
        let reply = call::request::<ResumeReply>(
            client,
            "auth",
            auth::RESUME.to_string(),
            bytes::Bytes::new(),
            timeout,
        )
        .await;
        self.keep(reply);
    }

    /// Keeps the token of a `chat.auth.resume` reply.
    fn keep(&self, reply: Result<ResumeReply, RequestError>) {
        match reply {
            Ok(reply) => {
                *self.token.lock().unwrap_or_else(|e| e.into_inner()) = Some(reply.token);
                self.token_refusals.store(0, Ordering::SeqCst);
            }
            Err(error) => tracing::info!(%error, "no resume token; reconnects use the password"),
        }
    }

    /// Keeps the token fresh: a new one after every reconnection (the first came
    /// with [`Login::logged_in`]).
    pub(crate) async fn keep_token(
        self: Arc<Self>,
        client: async_nats::Client,
        mut reconnects: watch::Receiver<u64>,
        timeout: Duration,
    ) {
        while reconnects.changed().await.is_ok() {
            self.refresh_token(&client, timeout).await;
        }
    }

    /// Changes the password (the account's and the one kept for reconnecting).
    pub(crate) async fn change_password(
        &self,
        client: &async_nats::Client,
        old: &str,
        new: &str,
        timeout: Duration,
    ) -> Result<(), AccountError> {
        auth::check_password(&self.user, new).map_err(BrokenRule::from)?;
        let body = call::body(&PasswdRequest {
            old: old.to_string(),
            new: new.to_string(),
        });
        call::request::<AuthReply>(client, "auth", auth::PASSWD.to_string(), body, timeout).await?;
        *self.password.lock().unwrap_or_else(|e| e.into_inner()) = new.to_string();
        // The old token names the old password's record; get one for the new.
        self.refresh_token(client, timeout).await;
        Ok(())
    }
}

impl Login {
    /// Whether `client` really got in as a chat user (and, on the way, its first
    /// resume token). nats-server answers a CONNECT only once the auth worker has
    /// decided, but async-nats counts the server's first PING (sent after two seconds)
    /// as success: with a slow or absent auth worker a connection looks made and is
    /// refused just after. A round trip tells: an answer comes only once logged in.
    pub(crate) async fn logged_in(&self, client: &async_nats::Client, patience: Duration) -> bool {
        let ask = call::request::<ResumeReply>(
            client,
            "auth",
            auth::RESUME.to_string(),
            bytes::Bytes::new(),
            patience,
        );
        tokio::select! {
            reply = ask => match reply {
                // Any answer means logged in; no token only costs the next reconnect.
                Ok(_) | Err(RequestError::Refused(..) | RequestError::Busy(..) | RequestError::Malformed(..) | RequestError::Unavailable(_)) => {
                    self.keep(reply);
                    true
                }
                Err(_) => false,
            },
            _ = self.next_refusal() => false,
        }
    }
}

/// Whether a guest connection really got in (see [`Login::logged_in`]): the
/// registration endpoint answers a malformed request with an error, once logged in.
pub(crate) async fn guest_in(client: &async_nats::Client, patience: Duration) -> bool {
    let ask = client.request(auth::REGISTER.to_string(), bytes::Bytes::new());
    match tokio::time::timeout(patience, ask).await {
        Ok(Ok(_)) => true,
        Ok(Err(error)) => error.kind() == async_nats::RequestErrorKind::NoResponders,
        Err(_) => false,
    }
}

/// How long to wait before reconnect attempt `attempt`: async-nats's backoff (none,
/// then doubling up to 4 s) with jitter, so that the clients of a restarted server do
/// not all log in at the same instant: the first attempt comes within half a second,
/// later ones at 50-150 % of the backoff.
pub(crate) fn reconnect_delay(attempt: usize) -> Duration {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    if attempt <= 1 {
        return Duration::from_millis(rng.gen_range(0..500));
    }
    let exponent = u32::try_from(attempt - 1).unwrap_or(u32::MAX).min(12);
    let backoff = Duration::from_millis(2u64.pow(exponent)).min(Duration::from_secs(4));
    backoff.mul_f64(rng.gen_range(0.5..1.5))
}

/// Which rule a name or password breaks, checked before anything is sent.
#[derive(Debug, thiserror::Error)]
pub enum BrokenRule {
    /// The name breaks the naming rules.
    #[error(transparent)]
    Name(#[from] chat_protocol::NameError),
    /// The password breaks the password rules.
    #[error(transparent)]
    Password(#[from] auth::PasswordError),
}

/// Why registering or changing a password did not work.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// Refused before sending: the name or password breaks the rules.
    #[error(transparent)]
    Invalid(#[from] BrokenRule),
    /// NATS could not be reached.
    #[error("cannot reach NATS at {url}: {reason}")]
    Unreachable {
        /// The URL tried.
        url: String,
        /// What went wrong, explained (a TLS failure says against what).
        reason: String,
        /// What async-nats said.
        #[source]
        source: async_nats::ConnectError,
    },
    /// The auth service refused it or did not answer.
    #[error(transparent)]
    Request(#[from] RequestError),
}

/// Registers `user` with `password` (connecting as a guest), checking the rules here
/// first so that nothing is sent for a name or password the server would refuse.
pub async fn register(
    url: &str,
    user: &str,
    password: &str,
    timeout: Duration,
) -> Result<UserName, AccountError> {
    register_trusting(url, None, user, password, timeout).await
}

/// [`register`] at any server of the comma-separated list `url`, trusting the CA in
/// `tls_ca` (see [`chat_runtime::servers`]).
pub async fn register_trusting(
    url: &str,
    tls_ca: Option<&std::path::Path>,
    user: &str,
    password: &str,
    timeout: Duration,
) -> Result<UserName, AccountError> {
    let name = UserName::new(user).map_err(BrokenRule::from)?;
    auth::check_password(&name, password).map_err(BrokenRule::from)?;
    let client = chat_runtime::servers::trust(async_nats::ConnectOptions::new(), tls_ca)
        .name(format!("chat-client register {name}"))
        .connection_timeout(Duration::from_secs(5))
        .connect(chat_runtime::servers::list(url))
        .await
        .map_err(|source| AccountError::Unreachable {
            url: url.to_string(),
            reason: chat_runtime::servers::explain(&source, url, tls_ca),
            source,
        })?;
    let body = call::body(&RegisterRequest {
        user: user.to_string(),
        password: password.to_string(),
    });
    // Hashing a password takes a while under load: be patient.
    let reply: AuthReply = call::request(
        &client,
        "auth",
        auth::REGISTER.to_string(),
        body,
        timeout.max(Duration::from_secs(10)),
    )
    .await?;
    Ok(reply.user)
}

/// Asks a new password for `user` twice on the terminal without echo, until both agree
/// and the password rules are met (saying which rule was not).
pub fn ask_new_password(user: &UserName) -> std::io::Result<String> {
    loop {
        let first = rpassword::prompt_password("new password: ")?;
        if let Err(why) = auth::check_password(user, &first) {
            eprintln!("{why}; again");
            continue;
        }
        let second = rpassword::prompt_password("new password again: ")?;
        if first == second {
            return Ok(first);
        }
        eprintln!("the two passwords differ; again");
    }
}
