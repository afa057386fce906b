//! ThreadSanitizer annotations for the hand-offs between the calling thread
//! and the spheres.
//!
//! C teams run their trainers under TSan. Our Rust code is not instrumented
//! (stable Rust cannot build it with TSan), so TSan does not see the atomics
//! and futexes that order a batch allocated on the caller's thread before a
//! sphere reads and frees it, or one sphere's turn on the training object
//! before the next: it would report those host accesses as races. Here the
//! system tells TSan about each hand-off through the runtime's own entry
//! points: `__tsan_release(key)` where one side publishes (a job to a
//! sphere, a finished job, the end of a turn) and `__tsan_acquire(key)`
//! where the other side takes it, so the host's accesses before the
//! release happen before its accesses after the acquire. Nothing else is
//! hidden: a host that touches a batch after handing it to us still races.
//!
//! The entry points are looked up once, at run time, with
//! `dlsym(RTLD_DEFAULT, ...)`: they exist only in a program built with
//! `-fsanitize=thread`; elsewhere every function here does nothing (one
//! atomic load).
//!
//! One more annotation, [`Untracked`]: while the caller publishes a job,
//! the pool boxes it (`malloc`) and the sphere frees the box after running
//! it, both in uninstrumented Rust ordered by the pool's atomics. TSan sees
//! the `malloc` and the `free` (it intercepts them) but no order between
//! them. The box cannot be allocated before the release (the pool makes it
//! while publishing), so the publish call runs with TSan's per-thread
//! ignore on: the memory the pool allocates there is not recorded as
//! written. No host function runs inside it, except on one error path: a
//! job the pool refuses is dropped there, and with it its batch (freed by
//! the host, untracked).

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

/// True when the program runs under ThreadSanitizer.
#[cfg(test)]
fn active() -> bool {
    runtime().is_some()
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

/// A sphere's side of a job: [`acquire`]s the sphere's key when the job
/// starts and [`release`]s it when dropped (the job's end, also on an early
/// return or a panic).
pub struct Handoff(usize);

impl Handoff {
    /// Takes the job published under `key` (a [`Keys::sphere`] key).
    pub fn take(key: usize) -> Self {
        acquire(key as *const u8);
        Self(key)
    }
}

impl Drop for Handoff {
    fn drop(&mut self) {
        release(self.0 as *const u8);
    }
}

/// TSan's memory tracking off on this thread until dropped (see the module
/// documentation: only around the pool's boxing of a job).
pub struct Untracked(Option<&'static Runtime>);

impl Untracked {
    /// Turns tracking off.
    pub fn begin() -> Self {
        let rt = runtime();
        if let Some(rt) = rt {
            // SAFETY: the runtime's per-thread ignore counter, decremented
            // again by `drop`.
            unsafe { (rt.ignore_begin)() };
        }
        Self(rt)
    }
}

impl Drop for Untracked {
    fn drop(&mut self) {
        if let Some(rt) = self.0 {
            // SAFETY: pairs with `begin`.
            unsafe { (rt.ignore_end)() }
        }
    }
}

/// One key per sphere: the sphere's jobs are handed to it and back through
/// its key (release before dispatch, acquire when the job starts; release
/// when it ends, acquire after waiting for it). Dispatch and completion
/// alternate on a sphere, so one key serves both directions.
pub struct Keys(Box<[u8]>);

impl Keys {
    /// Keys for `n` spheres.
    pub fn new(n: usize) -> Self {
        Self(vec![0; n.max(1)].into_boxed_slice())
    }

    /// Sphere `s`'s key: the address of its own byte (no two spheres share
    /// a clock), as an integer so that jobs can carry it.
    pub fn sphere(&self, s: usize) -> usize {
        &self.0[s] as *const u8 as usize
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
        let keys = Keys::new(3);
        release(keys.sphere(2) as *const u8);
        acquire(keys.sphere(2) as *const u8);
        drop(Handoff::take(keys.sphere(1)));
        drop(Untracked::begin());
    }

    #[test]
    fn each_sphere_has_its_own_key() {
        let keys = Keys::new(4);
        let all: Vec<_> = (0..4).map(|s| keys.sphere(s)).collect();
        for (i, a) in all.iter().enumerate() {
            assert!(all[i + 1..].iter().all(|b| b != a));
        }
    }
}
