//! Group commit of a room's joined/left events: when many people arrive at once,
//! members get one event naming several users instead of one event each.
//!
//! Every transition is still decided and claimed one user at a time, by
//! compare-and-set on that user's outbox entry ([`crate::announce`]); what is shared
//! is the publish. A reconcile that is about to claim a transition first
//! [`Batcher::enter`]s the room's open batch, writes its claim naming the batch, and
//! reports it (or withdraws when its claim lost a race). Batches of a room are
//! committed one after the other: while one is being stored, the next one collects
//! the transitions that arrive meanwhile, closes to newcomers once the previous
//! commit is done, and is committed as soon as everyone who entered it has reported.
//! A room's commits also start at least [`Batcher::new`]'s `gap` apart: a join in a
//! quiet room is committed at once (as one plain event), and everything arriving
//! within the gap after a commit began waits for the gap's end and shares the next
//! commit. So a busy room's members get at most one presence event per gap, however
//! many people arrive, and a burst makes batches as large as the gap (or the time one
//! commit takes, if longer).
//!
//! This is an instance's own bookkeeping, in memory; what makes the result exactly
//! once whatever instance dies is the batch record the commit writes before it
//! publishes ([`crate::announce`]).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chat_protocol::body::SystemEvent;
use chat_protocol::RoomName;
use futures::future::BoxFuture;
use tokio::sync::watch;

/// Most transitions in one batch: its record and events stay far below the server's
/// payload limit (a user name is at most 32 bytes).
pub(crate) const MAX_BATCH: usize = 1000;

/// How a batch's commit ended, for everyone who claimed a transition in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Every claimed transition is stored in the room stream.
    Published,
    /// The batch will not be published as a whole (another instance settled one of
    /// its users first, or it is too old): each participant publishes its own event.
    Aborted,
    /// Storing failed; the claims stay in the outbox and a later reconcile finishes
    /// them.
    Failed(String),
}

/// What commits a batch: its id, room, the claimed events in the order they were
/// reported, and when it opened.
pub(crate) type Commit =
    Box<dyn Fn(Arc<Batch>, Vec<SystemEvent>) -> BoxFuture<'static, Outcome> + Send + Sync>;

/// One batch of a room.
pub(crate) struct Batch {
    /// Unique id: the batch record's key and the prefix of its events' ids.
    pub id: String,
    /// Its room.
    pub room: RoomName,
    /// When the first transition entered it.
    pub opened: Instant,
    members: Mutex<Members>,
    outcome: watch::Sender<Option<Outcome>>,
}

#[derive(Default)]
struct Members {
    entered: usize,
    reported: usize,
    claimed: Vec<SystemEvent>,
}

impl Batch {
    fn new(room: &RoomName) -> Arc<Self> {
        Arc::new(Self {
            id: uuid::Uuid::new_v4().simple().to_string(),
            room: room.clone(),
            opened: Instant::now(),
            members: Mutex::new(Members::default()),
            outcome: watch::channel(None).0,
        })
    }

    fn members(&self) -> std::sync::MutexGuard<'_, Members> {
        self.members.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until the batch is committed (or failed).
    pub async fn outcome(&self) -> Outcome {
        let mut outcome = self.outcome.subscribe();
        let done = outcome.wait_for(Option::is_some).await;
        match done {
            Ok(outcome) => outcome.clone().unwrap_or(Outcome::Aborted),
            Err(_) => Outcome::Failed("the batch was dropped".into()),
        }
    }
}

/// A room's batches: the open one, those closed and waiting for their last claims,
/// and the one being committed; when its last commit started, and whether a wake-up
/// at the end of the gap after it is due.
#[derive(Default)]
struct Queue {
    open: Option<Arc<Batch>>,
    closed: VecDeque<Arc<Batch>>,
    committing: Option<Arc<Batch>>,
    last_commit: Option<Instant>,
    waking: bool,
}

impl Queue {
    fn find(&self, id: &str) -> Option<Arc<Batch>> {
        self.open
            .iter()
            .chain(self.closed.iter())
            .chain(self.committing.iter())
            .find(|b| b.id == id)
            .cloned()
    }
}

/// The batches of every room with transitions in flight on this instance.
pub(crate) struct Batcher {
    rooms: Mutex<HashMap<RoomName, Queue>>,
    commit: Commit,
    gap: Duration,
}

/// A place in a batch, held while claiming. Dropped without a report (an error, a
/// lost race), it withdraws.
pub(crate) struct Ticket {
    batcher: Arc<Batcher>,
    batch: Arc<Batch>,
    reported: bool,
}

