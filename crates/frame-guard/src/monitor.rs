//! Monitoring rows: one CSV row per interval with the frame figures and the
//! walker plan's six threading columns, computed from interval deltas of
//! cumulative counters the caller samples ([`MonitorInputs`]).
//!
//! The inputs are plain numbers so that this crate depends on no pool or lock
//! implementation: the caller fills them from its pools' and locks' counters.

use crate::guard::FrameGuard;
use crate::types::IntervalFrames;
use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use thread_support::{duration_to_nanos, thread_cpu_time};

/// Cumulative thread-time counters of one pool since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolCounters {
    /// Sum over the pool's worker threads of the time spent running tasks.
    pub busy: Duration,
    /// Sum over the pool's worker threads of the time they were alive
    /// (running or waiting for work).
    pub alive: Duration,
}

/// A sample of the cumulative counters the monitoring columns are computed
/// from. Every field only grows; a row uses the difference between this
/// sample and the previous row's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MonitorInputs {
    /// The ai role pool.
    pub ai: PoolCounters,
    /// The physics role pool.
    pub physics: PoolCounters,
    /// The stats role pool.
    pub stats: PoolCounters,
    /// The background role pool.
    pub background: PoolCounters,
    /// The evaluation role pool.
    pub evaluation: PoolCounters,
    /// Lock acquisitions (all counted locks).
    pub lock_acquisitions: u64,
    /// Acquisitions that found the lock held and had to wait.
    pub lock_contended: u64,
    /// Work done inside parallel sections: the sum of the tasks' run times
    /// (see [`SpeedupMeter`]), the time they would take one after another.
    pub parallel_work: Duration,
    /// Wall time of those parallel sections.
    pub parallel_wall: Duration,
}

impl MonitorInputs {
    /// Checks that the sample is possible: no pool busy longer than it was
    /// alive, no more contended lock acquisitions than acquisitions. The
    /// error names the fields (the C API refuses such inputs with it).
    pub fn check(&self) -> Result<(), String> {
        let names = ["ai", "physics", "stats", "background", "evaluation"];
        for (name, p) in names.into_iter().zip(self.pools()) {
            if p.busy > p.alive {
                return Err(format!(
                    "{name}.busy ({:.9} s) is more than {name}.alive ({:.9} s): a pool's threads cannot run tasks longer than they live",
                    p.busy.as_secs_f64(),
                    p.alive.as_secs_f64()
                ));
            }
        }
        if self.lock_contended > self.lock_acquisitions {
            return Err(format!(
                "lock_contended ({}) is more than lock_acquisitions ({})",
                self.lock_contended, self.lock_acquisitions
            ));
        }
        Ok(())
    }

    /// The five pools, in column order.
    pub fn pools(&self) -> [PoolCounters; 5] {
        [
            self.ai,
            self.physics,
            self.stats,
            self.background,
            self.evaluation,
        ]
    }
}

/// `num / den`, or NaN (an empty CSV cell) when `den` is zero.
fn ratio(num: Duration, den: Duration) -> f64 {
    if den.is_zero() {
        f64::NAN
    } else {
        num.as_secs_f64() / den.as_secs_f64()
    }
}

fn delta(now: Duration, before: Duration) -> Duration {
    now.saturating_sub(before)
}

/// A share (busy / alive, contended / acquisitions) clamped to at most 1:
/// two samples taken a moment apart can show a little more busy than alive
/// time in one interval, and a share above 1 means nothing.
fn share(x: f64) -> f64 {
    // Not f64::min, which turns NaN (an empty cell) into 1.
    if x > 1.0 { 1.0 } else { x }
}

fn efficiency(now: PoolCounters, before: PoolCounters) -> f64 {
    share(ratio(
        delta(now.busy, before.busy),
        delta(now.alive, before.alive),
    ))
}

