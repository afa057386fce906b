//! Loom model checks of the per-thread cache: its owner pushes and pops
//! without a lock while another thread steals. Every object must be taken
//! exactly once and nothing leaked. Run with
//! `RUSTFLAGS="--cfg loom" cargo test --test loom`.
#![cfg(loom)]

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;
use object_pool::ThreadCache;

/// An object that counts its drops. Its id sits in a loom cell, so that a
/// thread reading it without a happens-before edge to its creation (a push
/// without Release, a take without Acquire) fails the model.
struct Tracked {
    id: UnsafeCell<usize>,
    drops: Arc<AtomicUsize>,
}

impl Tracked {
    fn new(id: usize, drops: &Arc<AtomicUsize>) -> Box<Self> {
        Box::new(Tracked {
            id: UnsafeCell::new(id),
            drops: drops.clone(),
        })
    }

    fn id(&self) -> usize {
        // SAFETY: the id is written only at creation; loom checks that this
        // read is ordered after it.
        self.id.with(|p| unsafe { *p })
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::Relaxed);
    }
}

/// `loom::model` with a preemption bound of 3 unless `LOOM_MAX_PREEMPTIONS`
/// sets one, so that the models finish in seconds however they are run.
fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound.get_or_insert(3);
    builder.check(f);
}

#[test]
fn owner_and_thief_never_take_the_same_object() {
    model(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let cache = Arc::new(ThreadCache::<Tracked>::default());
        let thief = {
            let cache = cache.clone();
            thread::spawn(move || cache.steal().map(|t| t.id()))
        };
        cache.push(4, Tracked::new(1, &drops)).ok().unwrap();
        cache.push(4, Tracked::new(2, &drops)).ok().unwrap();
        let popped = cache.pop().map(|t| t.id());
        let stolen = thief.join().unwrap();
        let mut taken: Vec<usize> = popped.into_iter().chain(stolen).collect();
        // Whatever is left is popped now: nothing lost.
        while let Some(t) = cache.pop() {
            taken.push(t.id());
        }
        taken.sort_unstable();
        assert_eq!(taken, [1, 2], "each object taken exactly once");
        assert_eq!(drops.load(Ordering::Relaxed), 2);
    });
}

#[test]
fn objects_left_in_the_cache_are_freed_with_it() {
    model(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let cache = Arc::new(ThreadCache::<Tracked>::default());
        let owner = {
            let (cache, drops) = (cache.clone(), drops.clone());
            thread::spawn(move || {
                for id in 0..2 {
                    cache.push(4, Tracked::new(id, &drops)).ok().unwrap();
                }
                let _ = cache.pop();
            })
        };
        let stolen = cache.steal();
        if let Some(t) = &stolen {
            assert!(t.id() < 2);
        }
        owner.join().unwrap();
        drop(stolen);
        drop(cache);
        assert_eq!(
            drops.load(Ordering::Relaxed),
            2,
            "every object dropped exactly once"
        );
    });
}
