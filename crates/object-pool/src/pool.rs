//! [`ObjectPool`]: shards of idle objects behind small locks, per-thread
//! caches in front of them, a cap, and statistics.

use crate::cache::{MAX_THREAD_CACHE, ThreadCache};
use crossbeam_utils::CachePadded;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::{AtomicUsize, Ordering};
use sync_stats::{ThreadSlots, current_thread_index, live_thread_indices, thread_exits};
use thread_support::tsan;

/// The most shards a pool may have.
pub const MAX_SHARDS: usize = 1024;

/// How a thread picks the shard it takes from and returns to when its own
/// cache cannot serve it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ShardChoice {
    /// The next shard in turn, from one shared counter (the plan's
    /// `ThreadSafeRobotMemoryPool`): spreads objects evenly.
    #[default]
    RoundRobin,
    /// The shard of the thread's index: a thread keeps using the same shard,
    /// so shards are not shared while threads ≤ shards.
    ThreadAffine,
}

/// Configuration of a pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolConfig {
    /// Number of shards (each a locked free list), `1..=MAX_SHARDS`.
    /// Default 4, as in the plan.
    pub shards: usize,
    /// How threads pick a shard. Default round-robin.
    pub shard_choice: ShardChoice,
    /// The most live objects (in use or idle) at once; `None` for no cap.
    /// Default `None`. At the cap, `acquire` fails with
    /// [`PoolError::Exhausted`] rather than waiting.
    pub max_live: Option<usize>,
    /// Idle objects each thread keeps for itself, `0..=MAX_THREAD_CACHE`
    /// (0 turns the caches off). Default 8.
    pub thread_cache: usize,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            shards: 4,
            shard_choice: ShardChoice::RoundRobin,
            max_live: None,
            thread_cache: 8,
        }
    }
}

impl PoolConfig {
    /// Checks the ranges documented on each field.
    pub fn validate(&self) -> Result<(), PoolError> {
        if !(1..=MAX_SHARDS).contains(&self.shards) {
            return Err(PoolError::InvalidConfig(format!(
                "shards = {}: expected 1..={MAX_SHARDS}",
                self.shards
            )));
        }
        if self.thread_cache > MAX_THREAD_CACHE {
            return Err(PoolError::InvalidConfig(format!(
                "thread_cache = {}: expected 0..={MAX_THREAD_CACHE}",
                self.thread_cache
            )));
        }
        if self.max_live == Some(0) {
            return Err(PoolError::InvalidConfig(
                "max_live = 0: use None for no cap".into(),
            ));
        }
        Ok(())
    }
}

/// Why a pool operation failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PoolError {
    /// Every one of the `max_live` objects was in use.
    Exhausted {
        /// The cap.
        max_live: usize,
    },
    /// A configuration value is out of range (the message names it).
    InvalidConfig(String),
}

impl fmt::Display for PoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PoolError::Exhausted { max_live } => {
                write!(f, "object pool exhausted: all {max_live} objects in use")
            }
            PoolError::InvalidConfig(message) => {
                write!(f, "invalid object pool configuration: {message}")
            }
        }
    }
}

impl std::error::Error for PoolError {}

/// A reading of a pool's counters. Exact when no thread is using the pool;
/// while threads acquire and release, each figure is a recent value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Acquisitions served by a reused object.
    pub hits: u64,
    /// Acquisitions that made a new object (the factory ran).
    pub misses: u64,
    /// Objects acquired and not yet released.
    pub in_use: u64,
    /// Objects alive: in use plus idle.
    pub live: usize,
    /// Idle objects in the shards.
    pub idle_in_shards: usize,
    /// Idle objects in per-thread caches.
    pub idle_in_caches: usize,
    /// Idle objects per shard.
    pub shard_sizes: Vec<usize>,
    /// The cap, if any.
    pub max_live: Option<usize>,
}

impl PoolStats {
    /// `hits / (hits + misses)`, 0 before the first acquisition.
    pub fn hit_rate(&self) -> f64 {
        let total = self.hits + self.misses;
        if total == 0 {
            0.0
        } else {
            self.hits as f64 / total as f64
        }
    }
}

