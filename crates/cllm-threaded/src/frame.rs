//! C API of the frame guard (`cllm_frame_*`): frame timing, the emergency-stop
//! rules, the optional watchdog thread and the monitoring CSV rows. See the
//! `frame-guard` crate for the rules and the column definitions.

use crate::error::FfiError;
use crate::guard::{arg_ref, ffi_status, ffi_value, out_ptr, write_out};
use crate::roles::cllm_roles;
use crate::status::cllm_status;
use frame_guard::{
    CSV_HEADER, FrameError, FrameGuard, FrameGuardConfig, FrameStats, ManualClock, Monitor,
    MonitorInputs, PhaseId, PhaseStats, PoolCounters, StopInfo, StopReason, StopRules,
};
use std::cell::Cell;
use std::ffi::{c_char, c_int, c_void};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Rule bit of `cllm_frame_options.rules`: stop after `slow_frame_count`
/// consecutive frames longer than `slow_frame_limit_ms` (the walker plan's
/// rule: 10 frames over 2 s).
pub const CLLM_FRAME_RULE_CONSECUTIVE: u32 = 1;
/// Rule bit: every `sample_interval_ms` take a sample, slow if the frame gap
/// exceeds `sample_gap_ms`; stop after `slow_sample_count` slow samples in a
/// row (the original code's rule: 5 s, 0.5 s, 10).
pub const CLLM_FRAME_RULE_SAMPLED: u32 = 2;
/// Rule bit: stop when the resident memory exceeds `memory_limit_mb`.
pub const CLLM_FRAME_RULE_MEMORY: u32 = 4;
/// Size of `cllm_frame_stop.message`, NUL included.
pub const CLLM_FRAME_MESSAGE_MAX: usize = 192;
/// The smallest buffer `cllm_frame_monitor_row` accepts: every row, its
/// newline and NUL fit in it.
pub const CLLM_FRAME_ROW_MAX: usize = 512;
/// A buffer of this size holds every phase name and its NUL: names have 1 to
/// `CLLM_FRAME_PHASE_NAME_MAX - 1` bytes.
pub const CLLM_FRAME_PHASE_NAME_MAX: usize = 64;
/// The most phases one guard holds (each keeps a 15 KiB histogram); phase
/// ids run from 0 to `CLLM_FRAME_PHASE_MAX - 1`.
pub const CLLM_FRAME_PHASE_MAX: usize = 256;

/// A frame guard: the frame clock, its statistics, the stop rules and the
/// monitoring rows of one frame loop. The loop thread calls begin/end or
/// tick; any thread may query it. `cllm_frame_free` must not race with other
/// calls on the same guard.
pub struct cllm_frame {
    guard: FrameGuard,
    manual: Option<ManualClock>,
    monitor: Mutex<MonitorState>,
    callback_failures: Arc<AtomicU64>,
}

struct MonitorState {
    monitor: Monitor,
    header_written: bool,
}

/// How to build a frame guard; fill it with `cllm_frame_options_default()`.
/// Times are in milliseconds.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct cllm_frame_options {
    /// Frame budget of `under_budget_share` (default 16.7).
    pub budget_ms: f64,
    /// Active stop rules: an OR of `CLLM_FRAME_RULE_*` bits, 0 for none
    /// (default `CLLM_FRAME_RULE_CONSECUTIVE`).
    pub rules: u32,
    /// A frame longer than this is slow; a frame in progress longer than
    /// this is stalled (default 2000).
    pub slow_frame_limit_ms: f64,
    /// K, consecutive slow frames that stop the loop (default 10, at least 1).
    pub slow_frame_count: u32,
    /// Sampled rule: time between samples (default 5000, at least 1).
    pub sample_interval_ms: f64,
    /// Sampled rule: frame-gap limit of a sample (default 500).
    pub sample_gap_ms: f64,
    /// Sampled rule: slow samples in a row that stop (default 10, at least 1).
    pub slow_sample_count: u32,
    /// Memory rule: resident-memory limit in MiB (default 2000).
    pub memory_limit_mb: f64,
    /// Memory rule: time between two reads of the resident size (default 5000).
    pub memory_check_interval_ms: f64,
    /// Period of the watchdog thread that checks the rules while the loop is
    /// frozen; 0 (the default) starts no thread, at least 1 otherwise.
    pub watchdog_period_ms: f64,
    /// Interval of `cllm_frame_monitor_due` (default 1000, at least 1).
    pub monitor_interval_ms: f64,
    /// If true, time moves only by `cllm_frame_tick` and
    /// `cllm_frame_advance`: replays, simulations, tests. Default false (the
    /// monotonic system clock).
    pub manual_clock: bool,
}

/// The rule that stopped the loop.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum cllm_frame_stop_reason {
    /// Not stopped.
    CLLM_FRAME_STOP_NONE = 0,
    /// K consecutive frames over the slow-frame limit.
    CLLM_FRAME_STOP_SLOW_FRAMES = 1,
    /// Too many slow samples in a row (the sampled rule).
    CLLM_FRAME_STOP_SLOW_SAMPLES = 2,
    /// Resident memory over the limit.
    CLLM_FRAME_STOP_MEMORY = 3,
}

/// The stop state of a guard (`cllm_frame_stop_info`, and the argument of
/// the stop callback).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct cllm_frame_stop {
    /// Which rule fired; `CLLM_FRAME_STOP_NONE` if the guard is not stopped
    /// (then every other field is zero).
    pub reason: cllm_frame_stop_reason,
    /// Index (from 0) of the frame at which the rule fired: the K-th slow
    /// frame, or the frame in progress (or next to begin) at a sample or
    /// memory check.
    pub frame: u64,
    /// Guard-clock time of the firing, ms since the guard was created.
    pub at_ms: f64,
    /// The figure that broke the limit: the K-th frame's duration (or its
    /// age if still in progress) or the sample's frame gap, in ms; the
    /// resident memory in MiB.
    pub value: f64,
    /// The limit, in the unit of `value`.
    pub limit: f64,
    /// The rule's count (K, or slow samples); 0 for memory.
    pub count: u32,
    /// True if the K-th slow frame had not ended yet (a frozen loop, seen by
    /// the watchdog or `cllm_frame_poll`).
    pub in_progress: bool,
    /// A sentence describing the stop, NUL-terminated (empty if not stopped).
    pub message: [c_char; CLLM_FRAME_MESSAGE_MAX],
}

/// Cumulative figures of a guard. Frame times are 0 while `frames` is 0.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct cllm_frame_statistics {
    /// Frames recorded (ended or ticked).
    pub frames: u64,
    /// Median frame time, ms (within 1.6 %).
    pub p50_ms: f64,
    /// 99th-percentile frame time, ms (within 1.6 %).
    pub p99_ms: f64,
    /// Longest frame, ms (exact).
    pub max_ms: f64,
    /// Shortest frame, ms (exact).
    pub min_ms: f64,
    /// Mean frame time, ms (exact).
    pub mean_ms: f64,
    /// Share of frames at most `budget_ms` (0 when no frame).
    pub under_budget_share: f64,
    /// The budget.
    pub budget_ms: f64,
    /// Frames longer than the slow-frame limit.
    pub slow_frames: u64,
    /// Current run of consecutive slow frames.
    pub consecutive_slow: u32,
    /// Frames seen in progress past the slow-frame limit.
    pub stalled_frames: u64,
    /// Samples taken by the sampled rule.
    pub samples: u64,
    /// Samples that saw a frame gap over the limit.
    pub slow_samples: u64,
    /// Firings of the consecutive rule (the first one stops; rules go on
    /// counting afterwards).
    pub trips_consecutive: u64,
    /// Firings of the sampled rule.
    pub trips_sampled: u64,
    /// Firings of the memory rule.
    pub trips_memory: u64,
    /// Last resident-memory reading in MiB, -1 if the memory rule never read it.
    pub resident_mb: f64,
    /// Index of the frame in progress, -1 if none.
    pub frame_in_progress: i64,
    /// Stop callbacks that returned non-zero.
    pub callback_failures: u64,
    /// Polls made by the watchdog thread.
    pub watchdog_polls: u64,
}

