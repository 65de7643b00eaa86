//! What the chaos scenario counts, kept apart from the NATS work so that the counting
//! itself is unit-tested: messages acknowledged per sender, what every member
//! received (lost, duplicated, out of each sender's order), the joined/left events seen
//! for each presence transition, and the longest time a member saw no message.
//!
//! Messages are identified by their sender and a per-sender counter carried in the
//! text (`chaos <n>`), so nothing depends on stream sequences, which a retried publish
//! does not know in advance.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use chat_protocol::body::SystemKind;

/// The text of a sender's `n`-th message.
pub fn text(n: u64) -> String {
    format!("chaos {n}")
}

/// The counter of a text made by [`text`].
pub fn counter(text: &str) -> Option<u64> {
    text.strip_prefix("chaos ")?.parse().ok()
}

/// What one member received, in order of arrival.
#[derive(Debug, Default)]
pub struct Received {
    /// Per sender: the counters, in order of arrival.
    pub messages: BTreeMap<String, Vec<u64>>,
    /// Per user: the joined/left events, in order of arrival.
    pub presence: BTreeMap<String, Vec<SystemKind>>,
    /// Arrival of the previous live message.
    last_arrival: Option<Instant>,
    /// When the clock started.
    clock_start: Option<Instant>,
    /// The longest gap between two live messages (from when counting started).
    pub longest_silence: Duration,
    /// When that gap began, from the clock's start.
    pub silence_from: Duration,
}

impl Received {
    /// A message from `sender` with counter `n` arrived now.
    pub fn message(&mut self, sender: &str, n: u64, now: Instant) {
        self.messages.entry(sender.to_string()).or_default().push(n);
        self.gap_until(now);
        if self.last_arrival.is_some() {
            self.last_arrival = Some(now);
        }
    }

    /// Counts the gap from the previous message (or the clock's start) to `now`.
    fn gap_until(&mut self, now: Instant) {
        if let (Some(last), Some(start)) = (self.last_arrival, self.clock_start) {
            let gap = now.duration_since(last);
            if gap > self.longest_silence {
                self.longest_silence = gap;
                self.silence_from = last.duration_since(start);
            }
        }
    }

    /// A joined or left event about `user`.
    pub fn presence(&mut self, user: &str, kind: SystemKind) {
        self.presence
            .entry(user.to_string())
            .or_default()
            .push(kind);
    }

    /// Starts measuring silences from `now` (the chaos begins).
    pub fn start_clock(&mut self, now: Instant) {
        self.last_arrival = Some(now);
        self.clock_start = Some(now);
        self.longest_silence = Duration::ZERO;
        self.silence_from = Duration::ZERO;
    }

    /// Stops measuring silences at `now`: the gap up to now counts too.
    pub fn stop_clock(&mut self, now: Instant) {
        self.gap_until(now);
        self.last_arrival = None;
    }
}

/// Message delivery, summed over every (member, sender) pair.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Acknowledged messages (each counted once, whoever receives it).
    pub acknowledged: u64,
    /// (member, acknowledged message) pairs never received.
    pub lost: u64,
    /// Deliveries of a message the member had already received.
    pub duplicated: u64,
    /// Deliveries arriving after a later message of the same sender.
    pub reordered: u64,
    /// Senders with at least one reordered delivery at some member.
    pub senders_reordered: BTreeSet<String>,
}

/// Checks what `members` received against what each sender had acknowledged
/// (`acked`: sender → counters). Every member is expected to receive every
/// acknowledged message of every other sender and its own, exactly once, in
/// counter order per sender. Unacknowledged messages that arrive anyway (stored, but
/// the ack was lost and the publisher gave up) are not errors.
pub fn delivery(acked: &BTreeMap<String, BTreeSet<u64>>, members: &[&Received]) -> Delivery {
    let mut out = Delivery {
        acknowledged: acked.values().map(|a| a.len() as u64).sum(),
        ..Delivery::default()
    };
    for member in members {
        for (sender, sent) in acked {
            let got = member
                .messages
                .get(sender)
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            let mut seen = BTreeSet::new();
            let mut highest = None;
            for &n in got {
                if !seen.insert(n) {
                    out.duplicated += 1;
                    continue;
                }
                if highest.is_some_and(|h| n < h) {
                    out.reordered += 1;
                    out.senders_reordered.insert(sender.clone());
                }
                highest = highest.max(Some(n));
            }
            out.lost += sent.difference(&seen).count() as u64;
        }
    }
    out
}

/// Joined/left events against the transitions that happened.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Transitions {
    /// Transitions made (each a leave or a join of a churning member).
    pub made: u64,
    /// (observer, transition) pairs seen with exactly one matching event.
    pub exactly_once: u64,
    /// (observer, transition) pairs seen with no event.
    pub missing: u64,
    /// Events beyond one per transition, including any about a member who never
    /// left (a node or worker failure must not make anyone leave).
    pub extra: u64,
    /// Each user whose events differ from its transitions at some observer: what was
    /// seen there against what happened (the first observer's view of each).
    pub mismatches: BTreeMap<String, String>,
}

