//! The status reader's side: a double-buffered snapshot of every agent that
//! another thread reads without ever waiting for the physics lock.
//!
//! The loop fills the back buffer after each frame ([`StatusBoard::publish`])
//! and swaps it in; a reader ([`StatusBoard::snapshot`]) takes a reference
//! to the front buffer under a mutex held only for a pointer copy (never
//! across the physics phase or the serialisation), then serialises at
//! leisure. The buffer a reader still holds is not overwritten: the writer
//! reuses the back buffer only when no reader has it, and otherwise fills a
//! new one (counted in [`StatusBoard::fresh_buffers`]).
//!
//! In the original system a status request over HTTP waited for the physics
//! lock and serialised every agent: 36 to 119 ms.

use frame_guard::Histogram;
use parking_lot::Mutex;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The 21 fields the status request returns for one agent.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct AgentStatus {
    /// Index in the world.
    pub index: u32,
    /// Body type.
    pub kind: u8,
    /// Action count.
    pub actions: u16,
    /// True if it hunts prey instead of scanning food.
    pub scan_prey: bool,
    /// Torso position.
    pub x: f32,
    /// Torso height.
    pub height: f32,
    /// Forward speed.
    pub speed: f32,
    /// Current action.
    pub action: u32,
    /// Reward since the start (or the last respawn).
    pub total_reward: f32,
    /// Mean reward over the last 100 frames (last statistics pass).
    pub mean_100: f32,
    /// Over 500 frames.
    pub mean_500: f32,
    /// Over 2000 frames.
    pub mean_2000: f32,
    /// Leaderboard rank (0 = best).
    pub rank: u32,
    /// Decisions made.
    pub decisions: u64,
    /// Training steps done.
    pub trainings: u64,
    /// A training request waits for the budget.
    pub train_pending: bool,
    /// Food units eaten.
    pub eaten: u64,
    /// Loss of the last training.
    pub last_loss: f32,
    /// Best Q value of the last forward pass.
    pub last_q: f32,
    /// Gradient norm of the last training (before clipping).
    pub grad_norm: f32,
    /// Times the ecosystem respawned it.
    pub respawns: u32,
}

/// One published snapshot: the frame it was taken after, and every agent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StatusFrame {
    /// Frames completed when it was taken.
    pub frame: u64,
    /// Every agent's status.
    pub agents: Vec<AgentStatus>,
}

impl StatusFrame {
    /// Serialises the snapshot as JSON (what the original's HTTP status
    /// endpoint returned).
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(64 + self.agents.len() * 360);
        let _ = write!(out, "{{\"frame\":{},\"agents\":[", self.frame);
        for (i, a) in self.agents.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(
                out,
                "{{\"index\":{},\"kind\":{},\"actions\":{},\"prey\":{},\"x\":{:.3},\"height\":{:.3},\
                 \"speed\":{:.3},\"action\":{},\"reward\":{:.4},\"mean100\":{:.5},\"mean500\":{:.5},\
                 \"mean2000\":{:.5},\"rank\":{},\"decisions\":{},\"trainings\":{},\"pending\":{},\
                 \"eaten\":{},\"loss\":{:.5},\"q\":{:.4},\"grad_norm\":{:.4},\"respawns\":{}}}",
                a.index,
                a.kind,
                a.actions,
                a.scan_prey,
                a.x,
                a.height,
                a.speed,
                a.action,
                a.total_reward,
                a.mean_100,
                a.mean_500,
                a.mean_2000,
                a.rank,
                a.decisions,
                a.trainings,
                a.train_pending,
                a.eaten,
                a.last_loss,
                a.last_q,
                a.grad_norm,
                a.respawns
            );
        }
        out.push_str("]}");
        out
    }
}

/// The double buffer between the loop and the readers.
#[derive(Debug, Default)]
pub struct StatusBoard {
    front: Mutex<Arc<StatusFrame>>,
    back: Mutex<Option<Arc<StatusFrame>>>,
    published: AtomicU64,
    fresh: AtomicU64,
}

impl StatusBoard {
    /// An empty board (frame 0, no agents).
    pub fn new() -> Self {
        Self::default()
    }

