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
    if data.is_empty() {
        return Content::Empty;
    }
    if let Some(at) = find_nul(data) {
        return Content::Binary(format!("binary: NUL byte at offset {at}"));
    }
    let limit = (data.len() as f64 * MAX_INVALID_UTF8_FRACTION) as usize;
    let invalid = invalid_utf8_bytes(data, limit);
    if invalid > limit {
        return Content::Binary(format!(
            "binary: more than {:.0}% of the bytes are not valid UTF-8",
            MAX_INVALID_UTF8_FRACTION * 100.0
        ));
    }
    Content::Text
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

/// The number of bytes in invalid UTF-8 sequences, counting stops a little
/// past `limit`.
fn invalid_utf8_bytes(mut data: &[u8], limit: usize) -> usize {
    let mut invalid = 0;
    loop {
        match std::str::from_utf8(data) {
            Ok(_) => return invalid,
            Err(e) => {
                let bad = e.error_len().unwrap_or(data.len() - e.valid_up_to());
                invalid += bad;
                if invalid > limit {
                    return invalid;
                }
                data = &data[e.valid_up_to() + bad..];
            }
        }
    }
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
}
