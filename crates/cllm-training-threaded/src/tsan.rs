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
//! The annotations themselves are `thread_support::tsan`'s: no-ops outside
//! a program built with `-fsanitize=thread`.
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

pub use thread_support::tsan::{Untracked, acquire, release};

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
        assert!(!thread_support::tsan::active());
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
