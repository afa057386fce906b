//! [`FrameGuard`]: the public API over the guard's state (`state.rs`: the
//! frame figures and the stop rules), its callbacks and the watchdog's poll.
//!
//! All mutable state sits behind one mutex (`State`), taken once per frame
//! begin and end and by the watchdog's polls; the stop flag is mirrored in an
//! atomic so `is_stopped()` costs one load. Callbacks run after the lock is
//! released, on the thread whose call fired them, so a callback may call back
//! into the guard.

use crate::clock::{Clock, SystemClock};
use crate::config::FrameGuardConfig;
use crate::memory::resident_bytes;
use crate::state::{Fired, InProgress, MemoryProbe, Phase, State};
use crate::sync::{Arc, AtomicBool, AtomicU64, Mutex, Ordering};
use crate::types::{
    BuildError, FrameError, FrameRecord, FrameStats, IntervalFrames, PhaseId, PhaseStats,
    StallInfo, StopInfo,
};
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;
use thread_support::{Histogram, tsan};

// std's Arc even under loom: loom's Arc cannot hold unsized closures, and the
// callbacks are only cloned under the callbacks mutex, which loom does model.
type StopCallback = std::sync::Arc<dyn Fn(&StopInfo) + Send + Sync>;
type StallCallback = std::sync::Arc<dyn Fn(&StallInfo) + Send + Sync>;

#[derive(Default)]
struct Callbacks {
    on_stop: Option<StopCallback>,
    on_stall: Option<StallCallback>,
}

struct Inner {
    config: FrameGuardConfig,
    clock: Box<dyn Clock>,
    probe: MemoryProbe,
    state: Mutex<State>,
    stopped: AtomicBool,
    callbacks: Mutex<Callbacks>,
    callback_panics: AtomicU64,
}

impl Inner {
    /// The state, locked; the program's threads call in here, and TSan
    /// sees the lock's order (`tsan::Seen`).
    fn state(&self) -> tsan::Seen<impl std::ops::DerefMut<Target = State> + '_> {
        tsan::Seen::new(self.state.lock(), &self.state)
    }

    /// The callbacks, locked, as TSan sees it: a callback set on one thread
    /// and run on the watchdog's follows what the setter did before.
    fn callbacks(&self) -> tsan::Seen<impl std::ops::DerefMut<Target = Callbacks> + '_> {
        tsan::Seen::new(self.callbacks.lock(), &self.callbacks)
    }

    /// Runs the callbacks of what an update fired, outside the state lock.
    fn dispatch(&self, fired: Fired) {
        if fired.stop.is_none() && fired.stall.is_none() {
            return;
        }
        let (on_stop, on_stall) = {
            let callbacks = self.callbacks();
            (callbacks.on_stop.clone(), callbacks.on_stall.clone())
        };
        if let (Some(info), Some(f)) = (&fired.stall, on_stall)
            && catch_unwind(AssertUnwindSafe(|| tsan::user_code(|| f(info)))).is_err()
        {
            self.callback_panics.fetch_add(1, Ordering::Relaxed);
        }
        if let (Some(info), Some(f)) = (&fired.stop, on_stop)
            && catch_unwind(AssertUnwindSafe(|| tsan::user_code(|| f(info)))).is_err()
        {
            self.callback_panics.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Updates the state with `update`, mirrors the stop flag, then runs the
    /// callbacks.
    fn update<R>(&self, update: impl FnOnce(&mut State, &FrameGuardConfig, &mut Fired) -> R) -> R {
        let mut fired = Fired::default();
        let result = {
            let mut state = self.state();
            let result = update(&mut state, &self.config, &mut fired);
            if fired.stop.is_some() {
                self.stopped.store(true, Ordering::Release);
            }
            result
        };
        self.dispatch(fired);
        result
    }

    fn poll(&self) {
        let now = self.clock.now();
        self.update(|state, config, fired| state.advance(config, &self.probe, now, true, fired));
    }
}

/// The frame clock and emergency-stop guard of a frame loop.
///
/// The loop calls [`begin_frame`](Self::begin_frame) / [`end_frame`](Self::end_frame)
/// (or [`frame`](Self::frame) for a scope guard, or
/// [`record_frame`](Self::record_frame) with a duration it measured itself),
/// and checks [`is_stopped`](Self::is_stopped). Any thread may read the
/// figures. With `watchdog_period` set, a background thread checks the time
/// rules and stalled frames even while the loop is frozen.
pub struct FrameGuard {
    inner: Arc<Inner>,
    #[cfg(not(loom))]
    watchdog: Option<crate::watchdog::Watchdog>,
}

impl fmt::Debug for FrameGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameGuard")
            .field("config", &self.inner.config)
            .field("stopped", &self.is_stopped())
            .finish_non_exhaustive()
    }
}

