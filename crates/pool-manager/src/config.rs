//! [`RuntimeConfig`]: the one source of truth for the role pools' settings,
//! filled with defaults from the core count, from code, or from the
//! environment in one function ([`RuntimeConfig::from_env_with`]); and the
//! [`ThreadPlan`] that shares the thread budget between the pools.
//!
//! # Environment variables
//! | variable | meaning | default |
//! |---|---|---|
//! | `ENABLE_PARALLEL_AI` | ai pool on (off: its work runs inline) | true |
//! | `ENABLE_PARALLEL_STATS` | stats pool on | true |
//! | `ENABLE_BACKGROUND_PROCESSING` | background pool on (off: periodic tasks run inline in [`Scheduler::run_due`](crate::Scheduler::run_due)) | true |
//! | `MAX_AI_THREADS` | ai pool size | cores / 3 |
//! | `MAX_STATS_THREADS` | stats pool size | cores / 6 |
//! | `CLLM_PHYSICS_THREADS` | physics pool size | cores / 12 (4 of 48) |
//! | `CLLM_BACKGROUND_THREADS` | background pool size | cores / 4 |
//! | `CLLM_EVALUATION_THREADS` | evaluation pool size | cores / 6 (8 of 48) |
//! | `CLLM_THREAD_BUDGET` | most worker threads of all pools together | cores |
//! | `CLLM_QUEUE_CAPACITY` | each pool's queue capacity | 1024 |
//! | `CLLM_STUCK_TASK_MS` | a task running longer is reported by health | 5000 |
//!
//! Booleans accept `true/false/1/0/yes/no` (any case, surrounding blank
//! ignored); counts are decimal whole numbers. A pool size of 0 turns the
//! pool off (its work runs inline on the caller). Any other value is a
//! [`ConfigError`] naming the variable and the value; nothing is silently
//! ignored. Every default size is at least 1.
//!
//! # How the budget is shared
//! Each enabled pool *requests* its size. If the requests fit in the budget,
//! every pool gets its request. Otherwise the budget is split in proportion to
//! the requests' weights (the plan's ratios, unrounded, for default sizes; the
//! number itself for sizes that were set), by largest remainder, never above a
//! request; when the budget has at least one thread per enabled pool, every
//! pool gets at least one. A pool left with no thread of its own is a
//! *guest*: the idle threads of the pool with the most threads (its *host*)
//! run its queued tasks after their own, so nothing is lost and the total
//! never exceeds the budget. On 2 cores the default plan is ai 1 and
//! background 1; physics, stats and evaluation are guests.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// The most threads a pool or the budget may have.
pub const MAX_THREADS: usize = 4096;

/// The default capacity of each pool's submit queue.
pub const DEFAULT_QUEUE_CAPACITY: usize = 1024;

/// The kind of work a pool does (the walker plan's five pools).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Agent thinking and neural networks (16 of 48 cores in the plan).
    Ai = 0,
    /// Physics helpers (4 of 48).
    Physics = 1,
    /// Statistics collection and aggregation (8 of 48).
    Stats = 2,
    /// Cleanup, maintenance, monitoring: the periodic tasks (12 of 48).
    Background = 3,
    /// Evaluation and metrics (8 of 48).
    Evaluation = 4,
}

impl Role {
    /// The number of roles.
    pub const COUNT: usize = 5;
    /// Every role, in index order.
    pub const ALL: [Role; Role::COUNT] = [
        Role::Ai,
        Role::Physics,
        Role::Stats,
        Role::Background,
        Role::Evaluation,
    ];

    /// The role's index (0..5), its position in arrays and its C value.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The role with this index.
    pub fn from_index(index: usize) -> Option<Role> {
        Self::ALL.get(index).copied()
    }

