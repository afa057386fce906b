//! [`World`]: the agents, their bodies behind the world (physics) lock, the
//! food points, the statistics and the status board; and one frame of the
//! walker loop ([`World::step_frame`]).
//!
//! A frame:
//! 1. **physics** (holds the world lock): copy each agent's action to its
//!    body, step every body `substeps` times (sequentially, or one island
//!    per agent on the pool: [`PhysicsMode`]), copy the observations out;
//! 2. **training plan** (sequential, O(agents)): the agents in the window
//!    that want to train this frame (a request made now or waiting) are
//!    ordered by request frame then index, and the first `train_budget` may
//!    train; the others wait (the runtime's training budget, which keeps
//!    frames steady; `0` = unlimited);
//! 3. **agents** (parallel, the executor's partitioning): each agent's
//!    [`Agent::frame`], timed for the cost profile;
//! 4. **frame end** (sequential): the food demand is merged and applied;
//!    every `stats_every` frames the statistics (per-agent window means in
//!    parallel, the population means by a fixed-order parallel reduction,
//!    the leaderboard sort); every `ecosystem_every` frames the ecosystem
//!    (the bottom 5 % respawn from the leader, food regrowth rebalanced);
//!    then the status snapshot is published.
//!
//! Determinism: every random draw comes from an agent's own generator, the
//! agents read only frame-start data written before the parallel phase, the
//! food demand is an integer sum, and reductions use fixed chunks. So the
//! state after K frames has the same bits for any executor, thread count,
//! partitioning, food mode and physics mode ([`World::state_hash`]).

use crate::agent::{Agent, BODY_KINDS, StepContext, Window, Work};
use crate::exec::Executor;
use crate::food::{FOOD_CAPACITY, FOOD_POINTS, FOOD_REGROWTH, FoodDemand, FoodField, FoodMode};
use crate::hash::StateHash;
use crate::nn::Layout;
use crate::physics::{Body, Observation, SPAWN_SPACING};
use crate::status::StatusBoard;
use parking_lot::Mutex;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use sync_stats::CountingMutex;

/// How the physics phase steps the bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PhysicsMode {
    /// One body after the other on the loop thread (the original).
    Serial,
    /// Each body is an island stepped on the pool (same result).
    Islands,
}

impl PhysicsMode {
    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            PhysicsMode::Serial => "serial",
            PhysicsMode::Islands => "islands",
        }
    }
}

impl std::str::FromStr for PhysicsMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "serial" => Ok(PhysicsMode::Serial),
            "islands" => Ok(PhysicsMode::Islands),
            _ => Err(format!("unknown physics mode {s:?} (serial, islands)")),
        }
    }
}

/// Everything that defines a world (and so its state after K frames).
#[derive(Debug, Clone, PartialEq)]
pub struct WorldConfig {
    /// Agents (at least 2).
    pub agents: usize,
    /// p: the share of agents in the round-robin window (0 < p <= 1); the
    /// window holds max(5, ceil(p * agents)) agents.
    pub window_share: f64,
    /// M: physics substeps per frame (at least 1).
    pub substeps: usize,
    /// The seed of every generator.
    pub seed: u64,
    /// How bites are recorded (does not change the result).
    pub food_mode: FoodMode,
    /// How bodies are stepped (does not change the result).
    pub physics: PhysicsMode,
    /// Trainings allowed per frame; `None`: max(2, ceil(agents / 16));
    /// `Some(0)`: unlimited.
    pub train_budget: Option<usize>,
    /// Frames between two statistics passes.
    pub stats_every: u64,
    /// Frames between two ecosystem passes.
    pub ecosystem_every: u64,
    /// Trainings between two target-network copies.
    pub target_copy_every: u64,
}

impl Default for WorldConfig {
    fn default() -> Self {
        Self {
            agents: 60,
            window_share: 1.0,
            substeps: 5,
            seed: 42,
            food_mode: FoodMode::Lock,
            physics: PhysicsMode::Serial,
            train_budget: None,
            stats_every: 120,
            ecosystem_every: 1200,
            target_copy_every: 500,
        }
    }
}

