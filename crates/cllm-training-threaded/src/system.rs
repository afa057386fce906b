//! The threaded training system: spheres, the two training modes, epochs and
//! statistics. Generic over [`Host`] so that it can be tested with mock hosts;
//! the C entry points (`ffi.rs`) use the linked CLLM host.
//!
//! # The two modes
//! - **Serialised** (no help from the host): every batch is forward, loss,
//!   backward and optimizer step on the one training object. Batch `k` goes
//!   to sphere `k % N`, which waits for its turn (batches train in iterator
//!   order, one at a time: the result equals a plain sequential loop), while
//!   the calling thread fetches the next batches and the spheres free theirs.
//! - **Replicas** (the host supplies [`cllm_replica_ops`]): a group of G
//!   batches (G = the group size, by default the sphere count N) is trained
//!   at once, batch `j` of the group on replica `j` (forward, loss,
//!   backward), and sphere `s` trains batches `s, s + N, s + 2N, ...` of it
//!   in turn; the caller prefetches the next group meanwhile. Each batch's
//!   gradient stays in its own replica (backward zeroes a replica's
//!   gradients first, so a replica holds one batch at a time) until the
//!   group's gradients are reduced into the master's, token-weighted and in
//!   batch order, in parallel over the spheres (`grad-reduce`, bitwise
//!   independent of the thread count); then one optimizer step runs on the
//!   master. Replica `j` always trains batch `j` of a group, whatever N, so
//!   for a fixed G the weights are bitwise the same for any sphere count and
//!   from run to run. Memory: G replicas (one training object each, with
//!   its activations and gradients), whatever N.
//!
//! The epoch stops after `cllm_batch_iterator_num_batches` batches at most
//! (the host's iterator may return padding-only batches for ever); batches
//! without a valid token are freed without training.
//!
//! [`cllm_replica_ops`]: crate::host::cllm_replica_ops

use crate::batch::{Batch, Feed};
use crate::error::Error;
use crate::host::{CLLMBatch, CLLMBatchIterator, CLLMTraining, Host, HostPtr};
pub use crate::replicas::MAX_GRADIENT_FLOATS;
use crate::replicas::Replicas;
pub use crate::settings::{Mode, Plan};
use parking_lot::{Condvar, Mutex};
use sphere_pool::{PoolConfig, SpherePool};
use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};
use thread_support::tsan;

/// Batches, their valid tokens and their token-weighted loss: of a sphere
/// in the current (or last) epoch, of an epoch, of a group. One sum for all
/// three, in f64 and in the order the batches are added.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LossTally {
    /// Batches trained.
    pub batches: u64,
    /// Valid tokens of those batches.
    pub tokens: u64,
    /// Sum of loss x valid tokens.
    pub weighted_loss: f64,
}

impl LossTally {
    /// The token-weighted mean loss (0 before any batch).
    pub fn mean_loss(&self) -> f32 {
        if self.tokens == 0 {
            0.0
        } else {
            (self.weighted_loss / self.tokens as f64) as f32
        }
    }

    fn add(&mut self, loss: f32, tokens: u32) {
        self.batches += 1;
        self.tokens += u64::from(tokens);
        self.weighted_loss += f64::from(loss) * f64::from(tokens);
    }
}

/// What the system has done.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Epochs completed.
    pub epochs: u64,
    /// Batches trained, over all epochs.
    pub batches: u64,
    /// Valid tokens trained, over all epochs.
    pub tokens: u64,
    /// Padding-only batches skipped, over all epochs.
    pub skipped_batches: u64,
    /// Optimizer steps taken, over all epochs.
    pub steps: u64,
    /// Mean loss of the last completed epoch (token-weighted).
    pub last_loss: f32,
    /// L2 norm of the last reduced gradient; `None` in serialised mode.
    pub grad_norm: Option<f32>,
    /// Wall time of the last completed epoch.
    pub last_epoch_time: Duration,
    /// Valid tokens of the last completed epoch.
    pub last_epoch_tokens: u64,
    /// Per sphere, the current epoch (the last one once it ended).
    pub spheres: Vec<LossTally>,
    /// Batches whose loss, as the host computed it, was NaN or infinite
    /// (over all epochs).
    pub nonfinite_losses: u64,
}

