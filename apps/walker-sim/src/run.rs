//! [`run`]: one run of the walker loop on the role pools, with the frame
//! guard, the monitoring CSV, the plan's background schedule, the status
//! reader and the progress line; and its [`RunReport`].
//!
//! Threads of a run with `threads = T` (see [`runtime_config`]): the ai pool
//! has `T - 1` workers and the loop thread takes part in every parallel loop
//! (T participants); with T >= 2 the stats pool has one worker, which runs
//! the statistics pass with the loop thread (so `stats_thread_efficiency`
//! measures it); the background pool has one worker for the periodic
//! tasks; the status reader is one more thread. Other pools have no thread
//! unless the environment gives them some. A sequential run has no ai or
//! stats worker (its `stats_thread_efficiency` is empty: no stats thread).
//!
//! The background schedule (pool-manager's [`Scheduler`](pool_manager::Scheduler),
//! the plan's intervals): *monitoring* every 1 s writes the monitoring row
//! and calls the balancer ([`Runtime::rebalance`], counted in
//! [`RunReport::balancer`]);
//! *cleanup* every 5 s folds the frame journal (per-frame phase times and
//! per-agent costs) into the run's aggregates and frees it; *evaluation*
//! every 10 s runs the current leader's network (published by the
//! statistics pass) on 64 fixed states. None of them touches the world state,
//! so they cannot break determinism however late they run.

use crate::agent::Work;
use crate::exec::Executor;
use crate::nn::{Activations, INPUTS, forward};
use crate::rng::Rng;
use crate::status::StatusReader;
use crate::world::{FrameTimes, LeaderSnapshot, World, WorldConfig};
use frame_guard::{
    CSV_HEADER, FrameGuard, FrameGuardConfig, FrameStats, Histogram, IntervalFrames, Monitor,
    MonitorInputs, MonitorRow, RuleTrips, SpeedupMeter, StopInfo, StopRules,
};
use parking_lot::Mutex;
use pool_manager::{Partitioning, Role, Runtime, RuntimeConfig};
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// How the agent loop runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LoopMode {
    /// The plain sequential loop: the baseline.
    Sequential,
    /// The ai pool's parallel loop with this partitioning.
    Parallel(Partitioning),
}

impl LoopMode {
    /// `sequential`, `interleaved`, `contiguous` or `dynamic`.
    pub fn name(&self) -> &'static str {
        match self {
            LoopMode::Sequential => "sequential",
            LoopMode::Parallel(Partitioning::Interleaved) => "interleaved",
            LoopMode::Parallel(Partitioning::Contiguous) => "contiguous",
            LoopMode::Parallel(Partitioning::Dynamic { .. }) => "dynamic",
        }
    }
}

/// The walker's dynamic partitioning: chunks of one agent. The agents are
/// few (tens to hundreds) and their costs differ by four orders of
/// magnitude, so a chunk of several agents could hold two trainings that
/// then run one after the other; taking one agent per steal costs one
/// atomic add, nothing beside an agent's cost. (pool-manager's automatic
/// grain, n / (16 k), is 7 agents at 240 agents on 2 threads.) The world
/// hands the agents to this loop costliest first (see `World::step_frame`).
pub const DYNAMIC: Partitioning = Partitioning::Dynamic { grain: 1 };

/// The three partitionings, in report order.
pub const PARTITIONINGS: [Partitioning; 3] =
    [Partitioning::Interleaved, Partitioning::Contiguous, DYNAMIC];

/// Parses `interleaved`, `contiguous` or `dynamic`.
pub fn parse_partitioning(s: &str) -> Result<Partitioning, String> {
    match s {
        "interleaved" => Ok(Partitioning::Interleaved),
        "contiguous" => Ok(Partitioning::Contiguous),
        "dynamic" => Ok(DYNAMIC),
        _ => Err(format!(
            "unknown partitioning {s:?} (interleaved, contiguous, dynamic)"
        )),
    }
}

/// When a run ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Length {
    /// After this many frames.
    Frames(u64),
    /// After this much wall time (soak mode).
    Duration(Duration),
}

