//! The token dataset: compact integers in memory (built, or read from the
//! cache).

use crate::leased_map::LeasedMap;

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
    U16(TokenBuf<u16>),
    U32(TokenBuf<u32>),
}

impl TokenStore {
    /// True if the ids are the cache file's pages (see [`TokenBuf::is_file_backed`]).
    pub(crate) fn is_file_backed(&self) -> bool {
        match self {
            TokenStore::U16(v) => v.is_file_backed(),
            TokenStore::U32(v) => v.is_file_backed(),
        }
    }

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

/// The size of a transparent huge page on x86-64 and arm64 (4 KiB base
/// pages). Elsewhere the advice is only a hint that may do nothing.
const HUGE: usize = 2 << 20;

/// An array of ids: in memory of its own, or a leased mapping of the cache.
/// Small arrays of its own come from the global allocator; from one huge
/// page up, from `mmap`: whole 2 MiB-aligned huge pages under
/// `MADV_HUGEPAGE`, so every page of it is filled by the kernel 2 MiB per
/// fault (an allocator's block starts and ends mid-page, and those partial
/// huge pages took hundreds of 4 KiB faults per warm load).
pub(crate) struct TokenBuf<T: TokenInt> {
    inner: Inner<T>,
}

enum Inner<T> {
    Heap(Vec<T>),
    /// `len` ids at `ptr`, the start of a private anonymous mapping of
    /// `mapped` bytes (a multiple of [`HUGE`]) that this buffer owns.
    Mapped {
        ptr: std::ptr::NonNull<T>,
        len: usize,
        mapped: usize,
    },
    /// The ids are the bytes of a leased mapping of the cache file:
    /// read-only, and never handed out mutably (only a built buffer is).
    Leased(LeasedMap),
}

// SAFETY: a mapped TokenBuf owns its mapping exclusively (like a Vec owns its
// heap block), and T is Send + Sync.
unsafe impl<T: TokenInt> Send for TokenBuf<T> {}
// SAFETY: shared access only reads through `&[T]`.
unsafe impl<T: TokenInt> Sync for TokenBuf<T> {}

impl<T: TokenInt> std::ops::Deref for TokenBuf<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        match &self.inner {
            Inner::Heap(v) => v,
            // SAFETY: `ptr` heads `len` initialised ids inside the mapping
            // this buffer owns (zero-filled by the kernel: a valid u16/u32).
            Inner::Mapped { ptr, len, .. } => unsafe {
                std::slice::from_raw_parts(ptr.as_ptr(), *len)
            },
            // SAFETY: `from_leased` checked the alignment and that the length
            // is whole ids; the bytes live as long as the map.
            Inner::Leased(map) => unsafe {
                let bytes = map.bytes();
                std::slice::from_raw_parts(bytes.as_ptr().cast(), bytes.len() / size_of::<T>())
            },
        }
    }
}

impl<T: TokenInt> std::ops::DerefMut for TokenBuf<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        match &mut self.inner {
            Inner::Heap(v) => v,
            // SAFETY: as in `deref`, and `&mut self` makes this the only
            // access.
            Inner::Mapped { ptr, len, .. } => unsafe {
                std::slice::from_raw_parts_mut(ptr.as_ptr(), *len)
            },
            // Only the build writes ids, into buffers of its own.
            Inner::Leased(_) => unreachable!("a cache mapping is read-only"),
        }
    }
}

impl<T: TokenInt> Drop for TokenBuf<T> {
    fn drop(&mut self) {
        if let Inner::Mapped { ptr, mapped, .. } = self.inner {
            // SAFETY: the mapping of `mapped` bytes at `ptr` is this
            // buffer's own, and no slice of it outlives `self`.
            unsafe { libc::munmap(ptr.as_ptr().cast(), mapped) };
        }
    }
}

impl<T: TokenInt> TokenBuf<T> {
    /// The ids of a leased mapping of the cache, if its bytes are aligned
    /// for `T` and whole ids.
    pub(crate) fn from_leased(map: LeasedMap) -> Option<Self> {
        let bytes = map.bytes();
        let whole = bytes.len() % size_of::<T>() == 0;
        (whole && bytes.as_ptr().align_offset(align_of::<T>()) == 0).then_some(TokenBuf {
            inner: Inner::Leased(map),
        })
    }