/// The host's optional optimizer step (`cllm_replica_ops.optimizer_step`).
#[derive(Clone, Copy)]
struct StepHook {
    step: unsafe extern "C" fn(*mut std::ffi::c_void, *mut CLLMTraining, f32),
    user: HostPtr<std::ffi::c_void>,
}

/// One optimizer step on `training`: the host's hook if it has one, else
/// `cllm_optimizer_step_adam`.
///
/// # Safety
/// `training` is the live master the hook was given for, no other call runs
/// on it, and its gradients are in place.
unsafe fn optimizer_step<H: Host>(
    host: &H,
    hook: Option<StepHook>,
    training: HostPtr<CLLMTraining>,
    loss: f32,
) {
    // SAFETY: what the hook (cllm_replica_ops.optimizer_step) and
    // cllm_optimizer_step_adam ask of a step is this function's contract.
    unsafe {
        match hook {
            Some(h) => (h.step)(h.user.get(), training.get(), loss),
            None => host.step(training.get()),
        }
    }
}

/// Batch `k` of a serialised epoch waits until `next == k`. Under
/// ThreadSanitizer, each turn on the training object follows the one before
/// (`tsan::acquire` after the wait, `release` at its end): the spheres hand
/// the object on through this condition variable, which TSan does not see.
/// The batches' hand-offs to the spheres and back are the pool's own
/// (`crates/sphere-pool/src/README.md`).
#[derive(Default)]
struct Turn {
    state: Mutex<TurnState>,
    changed: Condvar,
}

#[derive(Default)]
struct TurnState {
    next: usize,
    failed: bool,
}

impl Turn {
    fn reset(&self) {
        *self.state.lock() = TurnState::default();
    }

    /// Waits for batch `k`'s turn; false if an earlier batch failed.
    fn wait_for(&self, k: usize) -> bool {
        let mut s = self.state.lock();
        while s.next != k && !s.failed {
            self.changed.wait(&mut s);
        }
        tsan::acquire(self);
        !s.failed
    }

    /// Ends batch `k`'s turn (also when it panicked: then the later batches
    /// give up instead of waiting for ever).
    fn finish(&self, failed: bool) {
        tsan::release(self);
        let mut s = self.state.lock();
        s.next += 1;
        s.failed |= failed;
        self.changed.notify_all();
    }
}

/// Ends a turn when dropped, so that a panic cannot leave it open.
struct TurnGuard<'a>(&'a Turn);

impl Drop for TurnGuard<'_> {
    fn drop(&mut self) {
        self.0.finish(std::thread::panicking());
    }
}

/// One batch's result: its index in the epoch, its loss and valid tokens.
type BatchResult = (usize, f32, u32);

/// The threaded training system behind `ThreadedTrainingSystem*`.
pub struct TrainingSystem<H: Host> {
    host: H,
    training: HostPtr<CLLMTraining>,
    iter: HostPtr<CLLMBatchIterator>,
    pool: SpherePool,
    mode: Mode,
    /// Batches per optimizer step (1 in serialised mode).
    group: usize,
    hook: Option<StepHook>,
    /// Held for the whole of an epoch: one epoch at a time.
    epoch: Mutex<EpochState>,
    stats: Arc<Mutex<Stats>>,
    turn: Arc<Turn>,
}

struct EpochState {
    replicas: Option<Replicas>,
    /// Tokens per batch (batch_size x seq_len), from the first batch seen.
    batch_tokens: Option<usize>,
}

