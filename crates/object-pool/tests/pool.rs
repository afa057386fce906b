//! The object pool through its public API.
#![cfg(not(loom))]

use object_pool::*;
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;

/// An object that counts how many of its kind exist.
#[derive(Debug)]
struct Tracked {
    id: usize,
    alive: Arc<AtomicUsize>,
    payload: Vec<u8>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.alive.fetch_sub(1, Ordering::SeqCst);
    }
}

fn tracked_pool(config: PoolConfig) -> (ObjectPool<Tracked>, Arc<AtomicUsize>) {
    let alive = Arc::new(AtomicUsize::new(0));
    let next_id = Arc::new(AtomicUsize::new(0));
    let a = alive.clone();
    let pool = ObjectPool::new(config, move || {
        a.fetch_add(1, Ordering::SeqCst);
        Tracked {
            id: next_id.fetch_add(1, Ordering::SeqCst),
            alive: a.clone(),
            payload: vec![0; 64],
        }
    })
    .unwrap();
    (pool, alive)
}

#[test]
fn a_released_object_is_reused_and_counted_as_a_hit() {
    let (pool, alive) = tracked_pool(PoolConfig::default());
    let first_id = {
        let mut o = pool.acquire().unwrap();
        o.payload[0] = 42;
        o.id
    };
    let o = pool.acquire().unwrap();
    assert_eq!(o.id, first_id, "the released object comes back");
    assert_eq!(o.payload[0], 42, "without a reset the contents are kept");
    let s = pool.stats();
    assert_eq!((s.hits, s.misses, s.in_use, s.live), (1, 1, 1, 1));
    assert_eq!(alive.load(Ordering::SeqCst), 1);
    assert_eq!(s.hit_rate(), 0.5);
}

#[test]
fn reset_runs_on_release_before_reuse() {
    let pool =
        ObjectPool::with_reset(PoolConfig::default(), || vec![0u8; 16], |v| v.fill(0)).unwrap();
    pool.acquire().unwrap().fill(7);
    assert!(pool.acquire().unwrap().iter().all(|&b| b == 0));
}

#[test]
fn the_cap_is_enforced_and_freed_objects_make_room() {
    let config = PoolConfig {
        max_live: Some(3),
        ..PoolConfig::default()
    };
    let (pool, alive) = tracked_pool(config);
    let held: Vec<_> = (0..3).map(|_| pool.acquire().unwrap()).collect();
    assert_eq!(
        pool.acquire().unwrap_err(),
        PoolError::Exhausted { max_live: 3 }
    );
    assert_eq!(pool.stats().in_use, 3);
    drop(held);
    let again: Vec<_> = (0..3).map(|_| pool.acquire().unwrap()).collect();
    assert_eq!(pool.stats().misses, 3, "no object beyond the cap was made");
    assert_eq!(alive.load(Ordering::SeqCst), 3);
    drop(again);
}

#[test]
fn at_the_cap_objects_cached_by_another_thread_are_stolen() {
    let config = PoolConfig {
        max_live: Some(4),
        thread_cache: 8,
        ..PoolConfig::default()
    };
    let (pool, _alive) = tracked_pool(config);
    // Another thread makes all four objects and releases them into its cache,
    // then stays alive so its cache is not reused by a new thread.
    let barrier = Arc::new(Barrier::new(2));
    let (p, b) = (pool.clone(), barrier.clone());
    let other = thread::spawn(move || {
        drop((0..4).map(|_| p.acquire().unwrap()).collect::<Vec<_>>());
        b.wait();
        b.wait();
    });
    barrier.wait();
    assert_eq!(pool.stats().idle_in_caches, 4);
    let taken: Vec<_> = (0..4)
        .map(|_| pool.acquire().expect("stolen from the other cache"))
        .collect();
    assert_eq!(taken.iter().map(|o| o.id).collect::<HashSet<_>>().len(), 4);
    assert!(pool.acquire().is_err());
    barrier.wait();
    other.join().unwrap();
}

#[test]
fn bad_configurations_are_rejected_with_the_field_named() {
    for (config, field) in [
        (
            PoolConfig {
                shards: 0,
                ..PoolConfig::default()
            },
            "shards",
        ),
        (
            PoolConfig {
                shards: MAX_SHARDS + 1,
                ..PoolConfig::default()
            },
            "shards",
        ),
        (
            PoolConfig {
                thread_cache: MAX_THREAD_CACHE + 1,
                ..PoolConfig::default()
            },
            "thread_cache",
        ),
        (
            PoolConfig {
                max_live: Some(0),
                ..PoolConfig::default()
            },
            "max_live",
        ),
    ] {
        match ObjectPool::new(config, || 0u8) {
            Err(PoolError::InvalidConfig(m)) => assert!(m.starts_with(field), "{m}"),
            other => panic!("{config:?} accepted: {other:?}"),
        }
    }
}

