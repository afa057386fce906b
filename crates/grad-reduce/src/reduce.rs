//! [`GradReducer`]: the parallel fixed-order reduction, norm and clipping.

use crate::error::{NonFinite, Origin, ReduceError};
use crate::kernels::{first_non_finite, scale_in_place, sum_of_squares, weighted_sum};
use crate::plan::{Piece, cut};
use sphere_pool::SpherePool;
use std::sync::atomic::{AtomicU64, Ordering};

/// How a [`GradReducer`] cuts and schedules its work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReduceConfig {
    /// Elements per piece: the unit of parallel work and of the fixed order
    /// of the norm's partial sums. The default is 4096 floats (16 KiB): big
    /// enough that handing out a piece costs little, small enough for work
    /// stealing to balance the threads.
    pub chunk_len: usize,
    /// Layouts with fewer elements than this run on the calling thread only:
    /// below it a fork-join costs more than it saves. The result is the same
    /// either way.
    pub sequential_below: usize,
}

impl Default for ReduceConfig {
    fn default() -> Self {
        Self {
            chunk_len: 4096,
            sequential_below: 64 * 1024,
        }
    }
}

/// The weight of each source in a reduction: `dst = sum_i w_i * src_i`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Weights<'a> {
    /// Every weight 1.0: the plain sum.
    Sum,
    /// Every weight `1.0 / n` (as `f32`): the mean of the `n` sources.
    Mean,
    /// One finite weight per source, for example [`token_weights`].
    Given(&'a [f32]),
}

/// Token-weighted averaging: `w_i = (count_i as f64 / total as f64) as f32`,
/// so that `sum_i w_i * grad_i` is the gradient of the mean loss over all
/// tokens when `grad_i` is the gradient of the mean over source `i`'s tokens.
/// All weights are 0.0 when the total is 0.
pub fn token_weights(counts: &[u32]) -> Vec<f32> {
    let total: u64 = counts.iter().map(|&c| u64::from(c)).sum();
    counts
        .iter()
        .map(|&c| {
            if total == 0 {
                0.0
            } else {
                (f64::from(c) / total as f64) as f32
            }
        })
        .collect()
}

/// What a reduction or a clip found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReduceSummary {
    /// The L2 norm of the result before clipping (fixed-order, see the crate
    /// documentation).
    pub norm: f64,
    /// The factor the result was multiplied by: `max_norm / norm` (as `f32`)
    /// when clipped, else 1.0.
    pub scale: f32,
    /// True if the result was clipped.
    pub clipped: bool,
}

/// A reducer for one buffer layout: the lengths of the gradient buffers of
/// one source (the host's gradient buffer list), cut once into pieces.
///
/// Every operation gives bitwise the same result with or without a pool and
/// for any number of spheres: each piece is computed by one thread in a
/// fixed order, and per-piece partial sums are combined in piece order.
#[derive(Debug, Clone)]
pub struct GradReducer {
    lens: Vec<usize>,
    pieces: Vec<Piece>,
    total: usize,
    config: ReduceConfig,
}

/// The destination buffers as raw pointers, so that the threads of a
/// fork-join can each write their own pieces.
struct DstPtrs(Vec<(*mut f32, usize)>);

// SAFETY: the pointers come from `&mut [f32]` borrowed for the whole
// operation; threads only write disjoint pieces (see `DstPtrs::piece`).
unsafe impl Sync for DstPtrs {}

impl DstPtrs {
    fn new(dst: &mut [&mut [f32]]) -> Self {
        Self(dst.iter_mut().map(|b| (b.as_mut_ptr(), b.len())).collect())
    }

