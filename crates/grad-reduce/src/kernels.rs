//! The per-piece kernels. Their order of operations is part of the crate's
//! contract (see the crate documentation): it is fixed here, once, so every
//! thread computes a piece the same way.
//!
//! On x86-64 CPUs with AVX2 the same code is compiled a second time with
//! AVX2 enabled and chosen at run time: wider vectors, the same operations
//! on every element in the same order (Rust never fuses a multiply and an
//! add on its own), so the results are bitwise those of the portable path.

/// Lanes of the fixed-order sum of squares.
pub const SUMSQ_LANES: usize = 8;

/// Elements per sub-block of a piece: every source is added to a sub-block
/// of the destination while it sits in the L1 cache, and all sources
/// stream at once. A multiple of [`SUMSQ_LANES`].
const BLOCK: usize = 512;

/// The lane accumulators of the fixed-order sum of squares.
struct Lanes([f64; SUMSQ_LANES]);

impl Lanes {
    fn new() -> Self {
        Self([0.0; SUMSQ_LANES])
    }

    /// Adds the squares of `x`, whose first element goes to lane 0: all
    /// calls but the last must pass a multiple of [`SUMSQ_LANES`] elements.
    #[inline(always)]
    fn add(&mut self, x: &[f32]) {
        let mut chunks = x.chunks_exact(SUMSQ_LANES);
        for chunk in &mut chunks {
            for (lane, &v) in self.0.iter_mut().zip(chunk) {
                *lane += f64::from(v) * f64::from(v);
            }
        }
        for (lane, &v) in self.0.iter_mut().zip(chunks.remainder()) {
            *lane += f64::from(v) * f64::from(v);
        }
    }

    #[inline(always)]
    fn total(&self) -> f64 {
        let l = &self.0;
        ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]))
    }
}

/// Sources added in one pass over a sub-block: their slices sit in a stack
/// array, and each output element stays in registers while they are added,
/// so the destination is loaded and stored once per group, not per source.
const GROUP: usize = 8;

/// Elements per step of a pass: eight AVX2 vectors, eight independent
/// chains of additions (with two, each step waited for the latency of one
/// addition per source).
const STEP: usize = 16;

/// One pass of [`weighted_sum_portable`] over `block`: adds
/// `weights[i] * sources[i]` to every element in source order, starting from
/// `weights[0] * sources[0]` when `fresh`, else from `block`'s value. Every
/// source has `block.len()` elements. With `lanes`, the results' squares are
/// added to it (the last pass), while they are still in registers.
#[inline(always)]
fn add_group(
    block: &mut [f32],
    weights: &[f32],
    sources: &[&[f32]],
    fresh: bool,
    mut lanes: Option<&mut Lanes>,
) {
    let skip = usize::from(fresh);
    let mut steps = block.chunks_exact_mut(STEP);
    let mut k = 0;
    for out in &mut steps {
        let step = |source: &[f32]| -> [f32; STEP] {
            source[k..k + STEP].try_into().expect("a full step")
        };
        let mut acc = [0.0f32; STEP];
        if fresh {
            let s = step(sources[0]);
            for (a, s) in acc.iter_mut().zip(s) {
                *a = weights[0] * s;
            }
        } else {
            acc.copy_from_slice(out);
        }
        for (&w, source) in weights.iter().zip(sources).skip(skip) {
            let s = step(source);
            for (a, s) in acc.iter_mut().zip(s) {
                *a += w * s;
            }
        }
        out.copy_from_slice(&acc);
        if let Some(lanes) = lanes.as_deref_mut() {
            lanes.add(&acc);
        }
        k += STEP;
    }
    let tail = steps.into_remainder();
    for (j, out) in tail.iter_mut().enumerate() {
        let k = k + j;
        let mut v = if fresh {
            weights[0] * sources[0][k]
        } else {
            *out
        };
        for (&w, source) in weights.iter().zip(sources).skip(skip) {
            v += w * source[k];
        }
        *out = v;
    }
    if let Some(lanes) = lanes {
        lanes.add(tail);
    }
}

#[inline(always)]
fn weighted_sum_portable<'a>(
    out: &mut [f32],
    weights: &[f32],
    source: &impl Fn(usize) -> &'a [f32],
) -> f64 {
    let mut lanes = Lanes::new();
    let mut start = 0;
    while start < out.len() {
        let end = out.len().min(start + BLOCK);
        let block = &mut out[start..end];
        let mut first = 0;
        while first < weights.len() {
            let last = weights.len().min(first + GROUP);
            let mut group: [&[f32]; GROUP] = [&[]; GROUP];
            for (slot, i) in group.iter_mut().zip(first..last) {
                *slot = &source(i)[start..end];
            }
            let fresh = first == 0;
            let lanes = (last == weights.len()).then_some(&mut lanes);
            add_group(
                block,
                &weights[first..last],
                &group[..last - first],
                fresh,
                lanes,
            );
            first = last;
        }
        start = end;
    }
    lanes.total()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn weighted_sum_avx2<'a>(
    out: &mut [f32],
    weights: &[f32],
    source: &impl Fn(usize) -> &'a [f32],
) -> f64 {
    weighted_sum_portable(out, weights, source)
}

