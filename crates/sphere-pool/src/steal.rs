//! The work-stealing plan of a parallel-for: each participant's block of
//! the range and the cursors that hand out its chunks, to the owner first
//! and then to thieves.

use crossbeam_utils::CachePadded;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// The blocks of `parts` participants over `0..len` and their cursors.
pub(crate) struct StealPlan {
    len: usize,
    parts: usize,
    grain: usize,
    cursors: Box<[CachePadded<AtomicUsize>]>,
}

impl StealPlan {
    /// Chunks of at most `grain` items. The caller keeps `grain` at most
    /// the longest block and `len` at most `MAX_RANGE_LEN`, so that no
    /// cursor wraps around (each participant moves a cursor past its
    /// block's end at most once: cursors stay below `2 * len + parts`).
    pub(crate) fn new(len: usize, parts: usize, grain: usize) -> Self {
        let cursors = (0..parts)
            .map(|p| CachePadded::new(AtomicUsize::new(Self::block_start(len, parts, p))))
            .collect();
        Self {
            len,
            parts,
            grain,
            cursors,
        }
    }

    fn block_start(len: usize, parts: usize, p: usize) -> usize {
        // u128 avoids overflow of len * p for huge ranges.
        (len as u128 * p as u128 / parts as u128) as usize
    }

    /// Calls `chunk` on chunks of this participant's block, then on chunks
    /// stolen from the others, until everything is taken, `stop` is set, or
    /// `chunk` returns false.
    pub(crate) fn for_each_chunk(
        &self,
        me: usize,
        stop: &AtomicBool,
        mut chunk: impl FnMut(Range<usize>) -> bool,
    ) {
        for victim in (me..self.parts).chain(0..me) {
            let end = Self::block_start(self.len, self.parts, victim + 1);
            let cursor = &self.cursors[victim];
            loop {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                // Claims beyond `end` are empty (see `new`).
                let start = cursor.fetch_add(self.grain, Ordering::Relaxed);
                if start >= end {
                    break;
                }
                if !chunk(start..end.min(start + self.grain)) {
                    return;
                }
            }
        }
    }
}