/// Cumulative timing of one phase (`cllm_frame_phase_stats`). Times are 0
/// while `count` is 0.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct cllm_frame_phase_statistics {
    /// Runs recorded.
    pub count: u64,
    /// Sum of the runs, ms (exact to the nanosecond).
    pub total_ms: f64,
    /// Median run, ms (within 1.6 %).
    pub p50_ms: f64,
    /// 99th-percentile run, ms (within 1.6 %).
    pub p99_ms: f64,
    /// Longest run, ms (exact to the nanosecond).
    pub max_ms: f64,
}

/// Cumulative thread-time of one pool, in seconds.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct cllm_frame_pool_counters {
    /// Sum over the pool's threads of the time spent running tasks.
    pub busy_s: f64,
    /// Sum over the pool's threads of the time they were alive.
    pub alive_s: f64,
}

/// A sample of cumulative counters; a monitoring row uses the difference
/// from the previous row's sample. Every field only grows. See
/// `cllm_frame_monitor_row` for the columns computed from them.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct cllm_frame_monitor_inputs {
    /// The ai role pool.
    pub ai: cllm_frame_pool_counters,
    /// The physics role pool.
    pub physics: cllm_frame_pool_counters,
    /// The stats role pool.
    pub stats: cllm_frame_pool_counters,
    /// The background role pool.
    pub background: cllm_frame_pool_counters,
    /// The evaluation role pool.
    pub evaluation: cllm_frame_pool_counters,
    /// Lock acquisitions.
    pub lock_acquisitions: u64,
    /// Acquisitions that had to wait.
    pub lock_contended: u64,
    /// Summed run time (CPU time) of the tasks of parallel sections, seconds.
    pub parallel_work_s: f64,
    /// Wall time of those sections, seconds.
    pub parallel_wall_s: f64,
}

/// Called once when a rule first stops the loop, with the stop state (valid
/// during the call only). It runs on the thread whose call fired the rule:
/// the loop's (`cllm_frame_end`, `cllm_frame_tick`, `cllm_frame_poll`...) or
/// the watchdog thread, so `arg` must be usable from there. Return 0; a
/// non-zero value makes the call that fired it return `CLLM_ERR_JOB_FAILED`
/// (the frame is still recorded and the guard stopped) and is counted in
/// `callback_failures`.
pub type cllm_frame_stop_fn =
    Option<unsafe extern "C" fn(arg: *mut c_void, info: *const cllm_frame_stop) -> c_int>;

/// The C caller's callback argument: by registering it, the caller promised
/// it may be used from the thread that fires the stop.
#[derive(Clone, Copy)]
struct CallbackArg(*mut c_void);
// SAFETY: see above; the library never dereferences the pointer.
unsafe impl Send for CallbackArg {}
// SAFETY: as above.
unsafe impl Sync for CallbackArg {}

impl CallbackArg {
    /// The pointer. A method, so that a closure captures the whole `Send`
    /// wrapper rather than its raw-pointer field.
    fn get(self) -> *mut c_void {
        self.0
    }
}

thread_local! {
    /// The last non-zero return of a stop callback run on this thread, taken
    /// by the entry point that fired it.
    static CALLBACK_RC: Cell<c_int> = const { Cell::new(0) };
}

/// The default options: the plan's consecutive rule (10 frames over 2 s),
/// a 16.7 ms budget, the original code's sampled-rule and memory settings
/// (off until their bit is set), no watchdog thread, 1 s monitor interval,
/// the system clock.
#[unsafe(no_mangle)]
pub extern "C" fn cllm_frame_options_default() -> cllm_frame_options {
    options_from(&FrameGuardConfig::default())
}

/// Writes the defaults overridden by the environment to `*out` (the same
/// variables as the Rust `FrameGuardConfig::from_env`): `FRAME_BUDGET_MS`,
/// `FRAME_STOP_RULES` (comma list of `consecutive`, `sampled`, `memory`, or
/// `none`), `FRAME_SLOW_LIMIT_MS`, `FRAME_SLOW_COUNT`,
/// `FRAME_SAMPLE_INTERVAL_MS`, `FRAME_SAMPLE_GAP_MS`, `FRAME_SLOW_SAMPLES`,
/// `FRAME_MEMORY_LIMIT_MB`, `FRAME_WATCHDOG_MS` (0 = no watchdog thread),
/// `MONITOR_INTERVAL_MS`. Pass the result to `cllm_frame_create` (after
/// changing any field the program decides itself). Errors: `CLLM_ERR_NULL`
/// (out), `CLLM_ERR_CONFIG` (a value that does not parse or is out of
/// range; `cllm_last_error()` names the variable and its value). `*out` is
/// written only on success.
///
/// # Safety
/// `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_frame_options_from_env(out: *mut cllm_frame_options) -> cllm_status {
    ffi_status(|| {
        let out = out_ptr(out, "out")?;
        let config = FrameGuardConfig::from_env()
            .map_err(|e| FfiError::new(cllm_status::CLLM_ERR_CONFIG, e.to_string()))?;
        // SAFETY: checked by out_ptr.
        unsafe { write_out(out, options_from(&config)) };
        Ok(())
    })
}

/// The C options that describe `d` (with the system clock).
fn options_from(d: &FrameGuardConfig) -> cllm_frame_options {
    let ms = |x: Duration| x.as_secs_f64() * 1e3;
    cllm_frame_options {
        budget_ms: ms(d.budget),
        rules: rules_bits(d.rules),
        slow_frame_limit_ms: ms(d.slow_frame_limit),
        slow_frame_count: d.slow_frame_count,
        sample_interval_ms: ms(d.sample_interval),
        sample_gap_ms: ms(d.sample_gap_limit),
        slow_sample_count: d.slow_sample_count,
        memory_limit_mb: d.memory_limit_bytes as f64 / 1048576.0,
        memory_check_interval_ms: ms(d.memory_check_interval),
        watchdog_period_ms: d.watchdog_period.map_or(0.0, ms),
        monitor_interval_ms: ms(d.monitor_interval),
        manual_clock: false,
    }
}

fn rules_bits(rules: StopRules) -> u32 {
    u32::from(rules.consecutive) * CLLM_FRAME_RULE_CONSECUTIVE
        + u32::from(rules.sampled) * CLLM_FRAME_RULE_SAMPLED
        + u32::from(rules.memory) * CLLM_FRAME_RULE_MEMORY
}

/// The largest time accepted anywhere in this API: 1e12 ms (31 years).
const MAX_MS: f64 = 1e12;

/// A finite, non-negative number of milliseconds as a duration.
fn ms_to_duration(name: &str, ms: f64) -> Result<Duration, FfiError> {
    if !ms.is_finite() {
        return Err(FfiError::new(
            cllm_status::CLLM_ERR_NUMERIC,
            format!("{name} is {ms}, not a finite number"),
        ));
    }
    if !(0.0..=MAX_MS).contains(&ms) {
        return Err(FfiError::invalid(format!(
            "{name} is {ms}, outside [0, {MAX_MS}] ms"
        )));
    }
    Ok(Duration::from_secs_f64(ms / 1e3))
}

fn seconds(name: &str, s: f64) -> Result<Duration, FfiError> {
    ms_to_duration(name, s * 1e3)
}

