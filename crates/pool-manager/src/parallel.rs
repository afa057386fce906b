//! Parallel loops for the frame loop: step every agent, or reduce over them,
//! on a pool's threads with the calling thread taking part.
//!
//! A loop is one fork-join *round* on the pool's crew (see `round`): the
//! caller opens it and starts working at once, idle workers join, and each
//! participant takes *units* of work from a [`StealPlan`]: its own block
//! first, then chunks stolen from the others' blocks. What a unit is depends
//! on the [`Partitioning`]. A round on 2 threads costs a few microseconds
//! (measured by `benches/role_submit.rs`); on a pool that is off, without
//! threads, or already running a loop (nested loops), the loop runs on the
//! caller alone over the same units, so results do not change.

use crate::config::Role;
use crate::error::TaskError;
use crate::pool::RolePool;
use parking_lot::Mutex;
use std::ops::Range;
use std::time::Instant;
use thread_support::{Failure, StealPlan, catch};

/// How a loop over `n` items is cut into units of work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Partitioning {
    /// The walker plan's `agents[i::k]`: `k` parts (k = participants), part
    /// `p` takes items `p, p + k, p + 2k, ...`. Each part is one unit: a
    /// participant that finishes early can take a part nobody started, but
    /// never splits one, so uneven items stay uneven.
    Interleaved,
    /// `k` contiguous blocks of about `n / k` items, one unit each.
    Contiguous,
    /// Chunks of `grain` items (0: `n / (16 k)`, at least 1). Each
    /// participant starts on its own contiguous block and, when done, steals
    /// chunks from the others: uneven items balance out.
    Dynamic {
        /// Items per chunk; 0 picks one.
        grain: usize,
    },
}

impl Partitioning {
    /// `Dynamic` with the automatic grain.
    pub const DYNAMIC: Partitioning = Partitioning::Dynamic { grain: 0 };
}

/// The default chunk of [`RolePool::map_reduce`]: fixed, so that the result
/// does not depend on the thread count.
pub const DEFAULT_REDUCE_CHUNK: usize = 16;

/// The caller's index as passed by the round (workers count from 0).
const CALLER: usize = usize::MAX;

/// The units of a loop and how they map to items.
struct Layout {
    n: usize,
    parts: usize,
    partitioning: Partitioning,
    units: usize,
    grain: usize,
}

impl Layout {
    fn new(n: usize, participants: usize, partitioning: Partitioning) -> Self {
        let parts = participants.min(n).max(1);
        let (units, grain) = match partitioning {
            Partitioning::Interleaved | Partitioning::Contiguous => (parts, 1),
            Partitioning::Dynamic { grain } => {
                let auto = (n / participants.saturating_mul(16).max(1)).max(1);
                (n, if grain == 0 { auto } else { grain })
            }
        };
        Self {
            n,
            parts,
            partitioning,
            units,
            grain,
        }
    }

    /// Calls `f` on every item of units `units`, in order, stopping at the
    /// first error.
    fn for_each_item(
        &self,
        units: Range<usize>,
        f: &impl Fn(usize) -> Result<(), String>,
    ) -> Result<(), String> {
        match self.partitioning {
            Partitioning::Dynamic { .. } => units.into_iter().try_for_each(f),
            Partitioning::Interleaved => units
                .into_iter()
                .try_for_each(|u| (u..self.n).step_by(self.parts).try_for_each(f)),
            Partitioning::Contiguous => units.into_iter().try_for_each(|u| {
                let (start, end) = (
                    StealPlan::block_start(self.n, self.parts, u),
                    StealPlan::block_start(self.n, self.parts, u + 1),
                );
                (start..end).try_for_each(f)
            }),
        }
    }
}

/// A `*mut T` that may cross threads: the loop gives each index to exactly
/// one participant.
struct SharedMut<T>(*mut T);
// SAFETY: only used to hand out `&mut` to distinct elements (see `for_each_mut`).
unsafe impl<T: Send> Sync for SharedMut<T> {}

impl<T> SharedMut<T> {
    /// The element at `i`.
    ///
    /// # Safety
    /// `i` is in bounds and no other reference to that element exists.
    #[allow(clippy::mut_from_ref)]
    unsafe fn get(&self, i: usize) -> &mut T {
        // SAFETY: promised by the caller.
        unsafe { &mut *self.0.add(i) }
    }
}