    /// The lower-case name: `ai`, `physics`, `stats`, `background`, `evaluation`.
    pub fn name(self) -> &'static str {
        match self {
            Role::Ai => "ai",
            Role::Physics => "physics",
            Role::Stats => "stats",
            Role::Background => "background",
            Role::Evaluation => "evaluation",
        }
    }

    /// Thread name prefix (Linux shows 15 bytes of a thread name).
    pub(crate) fn thread_prefix(self) -> &'static str {
        match self {
            Role::Ai => "cllm-ai",
            Role::Physics => "cllm-phys",
            Role::Stats => "cllm-stats",
            Role::Background => "cllm-bg",
            Role::Evaluation => "cllm-eval",
        }
    }

    /// The plan's thread count on its 48-core machine.
    pub fn plan_threads_at_48(self) -> usize {
        match self {
            Role::Ai => 16,
            Role::Physics => 4,
            Role::Stats => 8,
            Role::Background => 12,
            Role::Evaluation => 8,
        }
    }

    /// The plan's ratio scaled to `cores`, rounded down, at least 1
    /// (ai: cores/3, physics: cores/12, stats: cores/6, background: cores/4,
    /// evaluation: cores/6).
    pub fn default_threads(self, cores: usize) -> usize {
        // u128: `cores * 16` wraps for a core count near usize::MAX.
        ((cores as u128 * self.plan_threads_at_48() as u128 / 48) as usize).max(1)
    }

    /// The unrounded share of `cores` the plan gives this role.
    fn plan_weight(self, cores: usize) -> f64 {
        cores as f64 * self.plan_threads_at_48() as f64 / 48.0
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                format!("unknown role {s:?} (ai, physics, stats, background, evaluation)")
            })
    }
}

/// A bad configuration value: which variable (or field), its value, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The environment variable or configuration field.
    pub variable: String,
    /// The value it had.
    pub value: String,
    /// What is wrong with it.
    pub reason: String,
}

impl ConfigError {
    fn new(variable: &str, value: impl fmt::Display, reason: impl Into<String>) -> Self {
        Self {
            variable: variable.to_owned(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={:?}: {}", self.variable, self.value, self.reason)
    }
}

impl std::error::Error for ConfigError {}

/// The settings of one role pool.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolConfig {
    /// Off: the pool has no threads and runs its work inline on the caller,
    /// with the same results (the single-threaded fallback).
    pub enabled: bool,
    /// The size the pool requests; `None`: the plan's ratio of the cores;
    /// `Some(0)`: the pool is off, as with `enabled = false`.
    pub threads: Option<usize>,
    /// The most threads [`Runtime::resize`](crate::Runtime::resize) and the balancer
    /// may give the pool; `None`: the budget.
    pub max_threads: Option<usize>,
    /// Capacity of the submit queue (at least 1).
    pub queue_capacity: usize,
    /// A task running longer than this is reported by
    /// [`Runtime::health`](crate::Runtime::health).
    pub stuck_after: Duration,
    /// The longest an idle worker spins before it sleeps (0: never spin).
    pub spin: Duration,
    /// CPUs to pin the pool's threads to, round-robin: the `k`-th thread
    /// started (replacements and resizes included) runs on
    /// `cpus[k % cpus.len()]`. Each must be a CPU the process may run on.
    /// `None`: not pinned (the system places the threads).
    pub cpus: Option<Vec<usize>>,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            threads: None,
            max_threads: None,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            stuck_after: Duration::from_secs(5),
            spin: Duration::from_micros(50),
            cpus: None,
        }
    }
}

impl PoolConfig {
    /// True if the pool is on (enabled with a size other than 0).
    pub fn is_active(&self) -> bool {
        self.enabled && self.threads != Some(0)
    }
}

/// When the balancer moves a thread (see [`Runtime::rebalance`](crate::Runtime::rebalance)).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BalancerConfig {
    /// A pool busy less than this share of its thread-time may give a thread.
    pub idle_below: f64,
    /// A pool busy more than this share (or with a backlog) may take one.
    pub busy_above: f64,
}

impl Default for BalancerConfig {
    fn default() -> Self {
        Self {
            idle_below: 0.25,
            busy_above: 0.75,
        }
    }
}

/// Every setting of a [`Runtime`](crate::Runtime).
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeConfig {
    /// The core count the default sizes and budget scale from (detected).
    pub cores: usize,
    /// The most worker threads of all pools together; `None`: `cores`.
    pub thread_budget: Option<usize>,
    /// The pools, indexed by [`Role::index`].
    pub pools: [PoolConfig; Role::COUNT],
    /// Idle workers wake this often to beat their heartbeat.
    pub heartbeat: Duration,
    /// The balancer's thresholds.
    pub balancer: BalancerConfig,
    /// How long dropping the runtime waits for queued and running work.
    pub shutdown_deadline: Duration,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self::for_cores(thread_support::available_cores())
    }
}