    /// The loop's side: fills the back buffer with `fill` and makes it the
    /// front. Never blocks on a reader longer than a pointer copy.
    pub fn publish(&self, fill: impl FnOnce(&mut StatusFrame)) {
        let mut buffer = self.back.lock().take().unwrap_or_default();
        if Arc::get_mut(&mut buffer).is_none() {
            // A reader still holds it: fill a new one, leave that one alone.
            buffer = Arc::new(StatusFrame::default());
            self.fresh.fetch_add(1, Ordering::Relaxed);
        }
        fill(Arc::get_mut(&mut buffer).expect("a buffer nobody else holds"));
        let old = std::mem::replace(&mut *self.front.lock(), buffer);
        *self.back.lock() = Some(old);
        self.published.fetch_add(1, Ordering::Relaxed);
    }

    /// The reader's side: the latest published snapshot.
    pub fn snapshot(&self) -> Arc<StatusFrame> {
        self.front.lock().clone()
    }

    /// Snapshots published so far.
    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }

    /// Times the writer found the back buffer still held by a reader.
    pub fn fresh_buffers(&self) -> u64 {
        self.fresh.load(Ordering::Relaxed)
    }
}

/// What the status reader thread measured.
#[derive(Debug, Clone, Default)]
pub struct ReaderFigures {
    /// Request latency: from the request to the serialised answer.
    pub latency: Histogram,
    /// Bytes of the last answer.
    pub last_bytes: usize,
    /// The frame of the last answer.
    pub last_frame: u64,
}

/// A thread that requests a snapshot `hz` times a second (the original's
/// status endpoint) and measures each request's latency: from the request
/// to the serialised answer.
pub struct StatusReader {
    stop: Arc<AtomicBool>,
    latency: Arc<Mutex<Histogram>>,
    handle: Option<std::thread::JoinHandle<(usize, u64)>>,
}

impl StatusReader {
    /// Starts the reader on `board`.
    pub fn start(board: Arc<StatusBoard>, hz: f64) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let latency = Arc::new(Mutex::new(Histogram::new()));
        let period = Duration::from_secs_f64(1.0 / hz.max(0.001));
        let (flag, record) = (stop.clone(), latency.clone());
        let handle = std::thread::Builder::new()
            .name("walker-status".into())
            .spawn(move || {
                let (mut bytes, mut frame) = (0, 0);
                let mut next = Instant::now() + period;
                while !flag.load(Ordering::Relaxed) {
                    let now = Instant::now();
                    if now < next {
                        std::thread::sleep((next - now).min(Duration::from_millis(20)));
                        continue;
                    }
                    next += period;
                    if next < now {
                        next = now + period;
                    }
                    let started = Instant::now();
                    let snapshot = board.snapshot();
                    let json = snapshot.to_json();
                    let took = started.elapsed();
                    record.lock().record(took);
                    bytes = json.len();
                    frame = snapshot.frame;
                }
                (bytes, frame)
            })?;
        Ok(Self {
            stop,
            latency,
            handle: Some(handle),
        })
    }

    /// The latencies measured so far.
    pub fn latency(&self) -> Histogram {
        self.latency.lock().clone()
    }

    /// Stops the thread and returns its figures.
    pub fn finish(mut self) -> ReaderFigures {
        self.stop.store(true, Ordering::Relaxed);
        let (last_bytes, last_frame) = self
            .handle
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        ReaderFigures {
            latency: self.latency.lock().clone(),
            last_bytes,
            last_frame,
        }
    }
}

impl Drop for StatusReader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_keeps_its_snapshot_while_the_writer_publishes_new_ones() {
        let board = StatusBoard::new();
        board.publish(|f| {
            f.frame = 1;
            f.agents = vec![AgentStatus::default(); 3];
        });
        let held = board.snapshot();
        for frame in 2..6 {
            board.publish(|f| {
                f.frame = frame;
                f.agents.resize(3, AgentStatus::default());
            });
        }
        assert_eq!(held.frame, 1);
        assert_eq!(board.snapshot().frame, 5);
        assert!(board.fresh_buffers() >= 1);
        assert_eq!(board.published(), 5);
    }

    #[test]
    fn the_json_has_every_agent_and_twenty_one_fields_each() {
        let f = StatusFrame {
            frame: 9,
            agents: vec![AgentStatus::default(); 2],
        };
        let json = f.to_json();
        assert!(json.starts_with("{\"frame\":9"));
        assert_eq!(json.matches("\"index\"").count(), 2);
        assert_eq!(json.matches(':').count(), 2 + 2 * 21);
    }
}
