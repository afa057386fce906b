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
    // On a machine whose CPUs another program keeps busy the spin policy
    // rightly parks; such a moment can last a batch, so a batch may be
    // repeated: the bug parked in every batch.
    let pool = SpherePool::new(1).unwrap();
    let mut seen = Vec::new();
    for _batch in 0..3 {
        let before = pool.stats().total;
        for _ in 0..5000 {
            pool.run_all(|_| {}).unwrap();
        }
        let after = pool.stats().total;
        let (jobs, parks) = (after.jobs - before.jobs, after.parks - before.parks);
        assert_eq!(jobs, 5000);
        if parks < jobs / 2 {
            return;
        }
        seen.push(parks);
    }
    panic!("in each of 3 batches of 5000 rounds, this many woke a sleeping sphere: {seen:?}");
}
