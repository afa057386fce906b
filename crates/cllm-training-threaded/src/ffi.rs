//! The C entry points: the seven `threaded_training_*` functions of CLLM's
//! `cllm_training_threaded.h` (exact names and signatures), and our optional
//! extras. Every entry point checks its arguments and runs inside the panic
//! boundary; failures leave a message in `cllm_last_error()`. The crate's
//! [`Error`] becomes a C status and that message here, and only here.

use crate::error::Error;
use crate::host::{CLLMBatchIterator, CLLMTraining, LinkedHost, cllm_replica_ops};
use crate::settings::{self, Request};
use crate::system::{Mode, Stats, TrainingSystem};
use cllm_threaded::FfiError;
use cllm_threaded::cllm_status;
use cllm_threaded::guard::{Handle, ffi_status, ffi_value, out_ptr, write_out};
use cllm_threaded::{free_handle, with_handle, with_handle_value};
use std::ffi::{CString, c_int};
use std::fmt::Write as _;
use std::io::Write as _;

/// The threaded training system: the spheres and the training state. Create
/// it with `threaded_training_create`, release it with
/// `threaded_training_free`. The statistics functions may be called from
/// another thread while an epoch runs; `threaded_training_free` must not run
/// concurrently with any other call on the system.
pub struct ThreadedTrainingSystem {
    inner: TrainingSystem<LinkedHost>,
}

// SAFETY: C gets a system only from `create` (Box::into_raw), it stays valid
// until threaded_training_free (whose caller gives it up), and it is used
// through `&Self` only: every TrainingSystem method takes `&self` and locks
// what it changes (an epoch holds the epoch lock; statistics are copied
// under their own lock), so sharing it between threads is sound.
unsafe impl Handle for ThreadedTrainingSystem {}

/// The C status of each failure; the message is the error's text.
impl From<Error> for FfiError {
    fn from(e: Error) -> Self {
        use cllm_threaded::status::*;
        let status = match &e {
            Error::Pool(pool) => return FfiError::from(pool.clone()),
            Error::NullArgument(_) | Error::NoReplicaOps | Error::MissingReplicaFunction => {
                CLLM_ERR_NULL
            }
            Error::Busy => CLLM_ERR_BUSY,
            Error::BatchFailed => CLLM_ERR_PANIC,
            Error::NonFiniteGradient(_) => CLLM_ERR_NUMERIC,
            Error::EmptyPlan
            | Error::BadEnvironment { .. }
            | Error::ReplicaModeWithoutOps { .. }
            | Error::GroupOutOfRange { .. }
            | Error::GroupInSerialMode { .. }
            | Error::ReplicaNotMade(_)
            | Error::NoGradients
            | Error::TooManyBuffers(_)
            | Error::BufferCountChanged { .. }
            | Error::NullBuffer(_)
            | Error::GradientTooLarge { .. }
            | Error::LayoutMismatch { .. }
            | Error::OverlappingGradients(_)
            | Error::BuffersOverlap { .. }
            | Error::MalformedBatch { .. }
            | Error::TooManyValidTokens { .. }
            | Error::BatchSizeChanged { .. }
            | Error::Reduce(_) => CLLM_ERR_INVALID_ARGUMENT,
        };
        FfiError::new(status, e.to_string())
    }
}

/// Figures of a training system (our extension).
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct cllm_training_stats {
    /// Spheres (worker threads).
    pub num_workers: u32,
    /// 1 in replica mode, 0 in serialised mode.
    pub replica_mode: u32,
    /// Epochs completed.
    pub epochs: u64,
    /// Batches trained over all epochs.
    pub batches: u64,
    /// Valid tokens trained over all epochs.
    pub tokens: u64,
    /// Padding-only batches skipped over all epochs.
    pub skipped_batches: u64,
    /// Optimizer steps taken over all epochs.
    pub optimizer_steps: u64,
    /// Mean loss of the last epoch, token-weighted.
    pub last_loss: f32,
    /// L2 norm of the last reduced gradient; -1 in serialised mode.
    pub gradient_norm: f32,
    /// Wall time of the last epoch, in seconds.
    pub last_epoch_seconds: f64,
    /// Valid tokens per second in the last epoch.
    pub last_epoch_tokens_per_second: f64,
    /// Batches per optimizer step (1 in serialised mode).
    pub group_size: u32,
    /// Batches whose host loss was NaN or infinite, over all epochs (the
    /// first one is also reported once per process on stderr).
    pub nonfinite_losses: u64,
}

