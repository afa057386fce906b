//! Behaviour of the role pools: tasks, back-pressure, handles, inline
//! fallback, panics and recovery, health, shutdown, budget, resizing and the
//! balancer.

use pool_manager::{
    Backpressure, DrainPolicy, Role, Runtime, RuntimeConfig, SubmitError, SubmitOptions, TaskError,
    ThreadMove,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// A runtime with the given pool sizes (others off) and budget.
fn runtime(
    sizes: &[(Role, usize)],
    budget: usize,
    tweak: impl FnOnce(&mut RuntimeConfig),
) -> Runtime {
    let mut c = RuntimeConfig::for_cores(budget);
    for role in Role::ALL {
        c.pool_mut(role).threads = Some(0);
    }
    for &(role, n) in sizes {
        c.pool_mut(role).threads = Some(n);
    }
    tweak(&mut c);
    Runtime::new(c).unwrap()
}

fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        sleep(Duration::from_millis(2));
    }
}

fn thread_name() -> String {
    std::thread::current().name().unwrap_or("?").to_owned()
}

#[test]
fn a_submitted_task_returns_its_value_from_a_worker_thread() {
    let rt = runtime(&[(Role::Evaluation, 2)], 2, |_| {});
    let h = rt
        .pool(Role::Evaluation)
        .submit(|| (6 * 7, thread_name()))
        .unwrap();
    let (v, name) = h.wait().unwrap();
    assert_eq!(v, 42);
    assert!(name.starts_with("cllm-eval-"), "ran on {name}");
    let s = rt.pool(Role::Evaluation).snapshot();
    assert_eq!((s.tasks_submitted, s.tasks_done, s.tasks_failed), (1, 1, 0));
    assert_eq!(s.threads, 2);
}

#[test]
fn the_environment_configures_the_runtime_and_bad_values_are_refused() {
    let env: HashMap<&str, &str> = [
        ("CLLM_THREAD_BUDGET", "3"),
        ("MAX_AI_THREADS", "2"),
        ("ENABLE_PARALLEL_STATS", "no"),
    ]
    .into();
    let config = RuntimeConfig::for_cores(4)
        .with_env(|k| env.get(k).map(|v| v.to_string()))
        .unwrap();
    let rt = Runtime::new(config).unwrap();
    assert_eq!(rt.budget(), 3);
    assert!(rt.threads() <= 3);
    assert_eq!(rt.pool(Role::Ai).threads(), 2);
    assert!(!rt.pool(Role::Stats).is_enabled());
    let bad = RuntimeConfig::for_cores(4)
        .with_env(|k| (k == "ENABLE_PARALLEL_AI").then(|| "perhaps".to_owned()));
    let e = bad.unwrap_err();
    assert!(
        e.to_string().contains("ENABLE_PARALLEL_AI") && e.to_string().contains("perhaps"),
        "{e}"
    );
}