fn config_from(o: &cllm_frame_options) -> Result<FrameGuardConfig, FfiError> {
    let known = CLLM_FRAME_RULE_CONSECUTIVE | CLLM_FRAME_RULE_SAMPLED | CLLM_FRAME_RULE_MEMORY;
    if o.rules & !known != 0 {
        return Err(FfiError::invalid(format!(
            "rules 0x{:x} has unknown bits (known: CONSECUTIVE 1, SAMPLED 2, MEMORY 4)",
            o.rules
        )));
    }
    let memory_mb = o.memory_limit_mb;
    if !memory_mb.is_finite() {
        return Err(FfiError::new(
            cllm_status::CLLM_ERR_NUMERIC,
            format!("memory_limit_mb is {memory_mb}, not a finite number"),
        ));
    }
    if !(0.0..=1e12).contains(&memory_mb) {
        return Err(FfiError::invalid(format!(
            "memory_limit_mb is {memory_mb}, outside [0, 1e12]"
        )));
    }
    let watchdog = ms_to_duration("watchdog_period_ms", o.watchdog_period_ms)?;
    let config = FrameGuardConfig {
        budget: ms_to_duration("budget_ms", o.budget_ms)?,
        rules: StopRules {
            consecutive: o.rules & CLLM_FRAME_RULE_CONSECUTIVE != 0,
            sampled: o.rules & CLLM_FRAME_RULE_SAMPLED != 0,
            memory: o.rules & CLLM_FRAME_RULE_MEMORY != 0,
        },
        slow_frame_limit: ms_to_duration("slow_frame_limit_ms", o.slow_frame_limit_ms)?,
        slow_frame_count: o.slow_frame_count,
        sample_interval: ms_to_duration("sample_interval_ms", o.sample_interval_ms)?,
        sample_gap_limit: ms_to_duration("sample_gap_ms", o.sample_gap_ms)?,
        slow_sample_count: o.slow_sample_count,
        memory_limit_bytes: (memory_mb * 1048576.0) as u64,
        memory_check_interval: ms_to_duration(
            "memory_check_interval_ms",
            o.memory_check_interval_ms,
        )?,
        watchdog_period: (!watchdog.is_zero()).then_some(watchdog),
        monitor_interval: ms_to_duration("monitor_interval_ms", o.monitor_interval_ms)?,
    };
    config
        .validate()
        .map_err(|e| FfiError::invalid(e.to_string()))?;
    Ok(config)
}

fn frame_error(e: FrameError) -> FfiError {
    match e {
        FrameError::InProgress { .. } => FfiError::new(cllm_status::CLLM_ERR_BUSY, e.to_string()),
        FrameError::NotInProgress => FfiError::invalid(e.to_string()),
    }
}

fn empty_stop() -> cllm_frame_stop {
    cllm_frame_stop {
        reason: cllm_frame_stop_reason::CLLM_FRAME_STOP_NONE,
        frame: 0,
        at_ms: 0.0,
        value: 0.0,
        limit: 0.0,
        count: 0,
        in_progress: false,
        message: [0; CLLM_FRAME_MESSAGE_MAX],
    }
}

fn stop_to_c(info: &StopInfo) -> cllm_frame_stop {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let mib = |b: u64| b as f64 / 1048576.0;
    let mut out = empty_stop();
    out.frame = info.frame;
    out.at_ms = ms(info.at);
    match &info.reason {
        StopReason::SlowFrames {
            count,
            limit,
            last,
            in_progress,
        } => {
            out.reason = cllm_frame_stop_reason::CLLM_FRAME_STOP_SLOW_FRAMES;
            (out.value, out.limit, out.count, out.in_progress) =
                (ms(*last), ms(*limit), *count, *in_progress);
        }
        StopReason::SlowSamples {
            count,
            gap_limit,
            last_gap,
        } => {
            out.reason = cllm_frame_stop_reason::CLLM_FRAME_STOP_SLOW_SAMPLES;
            (out.value, out.limit, out.count) = (ms(*last_gap), ms(*gap_limit), *count);
        }
        StopReason::Memory {
            resident_bytes,
            limit_bytes,
        } => {
            out.reason = cllm_frame_stop_reason::CLLM_FRAME_STOP_MEMORY;
            (out.value, out.limit) = (mib(*resident_bytes), mib(*limit_bytes));
        }
    }
    let text = info.to_string();
    let bytes = &text.as_bytes()[..text.len().min(CLLM_FRAME_MESSAGE_MAX - 1)];
    for (slot, &b) in out.message.iter_mut().zip(bytes) {
        *slot = b as c_char;
    }
    out
}

fn stats_to_c(
    s: &FrameStats,
    callback_failures: u64,
    watchdog_polls: u64,
) -> cllm_frame_statistics {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    cllm_frame_statistics {
        frames: s.frames,
        p50_ms: ms(s.p50),
        p99_ms: ms(s.p99),
        max_ms: ms(s.max),
        min_ms: ms(s.min),
        mean_ms: ms(s.mean),
        under_budget_share: s.under_budget_share,
        budget_ms: ms(s.budget),
        slow_frames: s.slow_frames,
        consecutive_slow: s.consecutive_slow,
        stalled_frames: s.stalled_frames,
        samples: s.samples,
        slow_samples: s.slow_samples,
        trips_consecutive: s.trips.consecutive,
        trips_sampled: s.trips.sampled,
        trips_memory: s.trips.memory,
        resident_mb: s.resident_bytes.map_or(-1.0, |b| b as f64 / 1048576.0),
        frame_in_progress: s
            .frame_in_progress
            .map_or(-1, |i| i64::try_from(i).unwrap_or(i64::MAX)),
        callback_failures,
        watchdog_polls,
    }
}

fn inputs_from(c: &cllm_frame_monitor_inputs) -> Result<MonitorInputs, FfiError> {
    let pool = |name: &str, p: &cllm_frame_pool_counters| -> Result<PoolCounters, FfiError> {
        Ok(PoolCounters {
            busy: seconds(&format!("inputs.{name}.busy_s"), p.busy_s)?,
            alive: seconds(&format!("inputs.{name}.alive_s"), p.alive_s)?,
        })
    };
    let inputs = MonitorInputs {
        ai: pool("ai", &c.ai)?,
        physics: pool("physics", &c.physics)?,
        stats: pool("stats", &c.stats)?,
        background: pool("background", &c.background)?,
        evaluation: pool("evaluation", &c.evaluation)?,
        lock_acquisitions: c.lock_acquisitions,
        lock_contended: c.lock_contended,
        parallel_work: seconds("inputs.parallel_work_s", c.parallel_work_s)?,
        parallel_wall: seconds("inputs.parallel_wall_s", c.parallel_wall_s)?,
    };
    inputs
        .check()
        .map_err(|e| FfiError::invalid(format!("inputs: {e}")))?;
    Ok(inputs)
}

impl cllm_frame {
    fn monitor(&self) -> MutexGuard<'_, MonitorState> {
        // A panic while holding the lock leaves a consistent monitor.
        self.monitor.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next row, newline included; `inputs` NULL leaves the threading
    /// columns empty.
    fn next_row(&self, inputs: Option<&MonitorInputs>) -> String {
        let row = self.monitor().monitor.row(&self.guard, inputs);
        let mut line = row.to_csv();
        line.push('\n');
        line
    }
}

/// Runs `body`, then fails with `CLLM_ERR_JOB_FAILED` if a stop callback it
/// fired on this thread returned non-zero.
fn checking_callback(body: impl FnOnce() -> Result<(), FfiError>) -> Result<(), FfiError> {
    CALLBACK_RC.with(|rc| rc.set(0));
    body()?;
    let rc = CALLBACK_RC.with(|rc| rc.replace(0));
    if rc != 0 {
        return Err(FfiError::new(
            cllm_status::CLLM_ERR_JOB_FAILED,
            format!(
                "the stop callback returned {rc} (the frame was recorded; the guard is stopped)"
            ),
        ));
    }
    Ok(())
}

