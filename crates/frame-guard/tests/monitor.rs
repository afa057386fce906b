//! The monitoring columns are the stated ratios of interval deltas.

use frame_guard::{
    CSV_HEADER, CSV_ROW_MAX, CsvMonitor, FrameGuard, FrameGuardConfig, IntervalFrames, ManualClock,
    MonitorInputs, MonitorRow, PoolCounters, SpeedupMeter,
};
use std::time::Duration;

fn s(x: f64) -> Duration {
    Duration::from_secs_f64(x)
}

fn pool(busy: f64, alive: f64) -> PoolCounters {
    PoolCounters {
        busy: s(busy),
        alive: s(alive),
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

fn one_second_of_frames() -> IntervalFrames {
    IntervalFrames {
        start: s(1.0),
        end: s(2.0),
        frames: 50,
        under_budget: 45,
        p50: s(0.012),
        p99: s(0.030),
        max: s(0.041),
        mean: s(0.014),
    }
}

#[test]
fn the_six_plan_columns_are_the_documented_ratios() {
    let before = MonitorInputs {
        ai: pool(1.0, 4.0),
        physics: pool(0.0, 1.0),
        stats: pool(0.5, 2.0),
        background: pool(0.1, 3.0),
        evaluation: pool(0.0, 1.0),
        lock_acquisitions: 1000,
        lock_contended: 10,
        parallel_work: s(3.0),
        parallel_wall: s(2.0),
    };
    // One second later: ai 2 threads 75 % busy, stats 1 thread 50 %,
    // background 3 threads 10 %, physics idle, evaluation 1 thread 20 %.
    let now = MonitorInputs {
        ai: pool(2.5, 6.0),
        physics: pool(0.0, 2.0),
        stats: pool(1.0, 3.0),
        background: pool(0.4, 6.0),
        evaluation: pool(0.2, 2.0),
        lock_acquisitions: 1400,
        lock_contended: 110,
        parallel_work: s(4.8),
        parallel_wall: s(3.0),
    };
    let row = MonitorRow::compute(
        &one_second_of_frames(),
        s(2.0),
        1.7e9,
        Some((&before, &now)),
        false,
    );
    assert!(close(row.ai_thread_efficiency, 0.75), "{row:?}");
    assert!(close(row.stats_thread_efficiency, 0.5));
    assert!(close(row.background_thread_efficiency, 0.1));
    assert!(close(row.physics_thread_efficiency, 0.0));
    assert!(close(row.evaluation_thread_efficiency, 0.2));
    // Σ busy = 1.5 + 0 + 0.5 + 0.3 + 0.2 = 2.5 ; Σ alive = 2 + 1 + 1 + 3 + 1 = 8.
    assert!(close(row.thread_pool_utilization, 2.5 / 8.0));
    assert!(close(row.lock_contention_rate, 100.0 / 400.0));
    assert!(close(row.parallel_speedup_ratio, 1.8));
    assert_eq!(row.frames, 50);
    assert!(close(row.fps, 50.0));
    assert!(close(row.under_budget_share, 0.9));
    assert!(
        close(row.p50_ms, 12.0)
            && close(row.p99_ms, 30.0)
            && close(row.max_ms, 41.0)
            && close(row.mean_ms, 14.0)
    );
    assert!(close(row.interval_s, 1.0) && close(row.elapsed_s, 2.0));
}

#[test]
fn zero_denominators_give_empty_cells_not_made_up_numbers() {
    let zero = MonitorInputs::default();
    let frames = IntervalFrames {
        frames: 0,
        under_budget: 0,
        ..one_second_of_frames()
    };
    let row = MonitorRow::compute(&frames, s(1.0), 0.0, Some((&zero, &zero)), true);
    for x in [
        row.thread_pool_utilization,
        row.ai_thread_efficiency,
        row.lock_contention_rate,
        row.parallel_speedup_ratio,
        row.p50_ms,
        row.under_budget_share,
    ] {
        assert!(x.is_nan());
    }
    let csv = row.to_csv();
    let cells: Vec<&str> = csv.split(',').collect();
    let names: Vec<&str> = CSV_HEADER.split(',').collect();
    assert_eq!(cells.len(), names.len());
    let cell = |name: &str| cells[names.iter().position(|n| *n == name).unwrap()];
    assert_eq!(cell("frames"), "0");
    assert_eq!(cell("fps"), "0.00");
    assert_eq!(cell("p50_ms"), "");
    assert_eq!(cell("thread_pool_utilization"), "");
    assert_eq!(cell("lock_contention_rate"), "");
    assert_eq!(cell("emergency_stop"), "1");
    let without = MonitorRow::compute(&one_second_of_frames(), s(1.0), 0.0, None, false);
    assert!(without.ai_thread_efficiency.is_nan() && !without.p50_ms.is_nan());
}

#[test]
fn counters_that_go_backwards_count_as_no_change() {
    let before = MonitorInputs {
        ai: pool(5.0, 10.0),
        lock_acquisitions: 100,
        ..Default::default()
    };
    let now = MonitorInputs {
        ai: pool(1.0, 12.0),
        lock_acquisitions: 50,
        ..Default::default()
    };
    let row = MonitorRow::compute(
        &one_second_of_frames(),
        s(1.0),
        0.0,
        Some((&before, &now)),
        false,
    );
    assert!(close(row.ai_thread_efficiency, 0.0));
    assert!(row.lock_contention_rate.is_nan());
}

#[test]
fn the_header_has_the_six_plan_columns_and_rows_stay_short() {
    for column in [
        "thread_pool_utilization",
        "ai_thread_efficiency",
        "stats_thread_efficiency",
        "background_thread_efficiency",
        "lock_contention_rate",
        "parallel_speedup_ratio",
    ] {
        assert!(CSV_HEADER.split(',').any(|c| c == column), "{column}");
    }
    for c in [
        "timestamp",
        "frames",
        "fps",
        "p50_ms",
        "p99_ms",
        "max_ms",
        "under_budget_share",
    ] {
        assert!(CSV_HEADER.split(',').any(|x| x == c), "{c}");
    }
    let huge = MonitorInputs {
        ai: PoolCounters {
            busy: Duration::MAX,
            alive: Duration::from_nanos(1),
        },
        parallel_work: Duration::MAX,
        parallel_wall: Duration::from_nanos(1),
        ..Default::default()
    };
    let frames = IntervalFrames {
        frames: u64::MAX,
        under_budget: u64::MAX,
        max: Duration::MAX,
        ..one_second_of_frames()
    };
    let row = MonitorRow::compute(
        &frames,
        Duration::MAX,
        f64::MAX,
        Some((&MonitorInputs::default(), &huge)),
        true,
    );
    let line = row.to_csv();
    assert!(line.len() < CSV_ROW_MAX, "{} bytes: {line}", line.len());
    assert!(
        line.split(',')
            .all(|c| c.is_empty() || c.parse::<f64>().is_ok()),
        "{line}"
    );
}

#[test]
fn csv_monitor_writes_the_header_once_then_a_row_per_interval() {
    let clock = ManualClock::new();
    let guard = FrameGuard::builder(FrameGuardConfig::default())
        .clock(clock.clone())
        .build()
        .unwrap();
    let mut monitor = CsvMonitor::new(&guard, Vec::new());
    let mut inputs = MonitorInputs::default();
    let mut rows = Vec::new();
    for frame in 0..250u32 {
        clock.advance(Duration::from_millis(10));
        guard.record_frame(Duration::from_millis(10)).unwrap();
        inputs.ai.busy += Duration::from_millis(5); // one ai thread, half busy
        inputs.ai.alive += Duration::from_millis(10);
        if let Some(row) = monitor.write_if_due(&guard, || Some(inputs)).unwrap() {
            rows.push((frame, row));
        }
    }
    assert_eq!(rows.len(), 2, "rows at 1 s and 2 s");
    assert_eq!(rows[0].0, 99);
    for (_, row) in &rows {
        assert_eq!(row.frames, 100);
        assert!(close(row.ai_thread_efficiency, 0.5));
        assert!(close(row.fps, 100.0));
    }
    let text = String::from_utf8(monitor.into_inner()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0], CSV_HEADER);
}

#[test]
fn a_baseline_keeps_earlier_counters_out_of_the_first_row() {
    let clock = ManualClock::new();
    let guard = FrameGuard::builder(FrameGuardConfig::default())
        .clock(clock.clone())
        .build()
        .unwrap();
    let mut monitor = CsvMonitor::new(&guard, std::io::sink());
    let earlier = MonitorInputs {
        stats: pool(100.0, 100.0),
        ..Default::default()
    };
    monitor.monitor_mut().set_baseline(&earlier);
    clock.advance(Duration::from_secs(1));
    let now = MonitorInputs {
        stats: pool(100.25, 101.0),
        ..Default::default()
    };
    let row = monitor.write_row(&guard, Some(&now)).unwrap();
    assert!(close(row.stats_thread_efficiency, 0.25));
}

#[test]
fn speedup_meter_counts_task_cpu_time_not_waiting() {
    let meter = SpeedupMeter::new();
    meter.section(|| {
        std::thread::scope(|scope| {
            for _ in 0..2 {
                scope.spawn(|| {
                    meter.task(|| {
                        std::thread::sleep(Duration::from_millis(20)); // waiting is not work
                        let mut x = 1u64;
                        for i in 0..3_000_000u64 {
                            x = x.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(i);
                        }
                        std::hint::black_box(x);
                    })
                });
            }
        })
    });
    let (work, wall) = meter.totals();
    assert!(wall >= Duration::from_millis(20));
    assert!(work > Duration::ZERO);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let ratio = work.as_secs_f64() / wall.as_secs_f64();
    assert!(
        ratio <= cores * 1.05,
        "speed-up {ratio} above {cores} cores"
    );
    meter.add_work(Duration::from_secs(1));
    meter.add_wall(Duration::from_secs(2));
    assert_eq!(
        meter.totals(),
        (work + Duration::from_secs(1), wall + Duration::from_secs(2))
    );
}

#[test]
fn impossible_samples_are_named_by_check_and_skewed_intervals_are_clamped_to_one() {
    let ok = MonitorInputs {
        ai: pool(1.0, 1.0),
        lock_acquisitions: 5,
        lock_contended: 5,
        ..Default::default()
    };
    assert_eq!(ok.check(), Ok(()));
    let busy_over_alive = MonitorInputs {
        stats: pool(10.0, 1.0),
        ..Default::default()
    };
    assert!(busy_over_alive.check().unwrap_err().contains("stats.busy"));
    let contended = MonitorInputs {
        lock_acquisitions: 3,
        lock_contended: 4,
        ..Default::default()
    };
    assert!(contended.check().unwrap_err().contains("lock_contended"));

    // Two possible samples whose difference has more busy than alive time
    // (read a moment apart): shares are 1, never above; a pool with no
    // alive time stays an empty cell.
    let before = MonitorInputs {
        ai: pool(0.0, 10.0),
        lock_acquisitions: 10,
        ..Default::default()
    };
    let now = MonitorInputs {
        ai: pool(5.0, 10.5),
        lock_acquisitions: 12,
        lock_contended: 2,
        ..Default::default()
    };
    let row = MonitorRow::compute(
        &one_second_of_frames(),
        s(1.0),
        0.0,
        Some((&before, &now)),
        false,
    );
    assert_eq!(row.ai_thread_efficiency, 1.0);
    assert_eq!(row.thread_pool_utilization, 1.0);
    assert_eq!(row.lock_contention_rate, 1.0);
    assert!(row.physics_thread_efficiency.is_nan());
}
