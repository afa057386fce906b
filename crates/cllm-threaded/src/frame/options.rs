//! `cllm_frame_options`: how a frame guard is built (all times in ns).

use super::duration_ns;
use crate::error::FfiError;
use crate::guard::{ffi_status, ns, out_ptr, write_out};
use crate::status::cllm_status;
use frame_guard::{FrameGuardConfig, StopRules};

/// Rule bit of `cllm_frame_options.rules`: stop after `slow_frame_count`
/// consecutive frames longer than `slow_frame_limit_ns` (the walker plan's
/// rule: 10 frames over 2 s).
pub const CLLM_FRAME_RULE_CONSECUTIVE: u32 = 1;
/// Rule bit: every `sample_interval_ns` take a sample, slow if the frame gap
/// exceeds `sample_gap_ns`; stop after `slow_sample_count` slow samples in a
/// row (the original code's rule: 5 s, 0.5 s, 10).
pub const CLLM_FRAME_RULE_SAMPLED: u32 = 2;
/// Rule bit: stop when the resident memory exceeds `memory_limit_bytes`.
pub const CLLM_FRAME_RULE_MEMORY: u32 = 4;

/// How to build a frame guard; fill it with `cllm_frame_options_default()`
/// or `cllm_frame_options_from_env()`. Times are in nanoseconds (at most
/// 1e18).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct cllm_frame_options {
    /// Frame budget of `under_budget_share` (default 16700000, 16.7 ms).
    pub budget_ns: u64,
    /// Active stop rules: an OR of `CLLM_FRAME_RULE_*` bits, 0 for none
    /// (default `CLLM_FRAME_RULE_CONSECUTIVE`).
    pub rules: u32,
    /// A frame longer than this is slow; a frame in progress longer than
    /// this is stalled (default 2 s).
    pub slow_frame_limit_ns: u64,
    /// K, consecutive slow frames that stop the loop (default 10, at least 1).
    pub slow_frame_count: u32,
    /// Sampled rule: time between samples (default 5 s, at least 1 ms).
    pub sample_interval_ns: u64,
    /// Sampled rule: frame-gap limit of a sample (default 0.5 s).
    pub sample_gap_ns: u64,
    /// Sampled rule: slow samples in a row that stop (default 10, at least 1).
    pub slow_sample_count: u32,
    /// Memory rule: resident-memory limit in bytes (default 2000 MiB).
    pub memory_limit_bytes: u64,
    /// Memory rule: time between two reads of the resident size (default 5 s).
    pub memory_check_interval_ns: u64,
    /// Period of the watchdog thread that checks the rules while the loop is
    /// frozen; 0 (the default) starts no thread, at least 1 ms otherwise.
    pub watchdog_period_ns: u64,
    /// Interval of `cllm_frame_monitor_due` (default 1 s, at least 1 ms).
    pub monitor_interval_ns: u64,
    /// If true, time moves only by `cllm_frame_tick` and
    /// `cllm_frame_advance`: replays, simulations, tests. Default false (the
    /// monotonic system clock).
    pub manual_clock: bool,
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
/// variables as the Rust `FrameGuardConfig::from_env`, in the units their
/// names say): `FRAME_BUDGET_MS`, `FRAME_STOP_RULES` (comma list of
/// `consecutive`, `sampled`, `memory`, or `none`), `FRAME_SLOW_LIMIT_MS`,
/// `FRAME_SLOW_COUNT`, `FRAME_SAMPLE_INTERVAL_MS`, `FRAME_SAMPLE_GAP_MS`,
/// `FRAME_SLOW_SAMPLES`, `FRAME_MEMORY_LIMIT_MB`, `FRAME_WATCHDOG_MS` (0 = no
/// watchdog thread), `MONITOR_INTERVAL_MS`. Pass the result to
/// `cllm_frame_create` (after changing any field the program decides
/// itself). Errors: `CLLM_ERR_NULL` (out), `CLLM_ERR_CONFIG` (a value that
/// does not parse or is out of range; `cllm_last_error()` names the variable
/// and its value). `*out` is written only on success.
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
    cllm_frame_options {
        budget_ns: ns(d.budget),
        rules: rules_bits(d.rules),
        slow_frame_limit_ns: ns(d.slow_frame_limit),
        slow_frame_count: d.slow_frame_count,
        sample_interval_ns: ns(d.sample_interval),
        sample_gap_ns: ns(d.sample_gap_limit),
        slow_sample_count: d.slow_sample_count,
        memory_limit_bytes: d.memory_limit_bytes,
        memory_check_interval_ns: ns(d.memory_check_interval),
        watchdog_period_ns: d.watchdog_period.map_or(0, ns),
        monitor_interval_ns: ns(d.monitor_interval),
        manual_clock: false,
    }
}

