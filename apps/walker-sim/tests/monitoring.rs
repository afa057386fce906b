//! The walker's monitoring columns mean what they say (issue 13): every CSV
//! value in its documented range, `stats_thread_efficiency` filled when the
//! stats pool runs the statistics pass, `parallel_speedup_ratio` counted in
//! CPU time (the summed agent CPU time over the loops' wall time, so never
//! above the cores that ran the loop, even with more threads than cores),
//! and the balancer called by the monitoring task.

use parking_lot::Mutex;
use pool_manager::{Partitioning, available_cores};
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;
use walker_sim::config::{Length, LoopMode, RunConfig};
use walker_sim::monitor_csv::{MonitorCsv, csv_header};
use walker_sim::report::RunReport;
use walker_sim::run::run;
use walker_sim::world::WorldConfig;

/// A `Write` into a shared buffer.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs 2.3 s (two monitoring rows and the final one) of a small world.
fn run_for_csv(mode: LoopMode, threads: usize) -> (RunReport, String) {
    let world = WorldConfig {
        agents: 30,
        substeps: 1,
        seed: 5,
        ..WorldConfig::default()
    };
    let mut config = RunConfig::new(world, mode, threads, 0);
    config.length = Length::Duration(Duration::from_millis(2300));
    config.status_hz = 0.0;
    let buffer = Buffer::default();
    config.csv = Some(MonitorCsv::new(Box::new(buffer.clone())));
    let report = run(&config).unwrap();
    let text = String::from_utf8(buffer.0.lock().clone()).unwrap();
    (report, text)
}

/// The CSV as (column name -> cell) maps, one per row.
fn rows(text: &str) -> Vec<Vec<(String, String)>> {
    let mut lines = text.lines();
    let header = lines.next().expect("a header");
    assert_eq!(header, csv_header());
    let names: Vec<&str> = header.split(',').collect();
    lines
        .map(|line| {
            let cells: Vec<&str> = line.split(',').collect();
            assert_eq!(cells.len(), names.len(), "{line}");
            names
                .iter()
                .zip(cells)
                .map(|(n, c)| (n.to_string(), c.to_string()))
                .collect()
        })
        .collect()
}

fn get<'a>(row: &'a [(String, String)], name: &str) -> &'a str {
    &row.iter().find(|(n, _)| n == name).unwrap().1
}

fn num(row: &[(String, String)], name: &str) -> Option<f64> {
    let c = get(row, name);
    (!c.is_empty()).then(|| c.parse().unwrap_or_else(|_| panic!("{name}={c}")))
}

/// Checks every documented range of one row; returns the speed-up cell.
fn check_row(row: &[(String, String)], threads: usize) -> Option<f64> {
    let cores = available_cores().min(threads) as f64;
    assert_eq!(get(row, "threads"), threads.to_string());
    assert!(num(row, "timestamp").unwrap() > 1.6e9);
    assert!(num(row, "elapsed_s").unwrap() >= 0.0);
    assert!(num(row, "interval_s").unwrap() >= 0.0);
    let frames = num(row, "frames").unwrap();
    assert!(frames >= 0.0 && frames.fract() == 0.0);
    if frames > 0.0 {
        let (p50, p99, max) = (
            num(row, "p50_ms").unwrap(),
            num(row, "p99_ms").unwrap(),
            num(row, "max_ms").unwrap(),
        );
        assert!(0.0 < p50 && p50 <= p99 && p99 <= max, "{p50} {p99} {max}");
        assert!(num(row, "mean_ms").unwrap() <= max);
        assert!(num(row, "fps").unwrap() > 0.0);
    }
    for share in [
        "under_budget_share",
        "thread_pool_utilization",
        "ai_thread_efficiency",
        "stats_thread_efficiency",
        "background_thread_efficiency",
        "lock_contention_rate",
        "physics_thread_efficiency",
        "evaluation_thread_efficiency",
    ] {
        if let Some(x) = num(row, share) {
            assert!((0.0..=1.0).contains(&x), "{share} = {x}");
        }
    }
    let speedup = num(row, "parallel_speedup_ratio");
    if let Some(s) = speedup {
        // CPU time over wall time: at most the cores that ran the loop
        // (a little slack for the clocks' granularity).
        assert!(
            s > 0.0 && s <= cores + 0.05,
            "speed-up {s} on {cores} cores"
        );
    }
    assert!(matches!(get(row, "emergency_stop"), "0" | "1"));
    speedup
}

#[test]
fn the_csv_values_are_in_their_documented_ranges() {
    for (mode, threads) in [
        (LoopMode::Parallel(Partitioning::DYNAMIC), 2),
        (LoopMode::Sequential, 1),
    ] {
        let (report, text) = run_for_csv(mode, threads);
        let rows = rows(&text);
        assert!(rows.len() >= 2, "{text}");
        for row in &rows {
            assert_eq!(get(row, "run"), mode.name());
            check_row(row, report.threads);
        }
        let stats = report.columns.stats_thread_efficiency;
        if threads >= 2 {
            // The stats pool has a thread and runs the statistics pass.
            assert!(report.pool_threads.contains(&("stats", 1)));
            assert!((0.0..=1.0).contains(&stats), "{stats}");
            assert!(
                rows.iter()
                    .any(|r| num(r, "stats_thread_efficiency").is_some())
            );
        } else {
            assert!(stats.is_nan(), "no stats thread in a sequential run");
        }
        // The monitoring task called the balancer once per row it wrote.
        assert!(report.balancer.0 >= 1, "{:?}", report.balancer);
        assert!(report.balancer.1 <= report.balancer.0);
    }
}

#[test]
fn the_speedup_ratio_is_agent_cpu_time_over_loop_wall_time_even_oversubscribed() {
    // More loop threads than cores: with per-agent wall time, agents
    // waiting for a CPU counted as working and the ratio rose toward the
    // thread count.
    let threads = available_cores() * 2;
    let (report, text) = run_for_csv(LoopMode::Parallel(Partitioning::Interleaved), threads);
    for row in rows(&text) {
        check_row(&row, threads);
    }
    let whole = report.columns.parallel_speedup_ratio;
    assert!(
        whole <= available_cores() as f64 + 0.05,
        "{whole} on {} cores",
        available_cores()
    );
    // The definition: summed agent CPU time over the agent loops' wall time
    // (the run's columns start from a zero meter). Before, the meter was fed
    // the agents' wall time: this was agents_work / agents.
    let p = &report.phases;
    let expected = p.agents_cpu.as_secs_f64() / p.agents.as_secs_f64();
    assert!(
        (whole - expected).abs() <= 1e-9 * expected,
        "ratio {whole}, agent CPU / loop wall {expected}, agent wall / loop wall {}",
        p.agents_work.as_secs_f64() / p.agents.as_secs_f64()
    );
}
