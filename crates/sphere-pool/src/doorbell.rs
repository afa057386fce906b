//! Sleeping until a word changes, and the pool's doorbell on top of it.
//!
//! [`FutexWord`] is a 32-bit word that threads sleep on: a Linux futex
//! (`FUTEX_WAIT_BITSET`, so that a wake can pick its sleepers by bit), or,
//! elsewhere and under loom, a mutex and condition variable that compare the
//! word under the mutex (so loom checks every protocol built on it).
//!
//! [`Doorbell`] is what idle spheres sleep on: every event a sleeper waits
//! for (a round, a dispatch to it, shutdown) rings it, and a round wakes every
//! sleeper with one wake call. The no-lost-wake argument is in `README.md`
//! ("The doorbell") and in the floor of `benches/c/compare.c`.

use crate::sync::{AtomicU32, AtomicU64, Ordering};

/// Every sleeper's bit: a wake for all.
pub const ALL_BITS: u32 = u32::MAX;

/// The bit sphere `index` sleeps with (sphere i and i + 32 share one: a
/// wake for one of them wakes both, and the other goes back to sleep).
pub fn sphere_bit(index: usize) -> u32 {
    1 << (index % 32)
}

/// A word that threads can sleep on until it changes.
pub struct FutexWord {
    word: AtomicU32,
    #[cfg(any(loom, not(target_os = "linux")))]
    lock: crate::sync::Mutex<()>,
    #[cfg(any(loom, not(target_os = "linux")))]
    changed: crate::sync::Condvar,
}

impl FutexWord {
    /// A word holding `value`, nobody asleep on it.
    pub fn new(value: u32) -> Self {
        Self {
            word: AtomicU32::new(value),
            #[cfg(any(loom, not(target_os = "linux")))]
            lock: crate::sync::Mutex::new(()),
            #[cfg(any(loom, not(target_os = "linux")))]
            changed: crate::sync::Condvar::new(),
        }
    }

    /// The word itself.
    pub fn atomic(&self) -> &AtomicU32 {
        &self.word
    }

    /// Sleeps if the word still holds `expected`, until a [`wake`](Self::wake)
    /// with a bit in common with `bits` (non-zero). May return spuriously:
    /// callers re-check what they wait for.
    #[cfg(all(target_os = "linux", not(loom)))]
    pub fn wait(&self, expected: u32, bits: u32) {
        // SAFETY: FUTEX_WAIT_BITSET on a live, aligned u32 (AtomicU32 has
        // u32's layout) that outlives the call; a null timeout waits without
        // deadline; the kernel compares the word with `expected` under its
        // bucket lock, so a change made before a wake is never slept through.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                self.word.as_ptr(),
                libc::FUTEX_WAIT_BITSET | libc::FUTEX_PRIVATE_FLAG,
                expected,
                std::ptr::null::<libc::timespec>(),
                std::ptr::null::<u32>(),
                bits,
            );
        }
    }

    /// Wakes every thread asleep on the word with a bit in common with
    /// `bits`. Call after changing the word.
    #[cfg(all(target_os = "linux", not(loom)))]
    pub fn wake(&self, bits: u32) {
        // SAFETY: as in `wait`; waking has no memory effect besides that.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                self.word.as_ptr(),
                libc::FUTEX_WAKE_BITSET | libc::FUTEX_PRIVATE_FLAG,
                i32::MAX,
                std::ptr::null::<libc::timespec>(),
                std::ptr::null::<u32>(),
                bits,
            );
        }
    }

    /// As the futex: compare under the mutex, sleep on the condition
    /// variable (bits are ignored: every sleeper wakes and re-checks).
    #[cfg(any(loom, not(target_os = "linux")))]
    pub fn wait(&self, expected: u32, _bits: u32) {
        let mut guard = self.lock.lock();
        if self.word.load(Ordering::SeqCst) == expected {
            self.changed.wait(&mut guard);
        }
    }

    /// As the futex: a waker that changed the word takes the mutex, so the
    /// notification comes after a sleeper's compare or before it (and then
    /// the compare sees the change).
    #[cfg(any(loom, not(target_os = "linux")))]
    pub fn wake(&self, _bits: u32) {
        let _guard = self.lock.lock();
        self.changed.notify_all();
    }
}

/// What idle spheres sleep on. A sleeper counts itself, re-checks its
/// condition, and sleeps on the bell's value from before it counted; a
/// waker makes the condition true, reads the sleeper count with a
/// read-modify-write, and only if someone sleeps, rings (changes the bell)
/// and wakes. See `README.md`, "The doorbell".
pub struct Doorbell {
    bell: FutexWord,
    /// Threads asleep on the bell, or about to be.
    sleepers: AtomicU32,
    /// Wake system calls made (rounds, dispatches, shutdown).
    wake_calls: AtomicU64,
}

impl Default for Doorbell {
    fn default() -> Self {
        Self::new()
    }
}

impl Doorbell {
    /// A quiet doorbell.
    pub fn new() -> Self {
        Self {
            bell: FutexWord::new(0),
            sleepers: AtomicU32::new(0),
            wake_calls: AtomicU64::new(0),
        }
    }

    /// Wakes the sleepers whose bit is in `bits`. Call after making their
    /// condition true (a release write or stronger). With nobody asleep it
    /// is one locked instruction on a line that only wakers and sleepers
    /// write, and no system call.
    pub fn ring(&self, bits: u32) {
        // A read-modify-write, not a load: the sleeper count's modification
        // order then decides. If this comes after a sleeper's increment, it
        // sees the sleeper; if before, the increment reads from it, so the
        // sleeper's re-check sees the condition made true before it. (A
        // load would need a SeqCst fence on both sides.)
        if self.sleepers.fetch_add(0, Ordering::SeqCst) != 0 {
            self.bell.atomic().fetch_add(1, Ordering::SeqCst);
            self.wake_calls.fetch_add(1, Ordering::Relaxed);
            self.bell.wake(bits);
        }
    }

    /// Sleeps with `bit` unless `ready()` (which must read its words with
    /// acquire or stronger) is true, calling `asleep()` just before. It may
    /// return without a ring: callers loop until they are ready.
    pub fn sleep(&self, bit: u32, ready: impl Fn() -> bool, asleep: impl FnOnce()) {
        let seen = self.bell.atomic().load(Ordering::SeqCst);
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        if !ready() {
            asleep();
            self.bell.wait(seen, bit);
        }
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
    }

    /// Wake system calls made so far.
    pub fn wake_calls(&self) -> u64 {
        self.wake_calls.load(Ordering::Relaxed)
    }
}