/// # Safety
/// `frame` is NULL or a live guard.
unsafe fn frame_ref<'a>(frame: *const cllm_frame) -> Result<&'a cllm_frame, FfiError> {
    // SAFETY: forwarded from the caller.
    unsafe { arg_ref(frame, "frame") }
}

/// # Safety
/// `inputs` is NULL or points to a `cllm_frame_monitor_inputs`.
unsafe fn optional_inputs(
    inputs: *const cllm_frame_monitor_inputs,
) -> Result<Option<MonitorInputs>, FfiError> {
    // SAFETY: forwarded from the caller.
    match unsafe { inputs.as_ref() } {
        Some(c) => inputs_from(c).map(Some),
        None => Ok(None),
    }
}

/// Creates a frame guard; `*out` receives it on success. `options` may be
/// NULL for the defaults. Errors: `CLLM_ERR_NULL` (out),
/// `CLLM_ERR_NUMERIC` (a NaN or infinite time), `CLLM_ERR_INVALID_ARGUMENT`
/// (unknown rule bits, a negative time, a zero count, budget or limit, an
/// interval under 1 ms, a zero memory limit with the memory rule on),
/// `CLLM_ERR_SPAWN` (the watchdog thread could not start).
///
/// # Safety
/// `options` is NULL or points to a `cllm_frame_options`; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_frame_create(
    options: *const cllm_frame_options,
    out: *mut *mut cllm_frame,
) -> cllm_status {
    ffi_status(|| {
        let out = out_ptr(out, "out")?;
        // SAFETY: the caller passes NULL or valid options.
        let options = unsafe { options.as_ref() }
            .copied()
            .unwrap_or_else(|| cllm_frame_options_default());
        let config = config_from(&options)?;
        let manual = options.manual_clock.then(ManualClock::new);
        let mut builder = FrameGuard::builder(config);
        if let Some(clock) = &manual {
            builder = builder.clock(clock.clone());
        }
        let guard = builder.build().map_err(|e| match e {
            frame_guard::BuildError::Config(c) => FfiError::invalid(c.to_string()),
            frame_guard::BuildError::Spawn(s) => {
                FfiError::new(cllm_status::CLLM_ERR_SPAWN, format!("watchdog thread: {s}"))
            }
        })?;
        let monitor = Mutex::new(MonitorState {
            monitor: Monitor::new(&guard),
            header_written: false,
        });
        let frame = cllm_frame {
            guard,
            manual,
            monitor,
            callback_failures: Arc::new(AtomicU64::new(0)),
        };
        // SAFETY: `out` was checked and is writable.
        unsafe { write_out(out, Box::into_raw(Box::new(frame))) };
        Ok(())
    })
}

/// Frees a guard (stopping and joining its watchdog thread, after any stop
/// callback it is running). NULL is a no-op.
///
/// # Safety
/// `frame` is NULL or a guard from `cllm_frame_create`, not used after this
/// call, and not freed from inside its own stop callback.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_frame_free(frame: *mut cllm_frame) {
    if frame.is_null() {
        return;
    }
    ffi_status(|| {
        // SAFETY: the caller gives up a guard made by `cllm_frame_create`.
        drop(unsafe { Box::from_raw(frame) });
        Ok(())
    });
}

/// Begins a frame. Also runs the sampled and memory checks that are due.
/// Errors: `CLLM_ERR_NULL`, `CLLM_ERR_BUSY` (a frame is already in
/// progress), `CLLM_ERR_JOB_FAILED` (a stop callback fired here returned
/// non-zero; the frame has begun).
///
/// # Safety
/// `frame` is NULL or a live guard.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_frame_begin(frame: *mut cllm_frame) -> cllm_status {
    ffi_status(|| {
        // SAFETY: the caller passes NULL or a live guard.
        let frame = unsafe { frame_ref(frame) }?;
        checking_callback(|| frame.guard.begin_frame().map(|_| ()).map_err(frame_error))
    })
}

/// Ends the frame in progress, records its duration and applies the rules.
/// Errors: `CLLM_ERR_NULL`, `CLLM_ERR_INVALID_ARGUMENT` (no frame in
/// progress), `CLLM_ERR_JOB_FAILED` (the stop callback returned non-zero;
/// the frame is recorded).
///
/// # Safety
/// `frame` is NULL or a live guard.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_frame_end(frame: *mut cllm_frame) -> cllm_status {
    ffi_status(|| {
        // SAFETY: the caller passes NULL or a live guard.
        let frame = unsafe { frame_ref(frame) }?;
        checking_callback(|| frame.guard.end_frame().map(|_| ()).map_err(frame_error))
    })
}

/// Records a frame of `duration_ms` measured by the caller (or injected).
/// With the system clock the frame ends now; with `manual_clock` the clock
/// first moves forward by `duration_ms`, so frames are back to back.
/// Errors: `CLLM_ERR_NULL`, `CLLM_ERR_NUMERIC` (NaN or infinite),
/// `CLLM_ERR_INVALID_ARGUMENT` (negative or over 1e12), `CLLM_ERR_BUSY` (a
/// frame begun with `cllm_frame_begin` is in progress), `CLLM_ERR_JOB_FAILED`
/// (the stop callback returned non-zero; the frame is recorded).
///
/// # Safety
/// `frame` is NULL or a live guard.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_frame_tick(frame: *mut cllm_frame, duration_ms: f64) -> cllm_status {
    ffi_status(|| {
        // SAFETY: the caller passes NULL or a live guard.
        let frame = unsafe { frame_ref(frame) }?;
        let duration = ms_to_duration("duration_ms", duration_ms)?;
        // Checked before the manual clock moves, so a refused tick changes nothing.
        if let Some(p) = frame.guard.frame_in_progress() {
            return Err(frame_error(FrameError::InProgress { frame: p }));
        }
        if let Some(clock) = &frame.manual {
            clock.advance(duration);
        }
        checking_callback(|| {
            frame
                .guard
                .record_frame(duration)
                .map(|_| ())
                .map_err(frame_error)
        })
    })
}

/// Moves a manual clock forward by `ms` without recording a frame (time
/// passing inside a frame, or between frames); then call `cllm_frame_poll`
/// or end the frame to apply the rules. Errors: `CLLM_ERR_NULL`,
/// `CLLM_ERR_NUMERIC`, `CLLM_ERR_INVALID_ARGUMENT` (negative, over 1e12, or
/// the guard uses the system clock).
///
/// # Safety
/// `frame` is NULL or a live guard.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_frame_advance(frame: *mut cllm_frame, ms: f64) -> cllm_status {
    ffi_status(|| {
        // SAFETY: the caller passes NULL or a live guard.
        let frame = unsafe { frame_ref(frame) }?;
        let by = ms_to_duration("ms", ms)?;
        let clock = frame.manual.as_ref().ok_or_else(|| {
            FfiError::invalid(
                "this guard runs on the system clock; only a manual_clock guard can be advanced",
            )
        })?;
        clock.advance(by);
        Ok(())
    })
}

/// Runs the time-based checks now: samples that are due, the memory check,
/// and a frame in progress past the slow-frame limit (flagged as stalled; if
/// it is the K-th slow frame in a row, the stop fires now). The watchdog
/// thread does this periodically. Errors: `CLLM_ERR_NULL`,
/// `CLLM_ERR_JOB_FAILED` (the stop callback returned non-zero).
///
/// # Safety
/// `frame` is NULL or a live guard.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_frame_poll(frame: *mut cllm_frame) -> cllm_status {
    ffi_status(|| {
        // SAFETY: the caller passes NULL or a live guard.
        let frame = unsafe { frame_ref(frame) }?;
        checking_callback(|| {
            frame.guard.poll();
            Ok(())
        })
    })
}