/// The environment variables [`RuntimeConfig::from_env_with`] reads, with
/// what each sets.
pub const ENV_VARS: [(&str, &str); 11] = [
    ("ENABLE_PARALLEL_AI", "ai pool on/off (bool)"),
    ("ENABLE_PARALLEL_STATS", "stats pool on/off (bool)"),
    (
        "ENABLE_BACKGROUND_PROCESSING",
        "background pool on/off (bool)",
    ),
    ("MAX_AI_THREADS", "ai pool size (0: off)"),
    ("MAX_STATS_THREADS", "stats pool size (0: off)"),
    ("CLLM_PHYSICS_THREADS", "physics pool size (0: off)"),
    ("CLLM_BACKGROUND_THREADS", "background pool size (0: off)"),
    ("CLLM_EVALUATION_THREADS", "evaluation pool size (0: off)"),
    (
        "CLLM_THREAD_BUDGET",
        "most worker threads in all pools (>= 1)",
    ),
    (
        "CLLM_QUEUE_CAPACITY",
        "submit queue capacity of each pool (>= 1)",
    ),
    (
        "CLLM_STUCK_TASK_MS",
        "health reports tasks running longer (ms, >= 1)",
    ),
];

/// A pool's CPU list must be one that pinning honours: not empty, and only
/// CPUs the process may run on (pinning to another would silently fail).
fn check_cpus(cpus: &[usize]) -> Result<(), String> {
    if cpus.is_empty() {
        return Err("the CPU list is empty".to_owned());
    }
    // None: the platform cannot tell, and pinning stays a hint.
    let Some(allowed) = core_affinity::get_core_ids() else {
        return Ok(());
    };
    let allowed: Vec<usize> = allowed.into_iter().map(|c| c.id).collect();
    match cpus.iter().find(|c| !allowed.contains(c)) {
        Some(cpu) => Err(format!(
            "CPU {cpu} is not one this process may run on ({allowed:?})"
        )),
        None => Ok(()),
    }
}

fn parse_bool(variable: &str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(ConfigError::new(
            variable,
            value,
            "expected true/false/1/0/yes/no",
        )),
    }
}

fn parse_count(variable: &str, value: &str, min: usize, max: usize) -> Result<usize, ConfigError> {
    let text = value.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ConfigError::new(variable, value, "expected a whole number"));
    }
    let n: usize = text
        .parse()
        .map_err(|_| ConfigError::new(variable, value, format!("too large (at most {max})")))?;
    if n < min || n > max {
        return Err(ConfigError::new(
            variable,
            value,
            format!("out of range ({min}..={max})"),
        ));
    }
    Ok(n)
}

impl RuntimeConfig {
    /// The defaults for a machine with `cores` CPUs (at least 1).
    pub fn for_cores(cores: usize) -> Self {
        Self {
            cores: cores.max(1),
            thread_budget: None,
            pools: std::array::from_fn(|_| PoolConfig::default()),
            heartbeat: Duration::from_secs(1),
            balancer: BalancerConfig::default(),
            shutdown_deadline: Duration::from_secs(5),
        }
    }

    /// The settings of one pool.
    pub fn pool(&self, role: Role) -> &PoolConfig {
        &self.pools[role.index()]
    }

    /// The settings of one pool, to change.
    pub fn pool_mut(&mut self, role: Role) -> &mut PoolConfig {
        &mut self.pools[role.index()]
    }

    /// The thread budget: the set value, or the core count.
    pub fn budget(&self) -> usize {
        self.thread_budget.unwrap_or(self.cores)
    }

