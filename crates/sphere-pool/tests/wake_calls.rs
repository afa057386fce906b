//! A round wakes every sleeping sphere with one wake call (issue 12: the
//! caller's cost must not grow one by one with the sphere count). In its own
//! test binary, so that no other test's threads compete for the CPUs.
#![cfg(not(loom))]

use sphere_pool::{PoolConfig, SpherePool};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Waits until the spheres have gone to sleep `parks` times in all.
fn wait_for_parks(pool: &SpherePool, parks: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while pool.stats().total.parks < parks {
        assert!(
            Instant::now() < deadline,
            "the spheres never slept: {:?}",
            pool.stats().total
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    // Counted just before the futex wait: give the last one time to get there.
    std::thread::sleep(Duration::from_millis(20));
}

#[test]
fn a_round_wakes_fifteen_sleeping_spheres_with_one_wake_call() {
    // max_spin 0: an idle sphere sleeps at once.
    let pool = SpherePool::with_config(PoolConfig {
        spheres: 15,
        max_spin: Duration::ZERO,
        ..PoolConfig::default()
    })
    .unwrap();
    let shares = AtomicUsize::new(0);
    for round in 0..5 {
        // Every sphere asleep (again): 15 more sleeps per round.
        wait_for_parks(&pool, 15 * (round + 1));
        let before = pool.stats();
        pool.run_all(|_| {
            shares.fetch_add(1, Ordering::Relaxed);
        })
        .unwrap();
        let calls = pool.stats().wake_calls - before.wake_calls;
        assert_eq!(
            calls, 1,
            "round {round}: {calls} wake calls for 15 sleeping spheres"
        );
    }
    assert_eq!(shares.load(Ordering::Relaxed), 5 * 16);
}
