//! The hand-off paths that promise not to allocate: a `SmallJob` dispatch
//! and wait, and a fork-join round whose task is a function pointer and its
//! argument (the C API's shapes). Counted by a global allocator; one test
//! in this binary, so no other test allocates meanwhile.
#![cfg(not(loom))]

use sphere_pool::{Participant, SmallJob, SpherePool};
use std::sync::atomic::{AtomicUsize, Ordering};
use thread_support::CountingAllocator;

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator::new();

/// Allocations made while `f` runs (after one warm-up call, which may set
/// up thread-local parking data).
fn allocations(mut f: impl FnMut()) -> usize {
    f();
    let before = GLOBAL.allocations();
    for _ in 0..100 {
        f();
    }
    GLOBAL.allocations() - before
}

static SUM: AtomicUsize = AtomicUsize::new(0);

fn add(x: usize) -> i32 {
    SUM.fetch_add(x, Ordering::Relaxed);
    0
}

#[test]
fn small_jobs_and_function_pointer_rounds_allocate_nothing_and_boxed_jobs_do() {
    let pool = SpherePool::new(2).unwrap();
    let (f, arg): (fn(usize) -> i32, usize) = (add, 3);
    let small = allocations(|| {
        pool.dispatch_small(
            1,
            SmallJob::new(move |_| match f(arg) {
                0 => Ok(()),
                code => Err(code),
            }),
        )
        .unwrap();
        pool.wait(1).unwrap();
    });
    assert_eq!(small, 0, "a SmallJob dispatch and wait allocated");
    let rounds = allocations(|| {
        pool.try_run_all(move |p: &Participant<'_>| match f(arg + p.index()) {
            0 => Ok(()),
            code => Err(code),
        })
        .unwrap();
    });
    assert_eq!(rounds, 0, "a fork-join round allocated");
    // The counter sees allocations: a boxed job allocates its box.
    let boxed = allocations(|| {
        pool.dispatch(1, move || {
            add(arg);
        })
        .unwrap();
        pool.wait(1).unwrap();
    });
    assert!(boxed >= 100, "boxed jobs: {boxed} allocations counted");
}
