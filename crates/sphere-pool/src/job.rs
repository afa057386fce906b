//! What a sphere's slot carries: a boxed closure, a small closure stored in
//! the slot itself, or a share of a fork-join.

use crate::error::{Worker, caught_outcome};
use crate::slot::Outcome;
use std::cell::Cell;
use std::marker::PhantomData;
use std::mem::{MaybeUninit, align_of, size_of};
use std::panic::{AssertUnwindSafe, catch_unwind};

/// The storage of a [`SmallJob`]'s closure: two machine words.
type Words = [MaybeUninit<usize>; 2];

/// A job that travels inside the sphere's slot, so that dispatching it
/// allocates nothing: a closure that is `Copy`, `Send + 'static` and at
/// most two words big (a function pointer and its argument, say; a larger
/// one does not compile). It gets the index of the sphere running it and
/// may fail with an error code, returned by the wait as
/// [`Error::JobFailed`](crate::Error::JobFailed).
///
/// ```
/// use sphere_pool::{SmallJob, SpherePool};
/// let pool = SpherePool::new(1).unwrap();
/// let base = 40;
/// pool.dispatch_small(0, SmallJob::new(move |sphere| if base + sphere == 40 { Ok(()) } else { Err(1) }))
///     .unwrap();
/// pool.wait(0).unwrap();
/// ```
///
/// A closure of three words does not compile:
///
/// ```compile_fail
/// let (a, b, c) = (1usize, 2usize, 3usize);
/// let _ = sphere_pool::SmallJob::new(move |s| if s + a + b + c > 0 { Ok(()) } else { Err(1) });
/// ```
#[derive(Clone, Copy)]
pub struct SmallJob {
    call: unsafe fn(&Words, usize) -> Result<(), i32>,
    words: Words,
    /// `Send` (`new` stores only `Send` closures) but not `Sync`: a stored
    /// closure need not be callable from two threads at once.
    _not_sync: PhantomData<Cell<()>>,
}

impl SmallJob {
    /// Stores `job` in the job itself.
    pub fn new<F>(job: F) -> Self
    where
        F: Fn(usize) -> Result<(), i32> + Copy + Send + 'static,
    {
        const {
            assert!(
                size_of::<F>() <= size_of::<Words>() && align_of::<F>() <= align_of::<Words>(),
                "a SmallJob's closure holds at most two words: box it (SpherePool::dispatch)"
            )
        };
        let mut words: Words = [MaybeUninit::uninit(); 2];
        // SAFETY: `F` fits the words and their alignment (checked above).
        unsafe { words.as_mut_ptr().cast::<F>().write(job) };
        Self {
            call: call_stored::<F>,
            words,
            _not_sync: PhantomData,
        }
    }

    fn run(&self, sphere: usize) -> Result<(), i32> {
        // SAFETY: `call` was made for the closure type stored in `words`.
        unsafe { (self.call)(&self.words, sphere) }
    }
}

/// Calls the `F` stored in `words`.
///
/// # Safety
/// `words` holds an `F` (written by `SmallJob::new`).
unsafe fn call_stored<F: Fn(usize) -> Result<(), i32>>(
    words: &Words,
    sphere: usize,
) -> Result<(), i32> {
    // SAFETY: promised by the caller; `F: Copy`, so it is never dropped.
    let job = unsafe { &*words.as_ptr().cast::<F>() };
    job(sphere)
}

impl std::fmt::Debug for SmallJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SmallJob")
    }
}

/// What a sphere runs.
pub(crate) enum Job {
    Boxed(Box<dyn FnOnce() + Send>),
    Small(SmallJob),
}

/// Runs a dispatched job on `sphere`, catching its panic.
pub(crate) fn run_job(job: Job, sphere: usize) -> Outcome {
    let worker = Worker::Sphere(sphere);
    let caught = match job {
        Job::Boxed(f) => catch_unwind(AssertUnwindSafe(f)).map(Ok),
        Job::Small(small) => catch_unwind(AssertUnwindSafe(|| small.run(sphere))),
    };
    caught_outcome(caught, worker)
}
