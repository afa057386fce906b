//! The end-of-run report: what a run measured ([`RunReport`]), and every
//! figure of the parallel runs beside the sequential run's, measured in the
//! same process, with the speed-up and the Amdahl ceiling; and the one-line
//! summary of `make walker-check`.

use crate::aggregates::{CostProfile, PhaseTotals, amdahl_ceiling};
use crate::background::Evaluation;
use crate::config::LoopMode;
use crate::world::WorldConfig;
use frame_guard::{FrameStats, MonitorRow, RuleTrips, StopInfo};
use std::fmt::Write as _;
use std::time::Duration;

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

/// Milliseconds of a duration.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn cell(x: f64, decimals: usize) -> String {
    if x.is_nan() {
        "-".to_owned()
    } else {
        format!("{x:.decimals$}")
    }
}

/// One figure of a run, as text.
type Figure = (&'static str, fn(&RunReport) -> String);

const FIGURES: [Figure; 23] = [
    ("frames/s", |r| cell(r.fps(), 1)),
    ("world steps/s", |r| cell(r.world_steps_per_s(), 0)),
    ("frame mean (ms)", |r| cell(ms(r.mean_frame()), 3)),
    ("frame p50 (ms)", |r| cell(ms(r.frame_stats.p50), 3)),
    ("frame p99 (ms)", |r| cell(ms(r.frame_stats.p99), 3)),
    ("frame max (ms)", |r| cell(ms(r.frame_stats.max), 3)),
    ("p99 / p50", |r| {
        cell(
            r.frame_stats.p99.as_secs_f64() / r.frame_stats.p50.as_secs_f64(),
            2,
        )
    }),
    ("frames under 16.7 ms (%)", |r| {
        cell(r.frame_stats.under_budget_share * 100.0, 2)
    }),
    ("status p50 (ms)", |r| cell(ms(r.status_p50), 4)),
    ("status p99 (ms)", |r| cell(ms(r.status_p99), 4)),
    ("stops: consecutive (plan)", |r| {
        r.trips().consecutive.to_string()
    }),
    ("stops: sampled (coded)", |r| r.trips().sampled.to_string()),
    ("thread_pool_utilization", |r| {
        cell(r.columns.thread_pool_utilization, 4)
    }),
    ("ai_thread_efficiency", |r| {
        cell(r.columns.ai_thread_efficiency, 4)
    }),
    ("stats_thread_efficiency", |r| {
        if r.columns.stats_thread_efficiency.is_nan() {
            // Say why instead of a bare dash.
            "- (no stats thread)".to_owned()
        } else {
            cell(r.columns.stats_thread_efficiency, 4)
        }
    }),
    ("background_thread_efficiency", |r| {
        cell(r.columns.background_thread_efficiency, 4)
    }),
    ("lock_contention_rate", |r| {
        cell(r.columns.lock_contention_rate, 4)
    }),
    ("parallel_speedup_ratio", |r| {
        cell(r.columns.parallel_speedup_ratio, 4)
    }),
    ("summed agent CPU time per frame (ms)", |r| {
        cell(ms(r.phases.agents_cpu) / r.phases.frames.max(1) as f64, 3)
    }),
    ("balancer calls / threads moved", |r| {
        format!("{} / {}", r.balancer.0, r.balancer.1)
    }),
    ("CPU used (cores)", |r| cell(r.cpu_cores, 2)),
    ("load average before/after", |r| {
        let f = |x: Option<f64>| x.map_or("?".to_owned(), |v| format!("{v:.2}"));
        format!("{}/{}", f(r.load.0), f(r.load.1))
    }),
    ("state hash", |r| format!("{:016x}", r.hash)),
];

/// The speed-up of `run` over `baseline`: ratio of mean frame times (the
/// two runs did the same frames).
pub fn speedup(baseline: &RunReport, run: &RunReport) -> f64 {
    baseline.mean_frame().as_secs_f64() / run.mean_frame().as_secs_f64().max(1e-12)
}

/// The report of a set of runs of one configuration (the sequential one,
/// if any, first).
pub fn format_report(runs: &[RunReport], cores: usize) -> String {
    let mut out = String::new();
    let Some(first) = runs.first() else {
        return out;
    };
    let w = &first.world;
    let threads = runs.iter().map(|r| r.threads).max().unwrap_or(1);
    let _ = writeln!(
        out,
        "walker-sim: {} agents, p = {}, M = {} substeps, seed {}, food {}, physics {}, train budget {}",
        w.agents,
        w.window_share,
        w.substeps,
        w.seed,
        w.food_mode.name(),
        w.physics.name(),
        match w.train_budget() {
            0 => "unlimited".to_owned(),
            b => format!("{b}/frame"),
        }
    );
    let agents = first.world.agents.max(1);
    let last = runs.last().unwrap_or(first);
    let pools: Vec<String> = last
        .pool_threads
        .iter()
        .map(|(name, n)| format!("{name} {n}"))
        .collect();
    let _ = writeln!(
        out,
        "machine: {cores} cores; {threads} loop threads (the loop thread takes part); worker threads by pool: {}; 1 status reader thread; agent state {:.1} MB ({:.2} MB per agent)",
        pools.join(", "),
        first.state_bytes as f64 / 1e6,
        first.state_bytes as f64 / 1e6 / agents as f64,
    );
    let mut names: Vec<String> = vec!["figure".into()];
    names.extend(
        runs.iter()
            .map(|r| format!("{} x{}", r.mode.name(), r.threads)),
    );
    let mut rows: Vec<Vec<String>> = vec![names];
    rows.push(
        std::iter::once("frames".to_owned())
            .chain(runs.iter().map(|r| r.frames.to_string()))
            .collect(),
    );
    for (name, f) in FIGURES {
        rows.push(
            std::iter::once(name.to_owned())
                .chain(runs.iter().map(f))
                .collect(),
        );
    }
    let baseline = runs.iter().find(|r| r.mode == LoopMode::Sequential);
    if let Some(b) = baseline {
        rows.push(
            std::iter::once("speed-up over sequential".to_owned())
                .chain(runs.iter().map(|r| format!("{:.3}x", speedup(b, r))))
                .collect(),
        );
        let serial = b.phases.serial_share();
        rows.push(
            std::iter::once("share of the Amdahl ceiling".to_owned())
                .chain(runs.iter().map(|r| {
                    format!(
                        "{:.1}%",
                        100.0 * speedup(b, r) / amdahl_ceiling(serial, r.threads)
                    )
                }))
                .collect(),
        );
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    for row in &rows {
        let mut line = String::new();
        for (c, text) in row.iter().enumerate() {
            if c == 0 {
                let _ = write!(line, "{text:<w$}", w = widths[c]);
            } else {
                let _ = write!(line, "  {text:>w$}", w = widths[c]);
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    if let Some(b) = baseline {
        let p = &b.phases;
        let per = |d: std::time::Duration| ms(d) / p.frames.max(1) as f64;
        let serial = p.serial_share();
        let _ = writeln!(
            out,
            "sequential frame: physics {:.3} ms, agents {:.3} ms, statistics {:.3} ms, other {:.3} ms per frame; sequential share {:.1}% -> Amdahl ceiling {:.3}x for {} threads",
            per(p.physics),
            per(p.agents),
            per(p.stats),
            per(p.other),
            serial * 100.0,
            amdahl_ceiling(serial, threads),
            threads
        );
        let hashes_equal = runs
            .iter()
            .all(|r| r.hash == b.hash && r.frames == b.frames);
        let _ = writeln!(
            out,
            "state hash after {} frames: {} in every run",
            b.frames,
            if hashes_equal {
                "the same"
            } else {
                "NOT the same"
            }
        );
    }
    if let Some(r) = runs.first() {
        let c = &r.costs;
        let _ = writeln!(
            out,
            "cost profile ({} run, {} agent-frames): under 1 us {:.1}%, 1 us to 1 ms {:.1}%, 1 ms or more {:.2}%; mean {:.1} us, p50 {:.2} us, p99 {:.0} us, max {:.1} ms; CV {:.2}",
            r.mode.name(),
            c.count(),
            c.under_1us_share() * 100.0,
            c.micro_share() * 100.0,
            c.milli_share() * 100.0,
            c.mean().as_secs_f64() * 1e6,
            c.histogram.quantile(0.5).as_secs_f64() * 1e6,
            c.histogram.quantile(0.99).as_secs_f64() * 1e6,
            ms(c.histogram.max()),
            c.cv()
        );
        let p50 = |k: usize| {
            let h = &c.by_work_costs[k];
            if h.count() == 0 {
                "-".to_owned()
            } else {
                format!("{:.1} us", h.quantile(0.5).as_secs_f64() * 1e6)
            }
        };
        let _ = writeln!(
            out,
            "agent work (count, median cost): re-apply {} ({}), full step {} ({}), decision {} ({}), training {} ({}); {:.2} trainings per frame, {} requests waited for the budget",
            c.by_work[0],
            p50(0),
            c.by_work[1],
            p50(1),
            c.by_work[2],
            p50(2),
            c.by_work[3],
            p50(3),
            r.phases.trainings as f64 / r.phases.frames.max(1) as f64,
            r.phases.deferred
        );
    }
    for r in runs {
        let by: Vec<String> = r
            .phases
            .by_trainings
            .iter()
            .enumerate()
            .filter(|(_, (n, _))| *n > 0)
            .map(|(k, (n, t))| format!("{k}: {n} x {:.2} ms", ms(*t) / *n as f64))
            .collect();
        let median = |k: usize| {
            let h = &r.costs.by_work_costs[k];
            h.quantile(0.5).as_secs_f64() * 1e6
        };
        let _ = writeln!(
            out,
            "{} x{}: agent loop {:.3} ms, busiest thread's work {:.3} ms of {:.3} ms per frame; {} loops on one thread; median agent cost: decision {:.1} us, training {:.0} us; frames by trainings in the frame (count x mean time): {}",
            r.mode.name(),
            r.threads,
            ms(r.phases.agents) / r.phases.frames.max(1) as f64,
            ms(r.phases.busiest_thread) / r.phases.frames.max(1) as f64,
            ms(r.phases.agents_work) / r.phases.frames.max(1) as f64,
            r.phases.single_thread_loops,
            median(2),
            median(3),
            by.join(", ")
        );
    }
    for r in runs {
        let bg: Vec<String> = r
            .background
            .iter()
            .map(|(name, runs, skipped)| format!("{name} {runs} runs ({skipped} skipped)"))
            .collect();
        let eval = r
            .evaluations
            .last()
            .map(|e| {
                format!(
                    "; last evaluation: leader {} at frame {}, mean best Q {:.3}",
                    e.agent, e.frame, e.mean_q
                )
            })
            .unwrap_or_default();
        let stop = r
            .stop
            .as_ref()
            .map(|s| format!("; STOPPED: {s}"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{} x{}: background {}{eval}; {} status requests ({} bytes each){stop}",
            r.mode.name(),
            r.threads,
            bg.join(", "),
            r.status_requests,
            r.status_bytes,
        );
    }
    out
}

/// The figures of `make walker-check`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CheckFigures {
    /// Agents.
    pub agents: usize,
    /// Loop threads.
    pub threads: usize,
    /// Amdahl ceiling from the sequential run's sequential share.
    pub amdahl_ceiling: f64,
    /// Dynamic over sequential.
    pub speedup_dynamic: f64,
    /// Interleaved over sequential.
    pub speedup_interleaved: f64,
    /// The dynamic run's frame p99 over p50.
    pub p99_over_p50: f64,
    /// The dynamic run's status latency p99.
    pub status_p99_ms: f64,
    /// Emergency stops of all runs, every rule.
    pub emergency_stops: u64,
}

impl CheckFigures {
    /// From the sequential, dynamic and interleaved runs.
    pub fn new(seq: &RunReport, dynamic: &RunReport, interleaved: &RunReport) -> Self {
        Self {
            agents: seq.world.agents,
            threads: dynamic.threads,
            amdahl_ceiling: amdahl_ceiling(seq.phases.serial_share(), dynamic.threads),
            speedup_dynamic: speedup(seq, dynamic),
            speedup_interleaved: speedup(seq, interleaved),
            p99_over_p50: dynamic.frame_stats.p99.as_secs_f64()
                / dynamic.frame_stats.p50.as_secs_f64().max(1e-12),
            status_p99_ms: ms(dynamic.status_p99),
            emergency_stops: seq.emergency_stops()
                + dynamic.emergency_stops()
                + interleaved.emergency_stops(),
        }
    }

    /// The one line.
    pub fn line(&self) -> String {
        format!(
            "walker agents={} threads={} amdahl_ceiling={:.3} speedup_dynamic={:.3} speedup_interleaved={:.3} p99_over_p50={:.3} status_p99_ms={:.4} emergency_stops={}",
            self.agents,
            self.threads,
            self.amdahl_ceiling,
            self.speedup_dynamic,
            self.speedup_interleaved,
            self.p99_over_p50,
            self.status_p99_ms,
            self.emergency_stops
        )
    }

    /// Which of the targets are missed (empty: all met).
    pub fn missed_targets(&self) -> Vec<String> {
        let mut missed = Vec::new();
        if self.speedup_dynamic < 0.85 * self.amdahl_ceiling {
            missed.push(format!(
                "dynamic speed-up {:.3} < 85% of the ceiling {:.3}",
                self.speedup_dynamic, self.amdahl_ceiling
            ));
        }
        if self.speedup_dynamic < 1.1 * self.speedup_interleaved {
            missed.push(format!(
                "dynamic {:.3} < 1.1 x interleaved {:.3}",
                self.speedup_dynamic, self.speedup_interleaved
            ));
        }
        if self.p99_over_p50 > 2.0 {
            missed.push(format!("p99/p50 {:.3} > 2", self.p99_over_p50));
        }
        if self.status_p99_ms >= 5.0 {
            missed.push(format!("status p99 {:.3} ms >= 5 ms", self.status_p99_ms));
        }
        if self.emergency_stops > 0 {
            missed.push(format!("{} emergency stops", self.emergency_stops));
        }
        missed
    }
}
