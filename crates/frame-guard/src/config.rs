//! The guard's configuration: one struct with the plan's defaults, checked by
//! [`FrameGuardConfig::validate`] and filled from the environment in one
//! place ([`FrameGuardConfig::from_env`]).

use std::fmt;
use std::time::Duration;

/// Which emergency-stop rules are active. Several may be; the first to fire
/// stops the loop, and every rule keeps counting its own trips afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopRules {
    /// The plan's rule: stop after `slow_frame_count` consecutive frames
    /// longer than `slow_frame_limit` (10 frames over 2 s).
    pub consecutive: bool,
    /// The rule as the original code had it: every `sample_interval` take a
    /// sample; it is slow if the frame gap exceeds `sample_gap_limit`; stop
    /// after `slow_sample_count` slow samples in a row (5 s, 0.5 s, 10).
    pub sampled: bool,
    /// Stop when the resident memory exceeds `memory_limit_bytes`
    /// (read from `/proc/self/statm` every `memory_check_interval`).
    pub memory: bool,
}

impl StopRules {
    /// Only the plan's consecutive-slow-frames rule (the default).
    pub const PLAN: Self = Self {
        consecutive: true,
        sampled: false,
        memory: false,
    };
    /// Only the original code's sampled rule.
    pub const CODED: Self = Self {
        consecutive: false,
        sampled: true,
        memory: false,
    };
    /// No rule: timing and monitoring only.
    pub const NONE: Self = Self {
        consecutive: false,
        sampled: false,
        memory: false,
    };
    /// Every rule.
    pub const ALL: Self = Self {
        consecutive: true,
        sampled: true,
        memory: true,
    };
}

impl Default for StopRules {
    fn default() -> Self {
        Self::PLAN
    }
}

/// Everything the frame guard can be told. `Default` gives the walker plan's
/// values.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameGuardConfig {
    /// Frame-time budget for the "share of frames under budget" figure
    /// (default 16.7 ms: 60 frames per second). A frame counts as under
    /// budget when its duration is at most this.
    pub budget: Duration,
    /// The active stop rules (default: the plan's consecutive rule only).
    pub rules: StopRules,
    /// A frame longer than this is slow (consecutive rule); a frame still in
    /// progress after this long is stalled (watchdog). Default 2 s.
    pub slow_frame_limit: Duration,
    /// K: consecutive slow frames that stop the loop (default 10).
    pub slow_frame_count: u32,
    /// Sampled rule: time between samples (default 5 s).
    pub sample_interval: Duration,
    /// Sampled rule: a sample is slow when the frame gap exceeds this
    /// (default 0.5 s).
    pub sample_gap_limit: Duration,
    /// Sampled rule: slow samples in a row that stop the loop (default 10).
    pub slow_sample_count: u32,
    /// Memory rule: resident-memory limit in bytes (default 2000 MiB, the
    /// original code's figure).
    pub memory_limit_bytes: u64,
    /// Memory rule: time between two reads of the resident size (default 5 s).
    pub memory_check_interval: Duration,
    /// Period of the background watchdog thread that checks the time rules
    /// and stalled frames while the loop may be frozen; `None` (the default)
    /// starts no thread, and the checks run only in the loop's own calls.
    pub watchdog_period: Option<Duration>,
    /// Interval between two monitoring rows (default 1 s).
    pub monitor_interval: Duration,
}

impl Default for FrameGuardConfig {
    fn default() -> Self {
        Self {
            budget: Duration::from_micros(16_700),
            rules: StopRules::PLAN,
            slow_frame_limit: Duration::from_secs(2),
            slow_frame_count: 10,
            sample_interval: Duration::from_secs(5),
            sample_gap_limit: Duration::from_millis(500),
            slow_sample_count: 10,
            memory_limit_bytes: 2000 << 20,
            memory_check_interval: Duration::from_secs(5),
            watchdog_period: None,
            monitor_interval: Duration::from_secs(1),
        }
    }
}

/// A configuration value that is out of range, or an environment variable
/// that does not parse. Names the field or variable and the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The field or environment variable.
    pub name: String,
    /// The offending value, as text.
    pub value: String,
    /// Why it is refused.
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} = {}: {}", self.name, self.value, self.reason)
    }
}

