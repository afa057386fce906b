//! [`Agent`]: one walker's brain (online and target networks, Adam, replay
//! ring, its own generator) and what it does in a frame.
//!
//! A frame for an agent (see [`Agent::frame`]):
//! - outside the round-robin window: re-apply the last action (collect the
//!   movement reward; well under a microsecond);
//! - inside it (a *full step*): eat from its food point; if its hold time has
//!   passed, *decide*: build the 29-float state, scan the 24 food points
//!   (75 % of agents) or all agents as prey (25 %), push a transition, and
//!   with probability 0.9 run one forward pass (else a random action);
//!   every 5th decision *requests* a training step;
//! - if the world's training plan allows it this frame, *train*: sample 32
//!   transitions by priority, 3 forward passes (online on the states, online
//!   and target on the next states: double DQN), 1 backward pass, gradient
//!   clipping, Adam, and every 500 trainings a copy to the target network.

use crate::food::{FOOD_CAPACITY, FOOD_POINTS, FoodDemand, FoodField};
use crate::hash::StateHash;
use crate::nn::{
    ADAM_LR, Activations, Adam, BATCH, BackwardScratch, INPUTS, Layout, MAX_ACTIONS, backward,
    clip_factor, forward,
};
use crate::physics::{OBS_FEATURES, Observation};
use crate::replay::{CAPACITY, Replay};
use crate::rng::Rng;
use std::cell::RefCell;

/// A body type: its action count, how long it holds an action, its size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BodyKind {
    /// Actions (the advantage head's width).
    pub actions: usize,
    /// Frames between two decisions.
    pub hold: u64,
    /// Leg length and motor strength factor.
    pub leg_scale: f32,
    /// Food units taken per full step.
    pub bite: u64,
    /// Share of the population, in percent.
    pub percent: u32,
}

/// The five body types: 87 % of agents have 25 or 33 actions.
pub const BODY_KINDS: [BodyKind; 5] = [
    BodyKind {
        actions: 25,
        hold: 6,
        leg_scale: 1.0,
        bite: 1,
        percent: 50,
    },
    BodyKind {
        actions: 33,
        hold: 5,
        leg_scale: 1.1,
        bite: 1,
        percent: 37,
    },
    BodyKind {
        actions: 45,
        hold: 4,
        leg_scale: 1.2,
        bite: 2,
        percent: 5,
    },
    BodyKind {
        actions: 83,
        hold: 3,
        leg_scale: 1.3,
        bite: 2,
        percent: 4,
    },
    BodyKind {
        actions: 91,
        hold: 2,
        leg_scale: 1.4,
        bite: 3,
        percent: 4,
    },
];

/// Decisions per training request.
pub const DECISIONS_PER_TRAINING: u64 = 5;
/// Probability that a decision runs the policy network (else: explore).
pub const FORWARD_PROBABILITY: f32 = 0.9;
/// Transitions in the replay ring of a new agent (past experience).
const WARM_START_TRANSITIONS: usize = 256;
const GAMMA: f32 = 0.99;
const MAX_GRAD_NORM: f32 = 10.0;
/// Per-frame rewards kept for the statistics windows.
pub const HISTORY: usize = 2000;
/// The statistics windows, in frames.
pub const WINDOWS: [usize; 3] = [100, 500, 2000];

/// What an agent scans when it decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scan {
    /// The 24 food points (75 % of agents).
    Food,
    /// Every other agent, as prey (25 %).
    Prey,
}

/// The heaviest thing an agent did in its last frame (for the cost profile),
/// or will do in this one (`Agent::planned_work`). Ordered by cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Work {
    /// Re-applied its action (outside the window, or holding).
    #[default]
    Reapply,
    /// A full step without a decision.
    Step,
    /// Decided (scan, transition, maybe a forward pass).
    Decide,
    /// Trained.
    Train,
}

/// The round-robin window of agents taking a full step this frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// First agent of the window.
    pub start: usize,
    /// Agents in the window.
    pub len: usize,
    /// Agents in the world.
    pub agents: usize,
}

