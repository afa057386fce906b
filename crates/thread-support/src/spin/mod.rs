//! Bounded spinning before parking.
//!
//! A hand-off to a thread that is spinning costs a cache-line transfer (about
//! 100 ns); one to a parked thread costs a futex wake and a context switch
//! (microseconds; tens of them when the wake has to bring a halted virtual
//! CPU back). So waiting threads spin for a short, time-bounded budget
//! first, unless spinning cannot help:
//! - **Time bound**: a spin never lasts longer than its budget (default 200 us, see
//!   `PoolConfig::max_spin`).
//! - **Adaptive budget**: a sphere whose idle gaps keep exceeding the budget
//!   halves it after each such gap, down to zero (it then parks at once); one
//!   short gap restores the full budget. An idle pool costs no CPU.
//! - **One spinner per CPU** ([`seat`]): a thread that finds another thread
//!   of the process spinning on its CPU (preempted, so waiting for this
//!   CPU) parks at once instead of keeping that thread off the CPU. Each
//!   CPU's seat is its own cache line (the single process-wide spinner count
//!   it replaces moved between the cores on every spin).
//! - **Learn from how spins end** ([`policy`], per thread, no shared
//!   memory): time off the CPU during a spin (seen between clock reads and
//!   across yields) says who shares the CPU. Briefly, a thread of ours:
//!   the thread then yields at once instead of spinning (Yield mode). For
//!   long, another program's busy thread: it parks at once, without free checks
//!   (Park mode; a yield would give that thread a whole time slice, and a
//!   woken thread gets the CPU back sooner than a preempted one). Four fast
//!   successes in a row bring back full spins. While some CPU the process
//!   may use is idle ([`idle`]: `/proc/stat` at most every 50 ms for the whole
//!   process, within the affinity mask and a cgroup CPU quota), a thread
//!   keeps spinning whatever it sees: threads that yield or park look light
//!   and the scheduler keeps them on one CPU, spinning ones get spread.
//! - **Yield when it may help**: a full spin checks at full speed for its
//!   first 10 us (a hand-off usually comes within microseconds), then yields
//!   the CPU between checks, so that a thread of ours that shares the CPU
//!   runs; a yield that takes long ends the spin. A pool with more
//!   participants than CPUs yields from the start.
//! - **Told where the other side runs** ([`spin_until_near`], optional): a
//!   caller that knows the other side's CPU skips the full-speed spin when
//!   it is this thread's own.

#[cfg(not(loom))]
pub mod idle;
pub mod policy;
#[cfg(not(loom))]
pub mod seat;

#[cfg(not(loom))]
pub use seat::current_cpu;

/// Under loom: no CPU (the model has none).
#[cfg(loom)]
pub fn current_cpu() -> Option<usize> {
    None
}

use std::time::Duration;
#[cfg(not(loom))]
use {
    idle::IdleWatch,
    policy::{Ending, Mode, Plan, SpinHistory},
    seat::Seat,
    std::cell::Cell,
    std::cell::RefCell,
    std::time::Instant,
};

/// Checks of the condition between two reads of the clock.
#[cfg(not(loom))]
const CHECKS_PER_CLOCK_READ: u32 = 32;

/// Checks before a spin reads the clock or takes a seat (about 0.6 us).
#[cfg(not(loom))]
const FREE_CHECKS: u32 = 64;

/// How long a full spin checks at full speed before it starts yielding.
#[cfg(not(loom))]
const PURE_SPIN: Duration = Duration::from_micros(10);

/// Between two clock reads (32 checks, about 0.3 us), or across a yield
/// (about 0.2 us when nobody else is runnable), a longer time means another
/// thread ran on this CPU meanwhile (interrupts take less).
#[cfg(not(loom))]
const OFF_CPU: Duration = Duration::from_micros(3);

/// How long a probe of a parking thread spins at most: enough for a parked
/// other side to be woken and answer (tens of microseconds when its
/// virtual CPU was halted), short enough that a failed probe costs little.
#[cfg(not(loom))]
const PROBE_SPIN: Duration = Duration::from_micros(50);

