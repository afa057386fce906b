//! The monitoring CSV: frame-guard's monitoring rows of every run in one
//! file, each row prefixed by the run it belongs to.

use frame_guard::{CSV_HEADER, MonitorRow};
use parking_lot::Mutex;
use std::io::Write;
use std::sync::Arc;

/// Where the monitoring CSV goes: one header, then every run's rows, each
/// row frame-guard's columns ([`CSV_HEADER`]) after two columns naming the
/// run (`run`: sequential or the partitioning; `threads`).
#[derive(Clone)]
pub struct MonitorCsv(Arc<Mutex<CsvState>>);

struct CsvState {
    out: Box<dyn Write + Send>,
    header_written: bool,
}

impl std::fmt::Debug for MonitorCsv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MonitorCsv")
    }
}

/// The monitoring CSV's header line.
pub fn csv_header() -> String {
    format!("run,threads,{CSV_HEADER}")
}

impl MonitorCsv {
    /// A CSV writing to `out`.
    pub fn new(out: Box<dyn Write + Send>) -> Self {
        Self(Arc::new(Mutex::new(CsvState {
            out,
            header_written: false,
        })))
    }

    /// `-` for standard output, else a file (created or truncated).
    pub fn open(path: &str) -> Result<Self, String> {
        if path == "-" {
            return Ok(Self::new(Box::new(std::io::stdout())));
        }
        let file = std::fs::File::create(path).map_err(|e| format!("cannot create {path}: {e}"))?;
        Ok(Self::new(Box::new(std::io::LineWriter::new(file))))
    }

    /// Writes one row (the header first if not yet written) and flushes.
    pub fn write(&self, run: &str, threads: usize, row: &MonitorRow) -> std::io::Result<()> {
        let mut st = self.0.lock();
        if !st.header_written {
            writeln!(st.out, "{}", csv_header())?;
            st.header_written = true;
        }
        writeln!(st.out, "{run},{threads},{}", row.to_csv())?;
        st.out.flush()
    }
}