impl Window {
    /// True if agent `i` is in the window.
    pub fn contains(&self, i: usize) -> bool {
        (i + self.agents - self.start) % self.agents < self.len
    }
}

/// What an agent may read during the parallel agent phase.
pub struct StepContext<'a> {
    /// The frame number.
    pub frame: u64,
    /// Every agent's body after this frame's physics.
    pub observations: &'a [Observation],
    /// The food points as they were at the start of the frame.
    pub food: &'a FoodField,
    /// Where bites are recorded.
    pub demand: &'a FoodDemand,
    /// The agents taking a full step.
    pub window: Window,
    /// Trainings between two copies to the target network.
    pub target_copy_every: u64,
}

/// Per-thread scratch of the forward and backward passes (its contents are
/// overwritten before use, so the thread that runs an agent does not matter).
struct Scratch {
    act: Activations,
    act_next: Activations,
    back: BackwardScratch,
    grad: Vec<f32>,
    states: Vec<f32>,
    nexts: Vec<f32>,
    dq: Vec<f32>,
    cumulative: Vec<f32>,
}

impl Scratch {
    fn new() -> Self {
        Self {
            act: Activations::new(),
            act_next: Activations::new(),
            back: BackwardScratch::new(),
            grad: vec![0.0; Layout::new(MAX_ACTIONS).len()],
            states: vec![0.0; BATCH * INPUTS],
            nexts: vec![0.0; BATCH * INPUTS],
            dq: vec![0.0; BATCH * MAX_ACTIONS],
            cumulative: vec![0.0; CAPACITY],
        }
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::new());
}

fn argmax(values: &[f32]) -> (usize, f32) {
    let mut best = (0, f32::NEG_INFINITY);
    for (i, &v) in values.iter().enumerate() {
        // Strictly greater: the first of equal values wins; NaN never does.
        if v > best.1 {
            best = (i, v);
        }
    }
    best
}

/// One walker's brain and bookkeeping (its body is in the physics world).
/// Aligned to 128 bytes so that neighbours in the agent vector, which the
/// interleaved partitioning gives to different threads, share no cache line
/// (or adjacent-line prefetch pair).
#[derive(Debug, Clone, PartialEq)]
#[repr(align(128))]
pub struct Agent {
    /// Index in the world.
    pub index: usize,
    /// Index into [`BODY_KINDS`].
    pub kind: usize,
    /// What it scans when deciding.
    pub scan: Scan,
    layout: Layout,
    rng: Rng,
    online: Vec<f32>,
    target: Vec<f32>,
    adam: Adam,
    replay: Replay,
    action: u32,
    state: [f32; INPUTS],
    last_decision: i64,
    decisions: u64,
    trainings: u64,
    train_pending: bool,
    pending_since: u64,
    /// Set by the world's training plan: train in this frame's step.
    pub(crate) train_now: bool,
    reward_since_decision: f32,
    total_reward: f64,
    eaten: u64,
    food_target: usize,
    history: Vec<f32>,
    history_head: usize,
    history_len: usize,
    last_loss: f32,
    last_q: f32,
    last_grad_norm: f32,
    windows: [f32; 3],
    rank: u32,
    respawns: u32,
    /// Wall time of its last frame (cost profile; not part of the state).
    pub last_cost_ns: u64,
    /// CPU time of its last frame, on the thread that ran it (the work
    /// behind `parallel_speedup_ratio`; not part of the state).
    pub last_cpu_ns: u64,
    /// The heaviest work of its last frame (not part of the state).
    pub last_work: Work,
    /// The thread (sync-stats index) that ran its last frame (not part of
    /// the state).
    pub last_thread: usize,
}