impl WorldConfig {
    /// Checks every field; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.agents < 2 {
            return Err(format!("agents = {}: at least 2", self.agents));
        }
        if !(self.window_share > 0.0 && self.window_share <= 1.0) {
            return Err(format!("p = {}: must be in (0, 1]", self.window_share));
        }
        if self.substeps == 0 {
            return Err("substeps = 0: at least 1".into());
        }
        for (name, v) in [
            ("stats_every", self.stats_every),
            ("ecosystem_every", self.ecosystem_every),
            ("target_copy_every", self.target_copy_every),
        ] {
            if v == 0 {
                return Err(format!("{name} = 0: at least 1"));
            }
        }
        Ok(())
    }

    /// Agents in the window: max(5, ceil(p * agents)), at most all.
    pub fn window_len(&self) -> usize {
        ((self.window_share * self.agents as f64).ceil() as usize)
            .max(5)
            .min(self.agents)
    }

    /// Trainings allowed per frame (0: unlimited).
    pub fn train_budget(&self) -> usize {
        self.train_budget
            .unwrap_or_else(|| self.agents.div_ceil(16).max(2))
    }
}

/// Where one frame's time went.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FrameTimes {
    /// The physics phase (world lock held).
    pub physics: Duration,
    /// The agent loop's wall time.
    pub agents: Duration,
    /// The summed wall time of every agent's frame (the loop's work).
    pub agents_work: Duration,
    /// The summed CPU time of every agent's frame: the work without the
    /// time a thread waited for a CPU (what `parallel_speedup_ratio` is
    /// documented to count).
    pub agents_cpu: Duration,
    /// The parallel loops of the statistics pass (zero on other frames).
    pub stats: Duration,
    /// Everything else: plan, food merge, leaderboard, ecosystem, status.
    pub other: Duration,
    /// The whole frame.
    pub total: Duration,
    /// Trainings in the frame.
    pub trainings: u32,
    /// Training requests left waiting for the budget.
    pub deferred: u32,
    /// True if the physics ran on the pool.
    pub physics_parallel: bool,
    /// The agent work of the thread that did the most in the agent loop.
    pub busiest_thread: Duration,
    /// Threads that ran at least one agent.
    pub threads_used: u32,
    /// Agents whose work differed from `Agent::planned_work`, which orders
    /// the dynamic loop (0 unless that prediction is wrong).
    pub mispredicted: u32,
}

impl FrameTimes {
    /// The time spent in loops that run on the pool.
    pub fn parallel(&self) -> Duration {
        self.agents
            + self.stats
            + if self.physics_parallel {
                self.physics
            } else {
                Duration::ZERO
            }
    }
}

/// The leader's network, published by the statistics pass for the
/// background evaluation task (not part of the world state).
#[derive(Debug, Clone)]
pub struct LeaderSnapshot {
    /// The frame it was taken at.
    pub frame: u64,
    /// The leader's index.
    pub agent: usize,
    /// Its network layout.
    pub layout: Layout,
    /// Its online parameters.
    pub params: Vec<f32>,
}

/// The simulated world. See the module docs.
pub struct World {
    config: WorldConfig,
    frame: u64,
    agents: Vec<Agent>,
    physics: Arc<CountingMutex<Vec<Body>>>,
    observations: Vec<Observation>,
    food: FoodField,
    demand: FoodDemand,
    window_start: usize,
    leaderboard: Vec<u32>,
    population: [f64; 3],
    ecosystem_runs: u64,
    deferred_total: u64,
    status: Arc<StatusBoard>,
    leader: Arc<Mutex<Option<Arc<LeaderSnapshot>>>>,
}

impl std::fmt::Debug for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("World")
            .field("config", &self.config)
            .field("frame", &self.frame)
            .finish_non_exhaustive()
    }
}

