//! An oversubscribed pool spreads its threads over the CPUs itself
//! (`thread_support::placement`): started three on one CPU and one on the
//! other, threads that spin between rounds would stay so for good.
#![cfg(all(target_os = "linux", not(loom)))]

use sphere_pool::{PoolConfig, SpherePool};
use std::time::{Duration, Instant};
use thread_support::CpuMask;

/// Sets the affinity of thread `tid` (0: the calling thread).
fn pin(tid: i32, cpus: &[usize]) {
    assert!(
        CpuMask::of(cpus.iter().copied()).apply_to(tid),
        "sched_setaffinity({tid}, {cpus:?})"
    );
}

/// The thread ids of this process's threads whose name starts with `prefix`.
fn tids_named(prefix: &str) -> Vec<i32> {
    let mut tids: Vec<(String, i32)> = std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|e| {
            let tid: i32 = e.ok()?.file_name().to_str()?.parse().ok()?;
            let name = std::fs::read_to_string(format!("/proc/self/task/{tid}/comm")).ok()?;
            name.starts_with(prefix).then_some((name, tid))
        })
        .collect();
    tids.sort();
    tids.into_iter().map(|(_, tid)| tid).collect()
}

/// The CPU thread `tid` last ran on (field 39 of its stat line).
fn cpu_of(tid: i32) -> usize {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    after_name.split(' ').nth(36).unwrap().parse().unwrap()
}

fn work(d: Duration) {
    let start = Instant::now();
    while start.elapsed() < d {
        std::hint::spin_loop();
    }
}

#[test]
fn an_oversubscribed_pool_started_three_and_one_moves_a_sphere() {
    let mask = CpuMask::of_this_thread().unwrap();
    let cpus: Vec<usize> = (0..mask.end()).filter(|&c| mask.contains(c)).collect();
    if cpus.len() < 2 {
        eprintln!("skipped: this process may use {} CPU", cpus.len());
        return;
    }
    let (a, b) = (cpus[0], cpus[1]);
    pin(0, &[a, b]);
    let pool = SpherePool::with_config(PoolConfig {
        spheres: 3,
        name_prefix: "spread-test".into(),
        ..PoolConfig::default()
    })
    .unwrap();
    if !pool.spreads_its_threads() {
        eprintln!("skipped: 4 threads do not oversubscribe this machine's CPUs");
        return;
    }
    let spheres = tids_named("spread-test");
    assert_eq!(spheres.len(), 3, "{spheres:?}");
    let share = Duration::from_micros(20);
    // Three on CPU a (two spheres and the caller), one on b.
    pin(spheres[0], &[a]);
    pin(spheres[1], &[a]);
    pin(spheres[2], &[b]);
    pin(0, &[a]);
    for _ in 0..50 {
        pool.run_all(|_| work(share)).unwrap();
    }
    for &tid in &spheres {
        pin(tid, &[a, b]);
    }
    pin(0, &[a, b]);
    // The pool looks at where its threads ran after round 128 (counted
    // from its first round). Just before, they are most likely still three
    // and one: the kernel took 9 to 16 batches of 128 rounds to move one by
    // itself on the 2-vCPU machine here.
    let on_a = |spheres: &[i32]| {
        usize::from(thread_support::spin::current_cpu() == Some(a))
            + spheres.iter().filter(|&&t| cpu_of(t) == a).count()
    };
    for _ in 50..127 {
        pool.run_all(|_| work(share)).unwrap();
    }
    let before_the_look = on_a(&spheres);
    for _ in 127..256 {
        pool.run_all(|_| work(share)).unwrap();
    }
    if before_the_look == 3 {
        assert!(
            pool.placement_moves() >= 1,
            "three threads on CPU {a} when the pool looked, and no sphere moved"
        );
    } else {
        eprintln!("the kernel spread the threads first ({before_the_look} on CPU {a})");
    }
    // Then the threads stay spread on a quiet machine. Beside another
    // program's busy thread the kernel packs them on the other CPU and may
    // undo a move (the pool then looks less and less often): not asserted.
    let mut seen = Vec::new();
    for _ in 0..8 {
        seen.push(on_a(&spheres));
        for _ in 0..128 {
            pool.run_all(|_| work(share)).unwrap();
        }
    }
    eprintln!(
        "threads on CPU {a}: {before_the_look} before the look, then {seen:?}; moves: {}",
        pool.placement_moves()
    );
}
