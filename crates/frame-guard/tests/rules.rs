//! The stop rules fire exactly when they say, on an injected clock.

use frame_guard::{
    Clock, FrameError, FrameGuard, FrameGuardConfig, ManualClock, StopReason, StopRules,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn guard_with(config: FrameGuardConfig) -> (FrameGuard, ManualClock) {
    let clock = ManualClock::new();
    let guard = FrameGuard::builder(config)
        .clock(clock.clone())
        .build()
        .unwrap();
    (guard, clock)
}

/// A frame of `d` on the manual clock, through begin/end.
fn frame(guard: &FrameGuard, clock: &ManualClock, d: Duration) {
    guard.begin_frame().unwrap();
    clock.advance(d);
    guard.end_frame().unwrap();
}

/// A frame of `d` given directly (the clock moves by `d` too).
fn tick(guard: &FrameGuard, clock: &ManualClock, d: Duration) {
    clock.advance(d);
    guard.record_frame(d).unwrap();
}

#[test]
fn k_minus_one_slow_frames_do_not_stop_and_the_kth_does() {
    let (guard, clock) = guard_with(FrameGuardConfig::default());
    let stops = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&stops);
    guard.set_on_stop(move |_| {
        seen.fetch_add(1, Ordering::SeqCst);
    });
    for _ in 0..9 {
        frame(&guard, &clock, ms(2001));
        assert!(!guard.is_stopped());
    }
    assert_eq!(guard.stats().consecutive_slow, 9);
    frame(&guard, &clock, ms(2001));
    assert!(guard.is_stopped());
    let info = guard.stop_info().unwrap();
    assert_eq!(info.frame, 9, "the 10th frame, index 9");
    assert_eq!(
        info.reason,
        StopReason::SlowFrames {
            count: 10,
            limit: ms(2000),
            last: ms(2001),
            in_progress: false
        }
    );
    assert_eq!(info.at, ms(2001 * 10));
    assert_eq!(stops.load(Ordering::SeqCst), 1);
    assert!(
        info.to_string()
            .contains("10 consecutive frames over 2000.0 ms"),
        "{info}"
    );
}

#[test]
fn a_fast_frame_resets_the_count() {
    let (guard, clock) = guard_with(FrameGuardConfig::default());
    for _ in 0..9 {
        tick(&guard, &clock, ms(2500));
    }
    tick(&guard, &clock, ms(5));
    assert_eq!(guard.stats().consecutive_slow, 0);
    for _ in 0..9 {
        tick(&guard, &clock, ms(2500));
    }
    assert!(!guard.is_stopped(), "9 + fast + 9 is not 10 in a row");
    tick(&guard, &clock, ms(2500));
    assert!(guard.is_stopped());
    assert_eq!(guard.stop_info().unwrap().frame, 19);
    assert_eq!(guard.stats().slow_frames, 19);
}

#[test]
fn a_frame_exactly_at_the_limit_is_not_slow() {
    let config = FrameGuardConfig {
        slow_frame_count: 1,
        ..Default::default()
    };
    let (guard, clock) = guard_with(config);
    tick(&guard, &clock, ms(2000));
    assert!(!guard.is_stopped());
    tick(&guard, &clock, ms(2000) + Duration::from_nanos(1));
    assert!(guard.is_stopped());
}

#[test]
fn the_stop_is_latched_once_and_the_rule_keeps_counting_trips() {
    let config = FrameGuardConfig {
        slow_frame_count: 2,
        ..Default::default()
    };
    let (guard, clock) = guard_with(config);
    let stops = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&stops);
    guard.set_on_stop(move |_| {
        seen.fetch_add(1, Ordering::SeqCst);
    });
    for _ in 0..7 {
        tick(&guard, &clock, ms(3000));
    }
    assert_eq!(
        guard.stats().trips.consecutive,
        3,
        "frames 2, 4 and 6 complete a run of 2"
    );
    assert_eq!(
        guard.stop_info().unwrap().frame,
        1,
        "the first firing is kept"
    );
    assert_eq!(stops.load(Ordering::SeqCst), 1, "the callback runs once");
}

