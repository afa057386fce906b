//! Deadlock detection over the counting locks: a wait-for graph built from
//! the thread registry.
//!
//! Nodes are threads; thread `A` has an edge to thread `B` when `A` waits for
//! a lock that `B` blocks: `B` holds it exclusively, or `A` wants to write and
//! `B` holds a read, or `A` wants to read and `B` waits to write (parking_lot
//! makes new readers queue behind a waiting writer). A cycle is a deadlock.
//!
//! The graph is read without stopping the threads, so one reading may mix
//! moments. A cycle is therefore only reported if a second reading, taken
//! right after, shows every edge of it again with the same waits (each wait
//! carries a per-thread sequence number): a real deadlock does not move,
//! while a passing wait ends or changes its sequence number.
//!
//! Safety of the reading: a wait record points to the lock's metadata; the
//! waiting thread borrows the lock for the whole wait and clears the record
//! under the record's mutex before returning, and the detector dereferences
//! the pointer only while holding that mutex.

use crate::lock_meta::LockMeta;
use crate::thread::{self, WaitMode};
use parking_lot::{Mutex, RwLock};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// One edge of a deadlock cycle: a thread, the lock it waits for, and the
/// thread that blocks it (the next edge's thread).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WaitEdge {
    /// The waiting thread's id (see [`crate::current_thread_id`]).
    pub thread_id: u64,
    /// The waiting thread's name (`thread-<id>` for unnamed threads).
    pub thread_name: String,
    /// The id of the lock waited for.
    pub lock_id: u64,
    /// The name of the lock waited for.
    pub lock_name: String,
    /// How the thread waits (lock, read or write).
    pub mode: WaitMode,
    /// The id of the thread that blocks it.
    pub blocked_by_id: u64,
    /// The name of that thread.
    pub blocked_by_name: String,
    /// How long the thread had waited when the cycle was found.
    pub waited: Duration,
    seq: u64,
}

/// A wait-for cycle: each thread waits for a lock that the next one blocks,
/// and the last one waits for the first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadlockReport {
    /// The cycle, starting with the thread of smallest id.
    pub cycle: Vec<WaitEdge>,
    /// True if some thread held more read locks than are tracked, so other
    /// cycles may have gone unseen.
    pub incomplete: bool,
}

impl DeadlockReport {
    /// True if the thread with id `thread_id` is part of the cycle.
    pub fn involves_thread(&self, thread_id: u64) -> bool {
        self.cycle.iter().any(|e| e.thread_id == thread_id)
    }

    /// True if a lock named `name` is part of the cycle.
    pub fn involves_lock(&self, name: &str) -> bool {
        self.cycle.iter().any(|e| e.lock_name == name)
    }

    /// The names of the locks in the cycle, in cycle order.
    pub fn lock_names(&self) -> Vec<&str> {
        self.cycle.iter().map(|e| e.lock_name.as_str()).collect()
    }

    /// The names of the threads in the cycle, in cycle order.
    pub fn thread_names(&self) -> Vec<&str> {
        self.cycle.iter().map(|e| e.thread_name.as_str()).collect()
    }

    /// Identifies this cycle among all waits of the process.
    fn signature(&self) -> Signature {
        let mut key: Vec<_> = self.cycle.iter().map(|e| (e.thread_id, e.seq)).collect();
        key.sort_unstable();
        key
    }
}

impl fmt::Display for DeadlockReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "deadlock: {} thread(s) wait for each other: ",
            self.cycle.len()
        )?;
        for (i, e) in self.cycle.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            let what = match e.mode {
                WaitMode::Lock => "lock",
                WaitMode::Read => "read-lock",
                WaitMode::Write => "write-lock",
            };
            write!(
                f,
                "thread {:?} (id {}) waits {:.0?} to {what} {:?} (lock id {}), blocked by thread {:?} (id {})",
                e.thread_name,
                e.thread_id,
                e.waited,
                e.lock_name,
                e.lock_id,
                e.blocked_by_name,
                e.blocked_by_id
            )?;
        }
        if self.incomplete {
            f.write_str(" (read holds beyond tracking capacity: other cycles may be missing)")?;
        }
        Ok(())
    }
}

/// What one thread waits for, as read from its record.
#[derive(Clone)]
struct WaitView {
    seq: u64,
    lock_id: u64,
    lock_name: String,
    mode: WaitMode,
    since: Instant,
    owner: u64,
}

/// One reading of the wait-for graph.
struct Snapshot {
    names: HashMap<u64, String>,
    waits: HashMap<u64, WaitView>,
    readers: HashMap<u64, Vec<u64>>,
    incomplete: bool,
}