/// `out = sum_i weights[i] * source(i)` per element, as
/// `((w_0*s_0 + w_1*s_1) + w_2*s_2) + ...`, and returns the
/// [`sum_of_squares`] of the result. `source(i)` must have `out.len()`
/// elements; `weights` must not be empty.
pub(crate) fn weighted_sum<'a>(
    out: &mut [f32],
    weights: &[f32],
    source: &impl Fn(usize) -> &'a [f32],
) -> f64 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (checked just above).
        return unsafe { weighted_sum_avx2(out, weights, source) };
    }
    weighted_sum_portable(out, weights, source)
}

/// `x[k] = x[k] * s`.
pub(crate) fn scale_in_place(x: &mut [f32], s: f32) {
    for v in x {
        *v *= s;
    }
}

#[inline(always)]
fn sum_of_squares_portable(x: &[f32]) -> f64 {
    let mut lanes = Lanes::new();
    lanes.add(x);
    lanes.total()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn sum_of_squares_avx2(x: &[f32]) -> f64 {
    sum_of_squares_portable(x)
}

/// The sum of squares of `x` in `f64`, in the documented order: element `k`
/// is added to lane `k % 8` (in increasing `k`), and the lanes are combined
/// as `((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7))`.
///
/// It is finite exactly when every element is finite (an `f32` squared
/// cannot overflow an `f64`), which is how non-finite values are detected at
/// no extra cost.
pub fn sum_of_squares(x: &[f32]) -> f64 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (checked just above).
        return unsafe { sum_of_squares_avx2(x) };
    }
    sum_of_squares_portable(x)
}

/// The index of the first non-finite element.
pub(crate) fn first_non_finite(x: &[f32]) -> Option<usize> {
    x.iter().position(|v| !v.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n as u32)
            .map(|k| {
                let h = (k ^ seed).wrapping_mul(2_654_435_761);
                (h >> 8) as f32 / (1 << 24) as f32 * 2f32.powi((h % 40) as i32 - 20) - 1e-3
            })
            .collect()
    }

    /// `((w_0*s_0 + w_1*s_1) + w_2*s_2) + ...` one element at a time, and
    /// the lane-ordered sum of squares: the documented order, written plainly.
    fn reference(weights: &[f32], sources: &[Vec<f32>]) -> (Vec<f32>, f64) {
        let n = sources[0].len();
        let out: Vec<f32> = (0..n)
            .map(|k| {
                let mut v = weights[0] * sources[0][k];
                for (w, s) in weights.iter().zip(sources).skip(1) {
                    v += w * s[k];
                }
                v
            })
            .collect();
        let mut lanes = [0.0f64; SUMSQ_LANES];
        for (k, &v) in out.iter().enumerate() {
            lanes[k % SUMSQ_LANES] += f64::from(v) * f64::from(v);
        }
        let l = lanes;
        let sumsq = ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
        (out, sumsq)
    }

    #[test]
    fn every_source_count_and_length_gives_the_documented_bits() {
        // Source counts around the group size (one group, a full group, a
        // second group of 1, several groups); lengths with partial steps and
        // a partial block.
        for count in [1, 2, GROUP - 1, GROUP, GROUP + 1, 2 * GROUP + 3] {
            for n in [1, STEP - 1, STEP + 3, BLOCK, 2 * BLOCK + STEP + 5] {
                let sources: Vec<Vec<f32>> = (0..count).map(|i| values(n, i as u32 + 7)).collect();
                let weights: Vec<f32> = (0..count).map(|i| 0.37 - 0.11 * i as f32).collect();
                let source = |i: usize| sources[i].as_slice();
                let mut out = vec![f32::NAN; n];
                let sumsq = weighted_sum(&mut out, &weights, &source);
                let (want, want_sumsq) = reference(&weights, &sources);
                assert_eq!(
                    out.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    "{count} sources of {n}"
                );
                assert_eq!(
                    sumsq.to_bits(),
                    want_sumsq.to_bits(),
                    "{count} sources of {n}"
                );
            }
        }
    }

    #[test]
    fn avx2_and_portable_paths_give_the_same_bits() {
        let n = 3 * BLOCK + 13;
        let sources: Vec<Vec<f32>> = (0..5).map(|i| values(n, i)).collect();
        let weights = [0.3f32, -1.7, 2.5e-3, 1.0, 0.125];
        let source = |i: usize| sources[i].as_slice();
        let mut a = vec![0.0; n];
        let mut b = vec![0.0; n];
        let sa = weighted_sum(&mut a, &weights, &source);
        let sb = weighted_sum_portable(&mut b, &weights, &source);
        assert_eq!(
            a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            b.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        assert_eq!(sa.to_bits(), sb.to_bits());
        assert_eq!(
            sum_of_squares(&a).to_bits(),
            sum_of_squares_portable(&a).to_bits()
        );
        assert_eq!(
            sum_of_squares(&a).to_bits(),
            sa.to_bits(),
            "sub-blocks keep the lane order"
        );
    }
}
