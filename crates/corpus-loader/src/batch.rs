//! Batches in the `CLLMBatch` layout, their order (in order or shuffled by a
//! seeded generator), and their split into disjoint shards, one per sphere.
//!
//! The token stream is cut into sequences of `seq_len + 1` tokens that
//! overlap by one: sequence `s` starts at token `s * seq_len`; its inputs are
//! tokens `start..start + seq_len` and its targets the same shifted by one.
//! Without `drop_last` a last, shorter sequence is padded (PAD ids, mask
//! 0.0), and a last batch with fewer sequences is padded with whole padding
//! rows, so every batch is exactly `batch_size x seq_len` (the host's forward
//! pass reads that many). With `drop_last` only full sequences and full
//! batches are produced. Batch `b` of an epoch belongs to shard
//! `b % num_shards`.

use crate::config::PAD_ID;
use crate::corpus::Corpus;
use crate::error::Error;
use crate::tokens::Tokens;
use std::sync::Arc;

/// The most tokens one batch may hold (`batch_size * seq_len`).
pub const MAX_BATCH_TOKENS: usize = 1 << 26;
/// The most shards a plan can be split into.
pub const MAX_SHARDS: usize = sphere_pool::MAX_SPHERES;

/// How to cut the dataset into batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchConfig {
    /// Sequences per batch (at least 1).
    pub batch_size: usize,
    /// Tokens per sequence (at least 1).
    pub seq_len: usize,
    /// Shuffle the sequences each epoch (else they come in corpus order).
    pub shuffle: bool,
    /// Seed of the shuffle; epoch `e` uses a generator seeded from
    /// `(seed, e)`, so every epoch has its own, reproducible order.
    pub seed: u64,
    /// Leave out the last incomplete batch and the last partial sequence.
    pub drop_last: bool,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            batch_size: 8,
            seq_len: 64,
            shuffle: true,
            seed: 0,
            drop_last: false,
        }
    }
}

/// One batch, laid out like the host's `CLLMBatch`: row-major
/// `batch_size x seq_len` arrays. The default is an empty batch, for
/// [`BatchPlan::fill`] to fill.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Batch {
    /// Input ids.
    pub input_ids: Vec<u32>,
    /// Target ids: the inputs shifted by one token.
    pub target_ids: Vec<u32>,
    /// 1.0 for a real token, 0.0 for padding.
    pub attention_mask: Vec<f32>,
    /// Rows.
    pub batch_size: u32,
    /// Columns.
    pub seq_len: u32,
    /// Number of 1.0 entries of the mask.
    pub num_valid_tokens: u32,
    /// The batch's index in its epoch (before sharding).
    pub index: usize,
}

/// The batches of one dataset under one [`BatchConfig`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchPlan {
    config: BatchConfig,
    n_tokens: usize,
    num_sequences: usize,
    num_batches: usize,
}

