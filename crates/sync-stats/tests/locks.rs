//! Counting locks and deadlock detection, through the public API.
#![cfg(not(loom))]

use std::sync::{Arc, Barrier, Mutex as StdMutex, Once};
use std::thread;
use std::time::{Duration, Instant};
use sync_stats::*;

/// Reports from the automatic check, collected for the tests that look for
/// them (tests run in parallel, so each filters by its own lock names).
static REPORTS: StdMutex<Vec<DeadlockReport>> = StdMutex::new(Vec::new());

fn collect_reports() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        configure(&SyncConfig {
            deadlock_check: Some(Duration::from_millis(30)),
        });
        set_deadlock_handler(|r| REPORTS.lock().unwrap().push(r.clone()));
    });
}

fn reports_with_lock(name: &str) -> Vec<DeadlockReport> {
    REPORTS
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.involves_lock(name))
        .cloned()
        .collect()
}

#[test]
fn uncontended_locks_count_acquisitions_but_no_contention() {
    let m = CountingMutex::new("uncontended", 0u32);
    for _ in 0..100 {
        *m.lock() += 1;
    }
    assert!(m.try_lock().is_some());
    let s = m.stats();
    assert_eq!(
        (s.acquisitions, s.contended, s.wait),
        (101, 0, Duration::ZERO)
    );
    assert_eq!(s.contention_rate(), 0.0);
    assert_eq!(m.into_inner(), 100);
}

#[test]
fn a_held_lock_makes_the_next_acquisition_contended_with_its_wait() {
    let m = Arc::new(CountingMutex::new("contended", ()));
    let held = m.lock();
    let m2 = m.clone();
    let waiter = thread::spawn(move || {
        let start = Instant::now();
        drop(m2.lock());
        start.elapsed()
    });
    thread::sleep(Duration::from_millis(50));
    drop(held);
    let waited = waiter.join().unwrap();
    let s = m.stats();
    assert_eq!((s.acquisitions, s.contended), (2, 1));
    assert!(s.wait >= Duration::from_millis(40), "wait {:?}", s.wait);
    assert!(
        s.wait <= waited,
        "counted wait {:?} exceeds the real {:?}",
        s.wait,
        waited
    );
    assert_eq!(s.contention_rate(), 0.5);
}

/// Holds `hold` on this thread while another thread runs `wait` (which
/// must block on the lock), releases it after 50 ms, and returns what
/// `wait` returned.
fn after_a_contended_wait<H, R: Send>(hold: H, wait: impl FnOnce() -> R + Send) -> R {
    thread::scope(|s| {
        let waiter = s.spawn(wait);
        thread::sleep(Duration::from_millis(50));
        drop(hold);
        waiter.join().unwrap()
    })
}

#[test]
fn every_lock_kind_counts_a_contended_acquisition_and_publishes_its_hold() {
    // After a wait, each kind of hold is counted with its wait and is seen
    // by the deadlock checks: asking again for a hold the thread itself
    // blocks fails at once.
    let at_once = Duration::from_secs(10);
    let m = CountingMutex::new("contended-mutex", ());
    let rw = CountingRwLock::new("contended-rw", ());
    let relock = after_a_contended_wait(m.lock(), || {
        let _held = m.lock();
        m.lock_checked(at_once).err()
    });
    let reread = after_a_contended_wait(rw.write(), || {
        let _held = rw.write();
        rw.read_checked(at_once).err()
    });
    let rewrite = after_a_contended_wait(rw.write(), || {
        let _held = rw.read();
        rw.write_checked(at_once).err()
    });
    for (kind, error) in [("mutex", relock), ("write", reread), ("read", rewrite)] {
        assert!(
            matches!(error, Some(LockError::Deadlock(_))),
            "the {kind} hold after a wait is published: {error:?}"
        );
    }
    for s in [m.stats(), rw.stats()] {
        assert!(s.contended >= 1, "{s:?}");
        assert!(s.wait >= Duration::from_millis(40), "{s:?}");
    }
    assert_eq!(m.stats().acquisitions, 2);
    assert_eq!((rw.stats().acquisitions, rw.stats().contended), (4, 2));
}

#[test]
fn many_threads_hammering_one_mutex_count_every_acquisition() {
    let m = CountingMutex::new("hammer", 0u64);
    let threads = 4;
    let rounds = 20_000;
    thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                for _ in 0..rounds {
                    *m.lock() += 1;
                }
            });
        }
    });
    let s = m.stats();
    assert_eq!(*m.lock(), threads * rounds);
    assert_eq!(s.acquisitions, threads * rounds);
    assert!(s.contended <= s.acquisitions);
}

