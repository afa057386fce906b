//! Contention-counting locks, deadlock detection, sharded counters, lock-free per-thread statistics.
