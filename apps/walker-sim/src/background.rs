//! The plan's background schedule during a run (pool-manager's
//! [`Scheduler`](pool_manager::Scheduler), the plan's intervals):
//! *monitoring* every 1 s writes the monitoring row and calls the balancer
//! ([`Runtime::rebalance`], counted in
//! [`RunReport::balancer`](crate::report::RunReport::balancer));
//! *cleanup* every 5 s folds the frame journal (per-frame phase times and
//! per-agent costs) into the run's aggregates and frees it; *evaluation*
//! every 10 s runs the current leader's network (published by the
//! statistics pass) on 64 fixed states. None of them touches the world state,
//! so they cannot break determinism however late they run.

use crate::aggregates::{Aggregates, Journal};
use crate::monitor_csv::MonitorCsv;
use crate::nn::{Activations, INPUTS, forward};
use crate::rng::Rng;
use crate::world::{LeaderSnapshot, World};
use frame_guard::{FrameGuard, Monitor, MonitorInputs, SpeedupMeter};
use parking_lot::Mutex;
use pool_manager::{PeriodicId, Runtime};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

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

/// The monitoring inputs now: the pools and every counting lock in one
/// call; the parallel sections' work from the meter (agent CPU time), as the
/// column is defined.
pub(crate) fn monitor_inputs(runtime: &Runtime, meter: &SpeedupMeter) -> MonitorInputs {
    runtime.monitor_inputs(Some(meter))
}

/// Writes one monitoring row: from `inputs`, or, when `None` (the periodic
/// task), from inputs sampled now after a call of the balancer.
type WriteRow = dyn Fn(Option<MonitorInputs>) + Send + Sync;

/// What the periodic tasks share with the run.
#[derive(Default)]
struct Shared {
    /// The loop's per-frame records, folded by the cleanup task.
    journal: Arc<Mutex<Journal>>,
    aggregates: Arc<Mutex<Aggregates>>,
    evaluations: Arc<Mutex<Vec<Evaluation>>>,
    /// The first error writing the CSV.
    csv_error: Arc<Mutex<Option<String>>>,
    /// The balancer: (calls, threads moved).
    balancer: Arc<(AtomicU64, AtomicU64)>,
}

/// The three periodic tasks of one run.
pub(crate) struct Background {
    shared: Shared,
    write_row: Arc<WriteRow>,
    periodic: Vec<PeriodicId>,
    /// The monitoring inputs at the start: the whole run's row starts here.
    pub(crate) start_inputs: MonitorInputs,
}

impl Background {
    /// Schedules the plan's tasks on `runtime`; the rows go to `csv` as run
    /// `run_name` on `participants` threads.
    pub(crate) fn start(
        runtime: &Arc<Runtime>,
        guard: &Arc<FrameGuard>,
        meter: &Arc<SpeedupMeter>,
        world: &World,
        csv: Option<MonitorCsv>,
        run_name: &'static str,
        participants: usize,
    ) -> Result<Self, String> {
        let shared = Shared::default();
        let mut monitor = Monitor::new(guard);
        let start_inputs = monitor_inputs(runtime, meter);
        monitor.set_baseline(&start_inputs);
        let write_row = shared.row_writer(
            runtime,
            guard,
            meter,
            monitor,
            csv,
            (run_name, participants),
        );
        let monitoring = {
            let write_row = write_row.clone();
            move || write_row(None)
        };
        let periodic = runtime
            .scheduler()
            .add_plan_schedule(
                monitoring,
                shared.cleanup_task(),
                shared.evaluation_task(world),
            )
            .map_err(|e| format!("scheduling the background tasks: {e}"))?;
        Ok(Self {
            shared,
            write_row,
            periodic: periodic.into(),
            start_inputs,
        })
    }

    /// Removes the tasks; returns every task's (name, runs, skipped).
    pub(crate) fn stop(&mut self, runtime: &Runtime) -> Vec<(String, u64, u64)> {
        let tasks = runtime
            .scheduler()
            .list()
            .into_iter()
            .map(|s| (s.name, s.runs, s.skipped))
            .collect::<Vec<_>>();
        for id in self.periodic.drain(..) {
            runtime.scheduler().remove(id);
        }
        tasks
    }

    /// Writes the last monitoring row (the tail of the run, up to
    /// `end_inputs`) and folds what is left of the journal.
    pub(crate) fn finish(&self, end_inputs: MonitorInputs) -> Result<Aggregates, String> {
        (self.write_row)(Some(end_inputs));
        if let Some(e) = self.shared.csv_error.lock().take() {
            return Err(format!("writing the monitoring CSV: {e}"));
        }
        let mut aggregates = std::mem::take(&mut *self.shared.aggregates.lock());
        aggregates.fold(&mut self.shared.journal.lock());
        Ok(aggregates)
    }

    /// Where the loop keeps its per-frame records for the cleanup task.
    pub(crate) fn journal(&self) -> &Mutex<Journal> {
        &self.shared.journal
    }

    /// The leader's evaluations so far.
    pub(crate) fn evaluations(&self) -> Vec<Evaluation> {
        self.shared.evaluations.lock().clone()
    }

    /// The balancer's (calls, threads moved).
    pub(crate) fn balancer(&self) -> (u64, u64) {
        (
            self.shared.balancer.0.load(Ordering::Relaxed),
            self.shared.balancer.1.load(Ordering::Relaxed),
        )
    }
}

impl Shared {
    /// The monitoring task's work, also called once at the end of the run:
    /// the row, written to `csv` (its first error kept for the report).
    /// `run` is the run's name and thread count, the CSV's first columns.
    fn row_writer(
        &self,
        runtime: &Arc<Runtime>,
        guard: &Arc<FrameGuard>,
        meter: &Arc<SpeedupMeter>,
        monitor: Monitor,
        csv: Option<MonitorCsv>,
        (run_name, participants): (&'static str, usize),
    ) -> Arc<WriteRow> {
        // Weak: the runtime's scheduler holds this task; a strong reference
        // would keep the runtime alive through its own task.
        let weak: Weak<Runtime> = Arc::downgrade(runtime);
        let (guard, meter, csv_error, balancer) = (
            guard.clone(),
            meter.clone(),
            self.csv_error.clone(),
            self.balancer.clone(),
        );
        let monitor = Mutex::new(monitor);
        Arc::new(move |inputs: Option<MonitorInputs>| {
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
        })
    }

    /// The cleanup task: folds the journal into the aggregates.
    fn cleanup_task(&self) -> impl FnMut() + Send + 'static {
        let (journal, aggregates) = (self.journal.clone(), self.aggregates.clone());
        move || {
            let mut raw = std::mem::take(&mut *journal.lock());
            aggregates.lock().fold(&mut raw);
        }
    }

    /// The evaluation task: evaluates the leader the statistics pass last
    /// published, if any.
    fn evaluation_task(&self, world: &World) -> impl FnMut() + Send + 'static {
        let (leader, evaluations) = (world.leader_slot(), self.evaluations.clone());
        move || {
            let snapshot = leader.lock().clone();
            if let Some(s) = snapshot {
                let e = evaluate(&s);
                evaluations.lock().push(e);
            }
        }
    }
}