/// Where the monitoring CSV goes: one header, then every run's rows, each
/// row frame-guard's columns ([`CSV_HEADER`]) after two columns naming the
/// run (`run`: sequential or the partitioning; `threads`).
#[derive(Clone)]
pub struct MonitorCsv(Arc<Mutex<CsvState>>);

struct CsvState {
    out: Box<dyn Write + Send>,
    header_written: bool,
}

impl std::fmt::Debug for MonitorCsv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MonitorCsv")
    }
}

/// The monitoring CSV's header line.
pub fn csv_header() -> String {
    format!("run,threads,{CSV_HEADER}")
}

impl MonitorCsv {
    /// A CSV writing to `out`.
    pub fn new(out: Box<dyn Write + Send>) -> Self {
        Self(Arc::new(Mutex::new(CsvState {
            out,
            header_written: false,
        })))
    }

    /// `-` for standard output, else a file (created or truncated).
    pub fn open(path: &str) -> Result<Self, String> {
        if path == "-" {
            return Ok(Self::new(Box::new(std::io::stdout())));
        }
        let file = std::fs::File::create(path).map_err(|e| format!("cannot create {path}: {e}"))?;
        Ok(Self::new(Box::new(std::io::LineWriter::new(file))))
    }

    /// Writes one row (the header first if not yet written) and flushes.
    pub fn write(&self, run: &str, threads: usize, row: &MonitorRow) -> std::io::Result<()> {
        let mut st = self.0.lock();
        if !st.header_written {
            writeln!(st.out, "{}", csv_header())?;
            st.header_written = true;
        }
        writeln!(st.out, "{run},{threads},{}", row.to_csv())?;
        st.out.flush()
    }
}

/// Frames made slow on purpose (to test the stop rules' wiring).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlowFrames {
    /// First slow frame.
    pub from_frame: u64,
    /// How many.
    pub count: u64,
    /// Extra time slept inside each.
    pub extra: Duration,
}

/// Everything one run needs.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// The world.
    pub world: WorldConfig,
    /// Threads of the parallel loops (the loop thread included).
    pub threads: usize,
    /// Sequential or parallel with a partitioning.
    pub mode: LoopMode,
    /// When to stop.
    pub length: Length,
    /// Frame guard (budget, stop rules, watchdog, monitoring interval).
    pub guard: FrameGuardConfig,
    /// Status requests per second (0: no reader).
    pub status_hz: f64,
    /// The monitoring CSV (rows are computed either way).
    pub csv: Option<MonitorCsv>,
    /// Progress bar and live line on standard error.
    pub progress: bool,
    /// Slow frames to inject.
    pub slow_frames: Option<SlowFrames>,
}

impl RunConfig {
    /// A run of `frames` frames of `world` in `mode` on `threads` threads,
    /// with the walker's guard (see [`guard_config`]), a 30 Hz status
    /// reader, no CSV and no progress output.
    pub fn new(world: WorldConfig, mode: LoopMode, threads: usize, frames: u64) -> Self {
        Self {
            world,
            threads,
            mode,
            length: Length::Frames(frames),
            guard: guard_config_defaults(),
            status_hz: 30.0,
            csv: None,
            progress: false,
            slow_frames: None,
        }
    }
}

/// The walker's frame guard without the environment: the plan's
/// consecutive rule (10 frames over 2 s), the original code's sampled rule
/// (every 5 s, gap over 0.5 s, 10 in a row), the memory rule (2000 MiB), and
/// a watchdog every 100 ms.
pub fn guard_config_defaults() -> FrameGuardConfig {
    FrameGuardConfig {
        rules: StopRules::ALL,
        watchdog_period: Some(Duration::from_millis(100)),
        ..FrameGuardConfig::default()
    }
}

