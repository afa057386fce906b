//! Regression tests for the speed of the hand-off (in their own test binary,
//! so that no other test competes for the CPUs while they run).
#![cfg(not(loom))]

use sphere_pool::SpherePool;

#[test]
fn back_to_back_rounds_find_the_sphere_awake() {
    // Rounds that follow each other closely must be handed to a spinning
    // sphere, not to one that has to be woken with a system call. (A bug
    // that made every round slower than the spin budget made 86% of rounds
    // wake a sleeping sphere.)
    let pool = SpherePool::new(1).unwrap();
    for _ in 0..5000 {
        pool.run_all(|_| {}).unwrap();
    }
    let stats = pool.stats().total;
    assert_eq!(stats.jobs, 5000);
    assert!(
        stats.parks < stats.jobs / 2,
        "{} of {} rounds woke a sleeping sphere",
        stats.parks,
        stats.jobs
    );
}
