//! The scenario sweep of `walker.md`: (agents, threads) = (30, 8), (60, 16),
//! (120, 32), (240, 48), each with p in {0.15, 1.0} and M in {5, 10}; at each
//! point the sequential loop and the three partitionings, in one process.
//! Thread counts above the machine's cores are capped (the CSV says so).
//! Results go to a CSV and to an SVG plot (plotters, SVG backend only):
//! frame time and speed-up against agents, per partitioning.

use crate::aggregates::amdahl_ceiling;
use crate::cli::Options;
use crate::config::{LoopMode, PARTITIONINGS, RunConfig};
use crate::report::{RunReport, ms, speedup};
use crate::run::run;
use crate::world::WorldConfig;
use plotters::coord::Shift;
use plotters::coord::combinators::{BindKeyPoints, LogCoord, WithKeyPoints};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use std::fmt::Write as _;

/// The plan's (agents, threads) scenarios.
pub const SCENARIOS: [(usize, usize); 4] = [(30, 8), (60, 16), (120, 32), (240, 48)];
/// The window shares p.
pub const SHARES: [f64; 2] = [0.15, 1.0];
/// The substep counts M.
pub const SUBSTEPS: [usize; 2] = [5, 10];

/// One run of the sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepPoint {
    /// Agents.
    pub agents: usize,
    /// Threads the plan's scenario asks for.
    pub planned_threads: usize,
    /// Threads used (capped at the cores).
    pub threads: usize,
    /// Window share.
    pub p: f64,
    /// Substeps.
    pub substeps: usize,
    /// `sequential` or the partitioning.
    pub run: &'static str,
    /// Frames.
    pub frames: u64,
    /// Mean frame time, ms.
    pub mean_ms: f64,
    /// Median frame time, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Longest frame, ms.
    pub max_ms: f64,
    /// Frames per second.
    pub fps: f64,
    /// Physics steps per second.
    pub world_steps_per_s: f64,
    /// Share of frames under 16.7 ms.
    pub under_budget: f64,
    /// Speed-up over the point's sequential run.
    pub speedup: f64,
    /// Amdahl ceiling for `threads` from the sequential share.
    pub amdahl_ceiling: f64,
    /// Status latency p99, ms.
    pub status_p99_ms: f64,
    /// Emergency stops (every rule).
    pub emergency_stops: u64,
    /// Same final state hash as the sequential run.
    pub same_hash: bool,
}

/// The CSV header of the sweep.
pub const CSV_HEADER: &str = "agents,planned_threads,threads,capped,p,substeps,run,frames,mean_ms,p50_ms,p99_ms,max_ms,fps,world_steps_per_s,under_16_7ms,speedup,amdahl_ceiling,status_p99_ms,emergency_stops,same_hash";

impl SweepPoint {
    fn new(
        seq: &RunReport,
        r: &RunReport,
        planned_threads: usize,
        threads: usize,
        serial: f64,
    ) -> Self {
        Self {
            agents: r.world.agents,
            planned_threads,
            threads,
            p: r.world.window_share,
            substeps: r.world.substeps,
            run: r.mode.name(),
            frames: r.frames,
            mean_ms: ms(r.mean_frame()),
            p50_ms: ms(r.frame_stats.p50),
            p99_ms: ms(r.frame_stats.p99),
            max_ms: ms(r.frame_stats.max),
            fps: r.fps(),
            world_steps_per_s: r.world_steps_per_s(),
            under_budget: r.frame_stats.under_budget_share,
            speedup: speedup(seq, r),
            amdahl_ceiling: amdahl_ceiling(serial, threads),
            status_p99_ms: ms(r.status_p99),
            emergency_stops: r.emergency_stops(),
            same_hash: r.hash == seq.hash,
        }
    }

    /// The CSV line.
    pub fn to_csv(&self) -> String {
        format!(
            "{},{},{},{},{},{},{},{},{:.4},{:.4},{:.4},{:.4},{:.2},{:.1},{:.4},{:.4},{:.4},{:.4},{},{}",
            self.agents,
            self.planned_threads,
            self.threads,
            self.threads < self.planned_threads,
            self.p,
            self.substeps,
            self.run,
            self.frames,
            self.mean_ms,
            self.p50_ms,
            self.p99_ms,
            self.max_ms,
            self.fps,
            self.world_steps_per_s,
            self.under_budget,
            self.speedup,
            self.amdahl_ceiling,
            self.status_p99_ms,
            self.emergency_stops,
            self.same_hash
        )
    }
}

/// Frames per run at a point with `agents` agents: `base`, and more for
/// small worlds (whose frames are short), so that every run lasts a few
/// seconds: 4x at 30 agents, 2x at 60.
pub fn frames_for(base: u64, agents: usize) -> u64 {
    base.max(base * 120 / agents.max(1) as u64)
}