#[test]
fn a_full_queue_rejects_try_submit_and_times_out_submit_timeout() {
    let rt = runtime(&[(Role::Evaluation, 1)], 1, |c| {
        c.pool_mut(Role::Evaluation).queue_capacity = 2
    });
    let pool = rt.pool(Role::Evaluation);
    let gate = Arc::new(Barrier::new(2));
    let g = gate.clone();
    let blocker = pool.submit(move || g.wait()).unwrap();
    wait_until(
        "the worker to take the blocker",
        Duration::from_secs(5),
        || pool.queue_depth() == 0,
    );
    let queued: Vec<_> = (0..2)
        .map(|i| pool.try_submit(move || i).unwrap())
        .collect();
    assert_eq!(
        pool.try_submit(|| 9).unwrap_err(),
        SubmitError::Full {
            role: Role::Evaluation,
            capacity: 2
        }
    );
    let start = Instant::now();
    match pool.submit_timeout(|| 9, Duration::from_millis(30)) {
        Err(SubmitError::Timeout {
            role: Role::Evaluation,
            waited,
        }) => assert!(waited >= Duration::from_millis(30)),
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(start.elapsed() >= Duration::from_millis(30));
    assert_eq!(pool.snapshot().tasks_rejected, 2);
    // A blocking submit waits for room, then goes through.
    let pool_ref = &pool;
    std::thread::scope(|s| {
        let late = s.spawn(move || pool_ref.submit(|| 3).unwrap().wait().unwrap());
        sleep(Duration::from_millis(20));
        assert!(
            !late.is_finished(),
            "submit should block while the queue is full"
        );
        gate.wait();
        assert_eq!(late.join().unwrap(), 3);
    });
    blocker.wait().unwrap();
    let values: Vec<i32> = queued.into_iter().map(|h| h.wait().unwrap()).collect();
    assert_eq!(values, vec![0, 1]);
}

#[test]
fn wait_timeout_reports_a_pending_task_then_its_value_once() {
    let rt = runtime(&[(Role::Evaluation, 1)], 1, |_| {});
    let go = Arc::new(AtomicBool::new(false));
    let g = go.clone();
    let h = rt
        .pool(Role::Evaluation)
        .submit(move || {
            while !g.load(Ordering::Relaxed) {
                sleep(Duration::from_millis(1));
            }
            5
        })
        .unwrap();
    assert_eq!(
        h.wait_timeout(Duration::from_millis(10)),
        Err(TaskError::Timeout)
    );
    assert!(!h.is_finished());
    go.store(true, Ordering::Relaxed);
    assert_eq!(h.wait_timeout(Duration::from_secs(10)), Ok(5));
    assert_eq!(
        h.wait_timeout(Duration::from_millis(1)),
        Err(TaskError::Collected)
    );
}

#[test]
fn higher_priority_tasks_run_first() {
    let rt = runtime(&[(Role::Evaluation, 1)], 1, |_| {});
    let pool = rt.pool(Role::Evaluation);
    let gate = Arc::new(Barrier::new(2));
    let g = gate.clone();
    let blocker = pool.submit(move || g.wait()).unwrap();
    wait_until("the blocker to start", Duration::from_secs(5), || {
        pool.queue_depth() == 0
    });
    let order = Arc::new(Mutex::new(Vec::new()));
    let handles: Vec<_> = [(0, 'a'), (5, 'b'), (0, 'c'), (9, 'd')]
        .into_iter()
        .map(|(priority, tag)| {
            let order = order.clone();
            let options = SubmitOptions {
                priority,
                backpressure: Backpressure::Block,
            };
            pool.submit_with(options, move || {
                order.lock().unwrap().push(tag);
                Ok::<_, String>(())
            })
            .unwrap()
        })
        .collect();
    gate.wait();
    blocker.wait().unwrap();
    handles.into_iter().for_each(|h| h.wait().unwrap());
    assert_eq!(*order.lock().unwrap(), vec!['d', 'b', 'a', 'c']);
}

#[test]
fn a_failing_task_reports_its_message_and_counts_as_failed() {
    let rt = runtime(&[(Role::Stats, 1)], 1, |_| {});
    let h = rt
        .pool(Role::Stats)
        .submit_with(SubmitOptions::default(), || {
            Err::<(), _>("disk full".to_owned())
        })
        .unwrap();
    assert_eq!(
        h.wait(),
        Err(TaskError::Failed {
            role: Role::Stats,
            message: "disk full".into()
        })
    );
    assert_eq!(rt.pool(Role::Stats).snapshot().tasks_failed, 1);
}

#[test]
fn a_disabled_pool_runs_tasks_inline_with_the_same_results() {
    let rt = runtime(&[(Role::Ai, 1)], 2, |c| {
        c.pool_mut(Role::Stats).enabled = false
    });
    let stats = rt.pool(Role::Stats);
    assert!(!stats.is_enabled());
    let caller = thread_name();
    let h = stats.submit(move || (thread_name(), 11)).unwrap();
    assert!(
        h.is_finished(),
        "an inline task is done when submit returns"
    );
    assert_eq!(h.wait().unwrap(), (caller, 11));
    let s = stats.snapshot();
    assert_eq!((s.tasks_inline, s.tasks_done, s.threads), (1, 1, 0));
    assert_eq!(rt.threads(), 1);
}

#[test]
fn a_panicking_task_gives_its_handle_the_panic_and_its_worker_is_replaced() {
    let rt = runtime(&[(Role::Background, 1)], 1, |_| {});
    let pool = rt.pool(Role::Background);
    let first = pool.submit(thread_name).unwrap().wait().unwrap();
    let h = pool
        .submit(|| -> u32 { panic!("agent 17 diverged") })
        .unwrap();
    match h.wait() {
        Err(TaskError::Panicked {
            role: Role::Background,
            worker,
            message,
        }) => {
            assert_eq!(worker, first);
            assert_eq!(message, "agent 17 diverged");
        }
        other => panic!("expected the panic, got {other:?}"),
    }
    let after = pool.submit(thread_name).unwrap().wait().unwrap();
    assert_ne!(after, first, "a new worker thread serves the pool");
    let s = pool.snapshot();
    assert_eq!(
        (s.workers_replaced, s.threads, s.tasks_failed, s.tasks_done),
        (1, 1, 1, 2)
    );
}

/// A panic payload whose destructor panics too.
struct PanicsOnDrop;
impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        panic!("the payload's destructor");
    }
}

