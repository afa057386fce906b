//! The replicas of replica mode: made from the master training object with
//! the host's `cllm_replica_ops`, their gradient buffers listed and checked
//! (sizes, NULL, overlap with the master's), their gradients reduced into
//! the master's after each group, freed with the system.

use crate::error::Error;
use crate::host::{CLLMTraining, HostPtr, cllm_float_span, cllm_replica_ops};
use grad_reduce::{GradReducer, Weights, token_weights};
use sphere_pool::SpherePool;
use std::ffi::c_void;

/// The largest total of gradient floats a host may list (16 GiB of
/// gradients): a longer list is refused before anything is sized from it.
pub const MAX_GRADIENT_FLOATS: usize = 1 << 32;

/// The host's replica operations, the three that replica mode needs checked
/// present (the one place they are checked).
#[derive(Clone, Copy)]
pub(crate) struct ReplicaOps {
    user: *mut c_void,
    create: unsafe extern "C" fn(*mut c_void, *mut CLLMTraining) -> *mut CLLMTraining,
    free: unsafe extern "C" fn(*mut c_void, *mut CLLMTraining),
    list:
        unsafe extern "C" fn(*mut c_void, *mut CLLMTraining, *mut cllm_float_span, usize) -> usize,
}

impl ReplicaOps {
    /// Refuses operations without `create_replica`, `free_replica` or
    /// `gradient_buffers`.
    pub(crate) fn check(ops: &cllm_replica_ops) -> Result<Self, Error> {
        match (ops.create_replica, ops.free_replica, ops.gradient_buffers) {
            (Some(create), Some(free), Some(list)) => Ok(Self {
                user: ops.user,
                create,
                free,
                list,
            }),
            _ => Err(Error::MissingReplicaFunction),
        }
    }
}

/// One replica per batch of a group, and the reducer of their gradients.
pub(crate) struct Replicas {
    ops: ReplicaOps,
    list: Vec<HostPtr<CLLMTraining>>,
    reducer: GradReducer,
}

// SAFETY: the replicas and their operations are only used by the thread that
// holds the epoch lock (and by the spheres it hands a replica to, one each),
// then by `drop`; the host's operations are promised callable from any one
// thread at a time (cllm_replica_ops).
unsafe impl Send for Replicas {}

impl Drop for Replicas {
    fn drop(&mut self) {
        for r in &self.list {
            // SAFETY: each replica was made by `create_replica` and is freed
            // once, after every sphere is done with it.
            unsafe { (self.ops.free)(self.ops.user, r.get()) };
        }
    }
}

impl Replicas {
    /// Makes `n` replicas of `master` (one per batch of a group) and the
    /// reducer for the master's gradient layout. Nothing is leaked on failure.
    ///
    /// # Safety
    /// `master` is a live training object and `ops` operates on it as
    /// `cllm_replica_ops` documents.
    pub(crate) unsafe fn make(
        ops: cllm_replica_ops,
        master: *mut CLLMTraining,
        n: usize,
    ) -> Result<Self, Error> {
        let ops = ReplicaOps::check(&ops)?;
        // SAFETY: `master` is live and `ops` operates on it (the contract).
        let layout = unsafe { list_spans(&ops, master) }?;
        let lens: Vec<usize> = layout.iter().map(|s| s.len).collect();
        if lens.iter().sum::<usize>() == 0 {
            return Err(Error::NoGradients);
        }
        let mut replicas = Replicas {
            ops,
            list: Vec::with_capacity(n),
            reducer: GradReducer::new(&lens),
        };
        let mut sources = Vec::with_capacity(n);
        for i in 0..n {
            // SAFETY: `create_replica` of operations made for `master`, which
            // is live (the contract); no other call runs on it meanwhile.
            let replica = unsafe { (ops.create)(ops.user, master) };
            if replica.is_null() {
                // `replicas` frees the ones made so far.
                return Err(Error::ReplicaNotMade(i));
            }
            replicas.list.push(HostPtr(replica));
            // SAFETY: the replica was just made by the host.
            sources.push(unsafe { gradient_spans(&ops, replica, &replicas.reducer) }?);
        }
        // Refused now rather than at the first group's reduction.
        check_disjoint(&layout, &sources)?;
        Ok(replicas)
    }

