//! Property tests (proptest) of every grad-reduce function that takes sizes
//! and counts from a caller (buffer lengths, number of sources, piece length,
//! sequential threshold, clipping threshold, token counts): for valid input
//! the result is bitwise the plain sequential reference on any pool; invalid
//! input gets `InvalidArgument` with a message and leaves `dst` untouched.

mod support;
use grad_reduce::{
    GradReducer, NonFinite, Origin, ReduceConfig, ReduceError, Weights, token_weights,
};
use proptest::prelude::*;
use sphere_pool::SpherePool;
use std::sync::{Mutex, MutexGuard, OnceLock};
use support::{reference_norm, reference_sum};

/// Pools of 2, 3 and 4 threads, made once and lent to one test at a time
/// (a pool runs one fork-join at once; tests run in parallel).
fn pools() -> MutexGuard<'static, Vec<SpherePool>> {
    static POOLS: OnceLock<Mutex<Vec<SpherePool>>> = OnceLock::new();
    POOLS
        .get_or_init(|| {
            Mutex::new(
                (2..=4)
                    .map(|t| SpherePool::with_threads(t).unwrap())
                    .collect(),
            )
        })
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// Gradient values over many magnitudes and both signs (from a seed, so a
/// case stays small and a different summation order changes the bits).
fn values(seed: u64, n: usize) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            let mantissa = (z >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
            mantissa * 2f32.powi((z % 24) as i32 - 12)
        })
        .collect()
}

/// `n` sets of buffers of lengths `lens`.
fn sets(seed: u64, n: usize, lens: &[usize]) -> Vec<Vec<Vec<f32>>> {
    (0..n)
        .map(|i| {
            lens.iter()
                .enumerate()
                .map(|(b, &len)| values(seed ^ ((i as u64) << 32 | b as u64), len))
                .collect()
        })
        .collect()
}

/// Reference clipping: `(max / norm) as f32` times every value above the limit.
fn ref_clip(buffers: &mut [Vec<f32>], norm: f64, max_norm: Option<f64>) -> (f32, bool) {
    match max_norm {
        Some(max) if norm > max => {
            let scale = (max / norm) as f32;
            buffers.iter_mut().flatten().for_each(|v| *v *= scale);
            (scale, true)
        }
        _ => (1.0, false),
    }
}

fn bits(buffers: &[Vec<f32>]) -> Vec<u32> {
    buffers.iter().flatten().map(|v| v.to_bits()).collect()
}

fn refs(sets: &[Vec<Vec<f32>>]) -> Vec<Vec<&[f32]>> {
    sets.iter()
        .map(|s| s.iter().map(Vec::as_slice).collect())
        .collect()
}

/// Runs a reduction into a destination pre-filled with 7.0.
fn reduce(
    r: &GradReducer,
    pool: Option<&SpherePool>,
    lens: &[usize],
    sets: &[Vec<Vec<f32>>],
    weights: Weights<'_>,
    max_norm: Option<f64>,
) -> (
    Vec<Vec<f32>>,
    Result<grad_reduce::ReduceSummary, ReduceError>,
) {
    let mut dst: Vec<Vec<f32>> = lens.iter().map(|&len| vec![7.0; len]).collect();
    let mut d: Vec<&mut [f32]> = dst.iter_mut().map(Vec::as_mut_slice).collect();
    let result = r.reduce(pool, &refs(sets), weights, &mut d, max_norm);
    (dst, result)
}

/// Layouts: 0 to 4 buffers of 0 to 3000 floats (empty buffers included).
fn layout() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(
        prop_oneof![Just(0usize), 0usize..20, 0usize..300, 0usize..3000],
        0..5,
    )
}

/// Piece lengths: tiny, ordinary, and huge (one piece per buffer; a cut that
/// computes `start + chunk_len` would wrap).
fn chunk_len() -> impl Strategy<Value = usize> {
    prop_oneof![
        1usize..10,
        1usize..400,
        Just(usize::MAX),
        Just(usize::MAX / 2 + 1)
    ]
}

/// Thresholds: always on the pool, sometimes, never.
fn sequential_below() -> impl Strategy<Value = usize> {
    prop_oneof![Just(0usize), 0usize..600, Just(usize::MAX)]
}

/// Clipping thresholds: none, tiny, around typical norms, huge.
fn max_norm() -> impl Strategy<Value = Option<f64>> {
    prop_oneof![
        Just(None),
        Just(Some(f64::MIN_POSITIVE)),
        (1e-3f64..10.0).prop_map(Some),
        Just(Some(f64::MAX)),
    ]
}

