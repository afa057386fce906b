//! The command line of `walker-sim`: [`Options`] (one struct, filled from
//! the arguments in one place, [`Options::parse`]), with a clear message for
//! every bad argument.

use crate::config::{PARTITIONINGS, SlowFrames, parse_partitioning};
use crate::food::FoodMode;
use crate::world::{PhysicsMode, WorldConfig};
use pool_manager::Partitioning;
use std::time::Duration;

/// The usage text.
pub const USAGE: &str = "\
usage: walker-sim [options]

Runs the walker loop: the sequential loop first (the baseline), then the
parallel loop with the chosen partitioning(s), in the same process; prints a
report with every figure beside the sequential one.

world:
  --agents N          agents (default 60)
  --p X               share of agents taking a full step per frame, 0 < X <= 1 (default 1.0)
  --substeps M        physics substeps per frame (default 5)
  --seed S            seed of every generator (default 42)
  --food MODE         shared food updates: lock | atomic | deltas (default lock)
  --physics MODE      serial | islands (per-agent islands on the pool; same result) (default serial)
  --train-budget B    trainings allowed per frame: a number, auto (max(2, agents/16)) or unlimited (default auto)
run:
  --threads T         threads of the parallel loops, the loop thread included (default: the cores)
  --partition P       interleaved | contiguous | dynamic | all (default dynamic)
  --frames K          frames per run (default 3000)
  --duration D        run for a time instead (soak mode), e.g. 1h, 10m, 30s, 500ms;
                      skips the sequential baseline unless --baseline is given
  --baseline          run the sequential baseline in soak mode too
  --no-baseline       skip the sequential baseline
  --status-hz HZ      status requests per second from the reader thread (default 30; 0 = none)
  --csv PATH          the monitoring CSV to PATH (- = standard output)
  --quiet             no progress line
  --rounds R          run every mode R times, alternating, and report each mode's fastest run
                      (other programs on the machine only slow runs down) (default 1)
  --inject-slow F:N:MS  sleep MS ms inside N frames from frame F (tests the stop rules)
checks:
  --hash              print the final state hash (hash=<16 hex digits>)
  --expect-hash HEX   exit 3 unless every run ends with this state hash
  --require-no-stops  exit 4 if any emergency stop happened
  --check             make walker-check: sequential, dynamic, interleaved; print one line
  --sweep             the scenario sweep of walker.md (CSV and SVG plot)
  --sweep-frames K    frames per sweep run at 120 and 240 agents; 2x at 60, 4x at 30 (default 150)
  --sweep-csv PATH    (default build/walker/sweep.csv)
  --sweep-svg PATH    (default docs/walker-sweep.svg)
  --plot CSV          draw the plot (--sweep-svg) from a sweep CSV without running
  -h, --help          this text

The role pools also read pool-manager's environment (ENABLE_PARALLEL_AI,
ENABLE_BACKGROUND_PROCESSING, CLLM_BACKGROUND_THREADS, ...) and the frame
guard frame-guard's (FRAME_SLOW_LIMIT_MS, FRAME_STOP_RULES, ...).
";

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Baseline and parallel runs, and the report.
    Run,
    /// `make walker-check`.
    Check,
    /// The scenario sweep.
    Sweep,
    /// Plot a sweep CSV again.
    Plot(String),
    /// Print the usage.
    Help,
}

/// Every option of the command line.
#[derive(Debug, Clone)]
pub struct Options {
    /// What to do.
    pub command: Command,
    /// The world (agents, p, substeps, seed, food, physics, budget).
    pub world: WorldConfig,
    /// Loop threads.
    pub threads: usize,
    /// The partitionings to run.
    pub partitionings: Vec<Partitioning>,
    /// Frames per run.
    pub frames: u64,
    /// Soak duration, if any.
    pub duration: Option<Duration>,
    /// Run the sequential baseline.
    pub baseline: bool,
    /// Status requests per second.
    pub status_hz: f64,
    /// The monitoring CSV path (`-`: stdout).
    pub csv: Option<String>,
    /// Progress on stderr.
    pub progress: bool,
    /// Injected slow frames.
    pub slow_frames: Option<SlowFrames>,
    /// Print the hash.
    pub print_hash: bool,
    /// The expected final hash.
    pub expect_hash: Option<u64>,
    /// Fail on an emergency stop.
    pub require_no_stops: bool,
    /// Runs of each mode (alternating); the fastest of each is reported.
    pub rounds: usize,
    /// Frames per sweep point.
    pub sweep_frames: u64,
    /// Sweep CSV path.
    pub sweep_csv: String,
    /// Sweep plot path.
    pub sweep_svg: String,
}