/// One shard: a locked free list of idle objects, on its own cache line.
// A ThreadSanitizer-visible lock: the idle lists grow on whichever thread
// gives an object back, and a C program under TSan would see the `Vec`'s
// reallocations, not our lock.
type Shard<T> = CachePadded<tsan::Mutex<Vec<Box<T>>>>;
type Factory<T> = Box<dyn Fn() -> T + Send + Sync>;
type Reset<T> = Box<dyn Fn(&mut T) + Send + Sync>;

/// Use counts. In a [`ThreadSlot`] only the owning thread writes them, with
/// a plain load and store (no locked instruction); the shared set, for
/// threads without an index, uses read-modify-writes.
#[derive(Default)]
struct Counts {
    hits: AtomicU64,
    misses: AtomicU64,
    /// Releases and detaches: objects leaving use.
    returned: AtomicU64,
}

fn bump_owned(counter: &AtomicU64) {
    // Release pairs with the Acquire of `stats` (see there).
    counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Release);
}

/// What a thread index owns in one pool: its cache and its counts.
struct ThreadSlot<T> {
    cache: ThreadCache<T>,
    counts: Counts,
}

impl<T> Default for ThreadSlot<T> {
    fn default() -> Self {
        Self {
            cache: ThreadCache::default(),
            counts: Counts::default(),
        }
    }
}

/// Which counter an event goes to.
#[derive(Clone, Copy)]
enum Event {
    Hit,
    Miss,
    Returned,
}

struct Inner<T> {
    config: PoolConfig,
    shards: Box<[Shard<T>]>,
    /// Per-thread caches and counts, by thread index. They belong to the
    /// pool, not to the threads: dropping the pool frees them whatever the
    /// threads do.
    slots: ThreadSlots<CachePadded<ThreadSlot<T>>>,
    /// Counts of threads that have no index (inside TLS destructors).
    shared_counts: CachePadded<Counts>,
    next_shard: CachePadded<AtomicUsize>,
    /// Objects alive; changes only on misses and discards, not per use.
    live: CachePadded<AtomicUsize>,
    /// `sync_stats::thread_exits()` at the last reclaim of exited threads' caches.
    exits_reclaimed: AtomicU64,
    factory: Factory<T>,
    reset: Option<Reset<T>>,
}

/// A pool of reusable `T`s, shared by any number of threads (clone the
/// handle, or share it by reference).
///
/// [`acquire`](Self::acquire) looks, in order, in the calling thread's cache
/// (no lock), in the thread's shard (one lock, refilling the cache with a
/// batch), in the other shards (`try_lock` only), then makes a new object if
/// the cap allows; at the cap it searches every shard and steals from other
/// threads' caches before reporting [`PoolError::Exhausted`]. A [`Pooled`]
/// guard returns its object on drop, into the releasing thread's cache, or,
/// when that is full, with half the cache into a shard. The hot path (own
/// cache) costs one atomic swap and no shared cache-line write.
///
/// Per-thread caches and drop: the caches live inside the pool, indexed by
/// thread index; threads keep nothing in their own thread-locals. So when
/// the last handle of the pool is dropped, every idle object is freed,
/// whichever thread cached it. Objects cached by a thread that has exited
/// are moved back to the shards by the next acquisition that would
/// otherwise make a new object (or reused by the next thread given the same
/// index, or stolen at the cap): an exiting thread strands nothing.
/// A [`Pooled`] guard borrows the pool, so the pool cannot be dropped while
/// an object is out (objects taken with [`take`](Self::take) are plain boxes
/// and are simply freed if never put back).
pub struct ObjectPool<T: Send + 'static> {
    inner: Arc<Inner<T>>,
}

impl<T: Send + 'static> Clone for ObjectPool<T> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<T: Send + 'static> fmt::Debug for ObjectPool<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectPool")
            .field("config", &self.inner.config)
            .field("stats", &self.stats())
            .finish()
    }
}

