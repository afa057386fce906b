//! [`SyncConfig`]: the crate's one configuration, with defaults, filled from
//! the environment in one place ([`SyncConfig::from_env`]).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use thread_support::duration_to_nanos;

/// The environment variable of [`SyncConfig::deadlock_check`]: whole
/// milliseconds, `0` turns the automatic check off.
pub const ENV_DEADLOCK_CHECK_MS: &str = "CLLM_DEADLOCK_CHECK_MS";

/// The default of [`SyncConfig::deadlock_check`].
pub const DEFAULT_DEADLOCK_CHECK: Duration = Duration::from_millis(200);

/// Configuration of the counting locks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncConfig {
    /// A thread blocked in a counting lock for this long runs the deadlock
    /// detector, and again after each further period, until it gets the
    /// lock. `None` turns the automatic check off ([`crate::detect_deadlocks`]
    /// still works on demand).
    pub deadlock_check: Option<Duration>,
}

impl Default for SyncConfig {
    fn default() -> Self {
        Self {
            deadlock_check: Some(DEFAULT_DEADLOCK_CHECK),
        }
    }
}

/// A configuration value that could not be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The variable.
    pub variable: &'static str,
    /// Its value.
    pub value: String,
    /// What was expected instead.
    pub expected: &'static str,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}={:?}: expected {}",
            self.variable, self.value, self.expected
        )
    }
}

impl std::error::Error for ConfigError {}

impl SyncConfig {
    /// The defaults, overridden by the environment (see [`ENV_DEADLOCK_CHECK_MS`]).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`from_env`](Self::from_env) with the variables read through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut config = Self::default();
        if let Some(value) = lookup(ENV_DEADLOCK_CHECK_MS) {
            let ms: u64 = value.trim().parse().map_err(|_| ConfigError {
                variable: ENV_DEADLOCK_CHECK_MS,
                value: value.clone(),
                expected: "a whole number of milliseconds (0 = off)",
            })?;
            config.deadlock_check = (ms > 0).then(|| Duration::from_millis(ms));
        }
        Ok(config)
    }
}

/// `u64::MAX`: not configured yet; 0: off; otherwise nanoseconds.
static DEADLOCK_CHECK_NS: AtomicU64 = AtomicU64::new(u64::MAX);

fn encode(config: &SyncConfig) -> u64 {
    config.deadlock_check.map_or(0, |d| {
        // 0 means "off" and u64::MAX "not read yet".
        duration_to_nanos(d).clamp(1, u64::MAX - 1)
    })
}

/// Installs `config` for the whole process (it replaces the one read from
/// the environment).
pub fn configure(config: &SyncConfig) {
    DEADLOCK_CHECK_NS.store(encode(config), Ordering::Relaxed);
}

/// The configuration in force: the one installed by [`configure`], else the
/// one read from the environment at first use. A bad environment value is
/// reported once on standard error and the default is used instead (call
/// [`SyncConfig::from_env`] to get the error).
pub fn current_config() -> SyncConfig {
    let mut ns = DEADLOCK_CHECK_NS.load(Ordering::Relaxed);
    if ns == u64::MAX {
        let config = SyncConfig::from_env().unwrap_or_else(|e| {
            eprintln!("sync-stats: {e}; using the default");
            SyncConfig::default()
        });
        ns = match DEADLOCK_CHECK_NS.compare_exchange(
            u64::MAX,
            encode(&config),
            Ordering::Relaxed,
            Ordering::Relaxed,
        ) {
            Ok(_) => encode(&config),
            Err(installed) => installed,
        };
    }
    SyncConfig {
        deadlock_check: (ns != 0).then(|| Duration::from_nanos(ns)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(value: Option<&str>) -> impl Fn(&str) -> Option<String> {
        let value = value.map(str::to_owned);
        move |name| {
            if name == ENV_DEADLOCK_CHECK_MS {
                value.clone()
            } else {
                None
            }
        }
    }

    #[test]
    fn environment_values_set_or_disable_the_check() {
        assert_eq!(
            SyncConfig::from_lookup(lookup(None)).unwrap(),
            SyncConfig::default()
        );
        assert_eq!(
            SyncConfig::from_lookup(lookup(Some(" 50 ")))
                .unwrap()
                .deadlock_check,
            Some(Duration::from_millis(50))
        );
        assert_eq!(
            SyncConfig::from_lookup(lookup(Some("0")))
                .unwrap()
                .deadlock_check,
            None
        );
    }

    #[test]
    fn a_bad_environment_value_names_the_variable_and_the_value() {
        for bad in ["", "-5", "1.5", "soon"] {
            let err = SyncConfig::from_lookup(lookup(Some(bad))).unwrap_err();
            assert_eq!(err.variable, ENV_DEADLOCK_CHECK_MS);
            assert_eq!(err.value, bad);
            assert!(
                err.to_string().starts_with("CLLM_DEADLOCK_CHECK_MS="),
                "{err}"
            );
        }
    }
}
