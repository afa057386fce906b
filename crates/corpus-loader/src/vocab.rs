//! [`Vocab`]: the id <-> token table of a corpus, and decoding.

use crate::config::{NUM_SPECIAL, TokenizerKind};

/// The text shown for the special ids PAD, UNK, BOS, EOS.
pub const SPECIAL_TOKENS: [&str; 4] = ["<pad>", "<unk>", "<bos>", "<eos>"];

/// The vocabulary: ids `0..4` are PAD, UNK, BOS, EOS; the corpus tokens
/// follow by rank (most frequent first, ties by byte string).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vocab {
    kind: TokenizerKind,
    arena: Vec<u8>,
    /// `ends[id]` is where token `id` ends in the arena.
    ends: Vec<usize>,
    counts: Vec<u64>,
}

impl Vocab {
    /// A vocabulary of the special tokens and then `tokens` (with their
    /// counts), in id order.
    pub(crate) fn new<'a>(
        kind: TokenizerKind,
        tokens: impl IntoIterator<Item = (&'a [u8], u64)>,
    ) -> Self {
        let mut vocab = Self {
            kind,
            arena: Vec::new(),
            ends: Vec::new(),
            counts: Vec::new(),
        };
        for special in SPECIAL_TOKENS {
            vocab.push(special.as_bytes(), 0);
        }
        for (bytes, count) in tokens {
            vocab.push(bytes, count);
        }
        vocab
    }

    fn push(&mut self, bytes: &[u8], count: u64) {
        self.arena.extend_from_slice(bytes);
        self.ends.push(self.arena.len());
        self.counts.push(count);
    }

    /// The tokeniser this vocabulary belongs to.
    pub fn kind(&self) -> TokenizerKind {
        self.kind
    }

    /// Number of ids, the special ones included.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Never true: the special tokens are always there.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The bytes of token `id` (the special tokens' names for ids below 4),
    /// or `None` if there is no such id.
    pub fn token(&self, id: u32) -> Option<&[u8]> {
        let id = id as usize;
        let end = *self.ends.get(id)?;
        let start = if id == 0 { 0 } else { self.ends[id - 1] };
        Some(&self.arena[start..end])
    }

    /// How often token `id` occurred in the corpus when the vocabulary was
    /// built (0 for the special ids).
    pub fn count(&self, id: u32) -> Option<u64> {
        self.counts.get(id as usize).copied()
    }

    /// The id of a token's bytes (a linear search: for tests and tools).
    pub fn id_of(&self, bytes: &[u8]) -> Option<u32> {
        (NUM_SPECIAL..self.len() as u32).find(|&id| self.token(id) == Some(bytes))
    }

    /// Text for `ids`, for showing samples. Bytes tokens are concatenated;
    /// word tokens are joined by single spaces, without a space before
    /// closing punctuation or after opening brackets. PAD and BOS print
    /// nothing, EOS a new line, UNK `<unk>`. Invalid UTF-8 is replaced.
    /// Returns `None` if an id is not in the vocabulary.
    pub fn decode(&self, ids: &[u32]) -> Option<String> {
        let mut out: Vec<u8> = Vec::new();
        let mut glue = true; // no space before the next token
        for &id in ids {
            let token = self.token(id)?;
            match id {
                0 | 2 => continue,
                3 => {
                    out.push(b'\n');
                    glue = true;
                    continue;
                }
                _ => {}
            }
            if self.kind == TokenizerKind::Bytes && id >= NUM_SPECIAL {
                out.extend_from_slice(token);
                continue;
            }
            let closing = matches!(
                token,
                b"." | b"," | b";" | b":" | b"!" | b"?" | b")" | b"]" | b"}" | b"'"
            );
            if !glue && !closing {
                out.push(b' ');
            }
            out.extend_from_slice(token);
            glue = matches!(token, b"(" | b"[" | b"{" | b"'");
        }
        Some(String::from_utf8_lossy(&out).into_owned())
    }

    /// Serialised form (for the cache): kind, then length-prefixed tokens
    /// and counts.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.len() as u32).to_le_bytes());
        for id in 0..self.len() as u32 {
            let token = self.token(id).expect("id in range");
            out.extend_from_slice(&(token.len() as u32).to_le_bytes());
            out.extend_from_slice(token);
            out.extend_from_slice(&self.counts[id as usize].to_le_bytes());
        }
    }

    /// Reads the form written by `encode`.
    pub(crate) fn decode_from(
        kind: TokenizerKind,
        r: &mut crate::reader::Reader<'_>,
    ) -> Option<Self> {
        let n = r.u32()? as usize;
        if n < NUM_SPECIAL as usize || n > crate::config::MAX_VOCAB_LIMIT {
            return None;
        }
        let mut vocab = Self {
            kind,
            arena: Vec::new(),
            // Each entry takes at least 12 bytes: a count from a damaged
            // header cannot ask for more memory than the data could fill.
            ends: Vec::with_capacity(n.min(r.remaining() / 12)),
            counts: Vec::with_capacity(n.min(r.remaining() / 12)),
        };
        for _ in 0..n {
            let len = r.u32()? as usize;
            let bytes = r.bytes(len)?;
            let count = r.u64()?;
            vocab.push(bytes, count);
        }
        Some(vocab)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_ids_come_first_and_decode_joins_words_readably() {
        let words: Vec<(&[u8], u64)> = vec![
            (b"the", 9),
            (b",", 5),
            (b"end", 2),
            (b"(", 1),
            (b"x", 1),
            (b")", 1),
        ];
        let v = Vocab::new(TokenizerKind::Words, words);
        assert_eq!(v.len(), 10);
        assert_eq!(v.token(0), Some(b"<pad>".as_slice()));
        assert_eq!(v.token(4), Some(b"the".as_slice()));
        assert_eq!(v.id_of(b"end"), Some(6));
        assert_eq!(
            v.decode(&[2, 4, 5, 6, 7, 8, 9, 1, 3, 0]).as_deref(),
            Some("the, end (x) <unk>\n")
        );
        assert_eq!(v.decode(&[10]), None);
    }

    #[test]
    fn bytes_decode_exactly() {
        let v = Vocab::new(
            TokenizerKind::Bytes,
            vec![
                (b" ".as_slice(), 3),
                (b"a".as_slice(), 2),
                (b"b".as_slice(), 1),
            ],
        );
        assert_eq!(v.decode(&[2, 5, 4, 6, 3]).as_deref(), Some("a b\n"));
    }
}