#[test]
fn without_thread_caches_objects_go_through_the_shards() {
    let config = PoolConfig {
        thread_cache: 0,
        shards: 3,
        ..PoolConfig::default()
    };
    let (pool, _) = tracked_pool(config);
    let held: Vec<_> = (0..6).map(|_| pool.acquire().unwrap()).collect();
    drop(held);
    let s = pool.stats();
    assert_eq!((s.idle_in_caches, s.idle_in_shards), (0, 6));
    assert_eq!(s.shard_sizes, [2, 2, 2], "round-robin spreads the releases");
}

#[test]
fn thread_affine_shards_keep_a_thread_on_one_shard() {
    let config = PoolConfig {
        thread_cache: 0,
        shards: 4,
        shard_choice: ShardChoice::ThreadAffine,
        ..PoolConfig::default()
    };
    let (pool, _) = tracked_pool(config);
    drop((0..5).map(|_| pool.acquire().unwrap()).collect::<Vec<_>>());
    let sizes = pool.stats().shard_sizes;
    assert_eq!(sizes.iter().sum::<usize>(), 5);
    assert_eq!(sizes.iter().filter(|&&n| n > 0).count(), 1, "{sizes:?}");
}

#[test]
fn a_full_thread_cache_spills_half_into_a_shard() {
    let config = PoolConfig {
        thread_cache: 4,
        shards: 1,
        ..PoolConfig::default()
    };
    let (pool, _) = tracked_pool(config);
    drop((0..5).map(|_| pool.acquire().unwrap()).collect::<Vec<_>>());
    let s = pool.stats();
    assert_eq!(s.idle_in_caches + s.idle_in_shards, 5);
    assert_eq!(
        s.idle_in_caches, 2,
        "4 cached, the 5th release moved it and 2 others"
    );
}

#[test]
fn dropping_the_pool_frees_objects_cached_by_other_threads() {
    let (pool, alive) = tracked_pool(PoolConfig {
        thread_cache: 8,
        ..PoolConfig::default()
    });
    let barrier = Arc::new(Barrier::new(4));
    let threads: Vec<_> = (0..3)
        .map(|_| {
            let (p, b) = (pool.clone(), barrier.clone());
            thread::spawn(move || {
                drop((0..5).map(|_| p.acquire().unwrap()).collect::<Vec<_>>());
                drop(p);
                b.wait(); // cached, pool handle dropped; wait for the main thread
                b.wait();
            })
        })
        .collect();
    barrier.wait();
    assert_eq!(alive.load(Ordering::SeqCst), 15);
    assert!(
        pool.stats().idle_in_caches > 0,
        "the threads' caches hold objects"
    );
    drop(pool);
    assert_eq!(
        alive.load(Ordering::SeqCst),
        0,
        "freed while the caching threads still live"
    );
    barrier.wait();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn a_guard_may_be_released_on_another_thread() {
    let (pool, alive) = tracked_pool(PoolConfig::default());
    let guard = pool.acquire().unwrap();
    let id = guard.id;
    thread::scope(|s| {
        s.spawn(move || drop(guard));
    });
    let s = pool.stats();
    assert_eq!(
        (s.in_use, s.live, s.idle_in_caches + s.idle_in_shards),
        (0, 1, 1)
    );
    assert_eq!(id, 0, "the first object made");
    drop(pool);
    assert_eq!(alive.load(Ordering::SeqCst), 0);
}

#[test]
fn take_and_put_round_trip_without_a_guard() {
    let (pool, alive) = tracked_pool(PoolConfig {
        max_live: Some(1),
        ..PoolConfig::default()
    });
    let boxed = pool.take().unwrap();
    assert_eq!(pool.stats().in_use, 1);
    assert!(pool.take().is_err(), "the taken box counts against the cap");
    let other = pool.clone();
    thread::spawn(move || other.put(boxed)).join().unwrap();
    let s = pool.stats();
    assert_eq!((s.in_use, s.live, s.hits, s.misses), (0, 1, 0, 1));
    drop(pool.take().unwrap()); // dropped instead of put back: simply freed
    assert_eq!(alive.load(Ordering::SeqCst), 0);
}

#[test]
fn detach_takes_the_object_out_of_the_pool() {
    let config = PoolConfig {
        max_live: Some(1),
        ..PoolConfig::default()
    };
    let (pool, alive) = tracked_pool(config);
    let object = Pooled::detach(pool.acquire().unwrap());
    let s = pool.stats();
    assert_eq!((s.live, s.in_use), (0, 0));
    let second = pool
        .acquire()
        .expect("the detached object no longer counts against the cap");
    assert_ne!(second.id, object.id);
    drop(object);
    assert_eq!(alive.load(Ordering::SeqCst), 1);
}

#[test]
fn release_idle_frees_idle_objects_everywhere() {
    let (pool, alive) = tracked_pool(PoolConfig {
        thread_cache: 2,
        shards: 2,
        ..PoolConfig::default()
    });
    let keep = pool.acquire().unwrap();
    drop((0..6).map(|_| pool.acquire().unwrap()).collect::<Vec<_>>());
    assert_eq!(pool.release_idle(), 6);
    assert_eq!(alive.load(Ordering::SeqCst), 1);
    let s = pool.stats();
    assert_eq!(
        (s.live, s.in_use, s.idle_in_caches, s.idle_in_shards),
        (1, 1, 0, 0)
    );
    drop(keep);
}

#[test]
fn a_panicking_factory_leaves_the_pool_consistent() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let config = PoolConfig {
        max_live: Some(1),
        ..PoolConfig::default()
    };
    let pool = ObjectPool::new(config, move || {
        if c.fetch_add(1, Ordering::SeqCst) == 0 {
            panic!("factory failed");
        }
        5u32
    })
    .unwrap();
    assert!(std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| pool.acquire())).is_err());
    let s = pool.stats();
    assert_eq!(
        (s.live, s.in_use),
        (0, 0),
        "the failed object does not count"
    );
    assert_eq!(*pool.acquire().unwrap(), 5, "the cap slot was given back");
}