impl cllm_training_stats {
    /// The C figures of `sys`, from the snapshot `s` of its statistics (the
    /// one place they are computed, for threaded_training_get_stats and
    /// threaded_training_print_stats).
    fn of(sys: &TrainingSystem<LinkedHost>, s: &Stats) -> Self {
        let secs = s.last_epoch_time.as_secs_f64();
        Self {
            num_workers: u32::try_from(sys.workers()).unwrap_or(u32::MAX),
            replica_mode: u32::from(sys.mode() == Mode::Replicas),
            epochs: s.epochs,
            batches: s.batches,
            tokens: s.tokens,
            skipped_batches: s.skipped_batches,
            optimizer_steps: s.steps,
            last_loss: s.last_loss,
            gradient_norm: s.grad_norm.unwrap_or(-1.0),
            last_epoch_seconds: secs,
            last_epoch_tokens_per_second: if secs > 0.0 {
                s.last_epoch_tokens as f64 / secs
            } else {
                0.0
            },
            group_size: u32::try_from(sys.group_size()).unwrap_or(u32::MAX),
            nonfinite_losses: s.nonfinite_losses,
        }
    }
}

/// `cllm_training_settings.mode`: replica mode if replica operations are
/// known (given or registered), else serialised.
pub const CLLM_TRAINING_MODE_AUTO: u32 = 0;
/// `cllm_training_settings.mode`: serialised mode.
pub const CLLM_TRAINING_MODE_SERIAL: u32 = 1;
/// `cllm_training_settings.mode`: replica mode (an error without replica
/// operations).
pub const CLLM_TRAINING_MODE_REPLICA: u32 = 2;
/// The largest group size.
pub const CLLM_TRAINING_MAX_GROUP_SIZE: u32 = 4096;
/// The most gradient floats a host's replica operations may list in all.
pub const CLLM_TRAINING_MAX_GRADIENT_FLOATS: u64 = 4_294_967_296;
// Literals, so that cbindgen writes them into the header (it skips casts);
// these keep them equal to the limits the code applies.
const _: () = assert!(CLLM_TRAINING_MAX_GROUP_SIZE as usize == settings::MAX_GROUP);
const _: () =
    assert!(CLLM_TRAINING_MAX_GRADIENT_FLOATS == crate::system::MAX_GRADIENT_FLOATS as u64);

/// Settings of `threaded_training_create_with_settings` (our extension).
/// Zero-initialised settings mean the defaults. The `CLLM_TRAINING_*`
/// environment variables override them (docs/environment.md).
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct cllm_training_settings {
    /// Spheres; `<= 0`: cores - 1, at least 1.
    pub num_threads: c_int,
    /// `CLLM_TRAINING_MODE_AUTO`, `_SERIAL` or `_REPLICA`.
    pub mode: u32,
    /// Batches per optimizer step in replica mode; `<= 0`: one per sphere.
    /// Fixing it makes the weights independent of the sphere count.
    pub group_size: c_int,
    /// Replica operations (copied); NULL: the registered ones, if any.
    pub ops: *const cllm_replica_ops,
}

