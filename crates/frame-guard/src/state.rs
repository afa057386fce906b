//! The state behind the guard's mutex: the frame recording and its
//! figures, and the stop rules' state machine (consecutive slow frames,
//! sampled frame gaps, memory, stalled frames).

use crate::config::FrameGuardConfig;
use crate::sync::{AtomicBool, Ordering};
use crate::types::{
    FrameError, FrameRecord, PhaseStats, RuleTrips, StallInfo, StopInfo, StopReason,
};
use std::time::Duration;
use thread_support::Histogram;
use thread_support::duration_to_nanos;

/// Reads the resident memory (the memory rule's probe).
pub(crate) type MemoryProbe = Box<dyn Fn() -> Option<u64> + Send + Sync>;

pub(crate) struct InProgress {
    pub(crate) index: u64,
    pub(crate) began: Duration,
    pub(crate) stalled: bool,
}

pub(crate) struct Phase {
    pub(crate) name: String,
    pub(crate) times: Histogram,
}

impl Phase {
    pub(crate) fn stats(&self) -> PhaseStats {
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

pub(crate) struct State {
    pub(crate) next_frame: u64,
    pub(crate) in_progress: Option<InProgress>,
    /// End of the last frame (the guard's creation before the first), and the
    /// gap between the last two ends: the sampled rule's frame gap.
    pub(crate) last_end: Duration,
    pub(crate) last_gap: Duration,
    pub(crate) total: Histogram,
    pub(crate) total_under: u64,
    pub(crate) interval: Histogram,
    pub(crate) interval_under: u64,
    pub(crate) interval_start: Duration,
    pub(crate) slow_frames: u64,
    pub(crate) stalled_frames: u64,
    pub(crate) run: u32,
    pub(crate) early_trip: Option<u64>,
    pub(crate) next_sample: Duration,
    pub(crate) sample_run: u32,
    pub(crate) samples: u64,
    pub(crate) slow_samples: u64,
    pub(crate) next_memory_check: Duration,
    pub(crate) memory_over: bool,
    pub(crate) resident: Option<u64>,
    pub(crate) trips: RuleTrips,
    pub(crate) stop: Option<StopInfo>,
    pub(crate) phases: Vec<Phase>,
}

/// What one state update fired; callbacks run on it after the lock is released.
#[derive(Default)]
pub(crate) struct Fired {
    pub(crate) stop: Option<StopInfo>,
    pub(crate) stall: Option<StallInfo>,
}

/// `t + n * step`, saturating.
fn add_steps(t: Duration, step: Duration, n: u128) -> Duration {
    let ns = u128::from(duration_to_nanos(t)) + u128::from(duration_to_nanos(step)) * n;
    Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
}

impl State {
    pub(crate) fn new(config: &FrameGuardConfig, now: Duration) -> Self {
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
    pub(crate) fn advance(
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
    pub(crate) fn next_index(
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
    pub(crate) fn finish(
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