/// [`guard_config_defaults`] overridden by frame-guard's environment
/// variables (`FRAME_STOP_RULES`, `FRAME_SLOW_LIMIT_MS`, ...).
pub fn guard_config() -> Result<FrameGuardConfig, String> {
    let from_env = FrameGuardConfig::from_env().map_err(|e| e.to_string())?;
    let defaults = FrameGuardConfig::default();
    let mut c = guard_config_defaults();
    // Take every field the environment changed from frame-guard's defaults.
    macro_rules! take {
        ($($f:ident),*) => {$(if from_env.$f != defaults.$f { c.$f = from_env.$f; })*};
    }
    take!(
        budget,
        rules,
        slow_frame_limit,
        slow_frame_count,
        sample_interval,
        sample_gap_limit,
        slow_sample_count,
        memory_limit_bytes,
        memory_check_interval,
        watchdog_period,
        monitor_interval
    );
    Ok(c)
}

/// The role pools of a run with `threads` loop threads (see the module
/// docs). Starts from pool-manager's environment (`ENABLE_PARALLEL_AI`,
/// `MAX_STATS_THREADS`, `CLLM_BACKGROUND_THREADS`, ...): the ai pool gets
/// `threads - 1` workers, the stats pool one (none when sequential or with
/// one thread) and the background pool one unless the environment says
/// otherwise, the other pools none unless the environment gives them some;
/// the budget is the sum.
pub fn runtime_config(threads: usize, sequential: bool) -> Result<RuntimeConfig, String> {
    let mut c = RuntimeConfig::from_env().map_err(|e| e.to_string())?;
    c.pool_mut(Role::Ai).threads = Some(if sequential {
        0
    } else {
        threads.saturating_sub(1)
    });
    c.pool_mut(Role::Background).threads.get_or_insert(1);
    c.pool_mut(Role::Stats)
        .threads
        .get_or_insert(usize::from(!sequential && threads >= 2));
    for role in [Role::Physics, Role::Evaluation] {
        c.pool_mut(role).threads.get_or_insert(0);
    }
    let total: usize = Role::ALL
        .iter()
        .map(|&r| {
            let p = c.pool(r);
            if p.is_active() {
                p.threads.unwrap_or(0)
            } else {
                0
            }
        })
        .sum();
    c.thread_budget = Some(total.max(1));
    c.validate().map_err(|e| e.to_string())?;
    Ok(c)
}

/// The distribution of per-agent frame costs (the cost profile).
#[derive(Debug, Clone, Default)]
pub struct CostProfile {
    /// Every agent-frame's cost.
    pub histogram: Histogram,
    sum_ns: f64,
    sum_sq: f64,
    /// Agent-frames under 1 us.
    pub under_1us: u64,
    /// Agent-frames from 1 us to 1 ms.
    pub micro: u64,
    /// Agent-frames of 1 ms or more.
    pub milli: u64,
    /// Agent-frames by work: re-apply, step, decide, train.
    pub by_work: [u64; 4],
    /// Costs by work (same order).
    pub by_work_costs: [Histogram; 4],
}

impl CostProfile {
    /// Records one agent-frame.
    pub fn record(&mut self, cost_ns: u64, work: Work) {
        self.histogram.record(Duration::from_nanos(cost_ns));
        let c = cost_ns as f64;
        self.sum_ns += c;
        self.sum_sq += c * c;
        match cost_ns {
            0..1_000 => self.under_1us += 1,
            1_000..1_000_000 => self.micro += 1,
            _ => self.milli += 1,
        }
        self.by_work[work as usize] += 1;
        self.by_work_costs[work as usize].record(Duration::from_nanos(cost_ns));
    }

    /// Agent-frames recorded.
    pub fn count(&self) -> u64 {
        self.histogram.count()
    }

    /// Share of agent-frames of 1 ms or more.
    pub fn milli_share(&self) -> f64 {
        self.milli as f64 / self.count().max(1) as f64
    }

    /// Share under 1 us.
    pub fn under_1us_share(&self) -> f64 {
        self.under_1us as f64 / self.count().max(1) as f64
    }

    /// Share from 1 us to 1 ms.
    pub fn micro_share(&self) -> f64 {
        self.micro as f64 / self.count().max(1) as f64
    }

    /// Coefficient of variation: standard deviation over mean.
    pub fn cv(&self) -> f64 {
        let n = self.count() as f64;
        if n < 2.0 {
            return 0.0;
        }
        let mean = self.sum_ns / n;
        let var = (self.sum_sq / n - mean * mean).max(0.0);
        var.sqrt() / mean
    }

