//! The error type of the crate.

use std::fmt;

/// Where a non-finite value was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// In source `i` of a reduction (the gradients of sphere `i`).
    Source(usize),
    /// In the destination: the buffers given to a norm, check or clip, or a
    /// reduction whose sources were all finite at that place (the sum
    /// overflowed).
    Destination,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Source(i) => write!(f, "source {i}"),
            Origin::Destination => f.write_str("the destination"),
        }
    }
}

/// The first non-finite value of an operation, in flat order (buffer, then
/// index), and for a reduction the lowest source that holds one there.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NonFinite {
    /// Which set of buffers.
    pub origin: Origin,
    /// Which buffer of that set (the host's gradient buffer number).
    pub buffer: usize,
    /// The index in that buffer.
    pub index: usize,
    /// The value found (NaN, +Inf or -Inf).
    pub value: f32,
}

impl fmt::Display for NonFinite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = if self.value.is_nan() {
            "NaN".to_owned()
        } else {
            format!("{}", self.value)
        };
        write!(
            f,
            "{what} in {}, buffer {}, index {}",
            self.origin, self.buffer, self.index
        )?;
        if self.origin == Origin::Destination {
            f.write_str(
                " (sources finite there: the sum overflowed, or the buffer itself holds it)",
            )?;
        }
        Ok(())
    }
}

/// Everything that can go wrong in a reduction.
#[derive(Debug, Clone, PartialEq)]
pub enum ReduceError {
    /// Buffers whose number or lengths differ from the reducer's layout, no
    /// sources, a weight list of the wrong length, a non-finite weight or a
    /// bad clipping threshold.
    InvalidArgument(String),
    /// A gradient holds NaN or Inf (or the sum overflowed).
    NonFinite(NonFinite),
    /// The sphere pool failed (for example it is busy with another fork-join).
    Pool(sphere_pool::Error),
}

impl fmt::Display for ReduceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReduceError::InvalidArgument(msg) => write!(f, "invalid argument: {msg}"),
            ReduceError::NonFinite(nf) => write!(f, "non-finite gradient: {nf}"),
            ReduceError::Pool(e) => write!(f, "sphere pool: {e}"),
        }
    }
}

impl std::error::Error for ReduceError {}

impl From<sphere_pool::Error> for ReduceError {
    fn from(e: sphere_pool::Error) -> Self {
        ReduceError::Pool(e)
    }
}
