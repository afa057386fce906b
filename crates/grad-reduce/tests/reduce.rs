//! Behaviour of the reduction: bitwise determinism across thread counts,
//! agreement with a plain sequential reference, NaN/Inf detection, clipping.

mod support;
use grad_reduce::{
    GradBuffers, GradReducer, NonFinite, Origin, ReduceConfig, ReduceError, Weights,
    sum_of_squares, token_weights,
};
use sphere_pool::SpherePool;
use support::{reference_norm, reference_sum};

/// splitmix64: a small deterministic generator for the random cases.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Values over many orders of magnitude and both signs, so that a
    /// different summation order would change the bits.
    fn value(&mut self) -> f32 {
        let mantissa = (self.next() >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
        let exponent = self.below(24) as i32 - 12;
        mantissa * 2f32.powi(exponent)
    }

    /// `sources` gradient sets of random values, one buffer per length.
    fn sets(&mut self, sources: usize, lens: &[usize]) -> Vec<Vec<Vec<f32>>> {
        (0..sources)
            .map(|_| {
                lens.iter()
                    .map(|&len| (0..len).map(|_| self.value()).collect())
                    .collect()
            })
            .collect()
    }
}

/// Pools for 2, 3 and 4 threads (spheres + the caller); 1 thread is `None`.
fn pools() -> Vec<SpherePool> {
    (1..=3).map(|n| SpherePool::new(n).unwrap()).collect()
}

fn as_sources(sets: &[Vec<Vec<f32>>]) -> Vec<Vec<&[f32]>> {
    sets.iter()
        .map(|s| s.iter().map(Vec::as_slice).collect())
        .collect()
}

fn bits(buffers: &[Vec<f32>]) -> Vec<u32> {
    buffers.iter().flatten().map(|v| v.to_bits()).collect()
}

fn run(
    reducer: &GradReducer,
    pool: Option<&SpherePool>,
    sets: &[Vec<Vec<f32>>],
    weights: Weights<'_>,
    max_norm: Option<f64>,
) -> (
    Vec<Vec<f32>>,
    Result<grad_reduce::ReduceSummary, ReduceError>,
) {
    let mut dst: Vec<Vec<f32>> = reducer
        .buffer_lens()
        .iter()
        .map(|&len| vec![f32::NAN; len])
        .collect();
    let mut dst_refs: Vec<&mut [f32]> = dst.iter_mut().map(Vec::as_mut_slice).collect();
    let result = reducer.reduce(pool, &as_sources(sets), weights, &mut dst_refs, max_norm);
    (dst, result)
}

fn random_case(rng: &mut Rng) -> (Vec<usize>, Vec<Vec<Vec<f32>>>, Vec<f32>) {
    let buffers = 1 + rng.below(5) as usize;
    let lens: Vec<usize> = (0..buffers)
        .map(|_| match rng.below(4) {
            0 => 0,
            1 => rng.below(20) as usize,
            _ => rng.below(3000) as usize,
        })
        .collect();
    let sources = 1 + rng.below(6) as usize;
    let sets = rng.sets(sources, &lens);
    let weights = (0..sources).map(|_| rng.value()).collect();
    (lens, sets, weights)
}

#[test]
fn reduction_is_bitwise_equal_for_1_to_4_threads_and_to_the_sequential_reference() {
    let pools = pools();
    let mut rng = Rng(1);
    for case in 0..60 {
        let (lens, sets, weights) = random_case(&mut rng);
        let chunk = [1, 7, 64, 500][case % 4];
        let config = ReduceConfig {
            chunk_len: chunk,
            sequential_below: 0,
        };
        let reducer = GradReducer::with_config(&lens, config).unwrap();
        let expect = reference_sum(&sets, &weights);
        let expect_norm = reference_norm(&expect, chunk);
        let (one, summary) = run(&reducer, None, &sets, Weights::Given(&weights), None);
        assert_eq!(
            bits(&one),
            bits(&expect),
            "case {case}: 1 thread vs reference"
        );
        let summary = summary.unwrap();
        assert_eq!(
            summary.norm.to_bits(),
            expect_norm.to_bits(),
            "case {case}: norm"
        );
        assert!(!summary.clipped && summary.scale == 1.0);
        for pool in &pools {
            let (many, many_summary) =
                run(&reducer, Some(pool), &sets, Weights::Given(&weights), None);
            assert_eq!(
                bits(&many),
                bits(&one),
                "case {case}: {} threads",
                pool.participants()
            );
            assert_eq!(
                many_summary.unwrap(),
                summary,
                "case {case}: {} threads",
                pool.participants()
            );
        }
    }
}

