//! What to run and how big: the scenarios selected and the [`Sizes`] of each.
//!
//! Two presets exist: the full run that produces the published figures, and `--quick`,
//! small enough to finish in well under a minute on a 2-core machine (the crate's test
//! runs it). Every size can be overridden on its own from the command line.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

/// One measured scenario, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    /// Chat messages sent through the client library vs raw JetStream async publish.
    Publish,
    /// Rooms × members receiving every message: latency and delivered rate.
    Fanout,
    /// Reading a whole room through `#all_messages` vs a raw ordered consumer.
    History,
    /// Memory and CPU of an idle client and of the workers (before the presence
    /// scenario, whose thousand departures keep the presence worker busy for a while).
    Footprint,
    /// Joins, `/users` in a big room, and crashed sessions going away.
    Presence,
    /// One raw flooder at full speed and two members chatting: the members' latency
    /// and how long until the flooder is stopped (a moderation worker with the
    /// contract's allowance runs for it).
    Flood,
    /// Logins through the auth callout (password, resume token) and the reconnect
    /// storm after a nats-server restart (it restarts the server).
    Login,
    /// Every worker flooded with the largest requests: replies by kind and the
    /// worker's memory before, during and after (issue 12's bound).
    Overload,
    /// Members chatting on a 3-node TLS cluster while nodes and worker instances are
    /// killed and restarted: what is lost, duplicated or reordered (only when named:
    /// `--only chaos`; it runs for `--chaos-secs`).
    Chaos,
    /// What a room (a stream) costs the server: memory, descriptors, CPU, restart
    /// and join time with many rooms. Runs only when named (`--only rooms`).
    Rooms,
}

impl Scenario {
    /// Every measured scenario, in running order (the default; [`Scenario::Flood`],
    /// [`Scenario::Chaos`] and [`Scenario::Rooms`] run only when named: the flood's
    /// thousands of deletions keep JetStream's API busy for seconds, which would
    /// disturb whatever runs next on the shared stage).
    pub const ALL: [Scenario; 7] = [
        Scenario::Publish,
        Scenario::Fanout,
        Scenario::History,
        Scenario::Footprint,
        Scenario::Presence,
        Scenario::Login,
        Scenario::Overload,
    ];

