//! Is this file text? Decided by its content, never by its name.

/// A file whose bytes are more than this fraction invalid UTF-8 is binary.
/// Text in a legacy 8-bit encoding (Latin-1 accents) stays well below it;
/// compressed or random data is far above it.
pub const MAX_INVALID_UTF8_FRACTION: f64 = 0.05;

/// What a file's content is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Content {
    Text,
    Empty,
    /// Binary, with the reason.
    Binary(String),
}

/// Classifies `data`: any NUL byte means binary (no text encoding the
/// tokeniser handles contains one); otherwise too many bytes that are not
/// valid UTF-8 mean binary.
pub(crate) fn classify(data: &[u8]) -> Content {
    let mut c = Classifier::new(data.len() as u64);
    c.feed(data, true);
    c.verdict()
}

/// Classifies a file as its bytes stream past, piece by piece; for one
/// piece holding the whole file, the verdict is [`classify`]'s. A large
/// file stops being read at the first reason to call it binary (a NUL
/// byte, or invalid UTF-8 beyond the limit for the size `stat` gave).
pub(crate) struct Classifier {
    /// Bytes consumed so far (a carried incomplete sequence is not).
    seen: u64,
    invalid: u64,
    /// Invalid bytes beyond this make the file binary without reading on.
    limit: u64,
    nul_at: Option<u64>,
}

impl Classifier {
    /// A classifier of a file of about `size` bytes.
    pub(crate) fn new(size: u64) -> Self {
        Self {
            seen: 0,
            invalid: 0,
            limit: (size as f64 * MAX_INVALID_UTF8_FRACTION) as u64,
            nul_at: None,
        }
    }

    /// True once the file is known to be binary: no need to read on.
    pub(crate) fn decided(&self) -> bool {
        self.nul_at.is_some() || self.invalid > self.limit
    }

    /// Classifies the next bytes of the file. Unless `last`, an incomplete
    /// UTF-8 sequence at the end is not consumed: returns its length, and the
    /// caller passes those bytes again in front of the next piece.
    pub(crate) fn feed(&mut self, data: &[u8], last: bool) -> usize {
        if self.decided() {
            return 0;
        }
        if let Some(at) = find_nul(data) {
            self.nul_at = Some(self.seen + at as u64);
            return 0;
        }
        let mut rest = data;
        let mut tail = 0;
        while let Err(e) = std::str::from_utf8(rest) {
            match e.error_len() {
                Some(bad) => {
                    self.invalid += bad as u64;
                    if self.invalid > self.limit {
                        break;
                    }
                    rest = &rest[e.valid_up_to() + bad..];
                }
                None if last => {
                    self.invalid += (rest.len() - e.valid_up_to()) as u64;
                    break;
                }
                None => {
                    tail = rest.len() - e.valid_up_to();
                    break;
                }
            }
        }
        self.seen += (data.len() - tail) as u64;
        tail
    }

    /// The verdict on everything fed so far.
    pub(crate) fn verdict(&self) -> Content {
        if let Some(at) = self.nul_at {
            return Content::Binary(format!("binary: NUL byte at offset {at}"));
        }
        if self.seen == 0 {
            return Content::Empty;
        }
        // The limit of the bytes seen, or of the size `stat` gave if the
        // reading stopped there (the file changed meanwhile: either is fine).
        let limit = (self.seen as f64 * MAX_INVALID_UTF8_FRACTION) as u64;
        if self.invalid > limit.min(self.limit) {
            return Content::Binary(format!(
                "binary: more than {:.0}% of the bytes are not valid UTF-8",
                MAX_INVALID_UTF8_FRACTION * 100.0
            ));
        }
        Content::Text
    }
}

/// The offset of the first NUL byte, eight bytes at a time.
fn find_nul(data: &[u8]) -> Option<usize> {
    const LOW: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut chunks = data.chunks_exact(64);
    let mut base = 0;
    for chunk in &mut chunks {
        let mut any = 0u64;
        for word in chunk.chunks_exact(8) {
            let x = u64::from_le_bytes(word.try_into().expect("8 bytes"));
            // Sets the high bit of every zero byte (and no false positive
            // without a zero byte somewhere in the word).
            any |= x.wrapping_sub(LOW) & !x & HIGH;
        }
        if any != 0 {
            return chunk.iter().position(|&b| b == 0).map(|i| base + i);
        }
        base += 64;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == 0)
        .map(|i| base + i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_accented_text_is_text() {
        assert_eq!(classify(b"Hello, world.\n"), Content::Text);
        assert_eq!(classify("Größe und Maß, déjà vu".as_bytes()), Content::Text);
        // A few Latin-1 bytes in a long text stay below the limit.
        let mut latin1 = b"caf\xe9 ".to_vec();
        latin1.extend(std::iter::repeat_n(b'a', 200));
        assert_eq!(classify(&latin1), Content::Text);
    }

    #[test]
    fn nul_bytes_make_a_file_binary_wherever_they_are() {
        for at in [0, 7, 8, 63, 64, 65, 200] {
            let mut data = vec![b'x'; 300];
            data[at] = 0;
            assert_eq!(
                classify(&data),
                Content::Binary(format!("binary: NUL byte at offset {at}"))
            );
        }
    }

    #[test]
    fn mostly_invalid_utf8_is_binary_and_empty_is_empty() {
        let data: Vec<u8> = (0..1000u32).map(|i| 0x80 | (i * 37 % 127) as u8).collect();
        assert!(matches!(classify(&data), Content::Binary(r) if r.contains("UTF-8")));
        assert_eq!(classify(b""), Content::Empty);
    }

    #[test]
    fn classifying_in_pieces_counts_like_classifying_the_whole() {
        // Valid multi-byte characters, invalid and truncated sequences, cut
        // into pieces of every size: every split of a sequence is carried
        // over, so the count of invalid bytes is the same as in one piece.
        let unit = "ab é€😀 x".as_bytes();
        let mut data = Vec::new();
        for i in 0..40 {
            data.extend_from_slice(unit);
            if i % 7 == 0 {
                data.extend_from_slice(b"\xe2\x82 \xf0\x90\x80A\xff");
            }
        }
        data.extend_from_slice(b"\xe2\x82"); // truncated at the very end
        let whole = {
            let mut c = Classifier::new(u64::MAX / 64);
            c.feed(&data, true);
            c.invalid
        };
        assert!(whole > 0);
        for piece in 1..=9 {
            let mut c = Classifier::new(u64::MAX / 64);
            let mut carry: Vec<u8> = Vec::new();
            for chunk in data.chunks(piece) {
                carry.extend_from_slice(chunk);
                let tail = c.feed(&carry, false);
                carry.drain(..carry.len() - tail);
            }
            c.feed(&carry, true);
            assert_eq!(
                (c.invalid, c.seen),
                (whole, data.len() as u64),
                "pieces of {piece}"
            );
        }
    }
}
