//! [`StateHash`]: a 64-bit hash of the whole world state, word by word,
//! to compare runs (any thread count, any partitioning) bit for bit.

/// Incremental 64-bit hash over words (a multiply-rotate mix per word and a
/// final avalanche). Floats are hashed by their bits, so -0.0 and 0.0, or
/// two NaN payloads, differ: "equal" means "the same bits".
#[derive(Debug, Clone)]
pub struct StateHash {
    h: u64,
    words: u64,
}

impl Default for StateHash {
    fn default() -> Self {
        Self::new()
    }
}

const K: u64 = 0x9E37_79B9_7F4A_7C15;

impl StateHash {
    /// An empty hash.
    pub fn new() -> Self {
        Self {
            h: 0x243F_6A88_85A3_08D3,
            words: 0,
        }
    }

    /// Adds one word.
    #[inline]
    pub fn u64(&mut self, w: u64) {
        self.h = (self.h.rotate_left(23) ^ w).wrapping_mul(K);
        self.words += 1;
    }

    /// Adds one float's bits.
    #[inline]
    pub fn f32(&mut self, x: f32) {
        self.u64(u64::from(x.to_bits()));
    }

    /// Adds a slice of floats, two per word, and its length.
    pub fn f32s(&mut self, xs: &[f32]) {
        self.u64(xs.len() as u64);
        let pairs = xs.chunks_exact(2);
        let rest = pairs.remainder();
        for p in pairs {
            self.u64(u64::from(p[0].to_bits()) | (u64::from(p[1].to_bits()) << 32));
        }
        for x in rest {
            self.f32(*x);
        }
    }

    /// The hash so far.
    pub fn finish(&self) -> u64 {
        let mut z = self.h ^ self.words.wrapping_mul(K);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_changed_bit_changes_the_hash() {
        let xs: Vec<f32> = (0..1001).map(|i| i as f32 * 0.5).collect();
        let mut a = StateHash::new();
        a.f32s(&xs);
        let mut ys = xs.clone();
        ys[1000] = f32::from_bits(ys[1000].to_bits() ^ 1);
        let mut b = StateHash::new();
        b.f32s(&ys);
        let mut c = StateHash::new();
        c.f32s(&xs);
        assert_ne!(a.finish(), b.finish());
        assert_eq!(a.finish(), c.finish());
    }
}
