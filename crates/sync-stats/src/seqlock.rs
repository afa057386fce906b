//! [`SeqSlot`]: a few words written by one thread and read consistently by
//! any thread, without locks (a sequence lock).
//!
//! The writer makes the sequence odd, stores the words, and makes it even
//! again; a reader that saw the same even sequence before and after reading
//! the words has a consistent copy, otherwise it retries. Every word is an
//! atomic, so a torn read is a retry, never a data race (the fences follow
//! Boehm, "Can seqlocks get along with programming language memory models?").

use crate::sync::{AtomicU64, Ordering, fence, spin_hint};

/// Words per slot: the largest [`crate::Mergeable::WORDS`].
pub const MAX_WORDS: usize = 8;

/// A seqlock-protected group of up to [`MAX_WORDS`] words with a single writer.
#[derive(Default)]
pub struct SeqSlot {
    /// Even when stable, odd while a write is in progress; 0 = never written.
    seq: AtomicU64,
    words: [AtomicU64; MAX_WORDS],
}

impl SeqSlot {
    /// Stores `words`. Only one thread may write a given slot (its owner).
    pub fn write(&self, words: &[u64]) {
        debug_assert!(words.len() <= MAX_WORDS);
        let seq = self.seq.load(Ordering::Relaxed);
        self.seq.store(seq.wrapping_add(1), Ordering::Relaxed);
        // Orders the odd sequence before the word stores, for readers.
        fence(Ordering::Release);
        for (slot, &word) in self.words.iter().zip(words) {
            slot.store(word, Ordering::Relaxed);
        }
        self.seq.store(seq.wrapping_add(2), Ordering::Release);
    }

    /// The owner's read of its own slot: no retry needed, since nobody else
    /// writes it. False if the slot was never written.
    pub fn read_own(&self, out: &mut [u64]) -> bool {
        if self.seq.load(Ordering::Relaxed) == 0 {
            return false;
        }
        for (word, slot) in out.iter_mut().zip(&self.words) {
            *word = slot.load(Ordering::Relaxed);
        }
        true
    }

    /// A consistent copy of the words, from any thread. False if the slot
    /// was never written.
    pub fn read(&self, out: &mut [u64]) -> bool {
        let mut round = 0;
        loop {
            let before = self.seq.load(Ordering::Acquire);
            if before == 0 {
                return false;
            }
            if before & 1 == 0 {
                for (word, slot) in out.iter_mut().zip(&self.words) {
                    *word = slot.load(Ordering::Relaxed);
                }
                // Orders the word loads before the second sequence load.
                fence(Ordering::Acquire);
                if self.seq.load(Ordering::Relaxed) == before {
                    return true;
                }
            }
            spin_hint(round);
            round = round.saturating_add(1);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn never_written_slot_reads_as_absent() {
        let slot = SeqSlot::default();
        let mut out = [7u64; 2];
        assert!(!slot.read(&mut out));
        assert!(!slot.read_own(&mut out));
    }

    #[test]
    fn concurrent_reader_never_sees_a_torn_value() {
        let slot = SeqSlot::default();
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                for k in 1..200_000u64 {
                    slot.write(&[k, k.wrapping_mul(3), !k]);
                }
                done.store(true, std::sync::atomic::Ordering::Release);
            });
            let mut reads = 0u64;
            while !done.load(std::sync::atomic::Ordering::Acquire) || reads == 0 {
                let mut w = [0u64; 3];
                if slot.read(&mut w) {
                    assert_eq!(w[1], w[0].wrapping_mul(3), "torn read {w:?}");
                    assert_eq!(w[2], !w[0], "torn read {w:?}");
                    reads += 1;
                }
            }
        });
    }
}
