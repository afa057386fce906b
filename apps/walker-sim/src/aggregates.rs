//! What a run's frames add up to: the phase sums ([`PhaseTotals`], with the
//! sequential share and its [`amdahl_ceiling`]) and the per-agent cost
//! profile ([`CostProfile`]); and the frame journal that the cleanup task
//! folds into them.

use crate::agent::Work;
use crate::world::FrameTimes;
use frame_guard::Histogram;
use std::time::Duration;

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
pub(crate) struct Journal {
    frames: Vec<FrameTimes>,
    costs: Vec<(u64, Work)>,
}

impl Journal {
    /// Keeps one frame's times and its agents' costs.
    pub(crate) fn record(&mut self, times: FrameTimes, costs: impl Iterator<Item = (u64, Work)>) {
        self.frames.push(times);
        self.costs.extend(costs);
    }
}

/// The journal folded: what the report shows.
#[derive(Default)]
pub(crate) struct Aggregates {
    pub(crate) phases: PhaseTotals,
    pub(crate) costs: CostProfile,
}

impl Aggregates {
    pub(crate) fn fold(&mut self, journal: &mut Journal) {
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