#[test]
fn a_task_whose_panic_payload_panics_when_dropped_is_reported_and_the_pool_goes_on() {
    let rt = runtime(&[(Role::Background, 1)], 1, |_| {});
    let pool = rt.pool(Role::Background);
    let h = pool
        .submit(|| -> u32 { std::panic::panic_any(PanicsOnDrop) })
        .unwrap();
    match h.wait() {
        Err(TaskError::Panicked { message, .. }) => {
            assert_eq!(message, "panic with a non-string payload")
        }
        other => panic!("expected the panic, got {other:?}"),
    }
    assert_eq!(pool.submit(|| 5u32).unwrap().wait().unwrap(), 5);
    let s = pool.snapshot();
    assert_eq!((s.tasks_failed, s.tasks_done), (1, 1));
}

#[test]
fn health_reports_a_task_running_past_its_limit_with_pool_worker_and_duration() {
    let rt = runtime(&[(Role::Evaluation, 1), (Role::Ai, 1)], 2, |c| {
        c.pool_mut(Role::Evaluation).stuck_after = Duration::from_millis(40);
    });
    assert!(rt.health().is_healthy());
    let release = Arc::new(AtomicBool::new(false));
    let started = Arc::new(Barrier::new(2));
    let (r, s) = (release.clone(), started.clone());
    let h = rt
        .pool(Role::Evaluation)
        .submit(move || {
            s.wait();
            while !r.load(Ordering::Relaxed) {
                sleep(Duration::from_millis(1));
            }
        })
        .unwrap();
    started.wait();
    sleep(Duration::from_millis(100));
    let report = rt.health();
    assert_eq!(report.stuck.len(), 1, "{report:?}");
    let stuck = &report.stuck[0];
    assert_eq!(
        (stuck.role, stuck.worker_pool),
        (Role::Evaluation, Role::Evaluation)
    );
    assert!(stuck.worker.starts_with("cllm-eval-"));
    assert!(
        stuck.running_for >= Duration::from_millis(90) && stuck.limit == Duration::from_millis(40),
        "{stuck:?}"
    );
    assert!(!stuck.in_parallel_loop);
    assert!(
        report.silent.is_empty(),
        "idle workers keep beating: {report:?}"
    );
    release.store(true, Ordering::Relaxed);
    h.wait().unwrap();
    wait_until("the worker to go idle", Duration::from_secs(5), || {
        rt.health().stuck.is_empty()
    });
}