/// Creates a system from the request (or the caller's bad argument), the
/// environment and the registered adapter. `announce`: also print a failure
/// on stderr (for CLLM's own entry point, whose callers never read
/// `cllm_last_error()`).
///
/// # Safety
/// `training` and `batch_iterator` are NULL or live host objects that
/// outlive the system, and the request's operations are valid for
/// `training`: what the creating entry points ask of their C caller.
unsafe fn create(
    training: *mut CLLMTraining,
    batch_iterator: *mut CLLMBatchIterator,
    request: Result<Request, FfiError>,
    announce: bool,
) -> *mut ThreadedTrainingSystem {
    ffi_value(
        |_| std::ptr::null_mut(),
        || {
            let made = request.and_then(|request| {
                let plan =
                    settings::resolve(request, settings::process_env, settings::registered())?;
                // SAFETY: this function's contract is the one
                // TrainingSystem::create asks for (it refuses NULL itself).
                Ok(unsafe { TrainingSystem::create(LinkedHost, training, batch_iterator, plan) }?)
            });
            match made {
                Ok(inner) => Ok(Box::into_raw(Box::new(ThreadedTrainingSystem { inner }))),
                Err(e) => {
                    if announce {
                        // Not eprintln!, which panics if stderr is a closed pipe.
                        let _ =
                            writeln!(std::io::stderr(), "threaded_training_create: {}", e.message);
                    }
                    Err(e)
                }
            }
        },
    )
}

/// A copy of the caller's replica operations, if any.
///
/// # Safety
/// `ops` is NULL or points to a readable `cllm_replica_ops`.
unsafe fn copy_ops(ops: *const cllm_replica_ops) -> Option<cllm_replica_ops> {
    // SAFETY: NULL gives None; any other `ops` is readable (the contract).
    unsafe { ops.as_ref() }.copied()
}

/// Creates the system: `num_threads` spheres (`<= 0`: cores - 1, at least
/// 1; at most 4096), created here, once. Without replica operations
/// (serialised mode) the spheres train on `training` one batch at a time in
/// iterator order (forward, loss, backward, optimizer step), while fetching
/// and freeing batches overlaps. If a host adapter registered replica
/// operations (`threaded_training_register_replica_ops`, cllm_training_ext.h),
/// it trains in replica mode instead, as
/// `threaded_training_create_with_replicas` does. The environment overrides
/// the sphere count, the mode and the group size (`CLLM_TRAINING_SPHERES`,
/// `CLLM_TRAINING_MODE`, `CLLM_TRAINING_GROUP_SIZE`; docs/environment.md).
/// Returns NULL (nothing leaked; the reason in `cllm_last_error()` and on
/// stderr) if `training` or `batch_iterator` is NULL, a count or an
/// environment value is bad, replica mode is asked for without replica
/// operations, or a thread or replica could not be made. Both objects must
/// outlive the system.
///
/// # Safety
/// `training` and `batch_iterator` are NULL or live host objects that
/// outlive the system (CLLM's own contract for this function).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threaded_training_create(
    training: *mut CLLMTraining,
    batch_iterator: *mut CLLMBatchIterator,
    num_threads: c_int,
) -> *mut ThreadedTrainingSystem {
    let request = Request {
        threads: i64::from(num_threads),
        ..Request::default()
    };
    // SAFETY: this function's `# Safety`, CLLM's own contract for it: live
    // objects (or NULL, refused) that outlive the system.
    unsafe { create(training, batch_iterator, Ok(request), true) }
}

/// Creates the system in replica mode (our extension): a group of batches
/// (by default one per sphere) trains at once, each batch on its own replica
/// made by `ops->create_replica`; the group's gradients are averaged
/// (weighted by valid tokens, in batch order, in parallel) into `training`'s
/// gradients, then one optimizer step runs on `training`. Results are
/// bitwise identical from run to run. `ops == NULL` gives serialised mode.
/// The environment overrides as for `threaded_training_create`. Returns
/// NULL (the reason in `cllm_last_error()`) as `threaded_training_create`
/// does, also when an operation is missing, a replica cannot be made, the
/// gradient layouts differ, or the gradients are longer than
/// `CLLM_TRAINING_MAX_GRADIENT_FLOATS`.
///
/// # Safety
/// As `threaded_training_create`; `ops` is NULL or points to operations
/// valid for `training` (copied: the struct need not outlive the call).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threaded_training_create_with_replicas(
    training: *mut CLLMTraining,
    batch_iterator: *mut CLLMBatchIterator,
    num_threads: c_int,
    ops: *const cllm_replica_ops,
) -> *mut ThreadedTrainingSystem {
    // SAFETY: this function's `# Safety`: `ops` is NULL or readable.
    let ops = unsafe { copy_ops(ops) };
    let request = Request {
        threads: i64::from(num_threads),
        mode: Some(if ops.is_some() {
            Mode::Replicas
        } else {
            Mode::Serialized
        }),
        group: None,
        ops,
    };
    // SAFETY: this function's `# Safety`: live objects (or NULL, refused)
    // that outlive the system, and operations valid for `training`.
    unsafe { create(training, batch_iterator, Ok(request), false) }
}

