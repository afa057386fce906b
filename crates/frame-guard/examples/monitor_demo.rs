//! `make monitor-demo`: a short frame loop on the role pools with the frame
//! guard, writing the monitoring CSV to standard output (header first).
//!
//! Each frame: a physics step that holds the world lock (a counting lock),
//! then every agent steps in parallel on the ai pool (a small policy network,
//! a few agents much costlier than the rest, each eating from shared food
//! points behind a second counting lock); every 10th frame a statistics task
//! (means and a leaderboard sort) goes to the stats pool; the background pool
//! runs periodic cleanup and evaluation tasks. Every interval (1 s, or
//! `MONITOR_INTERVAL_MS`) a row is written from the pools' busy/alive
//! thread-time, the counting locks' figures and the parallel sections' work
//! and wall time.
//!
//! Options: `--seconds N` (default 5; the loop stops after N rows of 1 s),
//! `--agents N` (default 60). The pools' sizes come from pool-manager's
//! environment variables; unset ones get the demo's choice, which gives the
//! ai, stats and background pools at least one thread each (on 2 cores: a
//! budget of 3 worker threads, ai 1, stats 1, background 1).

use frame_guard::{CsvMonitor, FrameGuard, FrameGuardConfig, SpeedupMeter};
use pool_manager::{Partitioning, Role, Runtime, RuntimeConfig, TaskHandle};
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use sync_stats::CountingMutex;

const INPUTS: usize = 29;
const HIDDEN: usize = 64;
const ACTIONS: usize = 25;

/// A small deterministic generator (splitmix64).
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
}

/// One agent: a position, a reward, and a two-layer policy network.
struct Agent {
    position: [f32; 2],
    velocity: [f32; 2],
    reward: f32,
    w1: Vec<f32>,
    w2: Vec<f32>,
    w3: Vec<f32>,
    action: usize,
    /// Every `heavy_every` frames this agent "trains": 30 forward passes.
    heavy_every: u64,
}

impl Agent {
    fn new(rng: &mut Rng, index: usize) -> Self {
        let mut weights = |n: usize| (0..n).map(|_| rng.unit() * 0.2).collect::<Vec<f32>>();
        Self {
            position: [index as f32, 0.0],
            velocity: [0.0, 0.0],
            reward: 0.0,
            w1: weights(INPUTS * HIDDEN),
            w2: weights(HIDDEN * HIDDEN),
            w3: weights(HIDDEN * ACTIONS),
            action: 0,
            // About 3 % of agents are costly on a given frame.
            heavy_every: if index % 7 == 0 { 5 } else { 1000 },
        }
    }

    fn forward(&self, state: &[f32; INPUTS]) -> usize {
        let layer = |w: &[f32], x: &[f32], out: &mut [f32]| {
            for (o, row) in out.iter_mut().zip(w.chunks_exact(x.len())) {
                let s: f32 = row.iter().zip(x).map(|(a, b)| a * b).sum();
                *o = s.max(0.0);
            }
        };
        let mut h1 = [0f32; HIDDEN];
        let mut h2 = [0f32; HIDDEN];
        let mut q = [0f32; ACTIONS];
        layer(&self.w1, state, &mut h1);
        layer(&self.w2, &h1, &mut h2);
        layer(&self.w3, &h2, &mut q);
        q.iter()
            .enumerate()
            .fold(
                (0, f32::MIN),
                |best, (i, &v)| if v > best.1 { (i, v) } else { best },
            )
            .0
    }

    fn step(&mut self, frame: u64, index: usize, food: &CountingMutex<Vec<f32>>) {
        let mut state = [0f32; INPUTS];
        state[0] = self.position[0];
        state[1] = self.position[1];
        state[2] = self.velocity[0];
        state[3] = self.velocity[1];
        for (i, s) in state.iter_mut().enumerate().skip(4) {
            *s = ((frame as f32) * 0.01 + i as f32).sin();
        }
        let passes = if (frame + index as u64) % self.heavy_every == 0 {
            30
        } else {
            1
        };
        for _ in 0..passes {
            self.action = self.forward(&state);
            state[4] += 0.001;
        }
        let angle = self.action as f32 / ACTIONS as f32 * std::f32::consts::TAU;
        self.velocity = [angle.cos() * 0.1, angle.sin() * 0.1];
        // Eat from the shared food points (the contended resource).
        let mut points = food.lock();
        let spot = (index + frame as usize) % points.len();
        let eaten = points[spot].min(0.05);
        points[spot] -= eaten;
        drop(points);
        self.reward += eaten;
    }
}

