//! The rate allowance as pure logic: a token bucket per user ([`Bucket`]) and the
//! bounded table of them that every instance keeps from the messages it sees
//! ([`Tracker`]), plus [`excess`], the same bucket replayed over stored messages to
//! decide which of them went beyond the allowance.
//!
//! Time is passed in (seconds as `f64`, any origin), so all of it is tested without
//! a clock.

use std::collections::HashMap;

use chat_protocol::body::Rate;
use chat_protocol::{RoomName, UserName};

/// A token bucket: full at `burst`, refilled at `per_second`, one token per message.
#[derive(Debug, Clone, PartialEq)]
pub struct Bucket {
    tokens: f64,
    at: f64,
}

impl Bucket {
    /// A full bucket at time `now`.
    pub fn full(rate: &Rate, now: f64) -> Self {
        Self {
            tokens: f64::from(rate.burst),
            at: now,
        }
    }

    /// Takes one message at `now`: true if the allowance had room for it.
    pub fn take(&mut self, rate: &Rate, now: f64) -> bool {
        self.refill(rate, now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Whether the bucket is full again at `now` (the user can be forgotten).
    pub fn is_full(&self, rate: &Rate, now: f64) -> bool {
        let mut probe = self.clone();
        probe.refill(rate, now);
        probe.tokens >= f64::from(rate.burst)
    }

    fn refill(&mut self, rate: &Rate, now: f64) {
        if now > self.at {
            self.tokens =
                (self.tokens + (now - self.at) * rate.per_second).min(f64::from(rate.burst));
            self.at = now;
        }
    }
}

/// Rooms remembered per user: where the excess of a flood is looked for. A user
/// spreading a flood over more rooms has the rest of it left in place (still muted).
pub const MAX_ROOMS_PER_USER: usize = 16;

/// One tracked user.
#[derive(Debug)]
struct Entry {
    bucket: Bucket,
    rooms: Vec<RoomName>,
    /// Crossing already reported until then: one report per flood, not one per message.
    quiet_until: f64,
}

/// A user who just went over the allowance, and the rooms they recently wrote to.
#[derive(Debug, Clone, PartialEq)]
pub struct Crossing {
    /// Who.
    pub user: UserName,
    /// Where they recently wrote (at most [`MAX_ROOMS_PER_USER`]).
    pub rooms: Vec<RoomName>,
}

/// The buckets of the users seen lately, bounded in number: a user whose bucket is
/// full again is forgotten by [`Tracker::prune`], and at most `capacity` users are
/// tracked at once (beyond that, new users are not counted until some are pruned,
/// with a warning: memory stays bounded whatever the traffic).
#[derive(Debug)]
pub struct Tracker {
    rate: Rate,
    capacity: usize,
    /// How long after a crossing the same user is not reported again.
    quiet: f64,
    users: HashMap<UserName, Entry>,
}

impl Tracker {
    /// An empty tracker enforcing `rate` for at most `capacity` users at once.
    pub fn new(rate: Rate, capacity: usize, quiet_secs: f64) -> Self {
        Self {
            rate,
            capacity,
            quiet: quiet_secs,
            users: HashMap::new(),
        }
    }

    /// Counts one message of `user` in `room` at `now`; a [`Crossing`] when it goes
    /// over the allowance (once per `quiet` period). `None` too when the table is full.
    pub fn count(&mut self, user: &UserName, room: &RoomName, now: f64) -> Option<Crossing> {
        if !self.users.contains_key(user) {
            if self.users.len() >= self.capacity {
                self.prune(now);
                if self.users.len() >= self.capacity {
                    return None;
                }
            }
            self.users.insert(
                user.clone(),
                Entry {
                    bucket: Bucket::full(&self.rate, now),
                    rooms: Vec::new(),
                    quiet_until: f64::MIN,
                },
            );
        }
        let entry = self.users.get_mut(user).expect("inserted above");
        if !entry.rooms.contains(room) {
            if entry.rooms.len() == MAX_ROOMS_PER_USER {
                entry.rooms.remove(0);
            }
            entry.rooms.push(room.clone());
        }
        if entry.bucket.take(&self.rate, now) || now < entry.quiet_until {
            return None;
        }
        entry.quiet_until = now + self.quiet;
        Some(Crossing {
            user: user.clone(),
            rooms: entry.rooms.clone(),
        })
    }

    /// Forgets the users whose bucket is full again at `now` and who are not in a
    /// quiet period.
    pub fn prune(&mut self, now: f64) {
        let rate = self.rate;
        self.users
            .retain(|_, e| now < e.quiet_until || !e.bucket.is_full(&rate, now));
    }

    /// Users tracked now.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether nobody is tracked.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

/// Which of a user's stored messages went beyond the allowance: `messages` are
/// `(time, sequence)` pairs of every room (any order), replayed oldest first through a
/// bucket that is full at `since`; the sequences it refuses are returned, by room
/// index, in `messages`' grouping. Deterministic: every instance finds the same.
pub fn excess(rate: &Rate, since: f64, messages: &[(usize, f64, u64)]) -> Vec<(usize, u64)> {
    let mut ordered: Vec<&(usize, f64, u64)> = messages.iter().collect();
    ordered.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)).then(a.2.cmp(&b.2)));
    let mut bucket = Bucket::full(rate, since);
    ordered
        .into_iter()
        .filter(|(_, time, _)| !bucket.take(rate, *time))
        .map(|(room, _, seq)| (*room, *seq))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate() -> Rate {
        Rate {
            burst: 20,
            per_second: 5.0,
        }
    }
    fn user(s: &str) -> UserName {
        UserName::new(s).unwrap()
    }
    fn room(s: &str) -> RoomName {
        RoomName::new(s).unwrap()
    }

