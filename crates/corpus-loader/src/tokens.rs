//! The token dataset: compact integers in memory or mapped from the cache.

use crate::fs::Mapped;
use std::sync::Arc;

/// An integer type tokens are stored in.
pub(crate) trait TokenInt: Copy + Default + Send + Sync + 'static {
    fn from_id(id: u32) -> Self;
}

impl TokenInt for u16 {
    #[inline(always)]
    fn from_id(id: u32) -> Self {
        id as u16
    }
}

impl TokenInt for u32 {
    #[inline(always)]
    fn from_id(id: u32) -> Self {
        id
    }
}

/// Where the tokens live: 16-bit ids when the vocabulary has at most 65536
/// entries (half the memory and cache size), 32-bit otherwise.
pub(crate) enum TokenStore {
    U16(Vec<u16>),
    U32(Vec<u32>),
    /// Little-endian ids of `width` bytes inside a mapped cache file.
    Mapped {
        map: Arc<Mapped>,
        offset: usize,
        count: usize,
        width: usize,
    },
}

impl TokenStore {
    pub(crate) fn view(&self) -> Tokens<'_> {
        match self {
            TokenStore::U16(v) => Tokens::U16(v),
            TokenStore::U32(v) => Tokens::U32(v),
            TokenStore::Mapped {
                map,
                offset,
                count,
                width,
            } => {
                let bytes = &map.bytes()[*offset..*offset + count * width];
                // SAFETY: the cache reader checked that `offset` is a multiple of
                // 64 inside a page-aligned mapping, so the pointer is aligned for
                // u16/u32, and that `count * width` bytes are in the mapping.
                // Every bit pattern is a valid integer, and the format is
                // little-endian like the host (checked at compile time in lib.rs).
                unsafe {
                    if *width == 2 {
                        Tokens::U16(std::slice::from_raw_parts(
                            bytes.as_ptr().cast::<u16>(),
                            *count,
                        ))
                    } else {
                        Tokens::U32(std::slice::from_raw_parts(
                            bytes.as_ptr().cast::<u32>(),
                            *count,
                        ))
                    }
                }
            }
        }
    }
}

/// A borrowed view of the token dataset.
#[derive(Debug, Clone, Copy)]
pub enum Tokens<'a> {
    /// 16-bit ids (vocabulary of at most 65536).
    U16(&'a [u16]),
    /// 32-bit ids.
    U32(&'a [u32]),
}

impl<'a> Tokens<'a> {
    /// Number of tokens.
    pub fn len(&self) -> usize {
        match self {
            Tokens::U16(t) => t.len(),
            Tokens::U32(t) => t.len(),
        }
    }

    /// True if there is no token.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Token `i`.
    pub fn get(&self, i: usize) -> Option<u32> {
        match self {
            Tokens::U16(t) => t.get(i).map(|&x| x as u32),
            Tokens::U32(t) => t.get(i).copied(),
        }
    }

    /// Bytes per stored id (2 or 4).
    pub fn width(&self) -> usize {
        match self {
            Tokens::U16(_) => 2,
            Tokens::U32(_) => 4,
        }
    }

    /// Copies tokens `start..start + dst.len()` into `dst` as 32-bit ids.
    ///
    /// # Panics
    /// If the range is out of bounds.
    pub fn copy_to(&self, start: usize, dst: &mut [u32]) {
        match self {
            Tokens::U16(t) => {
                let n = dst.len();
                for (d, &s) in dst.iter_mut().zip(&t[start..start + n]) {
                    *d = s as u32;
                }
            }
            Tokens::U32(t) => dst.copy_from_slice(&t[start..start + dst.len()]),
        }
    }

    /// All tokens as a vector of 32-bit ids.
    pub fn to_vec(&self) -> Vec<u32> {
        let mut v = vec![0; self.len()];
        self.copy_to(0, &mut v);
        v
    }

    /// The stored bytes (little-endian ids), as written to the cache.
    pub(crate) fn as_bytes(&self) -> &'a [u8] {
        // SAFETY: reinterpreting initialised integers as bytes: u8 has no
        // alignment requirement and no invalid values; the length is exact.
        unsafe {
            match self {
                Tokens::U16(t) => std::slice::from_raw_parts(t.as_ptr().cast::<u8>(), t.len() * 2),
                Tokens::U32(t) => std::slice::from_raw_parts(t.as_ptr().cast::<u8>(), t.len() * 4),
            }
        }
    }
}
