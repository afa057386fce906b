//! What a fork-join share runs with: the [`Participant`] context, the
//! [`RoundTask`] that `run_all` stores on the pool's go line
//! (`round_lines.rs`), and the record of a round on the slot path
//! (`parallel_for`, whose shares may be revoked), below.
//!
//! The slot path's record lives on the caller's stack while the spheres run it. Every
//! share leaves the barrier when it ends (its last touch of the record), so
//! the barrier's party count is also the join counter. The task is stored
//! by value inside the record (a C function and its argument travel there
//! too), so a sphere reads no other memory of the caller's to start it.
//!
//! The barrier itself is not in the record but in the pool (re-armed for
//! each round): the share whose departure lets the caller return may still
//! be inside `leave`, waking the departure waiter or a generation's waiters
//! through the barrier's mutex and condition variable. On a barrier in the
//! record that was a use after free (seen under ASan in the C stress test);
//! on the pool's it is a harmless wake-up of a live barrier.

use crate::barrier::{BarrierBroken, SphereBarrier};
use crate::error::{Error, Worker, caught_outcome};
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

/// The part of a fork-join record that does not depend on its task type:
/// what a sphere needs to run its share, record a failure and leave.
pub(crate) struct Head {
    /// Runs a share of the record this head starts (`run_share::<F>`).
    run: unsafe fn(*const Head, usize, Worker) -> Outcome,
    participants: usize,
    /// The round's barrier, owned by the pool (or by the caller's frame for
    /// a nested round), which outlives every share's last touch of it.
    barrier: *const SphereBarrier,
    /// The first failure of any share.
    first_error: parking_lot::Mutex<Option<Error>>,
}

impl Head {
    /// The round's barrier.
    pub(crate) fn barrier(&self) -> &SphereBarrier {
        // SAFETY: `ForkJoin::new` takes a barrier that outlives the record
        // and everything the round does with it (see the field).
        unsafe { &*self.barrier }
    }

    /// Records a share's failure and breaks the barrier, so that no other
    /// share waits at it for ever.
    pub(crate) fn fail(&self, error: Error) {
        self.first_error.lock().get_or_insert(error);
        self.barrier().break_barrier();
    }
}

/// One fork-join: the head first (`repr(C)`), so that a pointer to the
/// head is a pointer to the record.
#[repr(C)]
pub(crate) struct ForkJoin<F> {
    pub(crate) head: Head,
    task: F,
}

impl<F: ShareTask> ForkJoin<F> {
    /// A round of `task` over `participants` (1 or more) meeting at
    /// `barrier`, armed for `participants`, which must outlive the record
    /// and every share's `leave` (the pool's own barrier, or a barrier of
    /// the caller's frame when only the caller takes part).
    pub(crate) fn new(task: F, participants: usize, barrier: &SphereBarrier) -> Self {
        Self {
            head: Head {
                run: run_share::<F>,
                participants,
                barrier,
                first_error: parking_lot::Mutex::new(None),
            },
            task,
        }
    }

    /// The share of participant `index`, to hand to a sphere.
    pub(crate) fn share(&self, index: usize) -> Share {
        Share {
            head: &self.head,
            index,
        }
    }

    /// Runs participant `index`'s share on this thread.
    pub(crate) fn run(&self, index: usize, worker: Worker) -> Outcome {
        // SAFETY: `head` starts this live record of task type `F`.
        unsafe { run_share::<F>(&self.head, index, worker) }
    }

    /// The round's result: its first failure, if any. Call after the join.
    pub(crate) fn into_result(self) -> Result<(), Error> {
        self.head.first_error.into_inner().map_or(Ok(()), Err)
    }
}

/// Runs one share of the record that `head` starts, catching its panic.
///
/// # Safety
/// `head` is the head of a live `ForkJoin<F>`.
unsafe fn run_share<F: ShareTask>(head: *const Head, index: usize, worker: Worker) -> Outcome {
    // SAFETY: promised by the caller; `ForkJoin` is repr(C), head first.
    let fork_join = unsafe { &*head.cast::<ForkJoin<F>>() };
    let participant = Participant {
        index,
        count: fork_join.head.participants,
        barrier: fork_join.head.barrier(),
        round: None,
    };
    caught_outcome(
        catch_unwind(AssertUnwindSafe(|| (fork_join.task)(&participant))),
        worker,
    )
}

/// A sphere's share of a fork-join: the record's head and the share's index.
pub(crate) struct Share {
    head: *const Head,
    index: usize,
}

// SAFETY: the record is Sync (its task is `ShareTask: Sync`, the barrier and
// the mutex are Sync), and the round waits for every share to leave before
// the record goes away (see `JoinAll`).
unsafe impl Send for Share {}

impl Share {
    /// Runs the share on sphere `sphere`, records its failure, calls
    /// `release(failed)` (the sphere frees its slot for the next round),
    /// then leaves the barrier: the share's last touch of the record, which
    /// the caller may drop right after.
    pub(crate) fn run<R>(self, sphere: usize, release: impl FnOnce(bool) -> R) -> R {
        // SAFETY: the round waits until this share has left before its
        // record goes away (see `JoinAll`).
        let head = unsafe { &*self.head };
        // SAFETY: `head` starts a live record, whose `run` matches its task.
        let outcome = thread_support::tsan::user_code(|| unsafe {
            (head.run)(self.head, self.index, Worker::Sphere(sphere))
        });
        let failed = outcome.is_err();
        if let Err(e) = outcome {
            head.fail(e);
        }
        let released = release(failed);
        head.barrier().leave();
        released
    }
}

/// Waits until every share of a fork-join has left its barrier (the join),
/// when dropped: on the normal path and while unwinding alike; then arms
/// the barrier again for `.1` participants (a pool's barrier is armed
/// between rounds).
pub(crate) struct JoinAll<'a>(pub(crate) &'a SphereBarrier, pub(crate) usize);

impl Drop for JoinAll<'_> {
    fn drop(&mut self) {
        self.0.wait_departed();
        self.0.rearm(self.1);
    }
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
