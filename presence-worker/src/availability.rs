//! When the stack was last down, and the decision that keeps a short outage from
//! making everyone leave and join again.
//!
//! A session's TTL runs on the server's clock, also across an outage: after a restart
//! the server expires at once every session whose TTL ran out while it was down, even
//! though no client could heartbeat then. Announcing those expiries at once would
//! write `left` for everyone and, a heartbeat later, `joined` again. So the workers
//! keep a clock in their outbox bucket: every instance writes a beat every
//! [`beat_every`] of the TTL, and a beat that finds the previous one too old records
//! the gap as the latest [`Outage`]. [`judge_expiry`] then decides, from the state
//! alone: an expiry that happened during an outage shorter than the TTL (with one
//! heartbeat interval and a restart's worth of slack, since the gap is measured
//! between beats) waits until a full TTL after the stack came back, so that the
//! reconnected client's next heartbeat registers the session again and the user
//! never stops being announced online; an expiry after a longer outage, or outside
//! any outage, is announced at once (a longer outage gives exactly one left/joined
//! pair per user).

use std::time::Duration;

use async_nats::jetstream::kv;
use chat_protocol::body::rfc3339;
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

/// Key of the clock in the outbox bucket: it has no dot, so it is never a
/// `<room>.<user>` key.
pub const CLOCK_KEY: &str = "clock";

/// How much longer than the outage itself the gap between two beats may be: the
/// last beat came up to [`beat_every`] before it, and the first one after it waits
/// for the server's restart and a worker's start.
const RESTART_SLACK: Duration = Duration::from_secs(5);

/// How long after the stack is back its clients may take to heartbeat, beyond the
/// TTL: they reconnect with a backoff of up to 4 s, log in again, then heartbeat.
const RECONNECT_SLACK: Duration = Duration::from_secs(5);

/// The workers' clock: the latest beat and the latest outage seen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Clock {
    /// When a worker last wrote the clock.
    #[serde(with = "rfc3339")]
    pub beat: DateTime<Utc>,
    /// The latest stretch without any beat, if one was seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outage: Option<Outage>,
}

/// A stretch of time in which no worker could write a beat: the stack was down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outage {
    /// The last beat before it.
    #[serde(with = "rfc3339")]
    pub from: DateTime<Utc>,
    /// The first beat after it.
    #[serde(with = "rfc3339")]
    pub to: DateTime<Utc>,
}

/// What to do with a session's expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// Announce it now (a `left`, unless the user is online again).
    AnnounceNow,
    /// It happened during a short outage: look again at this time, by which the
    /// reconnected client has registered its session again.
    WaitUntil(DateTime<Utc>),
}

/// How often each worker writes a beat: a sixth of the TTL, between 250 ms and 5 s.
pub fn beat_every(ttl: Duration) -> Duration {
    (ttl / 6).clamp(Duration::from_millis(250), Duration::from_secs(5))
}

/// The clock a beat at `now` writes, given the one stored: the gap since the last
/// beat becomes the latest outage when it is longer than two beats and a second.
pub fn next_clock(stored: Option<&Clock>, now: DateTime<Utc>, every: Duration) -> Clock {
    let gap = every * 2 + Duration::from_secs(1);
    match stored {
        Some(stored) if (now - stored.beat).to_std().is_ok_and(|age| age > gap) => Clock {
            beat: now,
            outage: Some(Outage {
                from: stored.beat,
                to: now,
            }),
        },
        Some(stored) => Clock {
            beat: now,
            outage: stored.outage,
        },
        None => Clock {
            beat: now,
            outage: None,
        },
    }
}

/// Whether a session that expired at `expired_at` (the server's time of its expiry
/// marker) is announced now: see the module's documentation.
pub fn judge_expiry(
    expired_at: DateTime<Utc>,
    outage: Option<&Outage>,
    ttl: Duration,
    heartbeat: Duration,
) -> Expiry {
    let Some(outage) = outage else {
        return Expiry::AnnounceNow;
    };
    let during = expired_at >= outage.from && expired_at <= outage.to + delta(heartbeat);
    let short = outage.to - outage.from < delta(ttl + beat_every(ttl) + RESTART_SLACK);
    if during && short {
        Expiry::WaitUntil(outage.to + delta(ttl + RECONNECT_SLACK))
    } else {
        Expiry::AnnounceNow
    }
}

