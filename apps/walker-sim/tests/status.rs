//! The status snapshot never waits for the physics (world) lock.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use walker_sim::exec::Executor;
use walker_sim::status::StatusReader;
use walker_sim::world::{World, WorldConfig};

fn small_world() -> World {
    World::new(WorldConfig {
        agents: 8,
        substeps: 1,
        ..WorldConfig::default()
    })
    .unwrap()
}

#[test]
fn a_snapshot_returns_at_once_while_another_thread_holds_the_physics_lock() {
    let world = small_world();
    let physics = world.physics_lock();
    let board = world.status_board();
    let held = physics.lock();
    let (answer, took) = std::thread::scope(|s| {
        s.spawn(|| {
            let start = Instant::now();
            let json = board.snapshot().to_json();
            (json, start.elapsed())
        })
        .join()
        .unwrap()
    });
    // Still holding the lock here: the reader did not need it.
    assert!(physics.is_locked());
    drop(held);
    assert!(answer.contains("\"index\":7"), "every agent is served");
    assert!(took < Duration::from_millis(100), "took {took:?}");
}

#[test]
fn the_reader_keeps_answering_while_the_running_loop_is_stuck_in_physics() {
    let mut world = small_world();
    let physics = world.physics_lock();
    let board = world.status_board();
    let frames = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let reader = StatusReader::start(board.clone(), 200.0).unwrap();
    std::thread::scope(|s| {
        let (loop_frames, loop_stop) = (frames.clone(), stop.clone());
        s.spawn(move || {
            while !loop_stop.load(Ordering::Relaxed) {
                world.step_frame(&Executor::Sequential).unwrap();
                loop_frames.fetch_add(1, Ordering::Relaxed);
            }
        });
        // Let the loop run, then freeze it in its physics phase for 400 ms.
        while frames.load(Ordering::Relaxed) < 5 {
            std::thread::sleep(Duration::from_millis(1));
        }
        let before_hold = reader.latency().count();
        let held = physics.lock();
        std::thread::sleep(Duration::from_millis(50));
        let frozen_at = frames.load(Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(350));
        assert_eq!(
            frames.load(Ordering::Relaxed),
            frozen_at,
            "the loop is blocked on the physics lock"
        );
        let served_while_held = reader.latency().count() - before_hold;
        drop(held);
        stop.store(true, Ordering::Relaxed);
        // About 80 requests at 200 Hz in 400 ms; allow a slow machine.
        assert!(
            served_while_held >= 20,
            "{served_while_held} requests served while the lock was held"
        );
    });
    let figures = reader.finish();
    assert!(
        figures.latency.max() < Duration::from_millis(50),
        "slowest request {:?}",
        figures.latency.max()
    );
    assert!(figures.last_frame >= 5);
}
