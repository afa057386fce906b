//! The watchdog thread sees a loop frozen inside a frame, without long sleeps:
//! the guard runs on a manual clock and the thread polls every millisecond.

use frame_guard::{FrameGuard, FrameGuardConfig, ManualClock, StopReason, StopRules};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Waits (real time, at most 10 s) until `cond` holds.
fn eventually(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn watched(config: FrameGuardConfig) -> (FrameGuard, ManualClock) {
    let clock = ManualClock::new();
    let config = FrameGuardConfig {
        watchdog_period: Some(Duration::from_millis(1)),
        ..config
    };
    (
        FrameGuard::builder(config)
            .clock(clock.clone())
            .build()
            .unwrap(),
        clock,
    )
}

#[test]
fn watchdog_flags_a_frame_that_never_ends() {
    let (guard, clock) = watched(FrameGuardConfig::default());
    guard.begin_frame().unwrap();
    clock.advance(Duration::from_millis(1999));
    let polls = guard.watchdog_polls();
    eventually("a few polls", || guard.watchdog_polls() >= polls + 3);
    assert_eq!(guard.stats().stalled_frames, 0, "not yet over the limit");
    clock.advance(Duration::from_millis(2));
    eventually("the stall flag", || guard.stats().stalled_frames == 1);
    assert!(
        !guard.is_stopped(),
        "one stalled frame is not ten slow ones"
    );
}

#[test]
fn watchdog_stops_a_frozen_loop_whose_frame_is_the_kth_slow_one() {
    let (guard, clock) = watched(FrameGuardConfig {
        slow_frame_count: 2,
        ..Default::default()
    });
    let stopped_on = Arc::new(AtomicU64::new(u64::MAX));
    let seen = Arc::clone(&stopped_on);
    guard.set_on_stop(move |info| seen.store(info.frame, Ordering::SeqCst));
    guard.begin_frame().unwrap();
    clock.advance(Duration::from_secs(3));
    guard.end_frame().unwrap();
    guard.begin_frame().unwrap(); // frame 1 never ends
    clock.advance(Duration::from_secs(3));
    eventually("the stop", || guard.is_stopped());
    eventually("the callback", || stopped_on.load(Ordering::SeqCst) == 1);
    assert!(matches!(
        guard.stop_info().unwrap().reason,
        StopReason::SlowFrames {
            in_progress: true,
            ..
        }
    ));
}

#[test]
fn watchdog_applies_the_sampled_rule_while_the_loop_is_frozen() {
    let (guard, clock) = watched(FrameGuardConfig {
        rules: StopRules::CODED,
        ..Default::default()
    });
    guard.begin_frame().unwrap();
    clock.advance(Duration::from_secs(50));
    eventually("the sampled stop", || guard.is_stopped());
    let info = guard.stop_info().unwrap();
    assert_eq!((info.at, info.frame), (Duration::from_secs(50), 0));
}

#[test]
fn watchdog_on_the_system_clock_flags_a_short_stall() {
    let config = FrameGuardConfig {
        slow_frame_limit: Duration::from_millis(30),
        watchdog_period: Some(Duration::from_millis(5)),
        ..Default::default()
    };
    let guard = FrameGuard::new(config).unwrap();
    guard.begin_frame().unwrap();
    eventually("the stall flag", || guard.stats().stalled_frames == 1);
    guard.end_frame().unwrap();
    assert!(guard.stats().max > Duration::from_millis(30));
}

#[test]
fn dropping_the_guard_stops_the_watchdog_thread_promptly() {
    let config = FrameGuardConfig {
        watchdog_period: Some(Duration::from_secs(3600)),
        ..Default::default()
    };
    let guard = FrameGuard::new(config).unwrap();
    let start = Instant::now();
    drop(guard);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "the thread was woken, not waited out"
    );
}

#[test]
fn stress_loop_and_watchdog_fire_exactly_one_stop() {
    // Many rounds of a loop ending slow frames while the watchdog polls:
    // whoever fires first, the callback runs once and the frame is right.
    for _ in 0..50 {
        let (guard, clock) = watched(FrameGuardConfig {
            slow_frame_count: 3,
            ..Default::default()
        });
        let calls = Arc::new(AtomicU64::new(0));
        let seen = Arc::clone(&calls);
        guard.set_on_stop(move |info| {
            assert_eq!(info.frame, 2);
            seen.fetch_add(1, Ordering::SeqCst);
        });
        for _ in 0..5 {
            guard.begin_frame().unwrap();
            clock.advance(Duration::from_millis(2001));
            std::thread::yield_now();
            guard.end_frame().unwrap();
        }
        drop(guard);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