#[test]
fn shutdown_finish_runs_queued_work_before_stopping() {
    let rt = runtime(&[(Role::Evaluation, 1)], 1, |_| {});
    let done = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..20)
        .map(|_| {
            let d = done.clone();
            rt.pool(Role::Evaluation)
                .submit(move || {
                    sleep(Duration::from_millis(2));
                    d.fetch_add(1, Ordering::Relaxed);
                })
                .unwrap()
        })
        .collect();
    let report = rt.shutdown(DrainPolicy::Finish, Duration::from_secs(10));
    assert!(report.deadline_met);
    assert_eq!((report.dropped(), report.still_running()), (0, 0));
    assert_eq!(done.load(Ordering::Relaxed), 20);
    assert!(report.finished() >= 19, "{report:?}");
    handles.into_iter().for_each(|h| h.wait().unwrap());
    assert_eq!(
        rt.pool(Role::Evaluation).submit(|| ()).unwrap_err(),
        SubmitError::Shutdown {
            role: Role::Evaluation
        }
    );
    assert!(
        rt.shutdown(DrainPolicy::Finish, Duration::ZERO)
            .already_shut_down
    );
    assert_eq!(rt.threads(), 0);
}

#[test]
fn shutdown_drop_cancels_queued_work_and_lets_the_running_task_finish() {
    let rt = runtime(&[(Role::Evaluation, 1)], 1, |_| {});
    let pool = rt.pool(Role::Evaluation);
    let started = Arc::new(Barrier::new(2));
    let s = started.clone();
    let running = pool
        .submit(move || {
            s.wait();
            sleep(Duration::from_millis(50));
            "finished"
        })
        .unwrap();
    started.wait();
    let queued: Vec<_> = (0..5).map(|i| pool.submit(move || i).unwrap()).collect();
    let report = rt.shutdown(DrainPolicy::Drop, Duration::from_secs(10));
    assert!(report.deadline_met);
    assert_eq!(report.dropped(), 5);
    assert_eq!(report.pools[Role::Evaluation.index()].dropped, 5);
    assert_eq!(running.wait(), Ok("finished"));
    for h in queued {
        assert_eq!(
            h.wait(),
            Err(TaskError::Cancelled {
                role: Role::Evaluation
            })
        );
    }
    assert_eq!(rt.pool(Role::Evaluation).snapshot().tasks_cancelled, 5);
}

#[test]
fn shutdown_past_its_deadline_drops_the_queue_and_reports_the_stuck_worker() {
    let rt = runtime(&[(Role::Evaluation, 1)], 1, |_| {});
    let pool = rt.pool(Role::Evaluation);
    let release = Arc::new(AtomicBool::new(false));
    let r = release.clone();
    let started = Arc::new(Barrier::new(2));
    let s = started.clone();
    let stuck = pool
        .submit(move || {
            s.wait();
            while !r.load(Ordering::Relaxed) {
                sleep(Duration::from_millis(1));
            }
        })
        .unwrap();
    started.wait();
    let queued: Vec<_> = (0..3).map(|i| pool.submit(move || i).unwrap()).collect();
    let report = rt.shutdown(DrainPolicy::Finish, Duration::from_millis(50));
    assert!(!report.deadline_met);
    assert_eq!(report.dropped(), 3);
    let still = &report.pools[Role::Evaluation.index()].still_running;
    assert_eq!(still.len(), 1, "{report:?}");
    assert!(
        still[0].0.starts_with("cllm-eval-") && still[0].1 >= Duration::from_millis(40),
        "{still:?}"
    );
    for h in queued {
        assert_eq!(
            h.wait(),
            Err(TaskError::Cancelled {
                role: Role::Evaluation
            })
        );
    }
    release.store(true, Ordering::Relaxed);
    stuck.wait().unwrap();
}

