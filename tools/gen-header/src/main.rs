//! `gen-header write` regenerates every C header in `include/` with the pinned
//! cbindgen; `gen-header check` fails (exit 1) when a checked-in header differs
//! from what the sources generate. `make header` and `make test` run them.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Crate directory (relative to the workspace root) and the header it makes.
const HEADERS: &[(&str, &str)] = &[
    ("crates/cllm-threaded", "include/cllm_threaded.h"),
    (
        "crates/cllm-training-threaded",
        "include/cllm_training_threaded.h",
    ),
];

fn generate(root: &Path, crate_dir: &str) -> Result<Vec<u8>, String> {
    let dir = root.join(crate_dir);
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml"))
        .map_err(|e| format!("{crate_dir}/cbindgen.toml: {e}"))?;
    let bindings = cbindgen::Builder::new()
        .with_crate(&dir)
        .with_config(config)
        .generate()
        .map_err(|e| format!("cbindgen failed on {crate_dir}: {e}"))?;
    let mut out = Vec::new();
    bindings.write(&mut out);
    Ok(out)
}

fn run(check: bool) -> Result<bool, String> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut fresh = true;
    for (crate_dir, header) in HEADERS {
        let generated = generate(&root, crate_dir)?;
        let path = root.join(header);
        let current = std::fs::read(&path).unwrap_or_default();
        if current == generated {
            continue;
        }
        if check {
            eprintln!(
                "stale header: {header} differs from what {crate_dir} generates; run `make header`"
            );
            fresh = false;
        } else {
            std::fs::write(&path, &generated).map_err(|e| format!("{header}: {e}"))?;
            eprintln!("wrote {header}");
        }
    }
    Ok(fresh)
}

fn main() -> ExitCode {
    let mode = std::env::args().nth(1).unwrap_or_default();
    let check = match mode.as_str() {
        "write" => false,
        "check" => true,
        _ => {
            eprintln!("usage: gen-header write|check");
            return ExitCode::from(2);
        }
    };
    match run(check) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("gen-header: {e}");
            ExitCode::from(2)
        }
    }
}