    /// Mean cost.
    pub fn mean(&self) -> Duration {
        Duration::from_nanos((self.sum_ns / self.count().max(1) as f64) as u64)
    }
}

/// Sums of the frames' phase times.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PhaseTotals {
    /// Frames summed.
    pub frames: u64,
    /// Physics phases.
    pub physics: Duration,
    /// Agent loops (wall).
    pub agents: Duration,
    /// Agent frames (summed work).
    pub agents_work: Duration,
    /// Agent frames (summed CPU time).
    pub agents_cpu: Duration,
    /// Statistics loops.
    pub stats: Duration,
    /// Sequential rest.
    pub other: Duration,
    /// Whole frames (without injected delays).
    pub total: Duration,
    /// Time in loops that run on the pool.
    pub parallel: Duration,
    /// Trainings.
    pub trainings: u64,
    /// Training requests deferred by the budget (frame-requests).
    pub deferred: u64,
    /// By trainings in the frame (index): frames and summed frame time.
    pub by_trainings: Vec<(u64, Duration)>,
    /// Agent loops: summed work of each loop's busiest thread.
    pub busiest_thread: Duration,
    /// Agent loops run by one thread only.
    pub single_thread_loops: u64,
}

impl PhaseTotals {
    fn add(&mut self, t: &FrameTimes) {
        self.frames += 1;
        self.physics += t.physics;
        self.agents += t.agents;
        self.agents_work += t.agents_work;
        self.agents_cpu += t.agents_cpu;
        self.stats += t.stats;
        self.other += t.other;
        self.total += t.total;
        self.parallel += t.parallel();
        self.trainings += u64::from(t.trainings);
        self.deferred += u64::from(t.deferred);
        self.busiest_thread += t.busiest_thread;
        self.single_thread_loops += u64::from(t.threads_used <= 1);
        let k = t.trainings as usize;
        if self.by_trainings.len() <= k {
            self.by_trainings.resize(k + 1, (0, Duration::ZERO));
        }
        self.by_trainings[k].0 += 1;
        self.by_trainings[k].1 += t.total;
    }

    /// The sequential share of the frame: 1 - parallel / total.
    pub fn serial_share(&self) -> f64 {
        if self.total.is_zero() {
            return 1.0;
        }
        1.0 - self.parallel.as_secs_f64() / self.total.as_secs_f64()
    }
}

/// The Amdahl ceiling of `threads` for a sequential share `serial`:
/// 1 / (s + (1 - s) / T).
pub fn amdahl_ceiling(serial: f64, threads: usize) -> f64 {
    let s = serial.clamp(0.0, 1.0);
    1.0 / (s + (1.0 - s) / threads.max(1) as f64)
}

/// Raw per-frame records, folded into aggregates by the cleanup task.
#[derive(Default)]
struct Journal {
    frames: Vec<FrameTimes>,
    costs: Vec<(u64, Work)>,
}

#[derive(Default)]
struct Aggregates {
    phases: PhaseTotals,
    costs: CostProfile,
}

impl Aggregates {
    fn fold(&mut self, journal: &mut Journal) {
        for t in journal.frames.drain(..) {
            self.phases.add(&t);
        }
        for (c, w) in journal.costs.drain(..) {
            self.costs.record(c, w);
        }
        journal.frames.shrink_to(1024);
        journal.costs.shrink_to(1 << 16);
    }
}

/// One evaluation of the leader by the background task.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evaluation {
    /// The frame the leader's network was taken at.
    pub frame: u64,
    /// The leader.
    pub agent: usize,
    /// Mean best Q value over the 64 test states.
    pub mean_q: f32,
}

fn evaluate(leader: &LeaderSnapshot) -> Evaluation {
    let mut rng = Rng::new(0xE7A1, 0);
    let mut act = Activations::new();
    let mut total = 0.0f32;
    for _ in 0..64 {
        let state: Vec<f32> = (0..INPUTS).map(|_| rng.signed()).collect();
        forward(&leader.params, &leader.layout, &state, 1, &mut act);
        total += act
            .q_values(leader.layout.actions(), 0)
            .iter()
            .fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    }
    Evaluation {
        frame: leader.frame,
        agent: leader.agent,
        mean_q: total / 64.0,
    }
}

