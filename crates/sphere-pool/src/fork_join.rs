//! What a fork-join share runs with: the [`Participant`] context, the
//! [`RoundTask`] that `run_all` and `parallel_for` store on the pool's go
//! line (`round_lines.rs`), and a nested round run inline ([`run_alone`]).
//!
//! The barrier is not in the caller's frame but in the pool (re-armed after
//! a round that used it): the share whose departure lets the caller return
//! may still be inside `leave`, waking waiters through the barrier's mutex
//! and condition variable. On a barrier in the caller's frame that was a use
//! after free (seen under ASan in the C stress test); on the pool's it is a
//! harmless wake-up of a live barrier.

use crate::barrier::{BarrierBroken, SphereBarrier};
use crate::error::{Worker, caught_outcome};
use crate::round_lines::RoundLines;
use crate::slot::Outcome;
use std::mem::{MaybeUninit, align_of, size_of};
use std::panic::{AssertUnwindSafe, catch_unwind};

/// A round on the go line: its lines and epoch, to engage the barrier.
#[derive(Clone, Copy)]
pub(crate) struct OnLines<'a> {
    pub(crate) lines: &'a RoundLines<RoundTask>,
    pub(crate) epoch: u32,
}

/// The context a fork-join share runs with.
pub struct Participant<'a> {
    index: usize,
    count: usize,
    barrier: &'a SphereBarrier,
    /// `Some` for a round on the go line, whose barrier is armed lazily.
    round: Option<OnLines<'a>>,
}

impl Participant<'_> {
    /// This participant's index: `0..spheres` for the spheres, `spheres`
    /// (the last) for the calling thread.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The number of participants: the spheres plus the calling thread.
    pub fn count(&self) -> usize {
        self.count
    }

    /// True for the calling thread's share.
    pub fn is_caller(&self) -> bool {
        self.index + 1 == self.count
    }

    /// Waits for every other participant that has not returned yet.
    ///
    /// # Panics
    /// If another participant panicked (the barrier is broken): this share
    /// then ends too, and the fork-join reports the first panic.
    pub fn barrier(&self) -> bool {
        match self.try_barrier() {
            Ok(leader) => leader,
            Err(broken) => panic!("{broken}"),
        }
    }

    /// As [`Participant::barrier`], returning the broken barrier as an error.
    pub fn try_barrier(&self) -> Result<bool, BarrierBroken> {
        if let Some(r) = self.round {
            r.lines.engage(r.epoch, self.barrier);
        }
        self.barrier.wait()
    }
}

/// What a task stored by value on the go line may take: four words, so
/// that the epoch, the two function pointers and the task share one 64-byte
/// line; a larger task stays on the caller's stack and the go line holds a
/// reference to it.
type TaskWords = [MaybeUninit<usize>; 4];

/// A round's task, stored by value in the pool's go line so that a sphere
/// reads one line to start its share: a C function and its argument (the C
/// API's task) fit.
///
/// It has no `Drop`: the go line keeps it after the round, and the round's
/// caller drops the task in place ([`RoundTask::drop_task`]).
pub(crate) struct RoundTask {
    call: unsafe fn(&TaskWords, &Participant<'_>) -> Result<(), i32>,
    /// `None` for a task that needs no drop (a C function and argument).
    drop: Option<unsafe fn(&mut TaskWords)>,
    words: TaskWords,
}

// SAFETY: `new` stores only `ShareTask`s (`Sync`), which shares call through
// `&`; only the round's caller drops it, on its own thread (`join`), so the
// task never changes threads (it need not be `Send`).
unsafe impl Sync for RoundTask {}
// SAFETY: as above: the cell that holds it is shared, the task is not moved.
unsafe impl Send for RoundTask {}

impl RoundTask {
    /// Stores `task` by value, or gives it back if it does not fit.
    pub(crate) fn new<G: ShareTask>(task: G) -> Result<Self, G> {
        if size_of::<G>() > size_of::<TaskWords>() || align_of::<G>() > align_of::<TaskWords>() {
            return Err(task);
        }
        let mut words: TaskWords = [MaybeUninit::uninit(); 4];
        // SAFETY: `G` fits the words and their alignment (checked above).
        unsafe { words.as_mut_ptr().cast::<G>().write(task) };
        Ok(Self {
            call: call_stored::<G>,
            drop: std::mem::needs_drop::<G>().then_some(drop_stored::<G> as _),
            words,
        })
    }

