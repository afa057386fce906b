//! What a thread learns from how its spins end (pure state, no clock, no
//! shared memory), so that its next spin fits the machine it runs on.
//!
//! Three ways to wait, one per situation:
//! - **Spin** (the cores are free): full speed for a while, then yield.
//! - **Yield** (the thread shares its CPU with a thread of its own process,
//!   typically the very thread it waits for, put there by the scheduler
//!   after a pause): no full-speed spin, which would only keep that thread
//!   off the CPU; yield at once, which hands the CPU over in a microsecond
//!   or two and keeps both threads runnable, so that the load balancer can
//!   still move one of them to an idle CPU (a parked one looks idle).
//! - **Park** (another program's busy thread shares the CPU): park at once,
//!   without even the free checks. A yield would give that thread a whole time slice
//!   (milliseconds) and so would spinning until preempted, while a thread
//!   that sleeps and is woken gets the CPU back at once (the scheduler
//!   favours it). A parking thread probes now and then (a full-speed spin of
//!   up to 50 us that never yields, judged by whether the thread was
//!   switched out); a failed probe doubles the time to the next one (from
//!   every 8th to every 256th wait). After 4096 waits (tens of
//!   milliseconds) it spins again anyway: what looked like another program
//!   may have been a pause of the virtual CPU, or a thread of ours that the
//!   scheduler packed onto this CPU because parked threads look idle, which
//!   probes cannot tell from a busy CPU and spinning lets the load balancer
//!   undo.
//!
//! Two endings in a row that argue for another way switch to it; four fast
//! successes in a row (the other side ran in parallel) switch back to Spin:
//! hysteresis, so that one preemption neither switches nor keeps a thread
//! switched for long.

/// How a spin ended, as evidence about the CPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Ready while checking at full speed or after yields that let nobody
    /// else run, and never off the CPU: the other side ran in parallel.
    Parallel,
    /// The CPU is shared with a thread that soon gives it back (a yield or
    /// a preemption of microseconds, or another spinner of the process found
    /// on the CPU): most likely a thread of ours.
    Own,
    /// The thread lost its CPU for long (a yield or a preemption past tens of
    /// microseconds): another program's busy thread shares it.
    Foreign,
    /// No evidence (timed out, or ready after a spin that says nothing).
    Unclear,
}

/// How the thread waits now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The cores are free: spin.
    Spin,
    /// The CPU is shared with a thread of ours: yield at once.
    Yield,
    /// Another program's busy thread shares the CPU: park.
    Park,
}

/// What the next spin does (Park: at once; the others after the free checks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Full speed for a while, then yielding, up to the budget.
    Full,
    /// Yield at once and between all checks, up to the budget.
    Yield,
    /// Park at once.
    Park,
    /// Full speed for up to 50 us, never yielding: does the other side
    /// run in parallel again?
    Probe,
}

/// Consecutive endings arguing for another mode that switch to it.
pub const SWITCH_AFTER: u8 = 2;
/// Consecutive `Parallel` endings that switch back to spinning.
pub const BACK_AFTER: u8 = 4;
/// A parking thread probes on every this many waits at first...
pub const PROBE_EVERY_MIN: u16 = 8;
/// ... and, after failed probes, at most this many.
pub const PROBE_EVERY_MAX: u16 = 256;
/// Waits after which a parking thread spins again whatever its probes say.
pub const PARK_SPAN: u16 = 4096;

/// A thread's spin history: its mode and the streak that may change it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpinHistory {
    mode: Mode,
    /// Consecutive endings that argue for leaving the mode.
    streak: u8,
    /// Among them, endings that say `Foreign`.
    foreign: u8,
    /// Waits since the last probe (parking threads only).
    since_probe: u16,
    /// Waits from one probe to the next.
    probe_every: u16,
    /// Waits in Park mode so far.
    parked: u16,
}

impl Default for SpinHistory {
    fn default() -> Self {
        Self::new()
    }
}

impl SpinHistory {
    /// A thread that has not spun yet spins.
    pub const fn new() -> Self {
        Self {
            mode: Mode::Spin,
            streak: 0,
            foreign: 0,
            since_probe: 0,
            probe_every: PROBE_EVERY_MIN,
            parked: 0,
        }
    }

