//! The frame guard's two stop rules are wired to the walker loop: injected
//! slow frames stop it by the plan's consecutive rule and by the original
//! code's sampled rule, and a normal run never stops.

use frame_guard::{StopReason, StopRules};
use std::time::Duration;
use walker_sim::config::{LoopMode, RunConfig, SlowFrames};
use walker_sim::run::run;
use walker_sim::world::WorldConfig;

fn config(rules: StopRules, slow: Option<SlowFrames>) -> RunConfig {
    let world = WorldConfig {
        agents: 6,
        substeps: 1,
        ..WorldConfig::default()
    };
    let mut c = RunConfig::new(
        world,
        LoopMode::Parallel(walker_sim::config::DYNAMIC),
        2,
        40,
    );
    // The plan's and the coded rule, scaled down: 3 frames over 60 ms; a
    // sample every 20 ms, slow if the frame gap is over 50 ms, 3 in a row.
    c.guard.rules = rules;
    c.guard.slow_frame_limit = Duration::from_millis(60);
    c.guard.slow_frame_count = 3;
    c.guard.sample_interval = Duration::from_millis(20);
    c.guard.sample_gap_limit = Duration::from_millis(50);
    c.guard.slow_sample_count = 3;
    c.status_hz = 0.0;
    c.slow_frames = slow;
    c
}

const SLOW: SlowFrames = SlowFrames {
    from_frame: 10,
    count: 6,
    extra: Duration::from_millis(90),
};

#[test]
fn three_slow_frames_in_a_row_stop_the_loop_by_the_plan_rule() {
    let r = run(&config(StopRules::PLAN, Some(SLOW))).unwrap();
    let stop = r.stop.clone().expect("stopped");
    assert!(
        matches!(stop.reason, StopReason::SlowFrames { count: 3, .. }),
        "{stop}"
    );
    // Frames 10, 11, 12 are slow: the third one stops the loop.
    assert_eq!(stop.frame, 12);
    assert_eq!(r.frames, 13, "the loop sees the stop and ends");
    assert_eq!(r.trips().consecutive, 1);
    assert_eq!(r.trips().sampled, 0);
}

#[test]
fn slow_samples_in_a_row_stop_the_loop_by_the_coded_rule() {
    let r = run(&config(StopRules::CODED, Some(SLOW))).unwrap();
    let stop = r.stop.clone().expect("stopped");
    assert!(
        matches!(stop.reason, StopReason::SlowSamples { count: 3, .. }),
        "{stop}"
    );
    assert!((10..16).contains(&stop.frame), "{stop}");
    // One frozen 90 ms frame holds several 20 ms samples: the rule may
    // count more than one run of 3 before the loop sees the stop.
    assert!(r.trips().sampled >= 1);
    assert!(r.frames <= 17, "the loop ended soon after the stop");
    assert_eq!(r.trips().consecutive, 0);
}

#[test]
fn a_run_without_slow_frames_never_stops() {
    let mut c = config(StopRules::ALL, None);
    // The real limits (2 s frames, 0.5 s gaps).
    c.guard = walker_sim::config::guard_config_defaults();
    let r = run(&c).unwrap();
    assert!(r.stop.is_none());
    assert_eq!(r.frames, 40);
    assert_eq!(r.emergency_stops(), 0);
}
