//! Splitting text into tokens and interning them in a per-worker table.
//!
//! Each worker interns the words it meets in its own [`WordTable`] under
//! *local* ids (first come, first numbered) and counts them. After all files
//! are done the tables are merged, the global vocabulary is ranked (count
//! descending, then byte string ascending: a total order, so the result does
//! not depend on how files were spread over workers), and every local id is
//! mapped to its global id in one pass. Each word is hashed once.
//!
//! Speed: the scan classifies 64 bytes at a time into bit masks of token
//! starts and ends, tokens of up to 12 bytes are keyed by their bytes (no
//! string comparison), a lookup compares the three keys of one cache line
//! without branches, and lookups go in batches whose buckets are
//! prefetched, so cache misses on rare words overlap.

const SPACE: u8 = 0;
const WORD: u8 = 1;
const PUNCT: u8 = 2;

/// The class of every byte: ASCII letters, digits, `_` and all non-ASCII
/// bytes (UTF-8 sequences, so words in any script stay whole) form words;
/// ASCII white space separates; every other byte is a token of its own.
const CLASS: [u8; 256] = {
    let mut class = [PUNCT; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80 {
            class[b] = WORD;
        } else if c == b' ' || c == b'\t' || c == b'\n' || c == b'\r' || c == 0x0b || c == 0x0c {
            class[b] = SPACE;
        }
        b += 1;
    }
    class
};

/// A token found by the scan, waiting for its table lookup (24 bytes).
#[derive(Clone, Copy, Default)]
struct Pending {
    /// The key (`a`, `b`) of a token of at most [`SHORT`] bytes.
    a: u64,
    b: u64,
    start: u32,
    /// Its length; a longer token is looked up by hash and bytes.
    len: u32,
}

/// `KEEP[l]`: the masks of the low and high 8 bytes of a 16-byte load that
/// keep its first `l` bytes.
const KEEP: [[u64; 2]; 16] = {
    let mut keep = [[0; 2]; 16];
    let mut l = 1;
    while l < 16 {
        keep[l] = if l < 8 {
            [(1 << (8 * l)) - 1, 0]
        } else {
            [u64::MAX, (1 << (8 * (l - 8))) - 1]
        };
        l += 1;
    }
    keep
};

impl Pending {
    /// The token `data[start..start + len]`, with 16 bytes of data from
    /// `start` on.
    #[inline(always)]
    fn new(data: &[u8], start: usize, len: usize) -> Self {
        // The key: two 8-byte loads masked to the token's length (for a
        // token longer than `SHORT` the key is unused: any value will do).
        let bytes: &[u8; 16] = data[start..start + 16].try_into().expect("16 bytes");
        let keep = KEEP[len & 15];
        let (lo, hi) = bytes.split_at(8);
        Pending {
            a: u64::from_le_bytes(lo.try_into().expect("8 bytes")) & keep[0],
            b: u64::from_le_bytes(hi.try_into().expect("8 bytes")) & keep[1],
            start: start as u32,
            len: len as u32,
        }
    }

    #[inline(always)]
    fn word<'a>(&self, data: &'a [u8]) -> &'a [u8] {
        &data[self.start as usize..self.start as usize + self.len as usize]
    }
}

/// Local ids are written as 16-bit units (half the memory of 32-bit ids,
/// and memory written for the first time costs a page fault per 4 KiB):
/// an id below `ESCAPE` is one unit; a larger one is `ESCAPE` and then its
/// low and high 16 bits. A worker numbers its tokens in the order it meets
/// them, so the frequent ones, met first, take one unit.
pub(crate) const ESCAPE: u16 = u16::MAX;

/// Appends `id` to a stream of units.
#[inline(always)]
fn push_id(out: &mut Vec<u16>, id: u32) {
    if id < ESCAPE as u32 {
        out.push(id as u16);
    } else {
        out.extend_from_slice(&[ESCAPE, id as u16, (id >> 16) as u16]);
    }
}

/// The ids of a stream of units (see [`ESCAPE`]).
pub(crate) fn decode_ids(units: &[u16]) -> impl Iterator<Item = u32> + '_ {
    let mut it = units.iter();
    std::iter::from_fn(move || {
        let &u = it.next()?;
        if u != ESCAPE {
            return Some(u as u32);
        }
        let lo = *it.next().expect("an escaped id has two more units") as u32;
        let hi = *it.next().expect("an escaped id has two more units") as u32;
        Some(lo | hi << 16)
    })
}