impl<T: Send + 'static> ObjectPool<T> {
    /// A pool whose new objects come from `factory`; released objects are
    /// reused as they are.
    pub fn new(
        config: PoolConfig,
        factory: impl Fn() -> T + Send + Sync + 'static,
    ) -> Result<Self, PoolError> {
        Self::build(config, Box::new(factory), None)
    }

    /// A pool that also runs `reset` on every released object (on the
    /// releasing thread) before it can be reused. `reset` must not panic; if
    /// it does, the object is dropped instead of reused and the panic goes on.
    pub fn with_reset(
        config: PoolConfig,
        factory: impl Fn() -> T + Send + Sync + 'static,
        reset: impl Fn(&mut T) + Send + Sync + 'static,
    ) -> Result<Self, PoolError> {
        Self::build(config, Box::new(factory), Some(Box::new(reset)))
    }

    fn build(
        config: PoolConfig,
        factory: Factory<T>,
        reset: Option<Reset<T>>,
    ) -> Result<Self, PoolError> {
        config.validate()?;
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                shards: (0..config.shards)
                    .map(|_| CachePadded::new(tsan::Mutex::new(Vec::new())))
                    .collect(),
                slots: ThreadSlots::new(),
                shared_counts: CachePadded::new(Counts::default()),
                next_shard: CachePadded::new(AtomicUsize::new(0)),
                live: CachePadded::new(AtomicUsize::new(0)),
                exits_reclaimed: AtomicU64::new(thread_exits()),
                factory,
                reset,
            }),
        })
    }

    /// The configuration the pool was made with.
    pub fn config(&self) -> &PoolConfig {
        &self.inner.config
    }

    /// An object, reused if one is idle, else new. Fails with
    /// [`PoolError::Exhausted`] when `max_live` objects exist and none is
    /// idle (objects being released at the same moment may be missed).
    /// A panic of the factory propagates and leaves the pool consistent.
    pub fn acquire(&self) -> Result<Pooled<'_, T>, PoolError> {
        let object = self.inner.take()?;
        Ok(Pooled {
            object: Some(object),
            pool: &self.inner,
        })
    }

    /// [`acquire`](Self::acquire) without a guard: the caller owns the box
    /// and gives it back with [`put`](Self::put) (from any thread), or drops
    /// it, which frees it for good (the pool then still counts it as live
    /// and in use). For owners that keep objects in their own structures,
    /// such as a C API.
    pub fn take(&self) -> Result<Box<T>, PoolError> {
        self.inner.take()
    }

    /// Gives back an object obtained from [`take`](Self::take) of this pool
    /// (an object from elsewhere would be pooled too, but the counts would
    /// no longer add up).
    pub fn put(&self, object: Box<T>) {
        self.inner.release(object);
    }

    /// The counters now (see [`PoolStats`]).
    pub fn stats(&self) -> PoolStats {
        self.inner.stats()
    }

    /// Frees every idle object (shards and all thread caches) and returns how
    /// many were freed; objects in use are not touched.
    pub fn release_idle(&self) -> usize {
        let inner = &*self.inner;
        let mut freed = 0;
        for shard in inner.shards.iter() {
            let idle = std::mem::take(&mut *shard.lock());
            freed += idle.len();
        }
        inner.slots.for_each(|_, slot| {
            while slot.cache.steal().is_some() {
                freed += 1;
            }
        });
        inner.live.fetch_sub(freed, Ordering::Relaxed);
        freed
    }
}

