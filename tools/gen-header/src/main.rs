//! `gen-header write` regenerates every C header in `include/` with the pinned
//! cbindgen; `gen-header check` fails (exit 1) when a checked-in header differs
//! from what the sources generate. `make header` and `make test` run them.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Crate directory (relative to the workspace root), its cbindgen
/// configuration and the header it makes. The drop-in crate makes two: the
/// header that replaces CLLM's (seven functions) and our extensions.
const HEADERS: &[(&str, &str, &str)] = &[
    (
        "crates/cllm-threaded",
        "cbindgen.toml",
        "include/cllm_threaded.h",
    ),
    (
        "crates/cllm-training-threaded",
        "cbindgen.toml",
        "include/cllm_training_threaded.h",
    ),
    (
        "crates/cllm-training-threaded",
        "cbindgen-ext.toml",
        "include/cllm_training_ext.h",
    ),
];

fn generate(root: &Path, crate_dir: &str, config_file: &str) -> Result<Vec<u8>, String> {
    let dir = root.join(crate_dir);
    let config = cbindgen::Config::from_file(dir.join(config_file))
        .map_err(|e| format!("{crate_dir}/{config_file}: {e}"))?;
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
    for (crate_dir, config_file, header) in HEADERS {
        let generated = generate(&root, crate_dir, config_file)?;
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