/// Builds a [`FrameGuard`] with a chosen clock or memory probe.
pub struct FrameGuardBuilder {
    config: FrameGuardConfig,
    clock: Option<Box<dyn Clock>>,
    probe: Option<MemoryProbe>,
}

impl FrameGuardBuilder {
    /// Uses `clock` instead of the system clock (for example a
    /// [`ManualClock`](crate::ManualClock) in tests).
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Some(Box::new(clock));
        self
    }

    /// Uses `probe` to read the resident memory instead of `/proc/self/statm`.
    pub fn memory_probe(mut self, probe: impl Fn() -> Option<u64> + Send + Sync + 'static) -> Self {
        self.probe = Some(Box::new(probe));
        self
    }

    /// Validates the configuration and builds the guard (starting the
    /// watchdog thread if the configuration asks for one).
    pub fn build(self) -> Result<FrameGuard, BuildError> {
        self.config.validate()?;
        let clock = self.clock.unwrap_or_else(|| Box::new(SystemClock::new()));
        let state = State::new(&self.config, clock.now());
        let inner = Arc::new(Inner {
            config: self.config,
            clock,
            probe: self.probe.unwrap_or_else(|| Box::new(resident_bytes)),
            state: Mutex::new(state),
            stopped: AtomicBool::new(false),
            callbacks: Mutex::new(Callbacks::default()),
            callback_panics: AtomicU64::new(0),
        });
        #[cfg(not(loom))]
        let watchdog = match inner.config.watchdog_period {
            Some(period) => Some({
                let inner = Arc::clone(&inner);
                crate::watchdog::Watchdog::start(move || inner.poll(), period)
                    .map_err(BuildError::Spawn)?
            }),
            None => None,
        };
        Ok(FrameGuard {
            inner,
            #[cfg(not(loom))]
            watchdog,
        })
    }
}

impl FrameGuard {
    /// A guard on the system clock.
    pub fn new(config: FrameGuardConfig) -> Result<Self, BuildError> {
        Self::builder(config).build()
    }

