//! The loader's hashes. XXH3 (64-bit, from `twox-hash`, which picks AVX2
//! or SSE2 at run time) is the content hash of input files and every
//! checksum of the cache: about 3 times the speed of XXH64 on a block in
//! the core's cache (47 against 16 GB/s on this project's test machine),
//! and a warm load checksums the whole token section. XXH64, from the same
//! crate, stays for callers of [`xxh64`] (the cache used it before format
//! version 2).

/// The XXH64 hash of `data` with `seed`.
pub fn xxh64(data: &[u8], seed: u64) -> u64 {
    twox_hash::XxHash64::oneshot(seed, data)
}

/// The XXH3 (64-bit) hash of `data` with `seed`.
#[inline]
pub(crate) fn xxh3(data: &[u8], seed: u64) -> u64 {
    twox_hash::XxHash3_64::oneshot_with_seed(seed, data)
}

/// XXH3 over data given in pieces: the same value as [`xxh3`] of the
/// pieces joined, without holding them all (large files are hashed as they
/// stream past).
pub(crate) struct Xxh3(twox_hash::XxHash3_64);

impl Xxh3 {
    pub(crate) fn new(seed: u64) -> Self {
        Self(twox_hash::XxHash3_64::with_seed(seed))
    }

    pub(crate) fn update(&mut self, data: &[u8]) {
        std::hash::Hasher::write(&mut self.0, data);
    }

    pub(crate) fn finish(&self) -> u64 {
        std::hash::Hasher::finish(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_reference_implementation() {
        // Outputs of the reference XXH64 for a fixed pattern, at every code
        // path's boundary (tail bytes, 4-byte word, 8-byte words, stripes).
        let data: Vec<u8> = (0..1000u32).map(|i| ((i * 7 + 3) % 251) as u8).collect();
        let expected: [(usize, u64, u64); 15] = [
            (0, 0xef46db3751d8e999, 0xa2f5c44d0f46c872),
            (1, 0x1f25c8d0bc1f4bb6, 0xb01b9f0875588480),
            (3, 0x31d2363f52e564c9, 0xc9d439ce52b42298),
            (4, 0x9bb64b7d66ee9fda, 0x069cf93b8ff949e9),
            (7, 0x9a7b149959ce60d8, 0x04e9c22f739664c0),
            (8, 0xdab99d95c6f90092, 0x6ae8e248ea2d93cb),
            (9, 0x170bb6bf975b4c02, 0x9cfc813630d17752),
            (31, 0xa2aa5f33cc4a6119, 0x4d902218e7bd702f),
            (32, 0x23c3c17ef790fd97, 0xcebc12f23c981336),
            (33, 0x50a7cfc7ba588784, 0x526e5e3d56602093),
            (63, 0xf1438f15b9ed16e9, 0x5762c40958c3a3b3),
            (64, 0x2cd990a1beed6894, 0x318f9c3626ecbff8),
            (100, 0x778e26df8290f456, 0xb44b14b5d6751db6),
            (1000, 0x021f7a7424085ea4, 0xca3119f5c8e641e1),
            (0, 0xef46db3751d8e999, 0xa2f5c44d0f46c872),
        ];
        for (n, plain, seeded) in expected {
            assert_eq!(xxh64(&data[..n], 0), plain, "length {n}");
            assert_eq!(
                xxh64(&data[..n], 0x1234_5678_90ab_cdef),
                seeded,
                "length {n}, seeded"
            );
        }
        assert_eq!(xxh64(b"abc", 0), 0x44bc2cf5ad770999);
    }

    #[test]
    fn xxh3_matches_the_reference_implementation() {
        // `xxhsum -H3` (xxHash 0.8.1) of the same pattern's prefixes, at
        // every code path's boundary (1-3, 4-8, 9-16, 17-128, 129-240
        // bytes, then stripes, 1 KiB blocks and a cache block of 64 KiB).
        let data: Vec<u8> = (0..70_000u32).map(|i| ((i * 7 + 3) % 251) as u8).collect();
        let expected: [(usize, u64); 17] = [
            (0, 0x2d06800538d394c2),
            (1, 0x13e608bc156defed),
            (3, 0xa9088dda485b481c),
            (4, 0x6d9253b16c8b1ed3),
            (8, 0x60539db630471163),
            (9, 0xfeff668361d723a8),
            (16, 0xb8c859b0f030b585),
            (17, 0x714a04408e79b80f),
            (128, 0x4634ae6a253a60e4),
            (129, 0xc095b9b1b087722d),
            (240, 0x887af00281f75d38),
            (241, 0x82b1de299f6e411e),
            (1000, 0xd45f5a87c5c20462),
            (1024, 0xf75e768c7cdd54b2),
            (1025, 0x667a5eabe344e5df),
            (65536, 0xa0f09c7440c8010e),
            (70000, 0xd24f3f0661e64ae9),
        ];
        for (n, want) in expected {
            assert_eq!(xxh3(&data[..n], 0), want, "length {n}");
        }
        assert_eq!(xxh3(b"abc", 0), 0x78af5f94892f3950);
        // The seed (a cache block's index) changes the hash at every size.
        for (n, want) in expected {
            assert_ne!(xxh3(&data[..n], 7), want, "length {n}, seeded");
        }
    }

    #[test]
    fn the_streaming_hash_equals_the_one_shot_hash_for_every_split() {
        let data: Vec<u8> = (0..1300u32).map(|i| (i * 31 + 7) as u8).collect();
        for n in [0, 1, 31, 32, 33, 64, 100, 240, 241, 300, 1025, 1300] {
            let whole = xxh3(&data[..n], 99);
            for a in (0..=n).step_by(7) {
                for b in (a..=n.min(a + 300)).step_by(11) {
                    let mut h = Xxh3::new(99);
                    h.update(&data[..a]);
                    h.update(&data[a..b]);
                    h.update(&data[b..n]);
                    assert_eq!(h.finish(), whole, "n {n} split {a} {b}");
                }
            }
        }
    }
}
