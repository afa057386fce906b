//! ThreadSanitizer annotations for synchronisation that TSan cannot see.
//!
//! C programs link our libraries and run under TSan; our Rust code is not
//! instrumented (stable Rust cannot build it with TSan). TSan still sees
//! what it intercepts inside that code (`malloc` and `free`, and the
//! system calls that fill a buffer: `read`, `sched_getaffinity`), but not
//! the atomics, mutexes and futexes that order those accesses between
//! threads. Memory that one thread fills through such a call and another
//! fills later, under a lock of ours, is then reported as a race.
//!
//! Where that can happen, the code tells TSan about the order through the
//! runtime's own entry points: [`release`] where one side publishes (or
//! unlocks) and [`acquire`] where the other takes it (or locks), with the
//! same key, so that accesses before the release happen before those after
//! the acquire. [`Mutex`] does so for each hold of a lock. [`Untracked`]
//! turns the recording of this thread's accesses off for a moment.
//!
//! The library's own threads go further: [`library_thread`] turns the
//! recording off for the thread's life, and [`user_code`] turns it back on
//! around the program's code that such a thread runs (a share, a job, a
//! task, a callback). TSan then sees the program's accesses and our
//! annotations, and nothing of what the library does on its threads: no
//! report can come from the library's internal memory, and a race in the
//! program's code is still reported wherever it runs (`make tsan` plants
//! one in each kind of code a library thread runs).
//!
//! The entry points are looked up once, at run time, with
//! `dlsym(RTLD_DEFAULT, ...)`: they exist only in a program built with
//! `-fsanitize=thread`; elsewhere every function here does nothing (one
//! atomic load).

use std::cell::Cell;
use std::ffi::{c_char, c_void};
use std::sync::OnceLock;

type Annotate = unsafe extern "C" fn(addr: *mut c_void);
type Toggle = unsafe extern "C" fn();

/// The TSan runtime's entry points (all four, or none).
#[derive(Clone, Copy)]
struct Runtime {
    acquire: Annotate,
    release: Annotate,
    ignore_begin: Toggle,
    ignore_end: Toggle,
}

fn runtime() -> Option<&'static Runtime> {
    static RUNTIME: OnceLock<Option<Runtime>> = OnceLock::new();
    RUNTIME.get_or_init(lookup).as_ref()
}

fn symbol(name: &'static [u8]) -> *mut c_void {
    debug_assert_eq!(name.last(), Some(&0));
    // SAFETY: `name` is NUL-terminated; dlsym with RTLD_DEFAULT only reads it.
    unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr().cast::<c_char>()) }
}

fn lookup() -> Option<Runtime> {
    let acquire = symbol(b"__tsan_acquire\0");
    let release = symbol(b"__tsan_release\0");
    let ignore_begin = symbol(b"__tsan_ignore_thread_begin\0");
    let ignore_end = symbol(b"__tsan_ignore_thread_end\0");
    if [acquire, release, ignore_begin, ignore_end]
        .iter()
        .any(|p| p.is_null())
    {
        return None;
    }
    // SAFETY: these are the TSan runtime's `void __tsan_acquire(void*)`,
    // `void __tsan_release(void*)` and `void __tsan_ignore_thread_*(void)`.
    unsafe {
        Some(Runtime {
            acquire: std::mem::transmute::<*mut c_void, Annotate>(acquire),
            release: std::mem::transmute::<*mut c_void, Annotate>(release),
            ignore_begin: std::mem::transmute::<*mut c_void, Toggle>(ignore_begin),
            ignore_end: std::mem::transmute::<*mut c_void, Toggle>(ignore_end),
        })
    }
}

/// True when the program runs under ThreadSanitizer. The first call looks
/// the runtime up (microseconds): make it outside hot paths.
pub fn active() -> bool {
    runtime().is_some()
}