/// At most this many units per input byte (one token per byte, three
/// units per id): reserving that keeps every push from reallocating.
pub(crate) const MAX_UNITS_PER_BYTE: usize = 3;

/// Tokens looked up together: the scan finds this many and prefetches their
/// table slots, so their cache misses overlap instead of queueing.
const BATCH: usize = 32;

/// Splits `data` (shorter than 4 GiB: the loader gives at most a chunk)
/// into words and punctuation, appends their local ids to `out` (see
/// [`ESCAPE`]) and returns how many tokens it found.
///
/// The scan classifies 64 bytes at a time into bit masks (SSE2 on x86-64)
/// of token starts and token ends and walks both with bit operations: no
/// branch per byte, per token kind or per token length. A block ends before
/// a word that runs past it, so every token lies inside one block.
pub(crate) fn tokenize_words(data: &[u8], table: &mut WordTable, out: &mut Vec<u16>) -> usize {
    let n = data.len();
    let mut tokens = 0;
    assert!(u32::try_from(n).is_ok(), "tokenise at most 4 GiB at once");
    let mut pending = [Pending::default(); BATCH];
    let mut k = 0;
    // Each block starts at a token's start or after a byte that ends one,
    // so its first byte never continues a word of the block before.
    let mut block = 0;
    // Blocks whose tokens can all be keyed with 16-byte loads.
    while block + 64 + 16 <= n {
        let (words, spaces) = classify64(data[block..block + 64].try_into().expect("64 bytes"));
        let punct = !(words | spaces);
        let next_word = is_word_byte(data[block + 64]) as u64;
        let mut starts = (words & !(words << 1)) | punct;
        let mut ends = (words & !((words >> 1) | (next_word << 63))) | punct;
        // A word running on past the block has a start and no end here:
        // the next block begins at its start (the highest start).
        let cross = words >> 63 & next_word;
        let last = 63 - (starts | 1).leading_zeros() as usize;
        starts &= !(cross << last);
        let step = if cross != 0 { last } else { 64 };
        while starts != 0 {
            let t = starts.trailing_zeros() as usize;
            let e = ends.trailing_zeros() as usize;
            starts &= starts - 1;
            ends &= ends - 1;
            let p = Pending::new(data, block + t, e + 1 - t);
            table.prefetch(&p);
            pending[k % BATCH] = p; // k < BATCH: the modulo only drops a bounds check
            k += 1;
            if k == BATCH {
                table.resolve_all(&pending, data, out);
                tokens += BATCH;
                k = 0;
            }
        }
        if step == 0 {
            // A word of more than 64 bytes starts the block.
            table.resolve_all(&pending[..k], data, out);
            tokens += k;
            k = 0;
            let len = data[block..]
                .iter()
                .position(|&b| !is_word_byte(b))
                .unwrap_or(n - block);
            push_id(out, table.add(&data[block..block + len], 1));
            tokens += 1;
            block += len;
        } else {
            block += step;
        }
    }
    table.resolve_all(&pending[..k], data, out);
    tokens += k;
    // The last bytes, one at a time.
    let mut i = block;
    while i < n {
        let start = i;
        i += 1;
        match CLASS[data[start] as usize] {
            SPACE => continue,
            WORD => {
                while i < n && CLASS[data[i] as usize] == WORD {
                    i += 1;
                }
            }
            _ => {}
        }
        push_id(out, table.add(&data[start..i], 1));
        tokens += 1;
    }
    tokens
}

