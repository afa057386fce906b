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
    let macs = layout.forward_macs();
    println!(
        "physics: {physics_us:.2} us per agent-substep; forward (1 state): {forward_us:.1} us ({macs} multiply-adds); \
         training arithmetic (3 x {BATCH} forward + backward): {train_ms:.2} ms (~{:.1}M multiply-adds)",
        (3 * BATCH * macs + 2 * BATCH * macs) as f64 / 1e6
    );
}