    /// The replicas, replica `j` for batch `j` of a group.
    pub(crate) fn list(&self) -> &[HostPtr<CLLMTraining>] {
        &self.list
    }

    /// Sums the gradients of replicas `0..valid.len()` into `master`'s,
    /// weighted by valid tokens, in batch order, on `pool`; returns the norm.
    ///
    /// # Safety
    /// `master` is the live training object the replicas were made from, and
    /// no sphere runs a job on it or on a replica (the group is done).
    pub(crate) unsafe fn reduce_into(
        &self,
        master: *mut CLLMTraining,
        pool: &SpherePool,
        valid: &[u32],
    ) -> Result<f64, Error> {
        // SAFETY: the master (the contract) and the replicas (made by the
        // host, not freed yet) are live; the host lists buffers that stay
        // valid until its next call on the same object.
        let dst_spans = unsafe { gradient_spans(&self.ops, master, &self.reducer) }?;
        let mut sources = Vec::with_capacity(valid.len());
        for r in &self.list[..valid.len()] {
            // SAFETY: as above.
            sources.push(unsafe { gradient_spans(&self.ops, r.get(), &self.reducer) }?);
        }
        check_disjoint(&dst_spans, &sources)?;
        // SAFETY: no job runs (the contract), so nothing writes these buffers
        // while the slices live; the destination does not overlap any source
        // (checked above).
        let source_slices: Vec<Vec<&[f32]>> = sources
            .iter()
            .map(|spans| spans.iter().map(|s| unsafe { span_slice(s) }).collect())
            .collect();
        // SAFETY: as above; the master's buffers are distinct from each other
        // as the host lists them, and are only written here.
        let mut dst: Vec<&mut [f32]> = dst_spans
            .iter()
            .map(|s| unsafe { span_slice_mut(s) })
            .collect();
        let weights = token_weights(valid);
        let summary = self.reducer.reduce(
            Some(pool),
            &source_slices,
            Weights::Given(&weights),
            &mut dst,
            None,
        )?;
        Ok(summary.norm)
    }
}

/// The gradient buffers the host lists for `training`.
///
/// # Safety
/// `training` is a live training object that `ops` operates on.
unsafe fn list_spans(
    ops: &ReplicaOps,
    training: *mut CLLMTraining,
) -> Result<Vec<cllm_float_span>, Error> {
    let list = ops.list;
    let empty = cllm_float_span {
        data: std::ptr::null_mut(),
        len: 0,
    };
    // SAFETY: capacity 0: the host only counts.
    let count = unsafe { list(ops.user, training, std::ptr::null_mut(), 0) };
    if count > 1 << 20 {
        return Err(Error::TooManyBuffers(count));
    }
    let mut spans = vec![empty; count];
    // SAFETY: `spans` has room for `count` entries.
    let again = unsafe { list(ops.user, training, spans.as_mut_ptr(), count) };
    if again != count {
        return Err(Error::BufferCountChanged {
            first: count,
            then: again,
        });
    }
    if let Some(i) = spans.iter().position(|s| s.data.is_null() && s.len > 0) {
        return Err(Error::NullBuffer(i));
    }
    check_span_lengths(&spans)?;
    Ok(spans)
}