/// Everything a run measured.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// Sequential or a partitioning.
    pub mode: LoopMode,
    /// Loop threads.
    pub threads: usize,
    /// The world configuration.
    pub world: WorldConfig,
    /// Frames run.
    pub frames: u64,
    /// Wall time of the loop.
    pub elapsed: Duration,
    /// The guard's frame figures (with both rules' trips).
    pub frame_stats: FrameStats,
    /// Why the guard stopped the loop, if it did.
    pub stop: Option<StopInfo>,
    /// Status requests served.
    pub status_requests: u64,
    /// Status latency p50.
    pub status_p50: Duration,
    /// Status latency p99.
    pub status_p99: Duration,
    /// Status latency max.
    pub status_max: Duration,
    /// Bytes of one status answer.
    pub status_bytes: usize,
    /// The monitoring columns over the whole run.
    pub columns: MonitorRow,
    /// Phase sums.
    pub phases: PhaseTotals,
    /// Per-agent cost profile.
    pub costs: CostProfile,
    /// The state hash after the last frame.
    pub hash: u64,
    /// Bytes of agent state.
    pub state_bytes: usize,
    /// Background tasks: (name, runs, skipped).
    pub background: Vec<(String, u64, u64)>,
    /// Evaluations of the leader.
    pub evaluations: Vec<Evaluation>,
    /// Snapshots the writer had to allocate because a reader held the spare.
    pub status_fresh_buffers: u64,
    /// Worker threads of each role pool during the run (pools with none
    /// left out).
    pub pool_threads: Vec<(&'static str, usize)>,
    /// The machine's 1-minute load average before and after the run.
    pub load: (Option<f64>, Option<f64>),
    /// CPU time this process used during the loop, in cores (CPU time over
    /// wall time): below the thread count when other programs took the CPUs.
    pub cpu_cores: f64,
    /// The balancer, called by the monitoring task: (calls, threads moved).
    pub balancer: (u64, u64),
}

/// The machine's 1-minute load average (`/proc/loadavg`).
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// CPU time used by this process so far (user + system, every thread).
pub use frame_guard::process_cpu_time;

impl RunReport {
    /// Frames per second.
    pub fn fps(&self) -> f64 {
        self.frames as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Physics world steps per second (frames x substeps).
    pub fn world_steps_per_s(&self) -> f64 {
        self.fps() * self.world.substeps as f64
    }

    /// Mean frame time (the guard's).
    pub fn mean_frame(&self) -> Duration {
        self.frame_stats.mean
    }

    /// Emergency stops by the consecutive and the sampled rule (and memory).
    pub fn trips(&self) -> RuleTrips {
        self.frame_stats.trips
    }

    /// Trips of every rule together.
    pub fn emergency_stops(&self) -> u64 {
        let t = self.trips();
        t.consecutive + t.sampled + t.memory
    }
}

fn monitor_inputs(runtime: &Runtime, meter: &SpeedupMeter) -> MonitorInputs {
    // The pools and every counting lock in one call; the parallel sections'
    // work from the meter (agent CPU time), as the column is defined.
    runtime.monitor_inputs(Some(meter))
}

/// The progress bar and live summary line on standard error.
struct Progress {
    enabled: bool,
    tty: bool,
    label: String,
    started: Instant,
    last: Instant,
    every: Duration,
}

impl Progress {
    fn new(enabled: bool, label: String) -> Self {
        let tty = std::io::stderr().is_terminal();
        Self {
            enabled,
            tty,
            label,
            started: Instant::now(),
            last: Instant::now(),
            every: if tty {
                Duration::from_millis(250)
            } else {
                Duration::from_secs(5)
            },
        }
    }

