//! Is some CPU that this process may use idle, with CPU time to spare?
//! From the per-CPU idle times of `/proc/stat`, sampled at most every 50 ms
//! (less often if a sample costs more than 1% of a CPU) by one thread for
//! the whole process, each thread keeping the verdict in between.
//!
//! Threads that park or yield to each other look light, and the scheduler
//! then keeps them on one CPU (waking a thread where its waker runs, or
//! packing light threads), even with another CPU idle; spinning threads look
//! busy and the load balancer spreads them within milliseconds. So while a
//! CPU is idle, a spin that shares its CPU keeps spinning rather than
//! yielding or parking: the balancer will move one of the two.
//!
//! Which CPUs count, and when:
//! - only those of the process's affinity mask (`sched_getaffinity` of the
//!   main thread, which `taskset` and cgroup cpusets set), read at every
//!   sample (a system call of well under a microsecond, so a changed mask
//!   counts within 50 ms): an idle CPU the process may not run on is no
//!   place the balancer can move a thread to;
//! - all of them, up to Linux's largest CPU count (8192): a fixed table in
//!   a static, so that a wait never allocates;
//! - under a cgroup v2 CPU quota (`cpu.max`, the smallest on the path up
//!   from the process's cgroup, read every second) of fewer CPUs than the
//!   mask, only while the process's own CPU time over the last window left
//!   at least half a CPU of the quota unused: a spin is charged to the
//!   quota, and an idle host CPU is only ours while quota is left.
//!   Other processes of the same cgroup are not counted (their time is not
//!   ours to read cheaply).
//!
//! One process-wide sample (not one per thread): on a big machine
//! `/proc/stat` is long and the kernel formats all of it on every read
//! (tens to hundreds of microseconds, estimated), so 256 threads sampling
//! it each would cost a good share of a CPU. The read stops at the last
//! CPU of the mask, before the `intr` line.

use crate::tsan;
use parking_lot::Mutex;
use std::ffi::CStr;
use std::time::{Duration, Instant};

// CPU numbers watched: up to `MAX_CPUS`, Linux's largest `NR_CPUS`. Lines
// of higher CPUs, which Linux cannot have, end the read.
use crate::cpu_mask::{CpuMask, MAX_CPUS};

/// Bytes of `/proc/stat` read at a time: about 200 CPU lines.
const READ_BYTES: usize = 16384;

/// How often `/proc/stat` is read at most.
const SAMPLE_EVERY: Duration = Duration::from_millis(50);

/// Samples are spread out so that they cost at most 1/`COST_SHARE` of a
/// CPU (a 2018 report measured 4.6 ms per read with 5000 interrupts, on
/// kernels before 5.2), but come at least this often.
const COST_SHARE: u32 = 100;
const SAMPLE_AT_LEAST_EVERY: Duration = Duration::from_secs(1);

/// How often the cgroup's `cpu.max` is read at most.
const QUOTA_EVERY: Duration = Duration::from_secs(1);

/// A CPU idle for more than this share of the time since the last sample
/// counts as idle; the same share of a CPU must be left of a quota.
const IDLE_SHARE: f64 = 0.5;

/// Where the cgroup v2 hierarchy is mounted.
const CGROUP_ROOT: &[u8] = b"/sys/fs/cgroup";

/// The process's sampler: one thread samples, the others keep their verdict.
static SAMPLER: Mutex<Sampler> = Mutex::new(Sampler::new(&TABLES));

/// The sampler's tables: all zeroes, so in `.bss` (80 KB, not in the
/// binary), apart from the sampler, which is not. Locked only by the
/// thread that holds the sampler. The system calls that fill them (`read`,
/// `sched_getaffinity`) are seen by ThreadSanitizer in a C program built
/// with it, so the lock tells TSan about its holds too: two threads
/// sampling one after the other are not a race.
static TABLES: tsan::Mutex<Tables> = tsan::Mutex::new(Tables::new());

/// One thread's copy of the last verdict.
#[derive(Debug)]
pub struct IdleWatch {
    /// When the process's next sample is due.
    until: Option<Instant>,
    verdict: bool,
}

impl Default for IdleWatch {
    fn default() -> Self {
        Self::new()
    }
}

impl IdleWatch {
    /// No verdict yet: no CPU is known to be idle.
    pub const fn new() -> Self {
        Self {
            until: None,
            verdict: false,
        }
    }

    /// A watch that has just seen `verdict` (tests).
    #[cfg(test)]
    pub(crate) fn seen(verdict: bool) -> Self {
        Self {
            until: Some(Instant::now() + SAMPLE_EVERY),
            verdict,
        }
    }

    /// True if some CPU of the process was mostly idle over the last
    /// sampling period (and a quota, if any, left room); takes the
    /// process's newer verdict, or a new sample, if this one is old enough.
    pub fn some_cpu_idle(&mut self, now: Instant) -> bool {
        self.some_cpu_idle_from(&SAMPLER, now)
    }

    fn some_cpu_idle_from(&mut self, sampler: &Mutex<Sampler>, now: Instant) -> bool {
        if self.until.is_some_and(|until| now < until) {
            return self.verdict;
        }
        // Another thread sampling now: keep the old verdict until the next
        // wait rather than wait for it.
        if let Some(mut sampler) = sampler.try_lock() {
            (self.until, self.verdict) = sampler.verdict(now);
        }
        self.verdict
    }
}

