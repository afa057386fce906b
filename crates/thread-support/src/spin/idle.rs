//! Is some CPU of the machine idle? From the per-CPU idle times of
//! `/proc/stat` (about 5 us to read), sampled at most every 50 ms per
//! thread, the verdict kept in between.
//!
//! Threads that park or yield to each other look light, and the scheduler
//! then keeps them on one CPU (waking a thread where its waker runs, or
//! packing light threads), even with another CPU idle; spinning threads look
//! busy and the load balancer spreads them within milliseconds. So while a
//! CPU is idle, a spin that shares its CPU keeps spinning rather than
//! yielding or parking: the balancer will move one of the two.

use std::io::Read;
use std::time::{Duration, Instant};

/// CPUs watched (the first ones of `/proc/stat`): a fixed array, so that a
/// wait never allocates.
const MAX_CPUS: usize = 64;

/// Bytes of `/proc/stat` read (its per-CPU lines come first), on the stack.
const READ_BYTES: usize = 8192;

/// How often a thread reads `/proc/stat` at most.
const SAMPLE_EVERY: Duration = Duration::from_millis(50);

/// A CPU idle for more than this share of the time since the last sample
/// counts as idle.
const IDLE_SHARE: f64 = 0.5;

/// One thread's samples and verdict.
#[derive(Debug)]
pub struct IdleWatch {
    /// When the last sample was taken.
    at: Option<Instant>,
    /// Idle (and I/O wait) ticks of each CPU at the last sample.
    idle: Idle,
    verdict: bool,
}

impl Default for IdleWatch {
    fn default() -> Self {
        Self::new()
    }
}

impl IdleWatch {
    /// No sample yet: no CPU is known to be idle.
    pub const fn new() -> Self {
        Self {
            at: None,
            idle: Idle::EMPTY,
            verdict: false,
        }
    }

    /// A watch that has just seen `verdict` (tests).
    #[cfg(test)]
    pub(crate) fn seen(verdict: bool) -> Self {
        Self {
            at: Some(Instant::now()),
            idle: Idle::EMPTY,
            verdict,
        }
    }

    /// True if some CPU was mostly idle over the last sampling period;
    /// samples again if the last sample is old enough.
    pub fn some_cpu_idle(&mut self, now: Instant) -> bool {
        if self
            .at
            .is_some_and(|at| now.duration_since(at) < SAMPLE_EVERY)
        {
            return self.verdict;
        }
        let mut buf = [0u8; READ_BYTES];
        let Some(stat) = read_stat(&mut buf) else {
            return false;
        };
        let idle = parse_idle(stat);
        // Judged over recent time only: a window that reaches back past a
        // pause of this thread (parked, the CPUs idle meanwhile) says
        // nothing about now.
        self.verdict = match self.at {
            Some(at) if now.duration_since(at) <= 2 * SAMPLE_EVERY => {
                some_idle(self.idle.get(), idle.get(), ticks(now.duration_since(at)))
            }
            _ => false,
        };
        self.at = Some(now);
        self.idle = idle;
        self.verdict
    }
}

/// Clock ticks (`USER_HZ`) in `d`.
fn ticks(d: Duration) -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    d.as_secs_f64() * if hz > 0 { hz as f64 } else { 100.0 }
}

/// Idle ticks of up to `MAX_CPUS` CPUs.
#[derive(Debug, Clone, Copy)]
struct Idle {
    ticks: [u64; MAX_CPUS],
    cpus: usize,
}

impl Idle {
    const EMPTY: Idle = Idle {
        ticks: [0; MAX_CPUS],
        cpus: 0,
    };

    fn get(&self) -> &[u64] {
        &self.ticks[..self.cpus]
    }
}

/// The start of `/proc/stat` in `buf` (no allocation: the path is short
/// enough for std to convert on the stack).
fn read_stat(buf: &mut [u8]) -> Option<&str> {
    let mut file = std::fs::File::open("/proc/stat").ok()?;
    let mut len = 0;
    while len < buf.len() {
        match file.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(_) => return None,
        }
    }
    // A cut in the middle of a character can only be in a later line.
    let text = &buf[..len];
    let valid = match std::str::from_utf8(text) {
        Ok(s) => s.len(),
        Err(e) => e.valid_up_to(),
    };
    std::str::from_utf8(&text[..valid]).ok()
}

/// Idle plus I/O wait ticks of each complete `cpuN` line of `/proc/stat`.
fn parse_idle(stat: &str) -> Idle {
    let mut idle = Idle::EMPTY;
    // Only whole lines: the read may have cut the last one.
    let whole = stat.rfind('\n').map_or("", |end| &stat[..end]);
    let cpu_lines = whole
        .lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit));
    for line in cpu_lines.take(MAX_CPUS) {
        // cpuN user nice system idle iowait ...
        idle.ticks[idle.cpus] = line
            .split_ascii_whitespace()
            .skip(4)
            .take(2)
            .filter_map(|f| f.parse::<u64>().ok())
            .sum();
        idle.cpus += 1;
    }
    idle
}

/// True if some CPU was idle for more than `IDLE_SHARE` of `elapsed`
/// ticks between the two samples (of the same CPUs).
fn some_idle(before: &[u64], after: &[u64], elapsed: f64) -> bool {
    before.len() == after.len()
        && elapsed > 0.0
        && before
            .iter()
            .zip(after)
            .any(|(b, a)| a.saturating_sub(*b) as f64 > IDLE_SHARE * elapsed)
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

    #[test]
    fn parses_each_cpus_idle_and_iowait() {
        assert_eq!(parse_idle(STAT).get(), [225913 + 652, 203030 + 1585]);
        assert_eq!(parse_idle("intr 1 2\n").get(), [0u64; 0]);
        // A line cut by the end of the read is left out.
        assert_eq!(
            parse_idle(&STAT[..STAT.find("cpu1").unwrap() + 10]).get(),
            [225913 + 652]
        );
    }

    #[test]
    fn a_cpu_idle_more_than_half_the_time_counts() {
        // 2 s at 100 ticks per second: 200 ticks.
        assert!(some_idle(&[100, 100], &[100, 250], 200.0), "75% idle");
        assert!(!some_idle(&[100, 100], &[190, 190], 200.0), "both 45% idle");
        assert!(!some_idle(&[100], &[300, 300], 200.0), "different CPUs");
        assert!(!some_idle(&[100, 100], &[300, 300], 0.0), "no time passed");
    }

    #[test]
    fn the_verdict_is_kept_between_samples() {
        let mut w = IdleWatch::new();
        let t0 = Instant::now();
        assert!(!w.some_cpu_idle(t0), "one sample says nothing");
        w.verdict = true;
        assert!(w.some_cpu_idle(t0 + SAMPLE_EVERY / 2), "kept");
        if std::path::Path::new("/proc/stat").exists() {
            // Sampled again after a long gap: no verdict from that window.
            w.verdict = true;
            assert!(!w.some_cpu_idle(t0 + SAMPLE_EVERY * 3));
            assert_eq!(w.at, Some(t0 + SAMPLE_EVERY * 3));
        }
    }
}