impl BatchPlan {
    /// Checks `config` against a dataset of `n_tokens` tokens.
    pub fn new(n_tokens: usize, config: &BatchConfig) -> Result<Self, Error> {
        let invalid = |msg: String| Err(Error::InvalidArgument(msg));
        if config.batch_size == 0 {
            return invalid("batch_size is 0: a batch needs at least one sequence".into());
        }
        if config.seq_len == 0 {
            return invalid("seq_len is 0: a sequence needs at least one token".into());
        }
        if config
            .batch_size
            .checked_mul(config.seq_len)
            .is_none_or(|t| t > MAX_BATCH_TOKENS)
        {
            return invalid(format!(
                "a batch of {} x {} tokens is larger than the limit of {MAX_BATCH_TOKENS} tokens",
                config.batch_size, config.seq_len
            ));
        }
        if config.seq_len >= n_tokens {
            return invalid(format!(
                "seq_len {} is longer than the corpus: a sequence needs {} tokens and the corpus has {n_tokens}",
                config.seq_len,
                config.seq_len + 1
            ));
        }
        let full = (n_tokens - 1) / config.seq_len;
        let partial = (n_tokens - 1) % config.seq_len != 0;
        let (num_sequences, num_batches) = if config.drop_last {
            (full, full / config.batch_size)
        } else {
            let n = full + partial as usize;
            (n, n.div_ceil(config.batch_size))
        };
        if num_batches == 0 {
            return invalid(format!(
                "with drop_last, a batch of {} sequences is larger than the corpus ({full} sequences of {} tokens)",
                config.batch_size, config.seq_len
            ));
        }
        if u32::try_from(num_sequences).is_err() {
            return invalid(format!(
                "{num_sequences} sequences: more than 2^32; use a longer seq_len"
            ));
        }
        Ok(Self {
            config: *config,
            n_tokens,
            num_sequences,
            num_batches,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &BatchConfig {
        &self.config
    }

    /// Sequences per epoch (before `drop_last` removes a last partial batch).
    pub fn num_sequences(&self) -> usize {
        self.num_sequences
    }

    /// Batches per epoch, all shards together.
    pub fn num_batches(&self) -> usize {
        self.num_batches
    }

    /// Batches per epoch of shard `shard` of `num_shards` (batches
    /// `shard, shard + num_shards, ...`).
    pub fn shard_batches(&self, shard: usize, num_shards: usize) -> usize {
        if shard >= self.num_batches {
            0
        } else {
            (self.num_batches - shard - 1) / num_shards + 1
        }
    }

    /// The order of the sequences in epoch `epoch`.
    pub fn order(&self, epoch: u64) -> Vec<u32> {
        let mut order = Vec::new();
        self.fill_order(epoch, &mut order);
        order
    }

    /// Writes the order of epoch `epoch` into `order`, reusing its memory
    /// (an iterator reserves it once, fallibly, and never again).
    fn fill_order(&self, epoch: u64, order: &mut Vec<u32>) {
        order.clear();
        order.extend(0..self.num_sequences as u32);
        if self.config.shuffle {
            let mut rng = SplitMix64::new(self.config.seed ^ SplitMix64::new(epoch).next_u64());
            for i in (1..order.len()).rev() {
                let j = rng.below(i as u64 + 1) as usize;
                order.swap(i, j);
            }
        }
    }

    /// Fills `batch` with batch `index` of the epoch whose sequence order is
    /// `order`.
    ///
    /// # Panics
    /// If `tokens` is not the dataset of the plan or `index` is out of range.
    pub fn fill(&self, tokens: Tokens<'_>, order: &[u32], index: usize, batch: &mut Batch) {
        assert_eq!(
            tokens.len(),
            self.n_tokens,
            "the plan belongs to another dataset"
        );
        assert!(
            index < self.num_batches,
            "batch {index} of {}",
            self.num_batches
        );
        let (rows, cols) = (self.config.batch_size, self.config.seq_len);
        batch.input_ids.clear();
        batch.input_ids.resize(rows * cols, PAD_ID);
        batch.target_ids.clear();
        batch.target_ids.resize(rows * cols, PAD_ID);
        batch.attention_mask.clear();
        batch.attention_mask.resize(rows * cols, 0.0);
        let mut valid_total = 0;
        for row in 0..rows {
            let Some(&s) = order.get(index * rows + row) else {
                break;
            };
            let start = s as usize * cols;
            let valid = cols.min(self.n_tokens - 1 - start);
            let at = row * cols;
            tokens.copy_to(start, &mut batch.input_ids[at..at + valid]);
            tokens.copy_to(start + 1, &mut batch.target_ids[at..at + valid]);
            batch.attention_mask[at..at + valid].fill(1.0);
            valid_total += valid;
        }
        batch.batch_size = rows as u32;
        batch.seq_len = cols as u32;
        batch.num_valid_tokens = valid_total as u32;
        batch.index = index;
    }
}

/// The batches of one shard of a corpus, epoch after epoch. Not shared
/// between threads (each sphere has its own); any number of iterators may
/// read the same corpus at once.
#[derive(Debug)]
pub struct BatchIter {
    corpus: Arc<Corpus>,
    plan: BatchPlan,
    order: Vec<u32>,
    epoch: u64,
    shard: usize,
    num_shards: usize,
    next: usize,
}

impl BatchIter {
    /// The iterator of shard `shard` of `num_shards` (use 0 of 1 for all
    /// batches), positioned at the start of epoch 0.
    pub fn new(
        corpus: Arc<Corpus>,
        config: &BatchConfig,
        shard: usize,
        num_shards: usize,
    ) -> Result<Self, Error> {
        if num_shards == 0 || num_shards > MAX_SHARDS {
            return Err(Error::InvalidArgument(format!(
                "num_shards {num_shards} is out of range: it must be between 1 and {MAX_SHARDS}"
            )));
        }
        if shard >= num_shards {
            return Err(Error::InvalidArgument(format!(
                "shard {shard} does not exist: there are {num_shards}"
            )));
        }
        let plan = BatchPlan::new(corpus.tokens().len(), config)?;
        let mut order = Vec::new();
        order
            .try_reserve_exact(plan.num_sequences)
            .map_err(|_| Error::no_memory("the sequence order", plan.num_sequences as u64 * 4))?;
        plan.fill_order(0, &mut order);
        Ok(Self {
            corpus,
            plan,
            order,
            epoch: 0,
            shard,
            num_shards,
            next: shard,
        })
    }

    /// The plan (all shards).
    pub fn plan(&self) -> &BatchPlan {
        &self.plan
    }

    /// Batches of this shard per epoch.
    pub fn batches_per_epoch(&self) -> usize {
        self.plan.shard_batches(self.shard, self.num_shards)
    }

    /// The current epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Starts epoch `epoch` from its first batch (a new shuffle).
    pub fn reset(&mut self, epoch: u64) {
        if epoch != self.epoch {
            self.plan.fill_order(epoch, &mut self.order);
            self.epoch = epoch;
        }
        self.next = self.shard;
    }
}

impl Iterator for BatchIter {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        if self.next >= self.plan.num_batches {
            return None;
        }
        let mut batch = Batch::default();
        self.plan
            .fill(self.corpus.tokens(), &self.order, self.next, &mut batch);
        self.next += self.num_shards;
        Some(batch)
    }
}

/// The SplitMix64 generator: tiny, fast, and the same on every platform.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number below `n` (`n > 0`), by multiply-shift (bias below n / 2^64).
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }
}