/// Creates the system with explicit settings (our extension); NULL
/// `settings` means the defaults, as `threaded_training_create(training,
/// batch_iterator, 0)`. A fixed `group_size` makes replica-mode weights
/// bitwise the same for any sphere count (memory: one replica per batch of
/// the group). A group size in serialised mode is an error. Returns NULL
/// (the reason in `cllm_last_error()`) as
/// `threaded_training_create_with_replicas` does, also for an unknown mode.
///
/// # Safety
/// As `threaded_training_create_with_replicas`; `settings` is NULL or
/// readable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threaded_training_create_with_settings(
    training: *mut CLLMTraining,
    batch_iterator: *mut CLLMBatchIterator,
    settings: *const cllm_training_settings,
) -> *mut ThreadedTrainingSystem {
    // SAFETY: this function's `# Safety`: `settings` is NULL or readable.
    let request = match unsafe { settings.as_ref() } {
        None => Ok(Request::default()),
        // SAFETY: as above: `settings.ops` is NULL or readable.
        Some(s) => request_of(s, unsafe { copy_ops(s.ops) }),
    };
    // SAFETY: this function's `# Safety`: live objects (or NULL, refused)
    // that outlive the system, and operations valid for `training`.
    unsafe { create(training, batch_iterator, request, false) }
}

/// The request that C settings make (`ops` read from them already).
fn request_of(
    s: &cllm_training_settings,
    ops: Option<cllm_replica_ops>,
) -> Result<Request, FfiError> {
    let mode = match s.mode {
        CLLM_TRAINING_MODE_AUTO => None,
        CLLM_TRAINING_MODE_SERIAL => Some(Mode::Serialized),
        CLLM_TRAINING_MODE_REPLICA => Some(Mode::Replicas),
        other => return Err(FfiError::invalid(format!("unknown mode {other}"))),
    };
    Ok(Request {
        threads: i64::from(s.num_threads),
        mode,
        group: usize::try_from(s.group_size).ok().filter(|&g| g > 0),
        ops,
    })
}

/// Registers the host's replica operations (copied) for every later
/// creation whose caller gives none: an unmodified trainer calling
/// `threaded_training_create` then trains in replica mode. A host adapter
/// calls it from a constructor (hosts/crystalline/replica_adapter.c). NULL
/// forgets them. Returns `CLLM_ERR_NULL` (nothing changed) if a required
/// operation is missing.
///
/// # Safety
/// `ops` is NULL or points to operations valid for every training object
/// the program will pass to the drop-in.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threaded_training_register_replica_ops(
    ops: *const cllm_replica_ops,
) -> cllm_status {
    // SAFETY: this function's `# Safety`: `ops` is NULL or readable.
    let ops = unsafe { copy_ops(ops) };
    ffi_status(|| Ok(settings::register(ops)?))
}

/// Joins every thread and frees the replicas. NULL is a no-op.
///
/// # Safety
/// `system` is NULL or a system from `threaded_training_create*`, not used
/// after this call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threaded_training_free(system: *mut ThreadedTrainingSystem) {
    free_handle!(system)
}

/// Trains one epoch (at most `cllm_batch_iterator_num_batches` batches;
/// padding-only batches are skipped) and returns its mean loss over valid
/// tokens (0 if no batch had one). Returns -1.0 on error: NULL system, an
/// epoch already running, a malformed batch, a non-finite gradient (replica
/// mode: the step is not taken), or an internal failure.
///
/// # Safety
/// `system` is NULL or a system from `threaded_training_create*` that is
/// not freed during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threaded_train_epoch(system: *mut ThreadedTrainingSystem) -> f32 {
    with_handle_value!(system, |_| -1.0, |h| Ok(h.inner.train_epoch()?))
}

