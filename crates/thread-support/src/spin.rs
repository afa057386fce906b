//! Bounded spinning before parking.
//!
//! A hand-off to a thread that is spinning costs a cache-line transfer (about
//! 100 ns); one to a parked thread costs a futex wake and a context switch
//! (microseconds). So waiting threads spin for a short, time-bounded budget
//! first. Four rules keep spinning from hurting:
//! - **Time bound**: a spin never lasts longer than its budget (default 200 us, see
//!   `PoolConfig::max_spin`).
//! - **Adaptive budget**: a sphere whose idle gaps keep exceeding the budget
//!   halves it after each such gap, down to zero (it then parks at once); one
//!   short gap restores the full budget. An idle pool costs no CPU.
//! - **Never more spinners than cores**: a process-wide gate (shared by every
//!   pool of every crate of the process) admits at most as many spinning
//!   threads as there are CPUs; the others park at once.
//! - **Yield when it may help**: a spin checks at full speed for its first
//!   10 us (a hand-off usually comes within microseconds), then yields the
//!   CPU between checks, so that on a loaded machine the runnable thread with
//!   real work gets it; a pool with more participants than CPUs yields from
//!   the start.

#[cfg(not(loom))]
use crate::cpu::available_cores;
#[cfg(not(loom))]
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
#[cfg(not(loom))]
use std::time::Instant;

/// Checks of the condition between two reads of the clock.
#[cfg(not(loom))]
const CHECKS_PER_CLOCK_READ: u32 = 32;

/// Checks before a spin takes a place at the gate and reads the clock (a
/// few hundred nanoseconds).
#[cfg(not(loom))]
const FREE_CHECKS: u32 = 64;

/// How long a spin checks at full speed before it starts yielding.
#[cfg(not(loom))]
const PURE_SPIN: Duration = Duration::from_micros(10);

/// The process-wide count of spinning threads.
#[cfg(not(loom))]
static SPINNERS: AtomicUsize = AtomicUsize::new(0);

/// A place among the spinners; leaving it on drop.
#[cfg(not(loom))]
struct SpinTicket;

#[cfg(not(loom))]
impl SpinTicket {
    fn enter() -> Option<SpinTicket> {
        let limit = available_cores();
        let before = SPINNERS.fetch_add(1, Ordering::Relaxed);
        if before < limit {
            Some(SpinTicket)
        } else {
            SPINNERS.fetch_sub(1, Ordering::Relaxed);
            None
        }
    }
}

#[cfg(not(loom))]
impl Drop for SpinTicket {
    fn drop(&mut self) {
        SPINNERS.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Spins until `ready()` is true or `budget` has passed; returns the last
/// value of `ready()`. `yielding` threads (oversubscribed pools) yield the
/// CPU between checks from the start. Under loom it checks once and never
/// spins, so that the model explores the parking paths.
#[cfg(not(loom))]
pub fn spin_until(budget: Duration, yielding: bool, mut ready: impl FnMut() -> bool) -> bool {
    if ready() {
        return true;
    }
    if budget.is_zero() {
        return false;
    }
    // Most hand-offs arrive within a microsecond: check that briefly
    // without touching the shared gate or the clock (both would cost a
    // cross-core cache-line transfer or a clock read on the hot path).
    if !yielding {
        for _ in 0..FREE_CHECKS {
            std::hint::spin_loop();
            if ready() {
                return true;
            }
        }
    }
    let Some(_ticket) = SpinTicket::enter() else {
        return false;
    };
    let backoff = crossbeam_utils::Backoff::new();
    let start = Instant::now();
    let mut pure = !yielding;
    loop {
        for _ in 0..CHECKS_PER_CLOCK_READ {
            if ready() {
                return true;
            }
            if pure {
                std::hint::spin_loop();
            } else {
                // Spins briefly at first, then yields the CPU on every call.
                backoff.snooze();
            }
        }
        let spun = start.elapsed();
        if spun >= budget {
            return ready();
        }
        pure = !yielding && spun < PURE_SPIN;
    }
}

/// Under loom: checks `ready()` once and never spins, so that the model
/// explores the parking paths.
#[cfg(loom)]
pub fn spin_until(_budget: Duration, _yielding: bool, mut ready: impl FnMut() -> bool) -> bool {
    ready()
}

/// A thread's spin budget, adapted to the idle gaps it sees.
#[derive(Debug, Clone)]
pub struct AdaptiveSpin {
    max: Duration,
    /// Consecutive idle gaps longer than the full budget.
    long_gaps: u32,
    yielding: bool,
}

impl AdaptiveSpin {
    /// A budget of at most `max`; `yielding` threads yield between checks.
    pub fn new(max: Duration, yielding: bool) -> Self {
        Self {
            max,
            long_gaps: 0,
            yielding,
        }
    }

    /// The budget for the next spin: the maximum halved once per long gap.
    pub fn budget(&self) -> Duration {
        self.max
            .checked_div(1 << self.long_gaps.min(31))
            .unwrap_or_default()
    }

    /// True if spins yield the CPU between checks (oversubscribed pool).
    pub fn yielding(&self) -> bool {
        self.yielding
    }

    /// Records how long the thread waited for its last piece of work.
    pub fn record_gap(&mut self, gap: Duration) {
        if gap <= self.max {
            self.long_gaps = 0;
        } else if self.budget() >= Duration::from_micros(1) {
            self.long_gaps += 1;
        } else {
            // Below a microsecond a spin is pointless: park at once.
            self.long_gaps = 31;
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn long_gaps_shrink_the_budget_to_zero_and_a_short_gap_restores_it() {
        let max = Duration::from_micros(64);
        let mut spin = AdaptiveSpin::new(max, false);
        assert_eq!(spin.budget(), max);
        spin.record_gap(Duration::from_millis(5));
        assert_eq!(spin.budget(), max / 2);
        for _ in 0..10 {
            spin.record_gap(Duration::from_millis(5));
        }
        assert_eq!(spin.budget(), Duration::ZERO);
        spin.record_gap(Duration::from_micros(10));
        assert_eq!(spin.budget(), max);
    }

    #[test]
    fn spin_until_returns_at_the_deadline_when_never_ready() {
        // Tests run in parallel: when others hold every place at the
        // process-wide gate, a spin gives up at once (by design), so try a
        // few times; a spin that is admitted must last its whole budget and
        // no spin may last much longer.
        let mut admitted = false;
        for _ in 0..50 {
            let start = Instant::now();
            assert!(!spin_until(Duration::from_millis(2), false, || false));
            let took = start.elapsed();
            assert!(took < Duration::from_millis(500), "spun {took:?}");
            if took >= Duration::from_millis(2) {
                admitted = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(admitted, "no spin lasted its budget");
    }

    #[test]
    fn zero_budget_checks_once_without_spinning() {
        let mut calls = 0;
        assert!(!spin_until(Duration::ZERO, false, || {
            calls += 1;
            false
        }));
        assert_eq!(calls, 1);
    }
}
