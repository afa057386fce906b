//! # grad-reduce: deterministic parallel gradient reduction
//!
//! Data-parallel training gives every sphere its own gradients; before one
//! optimizer step they are combined into the master's. This crate does that
//! combination on a [`sphere_pool::SpherePool`], in parallel across the
//! spheres and the calling thread, with a result that is **bitwise the same
//! for any number of threads and any timing**.
//!
//! Main types:
//! - [`GradReducer`]: made once per buffer layout (the lengths of a model's
//!   gradient buffers, in the host's order). [`GradReducer::reduce`] computes
//!   `dst = sum_i w_i * src_i` ([`Weights`]: sum, mean or given, for example
//!   [`token_weights`]), the L2 norm of the result, clipping by global norm,
//!   and NaN/Inf detection naming the source, buffer and index
//!   ([`NonFinite`]). [`GradReducer::norm`], [`GradReducer::check_finite`]
//!   and [`GradReducer::clip`] work on one set of buffers.
//! - [`GradBuffers`]: per-sphere buffers owned by Rust code.
//!
//! The fixed order (the contract that makes results reproducible):
//! - Each buffer is cut into pieces of [`ReduceConfig::chunk_len`] elements,
//!   buffer after buffer; the cut depends only on the layout.
//! - A piece is computed by one thread: `dst = w_0 * src_0`, then
//!   `dst += w_i * src_i` for `i = 1, 2, ...` in source order (no fused
//!   multiply-add; this is plain IEEE `f32` arithmetic).
//! - The norm is `sqrt` of the sum, in piece order and in `f64`, of each
//!   piece's [`sum_of_squares`] (8 lanes, combined pairwise).
//! - Clipping multiplies by `(max_norm / norm) as f32` when `norm > max_norm`.
//!
//! NaN/Inf detection costs nothing extra: a piece's `f64` sum of squares is
//! finite exactly when every value of the piece is; only when it is not is
//! the piece scanned for the first bad value. On x86-64 with AVX2 the
//! kernels run a wider-vector build of the same code (same bits).
//!
//! The work is scheduled with `parallel_for` (work stealing), so a slow
//! sphere does not hold the others back; which thread computes a piece
//! never changes its value. Layouts below
//! [`ReduceConfig::sequential_below`] elements run on the calling thread.

#![deny(unsafe_op_in_unsafe_fn)]

mod buffers;
mod error;
mod kernels;
mod plan;
mod reduce;

pub use buffers::GradBuffers;
pub use error::{NonFinite, Origin, ReduceError};
pub use kernels::{SUMSQ_LANES, sum_of_squares};
pub use reduce::{GradReducer, MAX_PIECES, ReduceConfig, ReduceSummary, Weights, token_weights};