/// Prints the system's figures and one line per sphere to stdout (the C
/// stream, so that it stays in order with the host's printf output).
///
/// # Safety
/// `system` is NULL or a system from `threaded_training_create*` that is
/// not freed during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threaded_training_print_stats(system: *mut ThreadedTrainingSystem) {
    with_handle_value!(system, |_| (), |h| {
        let s = h.inner.stats();
        let c = cllm_training_stats::of(&h.inner, &s);
        let mut out = String::new();
        let mode = if c.replica_mode == 1 {
            "replicas"
        } else {
            "serialised"
        };
        let _ = writeln!(
            out,
            "threaded training: {} spheres, {mode} mode, {} batches per step; {} epochs, {} batches, {} tokens, {} steps, {} padding-only batches skipped",
            c.num_workers,
            c.group_size,
            c.epochs,
            c.batches,
            c.tokens,
            c.optimizer_steps,
            c.skipped_batches
        );
        let norm = s.grad_norm.map_or("n/a".to_owned(), |n| format!("{n:.6}"));
        let _ = writeln!(
            out,
            "  last epoch: loss {:.6}, {:.3} s, {:.0} tokens/s; gradient norm {norm}",
            c.last_loss, c.last_epoch_seconds, c.last_epoch_tokens_per_second
        );
        for (i, sp) in s.spheres.iter().enumerate() {
            let _ = writeln!(
                out,
                "  sphere {i}: {} batches, mean loss {:.6}",
                sp.batches,
                sp.mean_loss()
            );
        }
        print_c_stdout(&out);
        Ok(())
    })
}

unsafe extern "C" {
    /// The C library's standard output stream.
    static mut stdout: *mut libc::FILE;
}

fn print_c_stdout(text: &str) {
    let Ok(text) = CString::new(text) else { return };
    // SAFETY: `stdout` is the C library's stream, valid for the program's
    // life; fputs and fflush lock it internally.
    unsafe {
        libc::fputs(text.as_ptr(), stdout);
        libc::fflush(stdout);
    }
}

/// Writes sphere `sphere_id`'s figures for the current (or last) epoch:
/// batches it trained and their mean loss over valid tokens. Returns 0, or
/// -1 (nothing written) for a NULL system or output, or an id out of range.
///
/// # Safety
/// `system` is NULL or a system from `threaded_training_create*` that is
/// not freed during the call; the outputs are NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threaded_training_get_sphere_stats(
    system: *mut ThreadedTrainingSystem,
    sphere_id: c_int,
    batches_processed: *mut c_int,
    avg_loss: *mut f32,
) -> c_int {
    with_handle_value!(system, |_| -1, |h| {
        let sys = &h.inner;
        let batches_out = out_ptr(batches_processed, "batches_processed")?;
        let loss_out = out_ptr(avg_loss, "avg_loss")?;
        let stats = sys.stats();
        let sphere = usize::try_from(sphere_id)
            .ok()
            .and_then(|i| stats.spheres.get(i))
            .ok_or_else(|| {
                FfiError::invalid(format!(
                    "sphere_id {sphere_id} is out of range 0..{}",
                    sys.workers()
                ))
            })?;
        // SAFETY: both outputs are not NULL (checked) and writable
        // (this function's `# Safety`).
        unsafe {
            write_out(
                batches_out,
                c_int::try_from(sphere.batches).unwrap_or(c_int::MAX),
            );
            write_out(loss_out, sphere.mean_loss());
        }
        Ok(0)
    })
}

/// The L2 norm of the last reduced gradient (replica mode, before the
/// optimizer step). Returns -1.0 in serialised mode (the host's gradients are
/// not reachable), before the first step, or for a NULL system.
///
/// # Safety
/// `system` is NULL or a system from `threaded_training_create*` that is
/// not freed during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threaded_training_get_gradient_norm(
    system: *mut ThreadedTrainingSystem,
) -> f32 {
    with_handle_value!(system, |_| -1.0, |h| Ok(h
        .inner
        .stats()
        .grad_norm
        .unwrap_or(-1.0)))
}

