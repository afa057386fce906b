//! One spinner per CPU: a spinning thread holds its CPU's seat, and a
//! thread that finds its CPU's seat taken parks instead of spinning.
//!
//! A seat taken by another thread means that thread is spinning but not
//! running (this one runs on the CPU): it was preempted, perhaps by this
//! very thread, and spinning here would keep it (or the thread it waits
//! for) off its CPU. Each CPU's seat is its own cache line, written only by
//! threads running on that CPU, so on a quiet machine taking a seat costs
//! no cross-core transfer (the single process-wide spinner count it
//! replaces moved between the cores on every spin).

use crossbeam_utils::CachePadded;
use std::sync::atomic::{AtomicU32, Ordering};

/// Seats, indexed by CPU number modulo their count (two CPUs sharing a
/// seat on a bigger machine only makes a spin park sooner).
const SEATS: usize = 64;

/// A table of seats: the process has one; tests make their own.
pub struct Seats([CachePadded<AtomicU32>; SEATS]);

/// The process's seats, shared by every pool of every crate.
static PROCESS: Seats = Seats::new();

impl Seats {
    const fn new() -> Self {
        Self([const { CachePadded::new(AtomicU32::new(0)) }; SEATS])
    }
}

/// The CPU the calling thread runs on (a vDSO read of a few ns), or `None`
/// where the system does not say.
pub fn current_cpu() -> Option<usize> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: sched_getcpu has no preconditions.
        let cpu = unsafe { libc::sched_getcpu() };
        usize::try_from(cpu).ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

/// A held seat, given back on drop.
pub struct Seat {
    seats: &'static Seats,
    index: Option<usize>,
}

impl Seat {
    /// Takes the seat of the calling thread's CPU; `None` if another thread
    /// holds it. Where the CPU is unknown, every spin gets a seat.
    pub fn take() -> Option<Seat> {
        Self::take_at(&PROCESS, current_cpu())
    }

    fn take_at(seats: &'static Seats, cpu: Option<usize>) -> Option<Seat> {
        let Some(cpu) = cpu else {
            return Some(Seat { seats, index: None });
        };
        let index = cpu % SEATS;
        let seat = &seats.0[index];
        // A plain load first: a taken seat is not written at all.
        if seat.load(Ordering::Relaxed) != 0 || seat.swap(1, Ordering::Relaxed) != 0 {
            return None;
        }
        Some(Seat {
            seats,
            index: Some(index),
        })
    }

    /// No seat: a spin that holds none.
    pub fn none() -> Seat {
        Seat {
            seats: &PROCESS,
            index: None,
        }
    }

    /// Follows the thread to the CPU it runs on now. `false` if it moved to
    /// a CPU whose seat is taken (the seat is then given back).
    pub fn follow(&mut self) -> bool {
        let Some(held) = self.index else { return true };
        let Some(cpu) = current_cpu() else {
            return true;
        };
        if cpu % SEATS == held {
            return true;
        }
        self.seats.0[held].store(0, Ordering::Relaxed);
        self.index = None;
        match Self::take_at(self.seats, Some(cpu)) {
            Some(seat) => {
                *self = seat;
                true
            }
            None => false,
        }
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        if let Some(index) = self.index {
            self.seats.0[index].store(0, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cpu_seats_one_spinner_at_a_time() {
        // A table of our own: the process's is shared with other tests.
        let seats: &'static Seats = Box::leak(Box::new(Seats::new()));
        let first = Seat::take_at(seats, Some(3)).expect("a free seat");
        assert!(
            Seat::take_at(seats, Some(3)).is_none(),
            "a second spinner on CPU 3"
        );
        assert!(Seat::take_at(seats, Some(SEATS + 3)).is_none(), "same seat");
        assert!(
            Seat::take_at(seats, Some(4)).is_some(),
            "another CPU's seat is free"
        );
        drop(first);
        assert!(
            Seat::take_at(seats, Some(3)).is_some(),
            "given back on drop"
        );
        // An unknown CPU never stops a spin.
        let _a = Seat::take_at(seats, None).unwrap();
        let _b = Seat::take_at(seats, None).unwrap();
    }
}
