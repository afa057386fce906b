//! [`ThreadCache`]: a thread's small stack of idle objects. Its owner pushes
//! and pops without a lock; any thread may steal from it (the pool does so
//! when it is at its cap and its shards are empty).
//!
//! Protocol: slots at or above `top` are always empty. The owner pushes with
//! a plain store at `top` (nobody else ever fills a slot) and pops by
//! swapping slots to null from `top` down; a thief swaps any non-null slot to
//! null. Every object is taken by exactly one swap, so it has exactly one
//! owner at a time, and the objects still in the cache are freed with it.

use crate::sync::{AtomicPtr, AtomicUsize, Ordering};
use std::ptr;

/// The largest per-thread cache.
pub const MAX_THREAD_CACHE: usize = 32;

/// A per-thread stack of up to [`MAX_THREAD_CACHE`] boxed objects.
pub struct ThreadCache<T> {
    /// Owner-only: one past the highest slot that may be full.
    top: AtomicUsize,
    slots: [AtomicPtr<T>; MAX_THREAD_CACHE],
}

impl<T> Default for ThreadCache<T> {
    fn default() -> Self {
        Self {
            top: AtomicUsize::new(0),
            slots: std::array::from_fn(|_| AtomicPtr::new(ptr::null_mut())),
        }
    }
}

impl<T> ThreadCache<T> {
    /// Adds `object` unless `limit` objects are cached; then hands it back.
    /// Only the cache's owner thread may call it.
    pub fn push(&self, limit: usize, object: Box<T>) -> Result<(), Box<T>> {
        let top = self.top.load(Ordering::Relaxed);
        if top >= limit.min(MAX_THREAD_CACHE) {
            return Err(object);
        }
        // Release: a thief that takes the pointer sees the object's contents.
        self.slots[top].store(Box::into_raw(object), Ordering::Release);
        self.top.store(top + 1, Ordering::Relaxed);
        Ok(())
    }

    /// Takes the most recently pushed object still there. Owner only.
    pub fn pop(&self) -> Option<Box<T>> {
        let mut top = self.top.load(Ordering::Relaxed);
        while top > 0 {
            top -= 1;
            let object = self.slots[top].swap(ptr::null_mut(), Ordering::Acquire);
            if !object.is_null() {
                self.top.store(top, Ordering::Relaxed);
                // SAFETY: a non-null slot holds a pointer from `Box::into_raw`
                // (in `push`), and the swap made us its only taker.
                return Some(unsafe { Box::from_raw(object) });
            }
        }
        self.top.store(0, Ordering::Relaxed);
        None
    }

    /// Takes any cached object. Any thread.
    pub fn steal(&self) -> Option<Box<T>> {
        for slot in &self.slots {
            if slot.load(Ordering::Relaxed).is_null() {
                continue;
            }
            let object = slot.swap(ptr::null_mut(), Ordering::Acquire);
            if !object.is_null() {
                // SAFETY: as in `pop`.
                return Some(unsafe { Box::from_raw(object) });
            }
        }
        None
    }

    /// The number of objects cached now (a snapshot; any thread).
    pub fn len(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| !s.load(Ordering::Relaxed).is_null())
            .count()
    }

    /// True if no object is cached now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T> Drop for ThreadCache<T> {
    fn drop(&mut self) {
        while let Some(object) = self.steal() {
            drop(object);
        }
    }
}

// SAFETY: the cache owns boxed `T`s and moves them between threads (push on
// one, steal on another): `T: Send` is exactly what that needs. Shared access
// only goes through atomics.
unsafe impl<T: Send> Sync for ThreadCache<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Send for ThreadCache<T> {}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn push_pop_is_last_in_first_out_up_to_the_limit() {
        let cache = ThreadCache::default();
        assert!(cache.push(2, Box::new(1)).is_ok());
        assert!(cache.push(2, Box::new(2)).is_ok());
        assert_eq!(cache.push(2, Box::new(3)).unwrap_err(), Box::new(3));
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.pop(), Some(Box::new(2)));
        assert_eq!(cache.pop(), Some(Box::new(1)));
        assert_eq!(cache.pop(), None);
        assert!(cache.is_empty());
    }

    #[test]
    fn stolen_slots_are_skipped_by_the_owner() {
        let cache = ThreadCache::default();
        for i in 0..4 {
            cache.push(8, Box::new(i)).unwrap();
        }
        let stolen = cache.steal().unwrap();
        assert_eq!(*stolen, 0, "thieves take from the bottom");
        let mut popped: Vec<i32> = std::iter::from_fn(|| cache.pop()).map(|b| *b).collect();
        popped.sort_unstable();
        assert_eq!(popped, [1, 2, 3]);
        cache.push(8, Box::new(9)).unwrap();
        assert_eq!(cache.pop(), Some(Box::new(9)));
    }

    #[test]
    fn dropping_the_cache_frees_what_it_holds() {
        let counter = std::sync::Arc::new(());
        let cache = ThreadCache::default();
        for _ in 0..5 {
            cache.push(8, Box::new(counter.clone())).unwrap();
        }
        assert_eq!(std::sync::Arc::strong_count(&counter), 6);
        drop(cache);
        assert_eq!(std::sync::Arc::strong_count(&counter), 1);
    }
}
