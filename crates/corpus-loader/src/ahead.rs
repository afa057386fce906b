//! [`OnceSlots`]: the hand-over of files opened ahead of their readers, such
//! that each file is opened exactly once, by the look-ahead or by its reader.

use crate::sync::Mutex;
use thread_support::tsan;

enum Slot<F> {
    /// Not opened ahead (yet).
    NotYet,
    /// Opened ahead, waiting for its reader.
    Open(F),
    /// Its reader came: it took the file, or opens it itself.
    Taken,
}

/// One slot per file. A look-ahead thread calls [`open_ahead`](Self::open_ahead)
/// for the files after the readers'; each reader calls [`take`](Self::take)
/// for its file. A slot goes `NotYet -> Open -> Taken` or `NotYet -> Taken`,
/// always under its lock, so the look-ahead never opens a file whose reader
/// already came, and a reader either gets the parked file or opens its own.
pub struct OnceSlots<F> {
    slots: Vec<Mutex<Slot<F>>>,
}

impl<F> OnceSlots<F> {
    /// `n` slots; those for which `skip` is true are never opened ahead.
    pub fn new(n: usize, skip: impl Fn(usize) -> bool) -> Self {
        Self {
            slots: (0..n)
                .map(|k| Mutex::new(if skip(k) { Slot::Taken } else { Slot::NotYet }))
                .collect(),
        }
    }

    /// Opens file `j` with `open` and parks it, unless its reader already
    /// came. `open` returning `None` (a failure) leaves the file to its
    /// reader, who reports the error.
    pub fn open_ahead(&self, j: usize, open: impl FnOnce() -> Option<F>) {
        let mut slot = self.slots[j].lock();
        if matches!(*slot, Slot::NotYet) {
            if let Some(file) = open() {
                *slot = Slot::Open(file);
                // TSan: its reader's use of the file follows the opening
                // (a descriptor opened on one thread and read on another).
                tsan::release(&self.slots[j]);
            }
        }
    }

    /// For the reader of file `k`: the file if it was opened ahead, else
    /// `None` (the reader opens it; the look-ahead will not any more).
    pub fn take(&self, k: usize) -> Option<F> {
        let mut slot = self.slots[k].lock();
        tsan::acquire(&self.slots[k]);
        match std::mem::replace(&mut *slot, Slot::Taken) {
            Slot::Open(file) => Some(file),
            _ => None,
        }
    }
}