impl<H: Host> TrainingSystem<H> {
    /// Starts `plan.spheres` spheres and, in replica mode, makes
    /// `plan.group` replicas. Nothing is leaked on failure.
    ///
    /// # Safety
    /// `training` and `iter` are live host objects that outlive the system;
    /// `plan.ops`, if given, operates on them as `cllm_replica_ops` documents.
    pub unsafe fn create(
        host: H,
        training: *mut CLLMTraining,
        iter: *mut CLLMBatchIterator,
        plan: Plan,
    ) -> Result<Self, Error> {
        if training.is_null() {
            return Err(Error::NullArgument("training"));
        }
        if iter.is_null() {
            return Err(Error::NullArgument("batch_iterator"));
        }
        let Plan {
            spheres,
            mode,
            group,
            ops,
        } = plan;
        if spheres == 0 || group == 0 {
            return Err(Error::EmptyPlan);
        }
        // Replicas first: if they fail, no thread was started.
        let replicas = match (mode, ops) {
            // SAFETY: `training` is live and `ops` operates on it (this
            // function's contract).
            (Mode::Replicas, Some(ops)) => Some(unsafe { Replicas::make(ops, training, group) }?),
            (Mode::Replicas, None) => return Err(Error::NoReplicaOps),
            (Mode::Serialized, _) => None,
        };
        let hook = ops.and_then(|o| {
            o.optimizer_step.map(|step| StepHook {
                step,
                user: HostPtr(o.user),
            })
        });
        let pool = SpherePool::with_config(PoolConfig {
            spheres,
            ..PoolConfig::default()
        })?;
        let stats = Stats {
            spheres: vec![LossTally::default(); spheres],
            ..Stats::default()
        };
        Ok(Self {
            host,
            training: HostPtr(training),
            iter: HostPtr(iter),
            pool,
            mode,
            group: if mode == Mode::Replicas { group } else { 1 },
            hook,
            epoch: Mutex::new(EpochState {
                replicas,
                batch_tokens: None,
            }),
            stats: Arc::new(Mutex::new(stats)),
            turn: Arc::default(),
        })
    }

    /// The number of spheres.
    pub fn workers(&self) -> usize {
        self.pool.spheres()
    }

    /// The training mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Batches per optimizer step (1 in serialised mode).
    pub fn group_size(&self) -> usize {
        self.group
    }

    /// A snapshot of the statistics (safe to take while an epoch runs).
    pub fn stats(&self) -> Stats {
        self.stats.lock().clone()
    }

    /// Trains one epoch and returns its token-weighted mean loss (0 if it
    /// had no batch with a valid token). One epoch at a time: a concurrent
    /// call fails with `CLLM_ERR_BUSY`.
    pub fn train_epoch(&self) -> Result<f32, Error> {
        let mut epoch = self.epoch.try_lock().ok_or(Error::Busy)?;
        let start = Instant::now();
        {
            let mut stats = self.stats.lock();
            stats
                .spheres
                .iter_mut()
                .for_each(|s| *s = LossTally::default());
        }
        // SAFETY: the iterator is only used on this thread, under the epoch lock.
        unsafe { self.host.reset(self.iter.get()) };
        // SAFETY: as above.
        let limit = unsafe { self.host.num_batches(self.iter.get()) };
        // SAFETY: as above.
        let mut feed = unsafe { Feed::new(&self.host, self.iter, limit) };
        let results = match self.mode {
            Mode::Serialized => self.epoch_serialized(&mut epoch, &mut feed),
            Mode::Replicas => self.epoch_replicas(&mut epoch, &mut feed),
        };
        // Whatever happened, no sphere may still hold a batch or a replica.
        let drained = self.drain();
        let results = results.and_then(|r| drained.map(|()| r));
        let mut stats = self.stats.lock();
        stats.skipped_batches += feed.skipped();
        let mut results = results?;
        results.sort_by_key(|r| r.0);
        let mut epoch_sum = LossTally::default();
        for &(k, loss, valid) in &results {
            epoch_sum.add(loss, valid);
            if !loss.is_finite() {
                stats.nonfinite_losses += 1;
                warn_nonfinite_loss(k, loss);
            }
        }
        let loss = epoch_sum.mean_loss();
        stats.epochs += 1;
        stats.batches += epoch_sum.batches;
        stats.tokens += epoch_sum.tokens;
        stats.last_loss = loss;
        stats.last_epoch_time = start.elapsed();
        stats.last_epoch_tokens = epoch_sum.tokens;
        Ok(loss)
    }

