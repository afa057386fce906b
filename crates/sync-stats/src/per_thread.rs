//! [`PerThreadStats`]: statistics that each thread updates in its own slot,
//! without locks, and that a reader merges on demand.

use crate::seqlock::{MAX_WORDS, SeqSlot};
use crate::thread_slots::ThreadSlots;
use crossbeam_utils::CachePadded;
use std::marker::PhantomData;

/// A statistic that can be kept per thread and merged: stored as up to
/// [`MAX_WORDS`] `u64` words so that a reader can copy it consistently
/// without a lock.
///
/// Laws: `T::default()` is the identity of `merge`, `merge` is associative
/// and commutative, and `from_words(to_words(x)) == x`.
pub trait Mergeable: Copy + Default + Send + Sync + 'static {
    /// The number of words (at most [`MAX_WORDS`]).
    const WORDS: usize;
    /// Writes the value into `out` (`out.len() == WORDS`).
    fn to_words(&self, out: &mut [u64]);
    /// Reads a value back from `words` (`words.len() == WORDS`).
    fn from_words(words: &[u64]) -> Self;
    /// Folds `other` into `self`.
    fn merge(&mut self, other: &Self);
}

impl Mergeable for u64 {
    const WORDS: usize = 1;
    fn to_words(&self, out: &mut [u64]) {
        out[0] = *self;
    }
    fn from_words(words: &[u64]) -> Self {
        words[0]
    }
    fn merge(&mut self, other: &Self) {
        *self = self.wrapping_add(*other);
    }
}

/// Count, sum, minimum and maximum of `f64` samples.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SampleStats {
    /// Number of samples.
    pub count: u64,
    /// Sum of the samples.
    pub sum: f64,
    /// Smallest sample (`+inf` when there is none).
    pub min: f64,
    /// Largest sample (`-inf` when there is none).
    pub max: f64,
}

impl Default for SampleStats {
    fn default() -> Self {
        Self {
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }
}

impl SampleStats {
    /// Adds one sample. NaN samples are ignored (they would poison the sum).
    pub fn record(&mut self, x: f64) {
        if x.is_nan() {
            return;
        }
        self.count += 1;
        self.sum += x;
        self.min = self.min.min(x);
        self.max = self.max.max(x);
    }

    /// The mean, or `None` without samples.
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum / self.count as f64)
    }
}

impl Mergeable for SampleStats {
    const WORDS: usize = 4;
    fn to_words(&self, out: &mut [u64]) {
        out[0] = self.count;
        out[1] = self.sum.to_bits();
        out[2] = self.min.to_bits();
        out[3] = self.max.to_bits();
    }
    fn from_words(words: &[u64]) -> Self {
        Self {
            count: words[0],
            sum: f64::from_bits(words[1]),
            min: f64::from_bits(words[2]),
            max: f64::from_bits(words[3]),
        }
    }
    fn merge(&mut self, other: &Self) {
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }
}

/// A statistic kept per thread: [`update`](Self::update) changes only the
/// calling thread's slot (no lock, no shared cache line), and
/// [`snapshot`](Self::snapshot) merges every slot.
///
/// Each slot is a [`SeqSlot`]: the snapshot sees each thread's value as it
/// was between two of that thread's updates, never half-written. Threads that
/// exit leave their value behind (a new thread that reuses the index goes on
/// from it), so nothing recorded is lost. A thread that is past the end of
/// its thread-local storage (inside a TLS destructor) updates a shared slot
/// under a lock instead.
pub struct PerThreadStats<T: Mergeable> {
    slots: ThreadSlots<CachePadded<SeqSlot>>,
    #[cfg(not(loom))]
    orphan: parking_lot::Mutex<T>,
    _value: PhantomData<T>,
}

impl<T: Mergeable> Default for PerThreadStats<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Mergeable> PerThreadStats<T> {
    const FITS: () = assert!(T::WORDS <= MAX_WORDS, "Mergeable::WORDS exceeds MAX_WORDS");

    /// Empty statistics.
    pub fn new() -> Self {
        #[allow(clippy::let_unit_value)]
        let () = Self::FITS;
        Self {
            slots: ThreadSlots::new(),
            #[cfg(not(loom))]
            orphan: parking_lot::Mutex::new(T::default()),
            _value: PhantomData,
        }
    }

    /// Changes the calling thread's value with `f`. `f` must not update the
    /// same `PerThreadStats` (the inner update would be overwritten).
    #[cfg(not(loom))]
    pub fn update(&self, f: impl FnOnce(&mut T)) {
        match crate::current_thread_index() {
            Some(index) => self.update_at(index, f),
            None => f(&mut self.orphan.lock()),
        }
    }