/// The process's last sample and verdict.
struct Sampler {
    /// When the last sample was taken (`None`: none, or it failed).
    at: Option<Instant>,
    /// How long after it the next one is due.
    every: Duration,
    verdict: bool,
    /// The quota in CPUs, if one is set.
    quota: Option<f64>,
    quota_at: Option<Instant>,
    /// The process's CPU time at the last sample.
    cpu_time: Option<Duration>,
    tables: &'static tsan::Mutex<Tables>,
}

/// What a sample reads into.
struct Tables {
    ticks: Ticks,
    mask: CpuMask,
    buf: [u8; READ_BYTES],
}

impl Tables {
    const fn new() -> Self {
        Self {
            ticks: Ticks::new(),
            mask: CpuMask::new(),
            buf: [0; READ_BYTES],
        }
    }
}

impl Sampler {
    const fn new(tables: &'static tsan::Mutex<Tables>) -> Self {
        Self {
            at: None,
            every: SAMPLE_EVERY,
            verdict: false,
            quota: None,
            quota_at: None,
            cpu_time: None,
            tables,
        }
    }

    /// The verdict as of `now` and when the next sample is due: the last
    /// one if recent, else a new one.
    fn verdict(&mut self, now: Instant) -> (Option<Instant>, bool) {
        let since = self.at.map(|at| now.saturating_duration_since(at));
        if since.is_some_and(|d| d < self.every) {
            return (self.at.map(|at| at + self.every), self.verdict);
        }
        let mut tables = self.tables.lock();
        let tables = &mut *tables;
        if self
            .quota_at
            .is_none_or(|at| now.saturating_duration_since(at) >= QUOTA_EVERY)
        {
            self.quota = read_quota(&mut tables.buf);
            self.quota_at = Some(now);
        }
        tables.mask.read_process();
        let cpu_time = process_cpu_time();
        // Judged over recent time only: a window that reaches back past a
        // pause of every waiting thread (parked, the CPUs idle meanwhile)
        // says nothing about now.
        let window = since.filter(|d| *d <= 2 * self.every && !d.is_zero());
        let threshold = window.map(|d| IDLE_SHARE * clock_ticks(d));
        let Tables { ticks, mask, buf } = tables;
        ticks.begin(threshold);
        let start = Instant::now();
        let read = read_stat(buf, |cpu, idle| ticks.cpu(cpu, idle, mask));
        self.every = interval(start.elapsed());
        ticks.end();
        let used = match (window, cpu_time, self.cpu_time) {
            (Some(w), Some(now), Some(before)) => {
                Some(now.saturating_sub(before).as_secs_f64() / w.as_secs_f64())
            }
            _ => None,
        };
        self.verdict = read && ticks.idle_seen && room_left(self.quota, mask.count(), used);
        self.at = read.then_some(now);
        self.cpu_time = cpu_time;
        (Some(now + self.every), self.verdict)
    }
}

/// The time between samples that each take `cost`.
fn interval(cost: Duration) -> Duration {
    cost.saturating_mul(COST_SHARE)
        .clamp(SAMPLE_EVERY, SAMPLE_AT_LEAST_EVERY)
}

/// True if a quota of `quota` CPUs, with the process using `used` CPUs,
/// leaves room for more: no quota, a quota of at least the `cpus` the
/// process may run on, or `IDLE_SHARE` of a CPU unused.
fn room_left(quota: Option<f64>, cpus: usize, used: Option<f64>) -> bool {
    match quota {
        Some(quota) if quota < cpus as f64 => used.is_some_and(|used| quota - used > IDLE_SHARE),
        _ => true,
    }
}

/// Clock ticks (`USER_HZ`) in `d`.
fn clock_ticks(d: Duration) -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    d.as_secs_f64() * if hz > 0 { hz as f64 } else { 100.0 }
}

/// The CPU time of all the process's threads.
fn process_cpu_time() -> Option<Duration> {
    crate::cpu::cpu_clock(libc::CLOCK_PROCESS_CPUTIME_ID)
}

/// Idle ticks of every CPU at the last sample, and whether some CPU of the
/// mask was idle since the one before.
struct Ticks {
    /// Idle ticks plus one, per CPU number; 0: not seen at the last sample
    /// (offline, out of the mask, or past the end of the read).
    stored: [u64; MAX_CPUS],
    /// Every entry from here on is 0.
    high: usize,
    /// The next CPU number a line may have (they come in order).
    next: usize,
    /// Idle ticks above which a CPU counts as idle (`None`: no window).
    threshold: Option<f64>,
    idle_seen: bool,
}

impl Ticks {
    const fn new() -> Self {
        Self {
            stored: [0; MAX_CPUS],
            high: 0,
            next: 0,
            threshold: None,
            idle_seen: false,
        }
    }

    fn begin(&mut self, threshold: Option<f64>) {
        self.next = 0;
        self.threshold = threshold;
        self.idle_seen = false;
    }

