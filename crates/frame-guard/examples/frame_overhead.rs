//! What the guard costs a frame loop: `begin_frame` + `end_frame` (two clock
//! reads, two uncontended lock round trips, the histogram and rule updates)
//! against the bare two clock reads a loop would do to time itself, in the
//! same process. `cargo run --release -p frame-guard --example frame_overhead`.

use frame_guard::{FrameGuard, FrameGuardConfig, StopRules};
use std::hint::black_box;
use std::time::{Duration, Instant};

const FRAMES: u32 = 1_000_000;

fn per_frame(f: impl Fn()) -> f64 {
    let start = Instant::now();
    for _ in 0..FRAMES {
        f();
    }
    start.elapsed().as_secs_f64() * 1e9 / f64::from(FRAMES)
}

fn main() {
    let all = FrameGuardConfig {
        rules: StopRules {
            consecutive: true,
            sampled: true,
            memory: false,
        },
        ..Default::default()
    };
    let guard = FrameGuard::new(all).unwrap();
    // Warm up, then take the best of three runs of each.
    let best = |f: &dyn Fn()| (0..3).map(|_| per_frame(f)).fold(f64::MAX, f64::min);
    let clocks = best(&|| {
        let a = Instant::now();
        black_box(a.elapsed());
    });
    let begin_end = best(&|| {
        guard.begin_frame().unwrap();
        black_box(guard.end_frame().unwrap());
    });
    let record = best(&|| {
        black_box(guard.record_frame(Duration::from_micros(300)).unwrap());
    });
    let stopped = best(&|| {
        black_box(guard.is_stopped());
    });
    println!("two clock reads (baseline)   {clocks:7.1} ns/frame");
    println!(
        "begin_frame + end_frame      {begin_end:7.1} ns/frame  ({:.1}x the baseline)",
        begin_end / clocks
    );
    println!("record_frame(duration)       {record:7.1} ns/frame");
    println!("is_stopped                   {stopped:7.1} ns");
    println!("(frames recorded: {})", guard.stats().frames);
}