/// One monitoring row. Ratios whose denominator was zero in the interval are
/// NaN and written as empty cells; so are frame times of an interval
/// without frames. The utilisation, efficiency and contention columns are
/// shares, clamped to at most 1 (see [`MonitorInputs::check`] for inputs
/// that are impossible rather than skewed).
///
/// Column definitions (Δ = change of a cumulative counter over the interval):
/// - `thread_pool_utilization` = Σ over the five pools of Δbusy / Σ of Δalive:
///   the share of pool thread-time spent running tasks.
/// - `ai_thread_efficiency`, `stats_thread_efficiency`,
///   `background_thread_efficiency` (and `physics_…`, `evaluation_…`) =
///   Δbusy / Δalive of that role's pool.
/// - `lock_contention_rate` = Δcontended / Δacquisitions of the counted locks.
/// - `parallel_speedup_ratio` = Δparallel_work / Δparallel_wall: the
///   sequential-equivalent time of the parallel sections' tasks (their
///   summed CPU time, see [`SpeedupMeter`]) over the wall time the sections
///   took, i.e. T1 / Tp for the work actually done in the interval.
/// - `frames`, `fps` (= frames / interval), `p50_ms`, `p99_ms`, `max_ms`,
///   `mean_ms`, `under_budget_share` (= frames at most the budget / frames):
///   the frames recorded in the interval.
#[derive(Debug, Clone, PartialEq)]
pub struct MonitorRow {
    /// Wall-clock time of the row, seconds since the Unix epoch.
    pub timestamp: f64,
    /// Guard-clock time since the monitor started, in seconds.
    pub elapsed_s: f64,
    /// Length of the interval the row covers, in seconds.
    pub interval_s: f64,
    /// Frames recorded in the interval.
    pub frames: u64,
    /// Frames per second over the interval.
    pub fps: f64,
    /// Median frame time, ms.
    pub p50_ms: f64,
    /// 99th-percentile frame time, ms.
    pub p99_ms: f64,
    /// Longest frame, ms.
    pub max_ms: f64,
    /// Mean frame time, ms.
    pub mean_ms: f64,
    /// Share of the interval's frames at most the budget.
    pub under_budget_share: f64,
    /// See the column definitions above.
    pub thread_pool_utilization: f64,
    /// Busy / alive of the ai pool.
    pub ai_thread_efficiency: f64,
    /// Busy / alive of the stats pool.
    pub stats_thread_efficiency: f64,
    /// Busy / alive of the background pool.
    pub background_thread_efficiency: f64,
    /// Contended / all lock acquisitions.
    pub lock_contention_rate: f64,
    /// Task work / wall time of the parallel sections.
    pub parallel_speedup_ratio: f64,
    /// Busy / alive of the physics pool.
    pub physics_thread_efficiency: f64,
    /// Busy / alive of the evaluation pool.
    pub evaluation_thread_efficiency: f64,
    /// True if the guard is stopped.
    pub emergency_stop: bool,
}

/// The CSV header line (without the newline), in the order of [`MonitorRow::to_csv`].
pub const CSV_HEADER: &str = "timestamp,elapsed_s,interval_s,frames,fps,p50_ms,p99_ms,max_ms,mean_ms,under_budget_share,\
thread_pool_utilization,ai_thread_efficiency,stats_thread_efficiency,background_thread_efficiency,\
lock_contention_rate,parallel_speedup_ratio,physics_thread_efficiency,evaluation_thread_efficiency,emergency_stop";

/// The longest a CSV row can be, newline included: every number is written
/// in at most 24 characters.
pub const CSV_ROW_MAX: usize = 512;

/// A number with `decimals` decimals, in scientific form when very large, and
/// an empty string for NaN; never more than 24 characters.
fn num(x: f64, decimals: usize) -> String {
    if x.is_nan() {
        String::new()
    } else if x.abs() < 1e12 {
        format!("{x:.decimals$}")
    } else {
        format!("{x:.6e}")
    }
}

fn ms(d: Duration, frames: u64) -> f64 {
    if frames == 0 {
        f64::NAN
    } else {
        d.as_secs_f64() * 1e3
    }
}