#[test]
fn the_consecutive_rule_off_counts_slow_frames_but_never_stops() {
    let config = FrameGuardConfig {
        rules: StopRules::NONE,
        slow_frame_count: 1,
        ..Default::default()
    };
    let (guard, clock) = guard_with(config);
    for _ in 0..5 {
        tick(&guard, &clock, ms(3000));
    }
    assert!(!guard.is_stopped());
    let stats = guard.stats();
    assert_eq!((stats.slow_frames, stats.trips.consecutive), (5, 0));
}

fn coded() -> FrameGuardConfig {
    FrameGuardConfig {
        rules: StopRules::CODED,
        ..Default::default()
    }
}

#[test]
fn sampled_rule_stops_after_ten_slow_samples_in_a_row_and_not_at_nine() {
    // Frames of 0.6 s back to back: every 5 s sample sees a 0.6 s gap (slow).
    let (guard, clock) = guard_with(coded());
    let mut frames = 0;
    // Nine samples: t = 5 .. 45 s. Frames end at 0.6 k; run to 49.8 s.
    while clock.now() + ms(600) < Duration::from_secs(50) {
        tick(&guard, &clock, ms(600));
        frames += 1;
    }
    assert_eq!(guard.stats().slow_samples, 9);
    assert!(!guard.is_stopped(), "nine slow samples do not stop");
    tick(&guard, &clock, ms(600)); // ends at 50.4 s: the sample at 50 s is taken
    let info = guard.stop_info().expect("the 10th slow sample stops");
    assert_eq!(info.at, Duration::from_secs(50));
    assert_eq!(info.frame, frames, "the frame in progress at 50 s");
    assert_eq!(
        info.reason,
        StopReason::SlowSamples {
            count: 10,
            gap_limit: ms(500),
            last_gap: ms(600)
        }
    );
    assert_eq!(guard.stats().trips.sampled, 1);
}

#[test]
fn a_fast_sample_resets_the_sampled_run() {
    let (guard, clock) = guard_with(coded());
    // 0.6 s frames up to the 9th sample (45 s), then fast frames past the
    // 10th sample (50 s), then slow again: needs 10 more slow samples.
    while clock.now() < Duration::from_secs(45) {
        tick(&guard, &clock, ms(600));
    }
    assert_eq!(guard.stats().slow_samples, 9);
    while clock.now() < Duration::from_secs(51) {
        tick(&guard, &clock, ms(10));
    }
    let stats = guard.stats();
    assert_eq!((stats.samples, stats.slow_samples), (10, 9));
    while clock.now() < Duration::from_secs(99) {
        tick(&guard, &clock, ms(600));
    }
    assert!(!guard.is_stopped(), "samples 55..95 s: 9 slow in a row");
    while clock.now() < Duration::from_secs(101) {
        tick(&guard, &clock, ms(600));
    }
    assert_eq!(guard.stop_info().unwrap().at, Duration::from_secs(100));
}

#[test]
fn sampled_rule_sees_a_frozen_loop_through_poll() {
    let (guard, clock) = guard_with(coded());
    tick(&guard, &clock, ms(10));
    guard.begin_frame().unwrap();
    clock.advance(Duration::from_secs(49)); // now 49.01 s: samples 5..45 are slow
    guard.poll();
    assert_eq!(guard.stats().slow_samples, 9);
    assert!(!guard.is_stopped());
    clock.advance(Duration::from_secs(1)); // 50.01 s
    guard.poll();
    let info = guard.stop_info().unwrap();
    assert_eq!((info.at, info.frame), (Duration::from_secs(50), 1));
    assert_eq!(
        info.reason,
        StopReason::SlowSamples {
            count: 10,
            gap_limit: ms(500),
            last_gap: Duration::from_millis(49_990)
        }
    );
}