impl Agent {
    /// A new agent `index` under `seed`: body type, scan type, networks and
    /// a replay ring of past experience, all drawn from its own generator.
    pub fn new(seed: u64, index: usize) -> Self {
        let mut rng = Rng::new(seed, index as u64 + 1);
        let roll = rng.below(100) as u32;
        let mut acc = 0;
        let kind = BODY_KINDS
            .iter()
            .position(|k| {
                acc += k.percent;
                roll < acc
            })
            .unwrap_or(0);
        let scan = if rng.chance(0.75) {
            Scan::Food
        } else {
            Scan::Prey
        };
        let layout = Layout::new(BODY_KINDS[kind].actions);
        let online = layout.init(&mut rng);
        let target = online.clone();
        let mut replay = Replay::new();
        let mut s = [0.0f32; INPUTS];
        let mut next = [0.0f32; INPUTS];
        for _ in 0..WARM_START_TRANSITIONS {
            s.iter_mut().for_each(|x| *x = rng.signed());
            next.iter_mut().for_each(|x| *x = rng.signed());
            let a = rng.below(layout.actions() as u64) as usize;
            replay.push(&s, a, rng.signed() * 0.1, &next, false);
        }
        let hold = BODY_KINDS[kind].hold;
        Self {
            index,
            kind,
            scan,
            layout,
            online,
            target,
            adam: Adam::new(layout.len()),
            replay,
            action: rng.below(layout.actions() as u64) as u32,
            state: [0.0; INPUTS],
            // Decision clocks and training counters start out of phase, as in
            // a population that has been running for a while.
            last_decision: -(rng.below(hold) as i64) - 1,
            decisions: rng.below(DECISIONS_PER_TRAINING),
            trainings: 0,
            train_pending: false,
            pending_since: 0,
            train_now: false,
            reward_since_decision: 0.0,
            total_reward: 0.0,
            eaten: 0,
            food_target: index % FOOD_POINTS,
            history: vec![0.0; HISTORY],
            history_head: 0,
            history_len: 0,
            last_loss: 0.0,
            last_q: 0.0,
            last_grad_norm: 0.0,
            windows: [0.0; 3],
            rank: index as u32,
            respawns: 0,
            last_cost_ns: 0,
            last_cpu_ns: 0,
            last_work: Work::Reapply,
            last_thread: 0,
            rng,
        }
    }

    /// Its body type.
    pub fn body(&self) -> &BodyKind {
        &BODY_KINDS[self.kind]
    }

    /// The action its motors apply.
    pub fn action(&self) -> u32 {
        self.action
    }

    /// Parameters of one network.
    pub fn parameters(&self) -> usize {
        self.layout.len()
    }

    /// Bytes of state it owns (networks, Adam, replay, history).
    pub fn state_bytes(&self) -> usize {
        4 * (self.online.len()
            + self.target.len()
            + self.adam.m.len()
            + self.adam.v.len()
            + self.history.len())
            + 4 * (crate::replay::WIDTH + 1) * CAPACITY
    }

    /// True if its hold time has passed at `frame`.
    pub(crate) fn decision_due(&self, frame: u64) -> bool {
        frame as i64 - self.last_decision >= self.body().hold as i64
    }

    /// What [`frame`](Self::frame) will do with `ctx`'s frame and window,
    /// known before it runs: the training plan has set `train_now`.
    pub(crate) fn planned_work(&self, frame: u64, window: Window) -> Work {
        if !window.contains(self.index) {
            Work::Reapply
        } else if self.train_now {
            Work::Train
        } else if self.decision_due(frame) {
            Work::Decide
        } else {
            Work::Step
        }
    }

    /// True if a decision at `frame` would request a training.
    pub(crate) fn would_request_training(&self, frame: u64) -> bool {
        self.decision_due(frame) && (self.decisions + 1) % DECISIONS_PER_TRAINING == 0
    }

    /// `Some(since)` if it has a training request waiting (or makes one at
    /// `frame` when inside the window).
    pub(crate) fn training_request(&self, frame: u64) -> Option<u64> {
        if self.train_pending {
            Some(self.pending_since)
        } else if self.would_request_training(frame) {
            Some(frame)
        } else {
            None
        }
    }

    /// Trainings done.
    pub fn trainings(&self) -> u64 {
        self.trainings
    }

    /// Decisions made.
    pub fn decisions(&self) -> u64 {
        self.decisions
    }