fn rules_bits(rules: StopRules) -> u32 {
    u32::from(rules.consecutive) * CLLM_FRAME_RULE_CONSECUTIVE
        + u32::from(rules.sampled) * CLLM_FRAME_RULE_SAMPLED
        + u32::from(rules.memory) * CLLM_FRAME_RULE_MEMORY
}

/// The guard configuration of C options, checked.
pub(super) fn config_from(o: &cllm_frame_options) -> Result<FrameGuardConfig, FfiError> {
    let known = CLLM_FRAME_RULE_CONSECUTIVE | CLLM_FRAME_RULE_SAMPLED | CLLM_FRAME_RULE_MEMORY;
    if o.rules & !known != 0 {
        return Err(FfiError::invalid(format!(
            "rules 0x{:x} has unknown bits (known: CONSECUTIVE 1, SAMPLED 2, MEMORY 4)",
            o.rules
        )));
    }
    let watchdog = duration_ns("watchdog_period_ns", o.watchdog_period_ns)?;
    let config = FrameGuardConfig {
        budget: duration_ns("budget_ns", o.budget_ns)?,
        rules: StopRules {
            consecutive: o.rules & CLLM_FRAME_RULE_CONSECUTIVE != 0,
            sampled: o.rules & CLLM_FRAME_RULE_SAMPLED != 0,
            memory: o.rules & CLLM_FRAME_RULE_MEMORY != 0,
        },
        slow_frame_limit: duration_ns("slow_frame_limit_ns", o.slow_frame_limit_ns)?,
        slow_frame_count: o.slow_frame_count,
        sample_interval: duration_ns("sample_interval_ns", o.sample_interval_ns)?,
        sample_gap_limit: duration_ns("sample_gap_ns", o.sample_gap_ns)?,
        slow_sample_count: o.slow_sample_count,
        memory_limit_bytes: o.memory_limit_bytes,
        memory_check_interval: duration_ns("memory_check_interval_ns", o.memory_check_interval_ns)?,
        watchdog_period: (!watchdog.is_zero()).then_some(watchdog),
        monitor_interval: duration_ns("monitor_interval_ns", o.monitor_interval_ns)?,
    };
    config
        .validate()
        .map_err(|e| FfiError::invalid(e.to_string()))?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_the_crate_defaults_exactly() {
        let d = cllm_frame_options_default();
        assert_eq!(config_from(&d).unwrap(), FrameGuardConfig::default());
        assert_eq!(d.rules, CLLM_FRAME_RULE_CONSECUTIVE);
        assert_eq!(d.budget_ns, 16_700_000);
    }

    #[test]
    fn a_time_over_the_limit_is_refused_and_named() {
        let long = cllm_frame_options {
            slow_frame_limit_ns: super::super::MAX_NS + 1,
            ..cllm_frame_options_default()
        };
        let err = config_from(&long).unwrap_err();
        assert_eq!(err.status, cllm_status::CLLM_ERR_INVALID_ARGUMENT);
        assert!(
            err.message.contains("slow_frame_limit_ns"),
            "{}",
            err.message
        );
        let limit = cllm_frame_options {
            slow_frame_limit_ns: super::super::MAX_NS,
            ..cllm_frame_options_default()
        };
        assert!(config_from(&limit).is_ok());
    }
}