#[test]
fn a_clock_jump_counts_every_sample_it_covers_at_once() {
    let config = FrameGuardConfig {
        rules: StopRules::CODED,
        slow_sample_count: 3,
        ..Default::default()
    };
    let (guard, clock) = guard_with(config);
    clock.advance(Duration::from_secs(3600));
    guard.poll();
    let stats = guard.stats();
    assert_eq!((stats.samples, stats.slow_samples), (720, 720));
    assert_eq!(stats.trips.sampled, 240);
    assert_eq!(
        guard.stop_info().unwrap().at,
        Duration::from_secs(15),
        "the third sample"
    );
    clock.advance(Duration::from_secs(10));
    guard.poll();
    assert_eq!(guard.stats().samples, 722);
}

#[test]
fn memory_rule_fires_when_resident_memory_crosses_the_limit() {
    let resident = Arc::new(AtomicU64::new(100 << 20));
    let probe = Arc::clone(&resident);
    let config = FrameGuardConfig {
        rules: StopRules {
            memory: true,
            ..StopRules::NONE
        },
        memory_limit_bytes: 2000 << 20,
        ..Default::default()
    };
    let clock = ManualClock::new();
    let guard = FrameGuard::builder(config)
        .clock(clock.clone())
        .memory_probe(move || Some(probe.load(Ordering::SeqCst)))
        .build()
        .unwrap();
    guard.poll();
    assert_eq!(guard.stats().resident_bytes, Some(100 << 20));
    resident.store(2100 << 20, Ordering::SeqCst);
    clock.advance(Duration::from_secs(4));
    guard.poll();
    assert!(!guard.is_stopped(), "the next check is due at 5 s");
    clock.advance(Duration::from_secs(1));
    guard.poll();
    let info = guard.stop_info().unwrap();
    assert_eq!(
        info.reason,
        StopReason::Memory {
            resident_bytes: 2100 << 20,
            limit_bytes: 2000 << 20
        }
    );
    assert_eq!(info.at, Duration::from_secs(5));
    clock.advance(Duration::from_secs(5));
    guard.poll();
    assert_eq!(
        guard.stats().trips.memory,
        1,
        "staying over the limit is one firing"
    );
}

#[test]
fn memory_rule_reads_the_real_resident_size() {
    let config = FrameGuardConfig {
        rules: StopRules {
            memory: true,
            ..StopRules::NONE
        },
        memory_limit_bytes: 1 << 20,
        ..Default::default()
    };
    let guard = FrameGuard::new(config).unwrap();
    guard.poll();
    assert!(guard.stats().resident_bytes.unwrap() > 1 << 20);
    assert!(matches!(
        guard.stop_info().unwrap().reason,
        StopReason::Memory { .. }
    ));
}

#[test]
fn a_stalled_kth_frame_fires_while_still_in_progress_and_only_once() {
    let config = FrameGuardConfig {
        slow_frame_count: 3,
        ..Default::default()
    };
    let (guard, clock) = guard_with(config);
    let stalls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&stalls);
    guard.set_on_stall(move |info| {
        assert_eq!(info.frame, 2);
        seen.fetch_add(1, Ordering::SeqCst);
    });
    frame(&guard, &clock, ms(2100));
    frame(&guard, &clock, ms(2100));
    guard.begin_frame().unwrap();
    clock.advance(ms(2000));
    guard.poll();
    assert!(!guard.is_stopped(), "at the limit, not over it");
    clock.advance(ms(1));
    guard.poll();
    guard.poll();
    let info = guard.stop_info().unwrap();
    assert_eq!(info.frame, 2);
    assert_eq!(
        info.reason,
        StopReason::SlowFrames {
            count: 3,
            limit: ms(2000),
            last: ms(2001),
            in_progress: true
        }
    );
    assert_eq!(stalls.load(Ordering::SeqCst), 1);
    clock.advance(ms(500));
    let record = guard.end_frame().unwrap();
    assert!(record.slow && record.stopped);
    let stats = guard.stats();
    assert_eq!(
        (
            stats.trips.consecutive,
            stats.stalled_frames,
            stats.consecutive_slow
        ),
        (1, 1, 0)
    );
}