impl std::error::Error for ConfigError {}

fn refuse(name: &str, value: impl fmt::Debug, reason: &str) -> ConfigError {
    ConfigError {
        name: name.to_owned(),
        value: format!("{value:?}"),
        reason: reason.to_owned(),
    }
}

/// The smallest sample, memory-check, monitor or watchdog interval accepted:
/// below it the checks would cost more than the frames they watch.
pub const MIN_INTERVAL: Duration = Duration::from_millis(1);

impl FrameGuardConfig {
    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.budget.is_zero() {
            return Err(refuse("budget", self.budget, "must be positive"));
        }
        if self.slow_frame_limit.is_zero() {
            return Err(refuse(
                "slow_frame_limit",
                self.slow_frame_limit,
                "must be positive",
            ));
        }
        if self.slow_frame_count == 0 {
            return Err(refuse(
                "slow_frame_count",
                self.slow_frame_count,
                "must be at least 1",
            ));
        }
        if self.sample_interval < MIN_INTERVAL {
            return Err(refuse(
                "sample_interval",
                self.sample_interval,
                "must be at least 1 ms",
            ));
        }
        if self.slow_sample_count == 0 {
            return Err(refuse(
                "slow_sample_count",
                self.slow_sample_count,
                "must be at least 1",
            ));
        }
        if self.memory_check_interval < MIN_INTERVAL {
            return Err(refuse(
                "memory_check_interval",
                self.memory_check_interval,
                "must be at least 1 ms",
            ));
        }
        if self.rules.memory && self.memory_limit_bytes == 0 {
            return Err(refuse(
                "memory_limit_bytes",
                self.memory_limit_bytes,
                "must be positive when the memory rule is on",
            ));
        }
        if let Some(period) = self.watchdog_period
            && period < MIN_INTERVAL
        {
            return Err(refuse("watchdog_period", period, "must be at least 1 ms"));
        }
        if self.monitor_interval < MIN_INTERVAL {
            return Err(refuse(
                "monitor_interval",
                self.monitor_interval,
                "must be at least 1 ms",
            ));
        }
        Ok(())
    }

    /// The defaults, overridden by the process environment (see
    /// [`FrameGuardConfig::from_lookup`] for the variables).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// The defaults, overridden by the variables `lookup` finds:
    ///
    /// | variable | field | form |
    /// |---|---|---|
    /// | `FRAME_BUDGET_MS` | `budget` | milliseconds, e.g. `16.7` |
    /// | `FRAME_STOP_RULES` | `rules` | comma list of `consecutive`, `sampled`, `memory`, or `none` |
    /// | `FRAME_SLOW_LIMIT_MS` | `slow_frame_limit` | milliseconds |
    /// | `FRAME_SLOW_COUNT` | `slow_frame_count` | integer >= 1 |
    /// | `FRAME_SAMPLE_INTERVAL_MS` | `sample_interval` | milliseconds |
    /// | `FRAME_SAMPLE_GAP_MS` | `sample_gap_limit` | milliseconds |
    /// | `FRAME_SLOW_SAMPLES` | `slow_sample_count` | integer >= 1 |
    /// | `FRAME_MEMORY_LIMIT_MB` | `memory_limit_bytes` | MiB |
    /// | `FRAME_WATCHDOG_MS` | `watchdog_period` | milliseconds, `0` = no thread |
    /// | `MONITOR_INTERVAL_MS` | `monitor_interval` | milliseconds |
    ///
    /// A value that does not parse, or a result that fails
    /// [`FrameGuardConfig::validate`], is an error naming the variable.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut c = Self::default();
        let ms = |name: &str| -> Result<Option<Duration>, ConfigError> {
            let Some(text) = lookup(name) else {
                return Ok(None);
            };
            let value: f64 = text
                .trim()
                .parse()
                .map_err(|_| refuse(name, &text, "not a number of milliseconds"))?;
            if !(0.0..=1e12).contains(&value) {
                return Err(refuse(
                    name,
                    &text,
                    "must be a finite number of milliseconds in [0, 1e12]",
                ));
            }
            Ok(Some(Duration::from_secs_f64(value / 1e3)))
        };
        let count = |name: &str| -> Result<Option<u32>, ConfigError> {
            let Some(text) = lookup(name) else {
                return Ok(None);
            };
            let value: u32 = text
                .trim()
                .parse()
                .map_err(|_| refuse(name, &text, "not a whole number"))?;
            if value == 0 {
                return Err(refuse(name, &text, "must be at least 1"));
            }
            Ok(Some(value))
        };
        // Range errors of the parsed values are reported under the variable's name.
        let checked = |name: &str, d: Duration, min: Duration| -> Result<Duration, ConfigError> {
            if d < min {
                Err(refuse(
                    name,
                    lookup(name).unwrap_or_default(),
                    &format!("must be at least {min:?}"),
                ))
            } else {
                Ok(d)
            }
        };
        let positive = Duration::from_nanos(1);
        if let Some(d) = ms("FRAME_BUDGET_MS")? {
            c.budget = checked("FRAME_BUDGET_MS", d, positive)?;
        }
        if let Some(text) = lookup("FRAME_STOP_RULES") {
            c.rules = StopRules::NONE;
            for word in text.split(',').map(str::trim).filter(|w| !w.is_empty()) {
                match word.to_ascii_lowercase().as_str() {
                    "consecutive" => c.rules.consecutive = true,
                    "sampled" => c.rules.sampled = true,
                    "memory" => c.rules.memory = true,
                    "none" => {}
                    _ => {
                        return Err(refuse(
                            "FRAME_STOP_RULES",
                            &text,
                            &format!("unknown rule {word:?} (consecutive, sampled, memory, none)"),
                        ));
                    }
                }
            }
        }
        if let Some(d) = ms("FRAME_SLOW_LIMIT_MS")? {
            c.slow_frame_limit = checked("FRAME_SLOW_LIMIT_MS", d, positive)?;
        }
        if let Some(n) = count("FRAME_SLOW_COUNT")? {
            c.slow_frame_count = n;
        }
        if let Some(d) = ms("FRAME_SAMPLE_INTERVAL_MS")? {
            c.sample_interval = checked("FRAME_SAMPLE_INTERVAL_MS", d, MIN_INTERVAL)?;
        }
        if let Some(d) = ms("FRAME_SAMPLE_GAP_MS")? {
            c.sample_gap_limit = d;
        }
        if let Some(n) = count("FRAME_SLOW_SAMPLES")? {
            c.slow_sample_count = n;
        }
        if let Some(text) = lookup("FRAME_MEMORY_LIMIT_MB") {
            let mb: f64 = text
                .trim()
                .parse()
                .map_err(|_| refuse("FRAME_MEMORY_LIMIT_MB", &text, "not a number of MiB"))?;
            if !mb.is_finite() || mb <= 0.0 || mb > 1e12 {
                return Err(refuse(
                    "FRAME_MEMORY_LIMIT_MB",
                    &text,
                    "must be a positive number of MiB",
                ));
            }
            c.memory_limit_bytes = (mb * 1048576.0) as u64;
        }
        if let Some(d) = ms("FRAME_WATCHDOG_MS")? {
            c.watchdog_period = if d.is_zero() {
                None
            } else {
                Some(checked("FRAME_WATCHDOG_MS", d, MIN_INTERVAL)?)
            };
        }
        if let Some(d) = ms("MONITOR_INTERVAL_MS")? {
            c.monitor_interval = checked("MONITOR_INTERVAL_MS", d, MIN_INTERVAL)?;
        }
        c.validate()?;
        Ok(c)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(vars: &[(&str, &str)]) -> Result<FrameGuardConfig, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        FrameGuardConfig::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_are_the_plans_values() {
        let c = FrameGuardConfig::default();
        assert_eq!(c.budget, Duration::from_micros(16_700));
        assert_eq!(
            (c.slow_frame_count, c.slow_frame_limit),
            (10, Duration::from_secs(2))
        );
        assert_eq!(
            (c.sample_interval, c.sample_gap_limit, c.slow_sample_count),
            (Duration::from_secs(5), Duration::from_millis(500), 10)
        );
        assert_eq!(c.rules, StopRules::PLAN);
        assert_eq!(c.watchdog_period, None);
        assert!(c.validate().is_ok());
        assert_eq!(from(&[]).unwrap(), c);
    }

    #[test]
    fn good_environment_values_are_applied() {
        let c = from(&[
            ("FRAME_BUDGET_MS", "8.5"),
            ("FRAME_STOP_RULES", "sampled, memory"),
            ("FRAME_SLOW_LIMIT_MS", "100"),
            ("FRAME_SLOW_COUNT", "3"),
            ("FRAME_SAMPLE_INTERVAL_MS", "250"),
            ("FRAME_SAMPLE_GAP_MS", "40"),
            ("FRAME_SLOW_SAMPLES", "4"),
            ("FRAME_MEMORY_LIMIT_MB", "512"),
            ("FRAME_WATCHDOG_MS", "20"),
            ("MONITOR_INTERVAL_MS", "500"),
        ])
        .unwrap();
        assert_eq!(c.budget, Duration::from_micros(8500));
        assert_eq!(
            c.rules,
            StopRules {
                consecutive: false,
                sampled: true,
                memory: true
            }
        );
        assert_eq!(
            (c.slow_frame_limit, c.slow_frame_count),
            (Duration::from_millis(100), 3)
        );
        assert_eq!(
            (c.sample_interval, c.sample_gap_limit, c.slow_sample_count),
            (Duration::from_millis(250), Duration::from_millis(40), 4)
        );
        assert_eq!(c.memory_limit_bytes, 512 << 20);
        assert_eq!(c.watchdog_period, Some(Duration::from_millis(20)));
        assert_eq!(c.monitor_interval, Duration::from_millis(500));
        assert_eq!(
            from(&[("FRAME_WATCHDOG_MS", "0")]).unwrap().watchdog_period,
            None
        );
        assert_eq!(
            from(&[("FRAME_STOP_RULES", "none")]).unwrap().rules,
            StopRules::NONE
        );
    }

    #[test]
    fn bad_environment_values_name_the_variable_and_the_value() {
        for (name, value) in [
            ("FRAME_BUDGET_MS", "fast"),
            ("FRAME_BUDGET_MS", "0"),
            ("FRAME_BUDGET_MS", "-3"),
            ("FRAME_BUDGET_MS", "NaN"),
            ("FRAME_SLOW_COUNT", "0"),
            ("FRAME_SLOW_COUNT", "2.5"),
            ("FRAME_STOP_RULES", "consecutive,sometimes"),
            ("FRAME_SAMPLE_INTERVAL_MS", "0.1"),
            ("FRAME_MEMORY_LIMIT_MB", "-1"),
            ("FRAME_WATCHDOG_MS", "0.5"),
            ("MONITOR_INTERVAL_MS", "inf"),
        ] {
            let err = from(&[(name, value)]).unwrap_err();
            assert_eq!(err.name, name, "{err}");
            assert!(err.value.contains(value), "{err}");
        }
        // The value is quoted once (it was quoted twice: "\"fast\"").
        let err = from(&[("FRAME_BUDGET_MS", "fast")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "FRAME_BUDGET_MS = \"fast\": not a number of milliseconds"
        );
    }

    #[test]
    fn validate_refuses_zero_counts_and_limits() {
        let bad = [
            FrameGuardConfig {
                budget: Duration::ZERO,
                ..Default::default()
            },
            FrameGuardConfig {
                slow_frame_count: 0,
                ..Default::default()
            },
            FrameGuardConfig {
                slow_frame_limit: Duration::ZERO,
                ..Default::default()
            },
            FrameGuardConfig {
                slow_sample_count: 0,
                ..Default::default()
            },
            FrameGuardConfig {
                sample_interval: Duration::ZERO,
                ..Default::default()
            },
            FrameGuardConfig {
                rules: StopRules::ALL,
                memory_limit_bytes: 0,
                ..Default::default()
            },
            FrameGuardConfig {
                watchdog_period: Some(Duration::ZERO),
                ..Default::default()
            },
            FrameGuardConfig {
                monitor_interval: Duration::ZERO,
                ..Default::default()
            },
        ];
        for c in bad {
            assert!(c.validate().is_err(), "{c:?}");
        }
    }
}
