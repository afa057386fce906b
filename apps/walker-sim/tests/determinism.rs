//! The same seed gives the same world state after K frames for any thread
//! count, partitioning, food mode and physics mode.

use pool_manager::{Partitioning, Role, Runtime};
use walker_sim::config::{PARTITIONINGS, runtime_config};
use walker_sim::exec::Executor;
use walker_sim::food::FoodMode;
use walker_sim::world::{PhysicsMode, World, WorldConfig};

const FRAMES: u64 = 130;

/// A small world whose rare events all happen within `FRAMES` frames:
/// statistics every 20, ecosystem every 60, target copies every 3
/// trainings, and a budget of 1 training per frame (so requests wait).
fn world(food: FoodMode, physics: PhysicsMode, p: f64) -> WorldConfig {
    WorldConfig {
        agents: 12,
        window_share: p,
        substeps: 2,
        seed: 7,
        food_mode: food,
        physics,
        train_budget: Some(1),
        stats_every: 20,
        ecosystem_every: 60,
        target_copy_every: 3,
    }
}

fn run(config: &WorldConfig, exec: &Executor<'_>) -> (u64, World) {
    let mut w = World::new(config.clone()).unwrap();
    for _ in 0..FRAMES {
        w.step_frame(exec).unwrap();
    }
    (w.state_hash(), w)
}

fn run_on_pool(config: &WorldConfig, threads: usize, partitioning: Partitioning) -> u64 {
    let rt = Runtime::new(runtime_config(threads, false).unwrap()).unwrap();
    let pool = rt.pool(Role::Ai);
    assert_eq!(pool.participants(), threads);
    run(config, &Executor::Pool { pool, partitioning }).0
}

#[test]
fn the_state_after_k_frames_is_the_same_on_1_2_and_3_threads_with_every_partitioning() {
    let config = world(FoodMode::Lock, PhysicsMode::Serial, 1.0);
    let (reference, w) = run(&config, &Executor::Sequential);
    // The run exercised every rare path, so the hash covers them.
    let trainings: u64 = w.agents().iter().map(|a| a.trainings()).sum();
    assert!(trainings >= 60, "{trainings} trainings");
    assert!(
        w.agents().iter().any(|a| a.trainings() >= 3),
        "a target copy"
    );
    assert!(w.deferred_trainings() > 0, "the budget made requests wait");
    assert!(!w.leaderboard().is_empty(), "statistics ran");
    // The walker's three, and pool-manager's automatic dynamic grain.
    let all = PARTITIONINGS.into_iter().chain([Partitioning::DYNAMIC]);
    for threads in [1, 2, 3] {
        for partitioning in all.clone() {
            assert_eq!(
                run_on_pool(&config, threads, partitioning),
                reference,
                "{threads} threads, {partitioning:?}"
            );
        }
    }
}

#[test]
fn food_modes_and_island_physics_give_the_same_state() {
    let reference = run(
        &world(FoodMode::Lock, PhysicsMode::Serial, 1.0),
        &Executor::Sequential,
    )
    .0;
    for food in [FoodMode::Atomic, FoodMode::Deltas] {
        let config = world(food, PhysicsMode::Serial, 1.0);
        assert_eq!(
            run_on_pool(&config, 2, walker_sim::config::DYNAMIC),
            reference,
            "{food:?}"
        );
    }
    for threads in [2, 3] {
        let config = world(FoodMode::Deltas, PhysicsMode::Islands, 1.0);
        assert_eq!(
            run_on_pool(&config, threads, walker_sim::config::DYNAMIC),
            reference,
            "islands on {threads} threads"
        );
    }
}

#[test]
fn a_partial_window_is_deterministic_too_and_the_hash_sees_the_seed_and_the_frames() {
    let config = world(FoodMode::Atomic, PhysicsMode::Serial, 0.25);
    let (reference, _) = run(&config, &Executor::Sequential);
    assert_eq!(
        run_on_pool(&config, 2, Partitioning::Interleaved),
        reference
    );
    assert_eq!(
        run_on_pool(&config, 3, walker_sim::config::DYNAMIC),
        reference
    );
    // The hash is not blind: another seed, or one frame less, differs.
    let other_seed = WorldConfig {
        seed: 8,
        ..config.clone()
    };
    assert_ne!(run(&other_seed, &Executor::Sequential).0, reference);
    let mut w = World::new(config).unwrap();
    for _ in 0..FRAMES - 1 {
        w.step_frame(&Executor::Sequential).unwrap();
    }
    assert_ne!(w.state_hash(), reference);
    // And with the full window the world is a different one.
    let full = world(FoodMode::Atomic, PhysicsMode::Serial, 1.0);
    assert_ne!(run(&full, &Executor::Sequential).0, reference);
}
