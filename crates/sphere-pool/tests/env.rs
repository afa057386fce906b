//! CLLM_NUM_THREADS and CLLM_CPUS. One test in its own binary: it changes
//! the process environment, which no other thread may read meanwhile.
#![cfg(not(loom))]

use sphere_pool::env::{CPUS_VAR, NUM_THREADS_VAR};
use sphere_pool::{PoolConfig, SpherePool, default_spheres, resolve_spheres};

fn set(name: &str, value: Option<&str>) {
    // SAFETY: this binary's only test runs on one thread, and no pool of it
    // is alive while the environment changes (sphere threads never read it).
    unsafe {
        match value {
            Some(v) => std::env::set_var(name, v),
            None => std::env::remove_var(name),
        }
    }
}

fn error_of(threads: usize) -> String {
    SpherePool::with_threads(threads).unwrap_err().to_string()
}

#[test]
fn the_environment_sets_auto_pools_and_bad_values_are_errors_naming_the_variable() {
    set(NUM_THREADS_VAR, None);
    set(CPUS_VAR, None);
    assert_eq!(SpherePool::new(0).unwrap().spheres(), default_spheres());

    // Threads, the caller included.
    set(NUM_THREADS_VAR, Some("3"));
    assert_eq!(SpherePool::new(0).unwrap().spheres(), 2);
    assert_eq!(SpherePool::with_threads(0).unwrap().spheres(), 2);
    // An explicit count in the configuration wins.
    assert_eq!(SpherePool::new(1).unwrap().spheres(), 1);
    assert_eq!(SpherePool::with_threads(2).unwrap().spheres(), 1);
    assert_eq!(resolve_spheres(0), Ok(2));
    assert_eq!(resolve_spheres(5), Ok(5));

    // One thread: no sphere; APIs that need a sphere keep one.
    set(NUM_THREADS_VAR, Some("1"));
    assert_eq!(SpherePool::new(0).unwrap().spheres(), 0);
    assert_eq!(resolve_spheres(0), Ok(1));

    // Empty counts as unset.
    set(NUM_THREADS_VAR, Some(""));
    assert_eq!(SpherePool::new(0).unwrap().spheres(), default_spheres());

    for bad in ["0", "-2", "two", "4098", " 2"] {
        set(NUM_THREADS_VAR, Some(bad));
        let e = error_of(0);
        assert!(e.contains(NUM_THREADS_VAR), "{bad:?}: {e}");
        assert!(resolve_spheres(0).is_err(), "{bad:?}");
        // Not read when the configuration says how many.
        assert!(SpherePool::with_threads(2).is_ok());
    }
    set(NUM_THREADS_VAR, None);

    // CPU lists.
    set(CPUS_VAR, Some("0"));
    let pool = SpherePool::with_threads(3).unwrap();
    assert_eq!(pool.config().cpus, Some(vec![0]));
    drop(pool);
    // The configuration's list wins over the variable.
    let pool = SpherePool::with_config(PoolConfig {
        spheres: 1,
        cpus: Some(vec![0]),
        ..PoolConfig::default()
    })
    .unwrap();
    assert_eq!(pool.config().cpus, Some(vec![0]));
    drop(pool);
    for bad in ["0-", "a", "0,0", "1023", "3-1"] {
        set(CPUS_VAR, Some(bad));
        let e = error_of(2);
        assert!(e.contains(CPUS_VAR), "{bad:?}: {e}");
    }
    set(CPUS_VAR, None);
}
