//! The periodic scheduler: fixed intervals, priorities, no stacking (skip
//! policy), never on the caller, and the inline fallback.

use pool_manager::{Error, Role, Runtime, RuntimeConfig};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::sleep;
use std::time::{Duration, Instant};

fn runtime(background: usize) -> Runtime {
    let mut c = RuntimeConfig::for_cores(2);
    for role in Role::ALL {
        c.pool_mut(role).threads = Some(0);
    }
    c.pool_mut(Role::Background).threads = Some(background);
    Runtime::new(c).unwrap()
}

#[test]
fn a_periodic_task_runs_at_its_interval() {
    let rt = runtime(1);
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    let id = rt
        .scheduler()
        .add("tick", Duration::from_millis(20), 0, move || {
            r.fetch_add(1, Ordering::Relaxed);
        })
        .unwrap();
    sleep(Duration::from_millis(230));
    let n = runs.load(Ordering::Relaxed);
    // At most one run per grid point (11 of them); at least a few on a loaded machine.
    assert!((3..=11).contains(&n), "{n} runs in 230 ms at 20 ms");
    let stats = rt.scheduler().stats(id).unwrap();
    assert_eq!(stats.name, "tick");
    assert!(stats.runs >= n as u64 && stats.failures == 0);
    assert!(rt.scheduler().remove(id));
    assert!(!rt.scheduler().remove(id));
    sleep(Duration::from_millis(30));
    let after = runs.load(Ordering::Relaxed);
    sleep(Duration::from_millis(60));
    assert_eq!(
        runs.load(Ordering::Relaxed),
        after,
        "a removed task no longer runs"
    );
}

#[test]
fn a_slow_periodic_task_never_stacks_up_and_skips_missed_runs() {
    let rt = runtime(2);
    let running = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let (r, m) = (running.clone(), most.clone());
    let id = rt
        .scheduler()
        .add("slow", Duration::from_millis(10), 0, move || {
            let now = r.fetch_add(1, Ordering::SeqCst) + 1;
            m.fetch_max(now, Ordering::SeqCst);
            sleep(Duration::from_millis(35));
            r.fetch_sub(1, Ordering::SeqCst);
        })
        .unwrap();
    let start = Instant::now();
    // The frame loop goes on undisturbed: polling never runs or waits for
    // the 35 ms task (it would then manage about 11 polls, not hundreds).
    let mut polls = Vec::new();
    while start.elapsed() < Duration::from_millis(400) {
        let t = Instant::now();
        assert_eq!(
            rt.scheduler().run_due(),
            0,
            "with background threads, nothing runs on the caller"
        );
        polls.push(t.elapsed());
        sleep(Duration::from_millis(1));
    }
    polls.sort();
    let median_poll = polls[polls.len() / 2];
    let stats = rt.scheduler().stats(id).unwrap();
    assert_eq!(most.load(Ordering::SeqCst), 1, "two runs overlapped");
    assert!(stats.runs <= 12, "{stats:?}");
    assert!(stats.runs >= 3, "{stats:?}");
    assert!(
        stats.skipped >= stats.runs,
        "each 35 ms run skips 3 ticks of 10 ms: {stats:?}"
    );
    assert!(stats.max_run >= Duration::from_millis(35));
    assert!(polls.len() >= 50, "only {} polls in 400 ms", polls.len());
    assert!(
        median_poll < Duration::from_millis(1),
        "run_due took {median_poll:?}"
    );
}

