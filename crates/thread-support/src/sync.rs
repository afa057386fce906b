//! The synchronisation primitives of every crate's hand-off protocols, with
//! one API over two implementations: parking_lot and std normally, loom's
//! models under `--cfg loom`, so that each crate's `tests/loom.rs` checks
//! the code that ships. A crate imports it as its own `sync` module
//! (`use thread_support::sync;`); `RUSTFLAGS="--cfg loom"` switches every
//! crate of the build at once.

#[cfg(not(loom))]
pub use std::sync::Arc;
#[cfg(not(loom))]
pub use std::sync::atomic::{
    AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering, fence,
};

#[cfg(loom)]
pub use loom::sync::Arc;
#[cfg(loom)]
pub use loom::sync::atomic::{
    AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering, fence,
};

/// Lets another thread run (a spin-wait step); under loom, lets the model
/// schedule the thread the loop waits for.
pub fn yield_now() {
    #[cfg(not(loom))]
    std::thread::yield_now();
    #[cfg(loom)]
    loom::thread::yield_now();
}

/// A pause inside a retry loop. Under loom it yields, so that the model
/// schedules the thread that the loop waits for.
#[inline]
pub fn spin_hint(round: u32) {
    #[cfg(loom)]
    {
        let _ = round;
        loom::thread::yield_now();
    }
    #[cfg(not(loom))]
    {
        // A writer descheduled in the middle of an update (oversubscription)
        // must get the CPU back: spin briefly, then yield.
        if round < 64 {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
}

#[cfg(not(loom))]
mod imp {
    use std::time::Instant;

    /// A mutex with parking_lot's API (no poisoning).
    pub struct Mutex<T>(parking_lot::Mutex<T>);
    /// The guard of a locked [`Mutex`].
    pub type MutexGuard<'a, T> = parking_lot::MutexGuard<'a, T>;

    impl<T> Mutex<T> {
        /// An unlocked mutex holding `value`.
        pub const fn new(value: T) -> Self {
            Self(parking_lot::Mutex::new(value))
        }
        /// Locks the mutex, waiting for it.
        pub fn lock(&self) -> MutexGuard<'_, T> {
            self.0.lock()
        }
    }

    /// A condition variable with parking_lot's API.
    pub struct Condvar(parking_lot::Condvar);

    impl Default for Condvar {
        fn default() -> Self {
            Self::new()
        }
    }

    impl Condvar {
        /// A condition variable nobody waits on.
        pub const fn new() -> Self {
            Self(parking_lot::Condvar::new())
        }
        /// Unlocks, waits for a notification, locks again.
        pub fn wait<T>(&self, guard: &mut MutexGuard<'_, T>) {
            self.0.wait(guard);
        }
        /// Waits until notified or `deadline`; true if the deadline passed.
        pub fn wait_until<T>(&self, guard: &mut MutexGuard<'_, T>, deadline: Instant) -> bool {
            self.0.wait_until(guard, deadline).timed_out()
        }
        /// Wakes one waiter.
        pub fn notify_one(&self) {
            self.0.notify_one();
        }
        /// Wakes every waiter.
        pub fn notify_all(&self) {
            self.0.notify_all();
        }
    }

    /// An `UnsafeCell` with loom's closure-based access API.
    pub struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

    impl<T> UnsafeCell<T> {
        /// A cell holding `value`.
        pub const fn new(value: T) -> Self {
            Self(std::cell::UnsafeCell::new(value))
        }
        /// Calls `f` with a pointer to the value; the caller's protocol
        /// makes the access exclusive.
        pub fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }
    }
}

#[cfg(loom)]
mod imp {
    use std::ops::{Deref, DerefMut};
    use std::time::Instant;

    /// A mutex with parking_lot's API (no poisoning), on loom's model.
    pub struct Mutex<T>(loom::sync::Mutex<T>);

    /// loom's condvar takes its guard by value; the `Option` lets the shim
    /// offer parking_lot's `&mut guard` API on top of it.
    pub struct MutexGuard<'a, T>(Option<loom::sync::MutexGuard<'a, T>>);

    impl<T> Deref for MutexGuard<'_, T> {
        type Target = T;
        fn deref(&self) -> &T {
            self.0.as_ref().expect("guard present")
        }
    }

    impl<T> DerefMut for MutexGuard<'_, T> {
        fn deref_mut(&mut self) -> &mut T {
            self.0.as_mut().expect("guard present")
        }
    }

    impl<T> Mutex<T> {
        /// An unlocked mutex holding `value`.
        pub fn new(value: T) -> Self {
            Self(loom::sync::Mutex::new(value))
        }
        /// Locks the mutex, waiting for it.
        pub fn lock(&self) -> MutexGuard<'_, T> {
            MutexGuard(Some(
                self.0.lock().expect("no panics while locked in the models"),
            ))
        }
    }

    /// A condition variable with parking_lot's API, on loom's model.
    pub struct Condvar(loom::sync::Condvar);

    impl Default for Condvar {
        fn default() -> Self {
            Self::new()
        }
    }

    impl Condvar {
        /// A condition variable nobody waits on.
        pub fn new() -> Self {
            Self(loom::sync::Condvar::new())
        }
        /// Unlocks, waits for a notification, locks again.
        pub fn wait<T>(&self, guard: &mut MutexGuard<'_, T>) {
            let g = guard.0.take().expect("guard present");
            guard.0 = Some(self.0.wait(g).unwrap());
        }
        /// loom has no clock: a timed wait is a wait that may also time out.
        pub fn wait_until<T>(&self, guard: &mut MutexGuard<'_, T>, _deadline: Instant) -> bool {
            let g = guard.0.take().expect("guard present");
            let (g, result) = self
                .0
                .wait_timeout(g, std::time::Duration::from_millis(1))
                .unwrap();
            guard.0 = Some(g);
            result.timed_out()
        }
        /// Wakes one waiter.
        pub fn notify_one(&self) {
            self.0.notify_one();
        }
        /// Wakes every waiter.
        pub fn notify_all(&self) {
            self.0.notify_all();
        }
    }

    /// loom's `UnsafeCell`: the model checks every access.
    pub struct UnsafeCell<T>(loom::cell::UnsafeCell<T>);

    impl<T> UnsafeCell<T> {
        /// A cell holding `value`.
        pub fn new(value: T) -> Self {
            Self(loom::cell::UnsafeCell::new(value))
        }
        /// Calls `f` with a pointer to the value; the model checks that the
        /// access is exclusive.
        pub fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            self.0.with_mut(f)
        }
    }
}

pub use imp::{Condvar, Mutex, MutexGuard, UnsafeCell};
