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
//! parallel-for), [`loader`] and [`loader_iter`] (corpus loader and its
//! batches), [`roles`], [`task`] and [`sched`] (role pools, their tasks and
//! periodic scheduler), [`frame`]
//! (frame guard and monitoring), [`lock`] (contention-counting locks),
//! [`counter`] (sharded counters), [`objpool`] (object pool). The drop-in
//! `threaded_training_*` API is a separate library,
//! `cllm-training-threaded`, because it calls functions of the CLLM host and
//! this one must link without them.

#![deny(unsafe_op_in_unsafe_fn)]
#![allow(non_camel_case_types)]

// The header lists items in module order (rustfmt keeps the order of
// modules separated by blank lines): the pool area first (the one most users
// want), then the role pools, tasks, scheduler, frame guard, loader, locks
// and counters, object pools; the shared pieces last.
pub mod pool;

pub mod roles;

pub mod task;

// The scheduler's functions take a `cllm_roles*` (`cllm_roles_sched_*`).
pub mod sched;

pub mod frame;

pub mod loader;

pub mod loader_iter;

pub mod lock;

pub mod counter;

pub mod objpool;

pub mod error;
pub mod guard;
pub mod status;

pub use error::{FfiError, cllm_last_error};
pub use status::{cllm_status, cllm_status_str};

/// The library version, `"MAJOR.MINOR.PATCH"`, as a static string: the
/// version of the library linked at run time, where `CLLM_VERSION_*` give
/// the one of the header compiled against.
#[unsafe(no_mangle)]
pub extern "C" fn cllm_version() -> *const std::ffi::c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// Major version of the header (`#define` in C). Programs linked against
/// `libcllm_threaded.so.<major>` run with any library of the same major.
pub const CLLM_VERSION_MAJOR: u32 = 0;
/// Minor version of the header (`#define` in C).
pub const CLLM_VERSION_MINOR: u32 = 1;
/// Patch version of the header (`#define` in C).
pub const CLLM_VERSION_PATCH: u32 = 0;

// cbindgen copies only literals into the header, so the three numbers are
// written out above; a version bump in Cargo.toml that forgets them fails the
// build here.
const _: () = {
    assert!(CLLM_VERSION_MAJOR == parse_u32(env!("CARGO_PKG_VERSION_MAJOR")));
    assert!(CLLM_VERSION_MINOR == parse_u32(env!("CARGO_PKG_VERSION_MINOR")));
    assert!(CLLM_VERSION_PATCH == parse_u32(env!("CARGO_PKG_VERSION_PATCH")));
};

const fn parse_u32(s: &str) -> u32 {
    let bytes = s.as_bytes();
    let mut value = 0;
    let mut i = 0;
    while i < bytes.len() {
        assert!(bytes[i].is_ascii_digit());
        value = value * 10 + (bytes[i] - b'0') as u32;
        i += 1;
    }
    value
}