#[test]
fn global_stats_include_dropped_locks() {
    let before = global_lock_stats();
    {
        let m = CountingMutex::new("short-lived", ());
        for _ in 0..10 {
            drop(m.lock());
        }
        let rw = CountingRwLock::new("short-lived-rw", ());
        drop(rw.read());
        drop(rw.write());
    }
    let delta = global_lock_stats().since(&before);
    // Other tests lock concurrently, so at least ours.
    assert!(delta.acquisitions >= 12, "{delta:?}");
    assert!(delta.contended <= delta.acquisitions);
}

#[test]
fn timed_lock_times_out_while_another_thread_holds_it() {
    let m = Arc::new(CountingMutex::new("timed", ()));
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let m2 = m.clone();
    let holder = thread::spawn(move || {
        let _g = m2.lock();
        locked_tx.send(()).unwrap();
        release_rx.recv().unwrap();
    });
    locked_rx.recv().unwrap();
    assert!(m.is_locked() && !m.is_held_by_current_thread());
    let start = Instant::now();
    assert!(m.try_lock_for(Duration::from_millis(30)).is_none());
    assert!(start.elapsed() >= Duration::from_millis(30));
    assert_eq!(
        m.lock_checked(Duration::from_millis(10)).err(),
        Some(LockError::Timeout)
    );
    release_tx.send(()).unwrap();
    holder.join().unwrap();
    assert!(m.try_lock_for(Duration::from_secs(5)).is_some());
    assert_eq!(
        m.stats().acquisitions,
        2,
        "failed attempts are not acquisitions"
    );
}

#[test]
fn relocking_a_held_mutex_is_reported_as_a_self_deadlock() {
    let m = CountingMutex::new("self-lock", ());
    let _g = m.lock();
    assert!(m.is_held_by_current_thread());
    match m.lock_checked(Duration::from_secs(10)) {
        Err(LockError::Deadlock(r)) => {
            assert_eq!(r.cycle.len(), 1);
            assert_eq!(r.cycle[0].thread_id, current_thread_id());
            assert_eq!(r.lock_names(), ["self-lock"]);
        }
        other => panic!("expected a self-deadlock, got {:?}", other.map(|_| ())),
    }
    let start = Instant::now();
    assert!(m.try_lock_for(Duration::from_secs(10)).is_none());
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "a certain self-deadlock must not wait"
    );
}

#[test]
fn relocking_a_held_mutex_with_lock_panics_instead_of_hanging() {
    let m = CountingMutex::new("self-lock-panic", ());
    let _g = m.lock();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(m.lock())));
    let message = *result.unwrap_err().downcast::<String>().unwrap();
    assert!(
        message.contains("self-lock-panic") && message.contains("deadlock"),
        "{message}"
    );
}

#[test]
fn writing_while_holding_a_read_is_a_self_deadlock() {
    let rw = CountingRwLock::new("read-then-write", 1);
    let r = rw.read();
    assert!(matches!(
        rw.write_checked(Duration::from_secs(10)),
        Err(LockError::Deadlock(_))
    ));
    drop(r);
    *rw.write() += 1;
    assert_eq!(*rw.read(), 2);
}

#[test]
fn rwlock_readers_share_and_writers_exclude() {
    let rw = CountingRwLock::new("rw", 0u64);
    {
        let a = rw.read();
        let b = rw.try_read().expect("readers share");
        assert!(rw.try_write().is_none(), "a writer waits for readers");
        assert_eq!(*a + *b, 0);
    }
    thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for i in 0..5_000 {
                    if i % 10 == 0 {
                        *rw.write() += 1;
                    } else {
                        assert!(*rw.read() <= 2_000);
                    }
                }
            });
        }
    });
    assert_eq!(*rw.read(), 2_000);
    let s = rw.stats();
    assert_eq!(s.acquisitions, 2 + 20_000 + 1);
}

/// Two threads take two locks in opposite orders. Returns the outcome of
/// each thread's second acquisition (the one that closes the cycle).
fn opposite_order_deadlock(
    names: (&str, &str),
    second: impl Fn(&CountingMutex<()>) -> Result<(), LockError> + Send + Sync + Copy + 'static,
) -> [Result<(), LockError>; 2] {
    let a = Arc::new(CountingMutex::new(names.0, ()));
    let b = Arc::new(CountingMutex::new(names.1, ()));
    let barrier = Arc::new(Barrier::new(2));
    let spawn = |first: Arc<CountingMutex<()>>, other: Arc<CountingMutex<()>>, name: String| {
        let barrier = barrier.clone();
        thread::Builder::new()
            .name(name)
            .spawn(move || {
                let _held = first.lock();
                barrier.wait();
                second(&other)
            })
            .unwrap()
    };
    let t1 = spawn(a.clone(), b.clone(), format!("{}-taker", names.0));
    let t2 = spawn(b, a, format!("{}-taker", names.1));
    [t1.join().unwrap(), t2.join().unwrap()]
}

