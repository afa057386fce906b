//! `SpherePool::reduce`: the same bits for any thread count and any timing.
#![cfg(not(loom))]

use sphere_pool::{Error, SpherePool, Worker};
use std::sync::atomic::{AtomicU64, Ordering};

/// Values whose sum depends on the order of the additions: magnitudes from
/// 1e-8 to 1e8, both signs (a fixed pseudo-random sequence).
fn order_sensitive(n: usize) -> Vec<f64> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mantissa = (x >> 11) as f64 / (1u64 << 53) as f64;
            let exponent = ((x >> 3) % 17) as i32 - 8;
            let sign = if x & 1 == 0 { 1.0 } else { -1.0 };
            sign * mantissa * 10f64.powi(exponent)
        })
        .collect()
}

#[test]
fn sums_have_the_same_bits_with_1_to_4_threads_and_from_run_to_run() {
    let data = order_sensitive(1_000_003);
    // The data is order-sensitive: a plain left-to-right sum and a
    // right-to-left one differ, so equal bits below are not luck.
    let forward: f64 = data.iter().sum();
    let backward: f64 = data.iter().rev().sum();
    assert_ne!(forward.to_bits(), backward.to_bits());

    let pools: Vec<SpherePool> = (1..=4)
        .map(|t| SpherePool::with_threads(t).unwrap())
        .collect();
    let reference = pools[0].sum_f64(&data).unwrap();
    let generic = |pool: &SpherePool| {
        pool.reduce(
            0..data.len(),
            777,
            0.0,
            |r| data[r].iter().sum::<f64>(),
            |a, b| a + b,
        )
        .unwrap()
    };
    for pool in &pools {
        for _ in 0..5 {
            assert_eq!(
                pool.sum_f64(&data).unwrap().to_bits(),
                reference.to_bits(),
                "{} spheres",
                pool.spheres()
            );
            // A user combine with another chunk length: its own fixed result.
            assert_eq!(generic(pool).to_bits(), generic(&pools[0]).to_bits());
        }
    }
    // Close to the exact sum (compensated reference).
    let exact = data.iter().fold((0.0f64, 0.0f64), |(s, c), &v| {
        let y = v - c;
        let t = s + y;
        (t, (t - s) - y)
    });
    assert!((reference - exact.0).abs() <= 1e-6 * data.iter().map(|v| v.abs()).sum::<f64>());
}

#[test]
fn timing_does_not_change_the_bits() {
    let data = order_sensitive(200_000);
    let pool = SpherePool::with_threads(3).unwrap();
    let reference = pool.sum_f64(&data).unwrap();
    let calls = AtomicU64::new(0);
    for round in 0..4u64 {
        // Random delays in the map: chunks finish in a different order.
        let got = pool
            .reduce(
                0..data.len(),
                sphere_pool::REDUCE_CHUNK,
                0.0,
                |r| {
                    let k = calls.fetch_add(1, Ordering::Relaxed);
                    if (k * 2654435761 + round) % 7 == 0 {
                        std::thread::sleep(std::time::Duration::from_micros(200));
                    }
                    // The same lane sum as sum_f64, so the bits must match it.
                    let mut lanes = [0.0f64; 8];
                    let groups = data[r.clone()].chunks_exact(8);
                    let tail = groups.remainder();
                    for g in groups {
                        for (l, v) in lanes.iter_mut().zip(g) {
                            *l += v;
                        }
                    }
                    let [a, b, c, d, e, f, g, h] = lanes;
                    let mut s = ((a + b) + (c + d)) + ((e + f) + (g + h));
                    for v in tail {
                        s += v;
                    }
                    s
                },
                |a, b| a + b,
            )
            .unwrap();
        assert_eq!(got.to_bits(), reference.to_bits(), "round {round}");
    }
}

#[test]
fn empty_ranges_give_the_identity_and_bad_ranges_are_errors() {
    let pool = SpherePool::new(2).unwrap();
    assert_eq!(pool.reduce(5..5, 0, 42, |_| 1, |a, b| a + b), Ok(42));
    assert_eq!(pool.sum_f64(&[]), Ok(0.0));
    #[allow(clippy::reversed_empty_ranges)]
    let reversed = pool.reduce(6..5, 0, 0, |_| 1, |a, b| a + b);
    assert!(matches!(reversed, Err(Error::InvalidArgument(_))));
}

#[test]
fn failures_and_panics_in_map_or_combine_are_reported() {
    let pool = SpherePool::new(2).unwrap();
    let r = pool.try_reduce(
        0..1000,
        10,
        0u64,
        |r| if r.start == 500 { Err(3) } else { Ok(1) },
        |a, b| Ok(a + b),
    );
    assert!(matches!(r, Err(Error::JobFailed { code: 3, .. })), "{r:?}");
    let r = pool.try_reduce(
        0..1000,
        10,
        0u64,
        |_| Ok(1),
        |a, b| if a + b > 50 { Err(8) } else { Ok(a + b) },
    );
    assert!(matches!(r, Err(Error::JobFailed { code: 8, .. })), "{r:?}");
    let r = pool.reduce(
        0..1000,
        10,
        0u64,
        |r| {
            if r.start == 990 {
                panic!("map boom")
            } else {
                1
            }
        },
        |a, b| a + b,
    );
    assert!(
        matches!(r, Err(Error::Panicked { ref message, .. }) if message == "map boom"),
        "{r:?}"
    );
    // A failure in the top of the tree (on the caller).
    let r = pool.try_reduce(
        0..100_000,
        1,
        0u64,
        |_| Ok(1),
        |a, b| if a + b == 100_000 { Err(5) } else { Ok(a + b) },
    );
    assert_eq!(
        r,
        Err(Error::JobFailed {
            worker: Worker::Caller,
            code: 5
        })
    );
}

#[test]
fn nested_reduce_runs_inline_with_the_same_result() {
    let pool = SpherePool::new(2).unwrap();
    let data = order_sensitive(50_000);
    let outer = pool.sum_f64(&data).unwrap();
    let inner = std::sync::Mutex::new(Vec::new());
    pool.run_all(|_| {
        inner
            .lock()
            .unwrap()
            .push(pool.sum_f64(&data).unwrap().to_bits())
    })
    .unwrap();
    assert_eq!(inner.into_inner().unwrap(), vec![outer.to_bits(); 3]);
}
