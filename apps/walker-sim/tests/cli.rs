//! The command line: clear errors for bad arguments, and a small run that
//! writes the report, the hash and the monitoring CSV.

use std::process::{Command, Output};

fn walker(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_walker-sim"))
        .args(args)
        .output()
        .expect("the binary runs")
}

/// The plan's monitoring columns: in the report and in the CSV's header.
const PLAN_COLUMNS: [&str; 6] = [
    "thread_pool_utilization",
    "ai_thread_efficiency",
    "stats_thread_efficiency",
    "background_thread_efficiency",
    "lock_contention_rate",
    "parallel_speedup_ratio",
];

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn bad_arguments_exit_2_with_a_message_naming_the_argument() {
    let cases: [(&[&str], &str); 10] = [
        (&["--agents", "1"], "--agents 1: must be in 2..=100000"),
        (
            &["--agents", "many"],
            "--agents \"many\": expected a whole number",
        ),
        (&["--threads", "0"], "--threads 0: must be in 1..=4096"),
        (&["--p", "0"], "--p 0: must be in (0, 1]"),
        (&["--p", "1.5"], "--p 1.5: must be in (0, 1]"),
        (
            &["--partition", "random"],
            "unknown partitioning \"random\"",
        ),
        (&["--food", "spoon"], "unknown food mode \"spoon\""),
        (&["--duration", "10x"], "--duration \"10x\""),
        (&["--frames"], "--frames needs a value"),
        (&["--bogus"], "unknown argument \"--bogus\""),
    ];
    for (args, message) in cases {
        let o = walker(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(message), "{args:?}: {}", stderr(&o));
        assert!(o.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn help_prints_the_usage() {
    let o = walker(&["--help"]);
    assert!(o.status.success());
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("--partition P") && text.contains("--duration D"));
}

#[test]
fn a_small_run_reports_every_figure_beside_the_sequential_one_and_writes_the_csv() {
    let dir = std::env::temp_dir().join(format!("walker-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let csv = dir.join("monitor.csv");
    let o = walker(&[
        "--agents",
        "6",
        "--frames",
        "40",
        "--threads",
        "2",
        "--substeps",
        "1",
        "--partition",
        "all",
        "--quiet",
        "--hash",
        "--require-no-stops",
        "--csv",
        csv.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    for figure in [
        "frames/s",
        "world steps/s",
        "frame p99 (ms)",
        "frames under 16.7 ms (%)",
        "status p99 (ms)",
        "stops: consecutive (plan)",
        "stops: sampled (coded)",
        "speed-up over sequential",
        "Amdahl ceiling",
        "the same in every run",
    ]
    .into_iter()
    .chain(PLAN_COLUMNS)
    {
        assert!(out.contains(figure), "missing {figure:?} in\n{out}");
    }
    for run in [
        "sequential x1",
        "interleaved x2",
        "contiguous x2",
        "dynamic x2",
    ] {
        assert!(out.contains(run), "missing {run}");
    }
    assert!(
        out.lines().any(|l| l.starts_with("hash=") && l.len() == 21),
        "{out}"
    );
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    assert!(header.starts_with("run,threads,timestamp,"));
    for column in PLAN_COLUMNS {
        assert!(header.split(',').any(|c| c == column), "{column}");
    }
    // At least one row per run (the last row of each run closes it).
    let rows: Vec<&str> = lines.collect();
    for run in [
        "sequential,1,",
        "interleaved,2,",
        "contiguous,2,",
        "dynamic,2,",
    ] {
        assert!(rows.iter().any(|r| r.starts_with(run)), "no row for {run}");
    }
    let columns = header.split(',').count();
    assert!(rows.iter().all(|r| r.split(',').count() == columns));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_wrong_expected_hash_fails_with_exit_3() {
    let o = walker(&[
        "--agents",
        "4",
        "--frames",
        "5",
        "--substeps",
        "1",
        "--quiet",
        "--no-baseline",
        "--expect-hash",
        "0123456789abcdef",
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("expected state hash 0123456789abcdef"));
}
