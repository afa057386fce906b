//! The parallel loop helpers: partitionings agree, map-reduce is
//! deterministic across thread counts, the caller takes part, panics and
//! failures stop the loop, nested loops do not deadlock.

use pool_manager::{Partitioning, Role, Runtime, RuntimeConfig, TaskError};
use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

const PARTITIONINGS: [Partitioning; 4] = [
    Partitioning::Interleaved,
    Partitioning::Contiguous,
    Partitioning::DYNAMIC,
    Partitioning::Dynamic { grain: 3 },
];

/// A runtime whose ai pool has `threads` threads (0: off), budget 4.
fn ai_runtime(threads: usize) -> Runtime {
    let mut c = RuntimeConfig::for_cores(4);
    for role in Role::ALL {
        c.pool_mut(role).threads = Some(0);
    }
    c.pool_mut(Role::Ai).threads = Some(threads);
    Runtime::new(c).unwrap()
}

/// A deterministic, uneven "agent step": item i gets a value from a hash
/// loop whose length varies a lot with i.
fn step(i: usize, x: &mut u64) {
    let rounds = if i % 17 == 0 { 20_000 } else { 50 + i % 7 };
    let mut h = *x ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    for _ in 0..rounds {
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    }
    *x = h;
}

#[test]
fn every_partitioning_gives_the_same_agents_on_any_thread_count() {
    let expected: Vec<u64> = (0..61u64)
        .map(|i| {
            let mut x = i;
            step(i as usize, &mut x);
            x
        })
        .collect();
    for threads in [0, 1, 2, 3] {
        let rt = ai_runtime(threads);
        for p in PARTITIONINGS {
            let mut agents: Vec<u64> = (0..61).collect();
            rt.pool(Role::Ai)
                .for_each_mut(&mut agents, p, step)
                .unwrap();
            assert_eq!(agents, expected, "{threads} threads, {p:?}");
        }
    }
}

#[test]
fn each_index_is_visited_exactly_once() {
    let rt = ai_runtime(2);
    for n in [0, 1, 2, 3, 100, 1001] {
        for p in PARTITIONINGS {
            let hits: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(0)).collect();
            rt.pool(Role::Ai)
                .for_each_index(n, p, |i| {
                    hits[i].fetch_add(1, Ordering::Relaxed);
                })
                .unwrap();
            assert!(
                hits.iter().all(|h| h.load(Ordering::Relaxed) == 1),
                "n={n} {p:?}"
            );
        }
    }
}

#[test]
fn map_reduce_gives_identical_bits_with_1_2_and_4_threads_and_inline() {
    // Float sums depend on the order of additions: values of wildly
    // different magnitude make any change of order visible.
    let value = |i: usize| ((i as f64) * 0.731).sin() * 10f64.powi((i % 13) as i32 - 6);
    let n = 10_007;
    let mut results = Vec::new();
    for threads in [0, 1, 2, 4] {
        // Worker threads of the ai pool (0: off, inline), plus the caller.
        let rt = ai_runtime(threads);
        let pool = rt.pool(Role::Ai);
        assert_eq!(pool.threads(), threads);
        for _ in 0..3 {
            let sum = pool
                .map_reduce(n, 0, || 0.0f64, value, |a, b| a + b)
                .unwrap();
            results.push((threads, sum.to_bits()));
        }
    }
    let first = results[0].1;
    assert!(
        results.iter().all(|(_, bits)| *bits == first),
        "{results:?}"
    );
    // The chunked order is not the naive left fold: the test can fail.
    let naive: f64 = (0..n).map(value).fold(0.0, |a, b| a + b);
    let chunk16 = f64::from_bits(first);
    assert!((naive - chunk16).abs() <= 1e-6 * naive.abs().max(1.0));
}

#[test]
fn map_reduce_with_a_non_commutative_reduce_keeps_index_order() {
    let rt = ai_runtime(3);
    let joined = rt
        .pool(Role::Ai)
        .map_reduce(
            50,
            4,
            String::new,
            |i| format!("{i},"),
            |mut a, b| {
                a.push_str(&b);
                a
            },
        )
        .unwrap();
    let expected: String = (0..50).map(|i| format!("{i},")).collect();
    assert_eq!(joined, expected);
    let slice: Vec<u32> = (1..=100).collect();
    let total = rt
        .pool(Role::Ai)
        .map_reduce_slice(&slice, 0, || 0u32, |_, v| *v, |a, b| a + b)
        .unwrap();
    assert_eq!(total, 5050);
}

