//! Objects cached by threads that exited go back into use. In a test binary
//! of its own: threads of other tests could otherwise be given the exited
//! threads' indices (and, with them, their caches) in the meantime.
#![cfg(not(loom))]

use object_pool::{ObjectPool, PoolConfig};
use std::sync::{Arc, Barrier};
use std::thread;

#[test]
fn objects_cached_by_exited_threads_are_reclaimed_instead_of_made_anew() {
    let pool = ObjectPool::new(
        PoolConfig {
            thread_cache: 8,
            ..PoolConfig::default()
        },
        || [0u8; 256],
    )
    .unwrap();
    // Three threads, alive at the same time (so with distinct indices), each
    // cache four objects and exit. `join` returns after the thread's
    // thread-local destructors ran, so its exit is registered by then.
    let barrier = Arc::new(Barrier::new(3));
    let threads: Vec<_> = (0..3)
        .map(|_| {
            let (pool, barrier) = (pool.clone(), barrier.clone());
            thread::spawn(move || {
                drop((0..4).map(|_| pool.acquire().unwrap()).collect::<Vec<_>>());
                barrier.wait();
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let s = pool.stats();
    assert_eq!((s.misses, s.idle_in_caches), (12, 12));
    let taken: Vec<_> = (0..12).map(|_| pool.acquire().unwrap()).collect();
    let s = pool.stats();
    assert_eq!(
        (s.misses, s.hits, s.live),
        (12, 12, 12),
        "no new object while idle ones existed: {s:?}"
    );
    drop(taken);
}