    #[test]
    fn burst_then_rate() {
        let mut b = Bucket::full(&rate(), 0.0);
        assert!((0..20).all(|_| b.take(&rate(), 0.0)));
        assert!(!b.take(&rate(), 0.0));
        assert!(b.take(&rate(), 0.2));
        assert!(!b.take(&rate(), 0.2));
        assert!(!b.is_full(&rate(), 1.0));
        assert!(b.is_full(&rate(), 4.2));
    }

    #[test]
    fn five_per_second_forever_is_fine() {
        let mut t = Tracker::new(rate(), 10, 2.0);
        for i in 0..10_000 {
            assert_eq!(
                t.count(&user("bob"), &room("general"), i as f64 * 0.2),
                None
            );
        }
    }

    #[test]
    fn a_flood_is_reported_once_per_quiet_period() {
        let mut t = Tracker::new(rate(), 10, 2.0);
        let crossings: Vec<_> = (0..1000)
            .filter_map(|_| t.count(&user("eve"), &room("general"), 1.0))
            .collect();
        assert_eq!(
            crossings,
            vec![Crossing {
                user: user("eve"),
                rooms: vec![room("general")]
            }]
        );
        // After the quiet period, refilled (12.5 tokens), then over again: reported
        // once more, with both rooms.
        let again: Vec<_> = (0..20)
            .filter_map(|_| t.count(&user("eve"), &room("random"), 3.5))
            .collect();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].rooms, vec![room("general"), room("random")]);
    }

    #[test]
    fn the_table_stays_bounded() {
        let mut t = Tracker::new(rate(), 2, 2.0);
        t.count(&user("a"), &room("r"), 0.0);
        t.count(&user("b"), &room("r"), 0.0);
        t.count(&user("c"), &room("r"), 0.0);
        assert_eq!(t.len(), 2);
        // Once a and b are full again, c is counted.
        t.count(&user("c"), &room("r"), 10.0);
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn excess_replays_the_bucket_over_stored_times() {
        // 30 at once in room 0, then 1 in room 1 a second later (5 tokens back).
        let mut stored: Vec<(usize, f64, u64)> = (1..=30).map(|s| (0, 0.5, s)).collect();
        stored.push((1, 1.5, 7));
        let out = excess(&rate(), 0.0, &stored);
        assert_eq!(out, (21..=30).map(|s| (0, s)).collect::<Vec<_>>());
    }
}
