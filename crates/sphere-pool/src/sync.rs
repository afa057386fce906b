//! The few synchronisation primitives the hand-off uses, with one API over two
//! implementations: parking_lot and std atomics normally, loom's models under
//! `--cfg loom` so that the loom tests check the very code that ships.

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering};

#[cfg(not(loom))]
mod imp {
    use std::time::Instant;

    /// A mutex protecting no data: it only orders parking against waking.
    pub(crate) struct Mutex(parking_lot::Mutex<()>);
    pub(crate) type Guard<'a> = parking_lot::MutexGuard<'a, ()>;

    impl Mutex {
        pub(crate) const fn new() -> Self {
            Self(parking_lot::const_mutex(()))
        }
        pub(crate) fn lock(&self) -> Guard<'_> {
            self.0.lock()
        }
    }

    pub(crate) struct Condvar(parking_lot::Condvar);

    impl Condvar {
        pub(crate) const fn new() -> Self {
            Self(parking_lot::Condvar::new())
        }
        pub(crate) fn wait(&self, guard: &mut Guard<'_>) {
            self.0.wait(guard);
        }
        /// Waits until notified or until `deadline`; true if the deadline passed.
        pub(crate) fn wait_until(&self, guard: &mut Guard<'_>, deadline: Instant) -> bool {
            self.0.wait_until(guard, deadline).timed_out()
        }
        pub(crate) fn notify_one(&self) {
            self.0.notify_one();
        }
        pub(crate) fn notify_all(&self) {
            self.0.notify_all();
        }
    }

    /// An `UnsafeCell` with loom's closure-based access API.
    pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

    impl<T> UnsafeCell<T> {
        pub(crate) const fn new(value: T) -> Self {
            Self(std::cell::UnsafeCell::new(value))
        }
        pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }
    }
}

#[cfg(loom)]
mod imp {
    use std::time::Instant;

    pub(crate) struct Mutex(loom::sync::Mutex<()>);
    /// loom's condvar takes its guard by value; the `Option` lets the shim
    /// offer parking_lot's `&mut guard` API on top of it.
    pub(crate) struct Guard<'a>(Option<loom::sync::MutexGuard<'a, ()>>);

    impl Mutex {
        pub(crate) fn new() -> Self {
            Self(loom::sync::Mutex::new(()))
        }
        pub(crate) fn lock(&self) -> Guard<'_> {
            Guard(Some(self.0.lock().unwrap()))
        }
    }

    pub(crate) struct Condvar(loom::sync::Condvar);

    impl Condvar {
        pub(crate) fn new() -> Self {
            Self(loom::sync::Condvar::new())
        }
        pub(crate) fn wait(&self, guard: &mut Guard<'_>) {
            let g = guard.0.take().expect("guard present");
            guard.0 = Some(self.0.wait(g).unwrap());
        }
        /// loom has no clock: a timed wait is a wait that may also time out.
        pub(crate) fn wait_until(&self, guard: &mut Guard<'_>, _deadline: Instant) -> bool {
            let g = guard.0.take().expect("guard present");
            let (g, result) = self
                .0
                .wait_timeout(g, std::time::Duration::from_millis(1))
                .unwrap();
            guard.0 = Some(g);
            result.timed_out()
        }
        pub(crate) fn notify_one(&self) {
            self.0.notify_one();
        }
        pub(crate) fn notify_all(&self) {
            self.0.notify_all();
        }
    }

    pub(crate) struct UnsafeCell<T>(loom::cell::UnsafeCell<T>);

    impl<T> UnsafeCell<T> {
        pub(crate) fn new(value: T) -> Self {
            Self(loom::cell::UnsafeCell::new(value))
        }
        pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            self.0.with_mut(f)
        }
    }
}

pub(crate) use imp::{Condvar, Mutex, UnsafeCell};