fn delta(duration: Duration) -> TimeDelta {
    TimeDelta::from_std(duration).unwrap_or(TimeDelta::MAX)
}

/// The clock as of now: the stored one, moved on by a beat at `now` (so that an
/// outage that just ended counts before any worker wrote its next beat).
pub(crate) async fn clock_now(store: &kv::Store, every: Duration) -> Result<Clock, kv::EntryError> {
    let stored = store
        .get(CLOCK_KEY)
        .await?
        .and_then(|value| serde_json::from_slice::<Clock>(&value).ok());
    Ok(next_clock(stored.as_ref(), Utc::now(), every))
}

/// Writes one beat.
pub(crate) async fn beat(store: &kv::Store, every: Duration) -> Result<(), async_nats::Error> {
    let clock = clock_now(store, every).await?;
    store
        .put(CLOCK_KEY, serde_json::to_vec(&clock)?.into())
        .await?;
    Ok(())
}

/// Writes a beat every `every` until dropped; a failed beat (NATS down) is logged and
/// the next one tried.
pub(crate) async fn beats(store: kv::Store, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if let Err(err) = beat(&store, every).await {
            tracing::debug!(%err, "cannot write the workers' clock");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(30);
    const HEARTBEAT: Duration = Duration::from_secs(10);

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
    }

    fn outage(from: i64, to: i64) -> Outage {
        Outage {
            from: at(from),
            to: at(to),
        }
    }

    #[test]
    fn a_gap_between_beats_is_an_outage() {
        let every = beat_every(TTL);
        assert_eq!(every, Duration::from_secs(5));
        let first = next_clock(None, at(0), every);
        assert_eq!(first.outage, None);
        let steady = next_clock(Some(&first), at(5), every);
        assert_eq!(steady.outage, None);
        let after = next_clock(Some(&steady), at(25), every);
        assert_eq!(after.outage, Some(outage(5, 25)));
        // Later beats keep the latest outage.
        assert_eq!(next_clock(Some(&after), at(30), every).outage, after.outage);
        assert_eq!(
            beat_every(Duration::from_secs(1)),
            Duration::from_millis(250)
        );
    }

    #[test]
    fn an_expiry_during_a_short_outage_waits_a_ttl_after_it() {
        let short = outage(0, 20);
        assert_eq!(
            judge_expiry(at(20), Some(&short), TTL, HEARTBEAT),
            Expiry::WaitUntil(at(55))
        );
        // The sweep of a worker that starts a little later judges the same.
        assert_eq!(
            judge_expiry(at(25), Some(&short), TTL, HEARTBEAT),
            Expiry::WaitUntil(at(55))
        );
        // Measured between beats, an outage of a TTL is still short.
        assert_eq!(
            judge_expiry(at(38), Some(&outage(0, 38)), TTL, HEARTBEAT),
            Expiry::WaitUntil(at(73))
        );
    }

    #[test]
    fn an_expiry_after_a_long_outage_or_none_is_announced_now() {
        let long = outage(0, 40);
        assert_eq!(
            judge_expiry(at(40), Some(&long), TTL, HEARTBEAT),
            Expiry::AnnounceNow
        );
        assert_eq!(
            judge_expiry(at(60), None, TTL, HEARTBEAT),
            Expiry::AnnounceNow
        );
        // Long after a short outage: an ordinary expiry.
        assert_eq!(
            judge_expiry(at(200), Some(&outage(0, 20)), TTL, HEARTBEAT),
            Expiry::AnnounceNow
        );
        // Before the outage: an ordinary expiry too.
        assert_eq!(
            judge_expiry(at(-5), Some(&outage(0, 20)), TTL, HEARTBEAT),
            Expiry::AnnounceNow
        );
    }

    #[test]
    fn the_clock_round_trips() {
        let clock = Clock {
            beat: at(3),
            outage: Some(outage(1, 2)),
        };
        let back: Clock = serde_json::from_slice(&serde_json::to_vec(&clock).unwrap()).unwrap();
        assert_eq!(back, clock);
    }
}