impl Snapshot {
    fn take() -> Self {
        let threads = thread::all_threads();
        let mut snapshot = Snapshot {
            names: HashMap::new(),
            waits: HashMap::new(),
            readers: HashMap::new(),
            incomplete: false,
        };
        for t in &threads {
            snapshot.names.insert(t.id, t.name.clone());
            let (held, incomplete) = t.held_shared.snapshot();
            snapshot.incomplete |= incomplete;
            for lock_id in held {
                snapshot.readers.entry(lock_id).or_default().push(t.id);
            }
        }
        for t in &threads {
            let wait = t.wait.lock();
            if let Some(w) = wait.as_ref() {
                // SAFETY: the record is set, so its thread is still inside the
                // wait and keeps the lock alive; it cannot clear the record
                // while we hold `t.wait` (see the module documentation).
                let meta = unsafe { &*w.lock };
                snapshot.waits.insert(
                    t.id,
                    WaitView {
                        seq: w.seq,
                        lock_id: meta.id,
                        lock_name: meta.name.to_string(),
                        mode: w.mode,
                        since: w.since,
                        owner: meta.owner.load(Ordering::Relaxed),
                    },
                );
            }
        }
        snapshot
    }

    /// The threads that block `waiter`.
    fn blockers(&self, waiter: u64) -> Vec<u64> {
        let Some(w) = self.waits.get(&waiter) else {
            return Vec::new();
        };
        let mut blockers = Vec::new();
        if w.owner != 0 {
            blockers.push(w.owner);
        }
        match w.mode {
            WaitMode::Lock => {}
            WaitMode::Write => blockers.extend(self.readers.get(&w.lock_id).into_iter().flatten()),
            WaitMode::Read => blockers.extend(
                self.waits
                    .iter()
                    .filter(|&(&t, o)| {
                        t != waiter && o.lock_id == w.lock_id && o.mode == WaitMode::Write
                    })
                    .map(|(&t, _)| t),
            ),
        }
        blockers.sort_unstable();
        blockers.dedup();
        blockers
    }

    /// Elementary cycles found by depth-first search (one per back edge),
    /// each rotated to start at its smallest thread id, without duplicates.
    fn cycles(&self) -> Vec<Vec<u64>> {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            OnStack,
            Done,
        }
        let mut starts: Vec<u64> = self.waits.keys().copied().collect();
        starts.sort_unstable();
        let mut mark: HashMap<u64, Mark> = starts.iter().map(|&t| (t, Mark::New)).collect();
        let mut found = HashSet::new();
        let mut cycles = Vec::new();
        for &start in &starts {
            if mark[&start] != Mark::New {
                continue;
            }
            // Iterative DFS: (node, its blockers, next blocker to visit).
            let mut stack: Vec<(u64, Vec<u64>, usize)> = vec![(start, self.blockers(start), 0)];
            mark.insert(start, Mark::OnStack);
            while let Some((node, next_nodes, next)) = stack.last_mut() {
                if *next == next_nodes.len() {
                    mark.insert(*node, Mark::Done);
                    stack.pop();
                    continue;
                }
                let to = next_nodes[*next];
                *next += 1;
                match mark.get(&to).copied() {
                    Some(Mark::New) => {
                        mark.insert(to, Mark::OnStack);
                        let blockers = self.blockers(to);
                        stack.push((to, blockers, 0));
                    }
                    Some(Mark::OnStack) => {
                        let from = stack
                            .iter()
                            .position(|(n, _, _)| *n == to)
                            .expect("on stack");
                        let mut cycle: Vec<u64> =
                            stack[from..].iter().map(|(n, _, _)| *n).collect();
                        let min = (0..cycle.len()).min_by_key(|&i| cycle[i]).unwrap_or(0);
                        cycle.rotate_left(min);
                        if found.insert(cycle.clone()) {
                            cycles.push(cycle);
                        }
                    }
                    // Done, or a thread that waits for nothing: no cycle there.
                    _ => {}
                }
            }
        }
        cycles
    }

    /// True if every edge of `cycle` is present here with the waits of `earlier`.
    fn confirms(&self, earlier: &Snapshot, cycle: &[u64]) -> bool {
        cycle.iter().enumerate().all(|(i, t)| {
            let next = cycle[(i + 1) % cycle.len()];
            match (self.waits.get(t), earlier.waits.get(t)) {
                (Some(now), Some(before)) => {
                    now.seq == before.seq && self.blockers(*t).contains(&next)
                }
                _ => false,
            }
        })
    }

    fn report(&self, cycle: &[u64], now: Instant) -> DeadlockReport {
        let name = |t: &u64| {
            self.names
                .get(t)
                .cloned()
                .unwrap_or_else(|| format!("thread-{t}"))
        };
        let edges = cycle
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let w = &self.waits[t];
                let next = cycle[(i + 1) % cycle.len()];
                WaitEdge {
                    thread_id: *t,
                    thread_name: name(t),
                    lock_id: w.lock_id,
                    lock_name: w.lock_name.clone(),
                    mode: w.mode,
                    blocked_by_id: next,
                    blocked_by_name: name(&next),
                    waited: now.saturating_duration_since(w.since),
                    seq: w.seq,
                }
            })
            .collect();
        DeadlockReport {
            cycle: edges,
            incomplete: self.incomplete,
        }
    }
}

