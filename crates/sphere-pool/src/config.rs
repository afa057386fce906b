//! [`PoolConfig`]: how big a pool is, where its spheres run, how long they
//! spin; and how "auto" sizes are resolved.

use crate::env::{check_cpus_available, env_cpus, env_num_threads};
use crate::error::Error;
use crate::limits::{MAX_SPHERES, MAX_THREADS};
use std::time::Duration;
use thread_support::available_cores;

/// The default number of spheres when nothing is set: one per CPU minus one
/// for the calling thread (which takes a share of fork-join work), and at
/// least one.
pub fn default_spheres() -> usize {
    available_cores().saturating_sub(1).max(1)
}

/// The spheres of a pool created with "auto": `CLLM_NUM_THREADS` minus the
/// caller if the variable is set (0 for `CLLM_NUM_THREADS=1`: no sphere),
/// else [`default_spheres`]. A bad value is an error naming the variable.
pub fn auto_spheres() -> Result<usize, Error> {
    Ok(env_num_threads()?.map_or_else(default_spheres, |threads| threads - 1))
}

/// Turns a C-style sphere request into a sphere count for APIs that need at
/// least one sphere (the loader, the drop-in): `<= 0` means "auto"
/// ([`auto_spheres`], at least one); above [`MAX_SPHERES`] is an error.
pub fn resolve_spheres(requested: i64) -> Result<usize, Error> {
    if requested <= 0 {
        Ok(auto_spheres()?.max(1))
    } else if requested as u64 > MAX_SPHERES as u64 {
        Err(Error::InvalidArgument(format!(
            "{requested} spheres requested; the limit is {MAX_SPHERES}"
        )))
    } else {
        Ok(requested as usize)
    }
}

/// How to build a [`SpherePool`](crate::SpherePool).
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Number of spheres; 0 means "auto": `threads - 1` if `threads` is
    /// set, else [`auto_spheres`] (`CLLM_NUM_THREADS`, else one per CPU).
    pub spheres: usize,
    /// Threads of the pool, the calling thread included (`OMP_NUM_THREADS`'s
    /// meaning), used when `spheres` is 0: 1 makes a pool without spheres
    /// that runs everything serially on the caller; 0: "auto".
    pub threads: usize,
    /// Pin sphere `i` to CPU `(i + 1) % cpus` (the caller keeps CPU 0).
    /// Unpinned (and without `cpus`), a pool with more participants than
    /// CPUs moves its own spheres now and then to keep them spread
    /// (`thread_support::placement`).
    pub pin: bool,
    /// CPUs to pin the spheres to (sphere `i` on `cpus[(i + 1) % len]`);
    /// `None`: `CLLM_CPUS` if set, else as `pin` says. Every CPU must be one
    /// the process may run on.
    pub cpus: Option<Vec<usize>>,
    /// The longest a sphere or a waiter spins before parking (0: never
    /// spin). The default, 200 us, is long enough that a thread the system
    /// descheduled for a moment does not make the other one sleep (waking a
    /// sleeping thread, on a virtual machine especially, costs tens of
    /// microseconds), and short enough that an idle pool costs nothing
    /// measurable; spins past 10 us yield the CPU between checks.
    pub max_spin: Duration,
    /// Thread names are `<prefix>-<index>` (Linux shows 15 bytes).
    pub name_prefix: String,
    /// Stack size of each sphere thread; `None` for the platform default.
    pub stack_size: Option<usize>,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            spheres: 0,
            threads: 0,
            pin: false,
            cpus: None,
            max_spin: Duration::from_micros(200),
            name_prefix: "cllm-sphere".to_owned(),
            stack_size: None,
        }
    }
}

impl PoolConfig {
    /// Resolves "auto" (sphere count, CPU list) from the thread count and
    /// the environment, and checks the limits.
    pub(crate) fn resolve(mut self) -> Result<Self, Error> {
        if self.spheres == 0 {
            self.spheres = match self.threads {
                0 => auto_spheres()?,
                t if t > MAX_THREADS => {
                    return Err(Error::InvalidArgument(format!(
                        "{t} threads requested; the limit is {MAX_THREADS} (the calling thread included)"
                    )));
                }
                t => t - 1,
            };
        }
        if self.spheres > MAX_SPHERES {
            return Err(Error::InvalidArgument(format!(
                "{} spheres requested; the limit is {MAX_SPHERES}",
                self.spheres
            )));
        }
        self.threads = self.spheres + 1;
        match &self.cpus {
            Some(cpus) => check_cpus_available(cpus, "cpus (the CPU list of the pool)")?,
            None => self.cpus = env_cpus()?,
        }
        Ok(self)
    }
}
