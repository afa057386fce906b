//! Map-reduce over a range with a fixed combination order: the result is
//! bitwise the same for any number of spheres and any timing.
//!
//! The range is cut into chunks of a fixed length (the caller's, or
//! [`REDUCE_CHUNK`]), independent of the pool. `map` turns each chunk into
//! a partial value; the partials are combined as a fixed binary tree over
//! the chunk indices (a node over chunks `[lo, hi)` combines `[lo, mid)` and
//! `[mid, hi)` with `mid = lo + (hi - lo) / 2`). Only the range's length and
//! the chunk length decide the tree, so floating-point sums come out with the
//! same bits on 1 thread or 48.
//!
//! The work is the tree's subtrees at depth [`CUT_DEPTH`] (at most 1024),
//! each evaluated depth-first by one participant (work stealing over
//! subtrees); the top of the tree is then combined on the caller. Memory is
//! one partial per subtree, whatever the range's length.

use crate::error::{Error, Worker};
use crate::pool::SpherePool;
use std::ops::Range;
use std::sync::OnceLock;

/// The chunk length used when the caller passes 0.
pub const REDUCE_CHUNK: usize = 4096;

/// Depth at which the tree is cut into subtrees computed in parallel.
const CUT_DEPTH: u32 = 10;

/// The items of chunk `c`: `[c * chunk, min((c + 1) * chunk, len))`,
/// shifted by `start`. `c < chunks` keeps `c * chunk < len`: no overflow.
fn chunk_range(start: usize, len: usize, chunk: usize, c: usize) -> Range<usize> {
    let first = c * chunk;
    start + first..start + first + chunk.min(len - first)
}

/// The subtrees of the tree over chunks `[lo, hi)` at `depth` below the
/// node, or leaves reached earlier, left to right.
fn cut(lo: usize, hi: usize, depth: u32, out: &mut Vec<Range<usize>>) {
    if depth == 0 || hi - lo == 1 {
        out.push(lo..hi);
    } else {
        let mid = lo + (hi - lo) / 2;
        cut(lo, mid, depth - 1, out);
        cut(mid, hi, depth - 1, out);
    }
}

impl SpherePool {
    /// Map-reduce with a fixed combination order (see the module docs):
    /// cuts `range` into chunks of `chunk` items (0: [`REDUCE_CHUNK`]),
    /// calls `map` on each (in parallel), and combines the partials as a
    /// fixed binary tree over the chunk indices, so the result is bitwise
    /// the same for any sphere count and any timing. An empty range gives
    /// `identity`. Errors as [`parallel_for`](Self::parallel_for) (reversed
    /// or too long range, a panic in `map` or `combine`).
    ///
    /// ```
    /// use sphere_pool::SpherePool;
    /// let data: Vec<f64> = (0..100_000).map(|i| 1.0 / (1.0 + i as f64)).collect();
    /// let sum = |pool: &SpherePool| {
    ///     pool.reduce(0..data.len(), 1000, 0.0, |r| data[r].iter().sum::<f64>(), |a, b| a + b)
    ///         .unwrap()
    /// };
    /// let one = sum(&SpherePool::with_threads(1).unwrap());
    /// let four = sum(&SpherePool::with_threads(4).unwrap());
    /// assert_eq!(one.to_bits(), four.to_bits());
    /// ```
    pub fn reduce<T: Send + Sync>(
        &self,
        range: Range<usize>,
        chunk: usize,
        identity: T,
        map: impl Fn(Range<usize>) -> T + Sync,
        combine: impl Fn(T, T) -> T + Sync,
    ) -> Result<T, Error> {
        self.try_reduce(
            range,
            chunk,
            identity,
            |r| Ok(map(r)),
            |a, b| Ok(combine(a, b)),
        )
    }