#[test]
fn repeated_parallel_runs_under_oversubscription_give_the_same_bits() {
    // 4 threads on 2 cores: timing varies from run to run, the result not.
    let pool = SpherePool::new(3).unwrap();
    let mut rng = Rng(2);
    let lens = [100_000, 3, 40_000];
    let sets = rng.sets(4, &lens);
    let reducer = GradReducer::new(&lens);
    assert!(reducer.pieces() > 4, "enough pieces to spread");
    let (first, first_summary) = run(&reducer, Some(&pool), &sets, Weights::Mean, Some(1.0));
    let first_summary = first_summary.unwrap();
    for _ in 0..30 {
        let (again, summary) = run(&reducer, Some(&pool), &sets, Weights::Mean, Some(1.0));
        assert_eq!(bits(&again), bits(&first));
        assert_eq!(summary.unwrap(), first_summary);
    }
}

#[test]
fn sum_mean_and_token_weights_mean_what_they_say() {
    let reducer = GradReducer::new(&[3]);
    let sets = vec![vec![vec![1.0, 2.0, 4.0]], vec![vec![3.0, 6.0, 8.0]]];
    assert_eq!(
        run(&reducer, None, &sets, Weights::Sum, None).0,
        vec![vec![4.0, 8.0, 12.0]]
    );
    assert_eq!(
        run(&reducer, None, &sets, Weights::Mean, None).0,
        vec![vec![2.0, 4.0, 6.0]]
    );
    let w = token_weights(&[1, 3]);
    assert_eq!(w, vec![0.25, 0.75]);
    assert_eq!(
        run(&reducer, None, &sets, Weights::Given(&w), None).0,
        vec![vec![2.5, 5.0, 7.0]]
    );
    assert_eq!(token_weights(&[0, 0]), vec![0.0, 0.0]);
}

#[test]
fn sequential_threshold_does_not_change_the_result() {
    let pool = SpherePool::new(2).unwrap();
    let mut rng = Rng(3);
    let lens = [5000, 7000];
    let sets = rng.sets(3, &lens);
    let small = ReduceConfig {
        chunk_len: 256,
        sequential_below: usize::MAX,
    };
    let large = ReduceConfig {
        chunk_len: 256,
        sequential_below: 0,
    };
    let a = run(
        &GradReducer::with_config(&lens, small).unwrap(),
        Some(&pool),
        &sets,
        Weights::Mean,
        None,
    );
    let b = run(
        &GradReducer::with_config(&lens, large).unwrap(),
        Some(&pool),
        &sets,
        Weights::Mean,
        None,
    );
    assert_eq!(bits(&a.0), bits(&b.0));
    assert_eq!(a.1.unwrap(), b.1.unwrap());
}

fn non_finite(result: Result<grad_reduce::ReduceSummary, ReduceError>) -> NonFinite {
    match result {
        Err(ReduceError::NonFinite(nf)) => nf,
        other => panic!("expected a NonFinite error, got {other:?}"),
    }
}

#[test]
fn nan_and_inf_are_reported_at_the_first_place_with_the_lowest_source() {
    let pool = SpherePool::new(3).unwrap();
    let lens = [1000, 5000, 300, 9000];
    let config = ReduceConfig {
        chunk_len: 128,
        sequential_below: 0,
    };
    let reducer = GradReducer::with_config(&lens, config).unwrap();
    let clean: Vec<Vec<Vec<f32>>> = (0..4)
        .map(|_| lens.iter().map(|&len| vec![0.5; len]).collect())
        .collect();
    for pool in [None, Some(&pool)] {
        let mut sets = clean.clone();
        sets[3][3][10] = f32::NAN; // later buffer: not the first place
        sets[2][1][4321] = f32::INFINITY; // the first place in flat order ...
        sets[1][1][4321] = f32::NEG_INFINITY; // ... where source 1 is the lowest
        sets[0][1][4400] = f32::NAN;
        let nf = non_finite(run(&reducer, pool, &sets, Weights::Mean, Some(1.0)).1);
        assert_eq!(
            (nf.origin, nf.buffer, nf.index),
            (Origin::Source(1), 1, 4321)
        );
        assert_eq!(nf.value, f32::NEG_INFINITY);
        let message = ReduceError::NonFinite(nf).to_string();
        assert!(
            message.contains("source 1")
                && message.contains("buffer 1")
                && message.contains("index 4321"),
            "{message}"
        );

        let mut sets = clean.clone();
        sets[2][0][0] = f32::NAN;
        let nf = non_finite(run(&reducer, pool, &sets, Weights::Sum, None).1);
        assert_eq!((nf.origin, nf.buffer, nf.index), (Origin::Source(2), 0, 0));
        assert!(nf.value.is_nan());
        assert!(ReduceError::NonFinite(nf).to_string().contains("NaN"));

        // Finite sources whose sum overflows: the destination is named.
        let mut sets = clean.clone();
        sets[0][3][8999] = 3e38;
        sets[1][3][8999] = 3e38;
        let nf = non_finite(run(&reducer, pool, &sets, Weights::Sum, None).1);
        assert_eq!(
            (nf.origin, nf.buffer, nf.index),
            (Origin::Destination, 3, 8999)
        );
        assert_eq!(nf.value, f32::INFINITY);
    }
}

