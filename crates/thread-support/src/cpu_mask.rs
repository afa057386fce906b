//! A set of CPU numbers as the kernel's affinity calls see it: one type for
//! the spin policy's idle check (the process's mask) and for a pool that
//! spreads its threads (a thread's mask, and moving a thread). Nothing here
//! allocates: the set is 1 KiB of words.

/// CPU numbers a mask holds: Linux's largest `NR_CPUS` (x86-64 `MAXSMP`).
pub const MAX_CPUS: usize = 8192;

/// A set of CPUs below [`MAX_CPUS`].
#[derive(Clone)]
pub struct CpuMask {
    words: [u64; MAX_CPUS / 64],
    /// One past the highest CPU in the mask.
    end: usize,
    count: usize,
}

impl CpuMask {
    /// The empty set.
    pub const fn new() -> Self {
        Self {
            words: [0; MAX_CPUS / 64],
            end: 0,
            count: 0,
        }
    }

    /// A mask of the CPUs in `cpus` (those below [`MAX_CPUS`]).
    pub fn of(cpus: impl IntoIterator<Item = usize>) -> Self {
        let mut mask = Self::new();
        for cpu in cpus.into_iter().filter(|&c| c < MAX_CPUS) {
            mask.words[cpu / 64] |= 1 << (cpu % 64);
        }
        mask.update();
        mask
    }

    /// The CPUs the calling thread may run on, or `None` where the system
    /// does not say.
    pub fn of_this_thread() -> Option<Self> {
        let mut mask = Self::new();
        mask.read_affinity(0).then_some(mask)
    }

    /// Reads the process's mask, the main thread's (threads inherit it; pool
    /// threads pinned to one CPU each must not shrink it to that CPU); every
    /// CPU where the system does not say.
    pub fn read_process(&mut self) {
        #[cfg(target_os = "linux")]
        // SAFETY: getpid has no preconditions.
        let pid = unsafe { libc::getpid() };
        #[cfg(not(target_os = "linux"))]
        let pid = 0;
        if !self.read_affinity(pid) {
            self.words = [u64::MAX; MAX_CPUS / 64];
            self.update();
        }
    }

    /// Reads the affinity mask of thread `tid` (0: the calling thread).
    fn read_affinity(&mut self, tid: i32) -> bool {
        #[cfg(target_os = "linux")]
        {
            // SAFETY: sched_getaffinity writes at most the given size into
            // the given buffer, a whole number of `cpu_set_t`-style words.
            let ok = unsafe {
                libc::sched_getaffinity(
                    tid,
                    size_of_val(&self.words),
                    self.words.as_mut_ptr().cast::<libc::cpu_set_t>(),
                )
            } == 0;
            if ok {
                self.update();
            }
            ok
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = tid;
            false
        }
    }

    /// Makes this the affinity mask of thread `tid` (0: the calling
    /// thread); whether the system took it.
    pub fn apply_to(&self, tid: i32) -> bool {
        #[cfg(target_os = "linux")]
        {
            // SAFETY: sched_setaffinity reads at most the given size from
            // the given buffer, a whole number of `cpu_set_t`-style words.
            let r = unsafe {
                libc::sched_setaffinity(
                    tid,
                    size_of_val(&self.words),
                    self.words.as_ptr().cast::<libc::cpu_set_t>(),
                )
            };
            r == 0
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = tid;
            false
        }
    }

    fn update(&mut self) {
        self.count = self.words.iter().map(|w| w.count_ones() as usize).sum();
        self.end = self
            .words
            .iter()
            .rposition(|w| *w != 0)
            .map_or(0, |i| i * 64 + 64 - self.words[i].leading_zeros() as usize);
    }

    /// Whether `cpu` is in the set.
    pub fn contains(&self, cpu: usize) -> bool {
        cpu < MAX_CPUS && self.words[cpu / 64] & (1 << (cpu % 64)) != 0
    }

    /// How many CPUs the set holds.
    pub fn count(&self) -> usize {
        self.count
    }

    /// One past the highest CPU in the set (0 for the empty set).
    pub fn end(&self) -> usize {
        self.end
    }
}

impl Default for CpuMask {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mask_knows_its_cpus_count_and_end() {
        let mask = CpuMask::of([0, 3, 200, MAX_CPUS + 1]);
        assert!(mask.contains(0) && mask.contains(3) && mask.contains(200));
        assert!(!mask.contains(1) && !mask.contains(MAX_CPUS + 1));
        assert_eq!((mask.count(), mask.end()), (3, 201));
        assert_eq!((CpuMask::new().count(), CpuMask::new().end()), (0, 0));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_thread_reads_and_sets_its_own_mask() {
        let mine = CpuMask::of_this_thread().expect("sched_getaffinity");
        let first = (0..mine.end()).find(|&c| mine.contains(c)).unwrap();
        std::thread::spawn(move || {
            assert!(CpuMask::of([first]).apply_to(0));
            let now = CpuMask::of_this_thread().unwrap();
            assert_eq!((now.count(), now.contains(first)), (1, true));
            assert!(!CpuMask::new().apply_to(0), "an empty mask is refused");
        })
        .join()
        .unwrap();
    }
}
