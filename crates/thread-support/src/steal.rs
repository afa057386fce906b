//! The work-stealing plan of a parallel loop: each participant's block of
//! `0..len` and the cursors that hand out its chunks, to the owner first and
//! then to thieves. Every index is handed out exactly once, whatever the
//! grain, the length and the number of participants that show up.

use crate::panic::{Failure, catch};
use crossbeam_utils::CachePadded;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// The blocks of `parts` participants over `0..len`, their cursors and a
/// stop flag (set by the first failure).
pub struct StealPlan {
    len: usize,
    parts: usize,
    grain: usize,
    /// Claims may use `fetch_add` (see `claim`).
    add_claims: bool,
    stop: AtomicBool,
    cursors: Cursors,
}

/// Cursors of up to this many blocks live inside the plan: a loop on a few
/// cores allocates nothing (the allocation, its aligned `malloc` and its
/// `free` were about a sixth of the caller's samples in an empty
/// `parallel_for` of two participants).
const INLINE_PARTS: usize = 4;

/// One cursor per block, each on its own cache line. The inline variant's
/// size is its point: the plan lives on the caller's stack for one loop.
#[allow(clippy::large_enum_variant)]
enum Cursors {
    Inline([CachePadded<AtomicUsize>; INLINE_PARTS]),
    Heap(Box<[CachePadded<AtomicUsize>]>),
}

impl StealPlan {
    /// `parts` blocks (at least one) handed out in chunks of at most `grain`
    /// indices (0 is read as 1; a grain above the longest block changes
    /// nothing, as a chunk never crosses its block's end).
    pub fn new(len: usize, parts: usize, grain: usize) -> Self {
        let parts = parts.max(1);
        let cursor = |p| CachePadded::new(AtomicUsize::new(Self::block_start(len, parts, p)));
        let cursors = if parts <= INLINE_PARTS {
            // Cursors past `parts` are never used.
            Cursors::Inline(std::array::from_fn(|p| cursor(p.min(parts))))
        } else {
            Cursors::Heap((0..parts).map(cursor).collect())
        };
        let grain = grain.clamp(1, len.div_ceil(parts).max(1));
        Self {
            len,
            parts,
            grain,
            add_claims: (len as u128 + ((grain as u128) << 32)) <= usize::MAX as u128,
            stop: AtomicBool::new(false),
            cursors,
        }
    }

    /// The first index of block `p` of `parts` over `0..len` (`p == parts`
    /// gives `len`): blocks differ in length by at most one.
    pub fn block_start(len: usize, parts: usize, p: usize) -> usize {
        // u128 avoids overflow of len * p for huge ranges.
        (len as u128 * p as u128 / parts as u128) as usize
    }

    /// The number of blocks.
    pub fn parts(&self) -> usize {
        self.parts
    }

    /// Stops every participant from taking new chunks.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Calls `chunk` on chunks of participant `me`'s block, then on chunks
    /// stolen from the others, until everything is taken, the plan is
    /// stopped, or `chunk` returns false. A participant `me >= parts` only
    /// steals.
    pub fn for_each_chunk(&self, me: usize, mut chunk: impl FnMut(Range<usize>) -> bool) {
        let first = if me < self.parts { me } else { 0 };
        for victim in (first..self.parts).chain(0..first) {
            let end = Self::block_start(self.len, self.parts, victim + 1);
            let cursor = match &self.cursors {
                Cursors::Inline(cursors) => &cursors[victim],
                Cursors::Heap(cursors) => &cursors[victim],
            };
            loop {
                if self.stop.load(Ordering::Relaxed) {
                    return;
                }
                let Some(start) = self.claim(cursor, end) else {
                    break;
                };
                if !chunk(start..end.min(start.saturating_add(self.grain))) {
                    return;
                }
            }
        }
    }

