//! The guard's public values: why it stopped, what a poll saw, the frame
//! and phase figures, a frame's record, and the errors.

use crate::config::ConfigError;
use std::fmt;
use std::time::Duration;

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
///
/// [`FrameGuard::take_interval`]: crate::FrameGuard::take_interval
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
///
/// [`FrameGuard::add_phase`]: crate::FrameGuard::add_phase
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PhaseId(pub(crate) usize);

impl PhaseId {
    /// The phase's position in registration order, from 0 (the index of
    /// [`FrameGuard::phase`] and of [`FrameGuard::phase_stats`]).
    ///
    /// [`FrameGuard::phase`]: crate::FrameGuard::phase
    /// [`FrameGuard::phase_stats`]: crate::FrameGuard::phase_stats
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
