//! Property tests of the functions that take sizes, counts and spans from a
//! caller (batching and sharding): every token position is an input exactly
//! once (or, with drop_last, exactly the full sequences), shards split the
//! batches exactly, and a value the documentation calls invalid is a clear
//! error; never a wrap, a panic or an allocation sized by a bad value.

mod support;

use corpus_loader::{
    Batch, BatchConfig, BatchIter, BatchPlan, Corpus, Error, MAX_BATCH_TOKENS, MAX_SHARDS, PAD_ID,
    Tokens,
};
use proptest::prelude::*;
use std::sync::{Arc, OnceLock};

/// Why `BatchPlan::new` must refuse this request, by the documentation
/// (computed without the plan's own arithmetic, in u128).
fn documented_error(n_tokens: usize, c: &BatchConfig) -> Option<&'static str> {
    let (n, bs, sl) = (n_tokens as u128, c.batch_size as u128, c.seq_len as u128);
    if bs == 0 {
        return Some("batch_size is 0");
    }
    if sl == 0 {
        return Some("seq_len is 0");
    }
    if bs * sl > MAX_BATCH_TOKENS as u128 {
        return Some("larger than the limit");
    }
    if sl >= n {
        return Some("longer than the corpus");
    }
    let full = (n - 1) / sl;
    let sequences = if c.drop_last {
        full
    } else {
        (n - 1).div_ceil(sl)
    };
    if c.drop_last && full / bs == 0 {
        return Some("drop_last");
    }
    if sequences > u32::MAX as u128 {
        return Some("more than 2^32");
    }
    None
}

/// Sizes of every kind: any, small, the largest, and powers of two (whose
/// products wrap to zero in 64 bits).
fn size() -> impl Strategy<Value = usize> {
    prop_oneof![
        any::<usize>(),
        0usize..100,
        Just(usize::MAX),
        (0u32..64).prop_map(|k| 1usize << k),
        (0u32..64).prop_map(|k| (1usize << k) + 1),
    ]
}

