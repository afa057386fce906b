//! Loom model checks of the lock-free parts: lazy per-thread slot
//! allocation, the seqlock slot, per-thread statistics merged on read, and
//! sharded counters. Run with `RUSTFLAGS="--cfg loom" cargo test --test loom`.
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use sync_stats::{Mergeable, PerThreadStats, SampleStats, SeqSlot, ShardedCounter, ThreadSlots};

/// `loom::model` with a preemption bound of 3 unless `LOOM_MAX_PREEMPTIONS`
/// sets one, so that the models finish in seconds however they are run.
fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound.get_or_insert(3);
    builder.check(f);
}

#[test]
fn racing_threads_allocate_one_bucket_and_see_each_others_elements() {
    model(|| {
        // Indices 1 and 2 share bucket 1: both threads race to allocate it.
        let slots = Arc::new(ThreadSlots::<SeqSlot>::new());
        let handles: Vec<_> = [1usize, 2]
            .into_iter()
            .map(|index| {
                let slots = slots.clone();
                thread::spawn(move || {
                    slots.get_or_create(index).write(&[index as u64]);
                    std::ptr::from_ref(slots.get_or_create(index)) as usize
                })
            })
            .collect();
        let addresses: Vec<usize> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        for (index, address) in [1usize, 2].into_iter().zip(addresses) {
            let slot = slots.get(index).expect("bucket published");
            assert_eq!(
                std::ptr::from_ref(slot) as usize,
                address,
                "the element never moves"
            );
            let mut w = [0u64];
            assert!(slot.read(&mut w));
            assert_eq!(
                w[0], index as u64,
                "a write through the losing thread's view is not lost"
            );
        }
    });
}

// Loom's partial-order reduction remembers only the last access to each
// atomic, so a writer whose first access to the sequence is a load would hide
// its conflict with a reader that ran before it. In these models the writer
// runs on the main thread, which loom schedules first, and readers are
// spawned: every reader load then meets the writer's stores and loom
// explores the reader at each point of the write (checked by mutation: drop
// the odd store in `SeqSlot::write` and the first model fails).

#[test]
fn a_seqlock_reader_never_sees_a_torn_value() {
    model(|| {
        let slot = Arc::new(SeqSlot::default());
        let reader = {
            let slot = slot.clone();
            thread::spawn(move || {
                let mut w = [0u64; 2];
                if slot.read(&mut w) {
                    assert_eq!(w[0], w[1], "torn read {w:?}");
                    assert!(w[0] == 1 || w[0] == 2);
                }
            })
        };
        slot.write(&[1, 1]);
        slot.write(&[2, 2]);
        reader.join().unwrap();
        let mut w = [0u64; 2];
        assert!(slot.read(&mut w));
        assert_eq!(w, [2, 2]);
    });
}

#[test]
fn per_thread_stats_snapshots_merge_whole_slots() {
    model(|| {
        let stats = Arc::new(PerThreadStats::<SampleStats>::new());
        // Slot 1 is written before the reader starts; slot 0 (another
        // bucket, allocated during the run) while it reads.
        stats.update_at(1, |s| s.record(2.0));
        let reader = {
            let stats = stats.clone();
            thread::spawn(move || {
                // Slot i only ever holds samples of value 1 + i, so a whole
                // slot has sum == count * (1 + i); a torn one does not.
                stats.for_each_thread(|i, s| {
                    assert_eq!(
                        s.sum,
                        s.count as f64 * (1.0 + i as f64),
                        "torn slot {i}: {s:?}"
                    );
                });
                let during = stats.snapshot();
                assert!((1..=3).contains(&during.count), "{during:?}");
            })
        };
        stats.update_at(0, |s| s.record(1.0));
        stats.update_at(0, |s| s.record(1.0));
        reader.join().unwrap();
        let total = stats.snapshot();
        assert_eq!(
            (total.count, total.sum, total.min, total.max),
            (3, 4.0, 1.0, 2.0)
        );
    });
}

#[test]
fn per_thread_stats_from_two_threads_end_exact() {
    model(|| {
        let stats = Arc::new(PerThreadStats::<SampleStats>::new());
        let handles: Vec<_> = [0usize, 1]
            .into_iter()
            .map(|index| {
                let stats = stats.clone();
                thread::spawn(move || stats.update_at(index, |s| s.record(1.0 + index as f64)))
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let total = stats.snapshot();
        assert_eq!(
            (total.count, total.sum, total.min, total.max),
            (2, 3.0, 1.0, 2.0)
        );
        let mut words = [0u64; 4];
        total.to_words(&mut words);
        assert_eq!(SampleStats::from_words(&words), total);
    });
}

#[test]
fn sharded_counter_sums_every_increment() {
    model(|| {
        let counter = Arc::new(ShardedCounter::with_shards(2));
        // Threads 0 and 2 share shard 0: their adds must both land.
        let handles: Vec<_> = [0usize, 2, 1]
            .into_iter()
            .map(|index| {
                let counter = counter.clone();
                thread::spawn(move || counter.add_at(index, 1 + index as u64))
            })
            .collect();
        let during = counter.sum();
        assert!(during <= 6);
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(counter.sum(), 1 + 3 + 2);
    });
}
