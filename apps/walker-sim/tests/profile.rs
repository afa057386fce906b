//! The cost profile of walker.md: most agent-frames well under a
//! microsecond, a few tens of microseconds (decisions with a forward pass),
//! about 3 to 4 % milliseconds (trainings), a coefficient of variation
//! around 5.

use walker_sim::agent::Work;
use walker_sim::aggregates::CostProfile;
use walker_sim::exec::Executor;
use walker_sim::world::{World, WorldConfig};

/// 40 agents, one physics substep.
fn small_world(seed: u64) -> World {
    World::new(WorldConfig {
        agents: 40,
        substeps: 1,
        seed,
        ..WorldConfig::default()
    })
    .unwrap()
}

#[test]
fn agent_costs_are_mostly_tiny_with_a_few_percent_of_milliseconds() {
    let mut world = small_world(3);
    let mut profile = CostProfile::default();
    for _ in 0..150 {
        world.step_frame(&Executor::Sequential).unwrap();
        for (cost, work) in world.last_costs() {
            profile.record(cost, work);
        }
    }
    let n = profile.count() as f64;
    let share = |w: Work| profile.by_work[w as usize] as f64 / n;
    // What the agents did is deterministic: about 20 % decide, 3-5 % train.
    assert!(
        (0.03..0.05).contains(&share(Work::Train)),
        "{}",
        share(Work::Train)
    );
    assert!(
        (0.12..0.25).contains(&share(Work::Decide)),
        "{}",
        share(Work::Decide)
    );
    // What it cost: medians far apart (robust to a loaded machine).
    let median = |w: Work| {
        profile.by_work_costs[w as usize]
            .quantile(0.5)
            .as_secs_f64()
            * 1e6
    };
    assert!(
        median(Work::Step) < 5.0,
        "full step {} us",
        median(Work::Step)
    );
    assert!(
        (5.0..1000.0).contains(&median(Work::Decide)),
        "decision {} us",
        median(Work::Decide)
    );
    assert!(
        median(Work::Train) >= 1000.0,
        "training {} us",
        median(Work::Train)
    );
    let cv = profile.cv();
    assert!((3.0..8.0).contains(&cv), "coefficient of variation {cv}");
    assert!(profile.milli_share() > 0.02, "{}", profile.milli_share());
}

/// The dynamic loop takes agents costliest first by `Agent::planned_work`;
/// the plan must match what each agent then does.
#[test]
fn the_planned_work_that_orders_the_dynamic_loop_matches_what_agents_do() {
    let mut world = small_world(5);
    let (mut trainings, mut mispredicted) = (0, 0);
    for _ in 0..150 {
        let times = world.step_frame(&Executor::Sequential).unwrap();
        trainings += times.trainings;
        mispredicted += times.mispredicted;
    }
    assert!(
        trainings > 50,
        "only {trainings} trainings: the test needs some"
    );
    assert_eq!(mispredicted, 0);
}