impl MonitorRow {
    /// Computes a row from the interval's frames and two samples of the
    /// counters (`None`: no counters, the threading columns are empty).
    pub fn compute(
        frames: &IntervalFrames,
        elapsed: Duration,
        timestamp: f64,
        counters: Option<(&MonitorInputs, &MonitorInputs)>,
        stopped: bool,
    ) -> Self {
        let interval = frames.end.saturating_sub(frames.start);
        let n = frames.frames;
        let mut row = Self {
            timestamp,
            elapsed_s: elapsed.as_secs_f64(),
            interval_s: interval.as_secs_f64(),
            frames: n,
            fps: if interval.is_zero() {
                f64::NAN
            } else {
                n as f64 / interval.as_secs_f64()
            },
            p50_ms: ms(frames.p50, n),
            p99_ms: ms(frames.p99, n),
            max_ms: ms(frames.max, n),
            mean_ms: ms(frames.mean, n),
            under_budget_share: if n == 0 {
                f64::NAN
            } else {
                frames.under_budget as f64 / n as f64
            },
            thread_pool_utilization: f64::NAN,
            ai_thread_efficiency: f64::NAN,
            stats_thread_efficiency: f64::NAN,
            background_thread_efficiency: f64::NAN,
            lock_contention_rate: f64::NAN,
            parallel_speedup_ratio: f64::NAN,
            physics_thread_efficiency: f64::NAN,
            evaluation_thread_efficiency: f64::NAN,
            emergency_stop: stopped,
        };
        if let Some((before, now)) = counters {
            let (mut busy, mut alive) = (Duration::ZERO, Duration::ZERO);
            for (p_now, p_before) in now.pools().into_iter().zip(before.pools()) {
                busy += delta(p_now.busy, p_before.busy);
                alive += delta(p_now.alive, p_before.alive);
            }
            row.thread_pool_utilization = share(ratio(busy, alive));
            row.ai_thread_efficiency = efficiency(now.ai, before.ai);
            row.stats_thread_efficiency = efficiency(now.stats, before.stats);
            row.background_thread_efficiency = efficiency(now.background, before.background);
            row.physics_thread_efficiency = efficiency(now.physics, before.physics);
            row.evaluation_thread_efficiency = efficiency(now.evaluation, before.evaluation);
            let acquisitions = now
                .lock_acquisitions
                .saturating_sub(before.lock_acquisitions);
            let contended = now.lock_contended.saturating_sub(before.lock_contended);
            row.lock_contention_rate = if acquisitions == 0 {
                f64::NAN
            } else {
                share(contended as f64 / acquisitions as f64)
            };
            row.parallel_speedup_ratio = ratio(
                delta(now.parallel_work, before.parallel_work),
                delta(now.parallel_wall, before.parallel_wall),
            );
        }
        row
    }

    /// The row as one CSV line (without the newline), in [`CSV_HEADER`] order.
    pub fn to_csv(&self) -> String {
        [
            num(self.timestamp, 3),
            num(self.elapsed_s, 3),
            num(self.interval_s, 3),
            self.frames.to_string(),
            num(self.fps, 2),
            num(self.p50_ms, 3),
            num(self.p99_ms, 3),
            num(self.max_ms, 3),
            num(self.mean_ms, 3),
            num(self.under_budget_share, 4),
            num(self.thread_pool_utilization, 4),
            num(self.ai_thread_efficiency, 4),
            num(self.stats_thread_efficiency, 4),
            num(self.background_thread_efficiency, 4),
            num(self.lock_contention_rate, 4),
            num(self.parallel_speedup_ratio, 4),
            num(self.physics_thread_efficiency, 4),
            num(self.evaluation_thread_efficiency, 4),
            u8::from(self.emergency_stop).to_string(),
        ]
        .join(",")
    }
}

/// Produces the monitoring rows of one frame guard: knows when a row is due
/// and keeps the previous counter sample to compute interval deltas.
#[derive(Debug, Clone)]
pub struct Monitor {
    started: Duration,
    last_row: Duration,
    interval: Duration,
    previous: MonitorInputs,
}

impl Monitor {
    /// A monitor for `guard`, with the guard's `monitor_interval`, starting
    /// now. The counter baseline is zero: call [`Monitor::set_baseline`]
    /// if the counters did not start with the loop.
    pub fn new(guard: &FrameGuard) -> Self {
        let now = guard.now();
        Self {
            started: now,
            last_row: now,
            interval: guard.config().monitor_interval,
            previous: MonitorInputs::default(),
        }
    }

    /// Takes `inputs` as the starting point of the next row's deltas.
    pub fn set_baseline(&mut self, inputs: &MonitorInputs) {
        self.previous = *inputs;
    }

    /// True when an interval has passed since the last row.
    pub fn due(&self, guard: &FrameGuard) -> bool {
        guard.now().saturating_sub(self.last_row) >= self.interval
    }

