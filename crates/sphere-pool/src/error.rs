//! The one error type of the crate.

use std::fmt;

/// Who ran a piece of work: a sphere, or the thread that called
/// [`run_all`](crate::SpherePool::run_all) / [`parallel_for`](crate::SpherePool::parallel_for).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Worker {
    /// The sphere with this index.
    Sphere(usize),
    /// The calling thread, which takes a share of fork-join work.
    Caller,
}

impl fmt::Display for Worker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Worker::Sphere(i) => write!(f, "sphere {i}"),
            Worker::Caller => f.write_str("the calling thread"),
        }
    }
}

/// Everything that can go wrong in a sphere pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// A bad argument (sphere count, range, grain, ...).
    InvalidArgument(String),
    /// A sphere index not below the number of spheres.
    SphereOutOfRange {
        /// The index asked for.
        sphere: usize,
        /// The number of spheres of the pool.
        spheres: usize,
    },
    /// The sphere holds a job that was not waited for yet.
    Busy {
        /// The busy sphere.
        sphere: usize,
    },
    /// [`dispatch_any`](crate::SpherePool::dispatch_any) found no idle
    /// sphere: every one holds a job that was not waited for.
    NoIdleSphere {
        /// The number of spheres of the pool.
        spheres: usize,
    },
    /// A fork-join round (`run_all`, `parallel_for`) is in progress on the
    /// pool: until it returns, no sphere takes another job or round from
    /// another thread, even one whose share is done (nested fork-joins from
    /// inside the round run inline instead; a dispatch is refused).
    RoundInProgress,
    /// The deadline passed before the job ended; it goes on running.
    Timeout {
        /// The sphere waited for.
        sphere: usize,
    },
    /// The pool is shutting down and takes no new work.
    Shutdown,
    /// The operating system refused to create a thread.
    Spawn {
        /// The sphere whose thread could not be created.
        sphere: usize,
        /// The operating system's reason.
        reason: String,
    },
    /// The job panicked; the sphere went on serving.
    Panicked {
        /// Where the job ran.
        worker: Worker,
        /// The panic message.
        message: String,
    },
    /// A raw (C) job returned a non-zero code.
    JobFailed {
        /// Where the job ran.
        worker: Worker,
        /// The code it returned.
        code: i32,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidArgument(msg) => write!(f, "invalid argument: {msg}"),
            Error::SphereOutOfRange { sphere, spheres } => {
                write!(
                    f,
                    "sphere {sphere} is out of range: the pool has {spheres} spheres"
                )
            }
            Error::Busy { sphere } => {
                write!(
                    f,
                    "sphere {sphere} is busy: its last job was not waited for"
                )
            }
            Error::NoIdleSphere { spheres } => write!(
                f,
                "no idle sphere: all {spheres} hold a job that was not waited for"
            ),
            Error::RoundInProgress => write!(
                f,
                "the pool is busy: a fork-join round (run_all or parallel_for) is in progress"
            ),
            Error::Timeout { sphere } => {
                write!(
                    f,
                    "timed out waiting for sphere {sphere}; its job is still running"
                )
            }
            Error::Shutdown => f.write_str("the pool is shutting down"),
            Error::Spawn { sphere, reason } => {
                write!(
                    f,
                    "could not create the thread of sphere {sphere}: {reason}"
                )
            }
            Error::Panicked { worker, message } => write!(f, "job panicked on {worker}: {message}"),
            Error::JobFailed { worker, code } => {
                write!(f, "job on {worker} returned error code {code}")
            }
        }
    }
}

impl std::error::Error for Error {}

/// The message of a caught panic; its payload is dropped where a panic of
/// its own destructor is caught too (`thread_support::take_panic_message`):
/// unwinding out of the code that caught the first panic would end a
/// sphere's thread, or leave a round's caller waiting for its own share.
#[cfg(not(loom))]
pub(crate) fn panic_text(payload: Box<dyn std::any::Any + Send>) -> String {
    thread_support::take_panic_message(payload)
}

/// A job's or share's result as the pool reports it: its error code as
/// `Error::JobFailed`, its panic as `Error::Panicked`.
#[cfg(not(loom))]
pub(crate) fn caught_outcome(
    caught: std::thread::Result<Result<(), i32>>,
    worker: Worker,
) -> Result<(), Error> {
    match caught {
        Ok(Ok(())) => Ok(()),
        Ok(Err(code)) => Err(Error::JobFailed { worker, code }),
        Err(payload) => Err(Error::Panicked {
            worker,
            message: panic_text(payload),
        }),
    }
}