    /// `update` on the slot of thread index `index`. The caller guarantees
    /// that no other thread updates that slot at the same time (the thread
    /// registry's indices have this property).
    pub fn update_at(&self, index: usize, f: impl FnOnce(&mut T)) {
        let slot = self.slots.get_or_create(index);
        let mut words = [0u64; MAX_WORDS];
        let mut value = if slot.read_own(&mut words[..T::WORDS]) {
            T::from_words(&words[..T::WORDS])
        } else {
            T::default()
        };
        f(&mut value);
        value.to_words(&mut words[..T::WORDS]);
        slot.write(&words[..T::WORDS]);
    }

    /// The merge of every thread's value.
    pub fn snapshot(&self) -> T {
        let mut total = T::default();
        self.for_each_thread(|_, value| total.merge(value));
        #[cfg(not(loom))]
        total.merge(&self.orphan.lock());
        total
    }

    /// Calls `f(thread_index, value)` for every thread slot that was written.
    pub fn for_each_thread(&self, mut f: impl FnMut(usize, &T)) {
        let mut words = [0u64; MAX_WORDS];
        self.slots.for_each(|index, slot| {
            if slot.read(&mut words[..T::WORDS]) {
                f(index, &T::from_words(&words[..T::WORDS]));
            }
        });
    }
}

#[cfg(not(loom))]
impl PerThreadStats<SampleStats> {
    /// Records one sample in the calling thread's slot.
    pub fn record(&self, x: f64) {
        self.update(|s| s.record(x));
    }
}

#[cfg(not(loom))]
impl PerThreadStats<u64> {
    /// Adds `delta` to the calling thread's count.
    pub fn add(&self, delta: u64) {
        self.update(|n| *n = n.wrapping_add(delta));
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn sample_stats_merge_equals_recording_everything_in_one() {
        let (mut a, mut b, mut all) = (
            SampleStats::default(),
            SampleStats::default(),
            SampleStats::default(),
        );
        for (i, x) in [3.0, -1.5, 8.25, 0.0, 2.0].into_iter().enumerate() {
            if i % 2 == 0 {
                a.record(x)
            } else {
                b.record(x)
            }
            all.record(x);
        }
        a.merge(&b);
        assert_eq!(a, all);
        assert_eq!((all.count, all.min, all.max), (5, -1.5, 8.25));
        assert_eq!(all.mean(), Some(11.75 / 5.0));
        let mut words = [0; 4];
        all.to_words(&mut words);
        assert_eq!(SampleStats::from_words(&words), all);
    }

    #[test]
    fn nan_samples_are_ignored() {
        let mut s = SampleStats::default();
        s.record(f64::NAN);
        s.record(1.0);
        assert_eq!((s.count, s.sum), (1, 1.0));
        assert_eq!(SampleStats::default().mean(), None);
    }

    #[test]
    fn snapshot_merges_all_threads_including_exited_ones() {
        let stats = PerThreadStats::<SampleStats>::new();
        std::thread::scope(|s| {
            for t in 0..4 {
                let stats = &stats;
                s.spawn(move || {
                    for i in 0..1000 {
                        stats.record((t * 1000 + i) as f64);
                    }
                });
            }
        });
        let total = stats.snapshot();
        assert_eq!(total.count, 4000);
        assert_eq!(total.sum, (0..4000).sum::<i64>() as f64);
        assert_eq!((total.min, total.max), (0.0, 3999.0));
        let mut per_thread = 0;
        stats.for_each_thread(|_, v| per_thread += v.count);
        assert_eq!(per_thread, 4000);
    }

    #[test]
    fn snapshot_while_threads_record_is_consistent_and_final_is_exact() {
        // Each slot only grows, so merged snapshots must never go backwards.
        let stats = PerThreadStats::<u64>::new();
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            for _ in 0..3 {
                s.spawn(|| {
                    for _ in 0..50_000 {
                        stats.add(1);
                    }
                });
            }
            s.spawn(|| {
                let mut last = 0;
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    let now = stats.snapshot();
                    assert!(now >= last, "a per-thread counter went backwards");
                    last = now;
                    if now == 150_000 {
                        break;
                    }
                }
            });
            while stats.snapshot() < 150_000 {
                std::thread::yield_now();
            }
            done.store(true, std::sync::atomic::Ordering::Relaxed);
        });
        assert_eq!(stats.snapshot(), 150_000);
    }
}
