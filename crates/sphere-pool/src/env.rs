//! The environment knobs of sphere pools, read when a pool is created:
//!
//! | variable | meaning | precedence |
//! |---|---|---|
//! | `CLLM_NUM_THREADS` | threads of a pool created with "auto", the calling thread included (`OMP_NUM_THREADS`'s meaning): `1` = no sphere, everything runs on the caller | an explicit sphere or thread count in the configuration wins |
//! | `CLLM_CPUS` | CPUs to pin the spheres to, `0-3,8` style: sphere `i` runs on the list's entry `(i + 1) % len` | a CPU list in the configuration wins |
//!
//! An empty variable counts as unset. A bad value is an error naming the
//! variable, never a silent fallback.

use crate::error::Error;
pub use crate::limits::MAX_THREADS;

/// Threads (the caller included) of a pool created with "auto".
pub const NUM_THREADS_VAR: &str = "CLLM_NUM_THREADS";
/// CPUs to pin spheres to.
pub const CPUS_VAR: &str = "CLLM_CPUS";
/// The highest CPU number a list may name (glibc's `CPU_SETSIZE - 1`).
pub const MAX_CPU: usize = 1023;

/// Parses a thread count (the caller included): a decimal number from 1 to
/// [`MAX_THREADS`], nothing else (no sign, no spaces).
pub fn parse_num_threads(text: &str) -> Result<usize, String> {
    let n = parse_number(text).ok_or_else(|| {
        format!(
            "{text:?} is not a number of threads (1 to {MAX_THREADS}, the calling thread included)"
        )
    })?;
    if !(1..=MAX_THREADS).contains(&n) {
        return Err(format!(
            "{n} threads: the count must be 1 to {MAX_THREADS} (the calling thread included)"
        ));
    }
    Ok(n)
}

/// Parses a CPU list such as `0-3,8`: comma-separated CPU numbers and
/// inclusive ranges `a-b` with `a <= b`, in any order, no CPU twice, none
/// above [`MAX_CPU`], no spaces or empty items. Returns the CPUs in the
/// order written.
pub fn parse_cpu_list(text: &str) -> Result<Vec<usize>, String> {
    if text.is_empty() {
        return Err("the CPU list is empty".to_owned());
    }
    let mut cpus = Vec::new();
    let mut seen = vec![false; MAX_CPU + 1];
    for item in text.split(',') {
        let bad = |why: &str| format!("item {item:?} of the CPU list {text:?} {why}");
        let (first, last) = match item.split_once('-') {
            Some((a, b)) => (parse_number(a), parse_number(b)),
            None => (parse_number(item), parse_number(item)),
        };
        let (Some(first), Some(last)) = (first, last) else {
            return Err(bad("is not a CPU number or a range a-b"));
        };
        if first > last {
            return Err(bad("is a reversed range"));
        }
        if last > MAX_CPU {
            return Err(bad(&format!("names a CPU above {MAX_CPU}")));
        }
        for (cpu, taken) in seen.iter_mut().enumerate().take(last + 1).skip(first) {
            if std::mem::replace(taken, true) {
                return Err(bad(&format!("names CPU {cpu} a second time")));
            }
            cpus.push(cpu);
        }
    }
    Ok(cpus)
}

/// Checks that the process may run on every CPU of `cpus` (pinning to
/// another would silently not happen). `source` names the setting.
pub(crate) fn check_cpus_available(cpus: &[usize], source: &str) -> Result<(), Error> {
    let Some(allowed) = core_affinity::get_core_ids() else {
        return Ok(()); // The platform cannot tell; pinning stays a hint.
    };
    let allowed: Vec<usize> = allowed.into_iter().map(|c| c.id).collect();
    if cpus.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "{source}: the CPU list is empty"
        )));
    }
    match cpus.iter().find(|c| !allowed.contains(c)) {
        Some(cpu) => Err(Error::InvalidArgument(format!(
            "{source}: CPU {cpu} is not one this process may run on ({allowed:?})"
        ))),
        None => Ok(()),
    }
}

/// `CLLM_NUM_THREADS`, if set and not empty.
pub fn env_num_threads() -> Result<Option<usize>, Error> {
    read(NUM_THREADS_VAR, parse_num_threads)
}

/// `CLLM_CPUS`, if set and not empty (checked against the CPUs this process
/// may run on).
pub fn env_cpus() -> Result<Option<Vec<usize>>, Error> {
    let cpus = read(CPUS_VAR, parse_cpu_list)?;
    if let Some(cpus) = &cpus {
        check_cpus_available(cpus, CPUS_VAR)?;
    }
    Ok(cpus)
}

fn read<T>(name: &str, parse: fn(&str) -> Result<T, String>) -> Result<Option<T>, Error> {
    match std::env::var(name) {
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => {
            Err(Error::InvalidArgument(format!("{name} is not valid UTF-8")))
        }
        Ok(text) if text.is_empty() => Ok(None),
        Ok(text) => parse(&text)
            .map(Some)
            .map_err(|why| Error::InvalidArgument(format!("{name}={text:?}: {why}"))),
    }
}

/// A plain decimal number: ASCII digits only, no overflow.
fn parse_number(text: &str) -> Option<usize> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_counts_parse_strictly() {
        assert_eq!(parse_num_threads("1"), Ok(1));
        assert_eq!(parse_num_threads("4"), Ok(4));
        assert_eq!(parse_num_threads("4097"), Ok(4097));
        for bad in [
            "",
            "0",
            "-1",
            "+2",
            " 2",
            "2 ",
            "2x",
            "4098",
            "1e3",
            "99999999999999999999999",
        ] {
            assert!(parse_num_threads(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn cpu_lists_parse_strictly() {
        assert_eq!(parse_cpu_list("0-3,8"), Ok(vec![0, 1, 2, 3, 8]));
        assert_eq!(parse_cpu_list("1"), Ok(vec![1]));
        assert_eq!(parse_cpu_list("5,2-3"), Ok(vec![5, 2, 3]));
        assert_eq!(parse_cpu_list("7-7"), Ok(vec![7]));
        assert_eq!(parse_cpu_list("1023"), Ok(vec![1023]));
        for bad in [
            "",
            ",",
            "0,",
            ",0",
            "0,,1",
            "a",
            "0-",
            "-3",
            "3-1",
            "0-3,2",
            "1,1",
            "0 ,1",
            " 0",
            "1024",
            "0-1024",
            "0-1-2",
            "0x1",
            "+1",
            "99999999999999999999999",
        ] {
            let e = parse_cpu_list(bad);
            assert!(e.is_err(), "{bad:?} accepted: {e:?}");
        }
        assert!(
            parse_cpu_list("0-3,2")
                .unwrap_err()
                .contains("CPU 2 a second time")
        );
    }

    #[test]
    fn unavailable_cpus_are_refused_by_name() {
        let e = check_cpus_available(&[0, MAX_CPU], "cpus").unwrap_err();
        assert!(e.to_string().contains("CPU 1023"), "{e}");
        assert!(check_cpus_available(&[], "cpus").is_err());
    }
}
