//! [`OnceSlots`]: the hand-over of files opened ahead of their readers, such
//! that each file is opened exactly once, by the look-ahead or by its reader.

use crate::sync::{AtomicUsize, Mutex, Ordering};

enum Slot<F> {
    /// Not opened ahead (yet).
    NotYet,
    /// Opened ahead, waiting for its reader.
    Open(F),
    /// Its reader came: it took the file, or opens it itself.
    Taken,
}

/// One slot per file. Readers call [`take`](Self::take) for their file; on
/// the way, each call opens files ahead (within a window) and parks them in
/// their slots. A slot goes `NotYet -> Open -> Taken` or `NotYet -> Taken`,
/// always under its lock, so the look-ahead never opens a file whose reader
/// already came, and a reader either gets the parked file or opens its own.
pub struct OnceSlots<F> {
    slots: Vec<Mutex<Slot<F>>>,
    next: AtomicUsize,
}

impl<F> OnceSlots<F> {
    /// `n` slots; those for which `skip` is true are never opened ahead.
    pub fn new(n: usize, skip: impl Fn(usize) -> bool) -> Self {
        Self {
            slots: (0..n)
                .map(|k| Mutex::new(if skip(k) { Slot::Taken } else { Slot::NotYet }))
                .collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// For the reader of file `k`: opens (with `open`) the files not opened
    /// yet from the look-ahead cursor on while `in_window(j)` holds, then
    /// returns file `k` if it was opened ahead (`None`: the reader opens it).
    /// `open` returning `None` (a failure) leaves the file to its reader.
    pub fn take(
        &self,
        k: usize,
        in_window: impl Fn(usize) -> bool,
        open: impl Fn(usize) -> Option<F>,
    ) -> Option<F> {
        loop {
            let j = self.next.load(Ordering::Relaxed);
            if j >= self.slots.len() || !in_window(j) {
                break;
            }
            if self
                .next
                .compare_exchange(j, j + 1, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
            if j == k {
                continue; // its reader is here
            }
            let mut slot = self.slots[j].lock();
            if matches!(*slot, Slot::NotYet) {
                if let Some(file) = open(j) {
                    *slot = Slot::Open(file);
                }
            }
        }
        match std::mem::replace(&mut *self.slots[k].lock(), Slot::Taken) {
            Slot::Open(file) => Some(file),
            _ => None,
        }
    }
}