/// 1 if a rule has stopped the loop, 0 if not, -1 if `frame` is NULL (with
/// the last error set). One atomic load: cheap enough for every frame.
///
/// # Safety
/// `frame` is NULL or a live guard.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_frame_is_stopped(frame: *const cllm_frame) -> c_int {
    ffi_value(
        |_| -1,
        || {
            // SAFETY: the caller passes NULL or a live guard.
            let frame = unsafe { frame_ref(frame) }?;
            Ok(c_int::from(frame.guard.is_stopped()))
        },
    )
}

/// Writes the stop state to `*out` (reason `CLLM_FRAME_STOP_NONE` if the
/// guard is not stopped). Errors: `CLLM_ERR_NULL` (frame, out).
///
/// # Safety
/// `frame` is NULL or a live guard; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_frame_stop_info(
    frame: *const cllm_frame,
    out: *mut cllm_frame_stop,
) -> cllm_status {
    ffi_status(|| {
        // SAFETY: the caller passes NULL or a live guard.
        let frame = unsafe { frame_ref(frame) }?;
        let out = out_ptr(out, "out")?;
        let info = frame
            .guard
            .stop_info()
            .map_or_else(empty_stop, |i| stop_to_c(&i));
        // SAFETY: `out` was checked and is writable.
        unsafe { write_out(out, info) };
        Ok(())
    })
}

/// The name of a stop reason (`"CLLM_FRAME_STOP_MEMORY"`), or
/// `"CLLM_FRAME_STOP_UNKNOWN"` for any other value. Static; never free it.
#[unsafe(no_mangle)]
pub extern "C" fn cllm_frame_stop_reason_str(reason: c_int) -> *const c_char {
    match reason {
        0 => c"CLLM_FRAME_STOP_NONE",
        1 => c"CLLM_FRAME_STOP_SLOW_FRAMES",
        2 => c"CLLM_FRAME_STOP_SLOW_SAMPLES",
        3 => c"CLLM_FRAME_STOP_MEMORY",
        _ => c"CLLM_FRAME_STOP_UNKNOWN",
    }
    .as_ptr()
}

/// Writes the cumulative figures to `*out`. Errors: `CLLM_ERR_NULL`.
///
/// # Safety
/// `frame` is NULL or a live guard; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_frame_stats(
    frame: *const cllm_frame,
    out: *mut cllm_frame_statistics,
) -> cllm_status {
    ffi_status(|| {
        // SAFETY: the caller passes NULL or a live guard.
        let frame = unsafe { frame_ref(frame) }?;
        let out = out_ptr(out, "out")?;
        let stats = stats_to_c(
            &frame.guard.stats(),
            frame.callback_failures.load(Ordering::Relaxed),
            frame.guard.watchdog_polls(),
        );
        // SAFETY: `out` was checked and is writable.
        unsafe { write_out(out, stats) };
        Ok(())
    })
}

/// Sets the function called once when a rule first stops the loop (see
/// `cllm_frame_stop_fn`); `callback` NULL removes it. Not called for a stop that
/// already happened. Errors: `CLLM_ERR_NULL` (frame).
///
/// # Safety
/// `frame` is NULL or a live guard; `callback`, if set, may be called with `arg`
/// from the loop thread or the watchdog thread until it is replaced or the
/// guard is freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_frame_set_stop_callback(
    frame: *mut cllm_frame,
    callback: cllm_frame_stop_fn,
    arg: *mut c_void,
) -> cllm_status {
    ffi_status(|| {
        // SAFETY: the caller passes NULL or a live guard.
        let frame = unsafe { frame_ref(frame) }?;
        let Some(callback) = callback else {
            frame.guard.clear_on_stop();
            return Ok(());
        };
        let arg = CallbackArg(arg);
        let failures = Arc::clone(&frame.callback_failures);
        frame.guard.set_on_stop(move |info| {
            let c_info = stop_to_c(info);
            // SAFETY: the caller registered `callback` for `arg` and promised
            // it may run on this thread; `c_info` outlives the call.
            let rc = unsafe { callback(arg.get(), &c_info) };
            if rc != 0 {
                failures.fetch_add(1, Ordering::Relaxed);
                CALLBACK_RC.with(|slot| slot.set(rc));
            }
        });
        Ok(())
    })
}

/// Copies `text` and a NUL into `buf`, or fails naming the size it needs.
///
/// # Safety
/// `buf` is writable for `cap` bytes.
unsafe fn copy_text(text: &str, buf: *mut c_char, cap: usize) -> Result<(), FfiError> {
    if text.len() + 1 > cap {
        return Err(FfiError::invalid(format!(
            "buffer of {cap} bytes is too small: {} are needed",
            text.len() + 1
        )));
    }
    // SAFETY: `buf` holds `cap` >= len + 1 bytes (caller's promise), and a
    // Rust string does not overlap a C buffer.
    unsafe {
        std::ptr::copy_nonoverlapping(text.as_ptr(), buf.cast::<u8>(), text.len());
        *buf.add(text.len()) = 0;
    }
    Ok(())
}

/// Writes the monitoring CSV header line (newline included) and a NUL into
/// `buf`; `*out_len` receives its length without the NUL. The columns:
/// `timestamp,elapsed_s,interval_s,frames,fps,p50_ms,p99_ms,max_ms,mean_ms,under_budget_share,`
/// `thread_pool_utilization,ai_thread_efficiency,stats_thread_efficiency,background_thread_efficiency,`
/// `lock_contention_rate,parallel_speedup_ratio,physics_thread_efficiency,evaluation_thread_efficiency,emergency_stop`.
/// Errors: `CLLM_ERR_NULL` (buf, out_len), `CLLM_ERR_INVALID_ARGUMENT`
/// (`cap` too small; the message gives the size needed).
///
/// # Safety
/// `buf` is NULL or writable for `cap` bytes; `out_len` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_frame_monitor_header(
    buf: *mut c_char,
    cap: usize,
    out_len: *mut usize,
) -> cllm_status {
    ffi_status(|| {
        let buf = out_ptr(buf, "buf")?;
        let out_len = out_ptr(out_len, "out_len")?;
        let line = format!("{CSV_HEADER}\n");
        // SAFETY: the caller promises `cap` writable bytes at `buf`.
        unsafe { copy_text(&line, buf, cap) }?;
        // SAFETY: `out_len` was checked and is writable.
        unsafe { write_out(out_len, line.len()) };
        Ok(())
    })
}

/// Ends the current monitoring interval and writes its CSV row (newline
/// included, in the header's order) and a NUL into `buf`; `*out_len`
/// receives its length without the NUL. `inputs` are the cumulative counters
/// now; the row uses their difference from the previous row's (or the
/// baseline, zero by default). NULL `inputs` leaves the threading columns
/// empty. Columns (Δ = change over the interval; an empty cell when the
/// denominator is 0):
/// - `thread_pool_utilization` = Σ Δbusy_s / Σ Δalive_s over the five pools;
/// - `ai_/stats_/background_/physics_/evaluation_thread_efficiency` =
///   Δbusy_s / Δalive_s of that pool;
/// - `lock_contention_rate` = Δlock_contended / Δlock_acquisitions;
/// - `parallel_speedup_ratio` = Δparallel_work_s / Δparallel_wall_s;
/// - `frames`, `fps`, `p50_ms`, `p99_ms`, `max_ms`, `mean_ms`,
///   `under_budget_share`: the frames recorded in the interval.
///
/// The utilisation, efficiency and contention columns are shares in
/// [0, 1]: an interval whose Δbusy_s exceeds its Δalive_s (samples taken a
/// moment apart) is written as 1.
///
/// Errors (checked before the interval is ended): `CLLM_ERR_NULL` (frame,
/// buf, out_len), `CLLM_ERR_INVALID_ARGUMENT` (`cap` under
/// `CLLM_FRAME_ROW_MAX`, a negative or too large input, a pool with
/// `busy_s` > `alive_s`, `lock_contended` > `lock_acquisitions`),
/// `CLLM_ERR_NUMERIC` (a NaN or infinite input).
///
/// # Safety
/// `frame` is NULL or a live guard; `inputs` is NULL or readable; `buf` is
/// NULL or writable for `cap` bytes; `out_len` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_frame_monitor_row(
    frame: *mut cllm_frame,
    inputs: *const cllm_frame_monitor_inputs,
    buf: *mut c_char,
    cap: usize,
    out_len: *mut usize,
) -> cllm_status {
    ffi_status(|| {
        // SAFETY: the caller passes NULL or a live guard.
        let frame = unsafe { frame_ref(frame) }?;
        let buf = out_ptr(buf, "buf")?;
        let out_len = out_ptr(out_len, "out_len")?;
        if cap < CLLM_FRAME_ROW_MAX {
            return Err(FfiError::invalid(format!(
                "buffer of {cap} bytes is under CLLM_FRAME_ROW_MAX ({CLLM_FRAME_ROW_MAX})"
            )));
        }
        // SAFETY: the caller passes NULL or readable inputs.
        let inputs = unsafe { optional_inputs(inputs) }?;
        let line = frame.next_row(inputs.as_ref());
        // SAFETY: the caller promises `cap` writable bytes at `buf`.
        unsafe { copy_text(&line, buf, cap) }?;
        // SAFETY: `out_len` was checked and is writable.
        unsafe { write_out(out_len, line.len()) };
        Ok(())
    })
}

