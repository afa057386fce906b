//! The token dataset: compact integers in memory (built, or read from the
//! cache).

/// An integer type tokens are stored in: u16 or u32 only (any bit pattern
/// is valid, all zero included).
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
}

impl TokenStore {
    pub(crate) fn view(&self) -> Tokens<'_> {
        match self {
            TokenStore::U16(v) => Tokens::U16(v),
            TokenStore::U32(v) => Tokens::U32(v),
        }
    }

    /// The stored ids as bytes, to be filled from a cache file.
    pub(crate) fn bytes_mut(&mut self) -> &mut [u8] {
        fn bytes<T: TokenInt>(v: &mut [T]) -> &mut [u8] {
            // SAFETY: u16 and u32 (the only TokenInt types) have no invalid
            // bit patterns and no padding, u8 has no alignment requirement,
            // and the length is the slice's exact size in bytes.
            unsafe {
                std::slice::from_raw_parts_mut(v.as_mut_ptr().cast(), std::mem::size_of_val(v))
            }
        }
        match self {
            TokenStore::U16(v) => bytes(v),
            TokenStore::U32(v) => bytes(v),
        }
    }
}

/// `n` zero ids, or `None` if that memory cannot be had (never an abort).
/// Zeroed memory comes straight from the system for large sizes, without
/// a pass that writes it.
pub(crate) fn try_zeroed<T: TokenInt>(n: usize) -> Option<Vec<T>> {
    if n == 0 {
        return Some(Vec::new());
    }
    let layout = std::alloc::Layout::array::<T>(n).ok()?;
    // SAFETY: the layout has a non-zero size (n > 0, T is u16 or u32).
    let ptr = unsafe { std::alloc::alloc_zeroed(layout) }.cast::<T>();
    if ptr.is_null() {
        return None;
    }
    advise_huge_pages(ptr.cast(), layout.size());
    // SAFETY: `ptr` was allocated by the global allocator with the layout of
    // `n` T's, and all-zero bytes are a valid u16/u32.
    Some(unsafe { Vec::from_raw_parts(ptr, n, n) })
}

/// Asks for transparent huge pages under a large fresh allocation: it is
/// filled by the kernel 2 MiB per page fault instead of 4 KiB (faults cost
/// microseconds each in a VM; 80 MB of 4 KiB pages took longer than
/// reading the data into them).
fn advise_huge_pages(ptr: *mut u8, len: usize) {
    const HUGE: usize = 2 << 20;
    let start = (ptr as usize).next_multiple_of(HUGE);
    let end = (ptr as usize + len) / HUGE * HUGE;
    if end > start {
        // SAFETY: advice on whole pages inside our own allocation; it does
        // not change the contents, and a failure only loses the hint.
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_impossible_allocation_is_none_not_an_abort() {
        assert!(try_zeroed::<u32>(usize::MAX / 2).is_none(), "size overflow");
        assert!(
            try_zeroed::<u16>(1 << 60).is_none(),
            "more than any machine has"
        );
        let v = try_zeroed::<u16>(5 << 20).expect("10 MiB");
        assert!(v.len() == 5 << 20 && v.iter().all(|&x| x == 0));
    }
}