#[test]
fn norm_and_check_finite_find_the_first_bad_value() {
    let pool = SpherePool::new(1).unwrap();
    let reducer = GradReducer::with_config(
        &[10, 70_000],
        ReduceConfig {
            chunk_len: 1000,
            sequential_below: 0,
        },
    )
    .unwrap();
    let mut a = vec![3.0f32; 10];
    let mut b = vec![0.0f32; 70_000];
    a[0] = 4.0;
    b[69_999] = 12.0;
    let expect = (16.0f64 + 9.0 * 9.0 + 144.0).sqrt();
    assert_eq!(reducer.norm(Some(&pool), &[&a, &b]).unwrap(), expect);
    assert!(reducer.check_finite(Some(&pool), &[&a, &b]).is_ok());
    b[50_000] = f32::NAN;
    a[9] = f32::INFINITY;
    for p in [None, Some(&pool)] {
        let err = reducer.check_finite(p, &[&a, &b]).unwrap_err();
        let ReduceError::NonFinite(nf) = err else {
            panic!("{err:?}")
        };
        assert_eq!(
            (nf.origin, nf.buffer, nf.index, nf.value),
            (Origin::Destination, 0, 9, f32::INFINITY)
        );
    }
}

#[test]
fn clipping_scales_to_the_limit_only_above_it() {
    let pool = SpherePool::new(2).unwrap();
    let mut rng = Rng(4);
    let lens = [30_000, 17];
    let sets = rng.sets(2, &lens);
    let config = ReduceConfig {
        chunk_len: 1024,
        sequential_below: 0,
    };
    let reducer = GradReducer::with_config(&lens, config).unwrap();
    let (plain, summary) = run(&reducer, Some(&pool), &sets, Weights::Sum, None);
    let norm = summary.unwrap().norm;
    assert!(norm > 1.0);

    // Above the limit: scaled by limit / norm, the new norm is the limit.
    let limit = norm / 4.0;
    let (clipped, summary) = run(&reducer, Some(&pool), &sets, Weights::Sum, Some(limit));
    let summary = summary.unwrap();
    assert!(summary.clipped);
    assert_eq!(
        summary.norm, norm,
        "the summary reports the norm before clipping"
    );
    assert_eq!(summary.scale, (limit / norm) as f32);
    let scaled: Vec<Vec<f32>> = plain
        .iter()
        .map(|b| b.iter().map(|v| v * summary.scale).collect())
        .collect();
    assert_eq!(bits(&clipped), bits(&scaled));
    let clipped_refs: Vec<&[f32]> = clipped.iter().map(Vec::as_slice).collect();
    let after = reducer.norm(Some(&pool), &clipped_refs).unwrap();
    assert!(
        (after - limit).abs() <= 1e-6 * limit,
        "norm after clipping {after}, limit {limit}"
    );

    // At or below the limit: untouched.
    let (same, summary) = run(&reducer, Some(&pool), &sets, Weights::Sum, Some(norm * 2.0));
    assert!(!summary.unwrap().clipped);
    assert_eq!(bits(&same), bits(&plain));

    // clip() on one set of buffers does the same as reduce's clipping.
    let mut again = plain.clone();
    let mut refs: Vec<&mut [f32]> = again.iter_mut().map(Vec::as_mut_slice).collect();
    let summary = reducer.clip(None, &mut refs, limit).unwrap();
    assert!(summary.clipped && summary.norm == norm);
    assert_eq!(bits(&again), bits(&clipped));
}

