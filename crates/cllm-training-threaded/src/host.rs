//! The CLLM host's side of the interface: its opaque types, the functions of
//! `cllm-abi.md` section 2 that the drop-in calls, and the optional replica
//! operations a host may supply for data-parallel training.

use std::ffi::c_void;

/// The host's training state (model, activations, gradients, optimizer).
/// Opaque to the drop-in (the Rustonomicon's opaque-type pattern: not
/// constructible, not Send, not Unpin).
#[repr(C)]
pub struct CLLMTraining {
    _opaque: [u8; 0],
    _marker: std::marker::PhantomData<(*mut u8, std::marker::PhantomPinned)>,
}

/// The host's batch iterator. Opaque to the drop-in; not thread-safe.
#[repr(C)]
pub struct CLLMBatchIterator {
    _opaque: [u8; 0],
    _marker: std::marker::PhantomData<(*mut u8, std::marker::PhantomPinned)>,
}

/// One batch as the host's iterator returns it (40 bytes on x86-64).
#[repr(C)]
#[derive(Debug)]
pub struct CLLMBatch {
    /// `batch_size * seq_len` input token ids.
    pub input_ids: *mut u32,
    /// `batch_size * seq_len` target token ids (inputs shifted by one).
    pub target_ids: *mut u32,
    /// `batch_size * seq_len` mask: 1.0 for a real token, 0.0 for padding.
    pub attention_mask: *mut f32,
    /// Sequences in the batch.
    pub batch_size: u32,
    /// Tokens per sequence.
    pub seq_len: u32,
    /// Tokens whose mask is 1.0.
    pub num_valid_tokens: u32,
}

// The generic loader's batch promises this layout (a `cllm_loader_batch*`
// may be passed where a `CLLMBatch*` is expected): the two definitions are
// the two sides of that promise, kept in step here.
const _: () = {
    use cllm_threaded::loader_iter::cllm_loader_batch as Loader;
    use std::mem::{align_of, offset_of, size_of};
    assert!(size_of::<Loader>() == size_of::<CLLMBatch>());
    assert!(align_of::<Loader>() == align_of::<CLLMBatch>());
    assert!(offset_of!(Loader, input_ids) == offset_of!(CLLMBatch, input_ids));
    assert!(offset_of!(Loader, target_ids) == offset_of!(CLLMBatch, target_ids));
    assert!(offset_of!(Loader, attention_mask) == offset_of!(CLLMBatch, attention_mask));
    assert!(offset_of!(Loader, batch_size) == offset_of!(CLLMBatch, batch_size));
    assert!(offset_of!(Loader, seq_len) == offset_of!(CLLMBatch, seq_len));
    assert!(offset_of!(Loader, num_valid_tokens) == offset_of!(CLLMBatch, num_valid_tokens));
};

/// A buffer of `len` floats: one of a training object's gradient arrays.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct cllm_float_span {
    /// The first float.
    pub data: *mut f32,
    /// The number of floats.
    pub len: usize,
}

/// Operations a host supplies to `threaded_training_create_with_replicas`
/// so that every sphere trains on its own replica of the training state.
///
/// A replica shares the master's model weights (read-only while spheres run
/// forward and backward) and has its own activations and gradients. The
/// drop-in never calls the host concurrently on one training object, and
/// never runs the optimizer while replicas compute.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct cllm_replica_ops {
    /// Passed back as the first argument of every operation.
    pub user: *mut c_void,
    /// Returns a new replica of `master`, or NULL on failure.
    pub create_replica: Option<
        unsafe extern "C" fn(user: *mut c_void, master: *mut CLLMTraining) -> *mut CLLMTraining,
    >,
    /// Frees a replica made by `create_replica`.
    pub free_replica: Option<unsafe extern "C" fn(user: *mut c_void, replica: *mut CLLMTraining)>,
    /// Lists the gradient buffers of `training`: writes up to `capacity`
    /// spans to `out` and returns the total number of buffers (call again
    /// with more room if it exceeds `capacity`). Replicas and their master
    /// must list buffers of the same sizes in the same order.
    pub gradient_buffers: Option<
        unsafe extern "C" fn(
            user: *mut c_void,
            training: *mut CLLMTraining,
            out: *mut cllm_float_span,
            capacity: usize,
        ) -> usize,
    >,
    /// Optional (NULL: `cllm_optimizer_step_adam(training)` is called). When
    /// set, the drop-in calls it instead, in both modes, to take one
    /// optimizer step on the master with its gradients in place; `loss` is
    /// the loss those gradients belong to (the batch's in serialised mode,
    /// the group's token-weighted mean in replica mode). A host adapter
    /// uses it to do what the host's own epoch loop does around a step
    /// (CLLM: learning-rate schedule, step counter, current and best loss).
    pub optimizer_step:
        Option<unsafe extern "C" fn(user: *mut c_void, training: *mut CLLMTraining, loss: f32)>,
}

/// A host pointer that may cross threads: the system's rules (one call at a
/// time per training object, the iterator only on the calling thread) are
/// what makes sharing it sound, and each use says so.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct HostPtr<T>(pub(crate) *mut T);

