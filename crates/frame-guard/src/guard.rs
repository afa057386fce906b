//! [`FrameGuard`]: the frame clock, its histograms, and the stop rules.
//!
//! All mutable state sits behind one mutex (`State`), taken once per frame
//! begin and end and by the watchdog's polls; the stop flag is mirrored in an
//! atomic so `is_stopped()` costs one load. Callbacks run after the lock is
//! released, on the thread whose call fired them, so a callback may call back
//! into the guard.

use crate::clock::{Clock, SystemClock};
use crate::config::{ConfigError, FrameGuardConfig};
use crate::memory::resident_bytes;
use crate::sync::{Arc, AtomicBool, AtomicU64, Mutex, Ordering};
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;
use thread_support::Histogram;
use thread_support::duration_to_nanos;

/// Why the guard stopped the loop, with the figures that made the rule fire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// The plan's rule: `count` frames in a row were longer than `limit`.
    SlowFrames {
        /// K, the rule's count.
        count: u32,
        /// The slow-frame limit.
        limit: Duration,
        /// The duration of the K-th slow frame, or its age when it was still
        /// in progress (`in_progress`), seen by the watchdog or a poll.
        last: Duration,
        /// True when the K-th frame had not ended yet: the loop is frozen in it.
        in_progress: bool,
    },
    /// The original code's rule: `count` samples in a row saw a frame gap
    /// over `gap_limit`.
    SlowSamples {
        /// The rule's count of slow samples in a row.
        count: u32,
        /// The frame-gap limit of a sample.
        gap_limit: Duration,
        /// The frame gap seen by the last sample.
        last_gap: Duration,
    },
    /// The resident memory was over the limit.
    Memory {
        /// Resident bytes read.
        resident_bytes: u64,
        /// The limit in bytes.
        limit_bytes: u64,
    },
}

/// The state of a stopped guard: what fired, at which frame, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopInfo {
    /// The rule that fired and its figures.
    pub reason: StopReason,
    /// Index (from 0) of the frame at which the rule fired: the K-th slow
    /// frame, or the frame in progress (or next to begin) at a sample or
    /// memory check.
    pub frame: u64,
    /// Guard-clock time at which the rule fired (for a sample: its time).
    pub at: Duration,
}

impl fmt::Display for StopInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.reason {
            StopReason::SlowFrames {
                count,
                limit,
                last,
                in_progress,
            } => write!(
                f,
                "emergency stop at frame {}: {count} consecutive frames over {:.1} ms (the last {} {:.1} ms)",
                self.frame,
                limit.as_secs_f64() * 1e3,
                if *in_progress {
                    "still running after"
                } else {
                    "took"
                },
                last.as_secs_f64() * 1e3
            ),
            StopReason::SlowSamples {
                count,
                gap_limit,
                last_gap,
            } => write!(
                f,
                "emergency stop at frame {}: {count} samples in a row with a frame gap over {:.1} ms (the last {:.1} ms)",
                self.frame,
                gap_limit.as_secs_f64() * 1e3,
                last_gap.as_secs_f64() * 1e3
            ),
            StopReason::Memory {
                resident_bytes,
                limit_bytes,
            } => write!(
                f,
                "emergency stop at frame {}: resident memory {:.1} MiB over the limit of {:.1} MiB",
                self.frame,
                *resident_bytes as f64 / 1048576.0,
                *limit_bytes as f64 / 1048576.0
            ),
        }
    }
}

/// A frame still in progress after the slow-frame limit (seen by a poll or
/// the watchdog thread). Each frame is reported at most once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StallInfo {
    /// Index of the frame.
    pub frame: u64,
    /// When it began (guard clock).
    pub began: Duration,
    /// How long it had been running when noticed.
    pub age: Duration,
}

/// How many times each rule fired. The first firing stops the loop; the rules
/// go on counting afterwards (a rule's run restarts after each firing), so a
/// benchmark can report how often each rule would have stopped it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RuleTrips {
    /// Firings of the consecutive-slow-frames rule.
    pub consecutive: u64,
    /// Firings of the sampled rule.
    pub sampled: u64,
    /// Firings of the memory rule (each crossing from under to over the limit).
    pub memory: u64,
}