#[test]
fn a_stall_that_is_not_the_kth_frame_is_flagged_but_does_not_stop() {
    let (guard, clock) = guard_with(FrameGuardConfig::default());
    guard.begin_frame().unwrap();
    clock.advance(Duration::from_secs(60));
    guard.poll();
    assert!(!guard.is_stopped());
    let stats = guard.stats();
    assert_eq!(
        (stats.stalled_frames, stats.frame_in_progress),
        (1, Some(0))
    );
}

#[test]
fn begin_and_end_out_of_order_are_errors() {
    let (guard, clock) = guard_with(FrameGuardConfig::default());
    assert_eq!(guard.end_frame(), Err(FrameError::NotInProgress));
    assert_eq!(guard.begin_frame(), Ok(0));
    assert_eq!(
        guard.begin_frame(),
        Err(FrameError::InProgress { frame: 0 })
    );
    assert_eq!(
        guard.record_frame(ms(1)),
        Err(FrameError::InProgress { frame: 0 })
    );
    clock.advance(ms(3));
    let record = guard.end_frame().unwrap();
    assert_eq!(
        (record.index, record.duration, record.slow, record.stopped),
        (0, ms(3), false, false)
    );
    assert_eq!(guard.record_frame(ms(1)).unwrap().index, 1);
    assert_eq!(guard.stats().frames, 2);
}

#[test]
fn frame_figures_and_budget_share_match_the_recorded_frames() {
    let (guard, clock) = guard_with(FrameGuardConfig::default());
    for i in 1..=100u64 {
        tick(&guard, &clock, ms(i)); // 1..100 ms: 16 at most 16.7 ms
    }
    let s = guard.stats();
    assert_eq!(s.frames, 100);
    assert_eq!(s.under_budget_share, 0.16);
    assert_eq!(
        (s.max, s.min, s.mean),
        (ms(100), ms(1), Duration::from_micros(50_500))
    );
    assert!(
        (s.p50.as_secs_f64() - 0.050).abs() <= 0.050 / 64.0,
        "{:?}",
        s.p50
    );
    assert!(
        (s.p99.as_secs_f64() - 0.099).abs() <= 0.099 / 64.0,
        "{:?}",
        s.p99
    );
}

#[test]
fn intervals_cover_only_their_own_frames() {
    let (guard, clock) = guard_with(FrameGuardConfig::default());
    for _ in 0..10 {
        tick(&guard, &clock, ms(10));
    }
    let first = guard.take_interval();
    assert_eq!(
        (first.start, first.end, first.frames, first.under_budget),
        (Duration::ZERO, ms(100), 10, 10)
    );
    assert_eq!(first.max, ms(10));
    for _ in 0..4 {
        tick(&guard, &clock, ms(25));
    }
    let second = guard.take_interval();
    assert_eq!(
        (second.start, second.end, second.frames, second.under_budget),
        (ms(100), ms(200), 4, 0)
    );
    assert_eq!(second.p50, ms(25));
    let empty = guard.take_interval();
    assert_eq!((empty.frames, empty.p99), (0, Duration::ZERO));
    assert_eq!(
        guard.stats().frames,
        14,
        "intervals do not reset the totals"
    );
}

#[test]
fn phases_are_timed_on_the_guard_clock() {
    let (guard, clock) = guard_with(FrameGuardConfig::default());
    let physics = guard.add_phase("physics");
    let agents = guard.add_phase("agents");
    assert_eq!(guard.add_phase("physics"), physics);
    guard.time_phase(physics, || clock.advance(ms(2)));
    guard.time_phase(physics, || clock.advance(ms(4)));
    guard.record_phase(agents, ms(7));
    let stats = guard.phase_stats();
    assert_eq!(stats.len(), 2);
    assert_eq!(
        (
            stats[0].name.as_str(),
            stats[0].count,
            stats[0].total,
            stats[0].max
        ),
        ("physics", 2, ms(6), ms(4))
    );
    assert_eq!(
        (stats[1].name.as_str(), stats[1].count, stats[1].total),
        ("agents", 1, ms(7))
    );
}

