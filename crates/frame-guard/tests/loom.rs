//! Loom model of the race between the loop ending the K-th slow frame and the
//! watchdog's poll seeing that frame in progress past the limit: whichever
//! wins, the stop fires once, for the right frame, and the callback runs once.
//! Run with `RUSTFLAGS="--cfg loom" cargo test --release -p frame-guard --test loom`.
#![cfg(loom)]

use frame_guard::{FrameGuard, FrameGuardConfig, ManualClock, StopReason};
use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// A guard on a manual clock that stops at the first slow frame.
fn guard_stopping_at_one_slow_frame() -> (ManualClock, Arc<FrameGuard>) {
    let clock = ManualClock::new();
    let config = FrameGuardConfig {
        slow_frame_count: 1,
        ..Default::default()
    };
    let guard = FrameGuard::builder(config)
        .clock(clock.clone())
        .build()
        .unwrap();
    (clock, Arc::new(guard))
}

#[test]
fn loop_end_and_watchdog_poll_fire_one_stop() {
    loom::model(|| {
        let (clock, guard) = guard_stopping_at_one_slow_frame();
        let calls = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&calls);
        guard.set_on_stop(move |info| {
            assert_eq!(info.frame, 0);
            seen.fetch_add(1, Ordering::SeqCst);
        });
        guard.begin_frame().unwrap();
        clock.advance(Duration::from_secs(3));
        let watchdog = {
            let guard = Arc::clone(&guard);
            loom::thread::spawn(move || guard.poll())
        };
        let record = guard.end_frame().unwrap();
        watchdog.join().unwrap();
        assert!(record.slow);
        assert!(guard.is_stopped());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let info = guard.stop_info().unwrap();
        assert_eq!(info.frame, 0);
        assert!(matches!(info.reason, StopReason::SlowFrames { .. }));
        assert_eq!(guard.stats().trips.consecutive, 1);
    });
}

#[test]
fn is_stopped_seen_by_another_thread_implies_the_stop_info_is_there() {
    loom::model(|| {
        let (clock, guard) = guard_stopping_at_one_slow_frame();
        let reader = {
            let guard = Arc::clone(&guard);
            loom::thread::spawn(move || {
                if guard.is_stopped() {
                    assert!(guard.stop_info().is_some());
                }
            })
        };
        clock.advance(Duration::from_secs(3));
        guard.record_frame(Duration::from_secs(3)).unwrap();
        reader.join().unwrap();
        assert!(guard.is_stopped());
    });
}