fn config_strategy(max: usize) -> impl Strategy<Value = BatchConfig> {
    (0..max, 0..max, any::<bool>(), any::<u64>(), any::<bool>()).prop_map(
        |(batch_size, seq_len, shuffle, seed, drop_last)| BatchConfig {
            batch_size,
            seq_len,
            shuffle,
            seed,
            drop_last,
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// Small plans, checked batch by batch against the token positions.
    #[test]
    fn every_position_is_an_input_exactly_once(
        n_tokens in 0usize..3000,
        c in config_strategy(70),
        epoch in 0u64..3,
    ) {
        let plan = BatchPlan::new(n_tokens, &c);
        match documented_error(n_tokens, &c) {
            Some(why) => {
                let e = plan.expect_err(why);
                prop_assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
                prop_assert!(e.to_string().contains(why), "{e} should say {why}");
                return Ok(());
            }
            None => prop_assert!(plan.is_ok(), "{:?}", plan.err()),
        }
        let plan = plan.unwrap();
        // Token i has id i: an input id is its position.
        let ids: Vec<u32> = (0..n_tokens as u32).collect();
        let tokens = Tokens::U32(&ids);
        let order = plan.order(epoch);
        let mut seen = vec![0u8; n_tokens];
        let mut batch = Batch::default();
        let (rows, cols) = (c.batch_size, c.seq_len);
        for b in 0..plan.num_batches() {
            plan.fill(tokens, &order, b, &mut batch);
            prop_assert_eq!(batch.input_ids.len(), rows * cols);
            let mut valid = 0;
            for at in 0..rows * cols {
                if batch.attention_mask[at] == 1.0 {
                    let p = batch.input_ids[at] as usize;
                    prop_assert_eq!(batch.target_ids[at] as usize, p + 1);
                    // Within a row, valid positions are consecutive from the
                    // row's start.
                    if at % cols > 0 {
                        prop_assert_eq!(batch.attention_mask[at - 1], 1.0);
                        prop_assert_eq!(batch.input_ids[at - 1] as usize + 1, p);
                    }
                    seen[p] += 1;
                    valid += 1;
                } else {
                    prop_assert_eq!(batch.attention_mask[at], 0.0);
                    prop_assert_eq!((batch.input_ids[at], batch.target_ids[at]), (PAD_ID, PAD_ID));
                }
            }
            prop_assert_eq!(batch.num_valid_tokens as usize, valid);
        }
        let covered = if c.drop_last {
            // Only full sequences, in full batches.
            plan.num_batches() * rows * cols
        } else {
            n_tokens - 1
        };
        prop_assert!(covered < n_tokens);
        for (p, &k) in seen.iter().enumerate() {
            if c.drop_last && !c.shuffle {
                prop_assert_eq!(k, (p < covered) as u8, "position {}", p);
            } else if !c.drop_last {
                prop_assert_eq!(k, (p < covered) as u8, "position {}", p);
            } else {
                prop_assert!(k <= 1, "position {} taken {} times", p, k);
            }
        }
        prop_assert_eq!(seen.iter().map(|&k| k as usize).sum::<usize>(), covered);
    }

    /// Any sizes at all: a plan or a documented error, and counts that add
    /// up exactly (computed in u128, so a wrap would show).
    #[test]
    fn any_sizes_give_a_plan_or_a_documented_error(
        n_tokens in size(),
        batch_size in size(),
        seq_len in size(),
        drop_last in any::<bool>(),
        num_shards in 1usize..=MAX_SHARDS,
    ) {
        let c = BatchConfig { batch_size, seq_len, shuffle: true, seed: 1, drop_last };
        let plan = BatchPlan::new(n_tokens, &c);
        match (documented_error(n_tokens, &c), &plan) {
            (Some(why), Err(e)) => prop_assert!(e.to_string().contains(why), "{e} should say {why}"),
            (None, Ok(_)) => {}
            (why, _) => prop_assert!(false, "expected {:?}, got {:?}", why, plan.err()),
        }
        let Ok(plan) = plan else { return Ok(()) };
        let (seqs, batches) = (plan.num_sequences() as u128, plan.num_batches() as u128);
        prop_assert!(batches * batch_size as u128 >= seqs || drop_last);
        if drop_last {
            prop_assert_eq!(seqs, (n_tokens as u128 - 1) / seq_len as u128);
            prop_assert_eq!(batches, seqs / batch_size as u128);
        } else {
            prop_assert_eq!(seqs, (n_tokens as u128 - 1).div_ceil(seq_len as u128));
            prop_assert_eq!(batches, seqs.div_ceil(batch_size as u128));
        }
        // Shards: batch b belongs to shard b % num_shards.
        let total: u128 = (0..num_shards).map(|s| plan.shard_batches(s, num_shards) as u128).sum();
        prop_assert_eq!(total, batches);
        for s in [0, num_shards / 2, num_shards - 1] {
            let expected = if (s as u128) < batches {
                (batches - s as u128 - 1) / num_shards as u128 + 1
            } else {
                0
            };
            prop_assert_eq!(plan.shard_batches(s, num_shards) as u128, expected);
        }
    }

    /// Iterators over shards: a bad shard or shard count is an error; good
    /// ones are disjoint and together give every batch once, in every epoch.
    #[test]
    fn shards_of_an_iterator_split_the_batches_exactly(
        shard in prop_oneof![0usize..10, any::<usize>()],
        num_shards in prop_oneof![0usize..10, any::<usize>(), Just(MAX_SHARDS), Just(MAX_SHARDS + 1)],
        c in config_strategy(12),
        epoch in 0u64..3,
    ) {
        let corpus = corpus();
        let n = corpus.tokens().len();
        let result = BatchIter::new(corpus.clone(), &c, shard, num_shards);
        if num_shards == 0 || num_shards > MAX_SHARDS || shard >= num_shards
            || documented_error(n, &c).is_some()
        {
            prop_assert!(matches!(result, Err(Error::InvalidArgument(_))), "{:?}", result.err());
            return Ok(());
        }
        let plan = result.expect("valid").plan().clone();
        let mut taken = vec![0u8; plan.num_batches()];
        for s in 0..num_shards {
            let mut it = BatchIter::new(corpus.clone(), &c, s, num_shards).expect("valid");
            it.reset(epoch);
            let mut count = 0;
            for batch in it.by_ref() {
                prop_assert_eq!(batch.index % num_shards, s);
                taken[batch.index] += 1;
                count += 1;
            }
            prop_assert_eq!(count, it.batches_per_epoch());
        }
        prop_assert!(taken.iter().all(|&k| k == 1), "{:?}", taken);
    }
}

/// One small corpus (200 tokens) shared by the iterator cases.
fn corpus() -> Arc<Corpus> {
    static CORPUS: OnceLock<Arc<Corpus>> = OnceLock::new();
    CORPUS.get_or_init(|| support::corpus_of(200).1).clone()
}
