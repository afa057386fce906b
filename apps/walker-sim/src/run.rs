//! [`run`]: one run of the walker loop on the role pools, with the frame
//! guard, the monitoring CSV, the plan's background schedule
//! ([`background`](crate::background)), the status reader and the progress
//! line; it returns a [`RunReport`]. The threads of a run are listed in
//! [`config`](crate::config); what it is told is a [`RunConfig`].
//!
//! A run in order: start the role pools and the guard, choose the executors
//! (`executors`), schedule the background tasks, start the status reader,
//! run the frames (`FrameLoop`), stop the tasks and the reader, and sum up
//! the whole run (`whole_run`).

use crate::aggregates::Journal;
use crate::background::{Background, monitor_inputs};
use crate::config::{Length, LoopMode, RunConfig, runtime_config};
use crate::exec::Executor;
use crate::progress::Progress;
use crate::report::RunReport;
use crate::status::StatusReader;
use crate::world::{FrameTimes, World};
use frame_guard::{
    FrameGuard, FrameStats, IntervalFrames, MonitorInputs, MonitorRow, SpeedupMeter,
    process_cpu_time,
};
use parking_lot::Mutex;
use pool_manager::{Role, Runtime};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The machine's 1-minute load average (`/proc/loadavg`).
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Runs the walker loop as `config` says and reports.
pub fn run(config: &RunConfig) -> Result<RunReport, String> {
    config.world.validate()?;
    if config.threads == 0 {
        return Err("threads = 0: at least 1".into());
    }
    let sequential = config.mode == LoopMode::Sequential;
    let runtime = Arc::new(
        Runtime::new(runtime_config(config.threads, sequential)?)
            .map_err(|e| format!("starting the role pools: {e}"))?,
    );
    let guard = Arc::new(FrameGuard::new(config.guard.clone()).map_err(|e| e.to_string())?);
    let mut world = World::new(config.world.clone())?;
    let meter = Arc::new(SpeedupMeter::new());
    let (exec, stats_exec) = executors(&runtime, config.mode);
    let participants = exec.participants();
    let pool_threads = pool_threads(&runtime);
    let run_name = config.mode.name();
    let mut background = Background::start(
        &runtime,
        &guard,
        &meter,
        &world,
        config.csv.clone(),
        run_name,
        participants,
    )?;
    let reader = if config.status_hz > 0.0 {
        Some(
            StatusReader::start(world.status_board(), config.status_hz)
                .map_err(|e| format!("starting the status reader: {e}"))?,
        )
    } else {
        None
    };
    let load_before = load_average();
    let mut progress = Progress::new(config.progress, format!("{run_name} x{participants}"));
    let started = Instant::now();
    let cpu_start = process_cpu_time();
    let frame_loop = FrameLoop {
        config,
        started,
        runtime: &runtime,
        guard: &guard,
        exec: &exec,
        stats_exec: &stats_exec,
        meter: &meter,
        journal: background.journal(),
        reader: reader.as_ref(),
    };
    let (frames, failure) = frame_loop.run(&mut world, &mut progress)?;
    let elapsed = started.elapsed();
    let cpu_cores = process_cpu_time().saturating_sub(cpu_start).as_secs_f64()
        / elapsed.as_secs_f64().max(1e-9);
    let end_inputs = monitor_inputs(&runtime, &meter);
    let tasks = background.stop(&runtime);
    let figures = reader.map(StatusReader::finish).unwrap_or_default();
    if config.progress {
        progress.update(frames, config.length, &guard, &figures.latency, true);
    }
    if let Some(e) = failure {
        return Err(format!("frame {frames} failed: {e}"));
    }
    let aggregates = background.finish(end_inputs)?;
    let (frame_stats, columns) = whole_run(&guard, elapsed, &background.start_inputs, &end_inputs);
    Ok(RunReport {
        mode: config.mode,
        threads: participants,
        world: config.world.clone(),
        frames,
        elapsed,
        stop: guard.stop_info(),
        frame_stats,
        status_requests: figures.latency.count(),
        status_p50: figures.latency.quantile(0.5),
        status_p99: figures.latency.quantile(0.99),
        status_max: figures.latency.max(),
        status_bytes: figures.last_bytes,
        columns,
        phases: aggregates.phases,
        costs: aggregates.costs,
        hash: world.state_hash(),
        state_bytes: world.state_bytes(),
        background: tasks,
        evaluations: background.evaluations(),
        status_fresh_buffers: world.status_board().fresh_buffers(),
        pool_threads,
        load: (load_before, load_average()),
        cpu_cores,
        balancer: background.balancer(),
    })
}

