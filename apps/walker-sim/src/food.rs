//! The 24 shared food points and the three ways agents record what they eat
//! while stepping in parallel ([`FoodMode`]): one counting lock, atomics, or
//! per-thread deltas merged at the end of the frame.
//!
//! Determinism: during the agent phase every agent sees the levels as they
//! were at the start of the frame and only *adds* its bite (a whole number)
//! to the point's demand. Integer addition is associative and commutative,
//! so the three modes, any thread count and any order give the same total;
//! the levels change once, at the end of the frame.

use crossbeam_utils::CachePadded;
use std::sync::atomic::{AtomicU64, Ordering};
use sync_stats::{CountingMutex, ThreadSlots, current_thread_index};

/// Food points.
pub const FOOD_POINTS: usize = 24;
/// A full point holds this many units.
pub const FOOD_CAPACITY: u32 = 10_000;
/// Units a point regrows per frame.
pub const FOOD_REGROWTH: u32 = 12;

/// How concurrent bites are recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FoodMode {
    /// One counting mutex around the 24 demands (contended).
    Lock,
    /// One atomic per point (`fetch_add`).
    Atomic,
    /// Each thread adds to its own cache-padded row; the rows are merged at
    /// the end of the frame.
    Deltas,
}

impl FoodMode {
    /// Every mode.
    pub const ALL: [FoodMode; 3] = [FoodMode::Lock, FoodMode::Atomic, FoodMode::Deltas];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            FoodMode::Lock => "lock",
            FoodMode::Atomic => "atomic",
            FoodMode::Deltas => "deltas",
        }
    }
}

impl std::str::FromStr for FoodMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        FoodMode::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| format!("unknown food mode {s:?} (lock, atomic, deltas)"))
    }
}

type Row = CachePadded<[AtomicU64; FOOD_POINTS]>;

/// Where the bites of one frame go.
pub struct FoodDemand {
    mode: FoodMode,
    locked: CountingMutex<[u64; FOOD_POINTS]>,
    atomic: [AtomicU64; FOOD_POINTS],
    deltas: ThreadSlots<Row>,
}

impl std::fmt::Debug for FoodDemand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FoodDemand")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl FoodDemand {
    /// Empty demands recorded in `mode`.
    pub fn new(mode: FoodMode) -> Self {
        Self {
            mode,
            locked: CountingMutex::new("food", [0; FOOD_POINTS]),
            atomic: std::array::from_fn(|_| AtomicU64::new(0)),
            deltas: ThreadSlots::new(),
        }
    }

    /// The mode.
    pub fn mode(&self) -> FoodMode {
        self.mode
    }

    /// Records a bite of `units` from point `point` (any thread).
    pub fn eat(&self, point: usize, units: u64) {
        match self.mode {
            FoodMode::Lock => self.locked.lock()[point] += units,
            FoodMode::Atomic => {
                self.atomic[point].fetch_add(units, Ordering::Relaxed);
            }
            FoodMode::Deltas => match current_thread_index() {
                Some(index) => {
                    // Only this thread writes its row: load + store, no RMW.
                    let cell = &self.deltas.get_or_create(index)[point];
                    cell.store(cell.load(Ordering::Relaxed) + units, Ordering::Relaxed);
                }
                // A thread past its thread-local storage: fall back to atomics.
                None => {
                    self.atomic[point].fetch_add(units, Ordering::Relaxed);
                }
            },
        }
    }

    /// The frame's total demand per point, and every record back to zero.
    /// Called by the loop thread after the parallel phase has joined (which
    /// orders every `eat` before it).
    pub fn take(&self) -> [u64; FOOD_POINTS] {
        let mut total = std::mem::take(&mut *self.locked.lock());
        for (t, a) in total.iter_mut().zip(&self.atomic) {
            *t += a.swap(0, Ordering::Relaxed);
        }
        self.deltas.for_each(|_, row| {
            for (t, cell) in total.iter_mut().zip(row.iter()) {
                *t += cell.swap(0, Ordering::Relaxed);
            }
        });
        total
    }

    /// The counting lock of the `Lock` mode (for its contention figures).
    pub fn lock_stats(&self) -> sync_stats::LockStats {
        self.locked.stats()
    }
}

/// The food points: positions along the ground and levels.
#[derive(Debug, Clone, PartialEq)]
pub struct FoodField {
    /// Where each point is.
    pub positions: [f32; FOOD_POINTS],
    /// Units left at each point.
    pub levels: [u32; FOOD_POINTS],
    /// Units each point regrows per frame (the ecosystem changes them).
    pub regrowth: [u32; FOOD_POINTS],
    /// Units eaten since the start.
    pub eaten: u64,
}

impl FoodField {
    /// Points spread evenly over `[0, width)`, full.
    pub fn new(width: f32) -> Self {
        Self {
            positions: std::array::from_fn(|i| (i as f32 + 0.5) * width / FOOD_POINTS as f32),
            levels: [FOOD_CAPACITY; FOOD_POINTS],
            regrowth: [FOOD_REGROWTH; FOOD_POINTS],
            eaten: 0,
        }
    }

    /// The point nearest to `x` (O(1): the points are evenly spaced).
    pub fn nearest(&self, x: f32) -> usize {
        let spacing = self.positions[1] - self.positions[0];
        let i = ((x - self.positions[0]) / spacing + 0.5).floor();
        if i.is_nan() || i < 0.0 {
            0
        } else {
            (i as usize).min(FOOD_POINTS - 1)
        }
    }

    /// Applies a frame's demand, then regrowth.
    pub fn apply(&mut self, demand: &[u64; FOOD_POINTS]) {
        for ((level, &wanted), &regrowth) in self.levels.iter_mut().zip(demand).zip(&self.regrowth)
        {
            let taken = wanted.min(u64::from(*level));
            self.eaten += taken;
            let left = *level - taken as u32;
            *level = (left + regrowth).min(FOOD_CAPACITY);
        }
    }

    /// Feeds the state to `hash`.
    pub fn hash_into(&self, hash: &mut crate::hash::StateHash) {
        hash.f32s(&self.positions);
        for i in 0..FOOD_POINTS {
            hash.u64(u64::from(self.levels[i]) << 32 | u64::from(self.regrowth[i]));
        }
        hash.u64(self.eaten);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn every_mode_gives_the_same_totals_from_many_threads() {
        let mut results = Vec::new();
        for mode in FoodMode::ALL {
            let demand = Arc::new(FoodDemand::new(mode));
            std::thread::scope(|s| {
                for t in 0..4u64 {
                    let demand = &demand;
                    s.spawn(move || {
                        for k in 0..1000u64 {
                            demand.eat(((k * 7 + t) % FOOD_POINTS as u64) as usize, 1 + k % 3);
                        }
                    });
                }
            });
            results.push(demand.take());
            assert_eq!(demand.take(), [0; FOOD_POINTS], "{mode:?} resets");
        }
        assert_eq!(results[0], results[1]);
        assert_eq!(results[0], results[2]);
        assert_eq!(results[0].iter().sum::<u64>(), 4 * 1999);
    }

    #[test]
    fn nearest_point_is_found_at_the_ends_and_in_between() {
        let f = FoodField::new(240.0);
        assert_eq!(f.nearest(-50.0), 0);
        assert_eq!(f.nearest(1e9), FOOD_POINTS - 1);
        assert_eq!(f.nearest(f.positions[7] + 1.0), 7);
        assert_eq!(f.nearest(f32::NAN), 0);
    }
}