impl World {
    /// A new world: agents, bodies and food from `config.seed`.
    pub fn new(config: WorldConfig) -> Result<Self, String> {
        config.validate()?;
        let n = config.agents;
        let agents: Vec<Agent> = (0..n).map(|i| Agent::new(config.seed, i)).collect();
        let bodies: Vec<Body> = agents
            .iter()
            .map(|a| Body::new(a.index as f32 * SPAWN_SPACING, BODY_KINDS[a.kind].leg_scale))
            .collect();
        let observations = bodies.iter().map(|b| b.observation).collect();
        let status = Arc::new(StatusBoard::new());
        let world = Self {
            food: FoodField::new(n as f32 * SPAWN_SPACING),
            demand: FoodDemand::new(config.food_mode),
            config,
            frame: 0,
            agents,
            physics: Arc::new(CountingMutex::new("world", bodies)),
            observations,
            window_start: 0,
            leaderboard: Vec::new(),
            population: [0.0; 3],
            ecosystem_runs: 0,
            deferred_total: 0,
            status,
            leader: Arc::new(Mutex::new(None)),
        };
        world.publish_status();
        Ok(world)
    }

    /// The configuration.
    pub fn config(&self) -> &WorldConfig {
        &self.config
    }

    /// Frames completed.
    pub fn frame(&self) -> u64 {
        self.frame
    }

    /// The agents.
    pub fn agents(&self) -> &[Agent] {
        &self.agents
    }

    /// The world (physics) lock and the bodies behind it.
    pub fn physics_lock(&self) -> Arc<CountingMutex<Vec<Body>>> {
        self.physics.clone()
    }

    /// The status board the reader reads.
    pub fn status_board(&self) -> Arc<StatusBoard> {
        self.status.clone()
    }

    /// The latest leader snapshot (for the evaluation task).
    pub fn leader_slot(&self) -> Arc<Mutex<Option<Arc<LeaderSnapshot>>>> {
        self.leader.clone()
    }

    /// The food demand recorder (for its lock's contention figures).
    pub fn food_demand(&self) -> &FoodDemand {
        &self.demand
    }

    /// The food points.
    pub fn food(&self) -> &FoodField {
        &self.food
    }

    /// The population's mean reward over the three windows (last pass).
    pub fn population_means(&self) -> [f64; 3] {
        self.population
    }

    /// Agent indices, best first (last statistics pass).
    pub fn leaderboard(&self) -> &[u32] {
        &self.leaderboard
    }

    /// Bytes of agent state (networks, Adam, replay rings, histories).
    pub fn state_bytes(&self) -> usize {
        self.agents.iter().map(Agent::state_bytes).sum()
    }

    /// Training requests that had to wait for the budget, since the start.
    pub fn deferred_trainings(&self) -> u64 {
        self.deferred_total
    }

    /// The window of the next frame.
    fn window(&self) -> Window {
        Window {
            start: self.window_start,
            len: self.config.window_len(),
            agents: self.config.agents,
        }
    }

    /// Runs one frame with `exec` (see the module docs).
    pub fn step_frame(&mut self, exec: &Executor<'_>) -> Result<FrameTimes, String> {
        self.step_frame_with(exec, exec)
    }