/// Writes all of `bytes` to `fd` with SIGPIPE blocked on this thread, so a
/// pipe or socket whose reader is gone gives EPIPE (`CLLM_ERR_IO`) instead of
/// killing the process. The SIGPIPE the write raised is taken off the
/// thread's pending set (unless one was already pending before the call,
/// which stays for the caller), and the thread's signal mask is restored.
fn write_all_fd(fd: c_int, bytes: &[u8]) -> Result<(), FfiError> {
    // SAFETY: sigset_t is plain data, initialised by sigemptyset before use.
    let mut pipe_set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut old_mask: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut pending: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: every pointer is to a local sigset_t.
    let was_pending = unsafe {
        libc::sigemptyset(&mut pipe_set);
        libc::sigaddset(&mut pipe_set, libc::SIGPIPE);
        libc::sigpending(&mut pending);
        libc::sigismember(&pending, libc::SIGPIPE) == 1
    };
    // SAFETY: valid sigset pointers; only this thread's mask changes.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &pipe_set, &mut old_mask) };
    let result = write_all_fd_raw(fd, bytes);
    let broken_pipe = matches!(&result, Err(e) if e.raw_os_error() == Some(libc::EPIPE));
    if broken_pipe && !was_pending {
        let zero = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: valid pointers; SIGPIPE is blocked, so a pending one is
        // taken without running a handler (EAGAIN if none is pending, as
        // when the process ignores SIGPIPE).
        unsafe { libc::sigtimedwait(&pipe_set, std::ptr::null_mut(), &zero) };
    }
    // SAFETY: restores the mask saved above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old_mask, std::ptr::null_mut()) };
    result
        .map_err(|err| FfiError::new(cllm_status::CLLM_ERR_IO, format!("write to fd {fd}: {err}")))
}

/// Writes all of `bytes` to `fd`, retrying short writes and EINTR.
fn write_all_fd_raw(fd: c_int, mut bytes: &[u8]) -> std::io::Result<()> {
    while !bytes.is_empty() {
        // SAFETY: `bytes` is a valid readable slice; `write` reads at most
        // its length and does not keep the pointer.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::WriteZero,
                "write returned 0",
            ));
        }
        bytes = &bytes[n as usize..];
    }
    Ok(())
}

/// Like `cllm_frame_monitor_row`, but writes the row to the file descriptor
/// `fd`, preceded by the header line the first time this guard writes.
/// Errors: `CLLM_ERR_NULL` (frame), `CLLM_ERR_INVALID_ARGUMENT` (`fd` < 0, a
/// bad input), `CLLM_ERR_NUMERIC` (a NaN input), `CLLM_ERR_IO` (the write
/// failed: the interval is then lost, and the header is written again next
/// time if it was not written).
///
/// A pipe or socket whose reader has gone gives `CLLM_ERR_IO` ("Broken
/// pipe"), never SIGPIPE: SIGPIPE is blocked on the calling thread during
/// the write, the one the write raised is consumed (`sigtimedwait`; a
/// SIGPIPE already pending before the call is left pending), and the
/// thread's signal mask is restored before returning.
///
/// # Safety
/// `frame` is NULL or a live guard; `inputs` is NULL or readable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_frame_monitor_write(
    frame: *mut cllm_frame,
    inputs: *const cllm_frame_monitor_inputs,
    fd: c_int,
) -> cllm_status {
    ffi_status(|| {
        // SAFETY: the caller passes NULL or a live guard.
        let frame = unsafe { frame_ref(frame) }?;
        if fd < 0 {
            return Err(FfiError::invalid(format!("fd {fd} is negative")));
        }
        // SAFETY: the caller passes NULL or readable inputs.
        let inputs = unsafe { optional_inputs(inputs) }?;
        let mut state = frame.monitor();
        let mut text = String::new();
        if !state.header_written {
            text.push_str(CSV_HEADER);
            text.push('\n');
        }
        let row = state.monitor.row(&frame.guard, inputs.as_ref());
        text.push_str(&row.to_csv());
        text.push('\n');
        write_all_fd(fd, text.as_bytes())?;
        state.header_written = true;
        Ok(())
    })
}

/// Takes `inputs` as the starting point of the next row's differences (for
/// counters that started before the loop). Errors: `CLLM_ERR_NULL` (frame,
/// inputs), `CLLM_ERR_INVALID_ARGUMENT` / `CLLM_ERR_NUMERIC` (a bad input).
///
/// # Safety
/// `frame` is NULL or a live guard; `inputs` is NULL or readable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_frame_monitor_baseline(
    frame: *mut cllm_frame,
    inputs: *const cllm_frame_monitor_inputs,
) -> cllm_status {
    ffi_status(|| {
        // SAFETY: the caller passes NULL or a live guard.
        let frame = unsafe { frame_ref(frame) }?;
        // SAFETY: the caller passes NULL or readable inputs.
        let inputs = unsafe { arg_ref(inputs, "inputs") }?;
        let inputs = inputs_from(inputs)?;
        frame.monitor().monitor.set_baseline(&inputs);
        Ok(())
    })
}

/// Fills `*out` with the monitoring inputs now, in one call, for
/// `cllm_frame_monitor_row`, `_write` and `_baseline`: each role pool's
/// `busy_s` and `alive_s` (one snapshot of every pool, nanoseconds turned
/// into seconds), `lock_acquisitions` and `lock_contended` summed over every
/// counting lock of the process (`cllm_lock_*`), and `parallel_work_s` /
/// `parallel_wall_s` from the role pools' parallel loops
/// (`cllm_roles_parallel_for`): the time each participant spent in its
/// share, on the wall clock, over the loops' wall time. A participant that
/// waits for a CPU counts as working there, so on a machine with other load
/// `parallel_speedup_ratio` overstates the CPU work; a program that
/// measures task CPU time itself may overwrite the two fields. Errors:
/// `CLLM_ERR_NULL` (roles, out).
///
/// # Safety
/// `roles` is NULL or a live handle; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_frame_monitor_inputs_from_roles(
    roles: *const cllm_roles,
    out: *mut cllm_frame_monitor_inputs,
) -> cllm_status {
    ffi_status(|| {
        // SAFETY: the caller passes NULL or a live handle.
        let roles = unsafe { arg_ref(roles, "roles") }?;
        let out = out_ptr(out, "out")?;
        let i = roles.runtime().monitor_inputs(None);
        let pool = |p: PoolCounters| cllm_frame_pool_counters {
            busy_s: p.busy.as_secs_f64(),
            alive_s: p.alive.as_secs_f64(),
        };
        let c = cllm_frame_monitor_inputs {
            ai: pool(i.ai),
            physics: pool(i.physics),
            stats: pool(i.stats),
            background: pool(i.background),
            evaluation: pool(i.evaluation),
            lock_acquisitions: i.lock_acquisitions,
            lock_contended: i.lock_contended,
            parallel_work_s: i.parallel_work.as_secs_f64(),
            parallel_wall_s: i.parallel_wall.as_secs_f64(),
        };
        // SAFETY: checked by out_ptr.
        unsafe { write_out(out, c) };
        Ok(())
    })
}