    /// How the thread waits now.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The plan for the next spin that gets past its free checks; counts
    /// it towards the next probe.
    pub fn plan(&mut self) -> Plan {
        match self.mode {
            Mode::Spin => Plan::Full,
            Mode::Yield => Plan::Yield,
            Mode::Park => {
                self.parked += 1;
                if self.parked >= PARK_SPAN {
                    self.switch_to(Mode::Spin);
                    return Plan::Full;
                }
                self.since_probe += 1;
                if self.since_probe >= self.probe_every {
                    self.since_probe = 0;
                    Plan::Probe
                } else {
                    Plan::Park
                }
            }
        }
    }

    /// Learns from how a spin ended.
    pub fn record(&mut self, ending: Ending) {
        if ending == Ending::Unclear {
            // Neither counts nor breaks a streak (a timeout says nothing),
            // but in Park mode it is a failed probe.
            if self.mode == Mode::Park {
                self.probe_failed();
            }
            return;
        }
        let against = match self.mode {
            Mode::Spin => ending != Ending::Parallel,
            // A thread of ours on the CPU is what Yield is for; Foreign
            // (a slow yield) argues for parking, Parallel for spinning.
            Mode::Yield => ending != Ending::Own,
            Mode::Park => ending == Ending::Parallel,
        };
        if self.mode == Mode::Park {
            if against {
                self.probe_every = PROBE_EVERY_MIN;
            } else {
                self.probe_failed();
            }
        }
        if !against {
            self.streak = 0;
            self.foreign = 0;
            return;
        }
        // In Yield mode, Parallel and Foreign endings argue for different
        // modes: only a run of one kind switches.
        if self.mode == Mode::Yield
            && self.streak > 0
            && (self.foreign > 0) != (ending == Ending::Foreign)
        {
            self.streak = 0;
            self.foreign = 0;
        }
        self.streak += 1;
        self.foreign += u8::from(ending == Ending::Foreign);
        let needed = if ending == Ending::Parallel {
            BACK_AFTER
        } else {
            SWITCH_AFTER
        };
        if self.streak >= needed {
            self.switch_to(match ending {
                Ending::Parallel => Mode::Spin,
                _ if self.foreign > 0 => Mode::Park,
                _ => Mode::Yield,
            });
        }
    }

    fn switch_to(&mut self, mode: Mode) {
        *self = Self {
            mode,
            ..Self::new()
        };
    }