#[test]
fn guests_of_a_small_budget_run_on_the_host_and_threads_never_exceed_the_budget() {
    // The default plan on 2 cores: ai and background get a thread each.
    let rt = Runtime::new(RuntimeConfig::for_cores(2)).unwrap();
    assert_eq!(rt.plan().assigned, [1, 0, 0, 1, 0]);
    assert!(rt.threads() <= 2);
    for role in [Role::Physics, Role::Stats, Role::Evaluation] {
        assert_eq!(rt.pool(role).host(), Some(Role::Ai), "{role}");
        let name = rt.pool(role).submit(thread_name).unwrap().wait().unwrap();
        assert!(name.starts_with("cllm-ai-"), "{role} task ran on {name}");
        let s = rt.pool(role).snapshot();
        assert_eq!((s.tasks_done, s.threads, s.host), (1, 0, Some(Role::Ai)));
    }
    let snap = rt.snapshot();
    assert_eq!(snap.threads, 2);
    assert_eq!(snap.budget, 2);
}

#[test]
fn resizing_under_load_completes_every_task_within_the_budget() {
    let rt = runtime(&[(Role::Ai, 1), (Role::Evaluation, 1)], 4, |_| {});
    let stop = Arc::new(AtomicBool::new(false));
    let max_seen = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                max_seen.fetch_max(rt.threads(), Ordering::Relaxed);
                std::thread::yield_now();
            }
        });
        let handles: Vec<_> = (0..400)
            .map(|i| {
                let d = done.clone();
                let h = rt
                    .pool(Role::Evaluation)
                    .submit(move || {
                        sleep(Duration::from_micros(200));
                        d.fetch_add(1, Ordering::Relaxed);
                    })
                    .unwrap();
                match i {
                    50 => rt.resize(Role::Evaluation, 3).unwrap(),
                    150 => rt.resize(Role::Evaluation, 1).unwrap(),
                    250 => rt.resize(Role::Evaluation, 4).unwrap(),
                    _ => {}
                }
                h
            })
            .collect();
        handles.into_iter().for_each(|h| h.wait().unwrap());
        // The ai pool's thread keeps its token: evaluation gets 3 of the 4.
        wait_until(
            "evaluation to reach 3 threads",
            Duration::from_secs(5),
            || rt.pool(Role::Evaluation).threads() == 3,
        );
        rt.resize(Role::Evaluation, 2).unwrap();
        wait_until("evaluation to shrink to 2", Duration::from_secs(5), || {
            rt.pool(Role::Evaluation).threads() == 2
        });
        stop.store(true, Ordering::Relaxed);
    });
    assert_eq!(done.load(Ordering::Relaxed), 400);
    assert!(
        max_seen.load(Ordering::Relaxed) <= 4,
        "saw {} threads",
        max_seen.load(Ordering::Relaxed)
    );
    let s = rt.pool(Role::Evaluation).snapshot();
    assert_eq!((s.threads, s.target_threads), (2, 2));
    assert!(rt.resize(Role::Evaluation, 5).is_err(), "above the budget");
    assert!(rt.resize(Role::Stats, 1).is_err(), "the stats pool is off");
}

#[test]
fn a_pool_resized_up_while_the_budget_is_taken_is_hosted_until_it_gets_threads() {
    // The stress test's case: every token is held by the other pools, so
    // ai's new target cannot start a thread; its tasks must still run.
    let rt = runtime(
        &[
            (Role::Ai, 1),
            (Role::Physics, 1),
            (Role::Background, 1),
            (Role::Evaluation, 1),
        ],
        4,
        |_| {},
    );
    rt.resize(Role::Ai, 0).unwrap();
    wait_until("ai's thread to leave", Duration::from_secs(5), || {
        rt.pool(Role::Ai).threads() == 0
    });
    rt.resize(Role::Physics, 2).unwrap();
    assert_eq!(rt.pool(Role::Physics).threads(), 2);
    rt.resize(Role::Ai, 2).unwrap();
    let s = rt.pool(Role::Ai).snapshot();
    assert_eq!((s.threads, s.target_threads), (0, 2), "no token is free");
    assert_eq!(
        s.host,
        Some(Role::Physics),
        "the pool with the most threads"
    );
    let (tx, rx) = std::sync::mpsc::channel();
    let h = rt
        .pool(Role::Ai)
        .submit(move || tx.send(thread_name()).unwrap())
        .unwrap();
    let name = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("ai's task never ran");
    assert!(name.starts_with("cllm-phys-"), "ran on {name}");
    h.wait().unwrap();
    // A token freed later goes to ai, which then serves its own queue too.
    rt.resize(Role::Physics, 1).unwrap();
    wait_until("ai to get a thread", Duration::from_secs(5), || {
        rt.pool(Role::Ai).threads() == 1
    });
    rt.resize(Role::Ai, 2).unwrap();
    assert_eq!(rt.pool(Role::Ai).host(), None, "it has a thread of its own");
}