/// Refuses absurd lengths before anything is sized from them: at most
/// [`MAX_GRADIENT_FLOATS`] floats in all, and no span that runs past the end
/// of the address space.
fn check_span_lengths(spans: &[cllm_float_span]) -> Result<(), Error> {
    let mut total = 0usize;
    for (i, s) in spans.iter().enumerate() {
        let fits = s.len <= MAX_GRADIENT_FLOATS
            && (s.data as usize)
                .checked_add(s.len * std::mem::size_of::<f32>())
                .is_some();
        total = total.saturating_add(s.len);
        if !fits || total > MAX_GRADIENT_FLOATS {
            return Err(Error::GradientTooLarge {
                buffer: i,
                len: s.len,
                total,
                limit: MAX_GRADIENT_FLOATS,
            });
        }
    }
    Ok(())
}

/// The gradient buffers of `training`, checked against the reducer's layout.
///
/// # Safety
/// As [`list_spans`].
unsafe fn gradient_spans(
    ops: &ReplicaOps,
    training: *mut CLLMTraining,
    reducer: &GradReducer,
) -> Result<Vec<cllm_float_span>, Error> {
    // SAFETY: `training` is live and `ops` operates on it (the contract).
    let spans = unsafe { list_spans(ops, training) }?;
    let lens: Vec<usize> = spans.iter().map(|s| s.len).collect();
    if lens != reducer.buffer_lens() {
        return Err(Error::LayoutMismatch {
            lens,
            master: reducer.buffer_lens().to_vec(),
        });
    }
    Ok(spans)
}

/// Refuses gradient buffers that overlap: the reduction writes the master's
/// as separate `&mut` slices while it reads the replicas', and the spheres
/// write each replica's in backward at the same time, so no two buffers of
/// all these objects may share a float.
fn check_disjoint(
    master: &[cllm_float_span],
    sources: &[Vec<cllm_float_span>],
) -> Result<(), Error> {
    // (start, end, owner): None is the master, Some(j) replica j.
    let mut ranges: Vec<(usize, usize, Option<usize>)> = std::iter::once((None, master))
        .chain(
            sources
                .iter()
                .enumerate()
                .map(|(j, s)| (Some(j), s.as_slice())),
        )
        .flat_map(|(owner, spans)| {
            spans.iter().filter(|s| s.len > 0).map(move |s| {
                let start = s.data as usize;
                (start, start + s.len * std::mem::size_of::<f32>(), owner)
            })
        })
        .collect();
    ranges.sort_unstable_by_key(|&(start, _, owner)| (start, owner));
    // Sorted by start, a range overlaps an earlier one exactly when it
    // starts before the furthest end so far.
    let mut furthest: Option<(usize, Option<usize>)> = None;
    for &(start, end, owner) in &ranges {
        if let Some((reach, other)) = furthest {
            if start < reach {
                return Err(match (other, owner) {
                    (None, Some(j)) | (Some(j), None) => Error::OverlappingGradients(j),
                    (first, second) => Error::BuffersOverlap { first, second },
                });
            }
        }
        if furthest.is_none_or(|(reach, _)| end > reach) {
            furthest = Some((end, owner));
        }
    }
    Ok(())
}

/// The floats of a span listed by the host.
///
/// # Safety
/// The span is valid for reads and not written while the slice lives.
unsafe fn span_slice<'a>(s: &cllm_float_span) -> &'a [f32] {
    if s.len == 0 {
        return &[];
    }
    // SAFETY: `data` is not NULL (checked by `list_spans`), and `len` floats
    // from it are readable and unchanging for 'a (the contract).
    unsafe { std::slice::from_raw_parts(s.data, s.len) }
}

/// The floats of a span listed by the host, to write.
///
/// # Safety
/// The span is valid for writes and not otherwise accessed while it lives.
unsafe fn span_slice_mut<'a>(s: &cllm_float_span) -> &'a mut [f32] {
    if s.len == 0 {
        return &mut [];
    }
    // SAFETY: `data` is not NULL (checked by `list_spans`), and `len` floats
    // from it are writable and not otherwise used for 'a (the contract).
    unsafe { std::slice::from_raw_parts_mut(s.data, s.len) }
}