    /// True if the ids are still the cache file's pages, shared with every
    /// process that maps it.
    pub(crate) fn is_file_backed(&self) -> bool {
        matches!(&self.inner, Inner::Leased(map) if map.is_file_backed())
    }
}

/// `n` zero ids, or `None` if that memory cannot be had (never an abort).
/// Zeroed memory comes straight from the system, without a pass that
/// writes it.
pub(crate) fn try_zeroed<T: TokenInt>(n: usize) -> Option<TokenBuf<T>> {
    let bytes = n.checked_mul(size_of::<T>())?;
    if bytes < HUGE {
        let mut v = Vec::new();
        v.try_reserve_exact(n).ok()?;
        v.resize(n, T::default());
        return Some(TokenBuf {
            inner: Inner::Heap(v),
        });
    }
    let mapped = bytes.checked_next_multiple_of(HUGE)?;
    let ptr = map_huge_aligned(mapped)?;
    Some(TokenBuf {
        inner: Inner::Mapped {
            ptr: ptr.cast(),
            len: n,
            mapped,
        },
    })
}

/// A fresh private anonymous mapping of `len` bytes (a multiple of [`HUGE`])
/// starting on a huge-page boundary, advised `MADV_HUGEPAGE`.
fn map_huge_aligned(len: usize) -> Option<std::ptr::NonNull<u8>> {
    let over = len.checked_add(HUGE)?;
    // SAFETY: a new anonymous mapping; no existing memory is touched.
    let raw = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            over,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if raw == libc::MAP_FAILED {
        return None;
    }
    let start = (raw as usize).next_multiple_of(HUGE);
    let (head, tail) = (start - raw as usize, HUGE - (start - raw as usize));
    // SAFETY: both ranges lie inside the mapping just made, outside the
    // `len` bytes kept, and are whole pages (mmap returns whole pages; HUGE
    // and `len` are multiples of a page). Should an unmap fail, those
    // untouched pages only stay reserved.
    unsafe {
        if head > 0 {
            libc::munmap(raw, head);
        }
        if tail > 0 {
            libc::munmap((start + len) as *mut libc::c_void, tail);
        }
        // Advice on our own fresh pages: a failure only loses the hint.
        libc::madvise(start as *mut libc::c_void, len, libc::MADV_HUGEPAGE);
    }
    std::ptr::NonNull::new(start as *mut u8)
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

    /// The process's virtual size in KiB.
    fn vm_size_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("VmSize:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    #[test]
    fn mapped_buffers_unmap_all_their_pages() {
        // 256 buffers of 4 MiB, each from a 6 MiB mapping trimmed to its
        // aligned 4 MiB: without the munmap on drop the process grows by
        // 1 GiB, without the trim by 512 MiB. Untouched: no memory used.
        let before = vm_size_kib();
        for _ in 0..256 {
            let v = try_zeroed::<u16>(HUGE).expect("4 MiB");
            assert_eq!(v.len(), HUGE);
        }
        let grown = vm_size_kib().saturating_sub(before);
        assert!(grown < 256 << 10, "grew by {grown} KiB");
    }

    #[test]
    fn an_impossible_allocation_is_none_not_an_abort() {
        assert!(try_zeroed::<u32>(usize::MAX / 2).is_none(), "size overflow");
        assert!(
            try_zeroed::<u16>(1 << 60).is_none(),
            "more than any machine has"
        );
        for n in [0, 1, 1000, HUGE / 2 - 1, HUGE / 2, 5 << 20, (5 << 20) + 3] {
            let mut v = try_zeroed::<u16>(n).expect("at most 10 MiB");
            assert!(v.len() == n && v.iter().all(|&x| x == 0), "{n} ids");
            v.iter_mut().for_each(|x| *x = 7); // writable to its end
            assert!(v.iter().all(|&x| x == 7));
        }
        let v = try_zeroed::<u32>(HUGE).expect("8 MiB");
        assert_eq!(v.as_ptr() as usize % HUGE, 0, "huge-page aligned");
    }
}