#[test]
fn a_task_submitted_while_its_pool_goes_inline_still_runs() {
    // The only pool goes 1 -> 0 threads (inline: its queue is run out by
    // the resizer) and back, while tasks are submitted: a push landing just
    // after the queue was run out must not be left with nobody to run it.
    let rt = runtime(&[(Role::Ai, 1)], 1, |_| {});
    let stop = AtomicBool::new(false);
    let (ran, submitted) = (AtomicUsize::new(0), AtomicUsize::new(0));
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    let h = rt.pool(Role::Ai).submit(|| ()).unwrap();
                    submitted.fetch_add(1, Ordering::Relaxed);
                    // A stranded task runs at the next resize to 1 at the
                    // latest, unless resizing has stopped: wait past that.
                    if h.wait_timeout(Duration::from_secs(3)).is_ok() {
                        ran.fetch_add(1, Ordering::Relaxed);
                    } else {
                        return;
                    }
                }
            });
        }
        let start = Instant::now();
        let mut stranded = 0;
        while start.elapsed() < Duration::from_millis(1000) {
            rt.resize(Role::Ai, 0).unwrap();
            // Inline now: a queued task is run by its submitter right after
            // its push; one still queued a second later has nobody. An empty
            // queue ends the wait: a submitter that checked before the
            // resize may push once more (and then runs its task itself), so
            // a second read here saw a task for a moment, not a stranded one
            // (3 in 60 runs beside a busy loop, before this was so).
            let queued_at = Instant::now();
            stranded = loop {
                let depth = rt.pool(Role::Ai).queue_depth();
                if depth == 0 || queued_at.elapsed() >= Duration::from_secs(1) {
                    break depth;
                }
                sleep(Duration::from_millis(1));
            };
            if stranded > 0 {
                break;
            }
            rt.resize(Role::Ai, 1).unwrap();
        }
        stop.store(true, Ordering::Relaxed);
        assert_eq!(stranded, 0, "tasks left queued on an inline pool");
    });
    assert_eq!(
        ran.load(Ordering::Relaxed),
        submitted.load(Ordering::Relaxed),
        "a task never ran"
    );
}

#[test]
fn the_balancer_moves_a_thread_from_an_idle_pool_to_a_busy_one() {
    let rt = runtime(&[(Role::Physics, 2), (Role::Evaluation, 1)], 3, |_| {});
    assert_eq!(rt.rebalance(), None, "nothing is busy yet");
    let handles: Vec<_> = (0..40)
        .map(|_| {
            rt.pool(Role::Evaluation)
                .submit(|| sleep(Duration::from_millis(5)))
                .unwrap()
        })
        .collect();
    sleep(Duration::from_millis(50));
    let m = rt.rebalance();
    assert_eq!(
        m,
        Some(ThreadMove {
            from: Some(Role::Physics),
            to: Role::Evaluation
        })
    );
    wait_until("the thread to move", Duration::from_secs(5), || {
        rt.pool(Role::Evaluation).threads() == 2 && rt.pool(Role::Physics).threads() == 1
    });
    assert!(rt.threads() <= 3);
    handles.into_iter().for_each(|h| h.wait().unwrap());
    // Physics now has one thread: it is never emptied by the balancer.
    sleep(Duration::from_millis(20));
    let later = rt.rebalance();
    assert!(
        later.is_none_or(|m| m.from != Some(Role::Physics)),
        "{later:?}"
    );
}

