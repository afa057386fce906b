//! # cllm-training-threaded: the drop-in for CLLM's threaded training
//!
//! `libcllm_training_threaded.a` (and `.so`) replaces CLLM's
//! `cllm_training_threaded.c`: a CLLM program links it instead of that object
//! and trains, in parallel and correctly. It exports the seven
//! `threaded_training_*` functions of `cllm_training_threaded.h` with their
//! exact signatures ([`ffi`]), declared in `include/cllm_training_threaded.h`
//! (which, like CLLM's, includes the host's `cllm_training.h` and
//! `cllm_batch.h`), calls only the host functions of `cllm-abi.md` section 2
//! ([`host`]), and adds extensions of ours, declared in
//! `include/cllm_training_ext.h`: data-parallel training when the host can
//! make replicas of its training state (passed in the call, or registered
//! once by a host adapter linked into the program), settings (sphere count,
//! mode, group size; also from `CLLM_TRAINING_*` environment variables,
//! [`settings`]) and statistics.
//!
//! The work is done by [`system::TrainingSystem`] on a `sphere-pool`; its
//! documentation describes the two modes. Guarantees: threads are created
//! once and joined at free, also after failures; an epoch never fetches more
//! than `cllm_batch_iterator_num_batches` batches and never spins on
//! padding-only ones; the host is never called concurrently on one training
//! object; serialised mode gives exactly the weights of a plain sequential
//! loop, and replica mode gives bitwise-identical weights from run to run.
//!
//! Because it calls the host, this is a separate library from
//! `libcllm_threaded` (the generic `cllm_*` API, which links without any host
//! symbol); it carries the whole generic API too.
//!
//! ## Modules
//! Imports go one way (no two modules import each other):
//! - [`error`]: [`Error`], every way creation or an epoch can fail; no C
//!   types (imports nothing of the crate);
//! - [`host`]: the host's types and functions, and the replica operations;
//! - `batch`: the batches of an epoch; `replicas`: the replicas of replica
//!   mode, their gradient buffers and their reduction;
//! - [`settings`]: the caller's request, the environment, the registered
//!   adapter, resolved into a [`settings::Plan`];
//! - [`system`]: [`system::TrainingSystem`], the two modes;
//! - [`ffi`]: the C entry points, the only place an [`Error`] becomes a C
//!   status and a `cllm_last_error()` message.

#![deny(unsafe_op_in_unsafe_fn)]
#![allow(non_snake_case)]

mod batch;
pub mod error;
pub mod ffi;
pub mod host;
mod replicas;
pub mod settings;
pub mod system;
#[cfg(test)]
mod tests;

pub use cllm_threaded;
pub use error::Error;
pub use host::{CLLMBatch, CLLMBatchIterator, CLLMTraining, cllm_float_span, cllm_replica_ops};