impl RolePool {
    /// Calls `f(i)` once for every `i` in `0..n`, spread over the pool's
    /// threads and the calling thread as `partitioning` says; returns when
    /// all calls have returned. A panic stops the other participants from
    /// taking new work and is returned as [`TaskError::Panicked`].
    pub fn for_each_index(
        &self,
        n: usize,
        partitioning: Partitioning,
        f: impl Fn(usize) + Sync,
    ) -> Result<(), TaskError> {
        self.try_for_each_index(n, partitioning, |i| {
            f(i);
            Ok(())
        })
    }

    /// As [`for_each_index`](Self::for_each_index) for a fallible body: the
    /// first `Err` stops the loop and is returned as [`TaskError::Failed`].
    pub fn try_for_each_index(
        &self,
        n: usize,
        partitioning: Partitioning,
        f: impl Fn(usize) -> Result<(), String> + Sync,
    ) -> Result<(), TaskError> {
        let layout = Layout::new(n, self.participants(), partitioning);
        self.run_units(layout.units, layout.grain, |units| {
            layout.for_each_item(units, &f)
        })
    }

    /// Calls `f(i, &mut items[i])` once for every item, in parallel as
    /// [`for_each_index`](Self::for_each_index) does: the walker's agent step.
    pub fn for_each_mut<T: Send>(
        &self,
        items: &mut [T],
        partitioning: Partitioning,
        f: impl Fn(usize, &mut T) + Sync,
    ) -> Result<(), TaskError> {
        let base = SharedMut(items.as_mut_ptr());
        let n = items.len();
        self.for_each_index(n, partitioning, |i| {
            debug_assert!(i < n);
            // SAFETY: `i < n`, and the loop calls this closure exactly once
            // per index, so no two `&mut` alias; `items` is borrowed mutably
            // for the whole loop.
            let item = unsafe { base.get(i) };
            f(i, item);
        })
    }

    /// Reduces `map(i)` over `0..n`: each chunk of `chunk` items (0:
    /// [`DEFAULT_REDUCE_CHUNK`]) is folded in index order starting from
    /// `identity()`, then the chunks' results are combined in chunk order.
    /// The chunks do not depend on the thread count, so the result is the
    /// same, bit for bit, on any number of threads, and when the pool is off.
    pub fn map_reduce<A, I, M, R>(
        &self,
        n: usize,
        chunk: usize,
        identity: I,
        map: M,
        reduce: R,
    ) -> Result<A, TaskError>
    where
        A: Send,
        I: Fn() -> A + Sync,
        M: Fn(usize) -> A + Sync,
        R: Fn(A, A) -> A + Sync,
    {
        let chunk = if chunk == 0 {
            DEFAULT_REDUCE_CHUNK
        } else {
            chunk
        };
        let chunks = n.div_ceil(chunk);
        let partial: Vec<Mutex<Option<A>>> = (0..chunks).map(|_| Mutex::new(None)).collect();
        self.run_units(chunks, 1, |units| {
            for c in units {
                let mut acc = identity();
                // c < chunks, so c * chunk < n; the end saturates for huge chunks.
                let start = c * chunk;
                for i in start..n.min(start.saturating_add(chunk)) {
                    acc = reduce(acc, map(i));
                }
                *partial[c].lock() = Some(acc);
            }
            Ok(())
        })?;
        let mut total = identity();
        for p in partial {
            total = reduce(total, p.into_inner().expect("every chunk was reduced"));
        }
        Ok(total)
    }

    /// As [`map_reduce`](Self::map_reduce) over the items of a slice.
    pub fn map_reduce_slice<T, A, I, M, R>(
        &self,
        items: &[T],
        chunk: usize,
        identity: I,
        map: M,
        reduce: R,
    ) -> Result<A, TaskError>
    where
        T: Sync,
        A: Send,
        I: Fn() -> A + Sync,
        M: Fn(usize, &T) -> A + Sync,
        R: Fn(A, A) -> A + Sync,
    {
        self.map_reduce(items.len(), chunk, identity, |i| map(i, &items[i]), reduce)
    }