    /// The agent's frame; see the module docs. Returns the heaviest work done.
    pub fn frame(&mut self, ctx: &StepContext<'_>) -> Work {
        let obs = &ctx.observations[self.index];
        // Movement reward (forward speed), minus the motors' effort.
        let mut reward = 0.01 * obs.features[3] - 0.0002 * obs.effort;
        let in_window = ctx.window.contains(self.index);
        if in_window {
            let bite = self.body().bite;
            ctx.demand.eat(self.food_target, bite);
            self.eaten += bite;
            let level = ctx.food.levels[self.food_target] as f32 / FOOD_CAPACITY as f32;
            reward += 0.05 * bite as f32 * level;
        }
        self.reward_since_decision += reward;
        self.record_reward(reward);
        if !in_window {
            return Work::Reapply;
        }
        let mut work = Work::Step;
        if self.decision_due(ctx.frame) {
            self.decide(ctx);
            work = Work::Decide;
        }
        if self.train_now {
            debug_assert!(self.train_pending);
            self.train_now = false;
            self.train_pending = false;
            self.train(ctx.target_copy_every);
            work = Work::Train;
        }
        work
    }

    fn record_reward(&mut self, reward: f32) {
        self.total_reward += f64::from(reward);
        self.history[self.history_head] = reward;
        self.history_head = (self.history_head + 1) % HISTORY;
        self.history_len = (self.history_len + 1).min(HISTORY);
    }

    /// Builds the state, scans, stores a transition and picks an action.
    fn decide(&mut self, ctx: &StepContext<'_>) {
        let obs = &ctx.observations[self.index];
        let mut state = [0.0f32; INPUTS];
        state[..OBS_FEATURES].copy_from_slice(&obs.features);
        match self.scan {
            Scan::Food => {
                // The most attractive point: food left over distance.
                let mut best = (0usize, f32::NEG_INFINITY);
                for (j, (&x, &level)) in ctx.food.positions.iter().zip(&ctx.food.levels).enumerate()
                {
                    let score = level as f32 / FOOD_CAPACITY as f32 / (1.0 + (x - obs.x).abs());
                    if score > best.1 {
                        best = (j, score);
                    }
                }
                self.food_target = best.0;
                state[20] = ((ctx.food.positions[best.0] - obs.x) * 0.1).clamp(-5.0, 5.0);
                state[21] = ctx.food.levels[best.0] as f32 / FOOD_CAPACITY as f32;
            }
            Scan::Prey => {
                let mut best = (self.index, f32::INFINITY);
                for (j, other) in ctx.observations.iter().enumerate() {
                    let d = (other.x - obs.x).abs();
                    if j != self.index && d < best.1 {
                        best = (j, d);
                    }
                }
                let prey = &ctx.observations[best.0];
                self.food_target = ctx.food.nearest(prey.x);
                state[20] = ((prey.x - obs.x) * 0.1).clamp(-5.0, 5.0);
                state[21] = prey.features[0];
            }
        }
        let actions = self.layout.actions();
        state[22] = self.kind as f32 * 0.25;
        state[23] = self.action as f32 / actions as f32;
        state[24] = self.reward_since_decision.clamp(-5.0, 5.0);
        state[25] = ((self.total_reward * 0.01) as f32).clamp(-5.0, 5.0);
        state[26] = (self.windows[0] * 10.0).clamp(-5.0, 5.0);
        state[27] = 1.0;
        state[28] = if self.scan == Scan::Food { 0.0 } else { 1.0 };
        self.replay.push(
            &self.state,
            self.action as usize,
            self.reward_since_decision,
            &state,
            false,
        );
        self.reward_since_decision = 0.0;
        if self.rng.chance(FORWARD_PROBABILITY) {
            let (a, q) = SCRATCH.with(|s| {
                let s = &mut *s.borrow_mut();
                forward(&self.online, &self.layout, &state, 1, &mut s.act);
                argmax(s.act.q_values(actions, 0))
            });
            self.action = a as u32;
            self.last_q = q;
        } else {
            self.action = self.rng.below(actions as u64) as u32;
        }
        self.state = state;
        self.last_decision = ctx.frame as i64;
        self.decisions += 1;
        if self.decisions % DECISIONS_PER_TRAINING == 0 {
            self.train_pending = true;
            self.pending_since = ctx.frame;
        }
    }