    /// The defaults, then the process environment (see the module docs).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_env_with(|name| {
            std::env::var_os(name).map(|v| {
                v.into_string()
                    .unwrap_or_else(|v| v.to_string_lossy().into_owned())
            })
        })
    }

    /// The defaults, then the variables that `lookup` returns (the one place
    /// where variables are read; tests pass a map instead of the process
    /// environment).
    pub fn from_env_with(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Self::default().with_env(lookup)
    }

    /// This configuration with the variables that `lookup` returns applied.
    pub fn with_env(
        mut self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let flags = [
            ("ENABLE_PARALLEL_AI", Role::Ai),
            ("ENABLE_PARALLEL_STATS", Role::Stats),
            ("ENABLE_BACKGROUND_PROCESSING", Role::Background),
        ];
        for (var, role) in flags {
            if let Some(v) = lookup(var) {
                self.pool_mut(role).enabled = parse_bool(var, &v)?;
            }
        }
        let sizes = [
            ("MAX_AI_THREADS", Role::Ai),
            ("MAX_STATS_THREADS", Role::Stats),
            ("CLLM_PHYSICS_THREADS", Role::Physics),
            ("CLLM_BACKGROUND_THREADS", Role::Background),
            ("CLLM_EVALUATION_THREADS", Role::Evaluation),
        ];
        for (var, role) in sizes {
            if let Some(v) = lookup(var) {
                self.pool_mut(role).threads = Some(parse_count(var, &v, 0, MAX_THREADS)?);
            }
        }
        if let Some(v) = lookup("CLLM_THREAD_BUDGET") {
            self.thread_budget = Some(parse_count("CLLM_THREAD_BUDGET", &v, 1, MAX_THREADS)?);
        }
        if let Some(v) = lookup("CLLM_QUEUE_CAPACITY") {
            let n = parse_count("CLLM_QUEUE_CAPACITY", &v, 1, 1 << 24)?;
            self.pools.iter_mut().for_each(|p| p.queue_capacity = n);
        }
        if let Some(v) = lookup("CLLM_STUCK_TASK_MS") {
            let ms = parse_count("CLLM_STUCK_TASK_MS", &v, 1, 1 << 40)?;
            self.pools
                .iter_mut()
                .for_each(|p| p.stuck_after = Duration::from_millis(ms as u64));
        }
        self.validate()?;
        Ok(self)
    }

    /// Checks every field; the error names the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let budget = self.budget();
        if budget == 0 || budget > MAX_THREADS {
            return Err(ConfigError::new(
                "thread_budget",
                budget,
                format!("out of range (1..={MAX_THREADS})"),
            ));
        }
        for role in Role::ALL {
            let p = self.pool(role);
            let field = |name: &str| format!("pools.{}.{name}", role.name());
            if let Some(n) = p.threads {
                if n > MAX_THREADS {
                    return Err(ConfigError::new(
                        &field("threads"),
                        n,
                        format!("at most {MAX_THREADS}"),
                    ));
                }
            }
            if let Some(n) = p.max_threads {
                if n == 0 || n > MAX_THREADS {
                    return Err(ConfigError::new(
                        &field("max_threads"),
                        n,
                        format!("out of range (1..={MAX_THREADS})"),
                    ));
                }
            }
            if p.queue_capacity == 0 {
                return Err(ConfigError::new(
                    &field("queue_capacity"),
                    0,
                    "must be at least 1",
                ));
            }
            if p.stuck_after.is_zero() {
                return Err(ConfigError::new(
                    &field("stuck_after"),
                    "0s",
                    "must be positive",
                ));
            }
            if let Some(cpus) = &p.cpus {
                check_cpus(cpus).map_err(|why| {
                    ConfigError::new(&field("cpus"), format_args!("{cpus:?}"), why)
                })?;
            }
        }
        if self.heartbeat.is_zero() {
            return Err(ConfigError::new("heartbeat", "0s", "must be positive"));
        }
        let b = self.balancer;
        if !(0.0..=1.0).contains(&b.idle_below)
            || !(0.0..=1.0).contains(&b.busy_above)
            || b.idle_below >= b.busy_above
        {
            return Err(ConfigError::new(
                "balancer",
                format!("{}/{}", b.idle_below, b.busy_above),
                "need 0 <= idle_below < busy_above <= 1",
            ));
        }
        Ok(())
    }

    /// How many threads each pool asks for and gets (see the module docs).
    pub fn thread_plan(&self) -> Result<ThreadPlan, ConfigError> {
        self.validate()?;
        let budget = self.budget();
        let mut requested = [0usize; Role::COUNT];
        let mut weights = [0f64; Role::COUNT];
        for role in Role::ALL {
            let p = self.pool(role);
            if !p.is_active() {
                continue;
            }
            let i = role.index();
            let max = p.max_threads.unwrap_or(budget);
            match p.threads {
                Some(n) => {
                    requested[i] = n.min(max);
                    weights[i] = requested[i] as f64;
                }
                None => {
                    requested[i] = role.default_threads(self.cores).min(max);
                    weights[i] = role.plan_weight(self.cores);
                }
            }
        }
        let assigned = share_budget(budget, &requested, &weights);
        Ok(ThreadPlan {
            budget,
            requested,
            assigned,
        })
    }
}

