//! # walker-sim: the walker training loop as a benchmark and demo
//!
//! A deterministic stand-in for the walker plan's training loop
//! (`shared/workloads/walker.md`), built on the project's runtime: the role
//! pools and parallel loops of `pool-manager`, the frame clock, stop rules
//! and monitoring rows of `frame-guard`, and the counting locks and
//! per-thread slots of `sync-stats`. It measures whether the runtime spreads
//! the loop over every core without ever freezing it.
//!
//! Main types:
//! - [`world::World`]: the agents ([`agent::Agent`]: a 152k-parameter policy
//!   network with its target copy, Adam, a 2000 x 61 replay ring, about
//!   3 MB each), their bodies behind the world lock ([`physics::Body`]: 7
//!   rods, 6 joints, ground contact), the 24 shared food points
//!   ([`food`]), the statistics and ecosystem passes, the status board
//!   ([`status::StatusBoard`]); [`world::World::step_frame`] runs one frame
//!   with an [`exec::Executor`] (the sequential loop or a pool's parallel
//!   loop with a partitioning).
//! - [`run::run`]: a whole run on the role pools as a
//!   [`config::RunConfig`] says, with the frame guard, the monitoring CSV
//!   ([`monitor_csv`]), the plan's background schedule ([`background`]) and
//!   the status reader; [`report::RunReport`] holds what it measured (the
//!   phase sums and cost profile of [`aggregates`] among it), [`report`]
//!   prints it beside the sequential run's figures; [`sweep`] runs the
//!   scenario sweep.
//! - [`cli::Options`]: the command line of the `walker-sim` binary.
//!
//! Guarantees: the same [`world::WorldConfig`] gives the same state after K
//! frames, bit for bit ([`world::World::state_hash`]), for any executor,
//! thread count, partitioning, food mode and physics mode: every agent draws
//! from its own generator, reads only data written before the parallel
//! phase, the shared food demand is an integer sum, and every floating-point
//! reduction has a fixed order. The status reader never takes the world
//! lock.

pub mod agent;
pub mod aggregates;
pub mod background;
pub mod cli;
pub mod config;
pub mod exec;
pub mod food;
pub mod hash;
pub mod monitor_csv;
pub mod nn;
pub mod physics;
mod progress;
pub mod replay;
pub mod report;
pub mod rng;
pub mod run;
pub mod status;
pub mod sweep;
pub mod world;
