//! Fork-join rounds on a [`SpherePool`], all on the pool's go line and done
//! line: `run_all` (every participant runs the task once), `parallel_for` (a
//! range with work stealing, in an optional round: a share no sphere started
//! is not waited for), and nested calls from inside a round, which run
//! inline on the calling thread.

use crate::error::{Error, Worker, caught_outcome};
use crate::fork_join::{Participant, RoundTask, ShareTask, run_alone};
use crate::limits::MAX_RANGE_LEN;
use crate::nested::{inside, participant_in};
use crate::pool::{RoundGuard, SpherePool};
use std::ops::Range;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::Ordering;
use thread_support::{Failure, StealPlan};

impl SpherePool {
    /// Runs `task` once on every sphere and once on the calling thread, and
    /// returns when all have finished (fork-join). Each call gets a
    /// [`Participant`] with its index and a barrier. Fails with
    /// [`Error::Busy`] (running nothing) if a sphere holds a job that was not
    /// waited for, or [`Error::RoundInProgress`] if another thread's round
    /// is running; a panic in any share is returned after all have ended.
    ///
    /// **Nested calls run inline.** Called from work of this same pool (a
    /// share, a parallel-for body, a dispatched job), the task runs once,
    /// serially, on the calling thread, as participant 0 of 1 (its barrier
    /// passes at once), as OpenMP runs a nested parallel region.
    pub fn run_all(&self, task: impl Fn(&Participant<'_>) + Sync) -> Result<(), Error> {
        self.go_round(
            move |p: &Participant<'_>| {
                task(p);
                Ok(())
            },
            false,
        )
    }

    /// As [`run_all`](Self::run_all) for a task that reports failure with an
    /// error code, returned as [`Error::JobFailed`]. A task of up to four
    /// words (a function pointer and its argument, the C API's) is stored by
    /// value on the pool's go line, next to the epoch that starts the round:
    /// a sphere reads that one line to start its share.
    pub fn try_run_all(
        &self,
        task: impl Fn(&Participant<'_>) -> Result<(), i32> + Sync,
    ) -> Result<(), Error> {
        self.go_round(task, false)
    }

    /// Sets the round flag (refused if it was set) and checks that no
    /// sphere holds a job (`Busy` otherwise); the flag is cleared when the
    /// returned guard drops.
    fn enter_round(&self) -> Result<RoundGuard<'_>, Error> {
        // SeqCst: the round's half of the Dekker pair with a dispatcher's
        // claim (`Slot::claim_outside_round`).
        if self.shared.round.swap(true, Ordering::SeqCst) {
            return Err(Error::RoundInProgress);
        }
        let guard = RoundGuard(&self.shared.round);
        for (i, slot) in self.shared.slots.iter().enumerate() {
            slot.idle_for_round(i)?;
        }
        Ok(guard)
    }

