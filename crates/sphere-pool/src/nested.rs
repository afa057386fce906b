//! What this thread is running for which pool, kept in thread-locals: a
//! sphere knows its pool and index; a thread inside a pool's work (a share,
//! a body, a job, a nested call) has a frame on a chain. Pools use it to run
//! nested calls inline and to refuse waits and frees that could never end.
//! A pool is named by its address (`SpherePool::id`).

use std::cell::Cell;

thread_local! {
    /// On a sphere thread: (its pool's address, its index).
    static CURRENT_SPHERE: Cell<Option<(usize, usize)>> = const { Cell::new(None) };
    /// The innermost call of a pool that this thread is running work of, as
    /// a chain of frames on its stack (a thread may be inside several pools).
    static INSIDE: Cell<*const Inside> = const { Cell::new(std::ptr::null()) };
}

/// Marks this thread as sphere `index` of the pool at `pool`, for its life.
pub(crate) fn set_current_sphere(pool: usize, index: usize) {
    CURRENT_SPHERE.set(Some((pool, index)));
}

/// (pool, index) if this thread is a sphere.
pub(crate) fn current_sphere() -> Option<(usize, usize)> {
    CURRENT_SPHERE.get()
}

/// One link of [`INSIDE`]: this thread runs work of `pool` as `participant`.
struct Inside {
    pool: usize,
    participant: usize,
    outer: *const Inside,
}

/// Runs `f` with `(pool, participant)` pushed on this thread's [`INSIDE`]
/// chain, popped again however `f` ends.
pub(crate) fn inside<R>(pool: usize, participant: usize, f: impl FnOnce() -> R) -> R {
    struct Pop(*const Inside);
    impl Drop for Pop {
        fn drop(&mut self) {
            INSIDE.set(self.0);
        }
    }
    let frame = Inside {
        pool,
        participant,
        outer: INSIDE.get(),
    };
    INSIDE.set(&frame);
    let _pop = Pop(frame.outer);
    f()
}

/// The participant this thread runs for `pool` in an [`inside`] frame.
pub(crate) fn inside_frame_of(pool: usize) -> Option<usize> {
    let mut frame = INSIDE.get();
    // SAFETY: every frame of the chain lives on this thread's stack below
    // the current call (`inside` pops it before its stack frame ends).
    while let Some(f) = unsafe { frame.as_ref() } {
        if f.pool == pool {
            return Some(f.participant);
        }
        frame = f.outer;
    }
    None
}

/// This thread's participant index if it runs work of `pool` (a sphere's
/// job or share, the caller's share, a nested call).
pub(crate) fn participant_in(pool: usize) -> Option<usize> {
    match current_sphere() {
        Some((p, sphere)) if p == pool => Some(sphere),
        _ => inside_frame_of(pool),
    }
}
