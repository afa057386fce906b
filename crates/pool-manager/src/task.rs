//! Tasks: the [`TaskHandle`] a submitter keeps and the [`Job`] a queue holds.
//!
//! A job and its handle share a `TaskCell`: the job completes it exactly once
//! (with the value, the task's error, its panic, or `Cancelled` when the job
//! is dropped without running), and one wait takes the result out.

use crate::config::Role;
use crate::error::{TaskError, take_panic_message};
use crate::metrics::TaskCounters;
use crate::sync::{Condvar, Mutex};
use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};
use thread_support::tsan;

enum CellState<T> {
    Pending,
    Done(Result<T, TaskError>),
    Collected,
}

/// Where a task's result waits for its handle.
pub struct TaskCell<T> {
    state: Mutex<CellState<T>>,
    done: Condvar,
}

impl<T> TaskCell<T> {
    pub fn new() -> Self {
        Self {
            state: Mutex::new(CellState::Pending),
            done: Condvar::new(),
        }
    }

    /// Stores the outcome if none is stored yet, and wakes waiters.
    pub fn complete(&self, result: Result<T, TaskError>) {
        let mut state = self.state.lock();
        if matches!(*state, CellState::Pending) {
            *state = CellState::Done(result);
            self.done.notify_all();
        }
    }

    fn take(state: &mut CellState<T>) -> Option<Result<T, TaskError>> {
        match std::mem::replace(state, CellState::Collected) {
            CellState::Done(r) => Some(r),
            CellState::Collected => Some(Err(TaskError::Collected)),
            CellState::Pending => {
                *state = CellState::Pending;
                None
            }
        }
    }

    /// Waits for the outcome (until `deadline` if there is one) and takes it.
    pub fn wait(&self, deadline: Option<Instant>) -> Result<T, TaskError> {
        let result = self.wait_for_result(deadline);
        tsan::acquire(self);
        result
    }

    fn wait_for_result(&self, deadline: Option<Instant>) -> Result<T, TaskError> {
        let mut state = self.state.lock();
        loop {
            if let Some(result) = Self::take(&mut state) {
                return result;
            }
            match deadline {
                None => self.done.wait(&mut state),
                Some(d) => {
                    if self.done.wait_until(&mut state, d) {
                        return Self::take(&mut state).unwrap_or(Err(TaskError::Timeout));
                    }
                }
            }
        }
    }

    pub fn is_finished(&self) -> bool {
        !matches!(*self.state.lock(), CellState::Pending)
    }
}

impl<T> Drop for TaskCell<T> {
    fn drop(&mut self) {
        // TSan: whoever drops the last reference follows the task's end
        // (its outcome, and what it allocated, are freed here), even if the
        // handle was dropped without a wait.
        tsan::acquire(self);
    }
}

/// The handle of a submitted task: wait for its value or its error.
///
/// Dropping the handle detaches the task: it still runs.
pub struct TaskHandle<T> {
    cell: Arc<TaskCell<T>>,
}

impl<T> std::fmt::Debug for TaskHandle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskHandle")
            .field("finished", &self.is_finished())
            .finish()
    }
}

impl<T> TaskHandle<T> {
    pub(crate) fn new(cell: Arc<TaskCell<T>>) -> Self {
        Self { cell }
    }

    /// Waits for the task and returns its value or its error.
    pub fn wait(self) -> Result<T, TaskError> {
        self.cell.wait(None)
    }

    /// Waits at most `timeout`. [`TaskError::Timeout`] means the task is
    /// still pending (wait again); any other outcome is final and is returned
    /// once: later waits return [`TaskError::Collected`].
    pub fn wait_timeout(&self, timeout: Duration) -> Result<T, TaskError> {
        // A timeout too large for the clock is a wait without deadline.
        self.cell.wait(Instant::now().checked_add(timeout))
    }

    /// True once the task has an outcome (or it was collected).
    pub fn is_finished(&self) -> bool {
        self.cell.is_finished()
    }
}

/// How a job ended, for the pool's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Ok,
    Failed,
    Panicked,
}

/// Where a job runs: its worker's name (for error messages) and the pool's
/// counters, which the job updates *before* it completes its handle, so that
/// a waiter that sees the result also sees it counted.
pub(crate) struct RunContext<'a> {
    pub(crate) worker: &'a str,
    pub(crate) counters: &'a TaskCounters,
    pub(crate) start: Instant,
    /// Set by [`finish`](Self::finish).
    pub(crate) end: Cell<Option<Instant>>,
}

impl RunContext<'_> {
    /// Records the run time and outcome; returns the end time.
    pub(crate) fn finish(&self, outcome: Outcome) -> Instant {
        let end = Instant::now();
        self.counters
            .run
            .record(end.saturating_duration_since(self.start));
        let counter = match outcome {
            Outcome::Ok => &self.counters.succeeded,
            Outcome::Failed | Outcome::Panicked => &self.counters.failed,
        };
        TaskCounters::add(counter, 1);
        self.end.set(Some(end));
        end
    }
}

/// A queued piece of work. Dropping a job that did not run cancels it.
pub(crate) trait Job: Send {
    /// Runs the job, catching its panic; the worker decides what to do next.
    fn run(self: Box<Self>, ctx: &RunContext<'_>) -> Outcome;
}

pub(crate) type BoxedJob = Box<dyn Job>;

/// A submitted closure and the cell its handle waits on.
pub(crate) struct TaskJob<F, T> {
    f: Option<F>,
    cell: Arc<TaskCell<T>>,
    role: Role,
}

impl<F, T> TaskJob<F, T>
where
    F: FnOnce() -> Result<T, String> + Send + 'static,
    T: Send + 'static,
{
    /// A job for `f` and the handle of its result.
    pub(crate) fn new(role: Role, f: F) -> (Box<Self>, TaskHandle<T>) {
        let cell = Arc::new(TaskCell::new());
        let job = Box::new(Self {
            f: Some(f),
            cell: cell.clone(),
            role,
        });
        // TSan: the task follows what its submitter did before, the job's
        // allocation included (`run`).
        tsan::release(&*cell);
        (job, TaskHandle::new(cell))
    }
}

impl<F, T> Job for TaskJob<F, T>
where
    F: FnOnce() -> Result<T, String> + Send + 'static,
    T: Send + 'static,
{
    fn run(mut self: Box<Self>, ctx: &RunContext<'_>) -> Outcome {
        let Some(f) = self.f.take() else {
            return Outcome::Ok;
        };
        let role = self.role;
        tsan::acquire(&*self.cell);
        let (outcome, result) = match catch_unwind(AssertUnwindSafe(|| tsan::user_code(f))) {
            Ok(Ok(value)) => (Outcome::Ok, Ok(value)),
            Ok(Err(message)) => (Outcome::Failed, Err(TaskError::Failed { role, message })),
            Err(payload) => {
                let message = take_panic_message(payload);
                (
                    Outcome::Panicked,
                    Err(TaskError::Panicked {
                        role,
                        worker: ctx.worker.to_owned(),
                        message,
                    }),
                )
            }
        };
        ctx.finish(outcome);
        // TSan: the waiter follows the task (`TaskCell::wait`).
        tsan::release(&*self.cell);
        self.cell.complete(result);
        outcome
    }
}

impl<F, T> Drop for TaskJob<F, T> {
    fn drop(&mut self) {
        if self.f.is_some() {
            tsan::release(&*self.cell);
            self.cell
                .complete(Err(TaskError::Cancelled { role: self.role }));
        }
    }
}
