//! [`Replay`]: an agent's ring of 2000 transitions of 61 floats, with
//! proportional prioritised sampling.

use crate::nn::INPUTS;
use crate::rng::Rng;

/// Transitions kept.
pub const CAPACITY: usize = 2000;
/// Floats per transition: state (29), action, reward, next state (29), done.
pub const WIDTH: usize = 2 * INPUTS + 3;

const ACTION: usize = INPUTS;
const REWARD: usize = INPUTS + 1;
const NEXT: usize = INPUTS + 2;
const DONE: usize = 2 * INPUTS + 2;
/// Added to |TD error| so that no transition has priority zero.
const PRIORITY_FLOOR: f32 = 1e-3;

/// One transition, borrowed from the ring.
#[derive(Debug, Clone, Copy)]
pub struct Transition<'a> {
    /// The state the action was taken in.
    pub state: &'a [f32],
    /// The action's index.
    pub action: usize,
    /// The reward collected until the next decision.
    pub reward: f32,
    /// The state at the next decision.
    pub next: &'a [f32],
    /// 1.0 if the episode ended (a respawn), else 0.0.
    pub done: f32,
}

/// The replay ring of one agent.
#[derive(Debug, Clone, PartialEq)]
pub struct Replay {
    data: Vec<f32>,
    priority: Vec<f32>,
    head: usize,
    len: usize,
    max_priority: f32,
}

impl Default for Replay {
    fn default() -> Self {
        Self::new()
    }
}

impl Replay {
    /// An empty ring (its memory allocated and zeroed).
    pub fn new() -> Self {
        Self {
            data: vec![0.0; CAPACITY * WIDTH],
            priority: vec![0.0; CAPACITY],
            head: 0,
            len: 0,
            max_priority: 1.0,
        }
    }

    /// Transitions stored (at most [`CAPACITY`]).
    pub fn len(&self) -> usize {
        self.len
    }

    /// True before the first push.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Stores a transition, overwriting the oldest when full, with the
    /// highest priority seen so far (so that it is sampled soon).
    pub fn push(&mut self, state: &[f32], action: usize, reward: f32, next: &[f32], done: bool) {
        let row = &mut self.data[self.head * WIDTH..(self.head + 1) * WIDTH];
        row[..INPUTS].copy_from_slice(&state[..INPUTS]);
        row[ACTION] = action as f32;
        row[REWARD] = reward;
        row[NEXT..NEXT + INPUTS].copy_from_slice(&next[..INPUTS]);
        row[DONE] = if done { 1.0 } else { 0.0 };
        self.priority[self.head] = self.max_priority;
        self.head = (self.head + 1) % CAPACITY;
        self.len = (self.len + 1).min(CAPACITY);
    }

    /// Transition `i` (`i < len`).
    pub fn get(&self, i: usize) -> Transition<'_> {
        let row = &self.data[i * WIDTH..(i + 1) * WIDTH];
        Transition {
            state: &row[..INPUTS],
            action: row[ACTION] as usize,
            reward: row[REWARD],
            next: &row[NEXT..NEXT + INPUTS],
            done: row[DONE],
        }
    }

    /// Draws `indices.len()` transitions with probability proportional to
    /// their priority (stratified: one draw per equal slice of the total),
    /// and writes their importance weights `1 / sqrt(len * P(i))`, divided
    /// by the largest, to `weights`. `cumulative` is scratch of at least
    /// `len` floats. Panics on an empty ring.
    pub fn sample(
        &self,
        rng: &mut Rng,
        indices: &mut [usize],
        weights: &mut [f32],
        cumulative: &mut [f32],
    ) {
        assert!(self.len > 0, "sampling an empty replay ring");
        let n = self.len;
        let mut total = 0.0f32;
        for (c, p) in cumulative[..n].iter_mut().zip(&self.priority[..n]) {
            total += p;
            *c = total;
        }
        let slices = indices.len();
        let mut max_weight = 0.0f32;
        for k in 0..slices {
            let target = (k as f32 + rng.unit()) / slices as f32 * total;
            let i = cumulative[..n].partition_point(|&c| c <= target).min(n - 1);
            indices[k] = i;
            let probability = self.priority[i] / total;
            let w = 1.0 / (n as f32 * probability).sqrt();
            weights[k] = w;
            max_weight = max_weight.max(w);
        }
        for w in weights.iter_mut() {
            *w /= max_weight;
        }
    }

    /// Sets the priorities of sampled transitions from their new TD errors.
    pub fn update_priorities(&mut self, indices: &[usize], td_errors: &[f32]) {
        for (&i, &td) in indices.iter().zip(td_errors) {
            let p = td.abs() + PRIORITY_FLOOR;
            self.priority[i] = p;
            self.max_priority = self.max_priority.max(p);
        }
    }

    /// Feeds every stored float, and the ring's position, to `hash`.
    pub fn hash_into(&self, hash: &mut crate::hash::StateHash) {
        hash.f32s(&self.data);
        hash.f32s(&self.priority);
        hash.u64(self.head as u64);
        hash.u64(self.len as u64);
        hash.f32(self.max_priority);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_wraps_and_keeps_the_newest_transitions() {
        let mut r = Replay::new();
        let s = [0.5f32; INPUTS];
        for i in 0..CAPACITY + 3 {
            r.push(&s, i % 7, i as f32, &s, false);
        }
        assert_eq!(r.len(), CAPACITY);
        // Slot 0 now holds transition CAPACITY.
        assert_eq!(r.get(0).reward, CAPACITY as f32);
        assert_eq!(r.get(3).reward, 3.0);
    }

    #[test]
    fn high_priority_transitions_are_sampled_more_and_weighted_less() {
        let mut r = Replay::new();
        let s = [0.0f32; INPUTS];
        for i in 0..100 {
            r.push(&s, 0, i as f32, &s, false);
        }
        let all: Vec<usize> = (0..100).collect();
        let mut td = vec![1.0f32; 100];
        td[42] = 50.0;
        r.update_priorities(&all, &td);
        let mut rng = Rng::new(1, 2);
        let (mut idx, mut w, mut cum) = ([0usize; 32], [0f32; 32], vec![0f32; CAPACITY]);
        r.sample(&mut rng, &mut idx, &mut w, &mut cum);
        // 42 holds a third of the total priority: about 11 of 32 draws
        // (uniform sampling would give 0.3).
        let hits = idx.iter().filter(|&&i| i == 42).count();
        assert!((5..=20).contains(&hits), "{hits}");
        let k = idx.iter().position(|&i| i == 42).unwrap();
        let other = idx.iter().position(|&i| i != 42).unwrap();
        assert!(w[k] < w[other]);
        assert!(w.iter().all(|&x| x > 0.0 && x <= 1.0));
    }
}
