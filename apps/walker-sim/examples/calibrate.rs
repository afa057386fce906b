//! Measures the building blocks' costs on this machine: one physics
//! agent-substep (target about 4 us, walker.md), one forward pass of one
//! state, and the arithmetic of one training step (3 batched forward passes
//! of 32 and one backward pass). `cargo run --release -p walker-sim --example calibrate`.

use std::hint::black_box;
use std::time::Instant;
use walker_sim::agent::Agent;
use walker_sim::nn::{
    Activations, BATCH, BackwardScratch, INPUTS, Layout, backward, clip_grad_norm, forward,
};
use walker_sim::physics::Body;
use walker_sim::rng::Rng;

fn main() {
    let mut body = Body::new(0.0, 1.0);
    let n = 20_000u32;
    let t = Instant::now();
    for f in 0..n {
        body.command = f % 25;
        body.step(1);
    }
    let physics_us = t.elapsed().as_secs_f64() * 1e6 / f64::from(n);

    let layout = Layout::new(25);
    let mut rng = Rng::new(1, 1);
    let params = layout.init(&mut rng);
    let x: Vec<f32> = (0..BATCH * INPUTS).map(|_| rng.signed()).collect();
    let mut act = Activations::new();
    let reps = 2000;
    let t = Instant::now();
    for _ in 0..reps {
        forward(&params, &layout, black_box(&x), 1, &mut act);
    }
    let forward_us = t.elapsed().as_secs_f64() * 1e6 / f64::from(reps);

    let dq = vec![0.01f32; BATCH * layout.actions()];
    let arithmetic = || training_arithmetic_ms(&params, &layout, &x, &dq, 50);
    let train_ms = arithmetic();
    // The same arithmetic on two threads at once: how much the two CPUs slow
    // each other down (shared core, caches, memory bandwidth).
    let both = two_at_once(arithmetic, arithmetic);
    // Whole training steps of real agents (their own 3 MB each): one agent
    // alone, then two agents on two threads at once.
    let mut agents: Vec<Agent> = (0..2).map(|i| Agent::new(5, i)).collect();
    let steps = 30;
    let alone_ms = ms_per_training(&mut agents[..1], steps);
    let (first, second) = agents.split_at_mut(1);
    let pair_ms = two_at_once(
        || ms_per_training(first, steps),
        || ms_per_training(second, steps),
    );
    // Cold: 64 agents (190 MB, far more than the caches) trained round-robin,
    // as in the loop, where an agent trains every 25 frames or so.
    let mut herd: Vec<Agent> = (0..64).map(|i| Agent::new(6, i)).collect();
    // One pass first: the first training touches Adam's zeroed moments
    // (page faults), which the loop pays once per agent.
    ms_per_training(&mut herd, 1);
    let cold_alone_ms = ms_per_training(&mut herd, 1);
    let (left, right) = herd.split_at_mut(32);
    let cold_pair_ms = two_at_once(|| ms_per_training(left, 1), || ms_per_training(right, 1));
    let macs = layout.forward_macs();
    println!(
        "physics: {physics_us:.2} us per agent-substep; forward (1 state): {forward_us:.1} us ({macs} multiply-adds); \
         training arithmetic (3 x {BATCH} forward + backward): {train_ms:.2} ms (~{:.1}M multiply-adds)",
        (3 * BATCH * macs + 2 * BATCH * macs) as f64 / 1e6
    );
    println!(
        "training arithmetic on two threads at once: {both:.2} ms each ({:.2}x the time alone)",
        both / train_ms
    );
    println!(
        "agent training step: {alone_ms:.2} ms alone, {pair_ms:.2} ms each with two agents training at once ({:.2}x)",
        pair_ms / alone_ms
    );
    println!(
        "training steps of 64 different agents (cold caches): {cold_alone_ms:.2} ms alone, {cold_pair_ms:.2} ms each on two threads at once ({:.2}x)",
        cold_pair_ms / cold_alone_ms
    );
}

/// Milliseconds per repetition of one training step's arithmetic (3 batched
/// forward passes, a backward pass, clipping), with its own scratch buffers.
fn training_arithmetic_ms(
    params: &[f32],
    layout: &Layout,
    x: &[f32],
    dq: &[f32],
    reps: u32,
) -> f64 {
    let mut act = Activations::new();
    let mut grad = vec![0.0f32; layout.len()];
    let mut back = BackwardScratch::new();
    let t = Instant::now();
    for _ in 0..reps {
        for _ in 0..3 {
            forward(params, layout, black_box(x), BATCH, &mut act);
        }
        grad.fill(0.0);
        backward(params, layout, &act, dq, &mut grad, &mut back);
        black_box(clip_grad_norm(&mut grad, 10.0));
    }
    t.elapsed().as_secs_f64() * 1e3 / f64::from(reps)
}

/// Milliseconds per training when `agents` train in turn, `rounds` times.
fn ms_per_training(agents: &mut [Agent], rounds: u32) -> f64 {
    let t = Instant::now();
    for _ in 0..rounds {
        for a in agents.iter_mut() {
            a.train_once();
        }
    }
    t.elapsed().as_secs_f64() * 1e3 / (f64::from(rounds) * agents.len() as f64)
}

/// Runs `a` and `b` on two threads at once; the mean of their results.
fn two_at_once(a: impl FnOnce() -> f64 + Send, b: impl FnOnce() -> f64 + Send) -> f64 {
    std::thread::scope(|s| {
        let a = s.spawn(a);
        let b = s.spawn(b);
        (a.join().unwrap() + b.join().unwrap()) / 2.0
    })
}
