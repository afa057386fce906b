//! The machine as a thread sees it: how many cores the process may use, and
//! how much CPU time a thread or the process has used.

use std::time::Duration;

/// The number of CPUs this process may run on, read once per process (the
/// standard library's answer costs system calls and cgroup file reads on
/// every call, and the spin gate asks on every spin).
pub fn available_cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// The size of a memory page in bytes (read once; 4096 if the system will
/// not say).
pub fn page_size() -> usize {
    static PAGE: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *PAGE.get_or_init(|| {
        // SAFETY: sysconf has no preconditions; it returns -1 on error.
        let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if size > 0 { size as usize } else { 4096 }
    })
}

/// The CPU time the calling thread has used so far (`CLOCK_THREAD_CPUTIME_ID`).
///
/// Unlike wall time, it does not count the time the thread spent descheduled,
/// so summing it over tasks gives work that fits in `cores x wall` even when
/// the machine is oversubscribed. Returns zero if the clock is unavailable.
pub fn thread_cpu_time() -> Duration {
    cpu_clock(libc::CLOCK_THREAD_CPUTIME_ID).unwrap_or(Duration::ZERO)
}

/// The CPU time the whole process has used so far, every thread, user and
/// system (`CLOCK_PROCESS_CPUTIME_ID`). Returns zero if the clock is
/// unavailable.
pub fn process_cpu_time() -> Duration {
    cpu_clock(libc::CLOCK_PROCESS_CPUTIME_ID).unwrap_or(Duration::ZERO)
}

/// The time of CPU clock `clock`; `None` if it is unavailable.
pub(crate) fn cpu_clock(clock: libc::clockid_t) -> Option<Duration> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; clock_gettime only writes it.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    (rc == 0).then(|| {
        Duration::new(
            ts.tv_sec.max(0) as u64,
            ts.tv_nsec.clamp(0, 999_999_999) as u32,
        )
    })
}

/// The CPU's model name (`model name` in /proc/cpuinfo), for the first line
/// of a benchmark's report; `None` where the system does not say.
pub fn cpu_model_name() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("model name"))?;
    Some(line.split_once(':')?.1.trim().to_owned())
}

/// A duration in nanoseconds, saturating at `u64::MAX` (584 years): the one
/// conversion every counter and histogram of the workspace uses.
pub fn duration_to_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_model_name_is_the_value_of_its_cpuinfo_line() {
        let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        match info.lines().find(|l| l.starts_with("model name")) {
            Some(line) => {
                let name = cpu_model_name().expect("a model name line");
                assert!(
                    !name.is_empty() && line.ends_with(&name),
                    "{line:?} -> {name:?}"
                );
                assert!(!name.contains(':') || line.matches(':').count() > 1);
            }
            None => assert_eq!(cpu_model_name(), None),
        }
    }

    #[test]
    fn thread_cpu_time_grows_with_work_but_not_with_sleep() {
        let start = thread_cpu_time();
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(i);
        }
        std::hint::black_box(x);
        let worked = thread_cpu_time() - start;
        assert!(worked > Duration::ZERO);
        let before_sleep = thread_cpu_time();
        std::thread::sleep(Duration::from_millis(30));
        let slept = thread_cpu_time() - before_sleep;
        assert!(
            slept < Duration::from_millis(10),
            "sleeping used {slept:?} of CPU"
        );
    }

    #[test]
    fn process_cpu_time_counts_other_threads() {
        let before = process_cpu_time();
        std::thread::spawn(|| {
            let start = thread_cpu_time();
            let mut x = 1u64;
            while thread_cpu_time() - start < Duration::from_millis(20) {
                x = std::hint::black_box(x.wrapping_mul(3));
            }
        })
        .join()
        .unwrap();
        assert!(process_cpu_time() - before >= Duration::from_millis(20));
    }

    #[test]
    fn nanos_saturate_instead_of_wrapping() {
        assert_eq!(duration_to_nanos(Duration::from_nanos(7)), 7);
        assert_eq!(duration_to_nanos(Duration::from_secs(1)), 1_000_000_000);
        assert_eq!(duration_to_nanos(Duration::MAX), u64::MAX);
        // 2^64 ns exactly: one past the largest u64, truncation would give 0.
        let just_over = Duration::new(18_446_744_073, 709_551_616);
        assert_eq!(duration_to_nanos(just_over), u64::MAX);
    }

    #[test]
    fn available_cores_is_read_once_not_per_call() {
        // The standard library's answer reads cgroup files (tens of us a
        // call); the spin gate asks for it on every spin.
        let n = available_cores();
        assert!(n >= 1);
        let start = std::time::Instant::now();
        for _ in 0..20_000 {
            assert_eq!(available_cores(), n);
        }
        assert!(
            start.elapsed() < Duration::from_millis(50),
            "took {:?}",
            start.elapsed()
        );
    }
}
