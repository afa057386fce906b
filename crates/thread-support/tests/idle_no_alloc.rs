//! The idle-CPU check allocates nothing, samples included (`/proc/stat`,
//! the affinity mask, the process's CPU time and the cgroup quota): it runs
//! on the wait path. Counted by a global allocator; one test in this
//! binary, so no other test allocates meanwhile.
#![cfg(not(loom))]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use thread_support::spin::idle::IdleWatch;

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator, only counting the calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded from the caller.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded from the caller.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn samples_allocate_nothing() {
    let mut watch = IdleWatch::new();
    let mut now = Instant::now();
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    // Every call a new sample (60 ms apart, as the watch is told), the
    // quota read again every 17 of them (once a second), from the first.
    for _ in 0..50 {
        watch.some_cpu_idle(now);
        now += Duration::from_millis(60);
    }
    assert_eq!(ALLOCATIONS.load(Ordering::SeqCst) - before, 0);
}