/// Cumulative figures of the guard since it was created. Times are zero when
/// no frame was recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameStats {
    /// Frames recorded (ended or ticked).
    pub frames: u64,
    /// Median frame time (within 1.6 %).
    pub p50: Duration,
    /// 99th-percentile frame time (within 1.6 %).
    pub p99: Duration,
    /// Longest frame (exact).
    pub max: Duration,
    /// Shortest frame (exact).
    pub min: Duration,
    /// Mean frame time (exact).
    pub mean: Duration,
    /// Share of frames whose duration is at most the budget (0 when no frame).
    pub under_budget_share: f64,
    /// The budget of `under_budget_share`.
    pub budget: Duration,
    /// Frames longer than the slow-frame limit.
    pub slow_frames: u64,
    /// Current run of consecutive slow frames.
    pub consecutive_slow: u32,
    /// Frames seen in progress past the slow-frame limit (stalls).
    pub stalled_frames: u64,
    /// Samples taken by the sampled rule, and how many were slow.
    pub samples: u64,
    /// Samples with a frame gap over the limit.
    pub slow_samples: u64,
    /// Firings per rule.
    pub trips: RuleTrips,
    /// The last resident-memory reading of the memory rule.
    pub resident_bytes: Option<u64>,
    /// Index of the frame in progress (between begin and end), if any.
    pub frame_in_progress: Option<u64>,
    /// Callbacks that panicked (the panic is caught and counted).
    pub callback_panics: u64,
}

/// Frame figures of one monitoring interval (see [`FrameGuard::take_interval`]).
#[derive(Debug, Clone, PartialEq)]
pub struct IntervalFrames {
    /// Guard-clock start of the interval.
    pub start: Duration,
    /// Guard-clock end of the interval.
    pub end: Duration,
    /// Frames recorded in the interval.
    pub frames: u64,
    /// Frames at most the budget.
    pub under_budget: u64,
    /// Median frame time (zero when no frame).
    pub p50: Duration,
    /// 99th percentile (zero when no frame).
    pub p99: Duration,
    /// Longest frame (zero when no frame).
    pub max: Duration,
    /// Mean frame time (zero when no frame).
    pub mean: Duration,
}

/// What one recorded frame was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameRecord {
    /// Index of the frame, from 0.
    pub index: u64,
    /// Its duration.
    pub duration: Duration,
    /// True if it was longer than the slow-frame limit.
    pub slow: bool,
    /// True if the guard is stopped after this frame.
    pub stopped: bool,
}

/// A misuse of the begin/end protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// `begin_frame` or `record_frame` while frame `frame` is in progress.
    InProgress {
        /// The frame in progress.
        frame: u64,
    },
    /// `end_frame` without a frame in progress.
    NotInProgress,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InProgress { frame } => write!(f, "frame {frame} is in progress: end it first"),
            Self::NotInProgress => write!(f, "no frame is in progress: begin one first"),
        }
    }
}

impl std::error::Error for FrameError {}

/// A guard that could not be built.
#[derive(Debug)]
pub enum BuildError {
    /// A configuration value is out of range.
    Config(ConfigError),
    /// The watchdog thread could not be started.
    Spawn(std::io::Error),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Config(e) => write!(f, "bad frame-guard configuration: {e}"),
            Self::Spawn(e) => write!(f, "could not start the watchdog thread: {e}"),
        }
    }
}

impl std::error::Error for BuildError {}

impl From<ConfigError> for BuildError {
    fn from(e: ConfigError) -> Self {
        Self::Config(e)
    }
}

/// Names a timed phase of the frame (see [`FrameGuard::add_phase`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PhaseId(usize);

impl PhaseId {
    /// The phase's position in registration order, from 0 (the index of
    /// [`FrameGuard::phase`] and of [`FrameGuard::phase_stats`]).
    pub fn index(self) -> usize {
        self.0
    }
}

/// Cumulative timing of one phase.
#[derive(Debug, Clone, PartialEq)]
pub struct PhaseStats {
    /// The phase's name.
    pub name: String,
    /// Times it was recorded.
    pub count: u64,
    /// Total time (exact).
    pub total: Duration,
    /// Median (within 1.6 %).
    pub p50: Duration,
    /// 99th percentile (within 1.6 %).
    pub p99: Duration,
    /// Longest (exact).
    pub max: Duration,
}

