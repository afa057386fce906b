//! Drop-in replacement for CLLM's `cllm_training_threaded.c` (being written).
//!
//! This library calls the CLLM host's functions (`cllm_forward_training`, ...),
//! so it is a separate library from `libcllm_threaded`: a program that uses
//! only the generic `cllm_*` API links that one and needs no host symbols.
//! This one also carries the whole generic API.

#![deny(unsafe_op_in_unsafe_fn)]
#![allow(non_snake_case)]

pub mod host;

pub use cllm_threaded;
pub use host::{CLLMBatch, CLLMBatchIterator, CLLMTraining, cllm_float_span, cllm_replica_ops};

/// Placeholder so cbindgen emits the interface types until the entry points
/// land; replaced by the real `threaded_training_*` functions.
#[doc(hidden)]
#[unsafe(no_mangle)]
pub extern "C" fn cllm_training_threaded_abi_types(
    _batch: *const CLLMBatch,
    _ops: *const cllm_replica_ops,
    _span: *const cllm_float_span,
    _training: *const CLLMTraining,
    _iter: *const CLLMBatchIterator,
) {
}