#[derive(Debug, Clone, Copy)]
enum W {
    Sum,
    Mean,
    Given,
}

fn config(chunk_len: usize, sequential_below: usize) -> ReduceConfig {
    ReduceConfig {
        chunk_len,
        sequential_below,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// Any layout, piece length, threshold, number of sources and weights:
    /// the result, norm, scale and piece count equal the reference to the
    /// bit, with no pool and on pools of 2 to 4 threads.
    #[test]
    fn reduce_is_the_sequential_reference_on_any_pool(
        lens in layout(),
        chunk in chunk_len(),
        below in sequential_below(),
        n in 1usize..7,
        w in prop_oneof![Just(W::Sum), Just(W::Mean), Just(W::Given)],
        max in max_norm(),
        seed: u64,
    ) {
        let r = GradReducer::with_config(&lens, config(chunk, below)).unwrap();
        let want_pieces: usize = lens.iter().map(|&l| l.div_ceil(chunk)).sum();
        prop_assert_eq!(r.pieces(), want_pieces);
        prop_assert_eq!(r.total_len(), lens.iter().sum::<usize>());
        let sets = sets(seed, n, &lens);
        let given = values(!seed, n);
        let (weights, wv) = match w {
            W::Sum => (Weights::Sum, vec![1.0; n]),
            W::Mean => (Weights::Mean, vec![1.0 / n as f32; n]),
            W::Given => (Weights::Given(&given), given.clone()),
        };
        let mut want = reference_sum(&sets, &wv);
        let norm = reference_norm(&want, chunk);
        let (scale, clipped) = ref_clip(&mut want, norm, max);
        let pools = pools();
        for pool in std::iter::once(None).chain(pools.iter().map(Some)) {
            let (got, result) = reduce(&r, pool, &lens, &sets, weights, max);
            let s = result.unwrap();
            prop_assert_eq!(s.norm.to_bits(), norm.to_bits());
            prop_assert_eq!(s.scale.to_bits(), scale.to_bits());
            prop_assert_eq!(s.clipped, clipped);
            prop_assert_eq!(bits(&got), bits(&want), "spheres {:?}", pool.map(SpherePool::spheres));
        }
    }

    /// `norm`, `check_finite` and `clip` on one set of buffers equal the
    /// reference to the bit on any pool.
    #[test]
    fn norm_and_clip_are_the_sequential_reference_on_any_pool(
        lens in layout(),
        chunk in chunk_len(),
        below in sequential_below(),
        max in (1e-3f64..10.0),
        seed: u64,
    ) {
        let r = GradReducer::with_config(&lens, config(chunk, below)).unwrap();
        let buffers = sets(seed, 1, &lens).remove(0);
        let norm = reference_norm(&buffers, chunk);
        let mut want = buffers.clone();
        let (scale, clipped) = ref_clip(&mut want, norm, Some(max));
        let pools = pools();
        for pool in std::iter::once(None).chain(pools.iter().map(Some)) {
            let shared: Vec<&[f32]> = buffers.iter().map(Vec::as_slice).collect();
            prop_assert_eq!(r.norm(pool, &shared).unwrap().to_bits(), norm.to_bits());
            prop_assert_eq!(r.check_finite(pool, &shared), Ok(()));
            let mut got = buffers.clone();
            let mut d: Vec<&mut [f32]> = got.iter_mut().map(Vec::as_mut_slice).collect();
            let s = r.clip(pool, &mut d, max).unwrap();
            prop_assert_eq!((s.norm.to_bits(), s.scale.to_bits(), s.clipped), (norm.to_bits(), scale.to_bits(), clipped));
            prop_assert_eq!(bits(&got), bits(&want));
            // At the limit exactly nothing is clipped (only above it).
            if norm > 0.0 {
                let mut got = buffers.clone();
                let mut d: Vec<&mut [f32]> = got.iter_mut().map(Vec::as_mut_slice).collect();
                let s = r.clip(pool, &mut d, norm).unwrap();
                prop_assert_eq!((s.scale, s.clipped), (1.0, false));
                prop_assert_eq!(bits(&got), bits(&buffers));
            }
        }
    }

    /// NaN/Inf planted at random places: reported at the first place in
    /// flat order (buffer, index) with the lowest source there, on any pool.
    #[test]
    fn the_first_non_finite_place_is_reported_on_any_pool(
        lens in prop::collection::vec(1usize..200, 1..4),
        chunk in chunk_len(),
        n in 1usize..5,
        bad in prop::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>(), any::<prop::sample::Index>(), prop_oneof![Just(f32::NAN), Just(f32::INFINITY), Just(f32::NEG_INFINITY)]), 1..4),
        seed: u64,
    ) {
        let r = GradReducer::with_config(&lens, config(chunk, 0)).unwrap();
        let mut sets = sets(seed, n, &lens);
        let mut places = Vec::new();
        for (s, b, k, v) in &bad {
            let (s, b) = (s.index(n), b.index(lens.len()));
            let k = k.index(lens[b]);
            sets[s][b][k] = *v;
            places.push((b, k, s));
        }
        let (b, k, s) = places.into_iter().min().unwrap();
        let want = NonFinite { origin: Origin::Source(s), buffer: b, index: k, value: sets[s][b][k] };
        let pools = pools();
        for pool in std::iter::once(None).chain(pools.iter().map(Some)) {
            match reduce(&r, pool, &lens, &sets, Weights::Sum, None).1 {
                Err(ReduceError::NonFinite(got)) => {
                    prop_assert_eq!((got.origin, got.buffer, got.index), (want.origin, want.buffer, want.index));
                    prop_assert_eq!(got.value.to_bits(), want.value.to_bits());
                }
                other => prop_assert!(false, "expected NonFinite {:?}, got {:?}", want, other),
            }
            let shared: Vec<&[f32]> = sets[s].iter().map(Vec::as_slice).collect();
            match r.check_finite(pool, &shared) {
                Err(ReduceError::NonFinite(got)) => {
                    // Source `s` holds a bad value at (b, k); its own first one may be earlier.
                    prop_assert_eq!(got.origin, Origin::Destination);
                    prop_assert!((got.buffer, got.index) <= (b, k));
                    prop_assert!(!sets[s][got.buffer][got.index].is_finite());
                }
                other => prop_assert!(false, "expected NonFinite, got {:?}", other),
            }
        }
    }

    /// Wrong buffer counts and lengths, no sources, wrong weight counts,
    /// non-finite weights and bad thresholds: `InvalidArgument` with a
    /// message, `dst` untouched, on any pool.
    #[test]
    fn invalid_arguments_are_errors_and_write_nothing(
        lens in prop::collection::vec(0usize..100, 1..4),
        chunk in chunk_len(),
        n in 1usize..5,
        which in 0usize..7,
        pick in any::<prop::sample::Index>(),
        delta in prop_oneof![Just(1usize), 1usize..1000],
        bad_max in prop_oneof![Just(0.0f64), Just(-1.0), Just(f64::NAN), Just(f64::INFINITY), Just(-0.0), Just(f64::NEG_INFINITY)],
        seed: u64,
    ) {
        let r = GradReducer::with_config(&lens, config(chunk, 0)).unwrap();
        let sets_ok = sets(seed, n, &lens);
        let mut src_lens = lens.clone();
        let mut dst_lens = lens.clone();
        let mut sources = n;
        let mut given = vec![0.5f32; n];
        let mut weights_given = false;
        let mut max = None;
        let b = pick.index(lens.len());
        match which {
            0 => src_lens[b] += delta,                        // a source buffer too long
            1 => dst_lens[b] = lens[b].saturating_sub(delta), // the destination too short
            2 => src_lens.push(delta),                        // one buffer too many
            3 => sources = 0,                                 // nothing to reduce
            4 => { given.resize(n + delta, 0.5); weights_given = true }
            5 => { given[pick.index(n)] = f32::NAN; weights_given = true }
            _ => max = Some(bad_max),
        }
        // Case 1 with an empty buffer is a valid call: make it invalid.
        if which == 1 && lens[b] == 0 { dst_lens.pop(); }
        let mut sets = sets(seed, sources, &src_lens);
        if which <= 2 && sources > 1 {
            sets[1..].clone_from_slice(&sets_ok[1..]);
        }
        let weights = if weights_given { Weights::Given(&given) } else { Weights::Mean };
        let pools = pools();
        for pool in std::iter::once(None).chain(pools.iter().map(Some)) {
            let (dst, result) = reduce(&r, pool, &dst_lens, &sets, weights, max);
            match result {
                Err(ReduceError::InvalidArgument(msg)) => prop_assert!(!msg.is_empty()),
                other => prop_assert!(false, "case {} gave {:?}", which, other),
            }
            prop_assert!(dst.iter().flatten().all(|&v| v == 7.0), "dst written");
            if which == 6 {
                let mut buf: Vec<Vec<f32>> = lens.iter().map(|&l| vec![7.0; l]).collect();
                let mut d: Vec<&mut [f32]> = buf.iter_mut().map(Vec::as_mut_slice).collect();
                prop_assert!(matches!(r.clip(pool, &mut d, bad_max), Err(ReduceError::InvalidArgument(_))));
            }
            if which == 0 || which == 2 {
                let bad: Vec<&[f32]> = sets[0].iter().map(Vec::as_slice).collect();
                prop_assert!(matches!(r.norm(pool, &bad), Err(ReduceError::InvalidArgument(_))));
            }
        }
    }

    /// Token weights for any counts (up to `u32::MAX` each): each in [0, 1],
    /// exactly the documented `count / total` in `f64` rounded to `f32`
    /// (a `u32` total would wrap), all 0.0 for a zero total.
    #[test]
    fn token_weights_are_count_over_total_for_any_counts(
        counts in prop::collection::vec(prop_oneof![Just(0u32), Just(u32::MAX), any::<u32>()], 0..40),
    ) {
        let w = token_weights(&counts);
        prop_assert_eq!(w.len(), counts.len());
        let total: u128 = counts.iter().map(|&c| u128::from(c)).sum();
        for (&c, &wi) in counts.iter().zip(&w) {
            let want = if total == 0 { 0.0 } else { (f64::from(c) / total as f64) as f32 };
            prop_assert_eq!(wi.to_bits(), want.to_bits());
            prop_assert!((0.0..=1.0).contains(&wi));
        }
        if total > 0 {
            let sum: f64 = w.iter().map(|&v| f64::from(v)).sum();
            prop_assert!((sum - 1.0).abs() < 1e-5, "weights sum to {}", sum);
        }
    }
}

