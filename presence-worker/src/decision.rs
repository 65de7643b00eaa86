//! The exactly-once joined/left decision, as pure functions: state in, decision out.
//! [`crate::announce::Announcer::reconcile`] reads the state (the outbox entry, the
//! user's sessions), asks here what to do, and does it.

use chat_protocol::body::{Reason, SystemKind};

use crate::listing::Removal;
use crate::outbox::AnnouncedState;

/// What prompted a decision about a user: the write to the sessions bucket (or the
/// sweep) that may have changed whether they are online.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prompt {
    /// A join, or a heartbeat that registered an expired session again.
    Join,
    /// A leave (the session's key was purged).
    Leave,
    /// A session expired (its TTL ran out), or the start-up sweep found the announced
    /// state out of line with the sessions.
    Expiry,
}

impl From<Removal> for Prompt {
    /// A removed session's key prompts a leave decision; an expired one, an expiry.
    fn from(removal: Removal) -> Self {
        match removal {
            Removal::Removed => Prompt::Leave,
            Removal::Expired => Prompt::Expiry,
        }
    }
}

/// What to announce for a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// What was announced still holds: nothing to publish (the entry is still written
    /// back, so that a concurrent decision from an older listing loses its race).
    Unchanged,
    /// A transition: publish this event.
    Announce {
        /// `joined` or `left`.
        kind: SystemKind,
        /// Why.
        reason: Reason,
    },
}

/// Decides from what was announced and whether the user has a live session now.
///
/// A `joined` always says `join`. A `left` says `leave` when a leave prompted it and
/// `timeout` otherwise: after an expiry, and also after a join or heartbeat whose
/// session was gone again by the time the decision read the sessions (it expired or
/// was purged in between; the user did not ask to leave).
pub fn decide(announced: &AnnouncedState, online: bool, prompt: Prompt) -> Decision {
    match (announced.online, online) {
        (false, true) => Decision::Announce {
            kind: SystemKind::Joined,
            reason: Reason::Join,
        },
        (true, false) => Decision::Announce {
            kind: SystemKind::Left,
            reason: match prompt {
                Prompt::Leave => Reason::Leave,
                Prompt::Join | Prompt::Expiry => Reason::Timeout,
            },
        },
        _ => Decision::Unchanged,
    }
}

/// How far (a stream sequence of the sessions bucket) a decision about a user must
/// know the sessions; `None`: every write acknowledged so far. That is the prompting
/// write (`written`) and what the decision recorded in `state` knew; a state written
/// before `listed_through` existed requires everything. A state never written
/// (`revision` 0) requires nothing more than the prompting write: no decision was made
/// yet, and the first one is made by creating the entry, which only one worker can do.
pub fn must_know_through(
    state: &AnnouncedState,
    revision: u64,
    written: Option<u64>,
) -> Option<u64> {
    if revision == 0 {
        return written;
    }
    Some(state.listed_through?.max(written?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(online: bool, listed_through: Option<u64>) -> AnnouncedState {
        AnnouncedState {
            online,
            pending: None,
            listed_through,
            batch: None,
        }
    }

    #[test]
    fn a_removal_prompts_a_leave_or_an_expiry() {
        assert_eq!(Prompt::from(Removal::Removed), Prompt::Leave);
        assert_eq!(Prompt::from(Removal::Expired), Prompt::Expiry);
    }

    #[test]
    fn a_transition_is_announced_once_and_says_why() {
        let offline = state(false, None);
        let online = state(true, None);
        for prompt in [Prompt::Join, Prompt::Leave, Prompt::Expiry] {
            assert_eq!(
                decide(&offline, true, prompt),
                Decision::Announce {
                    kind: SystemKind::Joined,
                    reason: Reason::Join
                }
            );
            assert_eq!(decide(&online, true, prompt), Decision::Unchanged);
            assert_eq!(decide(&offline, false, prompt), Decision::Unchanged);
        }
        let left = |reason| Decision::Announce {
            kind: SystemKind::Left,
            reason,
        };
        assert_eq!(decide(&online, false, Prompt::Leave), left(Reason::Leave));
        assert_eq!(
            decide(&online, false, Prompt::Expiry),
            left(Reason::Timeout)
        );
        // A join whose session is gone again by the time of the decision.
        assert_eq!(decide(&online, false, Prompt::Join), left(Reason::Timeout));
    }

    #[test]
    fn a_decision_knows_the_prompting_write_and_what_the_last_one_knew() {
        // Never decided: the prompting write is enough.
        assert_eq!(
            must_know_through(&AnnouncedState::default(), 0, Some(7)),
            Some(7)
        );
        assert_eq!(must_know_through(&AnnouncedState::default(), 0, None), None);
        // Decided before: never less than that decision knew.
        assert_eq!(
            must_know_through(&state(true, Some(9)), 3, Some(7)),
            Some(9)
        );
        assert_eq!(
            must_know_through(&state(true, Some(5)), 3, Some(7)),
            Some(7)
        );
        // No prompting write (the start-up sweep), or a state from before the
        // record: everything written so far.
        assert_eq!(must_know_through(&state(true, Some(9)), 3, None), None);
        assert_eq!(must_know_through(&state(true, None), 3, Some(7)), None);
    }
}