#[test]
fn a_two_lock_deadlock_is_found_and_broken_by_lock_checked() {
    let outcomes = opposite_order_deadlock(("dl-left", "dl-right"), |m| {
        m.lock_checked(Duration::from_secs(20)).map(drop)
    });
    let reports: Vec<_> = outcomes
        .iter()
        .filter_map(|o| match o {
            Err(LockError::Deadlock(r)) => Some(r.clone()),
            _ => None,
        })
        .collect();
    assert!(
        !reports.is_empty(),
        "no thread saw the deadlock: {outcomes:?}"
    );
    for r in &reports {
        assert_eq!(r.cycle.len(), 2, "{r}");
        let mut locks = r.lock_names();
        locks.sort_unstable();
        assert_eq!(locks, ["dl-left", "dl-right"]);
        let mut threads = r.thread_names();
        threads.sort_unstable();
        assert_eq!(threads, ["dl-left-taker", "dl-right-taker"]);
        // Each thread is blocked by the other one.
        assert_eq!(r.cycle[0].blocked_by_id, r.cycle[1].thread_id);
        assert_eq!(r.cycle[1].blocked_by_id, r.cycle[0].thread_id);
        let text = r.to_string();
        assert!(
            text.contains("dl-left-taker") && text.contains("\"dl-right\""),
            "{text}"
        );
    }
    // Whoever did not give up got its lock once the other backed off.
    for o in &outcomes {
        assert!(matches!(o, Ok(()) | Err(LockError::Deadlock(_))), "{o:?}");
    }
}

#[test]
fn detect_deadlocks_on_demand_names_the_stuck_threads_and_locks() {
    collect_reports();
    let watcher = thread::spawn(|| {
        // Poll while the two threads below are stuck in timed waits.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let found: Vec<_> = detect_deadlocks()
                .into_iter()
                .filter(|r| r.involves_lock("od-first"))
                .collect();
            if !found.is_empty() || Instant::now() > deadline {
                return found;
            }
            thread::sleep(Duration::from_millis(5));
        }
    });
    let outcomes = opposite_order_deadlock(("od-first", "od-second"), |m| {
        m.try_lock_for(Duration::from_millis(1500))
            .map(drop)
            .ok_or(LockError::Timeout)
    });
    let found = watcher.join().unwrap();
    assert_eq!(found.len(), 1, "expected one cycle, got {found:?}");
    let mut locks = found[0].lock_names();
    locks.sort_unstable();
    assert_eq!(locks, ["od-first", "od-second"]);
    assert!(
        found[0]
            .cycle
            .iter()
            .all(|e| e.thread_name.ends_with("-taker"))
    );
    // Both gave up by timeout at the same time, or one got the lock after
    // the other timed out: never both deadlocked forever.
    assert!(outcomes.iter().any(|o| o.is_err()), "{outcomes:?}");
    assert!(
        detect_deadlocks()
            .iter()
            .all(|r| !r.involves_lock("od-first")),
        "the cycle is gone"
    );
}

#[test]
fn a_thread_blocked_in_lock_reports_the_cycle_to_the_handler_once() {
    collect_reports();
    let before = deadlocks_reported();
    // One side waits in `lock` (reports, keeps waiting); the other in a
    // timed lock that gives up, which then unblocks the first.
    let a = Arc::new(CountingMutex::new("auto-a", ()));
    let b = Arc::new(CountingMutex::new("auto-b", ()));
    let barrier = Arc::new(Barrier::new(2));
    let (a1, b1, bar1) = (a.clone(), b.clone(), barrier.clone());
    let blocking = thread::spawn(move || {
        let _a = a1.lock();
        bar1.wait();
        drop(b1.lock());
    });
    let timed = thread::spawn(move || {
        let _b = b.lock();
        barrier.wait();
        a.try_lock_for(Duration::from_millis(600)).is_some()
    });
    assert!(
        !timed.join().unwrap(),
        "the timed side cannot get its lock while the cycle stands"
    );
    blocking.join().unwrap();
    let reports = reports_with_lock("auto-a");
    assert_eq!(reports.len(), 1, "one cycle, reported once: {reports:?}");
    assert!(reports[0].involves_lock("auto-b"));
    assert!(deadlocks_reported() > before);
}