/// 1 if `monitor_interval_ms` has passed since the last row (or since
/// creation), 0 if not, -1 if `frame` is NULL (with the last error set).
///
/// # Safety
/// `frame` is NULL or a live guard.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_frame_monitor_due(frame: *const cllm_frame) -> c_int {
    ffi_value(
        |_| -1,
        || {
            // SAFETY: the caller passes NULL or a live guard.
            let frame = unsafe { frame_ref(frame) }?;
            Ok(c_int::from(frame.monitor().monitor.due(&frame.guard)))
        },
    )
}

/// Reads a phase name: not NULL, 1 to `CLLM_FRAME_PHASE_NAME_MAX - 1` bytes
/// of UTF-8. Reads at most `CLLM_FRAME_PHASE_NAME_MAX` bytes, so a runaway
/// string is refused without reading past that.
///
/// # Safety
/// `name` is NULL or a NUL-terminated string.
unsafe fn phase_name_arg(name: *const c_char) -> Result<String, FfiError> {
    if name.is_null() {
        return Err(FfiError::null("name"));
    }
    let mut len = 0;
    // SAFETY: a NUL-terminated string (caller's promise) is readable up to
    // and including its NUL, and the scan stops there.
    while len < CLLM_FRAME_PHASE_NAME_MAX && unsafe { *name.add(len) } != 0 {
        len += 1;
    }
    if len == 0 {
        return Err(FfiError::invalid("name is an empty string"));
    }
    if len == CLLM_FRAME_PHASE_NAME_MAX {
        return Err(FfiError::invalid(format!(
            "name is longer than {} bytes (CLLM_FRAME_PHASE_NAME_MAX {CLLM_FRAME_PHASE_NAME_MAX} with the NUL)",
            CLLM_FRAME_PHASE_NAME_MAX - 1
        )));
    }
    // SAFETY: the `len` bytes before the NUL were just read.
    let bytes = unsafe { std::slice::from_raw_parts(name.cast::<u8>(), len) };
    let text = std::str::from_utf8(bytes)
        .map_err(|e| FfiError::invalid(format!("name is not UTF-8: {e}")))?;
    Ok(text.to_owned())
}

impl cllm_frame {
    /// The phase numbered `phase`, or an error naming the valid range.
    fn phase(&self, phase: c_int) -> Result<PhaseId, FfiError> {
        usize::try_from(phase)
            .ok()
            .and_then(|i| self.guard.phase(i))
            .ok_or_else(|| {
                FfiError::invalid(format!(
                    "phase {phase} is not registered (this guard has {} phases, ids from 0)",
                    self.guard.phase_count()
                ))
            })
    }

    /// The figures of a phase this guard gave.
    fn phase_stat(&self, phase: PhaseId) -> PhaseStats {
        // Phases are never removed, so an id from `phase` stays valid.
        self.guard
            .phase_stat(phase)
            .expect("a phase id checked by this guard")
    }
}

/// Registers a named phase of the frame (physics, agents, stats...), or finds
/// the one already registered under `name`; `*out_phase` receives its id,
/// from 0 in registration order. Time it with `cllm_frame_record_phase`.
/// Errors: `CLLM_ERR_NULL` (frame, name, out_phase),
/// `CLLM_ERR_INVALID_ARGUMENT` (`name` empty, not UTF-8, or of
/// `CLLM_FRAME_PHASE_NAME_MAX` bytes or more), `CLLM_ERR_FULL` (a new name
/// when the guard already has `CLLM_FRAME_PHASE_MAX` phases).
///
/// # Safety
/// `frame` is NULL or a live guard; `name` is NULL or a NUL-terminated
/// string (copied); `out_phase` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_frame_add_phase(
    frame: *mut cllm_frame,
    name: *const c_char,
    out_phase: *mut c_int,
) -> cllm_status {
    ffi_status(|| {
        // SAFETY: the caller passes NULL or a live guard.
        let frame = unsafe { frame_ref(frame) }?;
        // SAFETY: the caller passes NULL or a NUL-terminated string.
        let name = unsafe { phase_name_arg(name) }?;
        let out_phase = out_ptr(out_phase, "out_phase")?;
        let Some(id) = frame.guard.add_phase_within(&name, CLLM_FRAME_PHASE_MAX) else {
            return Err(FfiError::new(
                cllm_status::CLLM_ERR_FULL,
                format!(
                    "cannot add phase \"{name}\": the guard already has CLLM_FRAME_PHASE_MAX ({CLLM_FRAME_PHASE_MAX}) phases"
                ),
            ));
        };
        let id = c_int::try_from(id.index()).expect("phase ids stay under CLLM_FRAME_PHASE_MAX");
        // SAFETY: `out_phase` was checked and is writable.
        unsafe { write_out(out_phase, id) };
        Ok(())
    })
}

/// Records one run of `phase` that took `duration_ms` (measured by the
/// caller). Any thread may record. Errors: `CLLM_ERR_NULL` (frame),
/// `CLLM_ERR_INVALID_ARGUMENT` (`phase` not an id from
/// `cllm_frame_add_phase` on this guard; `duration_ms` negative or over
/// 1e12), `CLLM_ERR_NUMERIC` (`duration_ms` NaN or infinite). Nothing is
/// recorded on error.
///
/// # Safety
/// `frame` is NULL or a live guard.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_frame_record_phase(
    frame: *mut cllm_frame,
    phase: c_int,
    duration_ms: f64,
) -> cllm_status {
    ffi_status(|| {
        // SAFETY: the caller passes NULL or a live guard.
        let frame = unsafe { frame_ref(frame) }?;
        let phase = frame.phase(phase)?;
        let duration = ms_to_duration("duration_ms", duration_ms)?;
        frame.guard.record_phase(phase, duration);
        Ok(())
    })
}

/// Writes the number of phases registered to `*out_count`; their ids are 0
/// to `*out_count - 1`. Errors: `CLLM_ERR_NULL` (frame, out_count).
///
/// # Safety
/// `frame` is NULL or a live guard; `out_count` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_frame_phase_count(
    frame: *const cllm_frame,
    out_count: *mut c_int,
) -> cllm_status {
    ffi_status(|| {
        // SAFETY: the caller passes NULL or a live guard.
        let frame = unsafe { frame_ref(frame) }?;
        let out_count = out_ptr(out_count, "out_count")?;
        let count = c_int::try_from(frame.guard.phase_count())
            .expect("phase counts stay under CLLM_FRAME_PHASE_MAX");
        // SAFETY: `out_count` was checked and is writable.
        unsafe { write_out(out_count, count) };
        Ok(())
    })
}

/// Writes the cumulative timing of `phase` to `*out`. Errors:
/// `CLLM_ERR_NULL` (frame, out), `CLLM_ERR_INVALID_ARGUMENT` (`phase` not
/// registered).
///
/// # Safety
/// `frame` is NULL or a live guard; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_frame_phase_stats(
    frame: *const cllm_frame,
    phase: c_int,
    out: *mut cllm_frame_phase_statistics,
) -> cllm_status {
    ffi_status(|| {
        // SAFETY: the caller passes NULL or a live guard.
        let frame = unsafe { frame_ref(frame) }?;
        let out = out_ptr(out, "out")?;
        let s = frame.phase_stat(frame.phase(phase)?);
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let stats = cllm_frame_phase_statistics {
            count: s.count,
            total_ms: ms(s.total),
            p50_ms: ms(s.p50),
            p99_ms: ms(s.p99),
            max_ms: ms(s.max),
        };
        // SAFETY: `out` was checked and is writable.
        unsafe { write_out(out, stats) };
        Ok(())
    })
}