#[test]
fn bad_arguments_are_rejected_before_anything_is_written() {
    let reducer = GradReducer::new(&[4, 2]);
    let good = vec![vec![1.0f32; 4], vec![1.0f32; 2]];
    let short = vec![vec![1.0f32; 4], vec![1.0f32; 1]];
    let mut dst = [vec![7.0f32; 4], vec![7.0f32; 2]];
    let invalid = |r: Result<grad_reduce::ReduceSummary, ReduceError>| {
        matches!(r, Err(ReduceError::InvalidArgument(_)))
    };
    let mut check = |sets: &[Vec<Vec<f32>>], w: Weights<'_>, max: Option<f64>| {
        let mut refs: Vec<&mut [f32]> = dst.iter_mut().map(Vec::as_mut_slice).collect();
        invalid(reducer.reduce(None, &as_sources(sets), w, &mut refs, max))
    };
    assert!(check(&[], Weights::Sum, None), "no sources");
    assert!(
        check(&[good.clone(), short.clone()], Weights::Sum, None),
        "a buffer of the wrong length"
    );
    assert!(
        check(&[vec![vec![1.0; 4]]], Weights::Sum, None),
        "a missing buffer"
    );
    assert!(
        check(
            std::slice::from_ref(&good),
            Weights::Given(&[1.0, 2.0]),
            None
        ),
        "weights for 2 of 1 sources"
    );
    assert!(
        check(
            std::slice::from_ref(&good),
            Weights::Given(&[f32::NAN]),
            None
        ),
        "a NaN weight"
    );
    assert!(
        check(std::slice::from_ref(&good), Weights::Sum, Some(0.0)),
        "max_norm 0"
    );
    assert!(
        check(
            std::slice::from_ref(&good),
            Weights::Sum,
            Some(f64::INFINITY)
        ),
        "max_norm Inf"
    );
    assert!(dst.iter().flatten().all(|&v| v == 7.0), "nothing written");
    let mut short_dst = [vec![0.0f32; 4]];
    let mut refs: Vec<&mut [f32]> = short_dst.iter_mut().map(Vec::as_mut_slice).collect();
    assert!(
        invalid(reducer.reduce(None, &as_sources(&[good]), Weights::Sum, &mut refs, None)),
        "a short destination"
    );
    assert!(
        GradReducer::with_config(
            &[4],
            ReduceConfig {
                chunk_len: 0,
                sequential_below: 0
            }
        )
        .is_err()
    );
}

#[test]
fn a_pool_busy_with_another_fork_join_is_reported() {
    let pool = SpherePool::new(1).unwrap();
    let reducer = GradReducer::with_config(
        &[100],
        ReduceConfig {
            chunk_len: 10,
            sequential_below: 0,
        },
    )
    .unwrap();
    let src = vec![1.0f32; 100];
    let sources = [vec![src.as_slice()]];
    let mut errors = std::sync::Mutex::new(Vec::new());
    pool.run_all(|p| {
        if p.is_caller() {
            // From another thread: a nested call from this one runs inline.
            std::thread::scope(|s| {
                s.spawn(|| {
                    let mut dst = vec![0.0f32; 100];
                    let mut refs = [dst.as_mut_slice()];
                    let r = reducer.reduce(Some(&pool), &sources, Weights::Sum, &mut refs, None);
                    errors.lock().unwrap().push(r);
                });
            });
        }
    })
    .unwrap();
    let errors = errors.get_mut().unwrap();
    assert!(
        matches!(errors[0], Err(ReduceError::Pool(_))),
        "{:?}",
        errors[0]
    );
}

#[test]
fn grad_buffers_feed_the_reducer() {
    let mut buffers = GradBuffers::new(3, &[5, 2]);
    assert_eq!(buffers.spheres(), 3);
    assert_eq!(buffers.buffer_lens(), &[5, 2]);
    for (i, sphere) in buffers.per_sphere_mut().enumerate() {
        sphere[0].fill(i as f32);
        sphere[1].fill(1.0);
    }
    buffers.sphere_mut(2)[1][1] = 5.0;
    let reducer = GradReducer::new(buffers.buffer_lens());
    let mut dst = [vec![0.0f32; 5], vec![0.0f32; 2]];
    let mut refs: Vec<&mut [f32]> = dst.iter_mut().map(Vec::as_mut_slice).collect();
    let summary = reducer
        .reduce(None, &buffers.sources(), Weights::Sum, &mut refs, None)
        .unwrap();
    assert_eq!(dst, [vec![3.0; 5], vec![3.0, 7.0]]);
    assert_eq!(summary.norm, (5.0f64 * 9.0 + 9.0 + 49.0).sqrt());
    buffers.zero();
    assert!(
        buffers
            .sources()
            .iter()
            .flatten()
            .all(|b| b.iter().all(|&v| v == 0.0))
    );
}

#[test]
fn sum_of_squares_uses_the_documented_lane_order() {
    let x: Vec<f32> = (0..19).map(|i| 1.0 + i as f32 * 0.37).collect();
    let mut lanes = [0.0f64; 8];
    for (k, &v) in x.iter().enumerate() {
        lanes[k % 8] += f64::from(v) * f64::from(v);
    }
    let expect = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3]))
        + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
    assert_eq!(sum_of_squares(&x).to_bits(), expect.to_bits());
    assert!(!sum_of_squares(&[1.0, f32::NAN]).is_finite());
    assert!(!sum_of_squares(&[f32::INFINITY]).is_finite());
    assert!(
        sum_of_squares(&[f32::MAX; 64]).is_finite(),
        "no overflow for finite f32"
    );
}