    /// Waits for every sphere (on every exit path of an epoch, so that no
    /// job outlives it) and returns the first failure.
    fn drain(&self) -> Result<(), Error> {
        let mut first = Ok(());
        for s in 0..self.pool.spheres() {
            if let Err(e) = self.pool.wait(s) {
                first = first.and(Err(e.into()));
            }
        }
        first
    }

    /// Checks a batch against the first one the system saw: every batch must
    /// hold the same `batch_size x seq_len` tokens (the host's functions read
    /// a whole configured batch).
    fn check_batch(&self, epoch: &mut EpochState, batch: &CLLMBatch) -> Result<(), Error> {
        let tokens = batch.batch_size as usize * batch.seq_len as usize;
        if batch.input_ids.is_null() || batch.target_ids.is_null() || tokens == 0 {
            return Err(Error::MalformedBatch {
                batch_size: batch.batch_size,
                seq_len: batch.seq_len,
                inputs: batch.input_ids as usize,
                targets: batch.target_ids as usize,
            });
        }
        if batch.num_valid_tokens as usize > tokens {
            return Err(Error::TooManyValidTokens {
                valid: batch.num_valid_tokens,
                tokens,
            });
        }
        match epoch.batch_tokens {
            None => epoch.batch_tokens = Some(tokens),
            Some(expected) if expected != tokens => {
                return Err(Error::BatchSizeChanged {
                    batch_size: batch.batch_size,
                    seq_len: batch.seq_len,
                    tokens,
                    expected,
                });
            }
            Some(_) => {}
        }
        Ok(())
    }

    fn epoch_serialized(
        &self,
        epoch: &mut EpochState,
        feed: &mut Feed<'_, H>,
    ) -> Result<Vec<BatchResult>, Error> {
        let n = self.pool.spheres();
        let results: Arc<Mutex<Vec<BatchResult>>> = Arc::default();
        self.turn.reset();
        let mut k = 0;
        while let Some(batch) = feed.next()? {
            self.check_batch(epoch, batch.get())?;
            let sphere = k % n;
            // The sphere's previous batch (k - n) must be done first.
            self.pool.wait(sphere)?;
            let (turn, results, stats, host, training, hook) = (
                self.turn.clone(),
                results.clone(),
                self.stats.clone(),
                self.host.clone(),
                self.training,
                self.hook,
            );
            let index = k;
            self.pool.dispatch(sphere, move || {
                let (inputs, targets, valid) = (
                    batch.get().input_ids,
                    batch.get().target_ids,
                    batch.get().num_valid_tokens,
                );
                if !turn.wait_for(index) {
                    return;
                }
                let loss = {
                    let _turn = TurnGuard(&turn);
                    // SAFETY: the turn makes this the only call on the
                    // training object; the batch is a whole batch (checked).
                    unsafe {
                        host.forward(training.get(), inputs);
                        let loss = host.loss(training.get(), targets);
                        host.backward(training.get(), targets);
                        optimizer_step(&host, hook, training, loss);
                        loss
                    }
                };
                drop(batch);
                results.lock().push((index, loss, valid));
                stats.lock().spheres[sphere].add(loss, valid);
            })?;
            k += 1;
        }
        self.drain()?;
        let results = std::mem::take(&mut *results.lock());
        if results.len() != k {
            return Err(Error::BatchFailed);
        }
        self.stats.lock().steps += k as u64;
        Ok(results)
    }

