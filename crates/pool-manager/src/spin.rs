//! Bounded spinning before parking, as in sphere-pool: a hand-off to a
//! spinning thread costs a cache-line transfer, one to a parked thread a
//! futex wake and a context switch. Spins are time-bounded, adapt to the idle
//! gaps a thread sees (long gaps halve the budget down to zero, so an idle
//! pool costs no CPU), and a process-wide gate admits at most one spinner per
//! CPU; when threads outnumber CPUs, spinners yield between checks.

use std::time::{Duration, Instant};

/// The number of CPUs this process may run on.
pub fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// How long a spin checks at full speed before it starts yielding.
#[cfg(not(loom))]
const PURE_SPIN: Duration = Duration::from_micros(10);

#[cfg(not(loom))]
mod gate {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicUsize, Ordering};

    static SPINNERS: AtomicUsize = AtomicUsize::new(0);

    /// A place among the process's spinners, left on drop.
    pub(super) struct SpinTicket;

    impl SpinTicket {
        pub(super) fn enter() -> Option<SpinTicket> {
            static LIMIT: OnceLock<usize> = OnceLock::new();
            let limit = *LIMIT.get_or_init(super::available_cores);
            if SPINNERS.fetch_add(1, Ordering::Relaxed) < limit {
                Some(SpinTicket)
            } else {
                SPINNERS.fetch_sub(1, Ordering::Relaxed);
                None
            }
        }
    }

    impl Drop for SpinTicket {
        fn drop(&mut self) {
            SPINNERS.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Spins until `ready()` is true or `budget` has passed; returns the last
/// value of `ready()`. Under loom it checks once, so that the model explores
/// the parking paths.
#[cfg(not(loom))]
pub(crate) fn spin_until(budget: Duration, mut ready: impl FnMut() -> bool) -> bool {
    if ready() {
        return true;
    }
    if budget.is_zero() {
        return false;
    }
    let Some(_ticket) = gate::SpinTicket::enter() else {
        return false;
    };
    let backoff = crossbeam_utils::Backoff::new();
    let start = Instant::now();
    let mut pure = true;
    loop {
        for _ in 0..32 {
            if ready() {
                return true;
            }
            if pure {
                std::hint::spin_loop();
            } else {
                // Yields the CPU more and more, so that an oversubscribed
                // machine runs the thread with real work.
                backoff.snooze();
            }
        }
        let spun = start.elapsed();
        if spun >= budget {
            return ready();
        }
        // A hand-off usually comes within microseconds: check at full
        // speed for the first part of the budget, then back off.
        pure = spun < PURE_SPIN;
    }
}

#[cfg(loom)]
pub(crate) fn spin_until(_budget: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let _ = Instant::now();
    ready()
}

/// A thread's spin budget, adapted to the idle gaps it sees.
#[derive(Debug, Clone)]
pub(crate) struct AdaptiveSpin {
    max: Duration,
    /// Consecutive idle gaps longer than the full budget.
    long_gaps: u32,
}

impl AdaptiveSpin {
    pub(crate) fn new(max: Duration) -> Self {
        Self { max, long_gaps: 0 }
    }

    /// The budget for the next spin: the maximum halved once per long gap.
    pub(crate) fn budget(&self) -> Duration {
        self.max
            .checked_div(1 << self.long_gaps.min(31))
            .unwrap_or_default()
    }

    /// Records how long the thread waited for its last piece of work.
    pub(crate) fn record_gap(&mut self, gap: Duration) {
        if gap <= self.max {
            self.long_gaps = 0;
        } else if self.budget() >= Duration::from_micros(1) {
            self.long_gaps += 1;
        } else {
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
        let mut spin = AdaptiveSpin::new(max);
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
    fn spin_until_gives_up_at_its_budget() {
        let start = Instant::now();
        assert!(!spin_until(Duration::from_millis(2), || false));
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(2) && took < Duration::from_millis(500),
            "{took:?}"
        );
        assert!(spin_until(Duration::ZERO, || true));
    }
}