/// The pools from pool-manager's environment; sizes the environment left
/// unset get the demo's choice (see the module docs).
fn runtime_config() -> Result<RuntimeConfig, String> {
    let mut config = RuntimeConfig::from_env().map_err(|e| e.to_string())?;
    let budget = *config.thread_budget.get_or_insert(config.cores.max(3));
    for (role, threads) in [
        (Role::Ai, budget.saturating_sub(2).max(1)),
        (Role::Stats, 1),
        (Role::Background, 1),
        (Role::Physics, 0),
        (Role::Evaluation, 0),
    ] {
        config.pool_mut(role).threads.get_or_insert(threads);
    }
    Ok(config)
}

struct Options {
    seconds: u64,
    agents: usize,
}

fn parse_args() -> Result<Options, String> {
    let mut options = Options {
        seconds: 5,
        agents: 60,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| -> Result<u64, String> {
            let text = args.next().ok_or(format!("{name} needs a value"))?;
            text.parse::<u64>()
                .ok()
                .filter(|n| (1..=100_000).contains(n))
                .ok_or(format!(
                    "{name} {text:?}: expected a whole number in 1..=100000"
                ))
        };
        match arg.as_str() {
            "--seconds" => options.seconds = value("--seconds")?,
            "--agents" => options.agents = value("--agents")? as usize,
            "-h" | "--help" => return Err("usage: monitor_demo [--seconds N] [--agents N]".into()),
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    Ok(options)
}

fn run() -> Result<(), String> {
    let options = parse_args()?;
    let guard_config = FrameGuardConfig {
        watchdog_period: Some(Duration::from_millis(100)),
        ..FrameGuardConfig::from_env().map_err(|e| e.to_string())?
    };
    let runtime = Runtime::new(runtime_config()?).map_err(|e| e.to_string())?;
    let plan: Vec<String> = Role::ALL
        .iter()
        .map(|&r| format!("{}={}", r.name(), runtime.pool(r).threads()))
        .collect();
    eprintln!(
        "monitor-demo: {} agents, {} s, {} cores, worker threads {} ({})",
        options.agents,
        options.seconds,
        runtime.config().cores,
        runtime.threads(),
        plan.join(" ")
    );

    let mut rng = Rng(42);
    let mut agents: Vec<Agent> = (0..options.agents)
        .map(|i| Agent::new(&mut rng, i))
        .collect();
    let world = CountingMutex::new("world", 0u64);
    let food = CountingMutex::new("food", vec![1.0f32; 24]);
    let leaderboard = Arc::new(CountingMutex::new("leaderboard", Vec::<f32>::new()));
    let meter = SpeedupMeter::new();

    // The background pool's periodic work: cleanup and evaluation (shorter
    // than the plan's 5 s and 10 s so that they run in a short demo).
    let board = Arc::clone(&leaderboard);
    runtime
        .scheduler()
        .add(
            "cleanup",
            Duration::from_millis(250),
            pool_manager::PRIORITY_NORMAL,
            move || {
                let mut scratch: Vec<u64> = (0..200_000u64)
                    .map(|i| i.wrapping_mul(2654435761) % 1000)
                    .collect();
                scratch.retain(|x| x % 3 != 0);
                scratch.sort_unstable();
                std::hint::black_box(scratch);
                board.lock().truncate(10);
            },
        )
        .map_err(|e| e.to_string())?;
    let mut eval_rng = Rng(7);
    let evaluator = Agent::new(&mut eval_rng, 1);
    runtime
        .scheduler()
        .add(
            "evaluation",
            Duration::from_millis(500),
            pool_manager::PRIORITY_LOW,
            move || {
                let state = [0.5f32; INPUTS];
                let mut actions = 0;
                for _ in 0..300 {
                    actions += evaluator.forward(&state);
                }
                std::hint::black_box(actions);
            },
        )
        .map_err(|e| e.to_string())?;

    let guard = FrameGuard::new(guard_config).map_err(|e| e.to_string())?;
    let interval = guard.config().monitor_interval;
    let rows_wanted = ((options.seconds as f64) / interval.as_secs_f64())
        .ceil()
        .max(1.0) as u64;
    let stdout = std::io::stdout();
    let mut monitor = CsvMonitor::new(&guard, stdout.lock());
    monitor
        .monitor_mut()
        .set_baseline(&runtime.monitor_inputs(Some(&meter)));
    let ai = runtime.pool(Role::Ai);
    let stats = runtime.pool(Role::Stats);
    let mut pending_stats: Option<TaskHandle<(f32, f32)>> = None;
    let mut rows = 0u64;
    let mut frame = 0u64;
    while rows < rows_wanted && !guard.is_stopped() {
        let scope = guard.frame().map_err(|e| e.to_string())?;
        // Physics: sequential, under the world lock.
        {
            let mut steps = world.lock();
            for agent in agents.iter_mut() {
                for _ in 0..5 {
                    agent.position[0] += agent.velocity[0] / 60.0;
                    agent.position[1] += agent.velocity[1] / 60.0;
                }
            }
            *steps += 1;
        }
        // Agents: in parallel on the ai pool, in chunks of 4, each chunk's
        // CPU time counted as parallel work, the loop's wall time as its wall.
        {
            let mut chunks: Vec<(usize, &mut [Agent])> = agents
                .chunks_mut(4)
                .enumerate()
                .map(|(c, a)| (c * 4, a))
                .collect();
            meter
                .section(|| {
                    ai.for_each_mut(
                        &mut chunks,
                        Partitioning::Dynamic { grain: 1 },
                        |_, (first, chunk)| {
                            meter.task(|| {
                                for (k, agent) in chunk.iter_mut().enumerate() {
                                    agent.step(frame, *first + k, &food);
                                }
                            })
                        },
                    )
                })
                .map_err(|e| format!("agent step failed: {e}"))?;
        }
        for point in food.lock().iter_mut() {
            *point = (*point + 0.01).min(1.0);
        }
        // Statistics every 10 frames on the stats pool, collected later.
        if frame % 10 == 0 {
            if let Some(handle) = pending_stats.take() {
                let (mean, best) = handle
                    .wait()
                    .map_err(|e| format!("stats task failed: {e}"))?;
                std::hint::black_box((mean, best));
            }
            let rewards: Vec<f32> = agents.iter().map(|a| a.reward).collect();
            let board = Arc::clone(&leaderboard);
            pending_stats = Some(
                stats
                    .submit(move || {
                        let mut sorted = rewards.clone();
                        let mut windows = 0.0f32;
                        for w in [100usize, 500, 2000] {
                            for _ in 0..w / 100 {
                                windows += sorted.iter().sum::<f32>() / sorted.len().max(1) as f32;
                            }
                        }
                        sorted.sort_by(|a, b| b.total_cmp(a));
                        let best = sorted.first().copied().unwrap_or(0.0);
                        board.lock().push(best);
                        (windows, best)
                    })
                    .map_err(|e| format!("stats submit failed: {e}"))?,
            );
        }
        // Without background threads, periodic tasks run here (fallback).
        runtime.scheduler().run_due();
        scope.end().map_err(|e| e.to_string())?;
        frame += 1;
        if monitor
            .write_if_due(&guard, || Some(runtime.monitor_inputs(Some(&meter))))
            .map_err(|e| format!("writing the CSV: {e}"))?
            .is_some()
        {
            rows += 1;
        }
    }
    if let Some(handle) = pending_stats.take() {
        let _ = handle.wait();
    }
    drop(monitor);
    let s = guard.stats();
    eprintln!(
        "monitor-demo: {} frames, p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms, {:.1} % under {:.1} ms, stop: {}",
        s.frames,
        s.p50.as_secs_f64() * 1e3,
        s.p99.as_secs_f64() * 1e3,
        s.max.as_secs_f64() * 1e3,
        s.under_budget_share * 100.0,
        s.budget.as_secs_f64() * 1e3,
        guard
            .stop_info()
            .map_or("none".to_owned(), |i| i.to_string())
    );
    std::io::stderr().flush().ok();
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("monitor-demo: {e}");
            ExitCode::FAILURE
        }
    }
}
