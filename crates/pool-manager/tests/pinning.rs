//! Role pools pinned to a CPU list: each worker's affinity, read back with
//! `sched_getaffinity` on the worker itself, is its CPU of the list
//! (round-robin by start order); a bad list is refused, naming the field.

use pool_manager::{Error, Role, Runtime, RuntimeConfig};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The CPUs the calling thread may run on, in increasing order.
fn affinity() -> Vec<usize> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; the call fills it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a writable cpu_set_t of the size passed; 0 = this thread.
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    assert_eq!(rc, 0, "sched_getaffinity failed");
    (0..libc::CPU_SETSIZE as usize)
        // SAFETY: `cpu` is below CPU_SETSIZE, inside the set.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect()
}

fn ai_only(threads: usize, cpus: Option<Vec<usize>>) -> RuntimeConfig {
    let mut c = RuntimeConfig::for_cores(threads);
    c.thread_budget = Some(threads);
    for role in Role::ALL {
        c.pool_mut(role).threads = Some(0);
    }
    c.pool_mut(Role::Ai).threads = Some(threads);
    c.pool_mut(Role::Ai).cpus = cpus;
    c
}

#[test]
fn each_worker_runs_on_its_cpu_of_the_list_round_robin() {
    let allowed = affinity();
    if allowed.len() < 2 {
        // One CPU: pinned or not, every thread reads the same set.
        eprintln!("skipped: the process may run on {allowed:?} only");
        return;
    }
    // Reversed, so that "worker k on CPU k" would not pass by chance.
    let cpus = vec![allowed[1], allowed[0]];
    let rt = Runtime::new(ai_only(3, Some(cpus.clone()))).unwrap();
    let pool = rt.pool(Role::Ai);
    // Each task holds its worker until all three have started one, so every
    // worker reports once.
    let arrived = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..3)
        .map(|_| {
            let arrived = arrived.clone();
            pool.submit(move || {
                arrived.fetch_add(1, Ordering::SeqCst);
                let deadline = Instant::now() + Duration::from_secs(20);
                while arrived.load(Ordering::SeqCst) < 3 && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(1));
                }
                let name = std::thread::current().name().unwrap_or("").to_owned();
                (name, affinity())
            })
            .unwrap()
        })
        .collect();
    let mut seen: Vec<(String, Vec<usize>)> = handles
        .into_iter()
        .map(|h| h.wait_timeout(Duration::from_secs(30)).unwrap())
        .collect();
    seen.sort();
    let expected: Vec<(String, Vec<usize>)> = (0..3)
        .map(|k| (format!("cllm-ai-{k}"), vec![cpus[k % cpus.len()]]))
        .collect();
    assert_eq!(seen, expected, "list {cpus:?}, allowed {allowed:?}");
    // The caller is not a pool thread: its affinity is untouched.
    assert_eq!(affinity(), allowed);
}

#[test]
fn a_bad_cpu_list_is_refused_naming_the_field() {
    for (cpus, why) in [
        (vec![], "the CPU list is empty"),
        (vec![0, 1023], "CPU 1023 is not one this process may run on"),
    ] {
        let e = Runtime::new(ai_only(1, Some(cpus.clone()))).unwrap_err();
        let Error::Config(c) = &e else {
            panic!("{cpus:?}: {e}")
        };
        assert_eq!(c.variable, "pools.ai.cpus", "{e}");
        assert!(c.reason.contains(why), "{cpus:?}: {e}");
    }
    // Unpinned pools are not checked against the list of another.
    assert!(Runtime::new(ai_only(1, None)).is_ok());
}