#[test]
fn a_panicking_reset_discards_the_object() {
    let alive = Arc::new(AtomicUsize::new(0));
    let a = alive.clone();
    let pool = ObjectPool::with_reset(
        PoolConfig::default(),
        move || {
            a.fetch_add(1, Ordering::SeqCst);
            Tracked {
                id: 0,
                alive: a.clone(),
                payload: vec![],
            }
        },
        |t| assert!(t.payload.is_empty(), "reset refuses"),
    )
    .unwrap();
    let mut o = pool.acquire().unwrap();
    o.payload.push(1);
    assert!(std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(o))).is_err());
    assert_eq!(alive.load(Ordering::SeqCst), 0);
    assert_eq!(pool.stats().live, 0);
}

#[test]
fn objects_are_never_shared_under_concurrent_use() {
    // Each user marks its object as taken; a second user at the same time
    // would see the mark. Releases cross threads through a channel.
    for choice in [ShardChoice::RoundRobin, ShardChoice::ThreadAffine] {
        let config = PoolConfig {
            shards: 2,
            thread_cache: 4,
            max_live: Some(24),
            shard_choice: choice,
        };
        let pool = ObjectPool::new(config, || AtomicUsize::new(0)).unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<Pooled<AtomicUsize>>();
        thread::scope(|s| {
            s.spawn(move || {
                // Releases objects acquired by other threads.
                for o in rx {
                    assert_eq!(o.swap(0, Ordering::SeqCst), 1, "object shared");
                }
            });
            for t in 0..4 {
                let (pool, tx) = (&pool, tx.clone());
                s.spawn(move || {
                    for i in 0..20_000 {
                        let Ok(o) = pool.acquire() else { continue };
                        assert_eq!(o.swap(1, Ordering::SeqCst), 0, "object shared");
                        if (i + t) % 7 == 0 {
                            tx.send(o).unwrap();
                        } else {
                            assert_eq!(o.swap(0, Ordering::SeqCst), 1, "object shared");
                        }
                    }
                });
            }
            drop(tx);
        });
        let s = pool.stats();
        assert_eq!(s.in_use, 0);
        assert!(s.live <= 24);
        assert_eq!(s.live, s.idle_in_caches + s.idle_in_shards, "{s:?}");
        assert!(s.hits > s.misses, "{s:?}");
    }
}
