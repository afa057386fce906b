//! The idle-CPU check allocates nothing, samples included (`/proc/stat`,
//! the affinity mask, the process's CPU time and the cgroup quota): it runs
//! on the wait path. Counted by a global allocator; one test in this
//! binary, so no other test allocates meanwhile.
#![cfg(not(loom))]

use std::time::{Duration, Instant};
use thread_support::CountingAllocator;
use thread_support::spin::idle::IdleWatch;

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator::new();

#[test]
fn samples_allocate_nothing() {
    let mut watch = IdleWatch::new();
    let mut now = Instant::now();
    let before = GLOBAL.allocations();
    // Every call a new sample (60 ms apart, as the watch is told), the
    // quota read again every 17 of them (once a second), from the first.
    for _ in 0..50 {
        watch.some_cpu_idle(now);
        now += Duration::from_millis(60);
    }
    assert_eq!(GLOBAL.allocations() - before, 0);
}
