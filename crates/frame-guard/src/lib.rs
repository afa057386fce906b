//! # frame-guard: the frame loop's clock, watchdog and monitoring rows
//!
//! A training loop built on frames (the walker plan's loop) must never freeze
//! unnoticed. This crate times its frames, applies the emergency-stop rules,
//! and writes one monitoring row per interval.
//!
//! - [`FrameGuard`]: `begin_frame`/`end_frame` (or the [`FrameScope`] of
//!   `frame()`, or `record_frame(duration)` for injected times) feed a
//!   fixed-memory [`Histogram`] (p50, p99, max, mean, count) and the share of
//!   frames under the budget (16.7 ms by default); named phases
//!   (`add_phase`, `time_phase`) get their own histograms.
//! - Stop rules ([`StopRules`], chosen in [`FrameGuardConfig`]): the plan's
//!   *K consecutive frames over a limit* (10 over 2 s), the original code's
//!   *sampled* rule (every 5 s a sample; slow if the frame gap exceeds
//!   0.5 s; 10 slow samples in a row), and a resident-memory limit
//!   (`/proc/self/statm`). The stop is a state ([`FrameGuard::is_stopped`],
//!   [`StopInfo`]: reason, frame, time) and a callback, never a process exit.
//! - An optional watchdog thread polls the guard so that a loop frozen inside
//!   a frame is seen: the frame is flagged as stalled once older than the
//!   limit, and if it is the K-th slow frame in a row the stop fires then.
//! - [`Monitor`] / [`CsvMonitor`]: one [`MonitorRow`] per interval (1 s by
//!   default) as CSV, from [`MonitorInputs`], a plain struct of cumulative
//!   counters (pool busy/alive thread-time, lock acquisitions and contended
//!   acquisitions, parallel work and wall time from a [`SpeedupMeter`]).
//!   The columns are defined on [`MonitorRow`].
//!
//! Guarantees: a rule fires exactly when its condition holds, counted in
//! guard-clock time (tests drive a [`ManualClock`]); the first firing latches
//! the stop and runs the stop callback once; rules keep counting their
//! firings afterwards ([`RuleTrips`]). Every method takes `&self` and the
//! guard is `Send + Sync`; one mutex guards the state, `is_stopped` is one
//! atomic load, callbacks run outside the lock (a panicking callback is
//! caught and counted). The crate depends on no pool or lock crate: the
//! monitoring inputs are plain numbers.
//!
//! ```
//! use frame_guard::{FrameGuard, FrameGuardConfig, ManualClock};
//! use std::time::Duration;
//!
//! let clock = ManualClock::new();
//! let config = FrameGuardConfig { slow_frame_count: 3, ..Default::default() };
//! let guard = FrameGuard::builder(config).clock(clock.clone()).build().unwrap();
//! for _ in 0..3 {
//!     guard.begin_frame().unwrap();
//!     clock.advance(Duration::from_millis(2500)); // over the 2 s limit
//!     guard.end_frame().unwrap();
//! }
//! assert!(guard.is_stopped());
//! assert_eq!(guard.stop_info().unwrap().frame, 2);
//! ```

mod clock;
mod config;
mod guard;
mod memory;
mod monitor;
mod state;
mod types;
use thread_support::sync;
#[cfg(not(loom))]
mod watchdog;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{ConfigError, FrameGuardConfig, MIN_INTERVAL, StopRules};
pub use guard::{FrameGuard, FrameGuardBuilder, FrameScope};
pub use memory::resident_bytes;
pub use monitor::{
    CSV_HEADER, CSV_ROW_MAX, CsvMonitor, Monitor, MonitorInputs, MonitorRow, PoolCounters,
    SpeedupMeter,
};
pub use thread_support::{Histogram, process_cpu_time, thread_cpu_time};
pub use types::{
    BuildError, FrameError, FrameRecord, FrameStats, IntervalFrames, PhaseId, PhaseStats,
    RuleTrips, StallInfo, StopInfo, StopReason,
};
