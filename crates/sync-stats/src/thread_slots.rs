//! [`ThreadSlots`]: one element per thread index, allocated lazily and
//! without locks.
//!
//! Elements live in buckets of growing size (bucket `b` holds `2^b`
//! elements), so an index maps to a fixed address that never moves: a
//! reference handed out stays valid for the life of the container. A missing
//! bucket is allocated by the first thread that needs it and published with a
//! compare-and-swap; a thread that loses the race frees its own copy and uses
//! the winner's.

use crate::sync::{AtomicPtr, Ordering};
use std::ptr;

/// Number of buckets: indices up to `2^BUCKETS - 2` are representable.
const BUCKETS: usize = 32;

/// The largest index a [`ThreadSlots`] accepts.
pub const MAX_THREAD_INDEX: usize = (1usize << BUCKETS) - 2;

/// A lazily grown array with one element per thread index (see
/// [`crate::current_thread_index`]). Getting an element never takes a lock;
/// elements are created with `T::default()` and dropped with the container.
pub struct ThreadSlots<T> {
    buckets: [AtomicPtr<T>; BUCKETS],
}

/// The bucket of `index` and the position inside it.
fn locate(index: usize) -> (usize, usize) {
    assert!(
        index <= MAX_THREAD_INDEX,
        "thread index {index} out of range"
    );
    let n = index + 1;
    let bucket = (usize::BITS - 1 - n.leading_zeros()) as usize;
    (bucket, n - (1usize << bucket))
}

fn bucket_len(bucket: usize) -> usize {
    1usize << bucket
}

impl<T: Default> Default for ThreadSlots<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Default> ThreadSlots<T> {
    /// An empty container (no bucket allocated yet).
    pub fn new() -> Self {
        Self {
            buckets: std::array::from_fn(|_| AtomicPtr::new(ptr::null_mut())),
        }
    }

    /// The element of `index`, created (with its whole bucket) if needed.
    ///
    /// # Panics
    /// If `index` exceeds [`MAX_THREAD_INDEX`].
    pub fn get_or_create(&self, index: usize) -> &T {
        let (bucket, offset) = locate(index);
        let mut base = self.buckets[bucket].load(Ordering::Acquire);
        if base.is_null() {
            base = self.allocate(bucket);
        }
        // SAFETY: `base` points to a published bucket of `bucket_len(bucket)`
        // initialised elements, `offset` is inside it, and buckets are only
        // freed by `drop`, which needs `&mut self`.
        unsafe { &*base.add(offset) }
    }

    /// The element of `index` if its bucket exists.
    pub fn get(&self, index: usize) -> Option<&T> {
        let (bucket, offset) = locate(index);
        let base = self.buckets[bucket].load(Ordering::Acquire);
        // SAFETY: as in `get_or_create`.
        (!base.is_null()).then(|| unsafe { &*base.add(offset) })
    }

    /// Allocates bucket `bucket`, or returns the one another thread published first.
    #[cold]
    fn allocate(&self, bucket: usize) -> *mut T {
        let fresh: Box<[T]> = (0..bucket_len(bucket)).map(|_| T::default()).collect();
        let fresh = Box::into_raw(fresh).cast::<T>();
        match self.buckets[bucket].compare_exchange(
            ptr::null_mut(),
            fresh,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => fresh,
            Err(winner) => {
                // SAFETY: `fresh` came from `Box::into_raw` just above with
                // this length and was never published.
                drop(unsafe {
                    Box::from_raw(ptr::slice_from_raw_parts_mut(fresh, bucket_len(bucket)))
                });
                winner
            }
        }
    }

    /// Calls `f` on every element created so far (in index order). Elements
    /// of a bucket that exists but whose thread never used it are included:
    /// they hold `T::default()`.
    pub fn for_each(&self, mut f: impl FnMut(usize, &T)) {
        for (bucket, slot) in self.buckets.iter().enumerate() {
            let base = slot.load(Ordering::Acquire);
            if base.is_null() {
                continue;
            }
            let first = bucket_len(bucket) - 1;
            for offset in 0..bucket_len(bucket) {
                // SAFETY: as in `get_or_create`.
                f(first + offset, unsafe { &*base.add(offset) });
            }
        }
    }
}

impl<T> Drop for ThreadSlots<T> {
    fn drop(&mut self) {
        for (bucket, slot) in self.buckets.iter_mut().enumerate() {
            #[cfg(not(loom))]
            let base = *slot.get_mut();
            #[cfg(loom)]
            let base = slot.with_mut(|p| *p);
            if !base.is_null() {
                // SAFETY: every non-null bucket came from `Box::into_raw` of a
                // boxed slice of this length, and `&mut self` means no
                // reference into it is alive.
                drop(unsafe {
                    Box::from_raw(ptr::slice_from_raw_parts_mut(base, bucket_len(bucket)))
                });
            }
        }
    }
}

// SAFETY: the container hands out `&T` to any thread and drops the `T`s
// wherever it is dropped: exactly what `T: Send + Sync` allows.
unsafe impl<T: Send + Sync> Sync for ThreadSlots<T> {}
// SAFETY: as above; the raw pointers are owned boxed slices.
unsafe impl<T: Send + Sync> Send for ThreadSlots<T> {}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn indices_map_to_distinct_stable_elements() {
        let slots: ThreadSlots<std::sync::atomic::AtomicUsize> = ThreadSlots::new();
        for i in 0..200 {
            slots.get_or_create(i).store(i + 1, Ordering::Relaxed);
        }
        for i in 0..200 {
            assert_eq!(slots.get(i).unwrap().load(Ordering::Relaxed), i + 1);
        }
        let mut seen = 0;
        slots.for_each(|i, v| {
            if i < 200 {
                assert_eq!(v.load(Ordering::Relaxed), i + 1);
                seen += 1;
            }
        });
        assert_eq!(seen, 200);
        assert!(
            slots.get(100_000).is_none(),
            "an untouched bucket is not allocated"
        );
    }

    #[test]
    fn locate_covers_bucket_boundaries() {
        assert_eq!(locate(0), (0, 0));
        assert_eq!(locate(1), (1, 0));
        assert_eq!(locate(2), (1, 1));
        assert_eq!(locate(3), (2, 0));
        assert_eq!(locate(6), (2, 3));
        assert_eq!(locate(7), (3, 0));
        assert_eq!(locate(MAX_THREAD_INDEX).0, BUCKETS - 1);
    }

    #[test]
    fn racing_threads_agree_on_one_bucket() {
        let slots: ThreadSlots<std::sync::atomic::AtomicUsize> = ThreadSlots::new();
        std::thread::scope(|s| {
            for t in 0..4 {
                let slots = &slots;
                s.spawn(move || {
                    for i in 0..64 {
                        slots
                            .get_or_create(i * 4 + t)
                            .fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
        });
        for i in 0..256 {
            assert_eq!(
                slots.get(i).unwrap().load(Ordering::Relaxed),
                1,
                "index {i}"
            );
        }
    }
}