    /// The start of the next chunk of a block ending at `end`, if any.
    ///
    /// A cursor must never wrap around, or indices would be handed out
    /// again. The fast claim is a check and a `fetch_add`: a thread adds
    /// only after seeing the cursor below `end`, and stops taking from this
    /// block once an add returns `end` or more, so each thread moves a
    /// cursor past `end` at most once, by one grain. A process has fewer
    /// than 2^32 threads, so `add_claims` (`len + 2^32 grains` fits) rules
    /// out a wrap. Otherwise (huge ranges or grains) the claim is a
    /// compare-and-swap loop that stops the cursor at `end`. The fast claim
    /// is one atomic add per chunk (a CAS loop made chunks of 64 trivial
    /// items about 20% slower on 2 cores).
    #[inline]
    fn claim(&self, cursor: &AtomicUsize, end: usize) -> Option<usize> {
        if self.add_claims {
            if cursor.load(Ordering::Relaxed) >= end {
                return None;
            }
            let start = cursor.fetch_add(self.grain, Ordering::Relaxed);
            (start < end).then_some(start)
        } else {
            cursor
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| {
                    (c < end).then(|| end.min(c.saturating_add(self.grain)))
                })
                .ok()
        }
    }

    /// Participant `me`'s share of the loop: `body` on every chunk it gets,
    /// each under [`catch`]. The first failure (error or panic) of this
    /// participant stops the plan for everyone and is returned.
    pub fn run<E>(
        &self,
        me: usize,
        mut body: impl FnMut(Range<usize>) -> Result<(), E>,
    ) -> Result<(), Failure<E>> {
        let mut result = Ok(());
        self.for_each_chunk(me, |r| match catch(|| body(r)) {
            Ok(()) => true,
            Err(failure) => {
                self.stop();
                result = Err(failure);
                false
            }
        });
        result
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::atomic::AtomicU32;

    #[test]
    fn every_index_is_handed_out_exactly_once_to_any_set_of_participants() {
        for len in [1, 2, 7, 64, 1000] {
            for parts in [1, 2, 3, 8] {
                for grain in [0, 1, 3, 50] {
                    let plan = StealPlan::new(len, parts, grain);
                    let seen: Vec<AtomicU32> = (0..len).map(|_| AtomicU32::new(0)).collect();
                    // Only some participants show up, plus one pure thief.
                    for me in [parts - 1, parts + 1] {
                        plan.for_each_chunk(me, |r| {
                            r.for_each(|u| {
                                seen[u].fetch_add(1, Ordering::Relaxed);
                            });
                            true
                        });
                    }
                    assert!(
                        seen.iter().all(|s| s.load(Ordering::Relaxed) == 1),
                        "{len} {parts} {grain}"
                    );
                }
            }
        }
    }

    #[test]
    fn threads_racing_for_the_chunks_get_each_index_once() {
        let len = 100_000;
        let plan = StealPlan::new(len, 3, 7);
        let seen: Vec<AtomicU32> = (0..len).map(|_| AtomicU32::new(0)).collect();
        std::thread::scope(|s| {
            for me in 0..5 {
                let (plan, seen) = (&plan, &seen);
                s.spawn(move || {
                    plan.for_each_chunk(me, |r| {
                        r.for_each(|u| {
                            seen[u].fetch_add(1, Ordering::Relaxed);
                        });
                        true
                    })
                });
            }
        });
        assert!(seen.iter().all(|s| s.load(Ordering::Relaxed) == 1));
    }

    #[test]
    fn huge_ranges_claim_by_compare_and_swap_others_by_add() {
        assert!(StealPlan::new(1 << 40, 4, 0).add_claims);
        assert!(StealPlan::new(1 << 20, 2, usize::MAX).add_claims);
        assert!(StealPlan::new(usize::MAX / 2, 2, 0).add_claims);
        assert!(!StealPlan::new(usize::MAX / 2, 2, usize::MAX).add_claims);
        assert!(!StealPlan::new(1 << 40, 2, 1 << 33).add_claims);
    }

    #[test]
    fn a_grain_near_usize_max_is_one_chunk_per_block() {
        // Failed before the cursor stopped at the block's end: fetch_add
        // wrapped it and indices were handed out again.
        for grain in [usize::MAX, usize::MAX - 1, 1 << 63] {
            let plan = StealPlan::new(100, 2, grain);
            let mut chunks = Vec::new();
            for me in [1, 0, 1, 0, 2] {
                plan.for_each_chunk(me, |r| {
                    chunks.push(r);
                    true
                });
            }
            chunks.sort_by_key(|r| r.start);
            assert_eq!(chunks, vec![0..50, 50..100], "grain {grain}");
        }
    }

    #[test]
    fn run_stops_everyone_at_the_first_failure_and_reports_it() {
        let plan = StealPlan::new(1000, 2, 10);
        let mut ran = 0;
        let first = plan.run(0, |r| {
            ran += 1;
            if r.start >= 200 { Err(r.start) } else { Ok(()) }
        });
        assert_eq!(first, Err(Failure::Failed(200)));
        assert_eq!(ran, 21);
        // The other participant takes nothing once the plan is stopped.
        assert_eq!(plan.run(1, |_| Err::<(), usize>(0)), Ok(()));
        let plan = StealPlan::new(10, 1, 1);
        let panicked = plan.run(0, |r| -> Result<(), ()> {
            assert!(r.start < 3, "chunk {}", r.start);
            Ok(())
        });
        assert_eq!(panicked, Err(Failure::Panicked("chunk 3".to_owned())));
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
    /// threads interleave; returns every index's count.
    fn hand_out(plan: &StealPlan, len: usize, order: &[usize], stride: usize) -> Vec<u32> {
        let seen: Vec<AtomicU32> = (0..len).map(|_| AtomicU32::new(0)).collect();
        // Each participant takes `stride` chunks per turn, resumed from
        // scratch (for_each_chunk restarts at its own block, as a new share
        // would).
        for _ in 0..len + 2 {
            for &me in order {
                let mut left = stride;
                plan.for_each_chunk(me, |r| {
                    assert!(r.start < r.end && r.end <= len, "{r:?} of {len}");
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
        fn every_index_once_for_any_grain(
            len in 0..3000usize,
            parts in 1..9usize,
            grain in any_grain(),
            stride in 1..4usize,
            thieves in 0..3usize,
        ) {
            let plan = StealPlan::new(len, parts, grain);
            let order: Vec<usize> = (0..parts).rev().chain(parts..parts + thieves).collect();
            let seen = hand_out(&plan, len, &order, stride);
            prop_assert!(seen.iter().all(|&c| c == 1), "{:?}", seen.iter().filter(|&&c| c != 1).count());
        }

        #[test]
        fn never_wraps_on_huge_ranges(
            len in (usize::MAX / 2)..=usize::MAX,
            parts in 1..5usize,
            chunks_per_block in 1..32usize,
        ) {
            // Grains of at least a block / chunks_per_block, so the chunks can
            // be listed: they must tile 0..len exactly.
            let grain = (len / parts).div_ceil(chunks_per_block).max(1);
            let plan = StealPlan::new(len, parts, grain);
            let mut ranges = Vec::new();
            for me in (0..=parts).rev() {
                plan.for_each_chunk(me, |r| {
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
            prop_assert_eq!(next, len);
        }
    }
}