    /// Runs one frame with `exec` for the physics islands and the agents,
    /// and `stats` for the statistics pass.
    pub fn step_frame_with(
        &mut self,
        exec: &Executor<'_>,
        stats: &Executor<'_>,
    ) -> Result<FrameTimes, String> {
        let start = Instant::now();
        let mut times = FrameTimes {
            physics_parallel: self.config.physics == PhysicsMode::Islands,
            ..FrameTimes::default()
        };
        // 1. Physics, under the world lock.
        {
            let mut bodies = self.physics.lock();
            for (body, agent) in bodies.iter_mut().zip(&self.agents) {
                body.command = agent.action();
            }
            let substeps = self.config.substeps;
            match self.config.physics {
                PhysicsMode::Serial => bodies.iter_mut().for_each(|b| b.step(substeps)),
                PhysicsMode::Islands => {
                    exec.for_each_mut(&mut bodies[..], |_, b| b.step(substeps))?
                }
            }
            for (o, body) in self.observations.iter_mut().zip(bodies.iter()) {
                *o = body.observation;
            }
        }
        times.physics = start.elapsed();
        // 2. The training plan.
        let window = self.window();
        let (trainings, deferred) = self.plan_training(window);
        times.trainings = trainings;
        times.deferred = deferred;
        // 3. The agents, in parallel.
        let agents_start = Instant::now();
        let ctx = StepContext {
            frame: self.frame,
            observations: &self.observations,
            food: &self.food,
            demand: &self.demand,
            window,
            target_copy_every: self.config.target_copy_every,
        };
        // The dynamic loop takes the agents costliest first (trainings, then
        // decisions, then the rest; by index within a kind): a training taken
        // last would leave the other threads idle for its whole length
        // (longest-first list scheduling). The static partitionings keep the
        // index order that defines them. Agents read only frame-start data,
        // so the order changes no result (the state hash test checks it).
        let mut order: Vec<&mut Agent> = self.agents.iter_mut().collect();
        if exec.takes_items_in_order() {
            let frame = self.frame;
            order.sort_by_key(|a| (std::cmp::Reverse(a.planned_work(frame, window)), a.index));
        }
        let mispredicted = AtomicU32::new(0);
        let frame = self.frame;
        exec.for_each_mut(&mut order, |_, agent| {
            let planned = agent.planned_work(frame, window);
            let cpu = frame_guard::thread_cpu_time();
            let t = Instant::now();
            let work = agent.frame(&ctx);
            if work != planned {
                mispredicted.fetch_add(1, Ordering::Relaxed);
            }
            agent.last_cost_ns = t.elapsed().as_nanos() as u64;
            agent.last_cpu_ns = frame_guard::thread_cpu_time()
                .saturating_sub(cpu)
                .as_nanos() as u64;
            agent.last_work = work;
            agent.last_thread = sync_stats::current_thread_index().unwrap_or(0);
        })?;
        drop(order);
        times.mispredicted = mispredicted.into_inner();
        times.agents = agents_start.elapsed();
        times.agents_work = Duration::from_nanos(self.agents.iter().map(|a| a.last_cost_ns).sum());
        times.agents_cpu = Duration::from_nanos(self.agents.iter().map(|a| a.last_cpu_ns).sum());
        // Load balance: the work of the thread that did the most.
        let mut per_thread: Vec<(usize, u64)> = Vec::new();
        for a in &self.agents {
            match per_thread.iter_mut().find(|(t, _)| *t == a.last_thread) {
                Some(e) => e.1 += a.last_cost_ns,
                None => per_thread.push((a.last_thread, a.last_cost_ns)),
            }
        }
        times.busiest_thread =
            Duration::from_nanos(per_thread.iter().map(|e| e.1).max().unwrap_or(0));
        times.threads_used = per_thread.len() as u32;
        // 4. Frame end.
        let end_start = Instant::now();
        let demand = self.demand.take();
        self.food.apply(&demand);
        self.frame += 1;
        self.window_start = (self.window_start + window.len) % self.config.agents;
        if self.frame % self.config.stats_every == 0 {
            times.stats = self.statistics(stats)?;
        }
        if self.frame % self.config.ecosystem_every == 0 {
            self.ecosystem();
        }
        self.publish_status();
        times.other = end_start.elapsed().saturating_sub(times.stats)
            + (agents_start - start).saturating_sub(times.physics);
        times.total = start.elapsed();
        Ok(times)
    }

    /// Sets `train_now` on the agents that may train this frame; returns
    /// (allowed, left waiting).
    fn plan_training(&mut self, window: Window) -> (u32, u32) {
        let frame = self.frame;
        let mut requests: Vec<(u64, usize)> = self
            .agents
            .iter()
            .filter(|a| window.contains(a.index))
            .filter_map(|a| a.training_request(frame).map(|since| (since, a.index)))
            .collect();
        requests.sort_unstable();
        let budget = self.config.train_budget();
        let allowed = if budget == 0 {
            requests.len()
        } else {
            budget.min(requests.len())
        };
        for &(_, i) in &requests[..allowed] {
            self.agents[i].train_now = true;
        }
        let waiting = requests.len() - allowed;
        self.deferred_total += waiting as u64;
        (allowed as u32, waiting as u32)
    }