/// A yield that lets nobody run takes about 0.2 us here; one that lets
/// another thread run takes two context switches and that thread's turn,
/// a microsecond or more.
#[cfg(not(loom))]
const YIELD_RAN: Duration = Duration::from_micros(1);

/// Off the CPU for longer than this, the thread lost it to a thread that
/// did not give it back soon: another program's busy thread, whose time
/// slice (milliseconds) a further yield would give away again.
#[cfg(not(loom))]
const OFF_CPU_LONG: Duration = Duration::from_micros(50);

#[cfg(not(loom))]
thread_local! {
    /// What this thread learnt from its spins.
    static HISTORY: Cell<SpinHistory> = const { Cell::new(SpinHistory::new()) };
    /// Whether some CPU of the process is idle, as this thread last saw.
    static IDLE: RefCell<IdleWatch> = const { RefCell::new(IdleWatch::new()) };
}

/// True if some CPU is mostly idle (sampled at most every 50 ms).
#[cfg(not(loom))]
fn some_cpu_idle() -> bool {
    IDLE.with(|w| w.borrow_mut().some_cpu_idle(Instant::now()))
}

/// Spins until `ready()` is true or `budget` has passed; returns the last
/// value of `ready()`. `yielding` threads (oversubscribed pools) yield the
/// CPU between checks from the start. Under loom it checks once and never
/// spins, so that the model explores the parking paths.
#[cfg(not(loom))]
pub fn spin_until(budget: Duration, yielding: bool, ready: impl FnMut() -> bool) -> bool {
    spin(budget, yielding, false, ready)
}

/// As [`spin_until`], told the CPU the other side last ran on (as it
/// published it from [`current_cpu`]; `None`: unknown). When that is this
/// thread's CPU, a full-speed spin cannot help (the other side cannot run
/// while this thread spins): the spin yields from the start, as a thread
/// that learnt to yield does, unless it has learnt to park.
#[cfg(not(loom))]
pub fn spin_until_near(
    other_cpu: Option<usize>,
    budget: Duration,
    yielding: bool,
    ready: impl FnMut() -> bool,
) -> bool {
    let beside = other_cpu.is_some() && other_cpu == current_cpu();
    spin(budget, yielding, beside, ready)
}

/// The plan for a spin: the history's, unless the other side is known to
/// share this thread's CPU (`beside`).
#[cfg(not(loom))]
fn plan_for(learnt: Plan, beside: bool) -> Plan {
    match learnt {
        Plan::Full | Plan::Probe if beside => Plan::Yield,
        plan => plan,
    }
}

#[cfg(not(loom))]
fn spin(budget: Duration, yielding: bool, beside: bool, mut ready: impl FnMut() -> bool) -> bool {
    if ready() {
        return true;
    }
    if budget.is_zero() {
        return false;
    }
    let plan = HISTORY.with(|h| {
        let mut history = h.get();
        // A thread that yields or parks while a CPU is idle spins again,
        // so that the load balancer can give it that CPU.
        if history.mode() != Mode::Spin && some_cpu_idle() {
            history = SpinHistory::new();
        }
        let plan = history.plan();
        h.set(history);
        plan_for(plan, beside)
    });
    if plan == Plan::Park {
        // Not even the free checks: beside a busy thread they only delay it.
        return false;
    }
    // Most hand-offs arrive within a microsecond: check that briefly
    // without touching the clock or a seat (pointless beside the other side).
    if !yielding && !beside {
        for _ in 0..FREE_CHECKS {
            std::hint::spin_loop();
            if ready() {
                learn(Ending::Parallel);
                return true;
            }
        }
    }
    let (done, ending) = match plan {
        Plan::Yield => yield_spin(budget, &mut ready),
        // Oversubscribed pools yield from the start, and need no seat: a
        // yielding spinner does not keep another off the CPU.
        Plan::Full if yielding => yield_spin(budget, &mut ready),
        // A full spin or a probe (Park returned above).
        _ => match Seat::take() {
            // Another spinner of ours on this CPU, preempted (this thread
            // runs): it needs the CPU more than this spin does, unless a CPU
            // is idle (both spinning is how the scheduler spreads them).
            None if some_cpu_idle() => {
                seated_spin(&mut Seat::none(), budget, plan == Plan::Probe, &mut ready)
            }
            None => (false, Ending::Own),
            Some(mut seat) => seated_spin(&mut seat, budget, plan == Plan::Probe, &mut ready),
        },
    };
    // In an oversubscribed pool a yield may hand the CPU to one of our own
    // threads for long (a share of real work): not a sign of a foreign one.
    let ending = match ending {
        Ending::Foreign if yielding => Ending::Own,
        e => e,
    };
    learn(ending);
    done
}