impl Options {
    /// The defaults for a machine with `cores` cores.
    pub fn defaults(cores: usize) -> Self {
        Self {
            command: Command::Run,
            world: WorldConfig::default(),
            threads: cores.max(1),
            partitionings: vec![crate::config::DYNAMIC],
            frames: 3000,
            duration: None,
            baseline: true,
            status_hz: 30.0,
            csv: None,
            progress: true,
            slow_frames: None,
            print_hash: false,
            expect_hash: None,
            require_no_stops: false,
            rounds: 1,
            sweep_frames: 150,
            sweep_csv: "build/walker/sweep.csv".into(),
            sweep_svg: "docs/walker-sweep.svg".into(),
        }
    }

    /// Parses the arguments (without the program name).
    pub fn parse<I, S>(args: I, cores: usize) -> Result<Self, String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut o = Self::defaults(cores);
        let mut explicit_baseline = None;
        let args: Vec<String> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        let mut i = 0;
        while i < args.len() {
            let arg = args[i].as_str();
            // `--name=value` or `--name value`.
            let (name, inline) = match arg.split_once('=') {
                Some((n, v)) if n.starts_with("--") => (n, Some(v.to_owned())),
                _ => (arg, None),
            };
            let mut value = |what: &str| -> Result<String, String> {
                if let Some(v) = inline.clone() {
                    return Ok(v);
                }
                i += 1;
                args.get(i)
                    .cloned()
                    .ok_or_else(|| format!("{name} needs a value ({what})"))
            };
            match name {
                "-h" | "--help" => o.command = Command::Help,
                "--check" => o.command = Command::Check,
                "--sweep" => o.command = Command::Sweep,
                "--plot" => o.command = Command::Plot(value("a sweep CSV")?),
                "--agents" => {
                    o.world.agents =
                        count(name, &value("a number of agents, at least 2")?, 2, 100_000)?
                }
                "--threads" => o.threads = count(name, &value("a number of threads")?, 1, 4096)?,
                "--frames" => {
                    o.frames =
                        count(name, &value("a number of frames")?, 1, u64::MAX as usize)? as u64
                }
                "--duration" => {
                    o.duration = Some(parse_duration(&value("a duration like 1h, 10m, 30s")?)?)
                }
                "--partition" => {
                    let v = value("interleaved, contiguous, dynamic or all")?;
                    o.partitionings = if v == "all" {
                        PARTITIONINGS.to_vec()
                    } else {
                        vec![parse_partitioning(&v).map_err(|e| format!("--partition: {e}"))?]
                    };
                }
                "--p" => {
                    let v = value("a share in (0, 1]")?;
                    let p: f64 = v
                        .parse()
                        .map_err(|_| format!("--p {v:?}: expected a number in (0, 1]"))?;
                    if !(p > 0.0 && p <= 1.0) {
                        return Err(format!("--p {v}: must be in (0, 1]"));
                    }
                    o.world.window_share = p;
                }
                "--substeps" => {
                    o.world.substeps = count(name, &value("a number of substeps")?, 1, 1000)?
                }
                "--seed" => {
                    let v = value("a whole number")?;
                    o.world.seed = v
                        .parse()
                        .map_err(|_| format!("--seed {v:?}: expected a whole number"))?;
                }
                "--food" => {
                    o.world.food_mode = value("lock, atomic or deltas")?
                        .parse::<FoodMode>()
                        .map_err(|e| format!("--food: {e}"))?
                }
                "--physics" => {
                    o.world.physics = value("serial or islands")?
                        .parse::<PhysicsMode>()
                        .map_err(|e| format!("--physics: {e}"))?
                }
                "--train-budget" => {
                    let v = value("a number, auto or unlimited")?;
                    o.world.train_budget = match v.as_str() {
                        "auto" => None,
                        "unlimited" => Some(0),
                        _ => Some(count(name, &v, 1, 1_000_000)?),
                    };
                }
                "--status-hz" => {
                    let v = value("requests per second")?;
                    let hz: f64 = v
                        .parse()
                        .map_err(|_| format!("--status-hz {v:?}: expected a number"))?;
                    if !(0.0..=10_000.0).contains(&hz) {
                        return Err(format!("--status-hz {v}: must be in 0..=10000"));
                    }
                    o.status_hz = hz;
                }
                "--csv" => o.csv = Some(value("a path, or - for standard output")?),
                "--quiet" => o.progress = false,
                "--rounds" => o.rounds = count(name, &value("a number of rounds")?, 1, 100)?,
                "--baseline" => explicit_baseline = Some(true),
                "--no-baseline" => explicit_baseline = Some(false),
                "--inject-slow" => o.slow_frames = Some(parse_slow(&value("FROM:COUNT:MS")?)?),
                "--hash" => o.print_hash = true,
                "--expect-hash" => {
                    let v = value("16 hex digits")?;
                    let hex = v.trim_start_matches("0x");
                    o.expect_hash = Some(u64::from_str_radix(hex, 16).map_err(|_| {
                        format!("--expect-hash {v:?}: expected a hexadecimal number")
                    })?);
                }
                "--require-no-stops" => o.require_no_stops = true,
                "--sweep-frames" => {
                    o.sweep_frames =
                        count(name, &value("a number of frames")?, 1, 1_000_000)? as u64
                }
                "--sweep-csv" => o.sweep_csv = value("a path")?,
                "--sweep-svg" => o.sweep_svg = value("a path")?,
                other => {
                    return Err(format!("unknown argument {other:?} (try --help)"));
                }
            }
            i += 1;
        }
        o.baseline = explicit_baseline.unwrap_or(o.duration.is_none());
        o.world.validate()?;
        Ok(o)
    }
}