    /// The statistics pass; returns the time of its parallel loops.
    fn statistics(&mut self, exec: &Executor<'_>) -> Result<Duration, String> {
        let start = Instant::now();
        exec.for_each_mut(&mut self.agents, |_, a| a.update_windows())?;
        let agents = &self.agents;
        let sums = exec.map_reduce(
            agents.len(),
            || [0.0f64; 3],
            |i| agents[i].windows().map(f64::from),
            |a, b| [a[0] + b[0], a[1] + b[1], a[2] + b[2]],
        )?;
        let parallel = start.elapsed();
        let n = agents.len() as f64;
        self.population = sums.map(|s| s / n);
        let mut order: Vec<u32> = (0..agents.len() as u32).collect();
        order.sort_by(|&a, &b| {
            let (wa, wb) = (
                agents[a as usize].windows()[1],
                agents[b as usize].windows()[1],
            );
            wb.total_cmp(&wa).then(a.cmp(&b))
        });
        for (rank, &i) in order.iter().enumerate() {
            self.agents[i as usize].set_rank(rank as u32);
        }
        let best = &self.agents[order[0] as usize];
        *self.leader.lock() = Some(Arc::new(LeaderSnapshot {
            frame: self.frame,
            agent: best.index,
            layout: *best.layout(),
            params: best.online().to_vec(),
        }));
        self.leaderboard = order;
        Ok(parallel)
    }

    /// The ecosystem pass: the bottom 5 % (at least one) respawn from the
    /// leader's network; food points that run low regrow faster.
    fn ecosystem(&mut self) {
        if self.leaderboard.is_empty() {
            return;
        }
        let n = self.agents.len();
        let count = (n / 20).max(1);
        let leader = self.leaderboard[0] as usize;
        let leader_params = self.agents[leader].online().to_vec();
        let bottom: Vec<usize> = self.leaderboard[n - count..]
            .iter()
            .map(|&i| i as usize)
            .filter(|&i| i != leader)
            .collect();
        for &i in &bottom {
            self.agents[i].respawn_from(&leader_params);
        }
        {
            let mut bodies = self.physics.lock();
            for &i in &bottom {
                bodies[i].respawn();
                self.observations[i] = bodies[i].observation;
            }
        }
        for j in 0..FOOD_POINTS {
            self.food.regrowth[j] = if self.food.levels[j] < FOOD_CAPACITY / 2 {
                FOOD_REGROWTH * 3 / 2
            } else {
                FOOD_REGROWTH
            };
        }
        self.ecosystem_runs += 1;
    }

    /// Fills the status board's back buffer and swaps it in.
    fn publish_status(&self) {
        let frame = self.frame;
        let (agents, obs) = (&self.agents, &self.observations);
        self.status.publish(|f| {
            f.frame = frame;
            f.agents.clear();
            f.agents
                .extend(agents.iter().map(|a| a.status(&obs[a.index])));
        });
    }

    /// A hash of the whole state: every agent (networks, Adam, replay,
    /// generator, counters, history), every body, the food, the statistics.
    pub fn state_hash(&self) -> u64 {
        let mut h = StateHash::new();
        h.u64(self.frame);
        h.u64(self.window_start as u64);
        for a in &self.agents {
            a.hash_into(&mut h);
        }
        for b in self.physics.lock().iter() {
            b.hash_into(&mut h);
        }
        for o in &self.observations {
            h.f32(o.x);
            h.f32s(&o.features);
            h.f32(o.effort);
        }
        self.food.hash_into(&mut h);
        for &i in &self.leaderboard {
            h.u64(u64::from(i));
        }
        for m in self.population {
            h.u64(m.to_bits());
        }
        h.u64(self.ecosystem_runs);
        h.u64(self.deferred_total);
        h.finish()
    }

    /// Every agent's cost and work in the last frame.
    pub fn last_costs(&self) -> impl Iterator<Item = (u64, Work)> + '_ {
        self.agents.iter().map(|a| (a.last_cost_ns, a.last_work))
    }
}