#[test]
fn a_read_write_cycle_through_read_holds_is_found() {
    // T1 holds a read of R and waits to write W; T2 holds a write of W and
    // waits to write R, which T1's read blocks.
    let r = Arc::new(CountingRwLock::new("rw-cycle-r", ()));
    let w = Arc::new(CountingRwLock::new("rw-cycle-w", ()));
    let barrier = Arc::new(Barrier::new(2));
    let (r1, w1, bar1) = (r.clone(), w.clone(), barrier.clone());
    let t1 = thread::spawn(move || {
        let _read = r1.read();
        bar1.wait();
        w1.write_checked(Duration::from_secs(20)).map(drop)
    });
    let t2 = thread::spawn(move || {
        let _write = w.write();
        barrier.wait();
        r.write_checked(Duration::from_secs(20)).map(drop)
    });
    let outcomes = [t1.join().unwrap(), t2.join().unwrap()];
    let report = outcomes
        .iter()
        .find_map(|o| match o {
            Err(LockError::Deadlock(r)) => Some(r.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no deadlock found: {outcomes:?}"));
    assert!(
        report.involves_lock("rw-cycle-r") && report.involves_lock("rw-cycle-w"),
        "{report}"
    );
    assert!(report.cycle.iter().all(|e| e.mode == WaitMode::Write));
}

#[test]
fn passing_contention_is_never_reported_as_a_deadlock() {
    collect_reports();
    // Contention with waits longer than the 30 ms check period (each holder
    // keeps lock 2 for 15 ms while three others queue), but no cycle.
    let locks: Vec<_> = (0..3)
        .map(|i| CountingMutex::new(format!("no-cycle-{i}"), 0u64))
        .collect();
    thread::scope(|s| {
        for t in 0..4 {
            let locks = &locks;
            s.spawn(move || {
                for i in 0..10 {
                    // Always in index order: no cycle is possible.
                    let first = (t + i) % 2;
                    let _g0 = locks[first].lock();
                    let _g1 = locks[2].lock();
                    thread::sleep(Duration::from_millis(15));
                }
            });
        }
        for _ in 0..20 {
            assert!(
                detect_deadlocks()
                    .iter()
                    .all(|r| !r.involves_lock("no-cycle-2"))
            );
            thread::sleep(Duration::from_millis(5));
        }
    });
    assert!(reports_with_lock("no-cycle-2").is_empty());
    assert!(
        locks[2].stats().contended > 0,
        "the test must actually contend"
    );
}

/// One attempt of the recursive-read scenario: the report of the cycle if
/// one side saw it, `None` if the writer had not queued in time (the read
/// then simply succeeds, and there is no cycle to find).
fn recursive_read_behind_a_queued_writer() -> Option<sync_stats::DeadlockReport> {
    // R holds a read; W queues for the write (parking_lot then blocks new
    // readers); R reads again: R waits for W, which waits for R.
    let rw = Arc::new(CountingRwLock::new("recursive-read", ()));
    let (queued_tx, queued_rx) = std::sync::mpsc::channel();
    let held = rw.read();
    let rw2 = rw.clone();
    let writer = thread::Builder::new()
        .name("queued-writer".into())
        .spawn(move || {
            queued_tx.send(()).unwrap();
            rw2.write_checked(Duration::from_secs(20)).map(drop)
        })
        .unwrap();
    queued_rx.recv().unwrap();
    // Wait until the writer is really parked (a new try_read then fails).
    let deadline = Instant::now() + Duration::from_secs(10);
    while rw.try_read().is_some() {
        assert!(Instant::now() < deadline, "the writer never queued");
        thread::sleep(Duration::from_millis(1));
    }
    let again = rw.read_checked(Duration::from_secs(20));
    let mine = match again {
        Err(LockError::Deadlock(r)) => Some(r),
        Ok(guard) => {
            drop(guard);
            None
        }
        Err(e) => panic!("{e}"),
    };
    drop(held);
    let theirs = writer.join().unwrap();
    mine.or(match theirs {
        Err(LockError::Deadlock(r)) => Some(r),
        _ => None,
    })
}

#[test]
fn a_recursive_read_behind_a_queued_writer_is_found() {
    // The writer's queueing is observed from outside (a failing try_read),
    // which can race on a loaded machine: try a few times.
    let report = (0..5)
        .find_map(|_| recursive_read_behind_a_queued_writer())
        .expect("one side must see the cycle");
    assert_eq!(report.cycle.len(), 2, "{report}");
    assert!(
        report
            .cycle
            .iter()
            .any(|e| e.mode == WaitMode::Read && e.blocked_by_name == "queued-writer"),
        "{report}"
    );
}