    /// As [`reduce`](Self::reduce) with a `map` and `combine` that may fail
    /// with an error code: the first failure stops the work and is returned
    /// as [`Error::JobFailed`].
    pub fn try_reduce<T: Send + Sync>(
        &self,
        range: Range<usize>,
        chunk: usize,
        identity: T,
        map: impl Fn(Range<usize>) -> Result<T, i32> + Sync,
        combine: impl Fn(T, T) -> Result<T, i32> + Sync,
    ) -> Result<T, Error> {
        if range.start > range.end {
            return Err(Error::InvalidArgument(format!(
                "range start {} is after its end {}",
                range.start, range.end
            )));
        }
        let (start, len) = (range.start, range.end - range.start);
        if len == 0 {
            return Ok(identity);
        }
        let chunk = if chunk == 0 { REDUCE_CHUNK } else { chunk };
        let chunks = len.div_ceil(chunk);
        let mut subtrees = Vec::new();
        cut(0, chunks, CUT_DEPTH, &mut subtrees);
        // Depth-first over one subtree, left before right.
        let eval = |lo: usize, hi: usize| -> Result<T, i32> {
            fn go<T>(
                lo: usize,
                hi: usize,
                leaf: &dyn Fn(usize) -> Result<T, i32>,
                combine: &dyn Fn(T, T) -> Result<T, i32>,
            ) -> Result<T, i32> {
                if hi - lo == 1 {
                    return leaf(lo);
                }
                let mid = lo + (hi - lo) / 2;
                let left = go(lo, mid, leaf, combine)?;
                combine(left, go(mid, hi, leaf, combine)?)
            }
            go(
                lo,
                hi,
                &|c| map(chunk_range(start, len, chunk, c)),
                &combine,
            )
        };
        let partials: Vec<OnceLock<T>> = subtrees.iter().map(|_| OnceLock::new()).collect();
        self.parallel_for_with(0..subtrees.len(), 1, |ids, _| {
            for i in ids {
                let value = eval(subtrees[i].start, subtrees[i].end)?;
                let _ = partials[i].set(value);
            }
            Ok(())
        })?;
        // The top of the tree, on the caller, in the same shape.
        let mut values = partials
            .into_iter()
            .map(|p| p.into_inner().expect("every subtree was computed"));
        fn top<T>(
            lo: usize,
            hi: usize,
            depth: u32,
            values: &mut dyn Iterator<Item = T>,
            combine: &dyn Fn(T, T) -> Result<T, i32>,
        ) -> Result<T, i32> {
            if depth == 0 || hi - lo == 1 {
                return Ok(values.next().expect("one value per subtree"));
            }
            let mid = lo + (hi - lo) / 2;
            let left = top(lo, mid, depth - 1, values, combine)?;
            combine(left, top(mid, hi, depth - 1, values, combine)?)
        }
        let worker = Worker::Caller;
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            top(0, chunks, CUT_DEPTH, &mut values, &combine)
        }))
        .map_err(|payload| Error::Panicked {
            worker,
            message: crate::error::panic_text(payload),
        })?
        .map_err(|code| Error::JobFailed { worker, code })
    }

    /// The sum of `data` with a fixed order: bitwise the same for any
    /// sphere count and any timing (see [`reduce`](Self::reduce)). Each
    /// chunk of [`REDUCE_CHUNK`] values is summed in eight interleaved lanes
    /// (fast, and still a fixed order), then the chunks' sums are combined
    /// as a fixed tree. The result differs in the last bits from a plain
    /// left-to-right sum, as any reordering of floating-point additions does.
    pub fn sum_f64(&self, data: &[f64]) -> Result<f64, Error> {
        self.reduce(
            0..data.len(),
            REDUCE_CHUNK,
            0.0,
            |r| sum_lanes(&data[r]),
            |a, b| a + b,
        )
    }
}

/// Sums `values` in eight lanes (lane `j` takes the items `j mod 8` of each
/// group of eight), then the lanes pairwise and the tail in order: a fixed
/// order that the compiler can vectorise.
fn sum_lanes(values: &[f64]) -> f64 {
    let mut lanes = [0.0f64; 8];
    let groups = values.chunks_exact(8);
    let tail = groups.remainder();
    for group in groups {
        for (lane, v) in lanes.iter_mut().zip(group) {
            *lane += v;
        }
    }
    let [a, b, c, d, e, f, g, h] = lanes;
    let mut sum = ((a + b) + (c + d)) + ((e + f) + (g + h));
    for v in tail {
        sum += v;
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cut_covers_every_chunk_once_in_order() {
        for chunks in [1, 2, 3, 7, 1000, 1024, 1025, 5000, 1 << 20] {
            let mut subtrees = Vec::new();
            cut(0, chunks, CUT_DEPTH, &mut subtrees);
            assert!(subtrees.len() <= 1 << CUT_DEPTH);
            let mut next = 0;
            for s in &subtrees {
                assert_eq!(s.start, next);
                assert!(s.start < s.end);
                next = s.end;
            }
            assert_eq!(next, chunks);
        }
    }

    #[test]
    fn lanes_sum_exact_values_exactly() {
        let v: Vec<f64> = (1..=1003).map(f64::from).collect();
        assert_eq!(sum_lanes(&v), 1003.0 * 1004.0 / 2.0);
        assert_eq!(sum_lanes(&[]), 0.0);
    }
}