/// A whole number in `min..=max` for option `name`.
fn count(name: &str, text: &str, min: usize, max: usize) -> Result<usize, String> {
    let n: usize = text
        .trim()
        .parse()
        .map_err(|_| format!("{name} {text:?}: expected a whole number"))?;
    if n < min || n > max {
        return Err(format!("{name} {n}: must be in {min}..={max}"));
    }
    Ok(n)
}

/// `1h`, `1h30m`, `10m`, `30s`, `500ms`, or a number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("--duration {text:?}: expected a duration like 1h, 10m, 30s or 500ms");
    let t = text.trim();
    if t.is_empty() {
        return Err(bad());
    }
    if let Ok(secs) = t.parse::<f64>() {
        return if secs > 0.0 && secs.is_finite() {
            Ok(Duration::from_secs_f64(secs))
        } else {
            Err(bad())
        };
    }
    let mut total = 0.0f64;
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        if digits == 0 {
            return Err(bad());
        }
        let number: f64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" | "min" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            _ => return Err(bad()),
        };
        total += number * scale;
        rest = &rest[unit_len..];
    }
    if total > 0.0 {
        Ok(Duration::from_secs_f64(total))
    } else {
        Err(bad())
    }
}

fn parse_slow(text: &str) -> Result<SlowFrames, String> {
    let bad = || format!("--inject-slow {text:?}: expected FROM:COUNT:MS, e.g. 100:12:30");
    let parts: Vec<&str> = text.split(':').collect();
    let [from, count, ms] = parts[..] else {
        return Err(bad());
    };
    Ok(SlowFrames {
        from_frame: from.parse().map_err(|_| bad())?,
        count: count.parse().map_err(|_| bad())?,
        extra: Duration::from_millis(ms.parse().map_err(|_| bad())?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_every_documented_form() {
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("45s").unwrap(), Duration::from_secs(45));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2.5").unwrap(), Duration::from_millis(2500));
        for bad in ["", "h", "10x", "-5", "0s", "1h30"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