    /// The destination range of `piece`.
    ///
    /// # Safety
    /// No other reference to this piece's range may exist while the result
    /// lives: each piece is handed out at most once at a time.
    #[allow(clippy::mut_from_ref)]
    unsafe fn piece(&self, piece: &Piece) -> &mut [f32] {
        let (ptr, len) = self.0[piece.buffer];
        assert!(piece.start <= piece.end && piece.end <= len);
        // SAFETY: in bounds (asserted); exclusive per the caller's promise;
        // the buffer is mutably borrowed for the whole operation.
        unsafe { std::slice::from_raw_parts_mut(ptr.add(piece.start), piece.end - piece.start) }
    }
}

/// The most pieces a layout may be cut into (16,777,216: 400 MB of piece
/// descriptors; with the default `chunk_len` of 4096 that is 2^36 floats).
pub const MAX_PIECES: usize = 1 << 24;

impl GradReducer {
    /// A reducer for buffers of lengths `lens`, with the default
    /// configuration.
    ///
    /// # Panics
    /// On a layout that [`GradReducer::with_config`] refuses (more floats
    /// than fit in memory, or more than [`MAX_PIECES`] pieces).
    pub fn new(lens: &[usize]) -> Self {
        Self::with_config(lens, ReduceConfig::default()).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A reducer for buffers of lengths `lens`. Fails if `chunk_len` is 0,
    /// if the layout holds more floats than an address space can (its total
    /// overflows, or exceeds `isize::MAX` bytes), or if it would be cut into
    /// more than [`MAX_PIECES`] pieces: sizes come from the caller, so they
    /// are checked before anything is allocated, never wrapped.
    pub fn with_config(lens: &[usize], config: ReduceConfig) -> Result<Self, ReduceError> {
        if config.chunk_len == 0 {
            return Err(ReduceError::InvalidArgument(
                "chunk_len must be at least 1".into(),
            ));
        }
        let max_floats = isize::MAX as usize / std::mem::size_of::<f32>();
        let total = lens
            .iter()
            .try_fold(0usize, |sum, &len| sum.checked_add(len))
            .filter(|&total| total <= max_floats)
            .ok_or_else(|| {
                ReduceError::InvalidArgument(format!(
                    "a layout of {} buffers holds more than {max_floats} floats",
                    lens.len()
                ))
            })?;
        // At most `total` pieces, so this sum cannot overflow.
        let pieces: usize = lens.iter().map(|len| len.div_ceil(config.chunk_len)).sum();
        if pieces > MAX_PIECES {
            return Err(ReduceError::InvalidArgument(format!(
                "{total} floats in pieces of {} make {pieces} pieces, more than {MAX_PIECES}: \
                 raise chunk_len",
                config.chunk_len
            )));
        }
        Ok(Self {
            lens: lens.to_vec(),
            pieces: cut(lens, config.chunk_len),
            total,
            config,
        })
    }

    /// The buffer lengths of the layout.
    pub fn buffer_lens(&self) -> &[usize] {
        &self.lens
    }

    /// The number of elements of the layout.
    pub fn total_len(&self) -> usize {
        self.total
    }

    /// The number of pieces the layout is cut into.
    pub fn pieces(&self) -> usize {
        self.pieces.len()
    }

    /// The configuration.
    pub fn config(&self) -> &ReduceConfig {
        &self.config
    }

    /// `dst = sum_i weights_i * sources_i`, evaluated per element as
    /// `((w_0*s_0 + w_1*s_1) + w_2*s_2) + ...` in source order, in parallel
    /// over the pool's spheres and the calling thread (`None`: the calling
    /// thread only). Then the L2 norm of the result and, if `max_norm` is
    /// given and the norm exceeds it, clipping: `dst *= max_norm / norm`.
    ///
    /// `sources[i]` lists source `i`'s buffers in the layout's order. On
    /// [`ReduceError::NonFinite`] `dst` holds the unclipped sum and the error
    /// names the first non-finite place in flat order (buffer, index) and the
    /// lowest source that holds a non-finite value there. Argument errors
    /// are found before anything is written.
    pub fn reduce<'s, S>(
        &self,
        pool: Option<&SpherePool>,
        sources: &[S],
        weights: Weights<'_>,
        dst: &mut [&mut [f32]],
        max_norm: Option<f64>,
    ) -> Result<ReduceSummary, ReduceError>
    where
        S: AsRef<[&'s [f32]]> + Sync,
    {
        if sources.is_empty() {
            return Err(ReduceError::InvalidArgument("no sources to reduce".into()));
        }
        for (i, source) in sources.iter().enumerate() {
            self.check_layout(
                &format!("source {i}"),
                source.as_ref().iter().map(|b| b.len()),
            )?;
        }
        self.check_layout("the destination", dst.iter().map(|b| b.len()))?;
        check_max_norm(max_norm)?;
        let weights = resolve_weights(weights, sources.len())?;

        let partials = self.new_partials();
        {
            let out = DstPtrs::new(dst);
            self.for_each_piece(pool, |index| {
                let piece = &self.pieces[index];
                // SAFETY: each piece index is visited exactly once.
                let out = unsafe { out.piece(piece) };
                let source = |i: usize| &sources[i].as_ref()[piece.buffer][piece.start..piece.end];
                let sumsq = weighted_sum(out, &weights, &source);
                partials[index].store(sumsq.to_bits(), Ordering::Relaxed);
            })?;
        }
        let sumsq = self.combine(&partials).map_err(|index| {
            let piece = self.pieces[index];
            let range = piece.start..piece.end;
            let at = first_non_finite(&dst[piece.buffer][range]).expect("a non-finite partial")
                + piece.start;
            let found = sources.iter().enumerate().find_map(|(i, s)| {
                let v = s.as_ref()[piece.buffer][at];
                (!v.is_finite()).then_some((Origin::Source(i), v))
            });
            let (origin, value) = found.unwrap_or((Origin::Destination, dst[piece.buffer][at]));
            ReduceError::NonFinite(NonFinite {
                origin,
                buffer: piece.buffer,
                index: at,
                value,
            })
        })?;
        self.finish_clip(pool, dst, sumsq.sqrt(), max_norm)
    }

    /// The L2 norm of `buffers` (in the layout), in the fixed order of the
    /// crate documentation; [`ReduceError::NonFinite`] (origin
    /// [`Origin::Destination`]) at the first NaN or Inf.
    pub fn norm(&self, pool: Option<&SpherePool>, buffers: &[&[f32]]) -> Result<f64, ReduceError> {
        self.check_layout("the buffers", buffers.iter().map(|b| b.len()))?;
        let partials = self.new_partials();
        self.for_each_piece(pool, |index| {
            let piece = &self.pieces[index];
            let sumsq = sum_of_squares(&buffers[piece.buffer][piece.start..piece.end]);
            partials[index].store(sumsq.to_bits(), Ordering::Relaxed);
        })?;
        let sumsq = self.combine(&partials).map_err(|index| {
            let piece = self.pieces[index];
            let part = &buffers[piece.buffer][piece.start..piece.end];
            let at = first_non_finite(part).expect("a non-finite partial");
            ReduceError::NonFinite(NonFinite {
                origin: Origin::Destination,
                buffer: piece.buffer,
                index: piece.start + at,
                value: part[at],
            })
        })?;
        Ok(sumsq.sqrt())
    }

    /// `Ok` if every value of `buffers` is finite, else the first NaN or Inf
    /// as [`norm`](Self::norm) reports it.
    pub fn check_finite(
        &self,
        pool: Option<&SpherePool>,
        buffers: &[&[f32]],
    ) -> Result<(), ReduceError> {
        self.norm(pool, buffers).map(|_| ())
    }

    /// Clips `buffers` by global norm: if their L2 norm exceeds `max_norm`,
    /// multiplies them by `max_norm / norm`.
    pub fn clip(
        &self,
        pool: Option<&SpherePool>,
        buffers: &mut [&mut [f32]],
        max_norm: f64,
    ) -> Result<ReduceSummary, ReduceError> {
        check_max_norm(Some(max_norm))?;
        let norm = {
            let shared: Vec<&[f32]> = buffers.iter().map(|b| &**b).collect();
            self.norm(pool, &shared)?
        };
        self.finish_clip(pool, buffers, norm, Some(max_norm))
    }

    fn finish_clip(
        &self,
        pool: Option<&SpherePool>,
        dst: &mut [&mut [f32]],
        norm: f64,
        max_norm: Option<f64>,
    ) -> Result<ReduceSummary, ReduceError> {
        let Some(max_norm) = max_norm.filter(|&max| norm > max) else {
            return Ok(ReduceSummary {
                norm,
                scale: 1.0,
                clipped: false,
            });
        };
        let scale = (max_norm / norm) as f32;
        let out = DstPtrs::new(dst);
        self.for_each_piece(pool, |index| {
            // SAFETY: each piece index is visited exactly once.
            scale_in_place(unsafe { out.piece(&self.pieces[index]) }, scale);
        })?;
        Ok(ReduceSummary {
            norm,
            scale,
            clipped: true,
        })
    }

    /// Runs `body(piece_index)` once for every piece, on the pool when the
    /// layout is large enough.
    fn for_each_piece(
        &self,
        pool: Option<&SpherePool>,
        body: impl Fn(usize) + Sync,
    ) -> Result<(), ReduceError> {
        match pool {
            Some(pool) if self.total >= self.config.sequential_below && self.pieces.len() > 1 => {
                pool.parallel_for(0..self.pieces.len(), 0, |range| range.for_each(&body))?;
            }
            _ => (0..self.pieces.len()).for_each(body),
        }
        Ok(())
    }

    fn new_partials(&self) -> Vec<AtomicU64> {
        (0..self.pieces.len()).map(|_| AtomicU64::new(0)).collect()
    }

    /// The sum of the partials in piece order, or the first piece whose
    /// partial is not finite.
    fn combine(&self, partials: &[AtomicU64]) -> Result<f64, usize> {
        let mut sum = 0.0f64;
        for (index, partial) in partials.iter().enumerate() {
            let p = f64::from_bits(partial.load(Ordering::Relaxed));
            if !p.is_finite() {
                return Err(index);
            }
            sum += p;
        }
        Ok(sum)
    }

    fn check_layout(
        &self,
        what: &str,
        lens: impl ExactSizeIterator<Item = usize>,
    ) -> Result<(), ReduceError> {
        if lens.len() != self.lens.len() {
            return Err(ReduceError::InvalidArgument(format!(
                "{what} has {} buffers; the layout has {}",
                lens.len(),
                self.lens.len()
            )));
        }
        for (buffer, (len, &want)) in lens.zip(&self.lens).enumerate() {
            if len != want {
                return Err(ReduceError::InvalidArgument(format!(
                    "{what}, buffer {buffer} has {len} floats; the layout says {want}"
                )));
            }
        }
        Ok(())
    }
}

fn check_max_norm(max_norm: Option<f64>) -> Result<(), ReduceError> {
    match max_norm {
        Some(max) if !(max.is_finite() && max > 0.0) => Err(ReduceError::InvalidArgument(format!(
            "max_norm must be finite and positive, not {max}"
        ))),
        _ => Ok(()),
    }
}

fn resolve_weights(weights: Weights<'_>, n: usize) -> Result<Vec<f32>, ReduceError> {
    match weights {
        Weights::Sum => Ok(vec![1.0; n]),
        Weights::Mean => Ok(vec![1.0 / n as f32; n]),
        Weights::Given(w) if w.len() != n => Err(ReduceError::InvalidArgument(format!(
            "{} weights for {n} sources",
            w.len()
        ))),
        Weights::Given(w) => match w.iter().position(|v| !v.is_finite()) {
            Some(i) => Err(ReduceError::InvalidArgument(format!(
                "weight {i} is {}",
                w[i]
            ))),
            None => Ok(w.to_vec()),
        },
    }
}