// std's Arc even under loom: loom's Arc cannot hold unsized closures, and the
// callbacks are only cloned under the callbacks mutex, which loom does model.
type StopCallback = std::sync::Arc<dyn Fn(&StopInfo) + Send + Sync>;
type StallCallback = std::sync::Arc<dyn Fn(&StallInfo) + Send + Sync>;
type MemoryProbe = Box<dyn Fn() -> Option<u64> + Send + Sync>;

#[derive(Default)]
struct Callbacks {
    on_stop: Option<StopCallback>,
    on_stall: Option<StallCallback>,
}

struct InProgress {
    index: u64,
    began: Duration,
    stalled: bool,
}

struct Phase {
    name: String,
    times: Histogram,
}

impl Phase {
    fn stats(&self) -> PhaseStats {
        PhaseStats {
            name: self.name.clone(),
            count: self.times.count(),
            total: self.times.sum(),
            p50: self.times.quantile(0.5),
            p99: self.times.quantile(0.99),
            max: self.times.max(),
        }
    }
}

struct State {
    next_frame: u64,
    in_progress: Option<InProgress>,
    /// End of the last frame (the guard's creation before the first), and the
    /// gap between the last two ends: the sampled rule's frame gap.
    last_end: Duration,
    last_gap: Duration,
    total: Histogram,
    total_under: u64,
    interval: Histogram,
    interval_under: u64,
    interval_start: Duration,
    slow_frames: u64,
    stalled_frames: u64,
    run: u32,
    early_trip: Option<u64>,
    next_sample: Duration,
    sample_run: u32,
    samples: u64,
    slow_samples: u64,
    next_memory_check: Duration,
    memory_over: bool,
    resident: Option<u64>,
    trips: RuleTrips,
    stop: Option<StopInfo>,
    phases: Vec<Phase>,
}

/// What one state update fired; callbacks run on it after the lock is released.
#[derive(Default)]
struct Fired {
    stop: Option<StopInfo>,
    stall: Option<StallInfo>,
}

/// `t + n * step`, saturating.
fn add_steps(t: Duration, step: Duration, n: u128) -> Duration {
    let ns = u128::from(duration_to_nanos(t)) + u128::from(duration_to_nanos(step)) * n;
    Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
}

impl State {
    fn new(config: &FrameGuardConfig, now: Duration) -> Self {
        Self {
            next_frame: 0,
            in_progress: None,
            last_end: now,
            last_gap: Duration::ZERO,
            total: Histogram::new(),
            total_under: 0,
            interval: Histogram::new(),
            interval_under: 0,
            interval_start: now,
            slow_frames: 0,
            stalled_frames: 0,
            run: 0,
            early_trip: None,
            next_sample: now + config.sample_interval,
            sample_run: 0,
            samples: 0,
            slow_samples: 0,
            next_memory_check: now,
            memory_over: false,
            resident: None,
            trips: RuleTrips::default(),
            stop: None,
            phases: Vec::new(),
        }
    }

    /// The frame in progress, or the next one to begin.
    fn current_frame(&self) -> u64 {
        self.in_progress
            .as_ref()
            .map_or(self.next_frame, |p| p.index)
    }

    /// Latches the first stop; later firings only count.
    fn trip(&mut self, info: StopInfo, fired: &mut Fired) {
        if self.stop.is_none() {
            self.stop = Some(info.clone());
            fired.stop = Some(info);
        }
    }

    /// Runs the time-based checks up to `now`: the sampled rule's samples,
    /// the memory rule, and (if `check_stall`) the frame in progress.
    fn advance(
        &mut self,
        config: &FrameGuardConfig,
        probe: &MemoryProbe,
        now: Duration,
        check_stall: bool,
        fired: &mut Fired,
    ) {
        if config.rules.sampled {
            self.take_samples(config, now, fired);
        }
        if config.rules.memory && now >= self.next_memory_check {
            self.next_memory_check = now + config.memory_check_interval;
            self.resident = probe();
            let over = self.resident.is_some_and(|r| r > config.memory_limit_bytes);
            if over && !self.memory_over {
                self.trips.memory += 1;
                let reason = StopReason::Memory {
                    resident_bytes: self.resident.unwrap_or(0),
                    limit_bytes: config.memory_limit_bytes,
                };
                self.trip(
                    StopInfo {
                        reason,
                        frame: self.current_frame(),
                        at: now,
                    },
                    fired,
                );
            }
            self.memory_over = over;
        }
        if check_stall {
            self.check_stall(config, now, fired);
        }
    }

