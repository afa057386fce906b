#![cfg(not(loom))]
use sphere_pool::*;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

#[test]
fn smoke_dispatch_wait_run_all_parallel_for() {
    let pool = SpherePool::new(3).unwrap();
    let hits = Arc::new(AtomicU64::new(0));
    for round in 0..1000 {
        for s in 0..3 {
            let h = hits.clone();
            pool.dispatch(s, move || { h.fetch_add(1, Ordering::Relaxed); }).unwrap();
        }
        for s in 0..3 { pool.wait(s).unwrap(); }
        assert_eq!(hits.load(Ordering::Relaxed), (round + 1) * 3);
    }
    let n = AtomicU64::new(0);
    for _ in 0..1000 {
        pool.run_all(|p| { n.fetch_add(1 + p.index() as u64, Ordering::Relaxed); p.barrier(); }).unwrap();
    }
    assert_eq!(n.load(Ordering::Relaxed), 1000 * (1 + 2 + 3 + 4));
    let sum = AtomicU64::new(0);
    pool.parallel_for(0..100_000, 7, |r| { sum.fetch_add(r.map(|i| i as u64).sum(), Ordering::Relaxed); }).unwrap();
    assert_eq!(sum.into_inner(), 100_000 * 99_999 / 2);
}