/// Runs the sweep with the options' world (seed, food, physics, budget)
/// and [`frames_for`]`(sweep_frames, agents)` frames per run.
pub fn sweep(o: &Options, cores: usize) -> Result<Vec<SweepPoint>, String> {
    let mut points = Vec::new();
    for (p, substeps) in SHARES
        .iter()
        .flat_map(|&p| SUBSTEPS.iter().map(move |&m| (p, m)))
    {
        for (agents, planned) in SCENARIOS {
            let threads = planned.min(cores).max(1);
            let world = WorldConfig {
                agents,
                window_share: p,
                substeps,
                ..o.world.clone()
            };
            let one = |mode: LoopMode| {
                let frames = frames_for(o.sweep_frames, agents);
                let mut c = RunConfig::new(world.clone(), mode, threads, frames);
                c.status_hz = o.status_hz;
                run(&c)
            };
            // Every mode `rounds` times, alternating; the fastest run of each.
            let modes: Vec<LoopMode> = std::iter::once(LoopMode::Sequential)
                .chain(PARTITIONINGS.map(LoopMode::Parallel))
                .collect();
            let mut best: Vec<Option<RunReport>> = vec![None; modes.len()];
            for _ in 0..o.rounds.max(1) {
                for (slot, &mode) in best.iter_mut().zip(&modes) {
                    let r = one(mode)?;
                    if slot
                        .as_ref()
                        .is_none_or(|b| r.mean_frame() < b.mean_frame())
                    {
                        *slot = Some(r);
                    }
                }
            }
            let runs: Vec<RunReport> = best.into_iter().flatten().collect();
            let seq = &runs[0];
            let serial = seq.phases.serial_share();
            for r in &runs {
                points.push(SweepPoint::new(seq, r, planned, threads, serial));
            }
            let last = &points[points.len() - 4..];
            eprintln!(
                "sweep: agents {agents:>3} threads {threads}{} p {p:<4} M {substeps:>2}: sequential {:.2} ms/frame; speed-up interleaved {:.2} contiguous {:.2} dynamic {:.2} (Amdahl {:.2}){}",
                if threads < planned {
                    format!(" (plan {planned}, capped)")
                } else {
                    String::new()
                },
                last[0].mean_ms,
                last[1].speedup,
                last[2].speedup,
                last[3].speedup,
                last[0].amdahl_ceiling,
                if last.iter().all(|x| x.same_hash) {
                    ""
                } else {
                    "; HASHES DIFFER"
                }
            );
        }
    }
    Ok(points)
}

/// Reads a sweep CSV written by [`write_csv`] (to plot it again).
pub fn read_csv(path: &str) -> Result<Vec<SweepPoint>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let mut lines = text.lines();
    if lines.next() != Some(CSV_HEADER) {
        return Err(format!(
            "{path}: not a walker-sim sweep CSV (header differs)"
        ));
    }
    let runs = ["sequential", "interleaved", "contiguous", "dynamic"];
    lines
        .enumerate()
        .map(|(i, line)| {
            let bad = || format!("{path}:{}: cannot parse {line:?}", i + 2);
            let f: Vec<&str> = line.split(',').collect();
            if f.len() != CSV_HEADER.split(',').count() {
                return Err(bad());
            }
            let num = |k: usize| f[k].parse::<f64>().map_err(|_| bad());
            let int = |k: usize| f[k].parse::<u64>().map_err(|_| bad());
            Ok(SweepPoint {
                agents: int(0)? as usize,
                planned_threads: int(1)? as usize,
                threads: int(2)? as usize,
                p: num(4)?,
                substeps: int(5)? as usize,
                run: runs.into_iter().find(|r| *r == f[6]).ok_or_else(bad)?,
                frames: int(7)?,
                mean_ms: num(8)?,
                p50_ms: num(9)?,
                p99_ms: num(10)?,
                max_ms: num(11)?,
                fps: num(12)?,
                world_steps_per_s: num(13)?,
                under_budget: num(14)?,
                speedup: num(15)?,
                amdahl_ceiling: num(16)?,
                status_p99_ms: num(17)?,
                emergency_stops: int(18)?,
                same_hash: f[19] == "true",
            })
        })
        .collect()
}

/// Writes the sweep CSV.
pub fn write_csv(points: &[SweepPoint], path: &str) -> Result<(), String> {
    let mut text = String::new();
    let _ = writeln!(text, "{CSV_HEADER}");
    for p in points {
        let _ = writeln!(text, "{}", p.to_csv());
    }
    if let Some(dir) = std::path::Path::new(path).parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    std::fs::write(path, text).map_err(|e| format!("cannot write {path}: {e}"))
}

/// The agents axis: logarithmic, labelled at the scenarios' agent counts.
fn agents_axis() -> WithKeyPoints<LogCoord<f64>> {
    (25f64..260f64)
        .log_scale()
        .with_key_points(SCENARIOS.iter().map(|&(a, _)| a as f64).collect())
}

fn color(run: &str) -> RGBColor {
    match run {
        "sequential" => RGBColor(40, 40, 40),
        "interleaved" => RGBColor(214, 39, 40),
        "contiguous" => RGBColor(31, 119, 180),
        _ => RGBColor(44, 160, 44),
    }
}