#[test]
fn the_balancer_uses_a_free_token_before_taking_a_thread() {
    let rt = runtime(&[(Role::Physics, 1), (Role::Evaluation, 1)], 3, |_| {});
    let handles: Vec<_> = (0..30)
        .map(|_| {
            rt.pool(Role::Evaluation)
                .submit(|| sleep(Duration::from_millis(5)))
                .unwrap()
        })
        .collect();
    sleep(Duration::from_millis(40));
    assert_eq!(
        rt.rebalance(),
        Some(ThreadMove {
            from: None,
            to: Role::Evaluation
        })
    );
    wait_until("the new thread", Duration::from_secs(5), || {
        rt.pool(Role::Evaluation).threads() == 2
    });
    assert_eq!(rt.pool(Role::Physics).threads(), 1);
    handles.into_iter().for_each(|h| h.wait().unwrap());
}

#[test]
fn metrics_count_tasks_and_thread_time_and_only_grow() {
    let rt = runtime(&[(Role::Evaluation, 2)], 2, |_| {});
    let pool = rt.pool(Role::Evaluation);
    let before = pool.snapshot();
    let handles: Vec<_> = (0..20)
        .map(|_| pool.submit(|| sleep(Duration::from_millis(2))).unwrap())
        .collect();
    let mid = pool.snapshot();
    handles.into_iter().for_each(|h| h.wait().unwrap());
    let after = pool.snapshot();
    assert!(before.busy <= mid.busy && mid.busy <= after.busy);
    assert!(before.alive <= mid.alive && mid.alive <= after.alive);
    assert!(after.busy <= after.alive);
    assert!(after.busy >= Duration::from_millis(35), "{after:?}");
    assert_eq!(after.tasks_done, 20);
    assert!(
        after.run_p50 >= Duration::from_millis(1) && after.run_p99 >= after.run_p50,
        "{after:?}"
    );
    assert!(after.wait_p99 >= after.wait_p50);
    assert!(after.busy_fraction() > 0.0 && after.busy_fraction() <= 1.0);
    assert_eq!(after.queue_capacity, pool_manager::DEFAULT_QUEUE_CAPACITY);
}

#[test]
fn monitor_inputs_sample_the_pools_the_locks_and_the_parallel_loops_in_one_call() {
    use frame_guard::SpeedupMeter;
    use std::time::Duration;
    let mut c = RuntimeConfig::for_cores(4);
    for role in Role::ALL {
        c.pool_mut(role).threads = Some(0);
    }
    c.pool_mut(Role::Ai).threads = Some(1);
    c.pool_mut(Role::Stats).threads = Some(1);
    c.thread_budget = Some(2);
    let rt = Runtime::new(c).unwrap();
    let before = rt.monitor_inputs(None);
    let lock = sync_stats::CountingMutex::new("monitor-inputs-test", 0u32);
    for _ in 0..3 {
        *lock.lock() += 1;
    }
    rt.pool(Role::Ai)
        .for_each_index(10_000, pool_manager::Partitioning::DYNAMIC, |i| {
            std::hint::black_box(i);
        })
        .unwrap();
    let after = rt.monitor_inputs(None);
    assert!(after.check().is_ok(), "{:?}", after.check());
    assert!(after.ai.alive > before.ai.alive && after.stats.alive > Duration::ZERO);
    assert_eq!(after.physics.alive, Duration::ZERO);
    assert!(after.lock_acquisitions >= before.lock_acquisitions + 3);
    // Without a meter: the pools' parallel loops.
    let s = rt.snapshot();
    assert!(after.parallel_wall > before.parallel_wall);
    assert!(after.parallel_wall <= s.parallel_wall() && after.parallel_work <= s.parallel_work());
    // With one: its totals.
    let meter = SpeedupMeter::new();
    meter.add_work(Duration::from_millis(30));
    meter.add_wall(Duration::from_millis(20));
    let metered = rt.monitor_inputs(Some(&meter));
    assert_eq!(
        (metered.parallel_work, metered.parallel_wall),
        (Duration::from_millis(30), Duration::from_millis(20))
    );
}