#[cfg(not(loom))]
fn learn(mut ending: Ending) {
    HISTORY.with(|h| {
        let mut history = h.get();
        // Sharing a CPU while another is idle is the scheduler's to undo,
        // and spinning is what makes it (see `idle`).
        if history.mode() == Mode::Spin
            && matches!(ending, Ending::Own | Ending::Foreign)
            && some_cpu_idle()
        {
            ending = Ending::Unclear;
        }
        history.record(ending);
        h.set(history);
    });
}

/// What time off the CPU says: `gap` between two checks, of which more
/// than `short` means another thread ran.
#[cfg(not(loom))]
fn off_cpu(gap: Duration, short: Duration) -> Option<Ending> {
    if gap > OFF_CPU_LONG {
        Some(Ending::Foreign)
    } else if gap > short {
        Some(Ending::Own)
    } else {
        None
    }
}

/// Yields between checks from the start (Yield mode): hands the CPU to a
/// thread of ours that shares it; ends early if a yield gave the CPU away
/// for long.
#[cfg(not(loom))]
fn yield_spin(budget: Duration, ready: &mut impl FnMut() -> bool) -> (bool, Ending) {
    let start = Instant::now();
    let mut last = start;
    let mut shared = false;
    loop {
        std::thread::yield_now();
        let now = Instant::now();
        match off_cpu(now - last, YIELD_RAN) {
            Some(Ending::Foreign) => return (ready(), Ending::Foreign),
            Some(_) => shared = true,
            None => {}
        }
        last = now;
        if ready() {
            // Yields that let nobody run: the other side ran elsewhere.
            let ending = if shared {
                Ending::Own
            } else {
                Ending::Parallel
            };
            return (true, ending);
        }
        if now - start >= budget {
            return (false, Ending::Unclear);
        }
    }
}

/// A full spin or a probe, on this CPU's seat: full speed, watching for
/// time off the CPU, then (full spins only) yielding.
#[cfg(not(loom))]
fn seated_spin(
    seat: &mut Seat,
    budget: Duration,
    probe: bool,
    ready: &mut impl FnMut() -> bool,
) -> (bool, Ending) {
    // A probe's verdict decides for many waits: it also asks the kernel
    // whether the thread was switched out.
    let switches = if probe { context_switches() } else { None };
    let (budget, pure) = if probe {
        (budget.min(PROBE_SPIN), budget.min(PROBE_SPIN))
    } else {
        (budget, budget.min(PURE_SPIN))
    };
    let start = Instant::now();
    let mut last = start;
    let mut seen: Option<Ending> = None;
    // Full speed.
    while last - start < pure {
        for _ in 0..CHECKS_PER_CLOCK_READ {
            if ready() {
                let ending = match seen {
                    Some(e) => e,
                    None if switches.is_some() && context_switches() != switches => Ending::Own,
                    None => Ending::Parallel,
                };
                return (true, ending);
            }
            std::hint::spin_loop();
        }
        let now = Instant::now();
        if let Some(e) = off_cpu(now - last, OFF_CPU) {
            if e == Ending::Foreign || probe {
                return (ready(), e);
            }
            seen = Some(e);
        }
        last = now;
        if !seat.follow() {
            // Moved to a CPU where another spinner of ours waits.
            return (ready(), Ending::Own);
        }
    }
    if last - start >= budget {
        return (ready(), seen.unwrap_or(Ending::Unclear));
    }
    // Yielding.
    loop {
        std::thread::yield_now();
        let now = Instant::now();
        match off_cpu(now - last, YIELD_RAN) {
            Some(Ending::Foreign) => return (ready(), Ending::Foreign),
            Some(e) => seen = Some(e),
            None => {}
        }
        last = now;
        if ready() {
            return (true, seen.unwrap_or(Ending::Unclear));
        }
        if now - start >= budget {
            return (false, seen.unwrap_or(Ending::Unclear));
        }
    }
}