    /// One `cpuN` line; false once no CPU of the mask can follow.
    fn cpu(&mut self, cpu: usize, idle: u64, mask: &CpuMask) -> bool {
        if cpu >= MAX_CPUS {
            return false;
        }
        if cpu < self.next {
            // Out of order: not /proc/stat as Linux writes it.
            return true;
        }
        // CPUs skipped (offline) are not seen.
        self.stored[self.next..cpu].fill(0);
        let before = std::mem::take(&mut self.stored[cpu]);
        if mask.contains(cpu) {
            self.stored[cpu] = idle.saturating_add(1);
            if let (Some(threshold), Some(before)) = (self.threshold, before.checked_sub(1)) {
                self.idle_seen |= idle.saturating_sub(before) as f64 > threshold;
            }
        }
        self.next = cpu + 1;
        self.next < mask.end()
    }

    fn end(&mut self) {
        if self.next < self.high {
            self.stored[self.next..self.high].fill(0);
        }
        self.high = self.next;
    }
}

/// What [`parse`] found in a piece of `/proc/stat`.
#[derive(Debug, PartialEq, Eq)]
struct Parsed {
    /// Bytes of whole lines parsed.
    used: usize,
    /// The CPU lines are over (a later line has begun, or `cpu` said so).
    done: bool,
}

/// Parses the whole lines of `text`, a piece of `/proc/stat` that starts a
/// line: calls `cpu(n, ticks)` with the idle plus I/O wait ticks of each
/// `cpuN` line, until it returns false. Malformed `cpu` lines are skipped;
/// the first line that does not start with `cpu` ends the CPU lines (its
/// start is enough: the `intr` line is long on big machines).
fn parse(text: &[u8], mut cpu: impl FnMut(usize, u64) -> bool) -> Parsed {
    let mut used = 0;
    loop {
        let rest = &text[used..];
        if !rest.starts_with(&b"cpu"[..rest.len().min(3)]) {
            return Parsed { used, done: true };
        }
        let Some(len) = rest.iter().position(|&b| b == b'\n') else {
            return Parsed { used, done: false };
        };
        used += len + 1;
        if let Some((n, ticks)) = cpu_line(&rest[3..len]) {
            if !cpu(n, ticks) {
                return Parsed { used, done: true };
            }
        }
    }
}

/// The CPU number and idle plus I/O wait ticks of a `cpuN user nice system
/// idle iowait ...` line, given without its `cpu`; `None` for the total
/// line (`cpu  ...`) and malformed lines.
fn cpu_line(line: &[u8]) -> Option<(usize, u64)> {
    let mut fields = line.split(|&b| b == b' ');
    let cpu = usize::try_from(number(fields.next()?)?).ok()?;
    let mut fields = fields.filter(|f| !f.is_empty()).skip(3);
    let idle = number(fields.next()?)?;
    // No I/O wait field before Linux 2.5.41.
    let iowait = fields.next().map_or(Some(0), number)?;
    Some((cpu, idle.checked_add(iowait)?))
}

/// A decimal number, all digits.
fn number(field: &[u8]) -> Option<u64> {
    if field.is_empty() {
        return None;
    }
    field.iter().try_fold(0u64, |n, &b| {
        b.is_ascii_digit()
            .then_some(())
            .and_then(|()| n.checked_mul(10)?.checked_add(u64::from(b - b'0')))
    })
}

/// Reads the CPU lines of `/proc/stat` through `buf`, passing them to
/// `cpu` (see [`parse`]). False if the file could not be read.
fn read_stat(buf: &mut [u8], cpu: impl FnMut(usize, u64) -> bool) -> bool {
    let Some(file) = Fd::open(c"/proc/stat") else {
        return false;
    };
    read_lines(buf, |b| file.read(b), cpu)
}

/// Reads through `buf` with `read` (bytes read, 0 at the end, `None` on an
/// error) until the CPU lines are over, passing them to `cpu`. True if they
/// were read to their end (a line cut by the end of the file is left out);
/// false on an error or a line longer than `buf`.
fn read_lines(
    buf: &mut [u8],
    mut read: impl FnMut(&mut [u8]) -> Option<usize>,
    mut cpu: impl FnMut(usize, u64) -> bool,
) -> bool {
    let mut len = 0;
    loop {
        let Some(n) = read(&mut buf[len..]) else {
            return false;
        };
        len += n;
        let parsed = parse(&buf[..len], &mut cpu);
        if parsed.done || n == 0 {
            return true;
        }
        if parsed.used == 0 && len == buf.len() {
            return false;
        }
        buf.copy_within(parsed.used..len, 0);
        len -= parsed.used;
    }
}

/// An open file, closed on drop (std's `File::open` may allocate for a long
/// path; this never does).
struct Fd(libc::c_int);

impl Fd {
    fn open(path: &CStr) -> Option<Fd> {
        // SAFETY: the path is NUL-terminated; open has no other preconditions.
        let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
        (fd >= 0).then_some(Fd(fd))
    }

    /// Bytes read into `buf`, 0 at the end of the file.
    fn read(&self, buf: &mut [u8]) -> Option<usize> {
        loop {
            // SAFETY: reads at most buf.len() bytes into buf.
            let n = unsafe { libc::read(self.0, buf.as_mut_ptr().cast(), buf.len()) };
            if let Ok(n) = usize::try_from(n) {
                return Some(n);
            }
            if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                return None;
            }
        }
    }

    /// The whole file at `path`, if it fits in `buf`.
    fn read_all<'b>(path: &CStr, buf: &'b mut [u8]) -> Option<&'b [u8]> {
        let file = Fd::open(path)?;
        let mut len = 0;
        loop {
            let n = file.read(&mut buf[len..])?;
            if n == 0 {
                return Some(&buf[..len]);
            }
            len += n;
            if len == buf.len() {
                return None;
            }
        }
    }
}

impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: the descriptor is ours and closed once.
        unsafe { libc::close(self.0) };
    }
}

/// The process's cgroup v2 CPU quota in CPUs, if any, using `buf`.
fn read_quota(buf: &mut [u8]) -> Option<f64> {
    let (cgroups, scratch) = buf.split_at_mut(buf.len() / 2);
    let cgroups = Fd::read_all(c"/proc/self/cgroup", cgroups)?;
    quota_on_path(CGROUP_ROOT, cgroup_path(cgroups)?, scratch)
}

/// The process's cgroup v2 path, from `/proc/self/cgroup` (its `0::` line).
fn cgroup_path(cgroups: &[u8]) -> Option<&[u8]> {
    cgroups
        .split(|&b| b == b'\n')
        .find_map(|line| line.strip_prefix(b"0::"))
        .filter(|path| path.starts_with(b"/"))
}

/// The smallest quota (in CPUs) of the `cpu.max` files from `path` up to
/// the top of the hierarchy mounted at `root`: every level limits.
fn quota_on_path(root: &[u8], mut path: &[u8], buf: &mut [u8]) -> Option<f64> {
    const FILE: &[u8] = b"/cpu.max\0";
    let (name, contents) = buf.split_at_mut(buf.len() / 2);
    let mut quota: Option<f64> = None;
    loop {
        path = path.strip_suffix(b"/").unwrap_or(path);
        let len = root.len() + path.len() + FILE.len();
        if len <= name.len() {
            name[..root.len()].copy_from_slice(root);
            name[root.len()..][..path.len()].copy_from_slice(path);
            name[root.len() + path.len()..len].copy_from_slice(FILE);
            let file = CStr::from_bytes_with_nul(&name[..len]).ok();
            if let Some(cpus) = file
                .and_then(|f| Fd::read_all(f, contents))
                .and_then(cpu_max)
            {
                quota = Some(quota.map_or(cpus, |q| q.min(cpus)));
            }
        }
        if path.is_empty() {
            return quota;
        }
        path = &path[..path.iter().rposition(|&b| b == b'/').unwrap_or(0)];
    }
}

