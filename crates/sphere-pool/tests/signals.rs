//! Signals that interrupt the futex sleeps (`EINTR`): spheres asleep on the
//! doorbell and a round's caller asleep on the done word must go back to
//! sleep, not take the interruption for the event. A binary of its own: the
//! signal handler is process-wide.
#![cfg(all(target_os = "linux", not(loom)))]

use sphere_pool::{PoolConfig, SpherePool};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

static SIGNALS: AtomicUsize = AtomicUsize::new(0);

extern "C" fn on_signal(_: libc::c_int) {
    SIGNALS.fetch_add(1, Ordering::SeqCst);
}

/// Installs `on_signal` for SIGUSR1 without SA_RESTART, so that a sleep it
/// interrupts returns EINTR.
fn install_handler() {
    // SAFETY: a zeroed sigaction is valid; the handler only does an atomic add
    // (async-signal-safe).
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
        libc::sigemptyset(&mut action.sa_mask);
        assert_eq!(
            libc::sigaction(libc::SIGUSR1, &action, std::ptr::null_mut()),
            0
        );
    }
}

fn gettid() -> libc::pid_t {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::syscall(libc::SYS_gettid) as libc::pid_t }
}

fn signal_thread(tid: libc::pid_t) {
    // SAFETY: tgkill to a thread of this process, with a handled signal.
    unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), tid, libc::SIGUSR1) };
}

/// The thread ids of this process's threads whose name starts with `prefix`.
fn threads_named(prefix: &str) -> Vec<libc::pid_t> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| {
            let t = t.ok()?;
            let name = std::fs::read_to_string(t.path().join("comm")).ok()?;
            name.starts_with(prefix)
                .then(|| t.file_name().to_str()?.parse().ok())?
        })
        .collect()
}

#[test]
fn sleeping_spheres_and_a_sleeping_round_caller_survive_interrupting_signals() {
    install_handler();
    let pool = SpherePool::with_config(PoolConfig {
        spheres: 2,
        max_spin: Duration::from_micros(20),
        name_prefix: "sigsphere".to_owned(),
        ..Default::default()
    })
    .unwrap();
    let spheres = threads_named("sigsphere");
    assert_eq!(spheres.len(), 2);

    // Spheres asleep on the doorbell, interrupted again and again.
    std::thread::sleep(Duration::from_millis(30));
    for _ in 0..20 {
        for &tid in &spheres {
            signal_thread(tid);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let ran = AtomicUsize::new(0);
    for _ in 0..3 {
        pool.run_all(|_| {
            ran.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    }
    assert_eq!(ran.swap(0, Ordering::SeqCst), 9);

    // The caller asleep on the done word while the spheres' shares last,
    // interrupted again and again: it returns only when they are done.
    let caller = gettid();
    let stop = AtomicBool::new(false);
    // Stops the signalling thread also when an assertion below fails.
    struct Stop<'a>(&'a AtomicBool);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    std::thread::scope(|s| {
        let _stop = Stop(&stop);
        s.spawn(|| {
            while !stop.load(Ordering::SeqCst) {
                signal_thread(caller);
                std::thread::sleep(Duration::from_micros(500));
            }
        });
        for _ in 0..3 {
            pool.run_all(|p| {
                if !p.is_caller() {
                    std::thread::sleep(Duration::from_millis(30));
                }
                ran.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
            assert_eq!(
                ran.swap(0, Ordering::SeqCst),
                3,
                "returned before every share ended"
            );
        }
    });
    assert!(
        SIGNALS.load(Ordering::SeqCst) >= 40,
        "signals handled: {SIGNALS:?}"
    );
}
