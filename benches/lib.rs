//! Shared helpers of the criterion benches (the benches themselves are
//! `[[bench]]` targets): medians and spreads, interleaved batches, and the
//! CPU line that goes with every figure.

use std::time::{Duration, Instant};

/// The median of `values` (the upper middle one of an even count).
///
/// # Panics
/// If `values` is empty or holds a NaN.
pub fn median<T: PartialOrd + Copy>(values: Vec<T>) -> T {
    spread(values).1
}

/// The smallest, median and largest of `values`.
///
/// # Panics
/// If `values` is empty or holds a NaN.
pub fn spread<T: PartialOrd + Copy>(mut values: Vec<T>) -> (T, T, T) {
    assert!(!values.is_empty(), "no values");
    values.sort_by(|a, b| a.partial_cmp(b).expect("a NaN among the values"));
    (
        values[0],
        values[values.len() / 2],
        values[values.len() - 1],
    )
}

/// The mean time of one call of `f` over a batch of `rounds` calls.
pub fn time_batch(rounds: u32, mut f: impl FnMut()) -> Duration {
    let start = Instant::now();
    for _ in 0..rounds {
        f();
    }
    start.elapsed() / rounds.max(1)
}

/// Runs `reps` rounds in which every method times one batch, in turns, so
/// that a slow moment of a shared machine hits all methods alike; `pause`
/// comes before each batch, so that one method's spinning threads are not
/// still running during the next one's. Returns each method's batch times,
/// in the order of `methods`.
pub fn interleaved(
    reps: usize,
    pause: Duration,
    methods: &mut [&mut dyn FnMut() -> Duration],
) -> Vec<Vec<Duration>> {
    let mut times = vec![Vec::with_capacity(reps); methods.len()];
    for _ in 0..reps {
        for (method, t) in methods.iter_mut().zip(&mut times) {
            std::thread::sleep(pause);
            t.push(method());
        }
    }
    times
}

/// `cpu model="<model name> family <f> model <m> stepping <s>" cores=<n>`,
/// from the first CPU in /proc/cpuinfo (as `make compare` prints it).
pub fn cpu_line() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |key: &str| {
        info.lines()
            .take_while(|l| !l.is_empty())
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                (k.trim() == key).then(|| v.trim().to_owned())
            })
            .unwrap_or_else(|| "?".to_owned())
    };
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!(
        "cpu model=\"{} family {} model {} stepping {}\" cores={cores}",
        field("model name"),
        field("cpu family"),
        field("model"),
        field("stepping")
    )
}

/// The load average (1, 5, 15 minutes) from /proc/loadavg, for the record.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_spread_of_odd_and_even_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4, 1, 3, 2]), 3);
        assert_eq!(spread(vec![5, 9, 1, 7, 3]), (1, 5, 9));
        assert_eq!(
            median(vec![Duration::from_millis(2), Duration::from_millis(1)]),
            Duration::from_millis(2)
        );
    }

    #[test]
    fn interleaved_runs_every_method_in_turns() {
        let order = std::cell::RefCell::new(Vec::new());
        let mut a = || {
            order.borrow_mut().push('a');
            Duration::from_nanos(1)
        };
        let mut b = || {
            order.borrow_mut().push('b');
            Duration::from_nanos(2)
        };
        let times = interleaved(3, Duration::ZERO, &mut [&mut a, &mut b]);
        assert_eq!(order.into_inner(), ['a', 'b', 'a', 'b', 'a', 'b']);
        assert_eq!(
            times,
            vec![
                vec![Duration::from_nanos(1); 3],
                vec![Duration::from_nanos(2); 3]
            ]
        );
    }

    #[test]
    fn cpu_line_names_a_model_and_the_cores() {
        let line = cpu_line();
        assert!(line.starts_with("cpu model=\""), "{line}");
        assert!(!line.ends_with("cores=0"), "{line}");
    }
}