/// The number of times the calling thread has been switched out, voluntarily
/// or not (`getrusage`, about 0.15 us), where the system says.
#[cfg(not(loom))]
fn context_switches() -> Option<libc::c_long> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: rusage is plain integers, for which all zeroes is valid.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: getrusage writes the struct it is given, nothing else.
        let ok = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) } == 0;
        ok.then(|| usage.ru_nvcsw + usage.ru_nivcsw)
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

/// Under loom: checks `ready()` once and never spins, so that the model
/// explores the parking paths.
#[cfg(loom)]
pub fn spin_until(_budget: Duration, _yielding: bool, mut ready: impl FnMut() -> bool) -> bool {
    ready()
}

/// Under loom: as [`spin_until`].
#[cfg(loom)]
pub fn spin_until_near(
    _other_cpu: Option<usize>,
    _budget: Duration,
    _yielding: bool,
    mut ready: impl FnMut() -> bool,
) -> bool {
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
    fn a_spin_that_keeps_its_cpu_lasts_its_budget_and_none_lasts_much_longer() {
        let _alone = SEAT_TESTS.lock();
        // A spin may end early only for a reason: the thread lost its CPU,
        // found its CPU's seat taken (the seat test takes turns with this
        // one) or learnt to park (a fresh thread has not: each try runs on a
        // new thread).
        // A virtual CPU paused by its host also loses time without a switch
        // the thread can see: so at least half of the tries that kept their
        // CPU must have lasted the budget.
        let (mut kept, mut lasted) = (0, 0);
        for _ in 0..20 {
            let (took, switched) = std::thread::spawn(|| {
                let before = context_switches();
                let start = Instant::now();
                assert!(!spin_until(Duration::from_millis(2), false, || false));
                (start.elapsed(), context_switches() != before)
            })
            .join()
            .unwrap();
            assert!(took < Duration::from_millis(500), "spun {took:?}");
            if !switched && cfg!(target_os = "linux") {
                kept += 1;
                lasted += usize::from(took >= Duration::from_millis(2));
            }
        }
        assert!(
            lasted * 2 >= kept,
            "{lasted} of {kept} spins lasted their budget"
        );
    }

    /// Tests whose spins must not meet on a seat take turns.
    static SEAT_TESTS: parking_lot::Mutex<()> = parking_lot::Mutex::new(());

    /// Runs `f` on a new thread (a fresh spin history) pinned to the CPU it
    /// starts on, so that it keeps its CPU's seat.
    fn on_pinned_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        std::thread::spawn(move || {
            let cpu = seat::current_cpu().expect("sched_getcpu");
            assert!(crate::CpuMask::of([cpu]).apply_to(0), "sched_setaffinity");
            f()
        })
        .join()
        .unwrap()
    }

    /// This CPU's seat, waiting for a spin of another test to leave it.
    #[cfg(target_os = "linux")]
    fn take_this_cpus_seat() -> Seat {
        (0..1000)
            .find_map(|_| {
                Seat::take().or_else(|| {
                    std::thread::sleep(Duration::from_millis(1));
                    None
                })
            })
            .expect("the seat of this CPU")
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn a_spin_parks_at_once_when_its_cpus_seat_is_taken() {
        let _alone = SEAT_TESTS.lock();
        let checks = on_pinned_thread(|| {
            // Another spinner of ours on this CPU (standing in: this thread).
            let _seat = take_this_cpus_seat();
            let mut checks = 0;
            assert!(!spin_until(Duration::from_millis(50), false, || {
                checks += 1;
                false
            }));
            checks
        });
        // The first check, the free checks, and no more.
        assert_eq!(checks, 1 + FREE_CHECKS);
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn with_a_cpu_idle_a_spin_beside_another_spinner_spins_on() {
        let _alone = SEAT_TESTS.lock();
        let checks = on_pinned_thread(|| {
            IDLE.with(|w| *w.borrow_mut() = IdleWatch::seen(true));
            let _seat = take_this_cpus_seat();
            let mut checks = 0;
            spin_until(Duration::from_millis(1), false, || {
                checks += 1;
                false
            });
            checks
        });
        assert!(checks > 1 + FREE_CHECKS, "{checks} checks");
    }

    #[test]
    fn a_thread_that_learnt_to_park_parks_at_once() {
        let checks = std::thread::spawn(|| {
            // (A fresh thread has no verdict on idle CPUs yet.)
            learn(Ending::Foreign);
            learn(Ending::Foreign);
            let mut checks = 0;
            assert!(!spin_until(Duration::from_millis(50), false, || {
                checks += 1;
                false
            }));
            checks
        })
        .join()
        .unwrap();
        // The first check, and no more.
        assert_eq!(checks, 1);
    }

    #[test]
    fn beside_the_other_side_a_spin_yields_unless_it_learnt_to_park() {
        assert_eq!(plan_for(Plan::Full, true), Plan::Yield);
        assert_eq!(plan_for(Plan::Probe, true), Plan::Yield);
        assert_eq!(plan_for(Plan::Yield, true), Plan::Yield);
        assert_eq!(plan_for(Plan::Park, true), Plan::Park);
        for plan in [Plan::Full, Plan::Probe, Plan::Yield, Plan::Park] {
            assert_eq!(plan_for(plan, false), plan);
        }
    }

    /// Checks made by a 1 ms spin of a new thread that first sees the
    /// verdict `idle_while_learning`, learns two Foreign endings, then sees
    /// `idle_when_spinning`.
    fn checks_after_foreign(idle_while_learning: bool, idle_when_spinning: bool) -> u32 {
        std::thread::spawn(move || {
            IDLE.with(|w| *w.borrow_mut() = IdleWatch::seen(idle_while_learning));
            learn(Ending::Foreign);
            learn(Ending::Foreign);
            IDLE.with(|w| *w.borrow_mut() = IdleWatch::seen(idle_when_spinning));
            let mut checks = 0;
            spin_until(Duration::from_millis(1), false, || {
                checks += 1;
                false
            });
            checks
        })
        .join()
        .unwrap()
    }

    #[test]
    fn while_a_cpu_is_idle_a_thread_spins_whatever_it_sees_or_learnt() {
        let _alone = SEAT_TESTS.lock();
        // Parks at once when every CPU is busy...
        assert_eq!(checks_after_foreign(false, false), 1);
        // ... but not when a CPU was idle as it learnt, nor once one is.
        assert!(checks_after_foreign(true, false) > 1 + FREE_CHECKS);
        assert!(checks_after_foreign(false, true) > 1 + FREE_CHECKS);
    }

    #[test]
    fn time_off_the_cpu_says_who_ran() {
        let us = Duration::from_micros;
        // A yield that took 2 us let another thread run (a yield alone takes
        // about 0.2 us); 2 us between clock reads may be an interrupt.
        assert_eq!(off_cpu(us(2), YIELD_RAN), Some(Ending::Own));
        assert_eq!(off_cpu(us(2), OFF_CPU), None);
        assert_eq!(off_cpu(Duration::from_nanos(300), YIELD_RAN), None);
        assert_eq!(off_cpu(us(20), OFF_CPU), Some(Ending::Own));
        assert_eq!(off_cpu(us(60), YIELD_RAN), Some(Ending::Foreign));
        assert_eq!(off_cpu(us(60), OFF_CPU), Some(Ending::Foreign));
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
