//! The optional watchdog thread: polls the guard every period so that the
//! time rules and stalled frames are seen even while the loop is frozen
//! inside a frame that never ends.
//!
//! It is handed the poll as a closure and knows nothing of the guard, so
//! the guard's state stays private to `guard.rs` and no import runs back.

use parking_lot::{Condvar, Mutex};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

struct Control {
    shutdown: Mutex<bool>,
    wake: Condvar,
    polls: AtomicU64,
}

/// The running watchdog thread; dropping it stops and joins the thread.
pub(crate) struct Watchdog {
    control: Arc<Control>,
    thread: Option<JoinHandle<()>>,
}

impl Watchdog {
    /// Starts a thread that calls `poll` every `period` until dropped.
    pub(crate) fn start(
        poll: impl Fn() + Send + 'static,
        period: Duration,
    ) -> std::io::Result<Self> {
        let control = Arc::new(Control {
            shutdown: Mutex::new(false),
            wake: Condvar::new(),
            polls: AtomicU64::new(0),
        });
        let thread_control = Arc::clone(&control);
        let thread = std::thread::Builder::new()
            .name("cllm-frame-watchdog".into())
            .spawn(move || {
                // Under ThreadSanitizer, out of view but for the callbacks.
                // Made first, so that the captured state is dropped inside it.
                let _library = thread_support::tsan::library_thread();
                let (control, poll) = (thread_control, poll);
                let mut shutdown = control.shutdown.lock();
                loop {
                    // The flag is checked under the lock before every wait, so a
                    // shutdown signalled before the wait is not missed. Woken
                    // early only by shutdown; a spurious wake just polls sooner.
                    if *shutdown {
                        return;
                    }
                    control.wake.wait_for(&mut shutdown, period);
                    if *shutdown {
                        return;
                    }
                    drop(shutdown);
                    poll();
                    control.polls.fetch_add(1, Ordering::Relaxed);
                    shutdown = control.shutdown.lock();
                }
            })?;
        Ok(Self {
            control,
            thread: Some(thread),
        })
    }

    pub(crate) fn polls(&self) -> u64 {
        self.control.polls.load(Ordering::Relaxed)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        *self.control.shutdown.lock() = true;
        self.control.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