impl<T: Send + 'static> Inner<T> {
    fn slot(&self, index: Option<usize>) -> Option<&ThreadSlot<T>> {
        index.map(|i| &**self.slots.get_or_create(i))
    }

    fn count(&self, slot: Option<&ThreadSlot<T>>, event: Event) {
        fn pick(c: &Counts, event: Event) -> &AtomicU64 {
            match event {
                Event::Hit => &c.hits,
                Event::Miss => &c.misses,
                Event::Returned => &c.returned,
            }
        }
        let pick = |c| pick(c, event);
        match slot {
            Some(slot) => bump_owned(pick(&slot.counts)),
            None => {
                pick(&self.shared_counts).fetch_add(1, Ordering::Release);
            }
        }
    }

    /// The thread's cache, if it has one and caches are on.
    fn cache<'a>(&self, slot: Option<&'a ThreadSlot<T>>) -> Option<&'a ThreadCache<T>> {
        slot.filter(|_| self.config.thread_cache > 0)
            .map(|s| &s.cache)
    }

    fn pick_shard(&self, index: Option<usize>) -> usize {
        let n = self.shards.len();
        match self.config.shard_choice {
            ShardChoice::RoundRobin if n > 1 => self.next_shard.fetch_add(1, Ordering::Relaxed) % n,
            ShardChoice::RoundRobin => 0,
            ShardChoice::ThreadAffine => index.unwrap_or(0) % n,
        }
    }

    /// One object from a locked shard; the rest of a batch goes to `cache`.
    fn take_from(&self, shard: &mut Vec<Box<T>>, cache: Option<&ThreadCache<T>>) -> Option<Box<T>> {
        let object = shard.pop()?;
        if let Some(cache) = cache {
            for _ in 0..self.config.thread_cache / 2 {
                let Some(extra) = shard.pop() else { break };
                if let Err(extra) = cache.push(self.config.thread_cache, extra) {
                    shard.push(extra);
                    break;
                }
            }
        }
        Some(object)
    }

    fn take(&self) -> Result<Box<T>, PoolError> {
        let index = current_thread_index();
        let slot = self.slot(index);
        let cache = self.cache(slot);
        if let Some(object) = cache.and_then(ThreadCache::pop) {
            self.count(slot, Event::Hit);
            return Ok(object);
        }
        let n = self.shards.len();
        let home = self.pick_shard(index);
        let reused = self
            .take_from(&mut self.shards[home].lock(), cache)
            .or_else(|| {
                (1..n).find_map(|k| {
                    let mut shard = self.shards[(home + k) % n].try_lock()?;
                    self.take_from(&mut shard, cache)
                })
            });
        if let Some(object) = reused.or_else(|| self.reclaim_exited(home)) {
            self.count(slot, Event::Hit);
            return Ok(object);
        }
        if self.reserve_live() {
            self.count(slot, Event::Miss);
            // Undo the reservation if the factory panics.
            let object = catch_unwind(AssertUnwindSafe(|| Box::new((self.factory)())))
                .unwrap_or_else(|payload| {
                    self.live.fetch_sub(1, Ordering::Relaxed);
                    self.count(slot, Event::Returned);
                    resume_unwind(payload)
                });
            return Ok(object);
        }
        // At the cap: look everywhere an idle object can be.
        let found = (0..n)
            .find_map(|k| self.shards[(home + k) % n].lock().pop())
            .or_else(|| {
                let mut stolen = None;
                self.slots.for_each(|_, s| {
                    if stolen.is_none() {
                        stolen = s.cache.steal();
                    }
                });
                stolen
            });
        match found {
            Some(object) => {
                self.count(slot, Event::Hit);
                Ok(object)
            }
            None => Err(PoolError::Exhausted {
                max_live: self.config.max_live.unwrap_or(usize::MAX),
            }),
        }
    }

    /// Before making a new object: if threads have exited since the last
    /// look, moves the objects in their caches (indices no live thread has)
    /// into shard `home` and returns one of them. One thread does the sweep;
    /// a thread given a swept index meanwhile is safe, since the sweep only
    /// steals (see `ThreadCache`).
    #[cold]
    fn reclaim_exited(&self, home: usize) -> Option<Box<T>> {
        let exits = thread_exits();
        let seen = self.exits_reclaimed.load(Ordering::Relaxed);
        if exits == seen
            || self
                .exits_reclaimed
                .compare_exchange(seen, exits, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return None;
        }
        let live = live_thread_indices();
        let mut orphans = Vec::new();
        self.slots.for_each(|index, s| {
            if live.binary_search(&index).is_err() {
                while let Some(object) = s.cache.steal() {
                    orphans.push(object);
                }
            }
        });
        let first = orphans.pop()?;
        self.shards[home].lock().append(&mut orphans);
        Some(first)
    }

    /// Counts one more live object if the cap allows it.
    fn reserve_live(&self) -> bool {
        match self.config.max_live {
            None => {
                self.live.fetch_add(1, Ordering::Relaxed);
                true
            }
            Some(cap) => self
                .live
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                    (n < cap).then_some(n + 1)
                })
                .is_ok(),
        }
    }

    fn release(&self, mut object: Box<T>) {
        let index = current_thread_index();
        let slot = self.slot(index);
        self.count(slot, Event::Returned);
        if let Some(reset) = &self.reset {
            if let Err(payload) = catch_unwind(AssertUnwindSafe(|| reset(&mut object))) {
                self.live.fetch_sub(1, Ordering::Relaxed);
                drop(object);
                resume_unwind(payload);
            }
        }
        let object = match self.cache(slot) {
            Some(cache) => match cache.push(self.config.thread_cache, object) {
                Ok(()) => return,
                Err(object) => {
                    // Full: move half the cache and this object to a shard in
                    // one lock, so the next releases hit the cache again.
                    let mut shard = self.shards[self.pick_shard(index)].lock();
                    shard.push(object);
                    for _ in 0..self.config.thread_cache.div_ceil(2) {
                        match cache.pop() {
                            Some(extra) => shard.push(extra),
                            None => break,
                        }
                    }
                    return;
                }
            },
            None => object,
        };
        self.shards[self.pick_shard(index)].lock().push(object);
    }

    /// Marks an object as gone for good (detached).
    fn forget(&self) {
        self.live.fetch_sub(1, Ordering::Relaxed);
        self.count(self.slot(current_thread_index()), Event::Returned);
    }

    fn stats(&self) -> PoolStats {
        // Returns first, with Acquire: a return is counted after its
        // acquisition (Release stores, and the object passed between the two
        // threads), so a reader that sees the return sees the acquisition
        // and in_use never reads negative.
        let sum = |pick: fn(&Counts) -> &AtomicU64| {
            let mut total = pick(&self.shared_counts).load(Ordering::Acquire);
            self.slots
                .for_each(|_, s| total += pick(&s.counts).load(Ordering::Acquire));
            total
        };
        let returned = sum(|c| &c.returned);
        let hits = sum(|c| &c.hits);
        let misses = sum(|c| &c.misses);
        let shard_sizes: Vec<usize> = self.shards.iter().map(|s| s.lock().len()).collect();
        let mut idle_in_caches = 0;
        self.slots.for_each(|_, s| idle_in_caches += s.cache.len());
        PoolStats {
            hits,
            misses,
            in_use: (hits + misses).saturating_sub(returned),
            live: self.live.load(Ordering::Relaxed),
            idle_in_shards: shard_sizes.iter().sum(),
            idle_in_caches,
            shard_sizes,
            max_live: self.config.max_live,
        }
    }
}

/// An object taken from an [`ObjectPool`]; dereferences to it and gives it
/// back to the pool when dropped. It borrows the pool (no reference count to
/// update: the hot path writes no shared cache line) and may be sent to and
/// dropped on another thread.
pub struct Pooled<'a, T: Send + 'static> {
    object: Option<Box<T>>,
    pool: &'a Inner<T>,
}

impl<T: Send + 'static> Pooled<'_, T> {
    /// Takes the object out of the pool for good: it no longer counts as
    /// live, and dropping it frees it.
    pub fn detach(mut this: Self) -> Box<T> {
        let object = this.object.take().expect("object present until drop");
        this.pool.forget();
        object
    }
}

impl<T: Send + 'static> Deref for Pooled<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.object.as_deref().expect("object present until drop")
    }
}

impl<T: Send + 'static> DerefMut for Pooled<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.object
            .as_deref_mut()
            .expect("object present until drop")
    }
}

impl<T: Send + 'static + fmt::Debug> fmt::Debug for Pooled<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Pooled").field(&**self).finish()
    }
}

impl<T: Send + 'static> Drop for Pooled<'_, T> {
    fn drop(&mut self) {
        if let Some(object) = self.object.take() {
            self.pool.release(object);
        }
    }
}