/// Key `n` of the object at `object`: its address plus `n` bytes, so that
/// one object (at least `n + 1` bytes long) serves as several keys.
pub fn key<T>(object: &T, n: usize) -> *const u8 {
    debug_assert!(n < std::mem::size_of::<T>().max(1));
    (object as *const T).cast::<u8>().wrapping_add(n)
}

/// Publishes this thread's accesses so far to whoever later calls
/// [`acquire`] with the same key. The key must be memory that stays
/// allocated while it is used as a key (TSan keeps its clock there).
pub fn release<T>(key: *const T) {
    if let Some(rt) = runtime() {
        // SAFETY: the runtime only uses the address as a key.
        unsafe { (rt.release)(key.cast_mut().cast()) }
    }
}

/// Makes the accesses published by earlier [`release`]s of `key` happen
/// before this thread's next accesses.
pub fn acquire<T>(key: *const T) {
    if let Some(rt) = runtime() {
        // SAFETY: as in `release`.
        unsafe { (rt.acquire)(key.cast_mut().cast()) }
    }
}

thread_local! {
    /// How many times this thread turned TSan's per-thread ignore on (the
    /// runtime keeps a count; [`user_code`] needs to know ours).
    static IGNORING: Cell<u32> = const { Cell::new(0) };
}

fn ignore_begin(rt: &Runtime) {
    // SAFETY: the runtime's per-thread ignore counter; every call is paired
    // with `ignore_end` (or lasts the thread's life, `library_thread`).
    unsafe { (rt.ignore_begin)() };
    IGNORING.with(|n| n.set(n.get() + 1));
}

fn ignore_end(rt: &Runtime) {
    // SAFETY: pairs with an earlier `ignore_begin` on this thread.
    unsafe { (rt.ignore_end)() };
    IGNORING.with(|n| n.set(n.get() - 1));
}

/// TSan's recording of this thread's memory accesses off until dropped
/// (user code run through [`user_code`] inside it is still recorded).
pub struct Untracked(Option<&'static Runtime>);

impl Untracked {
    /// Turns recording off.
    pub fn begin() -> Self {
        let rt = runtime();
        if let Some(rt) = rt {
            ignore_begin(rt);
        }
        Self(rt)
    }
}

impl Drop for Untracked {
    fn drop(&mut self) {
        if let Some(rt) = self.0 {
            ignore_end(rt);
        }
    }
}

/// Marks the calling thread as one of the library's own (a sphere, a role
/// pool's worker, a watchdog) until the returned guard drops (keep it for
/// the thread's life: TSan refuses a thread that ends inside an ignore):
/// TSan stops recording its memory accesses, its `malloc`s and its `free`s,
/// except inside [`user_code`]. Whatever the library does on its threads is
/// then out of TSan's view (it is checked by the library's own tests and
/// loom models), and the program's code that runs there is checked against
/// the program's other threads through the annotations of the hand-offs.
#[must_use = "the thread is the library's only while the guard lives"]
pub fn library_thread() -> Untracked {
    Untracked::begin()
}

/// The library's own work on any thread (a pool's share of one of the
/// library's jobs, on a sphere or on the caller): out of TSan's view, as
/// [`library_thread`] puts a whole thread, until the guard drops. No code of
/// the program may run inside it, except through [`user_code`].
pub fn library_code() -> Untracked {
    Untracked::begin()
}

/// Runs `f`, code of the program (a C callback, a job, a task), with TSan
/// recording this thread's accesses, even inside [`library_thread`] or
/// [`Untracked`]; the ignore is back when `f` returns or unwinds.
pub fn user_code<R>(f: impl FnOnce() -> R) -> R {
    // Without TSan, one load and a branch (the thread-local is not read).
    let Some(rt) = runtime() else {
        return f();
    };
    let depth = IGNORING.with(Cell::get);
    if depth == 0 {
        return f();
    }
    struct Restore(&'static Runtime, u32);
    impl Drop for Restore {
        fn drop(&mut self) {
            (0..self.1).for_each(|_| ignore_begin(self.0));
        }
    }
    (0..depth).for_each(|_| ignore_end(rt));
    let _restore = Restore(rt, depth);
    f()
}

/// A parking_lot mutex whose holds ThreadSanitizer sees: each lock
/// acquires the mutex's key, each unlock releases it first. For data that a
/// program under TSan would otherwise see raced: filled by an intercepted
/// system call, or reallocated (a `Vec` that grows), by one thread after
/// another.
#[derive(Debug, Default)]
pub struct Mutex<T>(parking_lot::Mutex<T>);

impl<T> Mutex<T> {
    /// A mutex holding `value`.
    pub const fn new(value: T) -> Self {
        Self(parking_lot::Mutex::new(value))
    }

    /// Locks, waiting as long as needed.
    pub fn lock(&self) -> Guard<'_, T> {
        Seen::new(self.0.lock(), &self.0)
    }

    /// Locks if the mutex is free now.
    pub fn try_lock(&self) -> Option<Guard<'_, T>> {
        self.0.try_lock().map(|guard| Seen::new(guard, &self.0))
    }

    /// The value, through the only reference (no lock needed).
    pub fn get_mut(&mut self) -> &mut T {
        self.0.get_mut()
    }

    /// The value, consuming the mutex.
    pub fn into_inner(self) -> T {
        self.0.into_inner()
    }
}

