//! Measures the building blocks' costs on this machine: one physics
//! agent-substep (target about 4 us, walker.md), one forward pass of one
//! state, and the arithmetic of one training step (3 batched forward passes
//! of 32 and one backward pass). `cargo run --release -p walker-sim --example calibrate`.

use std::hint::black_box;
use std::time::Instant;
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

    let mut grad = vec![0.0f32; layout.len()];
    let mut back = BackwardScratch::new();
    let dq = vec![0.01f32; BATCH * layout.actions()];
    let reps = 50;
    let t = Instant::now();
    for _ in 0..reps {
        for _ in 0..3 {
            forward(&params, &layout, black_box(&x), BATCH, &mut act);
        }
        grad.fill(0.0);
        backward(&params, &layout, &act, &dq, &mut grad, &mut back);
        black_box(clip_grad_norm(&mut grad, 10.0));
    }
    let train_ms = t.elapsed().as_secs_f64() * 1e3 / f64::from(reps);
    // The same arithmetic on two threads at once: how much the two CPUs slow
    // each other down (shared core, caches, memory bandwidth).
    let both = std::thread::scope(|s| {
        let work = || {
            let mut act = Activations::new();
            let mut grad = vec![0.0f32; layout.len()];
            let mut back = BackwardScratch::new();
            let t = Instant::now();
            for _ in 0..reps {
                for _ in 0..3 {
                    forward(&params, &layout, black_box(&x), BATCH, &mut act);
                }
                grad.fill(0.0);
                backward(&params, &layout, &act, &dq, &mut grad, &mut back);
            }
            t.elapsed().as_secs_f64() * 1e3 / f64::from(reps)
        };
        let a = s.spawn(work);
        let b = s.spawn(work);
        (a.join().unwrap() + b.join().unwrap()) / 2.0
    });
    // Whole training steps of real agents (their own 3 MB each): one agent
    // alone, then two agents on two threads at once.
    let mut agents: Vec<walker_sim::agent::Agent> = (0..2)
        .map(|i| walker_sim::agent::Agent::new(5, i))
        .collect();
    let steps = 30;
    let t = Instant::now();
    for _ in 0..steps {
        agents[0].train_once();
    }
    let alone_ms = t.elapsed().as_secs_f64() * 1e3 / f64::from(steps);
    let pair_ms = std::thread::scope(|s| {
        let handles: Vec<_> = agents
            .iter_mut()
            .map(|a| {
                s.spawn(move || {
                    let t = Instant::now();
                    for _ in 0..steps {
                        a.train_once();
                    }
                    t.elapsed().as_secs_f64() * 1e3 / f64::from(steps)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum::<f64>() / 2.0
    });
    // Cold: 64 agents (190 MB, far more than the caches) trained round-robin,
    // as in the loop, where an agent trains every 25 frames or so.
    let mut herd: Vec<walker_sim::agent::Agent> = (0..64)
        .map(|i| walker_sim::agent::Agent::new(6, i))
        .collect();
    // One pass first: the first training touches Adam's zeroed moments
    // (page faults), which the loop pays once per agent.
    for a in herd.iter_mut() {
        a.train_once();
    }
    let t = Instant::now();
    for a in herd.iter_mut() {
        a.train_once();
    }
    let cold_alone_ms = t.elapsed().as_secs_f64() * 1e3 / 64.0;
    let cold_pair_ms = std::thread::scope(|s| {
        let (left, right) = herd.split_at_mut(32);
        let handles: Vec<_> = [left, right]
            .into_iter()
            .map(|half| {
                s.spawn(move || {
                    let t = Instant::now();
                    for a in half.iter_mut() {
                        a.train_once();
                    }
                    t.elapsed().as_secs_f64() * 1e3 / 32.0
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum::<f64>() / 2.0
    });
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