/// The word-byte and space-byte bit masks of 64 bytes (bit i = byte i).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn classify64(block: &[u8; 64]) -> (u64, u64) {
    use core::arch::x86_64::*;
    let mut words = 0u64;
    let mut spaces = 0u64;
    for part in 0..4 {
        // SAFETY: SSE2 is part of the x86-64 baseline, so these intrinsics
        // are always available; the unaligned load reads 16 bytes inside
        // `block`.
        let (w, s) = unsafe {
            let v = _mm_loadu_si128(block.as_ptr().add(16 * part).cast());
            // Unsigned `lo <= v <= hi` with signed compares: shift the range
            // to start at -128.
            let in_range = |v: __m128i, lo: u8, hi: u8| {
                let shifted = _mm_add_epi8(v, _mm_set1_epi8((0x80u8.wrapping_sub(lo)) as i8));
                _mm_cmplt_epi8(
                    shifted,
                    _mm_set1_epi8((0x80u8.wrapping_add(hi - lo + 1)) as i8),
                )
            };
            let letter = in_range(_mm_or_si128(v, _mm_set1_epi8(0x20)), b'a', b'z');
            let digit = in_range(v, b'0', b'9');
            let underscore = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'_' as i8));
            let ascii_word = _mm_or_si128(_mm_or_si128(letter, digit), underscore);
            let blank = _mm_cmpeq_epi8(v, _mm_set1_epi8(b' ' as i8));
            let space = _mm_or_si128(blank, in_range(v, b'\t', b'\r'));
            // Bytes >= 0x80 are word bytes: their sign bits are the mask.
            let w = (_mm_movemask_epi8(ascii_word) | _mm_movemask_epi8(v)) as u64;
            (w, _mm_movemask_epi8(space) as u64)
        };
        words |= w << (16 * part);
        spaces |= s << (16 * part);
    }
    (words, spaces)
}

#[cfg(not(target_arch = "x86_64"))]
use classify64_portable as classify64;

/// The word-byte and space-byte bit masks of 64 bytes (bit i = byte i),
/// one byte at a time (built for tests on x86-64, to check it there too).
#[cfg(any(test, not(target_arch = "x86_64")))]
#[inline(always)]
fn classify64_portable(block: &[u8; 64]) -> (u64, u64) {
    let mut words = 0u64;
    let mut spaces = 0u64;
    for (i, &b) in block.iter().enumerate() {
        let class = CLASS[b as usize];
        words |= ((class == WORD) as u64) << i;
        spaces |= ((class == SPACE) as u64) << i;
    }
    (words, spaces)
}