    /// Runs `body` over units `0..units` as one round.
    fn run_units(
        &self,
        units: usize,
        grain: usize,
        body: impl Fn(Range<usize>) -> Result<(), String> + Sync,
    ) -> Result<(), TaskError> {
        if units == 0 {
            return Ok(());
        }
        let role = self.role();
        let participants = self.participants();
        if participants == 1 || units == 1 {
            return self.run_alone(units, &body);
        }
        let caller = participants - 1;
        let plan = StealPlan::new(units, participants, grain);
        let failure: Mutex<Option<TaskError>> = Mutex::new(None);
        let share = |index: usize| {
            // Workers beyond the planned count (the crew grew) only steal.
            let me = match index {
                CALLER => caller,
                i if i < caller => i,
                _ => participants,
            };
            if let Err(failed) = plan.run(me, &body) {
                failure.lock().get_or_insert(task_error(role, failed));
            }
        };
        if !self.crew.run_round(&share, CALLER) {
            return self.run_alone(units, &body);
        }
        failure.into_inner().map_or(Ok(()), Err)
    }

    /// Runs every unit on the calling thread.
    fn run_alone(
        &self,
        units: usize,
        body: &impl Fn(Range<usize>) -> Result<(), String>,
    ) -> Result<(), TaskError> {
        let role = self.role();
        let start = Instant::now();
        let result = catch(|| body(0..units));
        self.crew.record_inline_round(start.elapsed());
        result.map_err(|failed| task_error(role, failed))
    }
}

/// A loop's failure as the pool's error; a panic names the thread it ran on.
fn task_error(role: Role, failed: Failure<String>) -> TaskError {
    match failed {
        Failure::Failed(message) => TaskError::Failed { role, message },
        Failure::Panicked(message) => TaskError::Panicked {
            role,
            worker: std::thread::current()
                .name()
                .unwrap_or("the calling thread")
                .to_owned(),
            message,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn layouts_cover_every_item_once() {
        for n in [0, 1, 5, 60, 61] {
            for k in [1, 2, 3, 16] {
                for p in [
                    Partitioning::Interleaved,
                    Partitioning::Contiguous,
                    Partitioning::DYNAMIC,
                    Partitioning::Dynamic { grain: 4 },
                ] {
                    let layout = Layout::new(n, k, p);
                    let seen: Vec<AtomicU32> = (0..n).map(|_| AtomicU32::new(0)).collect();
                    layout
                        .for_each_item(0..layout.units, &|i| {
                            seen[i].fetch_add(1, Ordering::Relaxed);
                            Ok(())
                        })
                        .unwrap();
                    assert!(
                        seen.iter().all(|s| s.load(Ordering::Relaxed) == 1),
                        "{n} {k} {p:?}"
                    );
                }
            }
        }
    }

    /// Grains of any size, 0 (automatic) and small ones often. (The steal
    /// plan's cursor arithmetic at the wrap-around edges is tested in
    /// thread-support; a layout only passes the grain on.)
    fn any_grain() -> impl Strategy<Value = usize> {
        prop_oneof![0..=8usize, any::<usize>()]
    }

    proptest! {
        #[test]
        fn layouts_cover_every_item_once_for_any_grain(
            n in 0..2000usize,
            k in 1..17usize,
            kind in 0..3u8,
            grain in any_grain(),
        ) {
            let p = match kind {
                0 => Partitioning::Interleaved,
                1 => Partitioning::Contiguous,
                _ => Partitioning::Dynamic { grain },
            };
            let layout = Layout::new(n, k, p);
            let seen: Vec<AtomicU32> = (0..n).map(|_| AtomicU32::new(0)).collect();
            layout
                .for_each_item(0..layout.units, &|i| {
                    seen[i].fetch_add(1, Ordering::Relaxed);
                    Ok(())
                })
                .unwrap();
            prop_assert!(seen.iter().all(|s| s.load(Ordering::Relaxed) == 1));
        }
    }

    #[test]
    fn interleaved_parts_follow_the_plan_i_colon_colon_k() {
        let layout = Layout::new(10, 3, Partitioning::Interleaved);
        let items = |u: usize| {
            let got = Mutex::new(Vec::new());
            layout
                .for_each_item(u..u + 1, &|i| {
                    got.lock().push(i);
                    Ok(())
                })
                .unwrap();
            got.into_inner()
        };
        assert_eq!(items(0), vec![0, 3, 6, 9]);
        assert_eq!(items(1), vec![1, 4, 7]);
        assert_eq!(items(2), vec![2, 5, 8]);
    }
}
