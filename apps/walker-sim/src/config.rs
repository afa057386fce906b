//! What one run is told: the loop mode and the walker's partitionings, when
//! the run ends, slow frames to inject, and the frame guard's and role
//! pools' configuration ([`RunConfig`], [`guard_config`], [`runtime_config`]).
//!
//! Threads of a run with `threads = T` (see [`runtime_config`]): the ai pool
//! has `T - 1` workers and the loop thread takes part in every parallel loop
//! (T participants); with T >= 2 the stats pool has one worker, which runs
//! the statistics pass with the loop thread (so `stats_thread_efficiency`
//! measures it); the background pool has one worker for the periodic
//! tasks; the status reader is one more thread. Other pools have no thread
//! unless the environment gives them some. A sequential run has no ai or
//! stats worker (its `stats_thread_efficiency` is empty: no stats thread).

use crate::monitor_csv::MonitorCsv;
use crate::world::WorldConfig;
use frame_guard::{FrameGuardConfig, StopRules};
use pool_manager::{Partitioning, Role, RuntimeConfig};
use std::time::Duration;

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
