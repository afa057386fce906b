//! # cllm-threaded: the C ABI of the runtime
//!
//! This crate is `libcllm_threaded.a` / `libcllm_threaded.so` and the header
//! `include/cllm_threaded.h`. It exposes the Rust crates of the workspace to C
//! through one convention (see `docs/c-api.md`):
//!
//! - one prefix, `cllm_`; opaque handles created by `*_create` and released by
//!   `*_free`, where `*_free(NULL)` does nothing;
//! - fallible calls return a [`cllm_status`]; outputs go through pointers that
//!   are written only on success; [`cllm_last_error`] explains the most recent
//!   failure on the calling thread;
//! - every entry point checks its arguments and runs inside a panic boundary
//!   ([`guard`]), so a bad call is an error code, never undefined behaviour.
//!
//! Modules by area: [`pool`] (sphere pools: hand-off, fork-join,
//! parallel-for), [`loader`] (corpus loader), [`runtime`] (role pools,
//! scheduler, loop helpers), [`frame`] (frame guard and monitoring),
//! [`locks`] (contention-counting locks and counters), [`objects`] (object
//! pool). The drop-in `threaded_training_*` API is a separate library,
//! `cllm-training-threaded`, because it calls functions of the CLLM host and
//! this one must link without them.

#![deny(unsafe_op_in_unsafe_fn)]
#![allow(non_camel_case_types)]

pub mod error;
pub mod frame;
pub mod guard;
pub mod loader;
pub mod locks;
pub mod objects;
pub mod pool;
pub mod runtime;
pub mod status;

pub use error::{FfiError, cllm_last_error};
pub use status::{cllm_status, cllm_status_str};

/// The library version, `"MAJOR.MINOR.PATCH"`, as a static string.
#[unsafe(no_mangle)]
pub extern "C" fn cllm_version() -> *const std::ffi::c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}