/// Draws the plot: one row per (p, M); left the mean frame time against
/// agents for the sequential loop and each partitioning, right the speed-up
/// of each partitioning and the Amdahl ceiling.
pub fn plot(points: &[SweepPoint], path: &str, cores: usize) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| format!("plotting {path}: {e}");
    if let Some(dir) = std::path::Path::new(path).parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).map_err(|e| err(&e))?;
    }
    let rows: Vec<(f64, usize)> = SHARES
        .iter()
        .flat_map(|&p| SUBSTEPS.iter().map(move |&m| (p, m)))
        .collect();
    let root = SVGBackend::new(path, (1200, 330 * rows.len() as u32 + 60)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let threads = points.iter().map(|p| p.threads).max().unwrap_or(1);
    let (title, body) = root.split_vertically(60);
    title
        .draw(&Text::new(
            format!(
                "walker-sim sweep: {threads} threads on {cores} cores (the plan's 8/16/32/48 capped at {cores}); frames per run {} at 30/60/120/240 agents",
                SCENARIOS
                    .iter()
                    .filter_map(|&(a, _)| points.iter().find(|p| p.agents == a))
                    .map(|p| p.frames.to_string())
                    .collect::<Vec<_>>()
                    .join("/")
            ),
            (20, 20),
            ("sans-serif", 20).into_font(),
        ))
        .map_err(|e| err(&e))?;
    let cells = body.split_evenly((rows.len(), 2));
    let runs = ["sequential", "interleaved", "contiguous", "dynamic"];
    for (r, &(p, m)) in rows.iter().enumerate() {
        let here: Vec<&SweepPoint> = points
            .iter()
            .filter(|x| x.p == p && x.substeps == m)
            .collect();
        let series = |run: &str, f: fn(&SweepPoint) -> f64| -> Vec<(f64, f64)> {
            here.iter()
                .filter(|x| x.run == run)
                .map(|x| (x.agents as f64, f(x)))
                .collect()
        };
        let max_ms = here.iter().map(|x| x.mean_ms).fold(1.0, f64::max) * 1.1;
        let mut left = panel(
            &cells[2 * r],
            format!("p = {p}, M = {m}: mean frame time"),
            max_ms,
            "ms per frame",
        )
        .map_err(|e| err(&e))?;
        for run in runs {
            draw_run(&mut left, run, series(run, |x| x.mean_ms)).map_err(|e| err(&e))?;
        }
        legend(&mut left, SeriesLabelPosition::UpperLeft).map_err(|e| err(&e))?;
        let max_speedup = here
            .iter()
            .map(|x| x.speedup.max(x.amdahl_ceiling))
            .fold(1.0, f64::max)
            * 1.15;
        let mut right = panel(
            &cells[2 * r + 1],
            format!("p = {p}, M = {m}: speed-up over the sequential loop"),
            max_speedup,
            "speed-up",
        )
        .map_err(|e| err(&e))?;
        let ceiling = series("sequential", |x| x.amdahl_ceiling);
        let gray = RGBColor(150, 150, 150);
        right
            .draw_series(DashedLineSeries::new(ceiling, 6, 4, gray.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label("Amdahl ceiling")
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], gray.stroke_width(2)));
        for run in &runs[1..] {
            draw_run(&mut right, run, series(run, |x| x.speedup)).map_err(|e| err(&e))?;
        }
        legend(&mut right, SeriesLabelPosition::LowerRight).map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// One panel of the plot: agents (log scale) against `y_desc` from 0 to
/// `y_max`.
type Panel<'a, 'b> =
    ChartContext<'a, SVGBackend<'b>, Cartesian2d<WithKeyPoints<LogCoord<f64>>, RangedCoordf64>>;

/// Builds a panel on `area` and draws its axes.
fn panel<'a, 'b>(
    area: &'a DrawingArea<SVGBackend<'b>, Shift>,
    caption: String,
    y_max: f64,
    y_desc: &str,
) -> Result<Panel<'a, 'b>, DrawingAreaErrorKind<std::io::Error>> {
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(55)
        .build_cartesian_2d(agents_axis(), 0f64..y_max)?;
    chart
        .configure_mesh()
        .x_desc("agents (log scale)")
        .y_desc(y_desc)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .draw()?;
    Ok(chart)
}

/// Draws one run's points, joined by a line in the run's colour, with its
/// legend entry.
fn draw_run(
    chart: &mut Panel<'_, '_>,
    run: &str,
    data: Vec<(f64, f64)>,
) -> Result<(), DrawingAreaErrorKind<std::io::Error>> {
    let c = color(run);
    chart
        .draw_series(LineSeries::new(data.clone(), c.stroke_width(2)))?
        .label(run)
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], c.stroke_width(2)));
    chart.draw_series(data.iter().map(|&xy| Circle::new(xy, 3, c.filled())))?;
    Ok(())
}

/// Draws a panel's legend at `position`.
fn legend<'a, 'b: 'a>(
    chart: &mut Panel<'a, 'b>,
    position: SeriesLabelPosition,
) -> Result<(), DrawingAreaErrorKind<std::io::Error>> {
    chart
        .configure_series_labels()
        .position(position)
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()
}