    /// One training step (see the module docs).
    fn train(&mut self, target_copy_every: u64) {
        let actions = self.layout.actions();
        SCRATCH.with(|s| {
            let s = &mut *s.borrow_mut();
            let mut indices = [0usize; BATCH];
            let mut weights = [0.0f32; BATCH];
            self.replay
                .sample(&mut self.rng, &mut indices, &mut weights, &mut s.cumulative);
            let mut taken = [0usize; BATCH];
            let mut rewards = [0.0f32; BATCH];
            let mut dones = [0.0f32; BATCH];
            for (k, &i) in indices.iter().enumerate() {
                let t = self.replay.get(i);
                s.states[k * INPUTS..(k + 1) * INPUTS].copy_from_slice(t.state);
                s.nexts[k * INPUTS..(k + 1) * INPUTS].copy_from_slice(t.next);
                taken[k] = t.action.min(actions - 1);
                rewards[k] = t.reward;
                dones[k] = t.done;
            }
            // Forward 1: online network on the states (kept for backward).
            forward(&self.online, &self.layout, &s.states, BATCH, &mut s.act);
            // Forward 2: online network picks the next actions (double DQN).
            forward(&self.online, &self.layout, &s.nexts, BATCH, &mut s.act_next);
            let mut next_actions = [0usize; BATCH];
            for (k, a) in next_actions.iter_mut().enumerate() {
                *a = argmax(s.act_next.q_values(actions, k)).0;
            }
            // Forward 3: the target network values them.
            forward(&self.target, &self.layout, &s.nexts, BATCH, &mut s.act_next);
            let mut td = [0.0f32; BATCH];
            let mut loss = 0.0f32;
            let dq = &mut s.dq[..BATCH * actions];
            dq.fill(0.0);
            for k in 0..BATCH {
                let q = s.act.q_values(actions, k)[taken[k]];
                let target_q = s.act_next.q_values(actions, k)[next_actions[k]];
                let y = rewards[k] + GAMMA * (1.0 - dones[k]) * target_q;
                td[k] = q - y;
                // Huber loss, weighted by importance, averaged over the batch.
                let e = td[k];
                loss += weights[k]
                    * if e.abs() <= 1.0 {
                        0.5 * e * e
                    } else {
                        e.abs() - 0.5
                    };
                dq[k * actions + taken[k]] = weights[k] * e.clamp(-1.0, 1.0) / BATCH as f32;
            }
            let grad = &mut s.grad[..self.layout.len()];
            grad.fill(0.0);
            backward(&self.online, &self.layout, &s.act, dq, grad, &mut s.back);
            let (scale, norm) = clip_factor(grad, MAX_GRAD_NORM);
            self.last_grad_norm = norm;
            self.adam
                .step_scaled(&mut self.online, grad, scale, ADAM_LR);
            self.replay.update_priorities(&indices, &td);
            self.last_loss = loss / BATCH as f32;
        });
        self.trainings += 1;
        if self.trainings % target_copy_every == 0 {
            self.target.copy_from_slice(&self.online);
        }
    }

    /// One training step outside the loop (for measurements: the
    /// `calibrate` example times it alone and beside another agent's).
    pub fn train_once(&mut self) {
        self.train(u64::MAX);
    }

    /// Updates its windowed reward means (the statistics phase).
    pub(crate) fn update_windows(&mut self) {
        for (w, &size) in WINDOWS.iter().enumerate() {
            let n = size.min(self.history_len);
            let mut sum = 0.0f32;
            // Newest first, a fixed order.
            for k in 0..n {
                sum += self.history[(self.history_head + HISTORY - 1 - k) % HISTORY];
            }
            self.windows[w] = if n == 0 { 0.0 } else { sum / n as f32 };
        }
    }

    /// Its windowed reward means (100, 500, 2000 frames).
    pub fn windows(&self) -> [f32; 3] {
        self.windows
    }

    pub(crate) fn set_rank(&mut self, rank: u32) {
        self.rank = rank;
    }