#[test]
fn due_tasks_run_by_priority() {
    let rt = runtime(1);
    let order = Arc::new(Mutex::new(Vec::new()));
    // Keep the only worker busy until all three are due.
    let blocker = rt
        .pool(Role::Background)
        .submit(|| sleep(Duration::from_millis(80)))
        .unwrap();
    for (name, priority) in [("low", -5), ("high", 10), ("mid", 0)] {
        let o = order.clone();
        rt.scheduler()
            .add(name, Duration::from_millis(20), priority, move || {
                o.lock().unwrap().push(name)
            })
            .unwrap();
    }
    blocker.wait().unwrap();
    let start = Instant::now();
    while order.lock().unwrap().len() < 3 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{:?}",
            order.lock().unwrap()
        );
        sleep(Duration::from_millis(2));
    }
    let order = order.lock().unwrap().clone();
    assert_eq!(order[..3], ["high", "mid", "low"]);
}

#[test]
fn the_plan_schedule_uses_the_plan_intervals_and_priorities() {
    let rt = runtime(1);
    let ids = rt
        .scheduler()
        .add_plan_schedule(|| {}, || {}, || {})
        .unwrap();
    let list = rt.scheduler().list();
    let got: Vec<(String, Duration, i32)> = list
        .iter()
        .map(|s| (s.name.clone(), s.interval, s.priority))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "monitoring".into(),
                Duration::from_secs(1),
                pool_manager::PRIORITY_HIGH
            ),
            (
                "cleanup".into(),
                Duration::from_secs(5),
                pool_manager::PRIORITY_NORMAL
            ),
            (
                "evaluation".into(),
                Duration::from_secs(10),
                pool_manager::PRIORITY_LOW
            ),
        ]
    );
    assert_eq!(
        ids.map(|id| rt.scheduler().stats(id).unwrap().runs),
        [0, 0, 0]
    );
}

#[test]
fn with_background_off_run_due_runs_due_tasks_inline() {
    let rt = runtime(0);
    assert!(!rt.scheduler().runs_by_itself());
    let ran_on = Arc::new(Mutex::new(Vec::new()));
    let r = ran_on.clone();
    rt.scheduler()
        .add("cleanup", Duration::from_millis(10), 0, move || {
            r.lock().unwrap().push(std::thread::current().id());
        })
        .unwrap();
    assert_eq!(rt.scheduler().run_due(), 0, "not due yet");
    sleep(Duration::from_millis(60));
    assert!(ran_on.lock().unwrap().is_empty(), "nothing runs by itself");
    assert_eq!(
        rt.scheduler().run_due(),
        1,
        "one run, however many ticks passed"
    );
    assert_eq!(*ran_on.lock().unwrap(), vec![std::thread::current().id()]);
    assert_eq!(rt.scheduler().run_due(), 0);
}

#[test]
fn failing_and_panicking_periodic_tasks_are_counted_and_keep_running() {
    let rt = runtime(1);
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let id = rt
        .scheduler()
        .add_fallible("flaky", Duration::from_millis(10), 0, move || {
            match c.fetch_add(1, Ordering::Relaxed) % 3 {
                0 => Err("no memory".into()),
                1 => panic!("evaluation crashed"),
                _ => Ok(()),
            }
        })
        .unwrap();
    // Printing a panic (with a backtrace) can take long on a loaded machine.
    let start = Instant::now();
    while rt.scheduler().stats(id).unwrap().runs < 4 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{:?}",
            rt.scheduler().stats(id)
        );
        sleep(Duration::from_millis(5));
    }
    let stats = rt.scheduler().stats(id).unwrap();
    assert!(
        stats.failures >= 2 && stats.failures < stats.runs,
        "{stats:?}"
    );
    assert!(rt.pool(Role::Background).snapshot().workers_replaced >= 1);
}

#[test]
fn bad_intervals_and_a_shut_down_scheduler_are_refused() {
    let rt = runtime(1);
    assert!(matches!(
        rt.scheduler().add("zero", Duration::ZERO, 0, || {}),
        Err(Error::InvalidArgument(_))
    ));
    rt.shutdown(pool_manager::DrainPolicy::Finish, Duration::from_secs(1));
    assert_eq!(
        rt.scheduler().add("late", Duration::from_secs(1), 0, || {}),
        Err(Error::Shutdown)
    );
}
