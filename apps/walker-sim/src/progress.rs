//! The progress bar and live summary line on standard error.

use crate::config::Length;
use crate::report::ms;
use frame_guard::{FrameGuard, Histogram};
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// The progress bar and live summary line on standard error.
pub(crate) struct Progress {
    enabled: bool,
    tty: bool,
    label: String,
    started: Instant,
    last: Instant,
    every: Duration,
}

impl Progress {
    pub(crate) fn new(enabled: bool, label: String) -> Self {
        let tty = std::io::stderr().is_terminal();
        Self {
            enabled,
            tty,
            label,
            started: Instant::now(),
            last: Instant::now(),
            every: if tty {
                Duration::from_millis(250)
            } else {
                Duration::from_secs(5)
            },
        }
    }

    pub(crate) fn update(
        &mut self,
        frame: u64,
        length: Length,
        guard: &FrameGuard,
        status: &Histogram,
        force: bool,
    ) {
        if !self.enabled || (!force && self.last.elapsed() < self.every) {
            return;
        }
        self.last = Instant::now();
        let elapsed = self.started.elapsed();
        let done = match length {
            Length::Frames(n) => frame as f64 / n.max(1) as f64,
            Length::Duration(d) => elapsed.as_secs_f64() / d.as_secs_f64().max(1e-9),
        }
        .clamp(0.0, 1.0);
        let width = 24;
        let filled = (done * width as f64).round() as usize;
        let bar: String = "#".repeat(filled) + &"-".repeat(width - filled);
        let s = guard.stats();
        let line = format!(
            "{} [{bar}] {:5.1}% frame {frame} | {:.1} fps | p50 {:.2} p99 {:.2} max {:.1} ms | <16.7ms {:.1}% | status p99 {:.3} ms | stops (plan/coded) {}/{}",
            self.label,
            done * 100.0,
            frame as f64 / elapsed.as_secs_f64().max(1e-9),
            ms(s.p50),
            ms(s.p99),
            ms(s.max),
            s.under_budget_share * 100.0,
            ms(status.quantile(0.99)),
            s.trips.consecutive,
            s.trips.sampled,
        );
        let mut err = std::io::stderr().lock();
        if self.tty {
            let _ = write!(err, "\r\x1b[2K{line}");
            if force {
                let _ = writeln!(err);
            }
        } else {
            let _ = writeln!(err, "{line}");
        }
        let _ = err.flush();
    }
}