    /// The online network's parameters.
    pub fn online(&self) -> &[f32] {
        &self.online
    }

    /// The network layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The ecosystem's respawn: takes a copy of `leader`'s online network
    /// (if it has the same shape), perturbed with its own generator, fresh
    /// Adam moments; keeps its replay ring.
    pub(crate) fn respawn_from(&mut self, leader: &[f32]) {
        if leader.len() == self.online.len() {
            for (p, &l) in self.online.iter_mut().zip(leader) {
                *p = l + 0.01 * self.rng.signed();
            }
            self.target.copy_from_slice(&self.online);
        }
        self.adam.reset();
        self.respawns += 1;
        self.total_reward = 0.0;
        self.train_pending = false;
    }

    /// The status fields the reader serves.
    pub fn status(&self, obs: &Observation) -> crate::status::AgentStatus {
        crate::status::AgentStatus {
            index: self.index as u32,
            kind: self.kind as u8,
            actions: self.layout.actions() as u16,
            scan_prey: self.scan == Scan::Prey,
            x: obs.x,
            height: obs.features[0],
            speed: obs.features[3],
            action: self.action,
            total_reward: self.total_reward as f32,
            mean_100: self.windows[0],
            mean_500: self.windows[1],
            mean_2000: self.windows[2],
            rank: self.rank,
            decisions: self.decisions,
            trainings: self.trainings,
            train_pending: self.train_pending,
            eaten: self.eaten,
            last_loss: self.last_loss,
            last_q: self.last_q,
            grad_norm: self.last_grad_norm,
            respawns: self.respawns,
        }
    }

    /// Feeds its whole state to `hash`.
    pub fn hash_into(&self, hash: &mut StateHash) {
        hash.u64(self.index as u64);
        hash.u64(self.kind as u64);
        hash.u64(u64::from(self.scan == Scan::Prey));
        hash.u64(self.rng.state());
        hash.f32s(&self.online);
        hash.f32s(&self.target);
        hash.f32s(&self.adam.m);
        hash.f32s(&self.adam.v);
        hash.u64(self.adam.steps);
        let (p1, p2) = self.adam.powers();
        hash.f32s(&[p1, p2]);
        self.replay.hash_into(hash);
        hash.u64(u64::from(self.action));
        hash.f32s(&self.state);
        hash.u64(self.last_decision as u64);
        hash.u64(self.decisions);
        hash.u64(self.trainings);
        hash.u64(u64::from(self.train_pending) | (self.pending_since << 1));
        hash.f32(self.reward_since_decision);
        hash.u64(self.total_reward.to_bits());
        hash.u64(self.eaten);
        hash.u64(self.food_target as u64);
        hash.f32s(&self.history);
        hash.u64(self.history_head as u64 | ((self.history_len as u64) << 32));
        hash.f32s(&[self.last_loss, self.last_q, self.last_grad_norm]);
        hash.f32s(&self.windows);
        hash.u64(u64::from(self.rank) | (u64::from(self.respawns) << 32));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_agent_owns_about_three_megabytes() {
        let a = Agent::new(1, 0);
        let mb = a.state_bytes() as f64 / 1e6;
        assert!((2.8..3.3).contains(&mb), "{mb} MB");
    }

    #[test]
    fn body_kinds_cover_the_population_and_87_percent_have_25_or_33_actions() {
        assert_eq!(BODY_KINDS.iter().map(|k| k.percent).sum::<u32>(), 100);
        assert_eq!(BODY_KINDS[0].percent + BODY_KINDS[1].percent, 87);
        let kinds: Vec<usize> = (0..400).map(|i| Agent::new(9, i).kind).collect();
        let small = kinds.iter().filter(|&&k| k <= 1).count() as f64 / 400.0;
        assert!((0.8..0.94).contains(&small), "{small}");
    }

    #[test]
    fn the_window_wraps_around_the_agent_list() {
        let w = Window {
            start: 8,
            len: 4,
            agents: 10,
        };
        let inside: Vec<usize> = (0..10).filter(|&i| w.contains(i)).collect();
        assert_eq!(inside, vec![0, 1, 8, 9]);
    }
}