    /// Drops the stored task, once, after the last share that uses it.
    ///
    /// # Safety
    /// Called once, when no share runs the task any more and none will.
    pub(crate) unsafe fn drop_task(&mut self) {
        if let Some(drop) = self.drop {
            // SAFETY: `drop` was made for the task type stored in `words`;
            // promised by the caller: dropped once, and no longer used.
            unsafe { drop(&mut self.words) }
        }
    }

    /// Runs the share of `participant`, catching its panic.
    pub(crate) fn run(&self, participant: &Participant<'_>, worker: Worker) -> Outcome {
        // SAFETY: `call` was made for the task type stored in `words`.
        let task = || unsafe { (self.call)(&self.words, participant) };
        caught_outcome(catch_unwind(AssertUnwindSafe(task)), worker)
    }

    /// The participant `index` of a go-line round of `count` participants.
    pub(crate) fn participant<'a>(
        index: usize,
        count: usize,
        barrier: &'a SphereBarrier,
        round: OnLines<'a>,
    ) -> Participant<'a> {
        Participant {
            index,
            count,
            barrier,
            round: Some(round),
        }
    }
}

/// Calls the `G` stored in `words`.
///
/// # Safety
/// `words` holds a `G` (written by `RoundTask::new`).
unsafe fn call_stored<G: ShareTask>(words: &TaskWords, p: &Participant<'_>) -> Result<(), i32> {
    // SAFETY: promised by the caller.
    let task = unsafe { &*words.as_ptr().cast::<G>() };
    task(p)
}

/// Drops the `G` stored in `words`.
///
/// # Safety
/// `words` holds a `G` that is not used again.
unsafe fn drop_stored<G>(words: &mut TaskWords) {
    // SAFETY: promised by the caller.
    unsafe { words.as_mut_ptr().cast::<G>().drop_in_place() }
}

/// What every share of a fork-join runs: a task that may fail with a code.
pub(crate) trait ShareTask: Fn(&Participant<'_>) -> Result<(), i32> + Sync {}
impl<F: Fn(&Participant<'_>) -> Result<(), i32> + Sync> ShareTask for F {}

/// Runs `task` once on this thread as the only participant of a round
/// (index 0 of 1; its barrier passes at once), catching its panic: a nested
/// round, run inline.
pub(crate) fn run_alone(
    task: impl ShareTask,
    spin: std::time::Duration,
    worker: Worker,
) -> Outcome {
    let barrier = SphereBarrier::with_spin(1, spin);
    let participant = Participant {
        index: 0,
        count: 1,
        barrier: &barrier,
        round: None,
    };
    caught_outcome(
        catch_unwind(AssertUnwindSafe(|| task(&participant))),
        worker,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_aligned_above_the_go_lines_words_is_held_by_reference() {
        // Small enough for the words, but aligned above them: stored there,
        // a share would read it misaligned (whether the words happen to be
        // aligned depends on the go line's layout), so it must be refused.
        #[repr(align(16))]
        struct Aligned(u8);
        fn one(a: &Aligned) -> bool {
            a.0 == 1
        }
        let a = Aligned(1);
        let over = move |_: &Participant<'_>| if one(&a) { Ok(()) } else { Err(1) };
        assert_eq!(align_of_val(&over), 16);
        assert!(size_of_val(&over) <= size_of::<TaskWords>());
        assert!(RoundTask::new(over).is_err(), "stored by value");
        let words = [1usize; 4];
        let fits = move |_: &Participant<'_>| if words == [1; 4] { Ok(()) } else { Err(1) };
        assert_eq!(size_of_val(&fits), size_of::<TaskWords>());
        assert!(
            RoundTask::new(fits).is_ok(),
            "four words not stored by value"
        );
    }

    #[test]
    fn a_task_stored_in_the_words_runs_from_them_and_drops_once() {
        // Run under Miri too (`cargo +nightly miri test -p sphere-pool --lib
        // fork_join`): a missed drop leaks the box, a second one frees it twice.
        let barrier = SphereBarrier::new(1);
        let seen = std::sync::atomic::AtomicUsize::new(0);
        let seen_ref = &seen;
        let boxed = Box::new(5usize);
        let task = move |p: &Participant<'_>| {
            seen_ref.fetch_add(*boxed + p.index(), std::sync::atomic::Ordering::SeqCst);
            Ok(())
        };
        let mut stored = RoundTask::new(task).ok().expect("two words fit");
        let p = Participant {
            index: 0,
            count: 1,
            barrier: &barrier,
            round: None,
        };
        for _ in 0..2 {
            assert!(stored.run(&p, Worker::Caller).is_ok());
        }
        // SAFETY: no share runs it any more.
        unsafe { stored.drop_task() };
        assert_eq!(seen.into_inner(), 10);
    }
}
