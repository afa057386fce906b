//! The CLLM host's side of the interface: its opaque types, the functions of
//! `cllm-abi.md` section 2 that the drop-in calls, and the optional replica
//! operations a host may supply for data-parallel training.

use std::ffi::c_void;

/// The host's training state (model, activations, gradients, optimizer).
/// Opaque to the drop-in.
pub struct CLLMTraining {
    _opaque: [u8; 0],
}

/// The host's batch iterator. Opaque to the drop-in; not thread-safe.
pub struct CLLMBatchIterator {
    _opaque: [u8; 0],
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
    pub create_replica:
        Option<unsafe extern "C" fn(user: *mut c_void, master: *mut CLLMTraining) -> *mut CLLMTraining>,
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
}