    /// A builder, to choose the clock or the memory probe.
    pub fn builder(config: FrameGuardConfig) -> FrameGuardBuilder {
        FrameGuardBuilder {
            config,
            clock: None,
            probe: None,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &FrameGuardConfig {
        &self.inner.config
    }

    /// The guard clock's current time.
    pub fn now(&self) -> Duration {
        self.inner.clock.now()
    }

    /// Starts a frame; returns its index. Also runs the time-based checks.
    pub fn begin_frame(&self) -> Result<u64, FrameError> {
        let now = self.inner.clock.now();
        self.inner.update(|state, config, fired| {
            let index = state.next_index(config, &self.inner.probe, now, fired)?;
            state.in_progress = Some(InProgress {
                index,
                began: now,
                stalled: false,
            });
            Ok(index)
        })
    }

    /// Ends the frame in progress, records it and applies the rules.
    pub fn end_frame(&self) -> Result<FrameRecord, FrameError> {
        let now = self.inner.clock.now();
        let stopped = &self.inner.stopped;
        self.inner.update(|state, config, fired| {
            let Some(p) = &state.in_progress else {
                return Err(FrameError::NotInProgress);
            };
            let (index, began) = (p.index, p.began);
            state.advance(config, &self.inner.probe, now, false, fired);
            state.in_progress = None;
            let duration = now.saturating_sub(began);
            Ok(state.finish(config, index, now, duration, stopped, fired))
        })
    }

    /// Records a frame of `duration` that ended now (for a loop that times
    /// its frames itself, or replays or injects them). Fails while a frame
    /// begun with `begin_frame` is in progress.
    pub fn record_frame(&self, duration: Duration) -> Result<FrameRecord, FrameError> {
        let now = self.inner.clock.now();
        let stopped = &self.inner.stopped;
        self.inner.update(|state, config, fired| {
            let index = state.next_index(config, &self.inner.probe, now, fired)?;
            Ok(state.finish(config, index, now, duration, stopped, fired))
        })
    }

    /// Begins a frame that ends when the returned scope is dropped (or
    /// [`FrameScope::end`] is called).
    pub fn frame(&self) -> Result<FrameScope<'_>, FrameError> {
        let index = self.begin_frame()?;
        Ok(FrameScope {
            guard: self,
            index,
            ended: false,
        })
    }

    /// Runs the time-based checks now: samples due, memory, a stalled frame
    /// in progress. The watchdog thread calls this; a loop without a
    /// watchdog may call it too (`begin`/`end` run the first two already).
    pub fn poll(&self) {
        self.inner.poll();
    }

    /// True once a rule has stopped the loop (one atomic load).
    pub fn is_stopped(&self) -> bool {
        self.inner.stopped.load(Ordering::Acquire)
    }

    /// Index of the frame in progress (between begin and end), if any.
    pub fn frame_in_progress(&self) -> Option<u64> {
        self.inner
            .state
            .lock()
            .in_progress
            .as_ref()
            .map(|p| p.index)
    }

    /// Why and where the loop was stopped, if it was.
    pub fn stop_info(&self) -> Option<StopInfo> {
        self.inner.state().stop.clone()
    }

    /// Calls `f` once, when a rule first stops the loop, on the thread whose
    /// call fired the rule (the loop's, or the watchdog's). Not called if the
    /// guard is already stopped. Replaces the previous callback.
    pub fn set_on_stop(&self, f: impl Fn(&StopInfo) + Send + Sync + 'static) {
        self.inner.callbacks().on_stop = Some(std::sync::Arc::new(f));
    }

    /// Removes the stop callback.
    pub fn clear_on_stop(&self) {
        self.inner.callbacks().on_stop = None;
    }

    /// Calls `f` when a frame is first seen in progress past the slow-frame
    /// limit (by `poll` or the watchdog). Replaces the previous callback.
    pub fn set_on_stall(&self, f: impl Fn(&StallInfo) + Send + Sync + 'static) {
        self.inner.callbacks().on_stall = Some(std::sync::Arc::new(f));
    }

    /// The cumulative figures.
    pub fn stats(&self) -> FrameStats {
        let state = self.inner.state();
        let frames = state.total.count();
        FrameStats {
            frames,
            p50: state.total.quantile(0.5),
            p99: state.total.quantile(0.99),
            max: state.total.max(),
            min: state.total.min(),
            mean: state.total.mean(),
            under_budget_share: if frames == 0 {
                0.0
            } else {
                state.total_under as f64 / frames as f64
            },
            budget: self.inner.config.budget,
            slow_frames: state.slow_frames,
            consecutive_slow: state.run,
            stalled_frames: state.stalled_frames,
            samples: state.samples,
            slow_samples: state.slow_samples,
            trips: state.trips,
            resident_bytes: state.resident,
            frame_in_progress: state.in_progress.as_ref().map(|p| p.index),
            callback_panics: self.inner.callback_panics.load(Ordering::Relaxed),
        }
    }

    /// The frame figures since the previous call (or since creation), and
    /// starts a new interval. The monitoring row takes its frame columns
    /// from here.
    pub fn take_interval(&self) -> IntervalFrames {
        let now = self.inner.clock.now();
        let mut state = self.inner.state();
        let h = &state.interval;
        let figures = IntervalFrames {
            start: state.interval_start,
            end: now.max(state.interval_start),
            frames: h.count(),
            under_budget: state.interval_under,
            p50: h.quantile(0.5),
            p99: h.quantile(0.99),
            max: h.max(),
            mean: h.mean(),
        };
        state.interval.clear();
        state.interval_under = 0;
        state.interval_start = figures.end;
        figures
    }

    /// Registers a named phase of the frame (physics, agents, stats...) and
    /// returns its id; the same name gives the same id.
    pub fn add_phase(&self, name: &str) -> PhaseId {
        self.add_phase_within(name, usize::MAX)
            .expect("no limit on the number of phases")
    }

    /// As [`add_phase`](Self::add_phase), but `None` (nothing registered)
    /// if `name` is new and the guard already has `max_phases` phases; the
    /// check and the registration are one step.
    pub fn add_phase_within(&self, name: &str, max_phases: usize) -> Option<PhaseId> {
        let mut state = self.inner.state();
        if let Some(i) = state.phases.iter().position(|p| p.name == name) {
            return Some(PhaseId(i));
        }
        if state.phases.len() >= max_phases {
            return None;
        }
        state.phases.push(Phase {
            name: name.to_owned(),
            times: Histogram::new(),
        });
        Some(PhaseId(state.phases.len() - 1))
    }

    /// Records one run of a phase.
    pub fn record_phase(&self, phase: PhaseId, duration: Duration) {
        if let Some(p) = self.inner.state().phases.get_mut(phase.0) {
            p.times.record(duration);
        }
    }

    /// Runs `f`, timing it on the guard clock as one run of `phase`.
    pub fn time_phase<R>(&self, phase: PhaseId, f: impl FnOnce() -> R) -> R {
        let start = self.inner.clock.now();
        let result = f();
        self.record_phase(phase, self.inner.clock.now().saturating_sub(start));
        result
    }

    /// The figures of every phase, in registration order.
    pub fn phase_stats(&self) -> Vec<PhaseStats> {
        let state = self.inner.state();
        state.phases.iter().map(Phase::stats).collect()
    }

    /// The number of phases registered (phases are never removed).
    pub fn phase_count(&self) -> usize {
        self.inner.state().phases.len()
    }

    /// The id of the phase registered `index`-th (from 0), if there is one:
    /// for callers that hold phases by number (the C API).
    pub fn phase(&self, index: usize) -> Option<PhaseId> {
        (index < self.phase_count()).then_some(PhaseId(index))
    }

    /// The figures of one phase; `None` for an id this guard did not give.
    pub fn phase_stat(&self, phase: PhaseId) -> Option<PhaseStats> {
        self.inner
            .state
            .lock()
            .phases
            .get(phase.0)
            .map(Phase::stats)
    }

    /// Polls made by the watchdog thread so far (0 without a watchdog).
    pub fn watchdog_polls(&self) -> u64 {
        #[cfg(not(loom))]
        if let Some(w) = &self.watchdog {
            return w.polls();
        }
        0
    }
}

/// A frame in progress; dropping it ends the frame.
#[must_use = "dropping the scope ends the frame at once"]
pub struct FrameScope<'a> {
    guard: &'a FrameGuard,
    index: u64,
    ended: bool,
}

impl FrameScope<'_> {
    /// The frame's index.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// Ends the frame now and returns its record.
    pub fn end(mut self) -> Result<FrameRecord, FrameError> {
        self.ended = true;
        self.guard.end_frame()
    }
}

impl Drop for FrameScope<'_> {
    fn drop(&mut self) {
        if !self.ended {
            let _ = self.guard.end_frame();
        }
    }
}