/// Splits `budget` threads between pools that request `requested` with the
/// given weights (see the module docs).
fn share_budget(
    budget: usize,
    requested: &[usize; Role::COUNT],
    weights: &[f64; Role::COUNT],
) -> [usize; Role::COUNT] {
    if requested.iter().sum::<usize>() <= budget {
        return *requested;
    }
    let total_weight: f64 = weights
        .iter()
        .zip(requested)
        .filter(|(_, r)| **r > 0)
        .map(|(w, _)| *w)
        .sum();
    let quota: Vec<f64> = (0..Role::COUNT)
        .map(|i| {
            if requested[i] > 0 && total_weight > 0.0 {
                budget as f64 * weights[i] / total_weight
            } else {
                0.0
            }
        })
        .collect();
    let mut assigned: [usize; Role::COUNT] =
        std::array::from_fn(|i| (quota[i].floor() as usize).min(requested[i]));
    let mut left = budget - assigned.iter().sum::<usize>();
    while left > 0 {
        // Largest remainder first; ties go to the earlier role.
        let next = (0..Role::COUNT)
            .filter(|&i| assigned[i] < requested[i])
            .max_by(|&a, &b| {
                let (ra, rb) = (quota[a] - assigned[a] as f64, quota[b] - assigned[b] as f64);
                ra.partial_cmp(&rb)
                    .unwrap_or(std::cmp::Ordering::Equal)
                    .then(b.cmp(&a))
            });
        let Some(i) = next else { break };
        assigned[i] += 1;
        left -= 1;
    }
    let active = requested.iter().filter(|r| **r > 0).count();
    if budget >= active {
        // At least one thread each: take from the pool with the most.
        for i in 0..Role::COUNT {
            if requested[i] > 0 && assigned[i] == 0 {
                let donor = (0..Role::COUNT)
                    .max_by_key(|&j| (assigned[j], Role::COUNT - j))
                    .expect("five roles");
                if assigned[donor] > 1 {
                    assigned[donor] -= 1;
                    assigned[i] = 1;
                }
            }
        }
    }
    assigned
}

/// The outcome of sharing the budget: what each pool asked for and got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadPlan {
    /// The thread budget.
    pub budget: usize,
    /// Threads each pool asked for (0 for a pool that is off), by role index.
    pub requested: [usize; Role::COUNT],
    /// Threads each pool starts with, by role index; the sum is at most the
    /// budget. An active pool with 0 is a guest of the largest pool.
    pub assigned: [usize; Role::COUNT],
}