impl<T> HostPtr<T> {
    /// The pointer (a method, so that closures capture the whole wrapper).
    pub(crate) fn get(self) -> *mut T {
        self.0
    }
}

impl<T> Clone for HostPtr<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for HostPtr<T> {}
// SAFETY: see above: the pointer is only dereferenced by the host, under the
// host's threading rules that the system keeps.
unsafe impl<T> Send for HostPtr<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for HostPtr<T> {}

/// The host functions the drop-in calls (cllm-abi.md section 2), behind a
/// trait so that the orchestration can be tested from Rust with a mock host.
///
/// # Safety
/// Implementations forward to the host; every method may only be called with
/// pointers the host gave out (a live training object, iterator or batch)
/// and under the host's rules: never twice at once on one training object,
/// never the iterator from two threads at once.
pub unsafe trait Host: Clone + Send + Sync + 'static {
    /// `cllm_batch_iterator_reset`.
    ///
    /// # Safety
    /// The trait's rules: pointers the host gave out, one call at a time per object.
    unsafe fn reset(&self, iter: *mut CLLMBatchIterator);
    /// `cllm_batch_iterator_next`: a new heap batch, or NULL at the end.
    ///
    /// # Safety
    /// The trait's rules: pointers the host gave out, one call at a time per object.
    unsafe fn next(&self, iter: *mut CLLMBatchIterator) -> *mut CLLMBatch;
    /// `cllm_batch_iterator_num_batches`.
    ///
    /// # Safety
    /// The trait's rules: pointers the host gave out, one call at a time per object.
    unsafe fn num_batches(&self, iter: *mut CLLMBatchIterator) -> usize;
    /// `cllm_batch_free`.
    ///
    /// # Safety
    /// The trait's rules: pointers the host gave out, one call at a time per object.
    unsafe fn free_batch(&self, batch: *mut CLLMBatch);
    /// `cllm_forward_training` (returns 0).
    ///
    /// # Safety
    /// The trait's rules: pointers the host gave out, one call at a time per object.
    unsafe fn forward(&self, training: *mut CLLMTraining, inputs: *mut u32) -> f32;
    /// `cllm_compute_loss_training`: the batch's mean cross-entropy.
    ///
    /// # Safety
    /// The trait's rules: pointers the host gave out, one call at a time per object.
    unsafe fn loss(&self, training: *mut CLLMTraining, targets: *mut u32) -> f32;
    /// `cllm_backward_training`: zeroes, then fills the gradients.
    ///
    /// # Safety
    /// The trait's rules: pointers the host gave out, one call at a time per object.
    unsafe fn backward(&self, training: *mut CLLMTraining, targets: *mut u32);
    /// `cllm_optimizer_step_adam`: applies and clears the gradients.
    ///
    /// # Safety
    /// The trait's rules: pointers the host gave out, one call at a time per object.
    unsafe fn step(&self, training: *mut CLLMTraining);
}

/// The CLLM host linked into the program: the symbols of cllm-abi.md
/// section 2, resolved by the linker.
#[derive(Debug, Clone, Copy, Default)]
pub struct LinkedHost;

/// Declares the host functions and implements [`Host`] for [`LinkedHost`],
/// each method calling the function of the same meaning with its arguments.
/// Unit tests link no host (they use mock hosts): there every method panics.
macro_rules! linked_host {
    ($($method:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)? = $c_fn:ident;)*) => {
        #[cfg(not(test))]
        unsafe extern "C" {
            $(fn $c_fn($($arg: $ty),*) $(-> $ret)?;)*
        }

        #[cfg(not(test))]
        // SAFETY: every method forwards to the host function of the same
        // meaning, and the trait's contract is that function's contract.
        unsafe impl Host for LinkedHost {
            $(unsafe fn $method(&self, $($arg: $ty),*) $(-> $ret)? {
                // SAFETY: the method's contract (pointers the host gave out,
                // one call at a time per object) is the one cllm-abi.md
                // section 2 states for this function.
                unsafe { $c_fn($($arg),*) }
            })*
        }

        #[cfg(test)]
        // SAFETY: every method panics before touching a pointer.
        unsafe impl Host for LinkedHost {
            $(unsafe fn $method(&self, $($arg: $ty),*) $(-> $ret)? {
                let _ = ($($arg),*);
                panic!("no CLLM host is linked into unit tests")
            })*
        }
    };
}

linked_host! {
    reset(iter: *mut CLLMBatchIterator) = cllm_batch_iterator_reset;
    next(iter: *mut CLLMBatchIterator) -> *mut CLLMBatch = cllm_batch_iterator_next;
    num_batches(iter: *mut CLLMBatchIterator) -> usize = cllm_batch_iterator_num_batches;
    free_batch(batch: *mut CLLMBatch) = cllm_batch_free;
    forward(training: *mut CLLMTraining, inputs: *mut u32) -> f32 = cllm_forward_training;
    loss(training: *mut CLLMTraining, targets: *mut u32) -> f32 = cllm_compute_loss_training;
    backward(training: *mut CLLMTraining, targets: *mut u32) = cllm_backward_training;
    step(training: *mut CLLMTraining) = cllm_optimizer_step_adam;
}