/// The number of spheres, or -1 for a NULL system.
///
/// # Safety
/// `system` is NULL or a system from `threaded_training_create*` that is
/// not freed during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threaded_training_get_num_workers(
    system: *mut ThreadedTrainingSystem,
) -> c_int {
    with_handle_value!(system, |_| -1, |h| Ok(
        c_int::try_from(h.inner.workers()).unwrap_or(c_int::MAX)
    ))
}

/// Writes the system's figures to `*out` (our extension).
///
/// # Safety
/// `system` is NULL or a system from `threaded_training_create*` that is
/// not freed during the call; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threaded_training_get_stats(
    system: *const ThreadedTrainingSystem,
    out: *mut cllm_training_stats,
) -> cllm_status {
    with_handle!(system, |h| {
        let out = out_ptr(out, "out")?;
        let stats = cllm_training_stats::of(&h.inner, &h.inner.stats());
        // SAFETY: `out` is not NULL (checked above) and writable (this
        // function's `# Safety`).
        unsafe { write_out(out, stats) };
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use grad_reduce::{NonFinite, Origin, ReduceError};

    /// Every failure keeps the C status and the `cllm_last_error()` text it
    /// had when the training code built `FfiError`s itself (the texts below
    /// are copied from that code).
    #[test]
    fn every_error_keeps_its_c_status_and_message() {
        use cllm_threaded::status::*;
        let nan = NonFinite {
            origin: Origin::Source(1),
            buffer: 0,
            index: 3,
            value: f32::NAN,
        };
        let pointers = format!(
            "inputs {:?}, targets {:?}",
            std::ptr::null::<u32>(),
            0x10 as *const u32
        );
        let cases: Vec<(Error, cllm_status, String)> = vec![
            (Error::NullArgument("training"), CLLM_ERR_NULL, "training is NULL".into()),
            (
                Error::NoReplicaOps,
                CLLM_ERR_NULL,
                "the replica operations of replica mode is NULL".into(),
            ),
            (
                Error::MissingReplicaFunction,
                CLLM_ERR_NULL,
                "create_replica, free_replica or gradient_buffers of the replica operations is NULL".into(),
            ),
            (Error::EmptyPlan, CLLM_ERR_INVALID_ARGUMENT, "a plan needs a sphere and a group".into()),
            (
                Error::BadEnvironment {
                    name: settings::ENV_SPHERES,
                    value: "two".into(),
                    expected: "expected a whole number from 1 to 4096".into(),
                },
                CLLM_ERR_INVALID_ARGUMENT,
                "CLLM_TRAINING_SPHERES=\"two\": expected a whole number from 1 to 4096".into(),
            ),
            (
                Error::ReplicaModeWithoutOps { variable: Some(settings::ENV_MODE) },
                CLLM_ERR_INVALID_ARGUMENT,
                "CLLM_TRAINING_MODE=\"replica\" but no replica operations are known: link the host's replica adapter (see docs/dropin.md) or pass them".into(),
            ),
            (
                Error::ReplicaModeWithoutOps { variable: None },
                CLLM_ERR_INVALID_ARGUMENT,
                "replica mode was requested but no replica operations are known: link the host's replica adapter (see docs/dropin.md) or pass them".into(),
            ),
            (
                Error::GroupOutOfRange { group: 5000, max: settings::MAX_GROUP },
                CLLM_ERR_INVALID_ARGUMENT,
                "group size 5000: expected 1 to 4096".into(),
            ),
            (
                Error::GroupInSerialMode { group: 4, variable: Some(settings::ENV_GROUP) },
                CLLM_ERR_INVALID_ARGUMENT,
                "CLLM_TRAINING_GROUP_SIZE=\"4\" applies to replica mode, but this system trains in serialised mode (one step per batch): link the replica adapter, or unset it".into(),
            ),
            (
                Error::GroupInSerialMode { group: 4, variable: None },
                CLLM_ERR_INVALID_ARGUMENT,
                "group size 4 applies to replica mode, but this system trains in serialised mode (one step per batch): link the replica adapter, or unset it".into(),
            ),
            (
                Error::ReplicaNotMade(2),
                CLLM_ERR_INVALID_ARGUMENT,
                "create_replica failed for replica 2".into(),
            ),
            (
                Error::NoGradients,
                CLLM_ERR_INVALID_ARGUMENT,
                "the master training object lists no gradient values".into(),
            ),
            (
                Error::TooManyBuffers(2_000_000),
                CLLM_ERR_INVALID_ARGUMENT,
                "gradient_buffers reports 2000000 buffers".into(),
            ),
            (
                Error::BufferCountChanged { first: 3, then: 4 },
                CLLM_ERR_INVALID_ARGUMENT,
                "gradient_buffers reported 3 buffers, then 4".into(),
            ),
            (Error::NullBuffer(1), CLLM_ERR_INVALID_ARGUMENT, "gradient buffer 1 is NULL".into()),
            (
                Error::GradientTooLarge { buffer: 0, len: 1 << 58, total: 1 << 58, limit: crate::system::MAX_GRADIENT_FLOATS },
                CLLM_ERR_INVALID_ARGUMENT,
                "gradient buffer 0 has 288230376151711744 floats (288230376151711744 so far): the limit is 4294967296 floats in all".into(),
            ),
            (
                Error::LayoutMismatch { lens: vec![3], master: vec![4] },
                CLLM_ERR_INVALID_ARGUMENT,
                "gradient buffers of lengths [3] differ from the master's [4]".into(),
            ),
            (
                Error::OverlappingGradients(1),
                CLLM_ERR_INVALID_ARGUMENT,
                "a gradient buffer of replica 1 overlaps the master's: replicas need their own gradients".into(),
            ),
            // New with the check it reports (no old text to keep).
            (
                Error::BuffersOverlap { first: Some(0), second: Some(2) },
                CLLM_ERR_INVALID_ARGUMENT,
                "gradient buffers of replica 0 and replica 2 overlap: every buffer of every training object needs memory of its own".into(),
            ),
            (Error::Busy, CLLM_ERR_BUSY, "an epoch is already running on this system".into()),
            (
                Error::MalformedBatch { batch_size: 2, seq_len: 8, inputs: 0, targets: 0x10 },
                CLLM_ERR_INVALID_ARGUMENT,
                format!("the iterator returned a malformed batch (2x8, {pointers})"),
            ),
            (
                Error::TooManyValidTokens { valid: 33, tokens: 32 },
                CLLM_ERR_INVALID_ARGUMENT,
                "batch claims 33 valid tokens but holds only 32".into(),
            ),
            (
                Error::BatchSizeChanged { batch_size: 2, seq_len: 8, tokens: 16, expected: 32 },
                CLLM_ERR_INVALID_ARGUMENT,
                "batch of 2x8 = 16 tokens; earlier batches had 32 (the host's functions read a whole configured batch)".into(),
            ),
            (Error::BatchFailed, CLLM_ERR_PANIC, "a batch failed; the epoch was stopped".into()),
            (
                Error::NonFiniteGradient(nan),
                CLLM_ERR_NUMERIC,
                "non-finite gradient, the optimizer step was not taken: NaN in source 1, buffer 0, index 3".into(),
            ),
            (
                Error::Reduce(ReduceError::InvalidArgument("no sources".into())),
                CLLM_ERR_INVALID_ARGUMENT,
                "invalid argument: no sources".into(),
            ),
            (
                Error::Pool(sphere_pool::Error::Shutdown),
                CLLM_ERR_SHUTDOWN,
                sphere_pool::Error::Shutdown.to_string(),
            ),
            (
                Error::Pool(sphere_pool::Error::InvalidArgument("100000 spheres requested; the limit is 4096".into())),
                CLLM_ERR_INVALID_ARGUMENT,
                "invalid argument: 100000 spheres requested; the limit is 4096".into(),
            ),
        ];
        for (error, status, message) in cases {
            let c = FfiError::from(error.clone());
            assert_eq!(
                (c.status, c.message.as_str()),
                (status, message.as_str()),
                "{error:?}"
            );
        }
    }
}