/// Copies the name of `phase` and a NUL into `buf`; `*out_len` receives its
/// length without the NUL. A buffer of `CLLM_FRAME_PHASE_NAME_MAX` bytes
/// always suffices. Errors: `CLLM_ERR_NULL` (frame, buf, out_len),
/// `CLLM_ERR_INVALID_ARGUMENT` (`phase` not registered; `cap` too small:
/// nothing is written and the message gives the size needed).
///
/// # Safety
/// `frame` is NULL or a live guard; `buf` is NULL or writable for `cap`
/// bytes; `out_len` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_frame_phase_name(
    frame: *const cllm_frame,
    phase: c_int,
    buf: *mut c_char,
    cap: usize,
    out_len: *mut usize,
) -> cllm_status {
    ffi_status(|| {
        // SAFETY: the caller passes NULL or a live guard.
        let frame = unsafe { frame_ref(frame) }?;
        let buf = out_ptr(buf, "buf")?;
        let out_len = out_ptr(out_len, "out_len")?;
        let name = frame.phase_stat(frame.phase(phase)?).name;
        // SAFETY: the caller promises `cap` writable bytes at `buf`.
        unsafe { copy_text(&name, buf, cap) }?;
        // SAFETY: `out_len` was checked and is writable.
        unsafe { write_out(out_len, name.len()) };
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::last_error_message;
    use frame_guard::CSV_ROW_MAX;

    #[test]
    fn the_c_constants_match_the_crate() {
        assert_eq!(CLLM_FRAME_ROW_MAX, CSV_ROW_MAX);
        let d = cllm_frame_options_default();
        assert_eq!(config_from(&d).unwrap(), FrameGuardConfig::default());
        assert_eq!(d.rules, CLLM_FRAME_RULE_CONSECUTIVE);
    }

    #[test]
    fn a_nan_time_is_numeric_and_a_negative_one_invalid() {
        let nan = cllm_frame_options {
            budget_ms: f64::NAN,
            ..cllm_frame_options_default()
        };
        assert_eq!(
            config_from(&nan).unwrap_err().status,
            cllm_status::CLLM_ERR_NUMERIC
        );
        let negative = cllm_frame_options {
            slow_frame_limit_ms: -1.0,
            ..cllm_frame_options_default()
        };
        let err = config_from(&negative).unwrap_err();
        assert_eq!(err.status, cllm_status::CLLM_ERR_INVALID_ARGUMENT);
        assert!(
            err.message.contains("slow_frame_limit_ms"),
            "{}",
            err.message
        );
    }

    #[test]
    fn a_long_stop_message_is_truncated_and_nul_terminated() {
        let info = StopInfo {
            reason: StopReason::Memory {
                resident_bytes: u64::MAX,
                limit_bytes: 1,
            },
            frame: u64::MAX,
            at: Duration::MAX,
        };
        let c = stop_to_c(&info);
        assert_eq!(c.message[CLLM_FRAME_MESSAGE_MAX - 1], 0);
        assert!(c.message[0] != 0);
    }

    fn manual_frame() -> *mut cllm_frame {
        let options = cllm_frame_options {
            manual_clock: true,
            ..cllm_frame_options_default()
        };
        let mut frame = std::ptr::null_mut();
        // SAFETY: valid options and out pointer.
        let status = unsafe { cllm_frame_create(&options, &mut frame) };
        assert_eq!(status, cllm_status::CLLM_OK);
        frame
    }

    fn add_phase(frame: *mut cllm_frame, name: &std::ffi::CStr) -> Result<c_int, cllm_status> {
        let mut id = -1;
        // SAFETY: a live guard, a NUL-terminated name, a writable out pointer.
        match unsafe { cllm_frame_add_phase(frame, name.as_ptr(), &mut id) } {
            cllm_status::CLLM_OK => Ok(id),
            status => Err(status),
        }
    }

    #[test]
    fn phase_names_are_checked_without_reading_past_the_limit() {
        let frame = manual_frame();
        assert_eq!(
            add_phase(frame, c""),
            Err(cllm_status::CLLM_ERR_INVALID_ARGUMENT)
        );
        assert_eq!(last_error_message(), "name is an empty string");
        let longest = std::ffi::CString::new("p".repeat(CLLM_FRAME_PHASE_NAME_MAX - 1)).unwrap();
        assert_eq!(add_phase(frame, &longest), Ok(0));
        let too_long = std::ffi::CString::new("p".repeat(CLLM_FRAME_PHASE_NAME_MAX)).unwrap();
        assert_eq!(
            add_phase(frame, &too_long),
            Err(cllm_status::CLLM_ERR_INVALID_ARGUMENT)
        );
        assert!(last_error_message().contains("longer than 63 bytes"));
        assert_eq!(
            add_phase(frame, c"caf\xe9"),
            Err(cllm_status::CLLM_ERR_INVALID_ARGUMENT)
        );
        assert!(last_error_message().contains("not UTF-8"));
        // SAFETY: a live guard, freed once.
        unsafe { cllm_frame_free(frame) };
    }

    #[test]
    fn phases_stop_at_the_cap_but_known_names_are_still_found() {
        let frame = manual_frame();
        for i in 0..CLLM_FRAME_PHASE_MAX {
            let name = std::ffi::CString::new(format!("phase {i}")).unwrap();
            assert_eq!(add_phase(frame, &name), Ok(i as c_int));
        }
        assert_eq!(
            add_phase(frame, c"one more"),
            Err(cllm_status::CLLM_ERR_FULL)
        );
        assert!(last_error_message().contains("CLLM_FRAME_PHASE_MAX"));
        assert_eq!(add_phase(frame, c"phase 7"), Ok(7));
        // SAFETY: a live guard, freed once.
        unsafe { cllm_frame_free(frame) };
    }

    #[test]
    fn a_recorded_phase_comes_back_and_an_unknown_id_is_refused() {
        let frame = manual_frame();
        let physics = add_phase(frame, c"physics").unwrap();
        // SAFETY: a live guard.
        let status = unsafe { cllm_frame_record_phase(frame, physics + 1, 1.0) };
        assert_eq!(status, cllm_status::CLLM_ERR_INVALID_ARGUMENT);
        assert_eq!(
            last_error_message(),
            "phase 1 is not registered (this guard has 1 phases, ids from 0)"
        );
        for ms in [2.0, 4.5] {
            // SAFETY: a live guard.
            let status = unsafe { cllm_frame_record_phase(frame, physics, ms) };
            assert_eq!(status, cllm_status::CLLM_OK);
        }
        let mut out = std::mem::MaybeUninit::uninit();
        // SAFETY: a live guard, a writable out pointer.
        let status = unsafe { cllm_frame_phase_stats(frame, physics, out.as_mut_ptr()) };
        assert_eq!(status, cllm_status::CLLM_OK);
        // SAFETY: written on success.
        let out = unsafe { out.assume_init() };
        assert_eq!((out.count, out.total_ms, out.max_ms), (2, 6.5, 4.5));
        // SAFETY: a live guard, freed once.
        unsafe { cllm_frame_free(frame) };
    }

    #[test]
    fn null_frame_is_named() {
        // SAFETY: NULL is a valid argument.
        let status = unsafe { cllm_frame_begin(std::ptr::null_mut()) };
        assert_eq!(status, cllm_status::CLLM_ERR_NULL);
        assert_eq!(last_error_message(), "frame is NULL");
    }
}
