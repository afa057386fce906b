//! The go-line round (`run_all`, `try_run_all`) at its edges: the task
//! stored by value (drop exactly once per call however the round ends, its
//! alignment, zero-sized tasks), panics whose payload panics when dropped,
//! and dispatchers racing rounds from other threads.
#![cfg(not(loom))]

use sphere_pool::{Error, SpherePool};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// Runs `f` on a thread of its own and fails if it does not end within
/// `secs` (a hang becomes a failure, not a stuck test run).
fn within<R: Send + 'static>(secs: u64, f: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(r) => r,
        Err(e) => panic!("did not end within {secs} s ({e:?}): hung"),
    }
}

/// A panic payload whose destructor panics too.
struct PanickyPayload;
impl Drop for PanickyPayload {
    fn drop(&mut self) {
        panic!("the payload's drop panicked");
    }
}

#[test]
fn a_sphere_share_whose_panic_payload_panics_on_drop_does_not_kill_the_sphere() {
    within(20, || {
        let pool = SpherePool::new(2).unwrap();
        let r = pool.run_all(|p| {
            if p.index() == 0 {
                std::panic::panic_any(PanickyPayload);
            }
        });
        assert!(matches!(r, Err(Error::Panicked { .. })), "{r:?}");
        // The sphere still serves.
        let ran = AtomicUsize::new(0);
        pool.run_all(|_| {
            ran.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
        assert_eq!(ran.load(Ordering::SeqCst), 3);
    });
}

#[test]
fn the_callers_share_whose_panic_payload_panics_on_drop_does_not_hang_the_round() {
    within(20, || {
        let pool = SpherePool::new(2).unwrap();
        let r = pool.run_all(|p| {
            if p.is_caller() {
                std::panic::panic_any(PanickyPayload);
            }
        });
        assert!(matches!(r, Err(Error::Panicked { .. })), "{r:?}");
        let ran = AtomicUsize::new(0);
        pool.run_all(|_| {
            ran.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
        assert_eq!(ran.load(Ordering::SeqCst), 3);
    });
}

#[test]
fn a_dispatched_job_whose_panic_payload_panics_on_drop_is_reported_by_wait() {
    within(20, || {
        let pool = SpherePool::new(1).unwrap();
        pool.dispatch(0, || std::panic::panic_any(PanickyPayload))
            .unwrap();
        let r = pool.wait(0);
        assert!(matches!(r, Err(Error::Panicked { .. })), "{r:?}");
        pool.dispatch(0, || {}).unwrap();
        pool.wait(0).unwrap();
    });
}
