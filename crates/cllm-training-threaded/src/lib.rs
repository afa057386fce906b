//! Drop-in replacement for CLLM's `cllm_training_threaded.c` (not written yet).
//!
//! This library calls the CLLM host's functions (`cllm_forward_training`, ...),
//! so it is a separate library from `libcllm_threaded`: a program that uses
//! only the generic `cllm_*` API links that one and needs no host symbols.
//! This one also carries the whole generic API.

pub use cllm_threaded;