/// A hint to load the cache line at `p` (never faults).
#[inline(always)]
fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint to the cache; it never faults and
    // has no effect on memory, whatever the address.
    unsafe {
        core::arch::x86_64::_mm_prefetch(p.cast::<i8>(), core::arch::x86_64::_MM_HINT_T0)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Appends one local id per byte (the byte value: one unit) and counts them.
pub(crate) fn tokenize_bytes(data: &[u8], counts: &mut [u64; 256], out: &mut Vec<u16>) -> usize {
    out.extend(data.iter().map(|&b| b as u16));
    for &b in data {
        counts[b as usize] += 1;
    }
    data.len()
}

/// True for the bytes that make up words: a token never ends between two
/// of them, and always ends after any other byte.
pub(crate) fn is_word_byte(b: u8) -> bool {
    CLASS[b as usize] == WORD
}

/// Tokens of at most this many bytes are keyed by their bytes; longer
/// ones (under 1% of a text's tokens) by a hash and their bytes.
const SHORT: usize = 12;

/// Three keys of tokens of at most [`SHORT`] bytes, their ids and counts:
/// one cache line, so a lookup loads one line and compares three keys
/// without a branch. A key is the token's bytes, zero-padded to 12 (`lo`:
/// the first 8, `hi`: the next 4): text never contains NUL, so keys are
/// unique and a used key's `lo` is never 0 (the empty mark). Keys fill a
/// bucket in order; a full bucket overflows into the next.
#[derive(Clone, Copy, Default)]
#[repr(C, align(64))]
struct Bucket {
    lo: [u64; 3],
    hi: [u32; 3],
    ids: [u32; 3],
    /// Occurrences not yet added to `counts`, kept on the line the lookup
    /// loaded anyway.
    hits: [u32; 3],
}

impl Bucket {
    /// Which of the three keys equal (`a`, `b`) (at most one), as bits,
    /// without branches.
    #[inline(always)]
    fn matches(&self, a: u64, b: u64) -> u32 {
        let b = b as u32;
        (self.lo[0] == a && self.hi[0] == b) as u32
            | ((self.lo[1] == a && self.hi[1] == b) as u32) << 1
            | ((self.lo[2] == a && self.hi[2] == b) as u32) << 2
    }

    /// The number of keys in use (they fill in order).
    fn used(&self) -> usize {
        self.lo.iter().filter(|&&a| a != 0).count()
    }
}

/// The table grows when more than this fraction of its keys are used.
const MAX_LOAD: (usize, usize) = (3, 4);

/// A hash table from tokens to dense local ids, with occurrence counts.
pub(crate) struct WordTable {
    buckets: Vec<Bucket>,
    used: usize,
    /// Tokens longer than `SHORT`: full hash and entry id + 1 (0 = empty).
    long: Vec<(u64, u32)>,
    long_used: usize,
    /// Bytes of every entry, back to back.
    arena: Vec<u8>,
    /// Start of entry `id` in the arena (one more than entries, last = end).
    starts: Vec<usize>,
    /// Occurrences by id: ids are numbered as met, so the frequent ones
    /// share a few cache lines.
    counts: Vec<u64>,
}

const K: u64 = 0x9E37_79B9_7F4A_7C15;

#[inline(always)]
fn bucket_of(a: u64, b: u64, mask: usize) -> usize {
    ((a ^ b.rotate_left(29)).wrapping_mul(K) >> 32) as usize & mask
}

#[inline(always)]
fn long_hash(word: &[u8]) -> u64 {
    let mut h = (word.len() as u64).wrapping_mul(K);
    let mut chunks = word.chunks_exact(8);
    for c in &mut chunks {
        h = (h ^ u64::from_le_bytes(c.try_into().expect("8 bytes")))
            .wrapping_mul(K)
            .rotate_left(29);
    }
    let mut tail = [0u8; 8];
    tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
    h = (h ^ u64::from_le_bytes(tail)).wrapping_mul(K);
    h ^ (h >> 32)
}

/// The key of a token of at most [`SHORT`] bytes.
fn key(word: &[u8]) -> (u64, u64) {
    let mut b = [0u8; 16];
    b[..word.len()].copy_from_slice(word);
    (
        u64::from_le_bytes(b[..8].try_into().expect("8")),
        u64::from_le_bytes(b[8..].try_into().expect("8")),
    )
}

impl WordTable {
    pub(crate) fn new() -> Self {
        Self {
            buckets: vec![Bucket::default(); 1 << 10],
            used: 0,
            long: vec![(0, 0); 1 << 8],
            long_used: 0,
            arena: Vec::new(),
            starts: vec![0],
            counts: Vec::new(),
        }
    }

    /// Number of distinct tokens.
    pub(crate) fn len(&self) -> usize {
        self.counts.len()
    }

    pub(crate) fn word(&self, id: u32) -> &[u8] {
        &self.arena[self.starts[id as usize]..self.starts[id as usize + 1]]
    }

    /// The occurrences of `id` (after [`flush_hits`](Self::flush_hits)).
    pub(crate) fn count(&self, id: u32) -> u64 {
        self.counts[id as usize]
    }

    fn push(&mut self, word: &[u8], count: u64) -> u32 {
        let id = u32::try_from(self.counts.len()).expect("fewer than 2^32 distinct tokens");
        self.arena.extend_from_slice(word);
        self.starts.push(self.arena.len());
        self.counts.push(count);
        id
    }

    /// Starts loading the bucket a lookup of `p` reads first.
    #[inline(always)]
    fn prefetch(&self, p: &Pending) {
        prefetch(
            self.buckets
                .as_ptr()
                .wrapping_add(bucket_of(p.a, p.b, self.buckets.len() - 1)),
        );
    }

    /// Looks up (or inserts) `pending` and appends their ids.
    #[inline(always)]
    fn resolve_all(&mut self, pending: &[Pending], data: &[u8], out: &mut Vec<u16>) {
        // Units go to a local array first: one capacity check per batch.
        let mut units = [0u16; 3 * BATCH];
        let mut n = 0;
        for p in pending {
            let id = if p.len as usize > SHORT {
                self.long_id(p.word(data), 1)
            } else {
                self.short_id(p.a, p.b, || p.word(data), 1)
            };
            if id < ESCAPE as u32 {
                units[n] = id as u16;
                n += 1;
            } else {
                units[n..n + 3].copy_from_slice(&[ESCAPE, id as u16, (id >> 16) as u16]);
                n += 3;
            }
        }
        out.extend_from_slice(&units[..n]);
    }

    /// Adds the occurrences counted in the buckets to `counts`.
    pub(crate) fn flush_hits(&mut self) {
        for bucket in self.buckets.iter_mut() {
            for j in 0..3 {
                if bucket.hits[j] > 0 {
                    self.counts[bucket.ids[j] as usize] += bucket.hits[j] as u64;
                    bucket.hits[j] = 0;
                }
            }
        }
    }

    /// Adds `count` occurrences of `word` (not empty, no NUL) and returns
    /// its id.
    pub(crate) fn add(&mut self, word: &[u8], count: u64) -> u32 {
        if word.len() <= SHORT {
            let (a, b) = key(word);
            self.short_id(a, b, || word, count)
        } else {
            self.long_id(word, count)
        }
    }

    /// The id of `word` if it is in the table.
    #[cfg(test)]
    pub(crate) fn find(&self, word: &[u8]) -> Option<u32> {
        if word.is_empty() {
            return None;
        }
        if word.len() <= SHORT {
            let (a, b) = key(word);
            let mask = self.buckets.len() - 1;
            let mut i = bucket_of(a, b, mask);
            loop {
                let bucket = &self.buckets[i];
                let hit = bucket.matches(a, b);
                if hit != 0 {
                    return Some(bucket.ids[hit.trailing_zeros() as usize]);
                }
                if bucket.lo[2] == 0 {
                    return None;
                }
                i = (i + 1) & mask;
            }
        }
        let hash = long_hash(word);
        let mask = self.long.len() - 1;
        let mut i = hash as usize & mask;
        while self.long[i].1 != 0 {
            let (h, slot) = self.long[i];
            if h == hash && self.word(slot - 1) == word {
                return Some(slot - 1);
            }
            i = (i + 1) & mask;
        }
        None
    }

    /// The id of the token keyed (`a`, `b`), counted `count` more times;
    /// `word` gives its bytes, needed only if it is new.
    #[inline(always)]
    fn short_id<'w>(&mut self, a: u64, b: u64, word: impl FnOnce() -> &'w [u8], count: u64) -> u32 {
        let mask = self.buckets.len() - 1;
        let mut i = bucket_of(a, b, mask);
        loop {
            let bucket = &mut self.buckets[i];
            let hit = bucket.matches(a, b);
            if hit != 0 {
                let j = (hit.trailing_zeros() as usize).min(2);
                let id = bucket.ids[j];
                if count == 1 && bucket.hits[j] < u32::MAX {
                    bucket.hits[j] += 1;
                } else {
                    self.counts[id as usize] += count;
                }
                return id;
            }
            if bucket.lo[2] == 0 {
                break;
            }
            i = (i + 1) & mask;
        }
        // New: the bucket's first free key.
        let id = self.push(word(), count);
        let bucket = &mut self.buckets[i];
        let free = bucket.used();
        (bucket.lo[free], bucket.hi[free], bucket.ids[free]) = (a, b as u32, id);
        self.used += 1;
        if self.used * MAX_LOAD.1 > 3 * self.buckets.len() * MAX_LOAD.0 {
            let doubled = vec![Bucket::default(); self.buckets.len() * 2];
            let old = std::mem::replace(&mut self.buckets, doubled);
            let mask = self.buckets.len() - 1;
            for bucket in &old {
                for j in 0..bucket.used() {
                    let mut i = bucket_of(bucket.lo[j], bucket.hi[j] as u64, mask);
                    while self.buckets[i].lo[2] != 0 {
                        i = (i + 1) & mask;
                    }
                    let to = &mut self.buckets[i];
                    let free = to.used();
                    to.lo[free] = bucket.lo[j];
                    to.hi[free] = bucket.hi[j];
                    to.ids[free] = bucket.ids[j];
                    to.hits[free] = bucket.hits[j];
                }
            }
        }
        id
    }

    fn long_id(&mut self, word: &[u8], count: u64) -> u32 {
        let hash = long_hash(word);
        let mask = self.long.len() - 1;
        let mut i = hash as usize & mask;
        loop {
            let (h, slot) = self.long[i];
            if slot == 0 {
                break;
            }
            if h == hash && self.word(slot - 1) == word {
                self.counts[slot as usize - 1] += count;
                return slot - 1;
            }
            i = (i + 1) & mask;
        }
        let id = self.push(word, count);
        self.long[i] = (hash, id + 1);
        self.long_used += 1;
        if self.long_used * 2 > self.long.len() {
            let doubled = vec![(0, 0); self.long.len() * 2];
            let old = std::mem::replace(&mut self.long, doubled);
            let mask = self.long.len() - 1;
            for (h, slot) in old.into_iter().filter(|s| s.1 != 0) {
                let mut i = h as usize & mask;
                while self.long[i].1 != 0 {
                    i = (i + 1) & mask;
                }
                self.long[i] = (h, slot);
            }
        }
        id
    }
}

