//! The errors of the crate: [`Error`] (creating and managing a runtime),
//! [`SubmitError`] (a task that was not queued) and [`TaskError`] (a task that
//! did not produce its value).

use crate::config::{ConfigError, Role};
use std::fmt;
use std::time::Duration;

/// Creating or managing a runtime failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// A bad configuration value.
    Config(ConfigError),
    /// A bad argument (size, interval, id...).
    InvalidArgument(String),
    /// The operating system refused to create a thread.
    Spawn(String),
    /// The runtime is shut down.
    Shutdown,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(e) => write!(f, "bad configuration: {e}"),
            Error::InvalidArgument(m) => write!(f, "invalid argument: {m}"),
            Error::Spawn(m) => write!(f, "could not create a worker thread: {m}"),
            Error::Shutdown => f.write_str("the runtime is shut down"),
        }
    }
}

impl std::error::Error for Error {}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Self {
        Error::Config(e)
    }
}

/// A task was not queued; it will never run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubmitError {
    /// The pool's queue is full (from `try_submit`).
    Full {
        /// The pool.
        role: Role,
        /// Its queue capacity.
        capacity: usize,
    },
    /// The queue stayed full for the whole timeout.
    Timeout {
        /// The pool.
        role: Role,
        /// How long the submitter waited.
        waited: Duration,
    },
    /// The pool is shut down.
    Shutdown {
        /// The pool.
        role: Role,
    },
}

impl fmt::Display for SubmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubmitError::Full { role, capacity } => {
                write!(f, "the {role} pool's queue is full ({capacity} tasks)")
            }
            SubmitError::Timeout { role, waited } => {
                write!(f, "the {role} pool's queue stayed full for {waited:?}")
            }
            SubmitError::Shutdown { role } => write!(f, "the {role} pool is shut down"),
        }
    }
}

impl std::error::Error for SubmitError {}

/// A task (or a parallel loop) did not produce its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskError {
    /// The task panicked; the worker that ran it was replaced.
    Panicked {
        /// The pool of the task.
        role: Role,
        /// The thread that ran it.
        worker: String,
        /// The panic message.
        message: String,
    },
    /// The task returned an error (a fallible task, or a C task's non-zero code).
    Failed {
        /// The pool of the task.
        role: Role,
        /// The task's error.
        message: String,
    },
    /// The task was dropped from the queue at shutdown and never ran.
    Cancelled {
        /// The pool of the task.
        role: Role,
    },
    /// Not final: the wait timed out and the task is still queued or
    /// running; wait again.
    Timeout,
    /// The result was already returned by an earlier wait.
    Collected,
}

impl TaskError {
    /// False only for [`TaskError::Timeout`]: every other error is the
    /// task's final outcome.
    pub fn is_final(&self) -> bool {
        !matches!(self, TaskError::Timeout)
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskError::Panicked {
                role,
                worker,
                message,
            } => {
                write!(f, "{role} task panicked on {worker}: {message}")
            }
            TaskError::Failed { role, message } => write!(f, "{role} task failed: {message}"),
            TaskError::Cancelled { role } => write!(f, "{role} task cancelled at shutdown"),
            TaskError::Timeout => f.write_str("timed out; the task is still pending"),
            TaskError::Collected => f.write_str("the task's result was already collected"),
        }
    }
}

impl std::error::Error for TaskError {}

pub(crate) use thread_support::take_panic_message;
