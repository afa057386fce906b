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

use crate::error::{TaskError, panic_message};
use crate::pool::RolePool;
use crossbeam_utils::CachePadded;
use parking_lot::Mutex;
use std::ops::Range;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

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
                    block_start(self.n, self.parts, u),
                    block_start(self.n, self.parts, u + 1),
                );
                (start..end).try_for_each(f)
            }),
        }
    }
}

fn block_start(len: usize, parts: usize, p: usize) -> usize {
    // u128 avoids overflow of len * p for huge ranges.
    (len as u128 * p as u128 / parts as u128) as usize
}

/// Each participant's block of units and the cursors that hand out its
/// chunks, to the owner first and then to thieves. Every unit is handed out
/// exactly once.
struct StealPlan {
    units: usize,
    parts: usize,
    grain: usize,
    cursors: Box<[CachePadded<AtomicUsize>]>,
}

impl StealPlan {
    fn new(units: usize, parts: usize, grain: usize) -> Self {
        let cursors = (0..parts)
            .map(|p| CachePadded::new(AtomicUsize::new(block_start(units, parts, p))))
            .collect();
        Self {
            units,
            parts,
            grain: grain.max(1),
            cursors,
        }
    }

    /// Calls `chunk` on chunks of participant `me`'s block, then on chunks
    /// stolen from the others, until everything is taken, `stop` is set, or
    /// `chunk` returns false. A participant `me >= parts` only steals.
    fn for_each_chunk(
        &self,
        me: usize,
        stop: &AtomicBool,
        mut chunk: impl FnMut(Range<usize>) -> bool,
    ) {
        let first = if me < self.parts { me } else { 0 };
        for victim in (first..self.parts).chain(0..first) {
            let end = block_start(self.units, self.parts, victim + 1);
            let cursor = &self.cursors[victim];
            loop {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                // A claim moves the cursor to the chunk's end, never past the
                // block's end: with a plain fetch_add a grain near usize::MAX
                // wrapped the cursor and handed items out again.
                let claim = cursor.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| {
                    (c < end).then(|| end.min(c.saturating_add(self.grain)))
                });
                let Ok(start) = claim else { break };
                if !chunk(start..end.min(start.saturating_add(self.grain))) {
                    return;
                }
            }
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
        let stop = AtomicBool::new(false);
        let failure: Mutex<Option<TaskError>> = Mutex::new(None);
        let fail = |e: TaskError| {
            stop.store(true, Ordering::Relaxed);
            failure.lock().get_or_insert(e);
        };
        let share = |index: usize| {
            // Workers beyond the planned count (the crew grew) only steal.
            let me = match index {
                CALLER => caller,
                i if i < caller => i,
                _ => participants,
            };
            plan.for_each_chunk(me, &stop, |r| {
                match catch_unwind(AssertUnwindSafe(|| body(r))) {
                    Ok(Ok(())) => true,
                    Ok(Err(message)) => {
                        fail(TaskError::Failed { role, message });
                        false
                    }
                    Err(payload) => {
                        let worker = std::thread::current()
                            .name()
                            .unwrap_or("the calling thread")
                            .to_owned();
                        fail(TaskError::Panicked {
                            role,
                            worker,
                            message: panic_message(payload.as_ref()),
                        });
                        false
                    }
                }
            });
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
        let result = catch_unwind(AssertUnwindSafe(|| body(0..units)));
        self.crew.record_inline_round(start.elapsed());
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => Err(TaskError::Failed { role, message }),
            Err(payload) => Err(TaskError::Panicked {
                role,
                worker: std::thread::current()
                    .name()
                    .unwrap_or("the calling thread")
                    .to_owned(),
                message: panic_message(payload.as_ref()),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::atomic::AtomicU32;

    #[test]
    fn every_unit_is_handed_out_exactly_once_to_any_set_of_participants() {
        for units in [1, 2, 7, 64, 1000] {
            for parts in [1, 2, 3, 8] {
                for grain in [1, 3, 50] {
                    let plan = StealPlan::new(units, parts, grain);
                    let seen: Vec<AtomicU32> = (0..units).map(|_| AtomicU32::new(0)).collect();
                    let stop = AtomicBool::new(false);
                    // Only some participants show up, plus one pure thief.
                    for me in [parts - 1, parts + 1] {
                        plan.for_each_chunk(me, &stop, |r| {
                            r.for_each(|u| {
                                seen[u].fetch_add(1, Ordering::Relaxed);
                            });
                            true
                        });
                    }
                    assert!(
                        seen.iter().all(|s| s.load(Ordering::Relaxed) == 1),
                        "{units} {parts} {grain}"
                    );
                }
            }
        }
    }

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

    /// Grains from 0 to usize::MAX, weighted toward the edges where
    /// cursor arithmetic wraps.
    fn any_grain() -> impl Strategy<Value = usize> {
        prop_oneof![
            0..=8usize,
            0..=5000usize,
            (0..=64usize).prop_map(|k| usize::MAX - k),
            (0..=64usize).prop_map(|k| (1usize << 63).wrapping_add(k).wrapping_sub(32)),
            any::<usize>(),
        ]
    }

    /// Runs the participants of a plan in turns, `stride` chunks each, as
    /// threads interleave; returns every unit's count.
    fn hand_out(plan: &StealPlan, units: usize, order: &[usize], stride: usize) -> Vec<u32> {
        let seen: Vec<AtomicU32> = (0..units).map(|_| AtomicU32::new(0)).collect();
        let stop = AtomicBool::new(false);
        // Each participant takes `stride` chunks per turn, resumed from scratch
        // (for_each_chunk restarts at its own block, as a new share would).
        for _ in 0..units + 2 {
            for &me in order {
                let mut left = stride;
                plan.for_each_chunk(me, &stop, |r| {
                    assert!(r.start < r.end && r.end <= units, "{r:?} of {units}");
                    r.for_each(|u| {
                        seen[u].fetch_add(1, Ordering::Relaxed);
                    });
                    left -= 1;
                    left > 0
                });
            }
        }
        seen.into_iter().map(AtomicU32::into_inner).collect()
    }

    proptest! {
        #[test]
        fn steal_plan_hands_out_every_unit_once_for_any_grain(
            units in 0..3000usize,
            parts in 1..9usize,
            grain in any_grain(),
            stride in 1..4usize,
            thieves in 0..3usize,
        ) {
            let plan = StealPlan::new(units, parts, grain);
            let order: Vec<usize> = (0..parts).rev().chain(parts..parts + thieves).collect();
            let seen = hand_out(&plan, units, &order, stride);
            prop_assert!(seen.iter().all(|&c| c == 1), "{:?}", seen.iter().filter(|&&c| c != 1).count());
        }

        #[test]
        fn steal_plan_never_wraps_on_huge_ranges(
            units in (usize::MAX / 2)..=usize::MAX,
            parts in 1..5usize,
            chunks_per_block in 1..32usize,
        ) {
            // Grains of at least a block / chunks_per_block, so the chunks can
            // be listed: they must tile 0..units exactly.
            let grain = (units / parts).div_ceil(chunks_per_block).max(1);
            let plan = StealPlan::new(units, parts, grain);
            let stop = AtomicBool::new(false);
            let mut ranges = Vec::new();
            for me in (0..=parts).rev() {
                plan.for_each_chunk(me, &stop, |r| {
                    ranges.push(r);
                    true
                });
            }
            ranges.sort_by_key(|r| r.start);
            let mut next = 0usize;
            for r in &ranges {
                prop_assert_eq!(r.start, next);
                prop_assert!(r.end > r.start);
                next = r.end;
            }
            prop_assert_eq!(next, units);
        }

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
    fn a_grain_near_usize_max_is_one_chunk_per_block() {
        // Failed before the cursor stopped at the block's end: fetch_add
        // wrapped it and units were handed out again.
        for grain in [usize::MAX, usize::MAX - 1, 1 << 63] {
            let plan = StealPlan::new(100, 2, grain);
            let stop = AtomicBool::new(false);
            let mut chunks = Vec::new();
            for me in [1, 0, 1, 0, 2] {
                plan.for_each_chunk(me, &stop, |r| {
                    chunks.push(r);
                    true
                });
            }
            chunks.sort_by_key(|r| r.start);
            assert_eq!(chunks, vec![0..50, 50..100], "grain {grain}");
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