impl ThreadPlan {
    /// The threads of all pools together.
    pub fn total(&self) -> usize {
        self.assigned.iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    fn from(pairs: &[(&str, &str)]) -> Result<RuntimeConfig, ConfigError> {
        RuntimeConfig::for_cores(8).with_env(env(pairs))
    }

    #[test]
    fn default_sizes_follow_the_plan_at_48_cores() {
        let plan = RuntimeConfig::for_cores(48).thread_plan().unwrap();
        assert_eq!(plan.requested, [16, 4, 8, 12, 8]);
        assert_eq!(plan.assigned, [16, 4, 8, 12, 8]);
        assert_eq!(plan.total(), 48);
    }

    #[test]
    fn two_cores_never_oversubscribe_and_favour_ai_and_background() {
        let plan = RuntimeConfig::for_cores(2).thread_plan().unwrap();
        assert_eq!(plan.requested, [1, 1, 1, 1, 1]);
        assert_eq!(plan.assigned, [1, 0, 0, 1, 0]);
        assert_eq!(plan.total(), 2);
    }

    #[test]
    fn every_machine_size_stays_within_the_budget() {
        for cores in 1..=96 {
            let plan = RuntimeConfig::for_cores(cores).thread_plan().unwrap();
            assert!(plan.total() <= cores, "{cores} cores: {plan:?}");
            for i in 0..Role::COUNT {
                assert!(plan.assigned[i] <= plan.requested[i]);
                if cores >= Role::COUNT {
                    assert!(plan.assigned[i] >= 1, "{cores} cores: {plan:?}");
                }
            }
            assert!(
                plan.assigned[Role::Ai.index()] >= 1,
                "ai always gets a thread: {cores}"
            );
        }
    }

    #[test]
    fn an_explicit_budget_is_shared_by_weight() {
        let mut c = RuntimeConfig::for_cores(48);
        c.thread_budget = Some(12);
        let plan = c.thread_plan().unwrap();
        assert_eq!(plan.total(), 12);
        assert_eq!(plan.assigned, [4, 1, 2, 3, 2]);
    }

    #[test]
    fn boolean_variables_accept_the_documented_spellings() {
        for (text, value) in [
            ("true", true),
            ("FALSE", false),
            ("1", true),
            ("0", false),
            (" Yes ", true),
            ("no", false),
        ] {
            let c = from(&[("ENABLE_PARALLEL_AI", text)]).unwrap();
            assert_eq!(c.pool(Role::Ai).enabled, value, "{text}");
        }
        let c = from(&[
            ("ENABLE_PARALLEL_STATS", "no"),
            ("ENABLE_BACKGROUND_PROCESSING", "0"),
        ])
        .unwrap();
        assert!(!c.pool(Role::Stats).is_active());
        assert!(!c.pool(Role::Background).is_active());
        assert!(c.pool(Role::Ai).is_active());
    }

    #[test]
    fn a_bad_boolean_names_the_variable_and_the_value() {
        for bad in ["maybe", "", "on", "2", "truee"] {
            let e = from(&[("ENABLE_BACKGROUND_PROCESSING", bad)]).unwrap_err();
            assert_eq!(e.variable, "ENABLE_BACKGROUND_PROCESSING");
            assert_eq!(e.value, bad);
            assert!(
                e.to_string().contains("ENABLE_BACKGROUND_PROCESSING"),
                "{e}"
            );
        }
    }

    #[test]
    fn size_variables_set_each_pool_and_zero_turns_it_off() {
        let c = from(&[
            ("MAX_AI_THREADS", "3"),
            ("MAX_STATS_THREADS", "2"),
            ("CLLM_PHYSICS_THREADS", "0"),
            ("CLLM_BACKGROUND_THREADS", "1"),
            ("CLLM_EVALUATION_THREADS", " 1 "),
            ("CLLM_THREAD_BUDGET", "8"),
            ("CLLM_QUEUE_CAPACITY", "16"),
            ("CLLM_STUCK_TASK_MS", "250"),
        ])
        .unwrap();
        let plan = c.thread_plan().unwrap();
        assert_eq!(plan.assigned, [3, 0, 2, 1, 1]);
        assert!(!c.pool(Role::Physics).is_active());
        assert!(c.pools.iter().all(|p| p.queue_capacity == 16));
        assert!(
            c.pools
                .iter()
                .all(|p| p.stuck_after == Duration::from_millis(250))
        );
    }

    #[test]
    fn bad_numbers_name_the_variable_and_the_value() {
        let cases = [
            ("MAX_AI_THREADS", "-1"),
            ("MAX_STATS_THREADS", "many"),
            ("CLLM_PHYSICS_THREADS", "1.5"),
            ("CLLM_EVALUATION_THREADS", "99999999999999999999999"),
            ("CLLM_BACKGROUND_THREADS", "5000"),
            ("CLLM_THREAD_BUDGET", "0"),
            ("CLLM_QUEUE_CAPACITY", "0"),
            ("CLLM_STUCK_TASK_MS", ""),
        ];
        for (var, value) in cases {
            let e = from(&[(var, value)]).unwrap_err();
            assert_eq!((e.variable.as_str(), e.value.as_str()), (var, value), "{e}");
        }
    }

    #[test]
    fn unset_variables_keep_the_defaults() {
        assert_eq!(from(&[]).unwrap(), RuntimeConfig::for_cores(8));
    }

    #[test]
    fn roles_parse_and_print_by_name() {
        for role in Role::ALL {
            assert_eq!(role.name().parse::<Role>().unwrap(), role);
            assert_eq!(Role::from_index(role.index()), Some(role));
        }
        assert!("gpu".parse::<Role>().is_err());
        assert_eq!(Role::from_index(5), None);
    }
}
