//! Property tests of every public function that takes a size, range, grain or
//! count from its caller (issue 13): every index exactly once or a clear
//! error, never a wrap. Grains and counts are drawn up to `usize::MAX`,
//! weighted toward the edges.

use pool_manager::{Error, Partitioning, Role, Runtime, RuntimeConfig};
use proptest::prelude::*;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

/// Runtimes whose ai pool has 0 (off), 1, 2 and 3 threads, shared by the cases.
fn runtimes() -> &'static [Runtime] {
    static RT: OnceLock<Vec<Runtime>> = OnceLock::new();
    RT.get_or_init(|| {
        (0..=3)
            .map(|ai| {
                let mut c = RuntimeConfig::for_cores(4);
                for role in Role::ALL {
                    c.pool_mut(role).threads = Some(0);
                }
                c.pool_mut(Role::Ai).threads = Some(ai);
                c.thread_budget = Some(3);
                Runtime::new(c).unwrap()
            })
            .collect()
    })
}

fn any_size() -> impl Strategy<Value = usize> {
    prop_oneof![
        0..=8usize,
        0..=5000usize,
        (0..=64usize).prop_map(|k| usize::MAX - k),
        (0..=64usize).prop_map(|k| (1usize << 63) + k - 32),
        any::<usize>(),
    ]
}

fn any_partitioning() -> impl Strategy<Value = Partitioning> {
    prop_oneof![
        Just(Partitioning::Interleaved),
        Just(Partitioning::Contiguous),
        any_size().prop_map(|grain| Partitioning::Dynamic { grain }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn for_each_index_runs_every_index_once(
        rt in 0..4usize,
        n in 0..1500usize,
        p in any_partitioning(),
    ) {
        let seen: Vec<AtomicU32> = (0..n).map(|_| AtomicU32::new(0)).collect();
        let outside = AtomicU32::new(0);
        runtimes()[rt].pool(Role::Ai).for_each_index(n, p, |i| match seen.get(i) {
            Some(s) => { s.fetch_add(1, Ordering::Relaxed); }
            None => { outside.fetch_add(1, Ordering::Relaxed); }
        }).unwrap();
        prop_assert_eq!(outside.load(Ordering::Relaxed), 0);
        let wrong = seen.iter().filter(|s| s.load(Ordering::Relaxed) != 1).count();
        prop_assert_eq!(wrong, 0);
    }

    #[test]
    fn for_each_mut_touches_every_item_once(
        rt in 0..4usize,
        n in 0..1500usize,
        p in any_partitioning(),
    ) {
        let mut items = vec![0u32; n];
        runtimes()[rt].pool(Role::Ai).for_each_mut(&mut items, p, |_, x| *x += 1).unwrap();
        prop_assert!(items.iter().all(|&x| x == 1));
    }

    #[test]
    fn map_reduce_folds_every_index_once_in_a_fixed_order(
        n in 0..3000usize,
        chunk in any_size(),
    ) {
        // The index list comes back in order whatever the thread count.
        let lists: Vec<Vec<usize>> = runtimes()
            .iter()
            .map(|rt| {
                rt.pool(Role::Ai)
                    .map_reduce(n, chunk, Vec::new, |i| vec![i], |mut a, b| {
                        a.extend(b);
                        a
                    })
                    .unwrap()
            })
            .collect();
        let expected: Vec<usize> = (0..n).collect();
        for list in &lists {
            prop_assert_eq!(list, &expected);
        }
        // And floating-point sums are the same bits.
        let sums: Vec<u64> = runtimes()
            .iter()
            .map(|rt| {
                rt.pool(Role::Ai)
                    .map_reduce(n, chunk, || 0.0f64, |i| 1.0 / (i as f64 + 1.0), |a, b| a + b)
                    .unwrap()
                    .to_bits()
            })
            .collect();
        prop_assert!(sums.windows(2).all(|w| w[0] == w[1]), "{:?}", sums);
    }

    #[test]
    fn resize_accepts_up_to_the_maximum_and_refuses_the_rest(threads in any_size()) {
        let rt = &runtimes()[3];
        match rt.resize(Role::Ai, threads) {
            Ok(()) => prop_assert!(threads <= rt.budget()),
            Err(Error::InvalidArgument(m)) => {
                prop_assert!(threads > rt.budget());
                prop_assert!(m.contains("maximum"), "{}", m);
            }
            Err(e) => prop_assert!(false, "{}", e),
        }
        rt.resize(Role::Ai, 3).unwrap();
    }

    #[test]
    fn thread_plans_stay_within_the_budget_for_any_core_count(
        cores in any_size(),
        budget in prop::option::of(any_size()),
        sizes in prop::array::uniform5(prop::option::of(any_size())),
    ) {
        let mut c = RuntimeConfig::for_cores(cores);
        c.thread_budget = budget;
        for (role, size) in Role::ALL.into_iter().zip(sizes) {
            c.pool_mut(role).threads = size;
        }
        for role in Role::ALL {
            // The plan's ratio, computed without overflow.
            let exact = (cores.max(1) as u128 * role.plan_threads_at_48() as u128 / 48) as usize;
            prop_assert_eq!(role.default_threads(cores), exact.max(1));
        }
        match c.thread_plan() {
            Ok(plan) => {
                prop_assert!(plan.total() <= plan.budget);
                for i in 0..Role::COUNT {
                    prop_assert!(plan.assigned[i] <= plan.requested[i]);
                    prop_assert!(plan.requested[i] <= plan.budget);
                }
            }
            Err(e) => {
                let m = e.to_string();
                prop_assert!(m.contains("thread_budget") || m.contains("threads"), "{}", m);
            }
        }
    }

    #[test]
    fn queue_capacity_and_counts_from_the_environment_are_checked(value in any::<u64>()) {
        let text = value.to_string();
        let c = RuntimeConfig::for_cores(4).with_env(|name| {
            (name == "CLLM_QUEUE_CAPACITY" || name == "MAX_AI_THREADS").then(|| text.clone())
        });
        match c {
            Ok(c) => {
                prop_assert!((1..=1u64 << 24).contains(&value));
                prop_assert_eq!(c.pool(Role::Ai).queue_capacity as u64, value);
            }
            Err(e) => prop_assert!(e.to_string().contains("range") || e.to_string().contains("large")),
        }
    }
}