#[test]
fn the_caller_and_the_workers_share_a_loop() {
    let rt = ai_runtime(1);
    assert_eq!(rt.pool(Role::Ai).participants(), 2);
    let names = Mutex::new(HashSet::new());
    // Enough slow items that the worker wakes up and joins.
    for _ in 0..20 {
        rt.pool(Role::Ai)
            .for_each_index(64, Partitioning::DYNAMIC, |_| {
                std::thread::sleep(Duration::from_micros(300));
                names
                    .lock()
                    .unwrap()
                    .insert(std::thread::current().name().unwrap_or("?").to_owned());
            })
            .unwrap();
        if names.lock().unwrap().len() == 2 {
            break;
        }
    }
    let names = names.into_inner().unwrap();
    assert!(names.iter().any(|n| n.starts_with("cllm-ai-")), "{names:?}");
    assert_eq!(names.len(), 2, "{names:?}");
    let s = rt.pool(Role::Ai).snapshot();
    assert!(s.rounds >= 1 && s.round_work >= s.round_wall, "{s:?}");
    assert!(s.busy > Duration::ZERO);
}

#[test]
fn a_panic_in_a_loop_is_returned_and_the_pool_keeps_working() {
    let rt = ai_runtime(2);
    for p in PARTITIONINGS {
        let r = rt.pool(Role::Ai).for_each_index(100, p, |i| {
            if i == 42 {
                panic!("agent {i} exploded");
            }
        });
        match r {
            Err(TaskError::Panicked {
                role: Role::Ai,
                message,
                ..
            }) => assert_eq!(message, "agent 42 exploded"),
            other => panic!("{p:?}: expected the panic, got {other:?}"),
        }
        let sum = rt
            .pool(Role::Ai)
            .map_reduce(100, 0, || 0usize, |i| i, |a, b| a + b)
            .unwrap();
        assert_eq!(sum, 4950);
    }
    let failed = rt
        .pool(Role::Ai)
        .try_for_each_index(10, Partitioning::DYNAMIC, |i| {
            if i == 3 {
                Err("bad agent".into())
            } else {
                Ok(())
            }
        });
    assert_eq!(
        failed,
        Err(TaskError::Failed {
            role: Role::Ai,
            message: "bad agent".into()
        })
    );
}

#[test]
fn a_nested_loop_runs_on_its_caller_without_deadlock() {
    let rt = ai_runtime(2);
    let total = AtomicUsize::new(0);
    let pool = rt.pool(Role::Ai);
    pool.for_each_index(8, Partitioning::DYNAMIC, |_| {
        pool.for_each_index(10, Partitioning::Interleaved, |j| {
            total.fetch_add(j, Ordering::Relaxed);
        })
        .unwrap();
    })
    .unwrap();
    assert_eq!(total.load(Ordering::Relaxed), 8 * 45);
}

#[test]
fn loops_from_several_threads_at_once_all_complete() {
    let rt = ai_runtime(2);
    let total = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..200 {
                    rt.pool(Role::Ai)
                        .for_each_index(16, Partitioning::DYNAMIC, |i| {
                            total.fetch_add(i, Ordering::Relaxed);
                        })
                        .unwrap();
                }
            });
        }
    });
    assert_eq!(total.load(Ordering::Relaxed), 4 * 200 * 120);
}

#[test]
fn many_short_rounds_stay_correct() {
    let rt = ai_runtime(3);
    let mut agents = vec![0u64; 37];
    for round in 0..5_000u64 {
        let p = PARTITIONINGS[(round % 4) as usize];
        rt.pool(Role::Ai)
            .for_each_mut(&mut agents, p, |i, a| *a += i as u64)
            .unwrap();
    }
    assert!(
        agents
            .iter()
            .enumerate()
            .all(|(i, a)| *a == 5_000 * i as u64)
    );
}