/// The agent loop's executor for `mode`, and the statistics pass's: the
/// stats pool when it has threads of its own (by default it has none: the ai
/// pool's threads run it).
fn executors(runtime: &Runtime, mode: LoopMode) -> (Executor<'_>, Executor<'_>) {
    let exec = match mode {
        LoopMode::Sequential => Executor::Sequential,
        LoopMode::Parallel(partitioning) => Executor::Pool {
            pool: runtime.pool(Role::Ai),
            partitioning,
        },
    };
    let stats_pool = runtime.pool(Role::Stats);
    let stats_exec = match exec {
        Executor::Pool { partitioning, .. } if stats_pool.threads() > 0 => Executor::Pool {
            pool: stats_pool,
            partitioning,
        },
        other => other,
    };
    (exec, stats_exec)
}

/// Worker threads of each role pool (pools with none left out).
fn pool_threads(runtime: &Runtime) -> Vec<(&'static str, usize)> {
    Role::ALL
        .iter()
        .map(|&r| (r.name(), runtime.pool(r).threads()))
        .filter(|&(_, n)| n > 0)
        .collect()
}

/// What the frame loop uses beside the world and the progress line.
struct FrameLoop<'a> {
    config: &'a RunConfig,
    /// When the run started (its length may be a duration).
    started: Instant,
    runtime: &'a Runtime,
    guard: &'a FrameGuard,
    exec: &'a Executor<'a>,
    stats_exec: &'a Executor<'a>,
    meter: &'a SpeedupMeter,
    journal: &'a Mutex<Journal>,
    reader: Option<&'a StatusReader>,
}

impl FrameLoop<'_> {
    /// Runs frames until the run's length is reached or the guard stops the
    /// loop; returns the frames run and the error of a frame that failed.
    /// Err: the guard's own failure.
    fn run(
        &self,
        world: &mut World,
        progress: &mut Progress,
    ) -> Result<(u64, Option<String>), String> {
        let mut frames = 0u64;
        while !self.is_over(frames) {
            let times = match self.frame(world, frames)? {
                Ok(t) => t,
                Err(e) => return Ok((frames, Some(e))),
            };
            frames += 1;
            self.record(world, times);
            // Without background threads, the periodic tasks run here.
            self.runtime.scheduler().run_due();
            if self.config.progress {
                let status = self.reader.map(|r| r.latency()).unwrap_or_default();
                progress.update(frames, self.config.length, self.guard, &status, false);
            }
        }
        Ok((frames, None))
    }

    /// True when the run's length is reached or the guard has stopped.
    fn is_over(&self, frames: u64) -> bool {
        let done = match self.config.length {
            Length::Frames(n) => frames >= n,
            Length::Duration(d) => self.started.elapsed() >= d,
        };
        done || self.guard.is_stopped()
    }

    /// Frame `index` under the guard's clock, with the injected delay if it
    /// is one of the slow frames; the outer error is the guard's, the inner
    /// the world's.
    fn frame(&self, world: &mut World, index: u64) -> Result<Result<FrameTimes, String>, String> {
        self.guard.begin_frame().map_err(|e| e.to_string())?;
        let result = world.step_frame_with(self.exec, self.stats_exec);
        if let Some(slow) = self.config.slow_frames
            && (slow.from_frame..slow.from_frame + slow.count).contains(&index)
        {
            std::thread::sleep(slow.extra);
        }
        self.guard.end_frame().map_err(|e| e.to_string())?;
        Ok(result)
    }

    /// Feeds a frame's agent time to the speed-up meter and keeps its
    /// records for the cleanup task.
    fn record(&self, world: &World, times: FrameTimes) {
        // CPU time, as SpeedupMeter documents: with wall time a thread
        // waiting for a CPU counted as working, and the ratio could exceed
        // the cores that ran the loop.
        self.meter.add_wall(times.agents);
        self.meter.add_work(times.agents_cpu);
        self.journal.lock().record(times, world.last_costs());
    }
}

/// The guard's figures over the whole run, and the monitoring columns of one
/// row covering it (from the inputs at its start and end).
fn whole_run(
    guard: &FrameGuard,
    elapsed: Duration,
    start: &MonitorInputs,
    end: &MonitorInputs,
) -> (FrameStats, MonitorRow) {
    let frame_stats = guard.stats();
    let whole = IntervalFrames {
        start: Duration::ZERO,
        end: elapsed,
        frames: frame_stats.frames,
        under_budget: (frame_stats.under_budget_share * frame_stats.frames as f64).round() as u64,
        p50: frame_stats.p50,
        p99: frame_stats.p99,
        max: frame_stats.max,
        mean: frame_stats.mean,
    };
    let columns = MonitorRow::compute(&whole, elapsed, 0.0, Some((start, end)), guard.is_stopped());
    (frame_stats, columns)
}
