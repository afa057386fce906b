//! The size limits of a pool and of a parallel-for range.

/// The most spheres a pool may have. Larger requests are an error.
pub const MAX_SPHERES: usize = 4096;

/// The most threads a pool may have: [`MAX_SPHERES`] and the caller.
pub const MAX_THREADS: usize = MAX_SPHERES + 1;

/// The longest range [`SpherePool::parallel_for`](crate::SpherePool::parallel_for)
/// takes (`usize::MAX / 2 - 4096` items); longer ones are an error. The
/// limit keeps the work-stealing cursors from wrapping around.
pub const MAX_RANGE_LEN: usize = usize::MAX / 2 - MAX_SPHERES;