#[test]
fn phases_are_found_by_index_and_read_one_at_a_time() {
    let (guard, _clock) = guard_with(FrameGuardConfig::default());
    assert_eq!((guard.phase_count(), guard.phase(0)), (0, None));
    let physics = guard.add_phase("physics");
    let agents = guard.add_phase("agents");
    assert_eq!(guard.phase_count(), 2);
    assert_eq!((physics.index(), agents.index()), (0, 1));
    assert_eq!(guard.phase(1), Some(agents));
    assert_eq!(guard.phase(2), None);
    guard.record_phase(agents, ms(3));
    guard.record_phase(agents, ms(5));
    let one = guard.phase_stat(agents).unwrap();
    assert_eq!(one, guard.phase_stats()[1]);
    assert_eq!(
        (one.name.as_str(), one.count, one.total, one.max),
        ("agents", 2, ms(8), ms(5))
    );
    let (other, _) = guard_with(FrameGuardConfig::default());
    assert_eq!(other.phase_stat(agents), None, "an id of another guard");
}

#[test]
fn a_phase_limit_refuses_new_names_but_finds_registered_ones() {
    let (guard, _clock) = guard_with(FrameGuardConfig::default());
    let a = guard.add_phase_within("a", 2).unwrap();
    let b = guard.add_phase_within("b", 2).unwrap();
    assert_eq!(
        guard.add_phase_within("c", 2),
        None,
        "a third name over a limit of 2"
    );
    assert_eq!(guard.phase_count(), 2, "nothing registered when refused");
    assert_eq!(guard.add_phase_within("a", 2), Some(a));
    assert_eq!(
        guard.add_phase_within("b", 0),
        Some(b),
        "found even over the limit"
    );
}

#[test]
fn the_scope_guard_ends_its_frame_when_dropped() {
    let (guard, clock) = guard_with(FrameGuardConfig::default());
    {
        let scope = guard.frame().unwrap();
        assert_eq!(scope.index(), 0);
        clock.advance(ms(5));
    }
    assert_eq!(guard.stats().frames, 1);
    let scope = guard.frame().unwrap();
    clock.advance(ms(6));
    assert_eq!(scope.end().unwrap().duration, ms(6));
    assert_eq!(guard.stats().frames, 2);
}

#[test]
fn a_panicking_callback_is_caught_and_counted() {
    let config = FrameGuardConfig {
        slow_frame_count: 1,
        ..Default::default()
    };
    let (guard, clock) = guard_with(config);
    guard.set_on_stop(|_| panic!("callback bug"));
    tick(&guard, &clock, ms(2500));
    assert!(guard.is_stopped());
    assert_eq!(guard.stats().callback_panics, 1);
}

#[test]
fn a_callback_may_call_back_into_the_guard() {
    let config = FrameGuardConfig {
        slow_frame_count: 1,
        ..Default::default()
    };
    let clock = ManualClock::new();
    let guard = Arc::new(
        FrameGuard::builder(config)
            .clock(clock.clone())
            .build()
            .unwrap(),
    );
    let weak = Arc::downgrade(&guard);
    let frames_seen = Arc::new(AtomicU64::new(u64::MAX));
    let out = Arc::clone(&frames_seen);
    guard.set_on_stop(move |_| {
        let g = weak.upgrade().unwrap();
        out.store(g.stats().frames, Ordering::SeqCst);
        assert!(g.is_stopped());
    });
    tick(&guard, &clock, ms(2500));
    assert_eq!(frames_seen.load(Ordering::SeqCst), 1);
}