/// Compares each observer's joined/left events with `made`: user → the transitions
/// that user went through, in order. An observer is expected to see, for each user,
/// exactly that sequence; users without transitions must have no event.
pub fn transitions(
    made: &BTreeMap<String, Vec<SystemKind>>,
    observers: &[&Received],
) -> Transitions {
    let mut out = Transitions {
        made: made.values().map(|t| t.len() as u64).sum(),
        ..Transitions::default()
    };
    for observer in observers {
        for (user, expected) in made {
            let seen = observer
                .presence
                .get(user)
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            let matched = matched(expected, seen);
            out.exactly_once += matched;
            out.missing += expected.len() as u64 - matched;
            out.extra += seen.len() as u64 - matched;
            if seen != expected.as_slice() {
                out.mismatches
                    .entry(user.clone())
                    .or_insert_with(|| format!("seen {seen:?} for {expected:?}"));
            }
        }
        for (user, seen) in &observer.presence {
            if !made.contains_key(user) {
                out.extra += seen.len() as u64;
                out.mismatches
                    .entry(user.clone())
                    .or_insert_with(|| format!("seen {seen:?}, never left"));
            }
        }
    }
    out
}

/// How many of `expected` are matched, in order, by `seen` (longest common
/// subsequence of the two: a missing or a doubled event costs one match).
fn matched(expected: &[SystemKind], seen: &[SystemKind]) -> u64 {
    let mut table = vec![vec![0u64; seen.len() + 1]; expected.len() + 1];
    for (i, e) in expected.iter().enumerate() {
        for (j, s) in seen.iter().enumerate() {
            table[i + 1][j + 1] = if e == s {
                table[i][j] + 1
            } else {
                table[i][j + 1].max(table[i + 1][j])
            };
        }
    }
    table[expected.len()][seen.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use SystemKind::{Joined, Left};

    fn acked(pairs: &[(&str, &[u64])]) -> BTreeMap<String, BTreeSet<u64>> {
        pairs
            .iter()
            .map(|(s, ns)| (s.to_string(), ns.iter().copied().collect()))
            .collect()
    }

    fn got(messages: &[(&str, &[u64])]) -> Received {
        let mut r = Received::default();
        let now = Instant::now();
        for (sender, ns) in messages {
            for &n in *ns {
                r.message(sender, n, now);
            }
        }
        r
    }

    #[test]
    fn texts_carry_their_counter() {
        assert_eq!(counter(&text(42)), Some(42));
        assert_eq!(counter("hello"), None);
    }

    #[test]
    fn counts_lost_duplicated_and_reordered_deliveries() {
        let sent = acked(&[("ann", &[1, 2, 3]), ("bob", &[1, 2])]);
        let perfect = got(&[("ann", &[1, 2, 3]), ("bob", &[1, 2])]);
        let bad = got(&[("ann", &[1, 3, 2, 3]), ("bob", &[2, 4])]);
        let d = delivery(&sent, &[&perfect, &bad]);
        assert_eq!(d.acknowledged, 5);
        assert_eq!(d.lost, 1, "bob's 1 never reached the second member");
        assert_eq!(d.duplicated, 1);
        assert_eq!(d.reordered, 1);
        assert_eq!(d.senders_reordered, BTreeSet::from(["ann".to_string()]));
        let d = delivery(&sent, &[&perfect]);
        assert_eq!((d.lost, d.duplicated, d.reordered), (0, 0, 0));
    }

    #[test]
    fn counts_events_per_transition() {
        let made = BTreeMap::from([("cy".to_string(), vec![Left, Joined, Left, Joined])]);
        let mut exact = Received::default();
        for kind in [Left, Joined, Left, Joined] {
            exact.presence("cy", kind);
        }
        let t = transitions(&made, &[&exact]);
        assert_eq!((t.made, t.exactly_once, t.missing, t.extra), (4, 4, 0, 0));
        assert!(t.mismatches.is_empty());

        let mut off = Received::default();
        for kind in [Left, Left, Joined, Joined] {
            off.presence("cy", kind);
        }
        // A node failure made a member who never left leave and join.
        off.presence("ann", Left);
        off.presence("ann", Joined);
        let t = transitions(&made, &[&off]);
        assert_eq!(t.exactly_once, 3);
        assert_eq!(t.missing, 1);
        assert_eq!(t.extra, 1 + 2);
        assert_eq!(t.mismatches.len(), 2, "{:?}", t.mismatches);
    }

    #[test]
    fn measures_the_longest_silence_within_the_clock() {
        let start = Instant::now();
        let mut r = Received::default();
        r.message("ann", 1, start);
        r.start_clock(start + Duration::from_secs(10));
        r.message("ann", 2, start + Duration::from_secs(11));
        r.message("ann", 3, start + Duration::from_secs(15));
        r.stop_clock(start + Duration::from_secs(16));
        assert_eq!(r.longest_silence, Duration::from_secs(4));
        assert_eq!(
            r.silence_from,
            Duration::from_secs(1),
            "from 11 s, the clock started at 10 s"
        );
        r.message("ann", 4, start + Duration::from_secs(30));
        assert_eq!(
            r.longest_silence,
            Duration::from_secs(4),
            "after the clock stopped"
        );
    }
}
