//! The crate's error type: every way creating a system or training an epoch
//! can fail, one variant each. No C types: `ffi.rs` turns an [`Error`] into
//! the C status and the `cllm_last_error()` message (its [`Display`] text).
//! A variant carries every value its message names (limits, variable
//! names), so that this module imports none of the crate's others.
//!
//! [`Display`]: std::fmt::Display

use grad_reduce::{NonFinite, ReduceError};
use std::fmt;

/// Why a system could not be created, or an epoch failed.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// A required host object (`training`, `batch_iterator`) is NULL.
    NullArgument(&'static str),
    /// A plan in replica mode without replica operations.
    NoReplicaOps,
    /// The replica operations lack `create_replica`, `free_replica` or
    /// `gradient_buffers`.
    MissingReplicaFunction,
    /// A plan with no sphere or an empty group.
    EmptyPlan,
    /// A `CLLM_TRAINING_*` environment variable holds a bad value.
    BadEnvironment {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
        /// What it should hold.
        expected: String,
    },
    /// Replica mode was asked for but no replica operations are known.
    ReplicaModeWithoutOps {
        /// The environment variable that asked for it, if one did.
        variable: Option<&'static str>,
    },
    /// The caller's group size is not in `1..=max`.
    GroupOutOfRange {
        /// The group size.
        group: usize,
        /// The largest one.
        max: usize,
    },
    /// A group size for a system that trains in serialised mode.
    GroupInSerialMode {
        /// The group size.
        group: usize,
        /// The environment variable that set it, if one did.
        variable: Option<&'static str>,
    },
    /// `create_replica` returned NULL for this replica.
    ReplicaNotMade(usize),
    /// The master's gradient buffers hold no value at all.
    NoGradients,
    /// `gradient_buffers` reports an absurd number of buffers.
    TooManyBuffers(usize),
    /// `gradient_buffers` reported one count, then another.
    BufferCountChanged {
        /// The first count.
        first: usize,
        /// The second.
        then: usize,
    },
    /// A gradient buffer with values but a NULL address.
    NullBuffer(usize),
    /// Gradient buffers over `limit` floats in all, or one that runs past
    /// the end of the address space.
    GradientTooLarge {
        /// The buffer.
        buffer: usize,
        /// Its length in floats.
        len: usize,
        /// The floats of the buffers up to and including it.
        total: usize,
        /// The most floats in all.
        limit: usize,
    },
    /// A replica's gradient buffers differ in lengths from the master's.
    LayoutMismatch {
        /// The replica's lengths.
        lens: Vec<usize>,
        /// The master's.
        master: Vec<usize>,
    },
    /// A gradient buffer of this replica overlaps one of the master's.
    OverlappingGradients(usize),
    /// Two gradient buffers overlap: two of the master's (`None`) or two of
    /// replicas (`Some(j)`, maybe the same one).
    BuffersOverlap {
        /// The owner of the buffer that starts first.
        first: Option<usize>,
        /// The owner of the other one.
        second: Option<usize>,
    },
    /// An epoch is already running on the system.
    Busy,
    /// The iterator returned a batch without inputs or targets, or of no
    /// tokens.
    MalformedBatch {
        /// Sequences.
        batch_size: u32,
        /// Tokens per sequence.
        seq_len: u32,
        /// The address of the inputs.
        inputs: usize,
        /// The address of the targets.
        targets: usize,
    },
    /// A batch claims more valid tokens than it holds.
    TooManyValidTokens {
        /// The claim.
        valid: u32,
        /// The tokens it holds.
        tokens: usize,
    },
    /// A batch of another size than the first one of the system.
    BatchSizeChanged {
        /// Sequences.
        batch_size: u32,
        /// Tokens per sequence.
        seq_len: u32,
        /// Their product.
        tokens: usize,
        /// The tokens of the earlier batches.
        expected: usize,
    },
    /// A batch's job failed (panicked) in serialised mode.
    BatchFailed,
    /// A replica's gradient (or their sum) is not finite: no step was taken.
    NonFiniteGradient(NonFinite),
    /// The reduction refused its arguments.
    Reduce(ReduceError),
    /// The sphere pool failed (a sphere count, a thread, a job).
    Pool(sphere_pool::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NullArgument(name) => write!(f, "{name} is NULL"),
            Error::NoReplicaOps => f.write_str("the replica operations of replica mode is NULL"),
            Error::MissingReplicaFunction => f.write_str(
                "create_replica, free_replica or gradient_buffers of the replica operations is NULL",
            ),
            Error::EmptyPlan => f.write_str("a plan needs a sphere and a group"),
            Error::BadEnvironment {
                name,
                value,
                expected,
            } => write!(f, "{name}={value:?}: {expected}"),
            Error::ReplicaModeWithoutOps { variable } => {
                match variable {
                    Some(name) => write!(f, "{name}=\"replica\"")?,
                    None => f.write_str("replica mode was requested")?,
                }
                f.write_str(" but no replica operations are known: link the host's replica adapter (see docs/dropin.md) or pass them")
            }
            Error::GroupOutOfRange { group, max } => {
                write!(f, "group size {group}: expected 1 to {max}")
            }
            Error::GroupInSerialMode { group, variable } => {
                match variable {
                    Some(name) => write!(f, "{name}=\"{group}\"")?,
                    None => write!(f, "group size {group}")?,
                }
                f.write_str(" applies to replica mode, but this system trains in serialised mode (one step per batch): link the replica adapter, or unset it")
            }
            Error::ReplicaNotMade(i) => write!(f, "create_replica failed for replica {i}"),
            Error::NoGradients => f.write_str("the master training object lists no gradient values"),
            Error::TooManyBuffers(count) => write!(f, "gradient_buffers reports {count} buffers"),
            Error::BufferCountChanged { first, then } => {
                write!(f, "gradient_buffers reported {first} buffers, then {then}")
            }
            Error::NullBuffer(i) => write!(f, "gradient buffer {i} is NULL"),
            Error::GradientTooLarge {
                buffer,
                len,
                total,
                limit,
            } => write!(
                f,
                "gradient buffer {buffer} has {len} floats ({total} so far): the limit is {limit} floats in all"
            ),
            Error::LayoutMismatch { lens, master } => write!(
                f,
                "gradient buffers of lengths {lens:?} differ from the master's {master:?}"
            ),
            Error::OverlappingGradients(j) => write!(
                f,
                "a gradient buffer of replica {j} overlaps the master's: replicas need their own gradients"
            ),
            Error::BuffersOverlap { first, second } => {
                let name = |o: &Option<usize>| match o {
                    None => "the master".to_owned(),
                    Some(j) => format!("replica {j}"),
                };
                write!(
                    f,
                    "gradient buffers of {} and {} overlap: every buffer of every training object needs memory of its own",
                    name(first),
                    name(second)
                )
            }
            Error::Busy => f.write_str("an epoch is already running on this system"),
            Error::MalformedBatch {
                batch_size,
                seq_len,
                inputs,
                targets,
            } => write!(
                f,
                "the iterator returned a malformed batch ({batch_size}x{seq_len}, inputs {inputs:#x}, targets {targets:#x})"
            ),
            Error::TooManyValidTokens { valid, tokens } => write!(
                f,
                "batch claims {valid} valid tokens but holds only {tokens}"
            ),
            Error::BatchSizeChanged {
                batch_size,
                seq_len,
                tokens,
                expected,
            } => write!(
                f,
                "batch of {batch_size}x{seq_len} = {tokens} tokens; earlier batches had {expected} (the host's functions read a whole configured batch)"
            ),
            Error::BatchFailed => f.write_str("a batch failed; the epoch was stopped"),
            Error::NonFiniteGradient(at) => write!(
                f,
                "non-finite gradient, the optimizer step was not taken: {at}"
            ),
            Error::Reduce(e) => e.fmt(f),
            Error::Pool(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Reduce(e) => Some(e),
            Error::Pool(e) => Some(e),
            _ => None,
        }
    }
}

impl From<sphere_pool::Error> for Error {
    fn from(e: sphere_pool::Error) -> Self {
        Error::Pool(e)
    }
}

impl From<ReduceError> for Error {
    fn from(e: ReduceError) -> Self {
        match e {
            ReduceError::NonFinite(at) => Error::NonFiniteGradient(at),
            other => Error::Reduce(other),
        }
    }
}