/// The CPUs a `cpu.max` file (`$MAX $PERIOD`, in microseconds) allows;
/// `None` for `max` (no limit) and malformed contents.
fn cpu_max(text: &[u8]) -> Option<f64> {
    let text = text.strip_suffix(b"\n").unwrap_or(text);
    let mut fields = text.split(|&b| b == b' ');
    let max = number(fields.next()?)?;
    let period = number(fields.next()?)?;
    (fields.next().is_none() && max > 0 && period > 0).then(|| max as f64 / period as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "cpu  1756190 18967 343256 428943 2238 0 738 2420 0 0
cpu0 869148 7440 171766 225913 652 0 135 1199 0 0
cpu1 887041 11526 171489 203030 1585 0 603 1221 0 0
intr 12345 0 0
ctxt 999
";

    /// The CPU lines `parse` passes on from `text`, and what it returns.
    fn cpus_of(text: &str) -> (Vec<(usize, u64)>, Parsed) {
        let mut cpus = Vec::new();
        let parsed = parse(text.as_bytes(), |n, t| {
            cpus.push((n, t));
            true
        });
        (cpus, parsed)
    }

    /// Tables of a sampler of a test's own.
    fn tables() -> &'static tsan::Mutex<Tables> {
        Box::leak(Box::new(tsan::Mutex::new(Tables::new())))
    }

    /// A file read in pieces of at most `piece` bytes.
    struct Source<'t> {
        rest: &'t [u8],
        piece: usize,
        /// Bytes read so far.
        bytes: usize,
    }

    impl<'t> Source<'t> {
        fn new(text: &'t str, piece: usize) -> Self {
            Self {
                rest: text.as_bytes(),
                piece,
                bytes: 0,
            }
        }

        fn read(&mut self, buf: &mut [u8]) -> Option<usize> {
            let n = buf.len().min(self.rest.len()).min(self.piece);
            buf[..n].copy_from_slice(&self.rest[..n]);
            self.rest = &self.rest[n..];
            self.bytes += n;
            Some(n)
        }
    }

    /// A `/proc/stat` of the CPUs `cpus`, with their idle ticks, and an
    /// `intr` line of `irqs` interrupts.
    fn stat(cpus: impl IntoIterator<Item = (usize, u64)>, irqs: usize) -> String {
        let mut text = String::from("cpu  1756190 18967 343256 428943 2238 0 738 2420 0 0\n");
        for (cpu, idle) in cpus {
            text += &format!("cpu{cpu} 869148 7440 171766 {idle} 0 0 135 1199 0 0\n");
        }
        text += "intr 98116451";
        for irq in 0..irqs {
            text += &format!(" {}", irq % 7 * 1000);
        }
        text +=
            "\nctxt 999\nbtime 1\nprocesses 5\nprocs_running 2\nprocs_blocked 0\nsoftirq 1 2 3\n";
        text
    }

    /// Whether a `Ticks` sees an idle CPU of `mask` between two samples
    /// taken 100 ticks apart.
    fn idle_between(before: &str, after: &str, mask: &CpuMask) -> bool {
        let mut ticks = Box::new(Ticks::new());
        for (text, threshold) in [(before, None), (after, Some(IDLE_SHARE * 100.0))] {
            ticks.begin(threshold);
            let mut buf = [0u8; 4096];
            let mut file = Source::new(text, usize::MAX);
            assert!(read_lines(
                &mut buf,
                |b| file.read(b),
                |n, t| ticks.cpu(n, t, mask)
            ));
            ticks.end();
        }
        ticks.idle_seen
    }

    /// `cpus` CPUs, all busy at the second sample but `idle` (60 of 100
    /// ticks idle).
    fn one_idle(cpus: usize, idle: Option<usize>, mask: &CpuMask) -> bool {
        let before = stat((0..cpus).map(|c| (c, 1000)), 300);
        let after = stat(
            (0..cpus).map(|c| (c, if Some(c) == idle { 1060 } else { 1010 })),
            300,
        );
        idle_between(&before, &after, mask)
    }

    #[test]
    fn parses_each_cpus_idle_and_iowait() {
        let (cpus, parsed) = cpus_of(STAT);
        assert_eq!(cpus, [(0, 225913 + 652), (1, 203030 + 1585)]);
        assert!(parsed.done);
        assert!(cpus_of("intr 1 2\n").0.is_empty());
        // No I/O wait field (Linux before 2.5.41).
        assert_eq!(cpus_of("cpu3 1 2 3 40\n").0, [(3, 40)]);
    }

    #[test]
    fn a_line_cut_by_the_end_of_the_read_is_left_out() {
        let cut = &STAT[..STAT.find("cpu1").unwrap() + 10];
        let (cpus, parsed) = cpus_of(cut);
        assert_eq!(cpus, [(0, 225913 + 652)]);
        assert_eq!(
            parsed,
            Parsed {
                used: STAT.find("cpu1").unwrap(),
                done: false
            }
        );
        // Cut in the word "cpu" or before the next line's start: not over.
        assert!(!cpus_of("cpu0 1 2 3 4 5\ncp").1.done);
        assert!(!cpus_of("cpu0 1 2 3 4 5\n").1.done);
        // A file that ends there: its whole lines count.
        let mut buf = [0u8; 256];
        let mut file = Source::new(cut, usize::MAX);
        let mut seen = 0;
        assert!(read_lines(
            &mut buf,
            |b| file.read(b),
            |_, _| {
                seen += 1;
                true
            }
        ));
        assert_eq!(seen, 1);
    }

    #[test]
    fn garbage_gives_no_cpus_and_no_panic() {
        for text in [
            "",
            "\n\n",
            "cpu\n",
            "cpux 1 2 3 4 5\n",
            "cpu0\n",
            "cpu0 1 2 3\n",
            "cpu0 1 2 3 x 5\n",
            "cpu0 1 2 3 4 x\n",
            "cpu-1 1 2 3 4 5\n",
            "cpu99999999999999999999999 1 2 3 4 5\n",
            "cpu0 1 2 3 99999999999999999999999 5\n",
            "cpu0 1 2 3 18446744073709551615 1\n",
            "\u{fffd}\u{0}cpu0 1 2 3 4 5\n",
        ] {
            assert!(cpus_of(text).0.is_empty(), "{text:?}");
        }
        assert_eq!(
            cpus_of("garbage\ncpu0 1 2 3 4 5\n").1,
            Parsed {
                used: 0,
                done: true
            }
        );
        // A line longer than the buffer: not read.
        let mut buf = [0u8; 16];
        let long = format!("cpu0 {}\n", "1 ".repeat(20));
        let mut file = Source::new(&long, usize::MAX);
        assert!(!read_lines(&mut buf, |b| file.read(b), |_, _| true));
        // A failed read.
        assert!(!read_lines(&mut buf, |_| None, |_, _| true));
    }

    #[test]
    fn any_number_of_cpus_is_watched() {
        // Each fails with the old 64-CPU cap from 65 CPUs on: the idle CPU
        // is the last one.
        for cpus in [1, 2, 64, 65, 256, 1024, MAX_CPUS] {
            let all = CpuMask::of(0..cpus);
            assert!(
                one_idle(cpus, Some(cpus - 1), &all),
                "{cpus} CPUs, last idle"
            );
            assert!(one_idle(cpus, Some(0), &all), "{cpus} CPUs, first idle");
            assert!(!one_idle(cpus, None, &all), "{cpus} CPUs, none idle");
        }
    }

    #[test]
    fn only_the_cpus_of_the_mask_count() {
        let first4 = CpuMask::of(0..4);
        assert!(!one_idle(64, Some(40), &first4), "CPU 40 is not ours");
        assert!(one_idle(64, Some(3), &first4));
        assert!(one_idle(256, Some(200), &CpuMask::of([0, 200])));
        assert!(!one_idle(256, Some(200), &CpuMask::of([0, 199, 201])));
        assert!(!one_idle(4, Some(1), &CpuMask::new()), "no CPU at all");
    }

    #[test]
    fn the_read_ends_after_the_last_cpu_of_the_mask() {
        let text = stat((0..256).map(|c| (c, 1000)), 5000);
        let mut buf = [0u8; 1024];
        let mask = CpuMask::of(0..4);
        let mut ticks = Box::new(Ticks::new());
        let mut file = Source::new(&text, usize::MAX);
        assert!(read_lines(
            &mut buf,
            |b| file.read(b),
            |n, t| ticks.cpu(n, t, &mask)
        ));
        assert_eq!(file.bytes, 1024, "one read");
        // With every CPU, it ends at the `intr` line, not at the file's end.
        let all = CpuMask::of(0..MAX_CPUS);
        ticks.begin(None);
        let mut file = Source::new(&text, usize::MAX);
        assert!(read_lines(
            &mut buf,
            |b| file.read(b),
            |n, t| ticks.cpu(n, t, &all)
        ));
        let intr = text.find("intr").unwrap();
        assert!(
            file.bytes > intr && file.bytes <= intr + buf.len(),
            "{} bytes of {}",
            file.bytes,
            text.len()
        );
        assert_eq!(ticks.next, 256);
    }

    #[test]
    fn offline_cpus_leave_gaps_and_count_only_when_seen_twice() {
        let all = CpuMask::of(0..MAX_CPUS);
        let gaps = |idle: u64| stat([(0, 1000), (1, 1000), (5, 1000), (9, idle)], 10);
        assert!(idle_between(&gaps(1000), &gaps(1060), &all));
        assert!(!idle_between(&gaps(1000), &gaps(1010), &all));
        // CPU 5 comes online with many idle ticks (from before it went
        // offline): no window for it.
        let before = stat([(0, 1000), (1, 1000)], 10);
        let after = stat([(0, 1010), (1, 1010), (5, 9000)], 10);
        assert!(!idle_between(&before, &after, &all));
        // A CPU goes offline and comes back: not compared across the gap,
        // in the middle of the lines (1) or at their end (2).
        for gone in [1, 2] {
            let mut ticks = Box::new(Ticks::new());
            let first = stat((0..3).map(|c| (c, 1000)), 0);
            let without = stat((0..3).filter(|c| *c != gone).map(|c| (c, 1010)), 0);
            let back = stat((0..3).map(|c| (c, if c == gone { 5000 } else { 1020 })), 0);
            for text in [first, without, back] {
                ticks.begin(Some(IDLE_SHARE * 100.0));
                parse(text.as_bytes(), |n, t| ticks.cpu(n, t, &all));
                ticks.end();
            }
            assert!(!ticks.idle_seen, "CPU {gone}");
        }
    }

    #[test]
    fn the_verdict_needs_an_idle_cpu_and_room_in_the_quota() {
        if !std::path::Path::new("/proc/stat").exists() {
            return;
        }
        // Every CPU had no idle tick at a sample 60 ms ago: all count as
        // idle now (they have been idle for longer since boot).
        let verdict_after = |ago: Duration, quota: Option<f64>| {
            let mut sampler = Sampler::new(tables());
            let cpus = {
                let Tables { ticks, mask, .. } = &mut *sampler.tables.lock();
                mask.read_process();
                ticks.stored[..mask.end()].fill(1);
                ticks.high = mask.end();
                mask.count()
            };
            let now = Instant::now();
            sampler.at = Some(now - ago);
            (sampler.quota, sampler.quota_at) = (quota, Some(now));
            sampler.cpu_time = process_cpu_time();
            let verdict = sampler.verdict(now).1;
            (verdict, cpus)
        };
        let verdict = |quota| verdict_after(SAMPLE_EVERY * 6 / 5, quota);
        let (idle, cpus) = verdict(None);
        assert!(idle, "no quota");
        // A window that reaches back past a pause says nothing.
        assert!(!verdict_after(SAMPLE_EVERY * 3, None).0, "an old sample");
        assert!(!verdict(Some(0.5)).0, "a quota of half a CPU");
        if cpus >= 2 {
            // The CPU time between the two samples: microseconds of the
            // 60 ms window the sampler is told.
            assert!(verdict(Some(1.0)).0, "a quota of one CPU of {cpus}");
        }
    }

    #[test]
    fn samples_cost_at_most_a_hundredth_of_a_cpu() {
        let us = Duration::from_micros;
        assert_eq!(interval(us(4)), SAMPLE_EVERY);
        assert_eq!(interval(us(500)), SAMPLE_EVERY);
        assert_eq!(interval(us(4600)), us(460_000));
        assert_eq!(interval(Duration::from_secs(1)), SAMPLE_AT_LEAST_EVERY);
    }

    #[test]
    fn a_quota_below_the_cpus_needs_room_left() {
        assert!(room_left(None, 64, None), "no quota");
        assert!(room_left(Some(64.0), 64, Some(64.0)), "not below the mask");
        assert!(room_left(Some(2.0), 64, Some(1.0)));
        assert!(!room_left(Some(2.0), 64, Some(1.6)), "0.4 CPU left");
        assert!(!room_left(Some(2.0), 64, None), "use unknown");
        assert!(!room_left(Some(0.5), 64, Some(0.0)), "half a CPU in all");
    }

    #[test]
    fn cpu_max_and_the_cgroup_path_are_read() {
        assert_eq!(cpu_max(b"max 100000\n"), None);
        assert_eq!(cpu_max(b"200000 100000\n"), Some(2.0));
        assert_eq!(cpu_max(b"50000 100000"), Some(0.5));
        for garbage in [
            &b""[..],
            b"\n",
            b"200000\n",
            b"x 100000\n",
            b"1 0\n",
            b"1 2 3\n",
        ] {
            assert_eq!(cpu_max(garbage), None, "{garbage:?}");
        }
        assert_eq!(cgroup_path(b"0::/a/b\n"), Some(&b"/a/b"[..]));
        assert_eq!(
            cgroup_path(b"9:name=systemd:/\n4:memory:/x\n0::/\n"),
            Some(&b"/"[..])
        );
        assert_eq!(cgroup_path(b"4:cpu:/x\n"), None, "cgroup v1 only");
    }

    #[test]
    fn the_smallest_quota_up_the_path_counts() {
        let root = std::env::temp_dir().join(format!("idle-cgroup-{}", std::process::id()));
        let dir = root.join("a/b/c");
        std::fs::create_dir_all(&dir).unwrap();
        let write =
            |at: &str, text: &str| std::fs::write(root.join(at).join("cpu.max"), text).unwrap();
        write("a/b/c", "max 100000\n");
        write("a/b", "400000 100000\n");
        write("a", "150000 100000\n");
        let root_bytes = root.as_os_str().as_encoded_bytes();
        let mut buf = [0u8; 8192];
        let quota = |path: &[u8], buf: &mut [u8]| quota_on_path(root_bytes, path, buf);
        assert_eq!(quota(b"/a/b/c", &mut buf), Some(1.5));
        assert_eq!(quota(b"/a/b/c/", &mut buf), Some(1.5));
        assert_eq!(quota(b"/a/b", &mut buf), Some(1.5));
        write("a", "max 100000\n");
        assert_eq!(quota(b"/a/b/c", &mut buf), Some(4.0));
        assert_eq!(quota(b"/", &mut buf), None, "the top has no cpu.max");
        write("", "300000 100000\n");
        assert_eq!(quota(b"/", &mut buf), Some(3.0), "a container's own top");
        assert_eq!(quota(b"/a/b/c", &mut buf), Some(3.0));
        assert_eq!(quota(b"/a/b/c", &mut buf[..40]), None, "path too long");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn the_mask_of_this_process_is_read() {
        let mut mask = Box::new(CpuMask::new());
        mask.read_process();
        let online = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert!(mask.count() >= 1 && mask.count() <= MAX_CPUS);
        assert!(mask.end() >= mask.count());
        // available_parallelism is the same mask (or a cgroup quota below it).
        assert!(online <= mask.count(), "{online} > {}", mask.count());
        let cpu = crate::spin::current_cpu().unwrap_or(0);
        assert!(mask.contains(cpu) || cfg!(not(target_os = "linux")));
        // A thread pinned to one CPU reads the process's mask, not its own.
        #[cfg(target_os = "linux")]
        let pinned = std::thread::spawn(move || {
            // SAFETY: a zeroed cpu_set_t is the empty set; CPU_SET and
            // sched_setaffinity only touch the set they are given.
            unsafe {
                let mut set: libc::cpu_set_t = std::mem::zeroed();
                libc::CPU_SET(cpu, &mut set);
                assert_eq!(
                    libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set),
                    0
                );
            }
            let mut mask = Box::new(CpuMask::new());
            mask.read_process();
            mask.count()
        })
        .join()
        .unwrap();
        #[cfg(target_os = "linux")]
        assert_eq!(pinned, mask.count());
    }

    #[test]
    fn the_verdict_is_kept_between_samples_and_shared() {
        let sampler = Mutex::new(Sampler::new(tables()));
        let mut w = IdleWatch::new();
        let t0 = Instant::now();
        assert!(
            !w.some_cpu_idle_from(&sampler, t0),
            "one sample says nothing"
        );
        let read = sampler.lock().at.is_some();
        assert_eq!(read, std::path::Path::new("/proc/stat").exists());
        w.verdict = true;
        assert!(
            w.some_cpu_idle_from(&sampler, t0 + SAMPLE_EVERY / 2),
            "kept"
        );
        // Another thread gets the process's verdict, not a new sample.
        sampler.lock().verdict = true;
        let mut other = IdleWatch::new();
        assert!(other.some_cpu_idle_from(&sampler, t0 + SAMPLE_EVERY / 2));
        assert_eq!(other.until, Some(t0 + SAMPLE_EVERY));
        // While another thread samples, the old verdict.
        let guard = sampler.lock();
        assert!(other.some_cpu_idle_from(&sampler, t0 + SAMPLE_EVERY * 2));
        drop(guard);
        if read {
            // Sampled again after a long gap: no verdict from that window.
            w.verdict = true;
            assert!(!w.some_cpu_idle_from(&sampler, t0 + SAMPLE_EVERY * 3));
            assert_eq!(w.until, Some(t0 + SAMPLE_EVERY * 4));
        }
    }

    proptest::proptest! {
        #[test]
        fn read_in_any_pieces_gives_the_same_cpus(
            cpus in proptest::collection::btree_map(0usize..2000, 0u64..1 << 40, 0..300),
            irqs in 0usize..3000,
            piece in 1usize..5000,
            buf_len in 256usize..5000,
        ) {
            let text = stat(cpus.iter().map(|(c, t)| (*c, *t)), irqs);
            let mut buf = vec![0u8; buf_len];
            let mut file = Source::new(&text, piece);
            let mut seen = Vec::new();
            let read = read_lines(&mut buf, |b| file.read(b), |n, t| {
                seen.push((n, t));
                true
            });
            proptest::prop_assert!(read);
            let want: Vec<_> = cpus.into_iter().collect();
            proptest::prop_assert_eq!(seen, want);
        }

        #[test]
        fn garbage_in_any_pieces_never_panics(
            text in proptest::collection::vec(
                proptest::sample::select(&b"cpu0123456789 \nix-"[..]), 0..2000),
            piece in 1usize..300,
        ) {
            let text = String::from_utf8(text).unwrap();
            let all = CpuMask::of(0..MAX_CPUS);
            let mut ticks = Box::new(Ticks::new());
            for threshold in [None, Some(0.0)] {
                ticks.begin(threshold);
                let mut buf = [0u8; 64];
                let mut file = Source::new(&text, piece);
                read_lines(&mut buf, |b| file.read(b), |n, t| ticks.cpu(n, t, &all));
                ticks.end();
                proptest::prop_assert!(ticks.stored[ticks.high..].iter().all(|t| *t == 0));
            }
        }
    }

    /// Median of `rounds` timings of `runs` calls of `f`, in ns per call.
    fn ns_per_call(rounds: usize, runs: u32, mut f: impl FnMut()) -> (f64, f64, f64) {
        let mut times: Vec<f64> = (0..rounds)
            .map(|_| {
                let start = Instant::now();
                for _ in 0..runs {
                    f();
                }
                start.elapsed().as_nanos() as f64 / f64::from(runs)
            })
            .collect();
        times.sort_by(f64::total_cmp);
        (times[0], times[rounds / 2], times[rounds - 1])
    }

    /// The cost of one sample and of its parts, here and (parsing only)
    /// for big synthetic `/proc/stat`s:
    /// `cargo test --release -p thread-support --lib sample_cost -- --ignored --nocapture`
    #[test]
    #[ignore = "a measurement, not a check"]
    fn sample_cost() {
        let model = crate::cpu_model_name().unwrap_or_default();
        let stat_now = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        println!(
            "{model}; {} CPUs online; /proc/stat {} bytes, {} numbers",
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            stat_now.len(),
            stat_now
                .split_ascii_whitespace()
                .filter(|w| number(w.as_bytes()).is_some())
                .count()
        );
        let show = |what: &str, (min, median, max): (f64, f64, f64)| {
            println!("{what:<52} min {min:>9.0} median {median:>9.0} max {max:>9.0} ns");
        };
        let mut sampler = Sampler::new(tables());
        let mut now = Instant::now();
        show(
            "whole sample (mask, stat, CPU time; quota 1 in 20)",
            ns_per_call(21, 200, || {
                now += SAMPLE_EVERY;
                sampler.verdict(now);
            }),
        );
        let mut buf = Box::new([0u8; READ_BYTES]);
        show(
            "  /proc/stat open, read, parse",
            ns_per_call(21, 200, || {
                read_stat(&mut buf[..], |_, _| true);
            }),
        );
        show(
            "  /proc/stat open, read 1 byte",
            ns_per_call(21, 200, || {
                let f = Fd::open(c"/proc/stat").unwrap();
                f.read(&mut buf[..1]);
            }),
        );
        show(
            "  /proc/loadavg open, read (for comparison)",
            ns_per_call(21, 200, || {
                let f = Fd::open(c"/proc/loadavg").unwrap();
                f.read(&mut buf[..]);
            }),
        );
        let mut mask = Box::new(CpuMask::new());
        show(
            "  sched_getaffinity (8192 bits) and count",
            ns_per_call(21, 2000, || mask.read_process()),
        );
        show(
            "  CLOCK_PROCESS_CPUTIME_ID",
            ns_per_call(21, 2000, || {
                process_cpu_time();
            }),
        );
        show(
            "  quota (/proc/self/cgroup, cpu.max up the path)",
            ns_per_call(21, 200, || {
                read_quota(&mut buf[..]);
            }),
        );
        for (cpus, irqs) in [(2, 500), (64, 1000), (256, 4000), (1024, 16000)] {
            let text = stat((0..cpus).map(|c| (c, 123_456_789 + c as u64)), irqs);
            let all = CpuMask::of(0..cpus);
            let mut ticks = Box::new(Ticks::new());
            let mut threshold = 0.0;
            let cost = ns_per_call(21, 200, || {
                threshold += 1.0;
                ticks.begin(Some(threshold));
                let mut file = Source::new(&text, usize::MAX);
                assert!(read_lines(
                    &mut buf[..],
                    |b| file.read(b),
                    |n, t| ticks.cpu(n, t, &all)
                ));
                ticks.end();
            });
            show(
                &format!(
                    "  parse from memory: {cpus} CPUs, {irqs} irqs ({} KB)",
                    text.len() / 1024
                ),
                cost,
            );
        }
    }
}