/// A piece length of 0 is refused with a message, for any layout.
#[test]
fn chunk_len_zero_is_an_error() {
    for lens in [&[][..], &[0], &[5, 3], &[usize::MAX]] {
        match GradReducer::with_config(lens, config(0, 0)) {
            Err(ReduceError::InvalidArgument(msg)) => assert!(msg.contains("chunk_len")),
            other => panic!("{lens:?}: {other:?}"),
        }
    }
}

/// Layouts whose total length does not fit a `usize` cannot be matched by
/// any buffers; they must be refused, not counted with a wrapped total
/// (`total_len()` was 0 here in release before the check).
#[test]
fn a_layout_longer_than_usize_is_refused() {
    match GradReducer::with_config(&[usize::MAX, 1], config(usize::MAX, 0)) {
        Err(ReduceError::InvalidArgument(msg)) => assert!(!msg.is_empty()),
        Ok(r) => panic!("accepted; total_len() = {}", r.total_len()),
        Err(e) => panic!("{e:?}"),
    }
}

/// Sizes from the caller never abort the process: a length near
/// `usize::MAX` with a piece length above half of it wrapped
/// `start + chunk_len` in `plan::cut` and allocated until the process died,
/// and 2^58 floats in default pieces tried to build 2^46 pieces ("memory
/// allocation of 3221225472 bytes failed" under a 2 GB limit). Both are now
/// refused before anything is allocated.
#[test]
fn absurd_layouts_are_refused_not_allocated() {
    let cases: [(&[usize], usize); 4] = [
        (&[usize::MAX], usize::MAX / 2 + 1),
        (&[1 << 58], 4096),
        (&[isize::MAX as usize / 4 + 1], 1 << 40),
        (&[1 << 40, 1 << 40], 1),
    ];
    for (lens, chunk_len) in cases {
        match GradReducer::with_config(lens, config(chunk_len, 0)) {
            Err(ReduceError::InvalidArgument(msg)) => assert!(!msg.is_empty()),
            Ok(r) => panic!("{lens:?} / {chunk_len}: accepted, {} pieces", r.pieces()),
            Err(e) => panic!("{lens:?} / {chunk_len}: {e:?}"),
        }
    }
    // The largest piece count allowed is still accepted.
    let r = GradReducer::with_config(&[grad_reduce::MAX_PIECES], config(1, 0)).unwrap();
    assert_eq!(r.pieces(), grad_reduce::MAX_PIECES);
}