    /// Takes every sample due up to `now`. A sample at `t` sees the frame gap
    /// `max(gap between the last two frame ends, t - last end)`.
    fn take_samples(&mut self, config: &FrameGuardConfig, now: Duration, fired: &mut Fired) {
        let (interval, limit, count) = (
            config.sample_interval,
            config.sample_gap_limit,
            config.slow_sample_count,
        );
        while self.next_sample <= now {
            let t = self.next_sample;
            let since_end = t.saturating_sub(self.last_end);
            if since_end > limit {
                // Every later sample up to `now` sees a longer gap still: all
                // slow. Count them at once (a frozen loop or a clock jump).
                let n = (duration_to_nanos(now - t) / duration_to_nanos(interval)) as u128 + 1;
                let n64 = u64::try_from(n).unwrap_or(u64::MAX);
                self.samples += n64;
                self.slow_samples += n64;
                let run = u128::from(self.sample_run) + n;
                let trips = run / u128::from(count);
                if trips > 0 {
                    self.trips.sampled += u64::try_from(trips).unwrap_or(u64::MAX);
                    let first = add_steps(t, interval, u128::from(count - self.sample_run - 1));
                    let reason = StopReason::SlowSamples {
                        count,
                        gap_limit: limit,
                        last_gap: first - self.last_end,
                    };
                    self.trip(
                        StopInfo {
                            reason,
                            frame: self.current_frame(),
                            at: first,
                        },
                        fired,
                    );
                }
                self.sample_run = (run % u128::from(count)) as u32;
                self.next_sample = add_steps(t, interval, n);
                return;
            }
            let gap = self.last_gap.max(since_end);
            self.samples += 1;
            if gap > limit {
                self.slow_samples += 1;
                self.sample_run += 1;
                if self.sample_run >= count {
                    self.sample_run = 0;
                    self.trips.sampled += 1;
                    let reason = StopReason::SlowSamples {
                        count,
                        gap_limit: limit,
                        last_gap: gap,
                    };
                    self.trip(
                        StopInfo {
                            reason,
                            frame: self.current_frame(),
                            at: t,
                        },
                        fired,
                    );
                }
            } else {
                self.sample_run = 0;
            }
            self.next_sample = t + interval;
        }
    }

    /// Flags the frame in progress once it is older than the slow-frame
    /// limit. If it is the K-th slow frame in a row, the consecutive rule
    /// fires now: that frame is over the limit however it ends.
    fn check_stall(&mut self, config: &FrameGuardConfig, now: Duration, fired: &mut Fired) {
        let Some(p) = self.in_progress.as_mut() else {
            return;
        };
        let age = now.saturating_sub(p.began);
        if p.stalled || age <= config.slow_frame_limit {
            return;
        }
        p.stalled = true;
        let (index, began) = (p.index, p.began);
        self.stalled_frames += 1;
        fired.stall = Some(StallInfo {
            frame: index,
            began,
            age,
        });
        if config.rules.consecutive && self.run + 1 >= config.slow_frame_count {
            self.early_trip = Some(index);
            self.trip_consecutive(config, index, age, true, now, fired);
        }
    }

    /// The consecutive rule fires at `at` for frame `index`, the K-th slow
    /// one, `last` long so far (`in_progress`) or in all.
    fn trip_consecutive(
        &mut self,
        config: &FrameGuardConfig,
        index: u64,
        last: Duration,
        in_progress: bool,
        at: Duration,
        fired: &mut Fired,
    ) {
        self.trips.consecutive += 1;
        let reason = StopReason::SlowFrames {
            count: config.slow_frame_count,
            limit: config.slow_frame_limit,
            last,
            in_progress,
        };
        let info = StopInfo {
            reason,
            frame: index,
            at,
        };
        self.trip(info, fired);
    }

    /// Refuses while a frame is in progress; else runs the time-based
    /// checks up to `now` and takes the next frame index.
    fn next_index(
        &mut self,
        config: &FrameGuardConfig,
        probe: &MemoryProbe,
        now: Duration,
        fired: &mut Fired,
    ) -> Result<u64, FrameError> {
        if let Some(p) = &self.in_progress {
            return Err(FrameError::InProgress { frame: p.index });
        }
        self.advance(config, probe, now, false, fired);
        let index = self.next_frame;
        self.next_frame += 1;
        Ok(index)
    }