/// A hold of a [`Mutex`]; unlocks when dropped.
pub type Guard<'a, T> = Seen<parking_lot::MutexGuard<'a, T>>;

/// Any lock's guard, made visible to TSan: acquires `key` when made (make
/// it right after locking), releases it when dropped (before the guard
/// inside unlocks). For locks that cannot be a [`Mutex`] (those the loom
/// models check).
pub struct Seen<G> {
    key: *const u8,
    guard: G,
}

impl<G> Seen<G> {
    /// `guard`, just locked, with `key` (the lock) as TSan's key.
    pub fn new<K>(guard: G, key: &K) -> Self {
        acquire(key);
        Self {
            key: (key as *const K).cast(),
            guard,
        }
    }
}

impl<G> Seen<G> {
    /// Runs `f` on the guard inside while the lock is let go and taken
    /// again, as a condition variable's wait does: TSan sees the release
    /// before and the acquire after.
    pub fn unlocked_in<R>(&mut self, f: impl FnOnce(&mut G) -> R) -> R {
        release(self.key);
        let r = f(&mut self.guard);
        acquire(self.key);
        r
    }
}

impl<G: std::ops::Deref> std::ops::Deref for Seen<G> {
    type Target = G::Target;
    fn deref(&self) -> &G::Target {
        &self.guard
    }
}

impl<G: std::ops::DerefMut> std::ops::DerefMut for Seen<G> {
    fn deref_mut(&mut self) -> &mut G::Target {
        &mut self.guard
    }
}

impl<G> Drop for Seen<G> {
    fn drop(&mut self) {
        // Before the field's drop unlocks.
        release(self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_tsan_every_annotation_is_a_no_op() {
        // The test binary is not built with TSan: nothing is found and the
        // calls still work.
        assert!(!active());
        let key = 0u8;
        release(&key);
        acquire(&key);
        drop(Untracked::begin());
        let _library = library_thread();
        assert_eq!(user_code(|| 7), 7);
    }

    #[test]
    fn the_mutex_excludes_and_hands_its_value_on() {
        let m = Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for t in 0..4 {
                let m = &m;
                s.spawn(move || (0..100).for_each(|i| m.lock().push(t * 100 + i)));
            }
        });
        let guard = m.lock();
        assert!(m.try_lock().is_none(), "locked twice");
        drop(guard);
        let mut all = m.into_inner();
        all.sort_unstable();
        assert_eq!(all, (0..400).collect::<Vec<_>>());
    }
}
