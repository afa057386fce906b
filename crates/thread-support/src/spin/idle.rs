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

use std::time::{Duration, Instant};

/// How often a thread reads `/proc/stat` at most.
const SAMPLE_EVERY: Duration = Duration::from_millis(50);

/// A CPU idle for more than this share of the time since the last sample
/// counts as idle.
const IDLE_SHARE: f64 = 0.5;

/// One thread's samples and verdict.
#[derive(Debug, Default)]
pub struct IdleWatch {
    /// When the last sample was taken.
    at: Option<Instant>,
    /// Idle (and I/O wait) ticks of each CPU at the last sample.
    idle: Vec<u64>,
    verdict: bool,
}

impl IdleWatch {
    /// No sample yet: no CPU is known to be idle.
    pub const fn new() -> Self {
        Self {
            at: None,
            idle: Vec::new(),
            verdict: false,
        }
    }

    /// A watch that has just seen `verdict` (tests).
    #[cfg(test)]
    pub(crate) fn seen(verdict: bool) -> Self {
        Self {
            at: Some(Instant::now()),
            idle: Vec::new(),
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
        let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
            return false;
        };
        let idle = parse_idle(&stat);
        // Judged over recent time only: a window that reaches back past a
        // pause of this thread (parked, the CPUs idle meanwhile) says
        // nothing about now.
        self.verdict = match self.at {
            Some(at) if now.duration_since(at) <= 2 * SAMPLE_EVERY => {
                some_idle(&self.idle, &idle, ticks(now.duration_since(at)))
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

/// Idle plus I/O wait ticks of each `cpuN` line of `/proc/stat`.
fn parse_idle(stat: &str) -> Vec<u64> {
    stat.lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .map(|l| {
            // cpuN user nice system idle iowait ...
            l.split_ascii_whitespace()
                .skip(4)
                .take(2)
                .filter_map(|f| f.parse::<u64>().ok())
                .sum()
        })
        .collect()
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
        assert_eq!(parse_idle(STAT), vec![225913 + 652, 203030 + 1585]);
        assert_eq!(parse_idle("intr 1 2\n"), Vec::<u64>::new());
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