    /// Ends the interval and computes its row; `inputs` (the counters now)
    /// become the baseline of the next one. With `None` the threading
    /// columns are empty and the baseline is kept.
    pub fn row(&mut self, guard: &FrameGuard, inputs: Option<&MonitorInputs>) -> MonitorRow {
        let frames = guard.take_interval();
        // The first interval may have begun before the monitor (at the
        // guard's creation): elapsed time counts from there too.
        self.started = self.started.min(frames.start);
        self.last_row = frames.end;
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let elapsed = frames.end.saturating_sub(self.started);
        let row = MonitorRow::compute(
            &frames,
            elapsed,
            timestamp,
            inputs.map(|now| (&self.previous, now)),
            guard.is_stopped(),
        );
        if let Some(now) = inputs {
            self.previous = *now;
        }
        row
    }
}

/// A [`Monitor`] writing CSV to any `Write`: the header first, then one row
/// per call.
pub struct CsvMonitor<W: Write> {
    monitor: Monitor,
    out: W,
    header_written: bool,
}

impl<W: Write> CsvMonitor<W> {
    /// A CSV monitor for `guard` writing to `out` (nothing is written yet).
    pub fn new(guard: &FrameGuard, out: W) -> Self {
        Self {
            monitor: Monitor::new(guard),
            out,
            header_written: false,
        }
    }

    /// The inner monitor (to set a baseline).
    pub fn monitor_mut(&mut self) -> &mut Monitor {
        &mut self.monitor
    }

    /// True when a row is due.
    pub fn due(&self, guard: &FrameGuard) -> bool {
        self.monitor.due(guard)
    }

    /// Writes the header if not yet written, then a row for the interval
    /// that ends now, and flushes.
    pub fn write_row(
        &mut self,
        guard: &FrameGuard,
        inputs: Option<&MonitorInputs>,
    ) -> io::Result<MonitorRow> {
        if !self.header_written {
            writeln!(self.out, "{CSV_HEADER}")?;
            self.header_written = true;
        }
        let row = self.monitor.row(guard, inputs);
        writeln!(self.out, "{}", row.to_csv())?;
        self.out.flush()?;
        Ok(row)
    }

    /// Writes a row if one is due; `inputs` is only called then.
    pub fn write_if_due(
        &mut self,
        guard: &FrameGuard,
        inputs: impl FnOnce() -> Option<MonitorInputs>,
    ) -> io::Result<Option<MonitorRow>> {
        if !self.due(guard) {
            return Ok(None);
        }
        let inputs = inputs();
        self.write_row(guard, inputs.as_ref()).map(Some)
    }

    /// The writer back.
    pub fn into_inner(self) -> W {
        self.out
    }
}

/// Counts the two inputs of `parallel_speedup_ratio`: the work of the tasks
/// run in parallel sections, and the wall time of those sections.
///
/// Task work is measured as the thread's CPU time
/// ([`thread_cpu_time`]), not wall time: a task descheduled because the
/// machine is oversubscribed does not count the time it waited, so the ratio
/// stays at most the number of cores that really ran it. Any thread may
/// record; the counters are atomic.
#[derive(Debug, Default)]
pub struct SpeedupMeter {
    work_ns: AtomicU64,
    wall_ns: AtomicU64,
}

impl SpeedupMeter {
    /// A meter at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs one task, adding the CPU time it used to the work.
    pub fn task<R>(&self, f: impl FnOnce() -> R) -> R {
        let start = thread_cpu_time();
        let result = f();
        self.add_work(thread_cpu_time().saturating_sub(start));
        result
    }

    /// Adds task work measured elsewhere.
    pub fn add_work(&self, work: Duration) {
        self.work_ns
            .fetch_add(duration_to_nanos(work), Ordering::Relaxed);
    }

    /// Runs a parallel section (that waits for its tasks), adding its wall
    /// time.
    pub fn section<R>(&self, f: impl FnOnce() -> R) -> R {
        let start = Instant::now();
        let result = f();
        self.add_wall(start.elapsed());
        result
    }

    /// Adds section wall time measured elsewhere.
    pub fn add_wall(&self, wall: Duration) {
        self.wall_ns
            .fetch_add(duration_to_nanos(wall), Ordering::Relaxed);
    }

    /// The cumulative (work, wall), to put in [`MonitorInputs`].
    pub fn totals(&self) -> (Duration, Duration) {
        (
            Duration::from_nanos(self.work_ns.load(Ordering::Relaxed)),
            Duration::from_nanos(self.wall_ns.load(Ordering::Relaxed)),
        )
    }
}