/// Looks for wait-for cycles among the threads blocked in counting locks
/// now, and returns one report per cycle found (empty: no deadlock). Safe to
/// call from any thread at any time; it takes the registry's and each
/// thread's record mutex briefly, never a counting lock.
pub fn detect_deadlocks() -> Vec<DeadlockReport> {
    // Under ThreadSanitizer the snapshots' reads of other threads' records
    // are not recorded: those records are freed by whichever thread drops
    // the last reference, ordered by the `Arc`'s count, which TSan does
    // not see. No code of the program runs in here.
    let _untracked = thread_support::tsan::Untracked::begin();
    let first = Snapshot::take();
    let candidates = first.cycles();
    if candidates.is_empty() {
        return Vec::new();
    }
    let second = Snapshot::take();
    let now = Instant::now();
    candidates
        .iter()
        .filter(|c| second.confirms(&first, c))
        .map(|c| second.report(c, now))
        .collect()
}

/// The first confirmed cycle that contains thread `thread_id`.
pub(crate) fn cycle_through(thread_id: u64) -> Option<DeadlockReport> {
    detect_deadlocks()
        .into_iter()
        .find(|r| r.involves_thread(thread_id))
}

/// The report for a thread that waits for a lock it blocks itself.
pub(crate) fn self_wait(meta: &LockMeta, me: u64, mode: WaitMode) -> DeadlockReport {
    let name = thread::with_current(|r| r.name.clone()).unwrap_or_else(|| format!("thread-{me}"));
    DeadlockReport {
        cycle: vec![WaitEdge {
            thread_id: me,
            thread_name: name.clone(),
            lock_id: meta.id,
            lock_name: meta.name.to_string(),
            mode,
            blocked_by_id: me,
            blocked_by_name: name,
            waited: Duration::ZERO,
            seq: 0,
        }],
        incomplete: false,
    }
}

type Handler = Arc<dyn Fn(&DeadlockReport) + Send + Sync>;

static HANDLER: RwLock<Option<Handler>> = RwLock::new(None);
/// A cycle's identity: its (thread id, wait sequence) pairs, sorted.
type Signature = Vec<(u64, u64)>;

static REPORTED: Mutex<Option<HashSet<Signature>>> = Mutex::new(None);
static REPORT_COUNT: AtomicU64 = AtomicU64::new(0);
/// Signatures remembered to report each cycle once; forgotten past this many.
const REMEMBERED_CYCLES: usize = 1024;

/// Sets the function that receives each deadlock found by a blocked
/// thread's automatic check (once per cycle, on the thread that found it).
/// Without a handler, reports go to standard error.
pub fn set_deadlock_handler(handler: impl Fn(&DeadlockReport) + Send + Sync + 'static) {
    *HANDLER.write() = Some(Arc::new(handler));
}

/// Restores the default handler (standard error).
pub fn clear_deadlock_handler() {
    *HANDLER.write() = None;
}

/// The number of distinct cycles reported by the automatic check so far.
pub fn deadlocks_reported() -> u64 {
    REPORT_COUNT.load(Ordering::Relaxed)
}

/// Hands `report` to the handler unless this cycle was reported already.
pub(crate) fn report(report: DeadlockReport) {
    {
        let mut reported = REPORTED.lock();
        let seen = reported.get_or_insert_with(HashSet::new);
        if seen.len() >= REMEMBERED_CYCLES {
            seen.clear();
        }
        if !seen.insert(report.signature()) {
            return;
        }
    }
    REPORT_COUNT.fetch_add(1, Ordering::Relaxed);
    let handler = HANDLER.read().clone();
    match handler {
        Some(handler) => handler(&report),
        None => eprintln!("sync-stats: {report}"),
    }
}