    fn update(
        &mut self,
        frame: u64,
        length: Length,
        guard: &FrameGuard,
        status: &Histogram,
        force: bool,
    ) {
        if !self.enabled || (!force && self.last.elapsed() < self.every) {
            return;
        }
        self.last = Instant::now();
        let elapsed = self.started.elapsed();
        let done = match length {
            Length::Frames(n) => frame as f64 / n.max(1) as f64,
            Length::Duration(d) => elapsed.as_secs_f64() / d.as_secs_f64().max(1e-9),
        }
        .clamp(0.0, 1.0);
        let width = 24;
        let filled = (done * width as f64).round() as usize;
        let bar: String = "#".repeat(filled) + &"-".repeat(width - filled);
        let s = guard.stats();
        let line = format!(
            "{} [{bar}] {:5.1}% frame {frame} | {:.1} fps | p50 {:.2} p99 {:.2} max {:.1} ms | <16.7ms {:.1}% | status p99 {:.3} ms | stops (plan/coded) {}/{}",
            self.label,
            done * 100.0,
            frame as f64 / elapsed.as_secs_f64().max(1e-9),
            ms(s.p50),
            ms(s.p99),
            ms(s.max),
            s.under_budget_share * 100.0,
            ms(status.quantile(0.99)),
            s.trips.consecutive,
            s.trips.sampled,
        );
        let mut err = std::io::stderr().lock();
        if self.tty {
            let _ = write!(err, "\r\x1b[2K{line}");
            if force {
                let _ = writeln!(err);
            }
        } else {
            let _ = writeln!(err, "{line}");
        }
        let _ = err.flush();
    }
}

/// Milliseconds of a duration.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
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
    let journal = Arc::new(Mutex::new(Journal::default()));
    let aggregates = Arc::new(Mutex::new(Aggregates::default()));
    let evaluations = Arc::new(Mutex::new(Vec::new()));
    let exec = match config.mode {
        LoopMode::Sequential => Executor::Sequential,
        LoopMode::Parallel(partitioning) => Executor::Pool {
            pool: runtime.pool(Role::Ai),
            partitioning,
        },
    };
    let participants = exec.participants();
    let pool_threads: Vec<(&'static str, usize)> = Role::ALL
        .iter()
        .map(|&r| (r.name(), runtime.pool(r).threads()))
        .filter(|&(_, n)| n > 0)
        .collect();
    // The statistics pass runs on the stats pool when it has threads of its
    // own (by default it has none: the ai pool's threads run it).
    let stats_pool = runtime.pool(Role::Stats);
    let stats_exec = match exec {
        Executor::Pool { partitioning, .. } if stats_pool.threads() > 0 => Executor::Pool {
            pool: stats_pool,
            partitioning,
        },
        other => other,
    };
    // The monitoring rows, computed and written by the monitoring task.
    let monitor = Arc::new(Mutex::new(Monitor::new(&guard)));
    let start_inputs = monitor_inputs(&runtime, &meter);
    monitor.lock().set_baseline(&start_inputs);
    let csv_error: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
    let balancer = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
    let weak: Weak<Runtime> = Arc::downgrade(&runtime);
    let run_name = config.mode.name();
    let write_row = {
        let (monitor, guard, meter, csv, csv_error, balancer) = (
            monitor.clone(),
            guard.clone(),
            meter.clone(),
            config.csv.clone(),
            csv_error.clone(),
            balancer.clone(),
        );
        move |inputs: Option<MonitorInputs>| {
            let inputs = match inputs {
                Some(i) => i,
                None => {
                    let Some(runtime) = weak.upgrade() else {
                        return;
                    };
                    // The plan's balancer, once per monitoring interval.
                    balancer.0.fetch_add(1, Ordering::Relaxed);
                    if runtime.rebalance().is_some() {
                        balancer.1.fetch_add(1, Ordering::Relaxed);
                    }
                    monitor_inputs(&runtime, &meter)
                }
            };
            let row = monitor.lock().row(&guard, Some(&inputs));
            if let Some(csv) = &csv
                && let Err(e) = csv.write(run_name, participants, &row)
            {
                csv_error.lock().get_or_insert(e.to_string());
            }
        }
    };
    let write_row = Arc::new(write_row);
    let monitoring = {
        let write_row = write_row.clone();
        move || write_row(None)
    };
    let cleanup = {
        let (journal, aggregates) = (journal.clone(), aggregates.clone());
        move || {
            let mut raw = std::mem::take(&mut *journal.lock());
            aggregates.lock().fold(&mut raw);
        }
    };
    let evaluation = {
        let (leader, evaluations) = (world.leader_slot(), evaluations.clone());
        move || {
            let snapshot = leader.lock().clone();
            if let Some(s) = snapshot {
                let e = evaluate(&s);
                evaluations.lock().push(e);
            }
        }
    };
    let periodic = runtime
        .scheduler()
        .add_plan_schedule(monitoring, cleanup, evaluation)
        .map_err(|e| format!("scheduling the background tasks: {e}"))?;

    let reader = if config.status_hz > 0.0 {
        Some(
            StatusReader::start(world.status_board(), config.status_hz)
                .map_err(|e| format!("starting the status reader: {e}"))?,
        )
    } else {
        None
    };
    let label = format!("{run_name} x{participants}");
    let load_before = load_average();
    let mut progress = Progress::new(config.progress, label);
    let started = Instant::now();
    let cpu_start = process_cpu_time();
    let mut frames = 0u64;
    let mut failure = None;
    loop {
        let done = match config.length {
            Length::Frames(n) => frames >= n,
            Length::Duration(d) => started.elapsed() >= d,
        };
        if done || guard.is_stopped() {
            break;
        }
        guard.begin_frame().map_err(|e| e.to_string())?;
        let result = world.step_frame_with(&exec, &stats_exec);
        if let Some(slow) = config.slow_frames
            && (slow.from_frame..slow.from_frame + slow.count).contains(&frames)
        {
            std::thread::sleep(slow.extra);
        }
        guard.end_frame().map_err(|e| e.to_string())?;
        let times = match result {
            Ok(t) => t,
            Err(e) => {
                failure = Some(e);
                break;
            }
        };
        frames += 1;
        // CPU time, as SpeedupMeter documents: with wall time a thread
        // waiting for a CPU counted as working, and the ratio could exceed
        // the cores that ran the loop.
        meter.add_wall(times.agents);
        meter.add_work(times.agents_cpu);
        {
            let mut j = journal.lock();
            j.frames.push(times);
            j.costs.extend(world.last_costs());
        }
        // Without background threads, the periodic tasks run here.
        runtime.scheduler().run_due();
        if config.progress {
            let status = reader.as_ref().map(|r| r.latency()).unwrap_or_default();
            progress.update(frames, config.length, &guard, &status, false);
        }
    }
    let elapsed = started.elapsed();
    let cpu_cores = process_cpu_time().saturating_sub(cpu_start).as_secs_f64()
        / elapsed.as_secs_f64().max(1e-9);
    let end_inputs = monitor_inputs(&runtime, &meter);
    let background = runtime
        .scheduler()
        .list()
        .into_iter()
        .map(|s| (s.name, s.runs, s.skipped))
        .collect::<Vec<_>>();
    for id in periodic {
        runtime.scheduler().remove(id);
    }
    let figures = reader.map(StatusReader::finish).unwrap_or_default();
    if config.progress {
        progress.update(frames, config.length, &guard, &figures.latency, true);
    }
    if let Some(e) = failure {
        return Err(format!("frame {frames} failed: {e}"));
    }
    // The last monitoring row covers the tail of the run.
    write_row(Some(end_inputs));
    if let Some(e) = csv_error.lock().take() {
        return Err(format!("writing the monitoring CSV: {e}"));
    }
    let mut aggregates = std::mem::take(&mut *aggregates.lock());
    aggregates.fold(&mut journal.lock());
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
    let columns = MonitorRow::compute(
        &whole,
        elapsed,
        0.0,
        Some((&start_inputs, &end_inputs)),
        guard.is_stopped(),
    );
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
        background,
        evaluations: evaluations.lock().clone(),
        status_fresh_buffers: world.status_board().fresh_buffers(),
        pool_threads,
        load: (load_before, load_average()),
        cpu_cores,
        balancer: (
            balancer.0.load(Ordering::Relaxed),
            balancer.1.load(Ordering::Relaxed),
        ),
    })
}