impl Ticket {
    /// The batch's id, written with the claim.
    pub fn batch(&self) -> &str {
        &self.batch.id
    }

    /// The claim of `event` is written: waits for the batch's commit.
    pub async fn claimed(mut self, event: SystemEvent) -> Outcome {
        self.reported = true;
        let batch = self.batch.clone();
        self.batcher.report(&batch, Some(event));
        batch.outcome().await
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if !self.reported {
            self.batcher.report(&self.batch, None);
        }
    }
}

impl Batcher {
    /// A batcher whose batches are stored by `commit` (spawned as its own task, so
    /// that no participant's cancellation can strand the others), a room's commits
    /// starting at least `gap` apart.
    pub fn new(commit: Commit, gap: Duration) -> Arc<Self> {
        Arc::new(Self {
            rooms: Mutex::new(HashMap::new()),
            commit,
            gap,
        })
    }

    fn rooms(&self) -> std::sync::MutexGuard<'_, HashMap<RoomName, Queue>> {
        self.rooms.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a place in `room`'s open batch.
    pub fn enter(self: &Arc<Self>, room: &RoomName) -> Ticket {
        let mut rooms = self.rooms();
        let queue = rooms.entry(room.clone()).or_default();
        let batch = queue.open.get_or_insert_with(|| Batch::new(room)).clone();
        let full = {
            let mut members = batch.members();
            members.entered += 1;
            members.entered >= MAX_BATCH
        };
        if full {
            queue.closed.extend(queue.open.take());
        }
        Ticket {
            batcher: self.clone(),
            batch,
            reported: false,
        }
    }

    /// Whether batch `id` of `room` is still in this instance's hands: then waits
    /// for its commit and returns true.
    pub async fn wait_local(&self, room: &RoomName, id: &str) -> bool {
        let batch = self.rooms().get(room).and_then(|queue| queue.find(id));
        match batch {
            Some(batch) => {
                batch.outcome().await;
                true
            }
            None => false,
        }
    }

    fn report(self: &Arc<Self>, batch: &Arc<Batch>, event: Option<SystemEvent>) {
        {
            let mut members = batch.members();
            members.reported += 1;
            members.claimed.extend(event);
        }
        self.advance(&batch.room);
    }