    fn epoch_replicas(
        &self,
        epoch: &mut EpochState,
        feed: &mut Feed<'_, H>,
    ) -> Result<Vec<BatchResult>, Error> {
        let n = self.pool.spheres();
        let replicas = epoch
            .replicas
            .as_ref()
            .expect("replica mode has replicas")
            .list()
            .to_vec();
        let mut all = Vec::new();
        let mut group = self.next_group(epoch, feed, self.group)?;
        while !group.is_empty() {
            let g = group.len();
            let losses: Arc<Mutex<Vec<f32>>> = Arc::new(Mutex::new(vec![f32::NAN; g]));
            let valid: Vec<u32> = group.iter().map(|b| b.get().num_valid_tokens).collect();
            // Sphere s trains batches s, s + n, ... of the group, batch j on replica j.
            let mut shares: Vec<Vec<(usize, Batch<H>)>> =
                (0..n.min(g)).map(|_| Vec::new()).collect();
            for (j, batch) in group.drain(..).enumerate() {
                shares[j % n].push((j, batch));
            }
            for (s, share) in shares.into_iter().enumerate() {
                let (losses, host, replicas) =
                    (losses.clone(), self.host.clone(), replicas.clone());
                self.pool.dispatch(s, move || {
                    for (j, batch) in share {
                        let (inputs, targets) = (batch.get().input_ids, batch.get().target_ids);
                        let replica = replicas[j];
                        // SAFETY: replica j is used by this sphere only during
                        // the group; the master's weights are not updated
                        // while spheres run.
                        let loss = unsafe {
                            host.forward(replica.get(), inputs);
                            let loss = host.loss(replica.get(), targets);
                            host.backward(replica.get(), targets);
                            loss
                        };
                        drop(batch);
                        losses.lock()[j] = loss;
                    }
                })?;
            }
            // The next group is fetched while this one trains.
            let next = self.next_group(epoch, feed, self.group);
            for s in 0..n.min(g) {
                self.pool.wait(s)?;
            }
            let next = next?;
            let replicas = epoch.replicas.as_ref().expect("replica mode has replicas");
            // SAFETY: every sphere is idle (waited for above), and
            // `self.training` is the live master the replicas were made from.
            let norm = unsafe { replicas.reduce_into(self.training.get(), &self.pool, &valid) }?;
            let losses = losses.lock().clone();
            let group_loss = weighted_mean(&losses, &valid);
            // SAFETY: every sphere is idle: the step is the only call.
            unsafe { optimizer_step(&self.host, self.hook, self.training, group_loss) };
            let base = all.len();
            let mut stats = self.stats.lock();
            for j in 0..g {
                all.push((base + j, losses[j], valid[j]));
                stats.spheres[j % n].add(losses[j], valid[j]);
            }
            stats.steps += 1;
            stats.grad_norm = Some(norm as f32);
            drop(stats);
            group = next;
        }
        Ok(all)
    }

    /// Up to `n` batches with valid tokens, checked.
    fn next_group(
        &self,
        epoch: &mut EpochState,
        feed: &mut Feed<'_, H>,
        n: usize,
    ) -> Result<Vec<Batch<H>>, Error> {
        let mut group = Vec::with_capacity(n);
        while group.len() < n {
            let Some(batch) = feed.next()? else { break };
            self.check_batch(epoch, batch.get())?;
            group.push(batch);
        }
        Ok(group)
    }
}

/// The token-weighted mean of a group's losses (f64 sums, in batch order).
fn weighted_mean(losses: &[f32], valid: &[u32]) -> f32 {
    let mut sum = LossTally::default();
    for (&loss, &n) in losses.iter().zip(valid) {
        sum.add(loss, n);
    }
    sum.mean_loss()
}

/// Says once per process, on stderr, that the host returned a non-finite
/// loss: the epoch's mean is then not finite either (the statistics count
/// every such batch).
fn warn_nonfinite_loss(batch: usize, loss: f32) {
    static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
        // Not eprintln!, which panics if stderr is a closed pipe.
        let _ = writeln!(
            std::io::stderr(),
            "threaded training: the host's loss for batch {batch} of the epoch is {loss}; the epoch's mean loss is not finite (said once; cllm_training_stats.nonfinite_losses counts them)"
        );
    }
}
