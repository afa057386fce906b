//! [`Executor`]: how the frame's parallel loops run: the plain sequential
//! loop (the baseline every figure is compared with), or a role pool's
//! parallel loop with a chosen partitioning.

use pool_manager::{DEFAULT_REDUCE_CHUNK, Partitioning, RolePool};

/// Runs the frame's loops over agents.
#[derive(Debug, Clone, Copy)]
pub enum Executor<'a> {
    /// `for agent in agents: agent.step()`, on the calling thread.
    Sequential,
    /// The pool's threads and the calling thread, cut as `partitioning` says.
    Pool {
        /// The pool (the ai pool).
        pool: &'a RolePool,
        /// How the items are cut into units of work.
        partitioning: Partitioning,
    },
}

impl Executor<'_> {
    /// Threads that take part in a loop.
    pub fn participants(&self) -> usize {
        match self {
            Executor::Sequential => 1,
            Executor::Pool { pool, .. } => pool.participants(),
        }
    }

    /// True for the dynamic partitioning: its loop hands out items in order
    /// to whoever is free, so the caller may put the costliest first.
    pub fn takes_items_in_order(&self) -> bool {
        matches!(
            self,
            Executor::Pool {
                partitioning: Partitioning::Dynamic { .. },
                ..
            }
        )
    }

    /// Calls `f(i, &mut items[i])` once per item.
    pub fn for_each_mut<T: Send>(
        &self,
        items: &mut [T],
        f: impl Fn(usize, &mut T) + Sync,
    ) -> Result<(), String> {
        match self {
            Executor::Sequential => {
                for (i, item) in items.iter_mut().enumerate() {
                    f(i, item);
                }
                Ok(())
            }
            Executor::Pool { pool, partitioning } => pool
                .for_each_mut(items, *partitioning, f)
                .map_err(|e| e.to_string()),
        }
    }

    /// Reduces `map(i)` over `0..n` in the same fixed chunks as
    /// [`RolePool::map_reduce`], so the result has the same bits on any
    /// executor and thread count.
    pub fn map_reduce<A: Send>(
        &self,
        n: usize,
        identity: impl Fn() -> A + Sync,
        map: impl Fn(usize) -> A + Sync,
        reduce: impl Fn(A, A) -> A + Sync,
    ) -> Result<A, String> {
        match self {
            Executor::Sequential => {
                let mut total = identity();
                for start in (0..n).step_by(DEFAULT_REDUCE_CHUNK) {
                    let mut acc = identity();
                    for i in start..n.min(start + DEFAULT_REDUCE_CHUNK) {
                        acc = reduce(acc, map(i));
                    }
                    total = reduce(total, acc);
                }
                Ok(total)
            }
            Executor::Pool { pool, .. } => pool
                .map_reduce(n, DEFAULT_REDUCE_CHUNK, identity, map, reduce)
                .map_err(|e| e.to_string()),
        }
    }
}