    /// Closes the open batch once it has a claim, nothing else is waiting and the
    /// gap after the room's last commit is over, and commits the oldest closed batch
    /// once all its claims are in and no commit runs.
    fn advance(self: &Arc<Self>, room: &RoomName) {
        let ready = {
            let mut rooms = self.rooms();
            let Some(queue) = rooms.get_mut(room) else {
                return;
            };
            if queue.committing.is_some() {
                return;
            }
            let gap_ends = queue.last_commit.map(|at| at + self.gap);
            if let Some(end) = gap_ends.filter(|end| *end > Instant::now()) {
                // Too soon after the room's last commit: whatever arrives until the
                // gap ends joins the open batch. The wake-up also forgets an idle room.
                if !queue.waking {
                    queue.waking = true;
                    let (this, room) = (self.clone(), room.clone());
                    tokio::spawn(async move {
                        tokio::time::sleep_until(end.into()).await;
                        if let Some(queue) = this.rooms().get_mut(&room) {
                            queue.waking = false;
                        }
                        this.advance(&room);
                    });
                }
                return;
            }
            let has_claims = |b: &Arc<Batch>| b.members().reported > 0;
            if queue.closed.is_empty() && queue.open.as_ref().is_some_and(has_claims) {
                queue.closed.extend(queue.open.take());
            }
            let complete = |b: &Arc<Batch>| {
                let m = b.members();
                m.reported == m.entered
            };
            if queue.closed.front().is_some_and(complete) {
                queue.committing = queue.closed.pop_front();
                queue.last_commit = Some(Instant::now());
            }
            if queue.open.is_none() && queue.closed.is_empty() && queue.committing.is_none() {
                rooms.remove(room);
                return;
            }
            queue.committing.clone()
        };
        let Some(batch) = ready else { return };
        let claimed = std::mem::take(&mut batch.members().claimed);
        let commit = (self.commit)(batch.clone(), claimed);
        let this = self.clone();
        tokio::spawn(async move {
            let outcome = commit.await;
            batch.outcome.send_replace(Some(outcome));
            if let Some(queue) = this.rooms().get_mut(&batch.room) {
                queue.committing = None;
            }
            this.advance(&batch.room);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_protocol::body::{Reason, SystemKind};
    use chat_protocol::UserName;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn event(user: &str) -> SystemEvent {
        SystemEvent {
            v: 1,
            kind: SystemKind::Joined,
            id: user.into(),
            room: RoomName::new("general").unwrap(),
            user: UserName::new(user).unwrap(),
            reason: Reason::Join,
            users: 1,
            ts: None,
            detail: Default::default(),
        }
    }

    /// The users of each commit, in commit order.
    type Commits = Arc<Mutex<Vec<Vec<String>>>>;

    /// A batcher whose commits take a while and record what they got, a room's
    /// commits starting `gap` apart.
    fn recording(gap: Duration) -> (Arc<Batcher>, Commits) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let commits = seen.clone();
        let commit: Commit = Box::new(move |_, claimed: Vec<SystemEvent>| {
            let commits = commits.clone();
            Box::pin(async move {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                let users = claimed.iter().map(|e| e.user.to_string()).collect();
                commits.lock().unwrap().push(users);
                Outcome::Published
            })
        });
        (Batcher::new(commit, gap), seen)
    }

    #[tokio::test]
    async fn a_lone_claim_is_committed_at_once() {
        let (batcher, seen) = recording(Duration::ZERO);
        let room = RoomName::new("general").unwrap();
        let ticket = batcher.enter(&room);
        assert_eq!(ticket.claimed(event("alice")).await, Outcome::Published);
        assert_eq!(*seen.lock().unwrap(), vec![vec!["alice".to_string()]]);
        assert!(batcher.rooms().is_empty(), "an idle room is forgotten");
    }

    #[tokio::test]
    async fn claims_arriving_during_a_commit_share_the_next_one() {
        let (batcher, seen) = recording(Duration::ZERO);
        let room = RoomName::new("general").unwrap();
        let first = batcher.enter(&room);
        let first = tokio::spawn(first.claimed(event("alice")));
        tokio::task::yield_now().await;
        let withdrawn = batcher.enter(&room);
        let others: Vec<_> = (0..5)
            .map(|i| tokio::spawn(batcher.enter(&room).claimed(event(&format!("u{i}")))))
            .collect();
        drop(withdrawn);
        assert_eq!(first.await.unwrap(), Outcome::Published);
        for other in others {
            assert_eq!(other.await.unwrap(), Outcome::Published);
        }
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert_eq!(seen[0], vec!["alice"]);
        assert_eq!(seen[1].len(), 5);
    }

    #[tokio::test]
    async fn a_batch_waits_for_everyone_who_entered() {
        let count = Arc::new(AtomicUsize::new(0));
        let counted = count.clone();
        let batcher = Batcher::new(
            Box::new(move |_, claimed: Vec<SystemEvent>| {
                counted.fetch_add(claimed.len(), Ordering::SeqCst);
                Box::pin(async { Outcome::Published })
            }),
            Duration::ZERO,
        );
        let room = RoomName::new("general").unwrap();
        let slow = batcher.enter(&room);
        let fast = tokio::spawn(batcher.enter(&room).claimed(event("bob")));
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(!fast.is_finished(), "committed before every claim was in");
        let id = slow.batch().to_string();
        assert_eq!(slow.claimed(event("carol")).await, Outcome::Published);
        assert_eq!(fast.await.unwrap(), Outcome::Published);
        assert_eq!(count.load(Ordering::SeqCst), 2);
        assert!(
            !batcher.wait_local(&room, &id).await,
            "a committed batch is forgotten"
        );
    }

    #[tokio::test]
    async fn claims_within_the_gap_after_a_commit_share_the_next_one() {
        let gap = Duration::from_millis(300);
        let (batcher, seen) = recording(gap);
        let room = RoomName::new("general").unwrap();
        let started = Instant::now();
        assert_eq!(
            batcher.enter(&room).claimed(event("alice")).await,
            Outcome::Published,
            "a join in a quiet room is committed at once"
        );
        // Each waits for its commit: without the gap, the first would be committed
        // alone as soon as it is claimed.
        let later: Vec<_> = (0..3)
            .map(|i| tokio::spawn(batcher.enter(&room).claimed(event(&format!("u{i}")))))
            .collect();
        for one in later {
            assert_eq!(one.await.unwrap(), Outcome::Published);
        }
        assert!(
            started.elapsed() >= gap,
            "the second commit came before the gap ended"
        );
        let seen = seen.lock().unwrap().clone();
        assert_eq!(
            seen,
            vec![
                vec!["alice".to_string()],
                vec!["u0".into(), "u1".into(), "u2".into()]
            ]
        );
        tokio::time::sleep(gap).await;
        assert!(
            batcher.rooms().is_empty(),
            "a room idle for the gap is forgotten"
        );
    }
}
