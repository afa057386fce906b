//! The cut of a buffer layout into pieces: the unit of parallel work and of
//! the fixed summation order.

/// A contiguous range of one buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Piece {
    pub buffer: usize,
    pub start: usize,
    pub end: usize,
}

/// Cuts each buffer into pieces of `chunk_len` elements (the last one of a
/// buffer shorter), buffer after buffer. The cut depends only on the layout
/// and `chunk_len`, never on the number of threads.
pub(crate) fn cut(lens: &[usize], chunk_len: usize) -> Vec<Piece> {
    debug_assert!(chunk_len > 0);
    let mut pieces = Vec::new();
    for (buffer, &len) in lens.iter().enumerate() {
        let mut start = 0;
        while start < len {
            let end = len.min(start.saturating_add(chunk_len));
            pieces.push(Piece { buffer, start, end });
            start = end;
        }
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_covers_every_buffer_in_order_and_skips_empty_ones() {
        let pieces = cut(&[5, 0, 8, 3], 4);
        let expect = [(0, 0, 4), (0, 4, 5), (2, 0, 4), (2, 4, 8), (3, 0, 3)];
        let got: Vec<_> = pieces.iter().map(|p| (p.buffer, p.start, p.end)).collect();
        assert_eq!(got, expect);
    }
}
