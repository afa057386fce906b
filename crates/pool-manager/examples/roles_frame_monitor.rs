//! The Rust twin of `examples/c/roles_frame_monitor.c` (issue 14, example
//! c): role pools with a frame guard writing the monitoring CSV, with no
//! hand-written glue: [`Runtime::monitor_inputs`] samples every counter in
//! one call.
//!
//! `cargo run --release -p pool-manager --example roles_frame_monitor -- [CSV_PATH] [FRAMES]`
//! (without CSV_PATH the CSV goes to a temporary file, removed at the end)
//!
//! The pools and the guard come from the environment (`MAX_AI_THREADS`, ...,
//! `FRAME_BUDGET_MS`, `MONITOR_INTERVAL_MS`, ...; rows every 0.1 s unless
//! `MONITOR_INTERVAL_MS` says otherwise). Each frame steps 64 agents on the
//! ai pool, each eating from a shared food store behind a counting lock;
//! every 8th frame a statistics task runs on the stats pool. At the end the
//! CSV is read back and checked (header, at least two rows, every share in
//! [0, 1], every frame counted, no emergency stop); the exit code says
//! whether every check passed.

use frame_guard::{CSV_HEADER, CsvMonitor, FrameGuard, FrameGuardConfig};
use pool_manager::{Partitioning, Role, Runtime};
use std::process::ExitCode;
use std::time::Duration;
use sync_stats::CountingMutex;

const AGENTS: usize = 64;

/// One agent's frame: some arithmetic, then a bite of the shared food.
fn step_agent(i: usize, energy: &mut f64, food: &CountingMutex<f64>) {
    let mut x = (i + 1) as f64;
    for _ in 0..2000 + (i % 7) * 300 {
        x = x * 0.999 + 0.5 / (x + 1.0);
    }
    let bite = {
        let mut f = food.lock();
        let bite = f.min(0.01);
        *f -= bite;
        bite
    };
    *energy += bite + x * 1e-9;
}

/// Checks the CSV; returns the failures found.
fn check_csv(text: &str, frames_run: u64) -> Vec<String> {
    let mut failures = Vec::new();
    let mut lines = text.lines();
    if lines.next() != Some(CSV_HEADER) {
        return vec!["the CSV does not start with the header".into()];
    }
    let names: Vec<&str> = CSV_HEADER.split(',').collect();
    let mut rows = 0;
    let mut frames = 0u64;
    for line in lines {
        rows += 1;
        let cells: Vec<&str> = line.split(',').collect();
        if cells.len() != names.len() {
            failures.push(format!("row {rows}: {} cells", cells.len()));
            continue;
        }
        for (name, cell) in names.iter().zip(cells) {
            if cell.is_empty() {
                if matches!(*name, "frames" | "ai_thread_efficiency") {
                    failures.push(format!("row {rows}: no {name}"));
                }
                continue;
            }
            let Ok(v) = cell.parse::<f64>() else {
                failures.push(format!("row {rows}: {name} = {cell:?}"));
                continue;
            };
            let share = name.contains("efficiency")
                || name.contains("utilization")
                || matches!(*name, "lock_contention_rate" | "under_budget_share");
            if share && !(0.0..=1.0).contains(&v) {
                failures.push(format!("row {rows}: {name} = {v} outside [0, 1]"));
            }
            match *name {
                "frames" => frames += v as u64,
                "emergency_stop" if v != 0.0 => {
                    failures.push(format!("row {rows}: an emergency stop"))
                }
                "parallel_speedup_ratio" if v < 0.0 => {
                    failures.push(format!("row {rows}: speed-up {v}"))
                }
                _ => {}
            }
        }
    }
    if rows < 2 {
        failures.push(format!("{rows} rows, expected at least 2"));
    }
    if frames != frames_run {
        failures.push(format!(
            "the rows count {frames} frames, the loop ran {frames_run}"
        ));
    }
    println!(
        "roles_frame_monitor (Rust): {rows} rows, {frames} frames, {} failed checks",
        failures.len()
    );
    failures
}

fn run(path: &str, frames: u64) -> Result<Vec<String>, String> {
    let rt = Runtime::from_env().map_err(|e| e.to_string())?;
    let mut config = FrameGuardConfig::from_env().map_err(|e| e.to_string())?;
    if std::env::var_os("MONITOR_INTERVAL_MS").is_none() {
        config.monitor_interval = Duration::from_millis(100);
    }
    let guard = FrameGuard::new(config).map_err(|e| e.to_string())?;
    let file = std::fs::File::create(path).map_err(|e| format!("{path}: {e}"))?;
    let mut csv = CsvMonitor::new(&guard, std::io::BufWriter::new(file));
    // The counters before the loop are the first row's starting point.
    csv.monitor_mut().set_baseline(&rt.monitor_inputs(None));
    let food = CountingMutex::new("food", 1e9);
    let mut energy = vec![0.0f64; AGENTS];
    // At least `frames` frames, and on until two rows are written: on a fast,
    // quiet machine 120 frames take less than one monitoring interval.
    let mut rows_written = 0;
    let mut frame = 0u64;
    while frame < frames || rows_written < 2 {
        guard.begin_frame().map_err(|e| e.to_string())?;
        rt.pool(Role::Ai)
            .for_each_mut(&mut energy, Partitioning::DYNAMIC, |i, e| {
                step_agent(i, e, &food)
            })
            .map_err(|e| e.to_string())?;
        if frame % 8 == 0 {
            let snapshot = energy.clone();
            let mean = rt
                .pool(Role::Stats)
                .submit(move || snapshot.iter().sum::<f64>() / AGENTS as f64)
                .map_err(|e| e.to_string())?
                .wait()
                .map_err(|e| e.to_string())?;
            std::hint::black_box(mean);
        }
        guard.end_frame().map_err(|e| e.to_string())?;
        if csv
            .write_if_due(&guard, || Some(rt.monitor_inputs(None)))
            .map_err(|e| e.to_string())?
            .is_some()
        {
            rows_written += 1;
        }
        frame += 1;
    }
    // The last row covers the tail of the run.
    csv.write_row(&guard, Some(&rt.monitor_inputs(None)))
        .map_err(|e| e.to_string())?;
    drop(csv);
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    Ok(check_csv(&text, frame))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let temp = std::env::temp_dir().join(format!("roles_frame_monitor-{}.csv", std::process::id()));
    let path = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| temp.to_string_lossy().into_owned());
    let frames = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(120);
    let result = run(&path, frames);
    if args.get(1).is_none() {
        let _ = std::fs::remove_file(&temp);
    }
    match result {
        Ok(failures) if failures.is_empty() => ExitCode::SUCCESS,
        Ok(failures) => {
            for f in failures {
                eprintln!("check: {f}");
            }
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("roles_frame_monitor: {e}");
            ExitCode::FAILURE
        }
    }
}