/// A vocabulary candidate: its bytes, its count and the caller's index.
pub(crate) type Candidate<'a> = (&'a [u8], u64, u32);

/// The ranking rule of the vocabulary: more frequent first, then the smaller
/// byte string (a total order on distinct strings). Returns the first `keep`
/// candidates in that order.
pub(crate) fn rank(mut items: Vec<Candidate<'_>>, keep: usize) -> Vec<Candidate<'_>> {
    let order = |a: &Candidate<'_>, b: &Candidate<'_>| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0));
    if items.len() > keep {
        if keep == 0 {
            return Vec::new();
        }
        items.select_nth_unstable_by(keep - 1, order);
        items.truncate(keep);
    }
    items.sort_unstable_by(order);
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        let mut table = WordTable::new();
        let mut units = Vec::new();
        let n = tokenize_words(text.as_bytes(), &mut table, &mut units);
        let out: Vec<u32> = decode_ids(&units).collect();
        assert_eq!(out.len(), n);
        out.iter()
            .map(|&id| String::from_utf8(table.word(id).to_vec()).unwrap())
            .collect()
    }

    #[test]
    fn words_punctuation_and_unicode_split_as_documented() {
        assert_eq!(
            words("Hello, world!  It's 2024.\n"),
            ["Hello", ",", "world", "!", "It", "'", "s", "2024", "."]
        );
        assert_eq!(words("naïve café_au_lait"), ["naïve", "café_au_lait"]);
        assert_eq!(words(" \t\r\n "), Vec::<String>::new());
        assert_eq!(
            words("a-very-long-compound-word"),
            ["a", "-", "very", "-", "long", "-", "compound", "-", "word"]
        );
    }

    #[test]
    fn word_lengths_on_every_path_split_like_the_byte_rule() {
        // Words of every length from 1 to 40, at every distance from the end
        // of the data, split exactly at the non-word byte.
        for len in 1..40 {
            for pad in 0..20 {
                let word: String = (0..len).map(|k| (b'a' + (k % 26) as u8) as char).collect();
                let text = format!("{word}.{word} {word}{}", " ".repeat(pad));
                let got = words(&text);
                assert_eq!(
                    got,
                    [word.as_str(), ".", word.as_str(), word.as_str()],
                    "len {len} pad {pad}"
                );
            }
        }
        // The 64-at-once classifier (and the portable one) agrees with the
        // table on every byte, in every position, next to any neighbours.
        let mut x = 0x0123_4567_89ab_cdefu64;
        for round in 0..20_000 {
            let mut block = [0u8; 64];
            for b in block.iter_mut() {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                *b = if round % 2 == 0 {
                    (x >> 56) as u8
                } else {
                    b" \t\n_aZ09,.\x80\xff@[`{"[(x >> 60) as usize]
                };
            }
            let (words, spaces) = classify64(&block);
            assert_eq!(classify64_portable(&block), (words, spaces));
            for (i, &b) in block.iter().enumerate() {
                assert_eq!(
                    words >> i & 1 == 1,
                    CLASS[b as usize] == WORD,
                    "byte {b} at {i}"
                );
                assert_eq!(
                    spaces >> i & 1 == 1,
                    CLASS[b as usize] == SPACE,
                    "byte {b} at {i}"
                );
            }
        }
    }

    /// The tokeniser's rule, one byte at a time.
    fn reference(data: &[u8]) -> Vec<&[u8]> {
        let mut tokens = Vec::new();
        let mut i = 0;
        while i < data.len() {
            let start = i;
            i += 1;
            match CLASS[data[start] as usize] {
                SPACE => continue,
                WORD => {
                    while i < data.len() && CLASS[data[i] as usize] == WORD {
                        i += 1;
                    }
                }
                _ => {}
            }
            tokens.push(&data[start..i]);
        }
        tokens
    }

    #[test]
    fn the_fast_scan_matches_the_byte_rule_on_random_text() {
        // Texts of every length up to 600 bytes (so tokens start at every
        // offset of a 64-byte block and cross block ends), built from runs of
        // word bytes of 1 to 40 bytes, punctuation and white space.
        let mut x = 42u64;
        let mut next = |m: u64| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) % m
        };
        for len in 0..600 {
            for _ in 0..3 {
                let mut data = Vec::new();
                while data.len() < len {
                    match next(4) {
                        0 => data.extend(std::iter::repeat_n(b' ', 1 + next(3) as usize)),
                        1 => data.push(b",.;'(\n\t-"[next(8) as usize]),
                        _ => {
                            let longest = if next(5) == 0 { 40 } else { 12 };
                            let run = 1 + next(longest) as usize;
                            data.extend(
                                (0..run).map(|_| b"abcXYZ019_\xc3\xa9\x80\xff"[next(14) as usize]),
                            );
                        }
                    }
                }
                data.truncate(len);
                let mut table = WordTable::new();
                let mut units = Vec::new();
                let n = tokenize_words(&data, &mut table, &mut units);
                let out: Vec<u32> = decode_ids(&units).collect();
                assert_eq!(out.len(), n);
                let got: Vec<&[u8]> = out.iter().map(|&id| table.word(id)).collect();
                assert_eq!(
                    got,
                    reference(&data),
                    "text {:?}",
                    String::from_utf8_lossy(&data)
                );
                // Equal tokens have equal ids.
                for (a, &ida) in got.iter().zip(&out) {
                    assert_eq!(table.find(a), Some(ida));
                }
            }
        }
    }

    #[test]
    fn equal_words_get_one_id_and_are_counted() {
        let mut table = WordTable::new();
        let mut units = Vec::new();
        let text = "the cat and the hat and the extraordinarily extraordinarily long words";
        tokenize_words(text.as_bytes(), &mut table, &mut units);
        let out: Vec<u32> = decode_ids(&units).collect();
        table.flush_hits();
        assert_eq!(out[0], out[3]);
        assert_eq!(table.count(out[0]), 3);
        assert_eq!(
            table.find(b"extraordinarily").map(|id| table.count(id)),
            Some(2)
        );
        assert_eq!(table.find(b"dog"), None);
        assert_eq!(table.len(), 7);
    }

    #[test]
    fn the_table_grows_without_losing_words() {
        let mut table = WordTable::new();
        let n = 50_000u32;
        for round in 0..2 {
            for i in 0..n {
                let w = format!("w{i}");
                let medium = format!("medium{i:07}");
                let long = format!("a_rather_long_word_number_{i}");
                assert_eq!(table.add(w.as_bytes(), 1), 3 * i, "round {round}");
                assert_eq!(table.add(medium.as_bytes(), 1), 3 * i + 1);
                assert_eq!(table.add(long.as_bytes(), 1), 3 * i + 2);
            }
        }
        table.flush_hits();
        assert_eq!(table.len(), 3 * n as usize);
        assert_eq!(table.count(table.find(b"medium0000123").unwrap()), 2);
        assert_eq!(table.count(table.find(b"w123").unwrap()), 2);
    }

    #[test]
    fn ids_past_the_escape_round_trip_through_the_stream() {
        // 70,000 distinct words: ids from 65535 on take three units each.
        let text: String = (0..70_000).map(|i| format!("w{i} ")).collect::<String>() + "w3 w69999";
        let mut table = WordTable::new();
        let mut units = Vec::new();
        let n = tokenize_words(text.as_bytes(), &mut table, &mut units);
        let ids: Vec<u32> = decode_ids(&units).collect();
        assert_eq!((n, ids.len()), (70_002, 70_002));
        assert_eq!(units.len(), 65_535 + 3 * (70_000 - 65_535) + 1 + 3);
        let expected: Vec<u32> = (0..70_000).chain([3, 69_999]).collect();
        assert_eq!(ids, expected);
        assert_eq!(table.word(69_999), b"w69999");
    }

    #[test]
    fn ranking_is_by_count_then_bytes_and_truncates() {
        let items = vec![
            (b"b".as_slice(), 5, 0),
            (b"a".as_slice(), 5, 1),
            (b"c".as_slice(), 9, 2),
            (b"d".as_slice(), 1, 3),
        ];
        let ranked: Vec<u32> = rank(items.clone(), 10).iter().map(|c| c.2).collect();
        assert_eq!(ranked, [2, 1, 0, 3]);
        let top: Vec<u32> = rank(items, 2).iter().map(|c| c.2).collect();
        assert_eq!(top, [2, 1]);
    }
}