    /// A round on the go line and the done line (`round_lines.rs`): every
    /// sphere and the caller run `task` once; or, `optional`, a round whose
    /// spheres' shares are optional (`RoundLines::open_optional`): a sphere
    /// that has not started its share when the caller is done with its own
    /// never starts it, and is not waited for (the caller's share must then
    /// take all the work left, as `parallel_for`'s steal plan does).
    fn go_round(&self, task: impl ShareTask, optional: bool) -> Result<(), Error> {
        if let Some(me) = participant_in(self.id()) {
            return self.run_inline(task, me);
        }
        let _round = self.enter_round()?;
        if optional {
            let rounds = &self.shared.optional_rounds;
            rounds.store(rounds.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        }
        match RoundTask::new(task) {
            Ok(stored) => self.go_round_stored(stored, optional),
            // Too big for the go line: it holds a reference to the task.
            Err(task) => self.go_round_stored(
                RoundTask::new(&task).ok().expect("a reference fits"),
                optional,
            ),
        }
    }

    fn go_round_stored(&self, task: RoundTask, optional: bool) -> Result<(), Error> {
        let shared = &*self.shared;
        let lines = &shared.lines;
        let opened = if optional {
            lines.open_optional(task)
        } else {
            lines.open(task)
        };
        // From here on, every share must have departed before this
        // function returns (the task may borrow the caller's stack), even
        // if something below panicked: the join runs in a drop guard (after
        // closing an optional round, so that no sphere starts any more).
        struct Join<'a>(&'a crate::pool::Shared, crate::round_lines::Opened, bool);
        impl Drop for Join<'_> {
            fn drop(&mut self) {
                let s = self.0;
                if self.2 {
                    s.lines.close(&s.barrier);
                }
                s.lines
                    .join(self.1, &s.barrier, s.config.max_spin, s.yielding);
                // SAFETY: joined: no share runs the task any more.
                unsafe { s.lines.task_mut(|task| task.drop_task()) };
            }
        }
        let join = Join(shared, opened, optional);
        let caller = shared.slots.len();
        inside(self.id(), caller, || {
            shared.run_round_share(caller, opened.epoch, Worker::Caller)
        });
        // The join ends the caller's share (`RoundLines::join`).
        drop(join);
        shared.check_placement(opened.epoch);
        if shared.round_error.any.load(Ordering::Acquire) {
            shared.round_error.any.store(false, Ordering::Relaxed);
            if let Some(e) = shared.round_error.first.lock().take() {
                return Err(e);
            }
        }
        Ok(())
    }

    /// Calls `body` on sub-ranges that together cover `range` exactly once,
    /// spread over the spheres and the calling thread. Each participant starts
    /// on its own contiguous block and, when done, steals chunks of `grain`
    /// items from the others, so uneven work stays balanced. `grain == 0`
    /// picks one that gives each participant about eight chunks; a grain
    /// larger than the range is one chunk per participant's block. A range
    /// longer than [`MAX_RANGE_LEN`] is an [`Error::InvalidArgument`].
    ///
    /// **Nested calls run inline.** Called from work of this same pool (a
    /// share, a parallel-for body, a dispatched job), the body runs on the
    /// calling thread over the whole range in order, in chunks of `grain`
    /// (0: one chunk), with the calling thread's own participant index.
    pub fn parallel_for(
        &self,
        range: Range<usize>,
        grain: usize,
        body: impl Fn(Range<usize>) + Sync,
    ) -> Result<(), Error> {
        self.try_parallel_for(range, grain, |r| {
            body(r);
            Ok(())
        })
    }

    /// As [`parallel_for`](Self::parallel_for) for a body that reports
    /// failure with an error code: the first failure (or panic) stops all
    /// participants from taking new chunks and is returned.
    pub fn try_parallel_for(
        &self,
        range: Range<usize>,
        grain: usize,
        body: impl Fn(Range<usize>) -> Result<(), i32> + Sync,
    ) -> Result<(), Error> {
        self.parallel_for_with(range, grain, |r, _| body(r))
    }

    /// The general form of [`parallel_for`](Self::parallel_for): the body
    /// also gets the index of the participant running it (`0..participants`,
    /// for per-thread scratch space) and may fail with an error code.
    pub fn parallel_for_with(
        &self,
        range: Range<usize>,
        grain: usize,
        body: impl Fn(Range<usize>, usize) -> Result<(), i32> + Sync,
    ) -> Result<(), Error> {
        if range.start > range.end {
            return Err(Error::InvalidArgument(format!(
                "range start {} is after its end {}",
                range.start, range.end
            )));
        }
        let len = range.end - range.start;
        if len == 0 {
            return Ok(());
        }
        if len > MAX_RANGE_LEN {
            return Err(Error::InvalidArgument(format!(
                "range of {len} items is too long: the limit is {MAX_RANGE_LEN} (usize::MAX / 2 - 4096)"
            )));
        }
        if let Some(me) = participant_in(self.id()) {
            return self.parallel_for_inline(range, grain, me, body);
        }
        let parts = self.participants();
        // The plan caps the grain at the longest block (a chunk never
        // crosses its block's end).
        let grain = if grain == 0 {
            (len / (parts * 8)).max(1)
        } else {
            grain
        };
        let plan = StealPlan::new(len, parts, grain);
        let share = |p: &Participant<'_>| {
            let me = p.index();
            let offset = |chunk: Range<usize>| range.start + chunk.start..range.start + chunk.end;
            plan.run(me, |chunk| body(offset(chunk), me))
                .map_err(|failed| match failed {
                    Failure::Failed(code) => code,
                    // The round reports a share's panic with the worker it
                    // ran on; the plan has stopped the other shares.
                    Failure::Panicked(message) => std::panic::resume_unwind(Box::new(message)),
                })
        };
        self.go_round(share, true)
    }

    /// Who runs as `participant`, for error reports.
    fn worker(&self, participant: usize) -> Worker {
        if participant < self.spheres() {
            Worker::Sphere(participant)
        } else {
            Worker::Caller
        }
    }

    /// A nested fork-join: the task runs once, on this thread, as the only
    /// participant (index 0 of 1), as OpenMP runs a nested parallel region
    /// with a team of one. Its barrier passes at once.
    fn run_inline(&self, task: impl ShareTask, me: usize) -> Result<(), Error> {
        let (spin, worker) = (self.shared.config.max_spin, self.worker(me));
        inside(self.id(), me, || run_alone(task, spin, worker))
    }

    /// A nested parallel-for: the range runs on this thread, in order, in
    /// chunks of `grain` (0: one chunk), each given this thread's own
    /// participant index (so per-participant scratch space stays private).
    fn parallel_for_inline(
        &self,
        range: Range<usize>,
        grain: usize,
        me: usize,
        body: impl Fn(Range<usize>, usize) -> Result<(), i32>,
    ) -> Result<(), Error> {
        let len = range.end - range.start;
        let grain = if grain == 0 { len } else { grain.min(len) };
        let worker = self.worker(me);
        let run = || {
            let mut start = range.start;
            while start < range.end {
                // `grain <= range.end - start` until the last chunk: no overflow.
                let end = start + grain.min(range.end - start);
                body(start..end, me)?;
                start = end;
            }
            Ok(())
        };
        caught_outcome(
            inside(self.id(), me, || catch_unwind(AssertUnwindSafe(run))),
            worker,
        )
    }
}