    /// Records frame `index` of `duration`, ended at `end`, and returns its
    /// record; `stopped` is the guard's stop flag.
    fn finish(
        &mut self,
        config: &FrameGuardConfig,
        index: u64,
        end: Duration,
        duration: Duration,
        stopped: &AtomicBool,
        fired: &mut Fired,
    ) -> FrameRecord {
        let slow = self.record(config, index, end, duration, fired);
        FrameRecord {
            index,
            duration,
            slow,
            stopped: fired.stop.is_some() || stopped.load(Ordering::Acquire),
        }
    }

    /// Applies frame `index` of `duration`, ended at `end`, to the figures
    /// and the slow-frame rule; true if it was slow.
    fn record(
        &mut self,
        config: &FrameGuardConfig,
        index: u64,
        end: Duration,
        duration: Duration,
        fired: &mut Fired,
    ) -> bool {
        self.total.record(duration);
        self.interval.record(duration);
        if duration <= config.budget {
            self.total_under += 1;
            self.interval_under += 1;
        }
        self.last_gap = end.saturating_sub(self.last_end);
        self.last_end = end;
        let slow = duration > config.slow_frame_limit;
        if slow {
            self.slow_frames += 1;
            self.run += 1;
            if self.run >= config.slow_frame_count {
                self.run = 0;
                // A frame the watchdog already counted as the K-th fires once.
                if config.rules.consecutive && self.early_trip != Some(index) {
                    self.trip_consecutive(config, index, duration, false, end, fired);
                }
            }
        } else {
            self.run = 0;
        }
        slow
    }
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
    /// Runs the callbacks of what an update fired, outside the state lock.
    fn dispatch(&self, fired: Fired) {
        if fired.stop.is_none() && fired.stall.is_none() {
            return;
        }
        let (on_stop, on_stall) = {
            let callbacks = self.callbacks.lock();
            (callbacks.on_stop.clone(), callbacks.on_stall.clone())
        };
        if let (Some(info), Some(f)) = (&fired.stall, on_stall)
            && catch_unwind(AssertUnwindSafe(|| f(info))).is_err()
        {
            self.callback_panics.fetch_add(1, Ordering::Relaxed);
        }
        if let (Some(info), Some(f)) = (&fired.stop, on_stop)
            && catch_unwind(AssertUnwindSafe(|| f(info))).is_err()
        {
            self.callback_panics.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Updates the state with `update`, mirrors the stop flag, then runs the
    /// callbacks.
    fn update<R>(&self, update: impl FnOnce(&mut State, &FrameGuardConfig, &mut Fired) -> R) -> R {
        let mut fired = Fired::default();
        let result = {
            let mut state = self.state.lock();
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
        self.inner.state.lock().stop.clone()
    }

    /// Calls `f` once, when a rule first stops the loop, on the thread whose
    /// call fired the rule (the loop's, or the watchdog's). Not called if the
    /// guard is already stopped. Replaces the previous callback.
    pub fn set_on_stop(&self, f: impl Fn(&StopInfo) + Send + Sync + 'static) {
        self.inner.callbacks.lock().on_stop = Some(std::sync::Arc::new(f));
    }

    /// Removes the stop callback.
    pub fn clear_on_stop(&self) {
        self.inner.callbacks.lock().on_stop = None;
    }

    /// Calls `f` when a frame is first seen in progress past the slow-frame
    /// limit (by `poll` or the watchdog). Replaces the previous callback.
    pub fn set_on_stall(&self, f: impl Fn(&StallInfo) + Send + Sync + 'static) {
        self.inner.callbacks.lock().on_stall = Some(std::sync::Arc::new(f));
    }

    /// The cumulative figures.
    pub fn stats(&self) -> FrameStats {
        let state = self.inner.state.lock();
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
        let mut state = self.inner.state.lock();
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
        let mut state = self.inner.state.lock();
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
        if let Some(p) = self.inner.state.lock().phases.get_mut(phase.0) {
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
        let state = self.inner.state.lock();
        state.phases.iter().map(Phase::stats).collect()
    }

    /// The number of phases registered (phases are never removed).
    pub fn phase_count(&self) -> usize {
        self.inner.state.lock().phases.len()
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