    /// The name used in flags, the JSON and the table.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Publish => "publish",
            Scenario::Fanout => "fanout",
            Scenario::History => "history",
            Scenario::Presence => "presence",
            Scenario::Footprint => "footprint",
            Scenario::Flood => "flood",
            Scenario::Login => "login",
            Scenario::Overload => "overload",
            Scenario::Chaos => "chaos",
            Scenario::Rooms => "rooms",
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How big each scenario is. Recorded in the JSON so that figures can be compared
/// only with figures of the same sizes.
#[derive(Debug, Clone, Serialize)]
pub struct Sizes {
    /// Publish: messages sent by each side.
    pub publish_messages: usize,
    /// Characters of text per chat message (fan-out and publish); raw bodies have the
    /// size of the whole chat message JSON.
    pub text_chars: usize,
    /// Fan-out: rooms.
    pub fanout_rooms: usize,
    /// Fan-out: members per room (each its own connection).
    pub fanout_members: usize,
    /// Fan-out: messages per second, all rooms together.
    pub fanout_rate: u64,
    /// Fan-out: seconds of sending.
    pub fanout_secs: f64,
    /// Presence: sessions (distinct users, each its own connection); every one joins
    /// the big room and one of the small rooms, so the big room has this many users.
    pub presence_sessions: usize,
    /// Presence: small rooms the sessions spread over.
    pub presence_rooms: usize,
    /// Presence: joins in flight at once. By default 1,000, every one of the default
    /// 1,000 sessions at once: the crowd arriving together. The presence
    /// worker gathers a busy room's arrivals for up to its event gap (100 ms) before a
    /// join is answered, so a closed loop of a few dozen measures that wait, not the
    /// machine: 50 in flight cannot exceed about 500 joins a second (BENCHMARKS.md,
    /// "Joins per second").
    pub join_concurrency: usize,
    /// Presence: `/users` requests timed, one after the other.
    pub users_requests: usize,
    /// Presence: sessions crashed (dropped without leaving) and timed until gone.
    pub crashed_sessions: usize,
    /// Presence: the presence worker's session TTL in seconds.
    pub presence_ttl_secs: u64,
    /// History: messages in the replayed room.
    pub history_messages: usize,
    /// Footprint: seconds each idle measurement lasts.
    pub idle_secs: f64,
    /// Login: logins timed one after the other, and again several at once (each with
    /// the password, then each with a resume token).
    pub logins: usize,
    /// Login: logins in flight at once for the logins per second.
    pub login_concurrency: usize,
    /// Login: chat sessions connected when the server restarts (the reconnect storm).
    pub storm_clients: usize,
    /// Overload: requests sent to each worker per request size.
    pub overload_requests: usize,
    /// Overload: connections sending them.
    pub overload_clients: usize,
    /// Chaos: seconds of faults.
    pub chaos_secs: f64,
    /// Chaos: members chatting (spread over the nodes).
    pub chaos_members: usize,
    /// Chaos: members leaving and coming back over and over.
    pub chaos_churners: usize,
    /// Chaos: messages per second each member sends.
    pub chaos_rate: f64,
    /// Chaos: the presence TTL in seconds.
    pub chaos_ttl_secs: u64,
    /// Chaos: instances of each worker.
    pub chaos_instances: usize,
    /// Flood: seconds the flooder sends.
    pub flood_secs: f64,
    /// Rooms: rooms made (each a stream).
    pub rooms: usize,
    /// Rooms: sessions making them, each joining its share one after another.
    pub rooms_sessions: usize,
}

impl Sizes {
    /// The full run: the sizes the issue asks for.
    pub fn full() -> Self {
        Self {
            publish_messages: 50_000,
            text_chars: 100,
            fanout_rooms: 4,
            fanout_members: 25,
            fanout_rate: 1_000,
            fanout_secs: 20.0,
            presence_sessions: 1_000,
            presence_rooms: 10,
            join_concurrency: 1_000,
            users_requests: 500,
            crashed_sessions: 100,
            presence_ttl_secs: 30,
            history_messages: 100_000,
            idle_secs: 10.0,
            logins: 200,
            login_concurrency: 8,
            storm_clients: 1_000,
            overload_requests: 20_000,
            overload_clients: 4,
            chaos_secs: 600.0,
            chaos_members: 6,
            chaos_churners: 2,
            chaos_rate: 2.0,
            chaos_ttl_secs: 30,
            chaos_instances: 2,
            flood_secs: 5.0,
            rooms: 1_000,
            rooms_sessions: 20,
        }
    }

    /// `--quick`: everything small, a few seconds per scenario.
    pub fn quick() -> Self {
        Self {
            publish_messages: 2_000,
            text_chars: 100,
            fanout_rooms: 2,
            fanout_members: 4,
            fanout_rate: 200,
            fanout_secs: 2.0,
            presence_sessions: 40,
            presence_rooms: 4,
            join_concurrency: 40,
            users_requests: 50,
            crashed_sessions: 10,
            presence_ttl_secs: 2,
            history_messages: 3_000,
            idle_secs: 2.0,
            logins: 20,
            login_concurrency: 4,
            storm_clients: 100,
            overload_requests: 500,
            overload_clients: 2,
            chaos_secs: 40.0,
            chaos_members: 3,
            chaos_churners: 1,
            chaos_rate: 2.0,
            chaos_ttl_secs: 10,
            chaos_instances: 2,
            flood_secs: 1.0,
            rooms: 50,
            rooms_sessions: 5,
        }
    }

    /// Fan-out sending time.
    pub fn fanout_duration(&self) -> Duration {
        Duration::from_secs_f64(self.fanout_secs)
    }

    /// Flooding time.
    pub fn flood_duration(&self) -> Duration {
        Duration::from_secs_f64(self.flood_secs)
    }

    /// Idle measurement time.
    pub fn idle_duration(&self) -> Duration {
        Duration::from_secs_f64(self.idle_secs)
    }
}
