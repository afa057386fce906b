//! A global allocator that counts allocations, for the tests of paths that
//! promise not to allocate (a hand-off, a wait). A test binary installs it
//! with `#[global_allocator]` and compares [`CountingAllocator::allocations`]
//! before and after; keep one test in such a binary, so that no other test
//! allocates meanwhile.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The system allocator, counting its allocations.
pub struct CountingAllocator {
    allocations: AtomicUsize,
}

impl CountingAllocator {
    /// No allocation counted yet.
    pub const fn new() -> Self {
        Self {
            allocations: AtomicUsize::new(0),
        }
    }

    /// Allocations made so far.
    pub fn allocations(&self) -> usize {
        self.allocations.load(Ordering::SeqCst)
    }
}

impl Default for CountingAllocator {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: forwards to the system allocator, only counting the calls.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.allocations.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded from the caller.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded from the caller.
        unsafe { System.dealloc(ptr, layout) }
    }
}