    fn probe_failed(&mut self) {
        self.probe_every = (self.probe_every * 2).min(PROBE_EVERY_MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Ending::*;

    fn after(endings: &[Ending]) -> SpinHistory {
        let mut h = SpinHistory::new();
        for &e in endings {
            h.record(e);
        }
        h
    }

    /// Waits (plans asked for) until the next probe, at most `limit`.
    fn waits_to_probe(h: &mut SpinHistory, limit: u16) -> Option<u16> {
        (1..=limit).find(|_| h.plan() == Plan::Probe)
    }

    #[test]
    fn a_new_thread_spins() {
        assert_eq!(SpinHistory::new().mode(), Mode::Spin);
        assert_eq!(SpinHistory::new().plan(), Plan::Full);
        assert_eq!(after(&[Parallel, Unclear, Parallel]).mode(), Mode::Spin);
    }

    #[test]
    fn one_sharing_ending_switches_nothing_two_in_a_row_do() {
        assert_eq!(after(&[Own]).mode(), Mode::Spin);
        assert_eq!(after(&[Foreign]).mode(), Mode::Spin);
        assert_eq!(after(&[Own, Parallel, Own]).mode(), Mode::Spin);
        assert_eq!(after(&[Own, Own]).mode(), Mode::Yield);
        assert_eq!(after(&[Own, Own]).clone().plan(), Plan::Yield);
        // Unclear endings (timeouts) neither count nor break the streak.
        assert_eq!(after(&[Own, Unclear, Own]).mode(), Mode::Yield);
    }

    #[test]
    fn a_foreign_thread_on_the_cpu_makes_the_thread_park() {
        assert_eq!(after(&[Foreign, Foreign]).mode(), Mode::Park);
        assert_eq!(after(&[Own, Foreign]).mode(), Mode::Park);
        // From Yield (a yield that gave a foreign thread its time slice).
        assert_eq!(after(&[Own, Own, Foreign, Foreign]).mode(), Mode::Park);
        assert_eq!(
            after(&[Own, Own, Foreign, Own, Foreign]).mode(),
            Mode::Yield
        );
    }

    #[test]
    fn yielding_goes_back_to_spinning_after_four_fast_successes() {
        let mut h = after(&[Own, Own]);
        for _ in 0..BACK_AFTER - 1 {
            h.record(Parallel);
            assert_eq!(h.mode(), Mode::Yield);
        }
        h.record(Parallel);
        assert_eq!(h.mode(), Mode::Spin);
        // A Foreign in the middle restarts the count (and is one of two).
        let mut h = after(&[Own, Own, Parallel, Parallel, Foreign]);
        for _ in 0..BACK_AFTER - 1 {
            h.record(Parallel);
        }
        assert_eq!(h.mode(), Mode::Yield);
        h.record(Parallel);
        assert_eq!(h.mode(), Mode::Spin);
    }

    #[test]
    fn a_parking_thread_probes_ever_more_rarely_while_probes_fail() {
        let mut h = after(&[Foreign, Foreign]);
        assert_eq!(waits_to_probe(&mut h, 1000), Some(PROBE_EVERY_MIN));
        let mut every = PROBE_EVERY_MIN;
        for ending in [Unclear, Foreign, Own, Unclear, Unclear, Unclear, Unclear] {
            h.record(ending); // the probe failed
            every = (every * 2).min(PROBE_EVERY_MAX);
            assert_eq!(waits_to_probe(&mut h, 1000), Some(every));
        }
        assert_eq!(every, PROBE_EVERY_MAX, "the interval is capped");
        h.record(Parallel); // the probe succeeded
        assert_eq!(waits_to_probe(&mut h, 1000), Some(PROBE_EVERY_MIN));
        assert_eq!(h.mode(), Mode::Park, "one success does not end parking");
    }

    #[test]
    fn four_good_probes_in_a_row_end_parking() {
        let mut h = after(&[Foreign, Foreign]);
        for _ in 0..BACK_AFTER - 1 {
            h.record(Parallel);
            assert_eq!(h.mode(), Mode::Park);
        }
        h.record(Parallel);
        assert_eq!(h.mode(), Mode::Spin);
        assert_eq!(h.plan(), Plan::Full);
        // A failed probe between good ones restarts the count.
        let mut h = after(&[Foreign, Foreign, Parallel, Parallel, Parallel, Foreign]);
        for _ in 0..BACK_AFTER - 1 {
            h.record(Parallel);
        }
        assert_eq!(h.mode(), Mode::Park);
        h.record(Parallel);
        assert_eq!(h.mode(), Mode::Spin);
    }

    #[test]
    fn spinning_and_yielding_threads_never_probe() {
        assert_eq!(waits_to_probe(&mut SpinHistory::new(), 1000), None);
        assert_eq!(waits_to_probe(&mut after(&[Own, Own]), 1000), None);
    }

    #[test]
    fn parking_ends_after_its_span_whatever_the_probes_say() {
        let mut h = after(&[Foreign, Foreign]);
        for wait in 1..PARK_SPAN {
            if h.plan() == Plan::Probe {
                h.record(Foreign);
            }
            assert_eq!(h.mode(), Mode::Park, "wait {wait}");
        }
        assert_eq!(h.plan(), Plan::Full);
        assert_eq!(h.mode(), Mode::Spin);
        // And one Foreign ending does not send it back at once.
        h.record(Foreign);
        assert_eq!(h.mode(), Mode::Spin);
    }

    #[test]
    fn timeouts_while_parking_do_not_end_it() {
        // A thread whose probes never see the other side answer in time
        // keeps parking.
        let mut h = after(&[Foreign, Foreign]);
        for _ in 0..PARK_SPAN - 1 {
            if h.plan() == Plan::Probe {
                h.record(Unclear);
            }
        }
        assert_eq!(h.mode(), Mode::Park);
    }
}
