//! A read-only shared mapping of part of the cache file that another
//! process cannot pull out from under its readers.
//!
//! Mapping the cache shares the page cache's copy of the tokens instead of
//! copying them into fresh memory (which the kernel zeroes first): a warm
//! load costs half as much, and every process that loads the same cache
//! shares one copy. A plain mapping would make a reader fault with SIGBUS
//! once another process truncates the file; a **read lease** keeps that
//! from happening:
//!
//! - The lease (`fcntl(F_SETLEASE, F_RDLCK)`) makes any `truncate` or open
//!   for writing of the file wait, and signals its holder. It is taken
//!   before the mapping is made; if it cannot be had (another user's file,
//!   a writer already open, a file system without leases, leases disabled,
//!   a lease break time under [`MIN_BREAK_TIME_S`]), the caller copies as
//!   before.
//! - The signal goes to one thread only, the mapping's **keeper**
//!   (`F_SETOWN_EX` with `F_OWNER_TID`), which blocks it and reads it from a
//!   `signalfd`: no process-wide handler, no other thread is interrupted.
//! - On the signal the keeper **detaches**: it copies the mapped bytes into
//!   fresh anonymous memory and moves that copy over the mapping with one
//!   `mremap` (the same address, the same bytes: readers never see the
//!   change), then releases the lease, and the truncation goes on.
//! - `fork` would give the child the mapping without its keeper: a handler
//!   run before every `fork` (`pthread_atfork`) detaches every mapping first,
//!   so parent and child share a private copy, as they did before mapping.
//!
//! What it cannot cover: a process stopped (SIGSTOP, a debugger) for longer
//! than the lease break time while another truncates the file, and a copy
//! that cannot be allocated at that moment (the keeper retries until the
//! kernel breaks the lease).
//!
//! Lock order: the registry, then a mapping's state. The keeper takes only
//! the state.

use parking_lot::{Condvar, Mutex};
use std::cell::UnsafeCell;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Once, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

// Linux's fcntl ABI (asm-generic, as on x86-64 and arm64), which the libc
// crate does not export for every target.
const F_SETSIG: libc::c_int = 10;
const F_SETOWN_EX: libc::c_int = 15;
const F_OWNER_TID: libc::c_int = 0;

#[repr(C)]
struct OwnerEx {
    kind: libc::c_int,
    pid: libc::pid_t,
}

/// A lease break time shorter than this (`/proc/sys/fs/lease-break-time`)
/// could let a truncation through before a busy keeper has detached.
pub(crate) const MIN_BREAK_TIME_S: u64 = 5;

/// The signal a lease break is sent as: real-time, so it carries the
/// descriptor and queues. Only the keeper threads receive it (directed to
/// them, blocked there); a program that uses this number for its own
/// process-wide signals should turn mapping off (`map_cache`).
pub(crate) fn break_signal() -> libc::c_int {
    libc::SIGRTMAX() - 3
}

/// A read-only mapping of `len` bytes of a file at a page-aligned address,
/// file-backed under a read lease until a break or a `fork` detaches it.
pub(crate) struct LeasedMap {
    base: *mut u8,
    len: usize,
    shared: Arc<Shared>,
    keeper: Option<JoinHandle<()>>,
    /// The process that made it: in a child made by `fork` there is no
    /// keeper (its mapping was detached before the `fork`).
    owner_pid: libc::pid_t,
}

// SAFETY: the mapping is owned by this value alone and read-only; the state
// it shares with its keeper is behind a lock.
unsafe impl Send for LeasedMap {}
// SAFETY: shared access only reads the mapped bytes.
unsafe impl Sync for LeasedMap {}

/// What the keeper, the `fork` handler and the owner share.
struct Shared {
    state: Mutex<State>,
    /// Set, then `stop_fd` written, when the owner drops: the keeper's
    /// only way out (it never exits on a signal, so its TID stays its own
    /// until the owner has joined it).
    stop: AtomicBool,
    stop_fd: OwnedFd,
    /// The keeper's TID once it waits for signals; `Some(None)` if it could
    /// not. (A lock and a condition variable rather than a channel: nothing
    /// allocated by one thread is freed by the other, which
    /// ThreadSanitizer would report, as it does not see std's atomics.)
    started: Mutex<Option<Option<libc::pid_t>>>,
    started_cv: Condvar,
}

struct State {
    base: usize,
    len: usize,
    /// The leased descriptor while the mapping is file-backed.
    lease: Option<OwnedFd>,
}

impl State {
    /// Unmaps the whole mapping (file pages or their copy).
    fn unmap(&mut self) {
        if self.len > 0 {
            // SAFETY: the mapping this state describes, made by
            // `LeasedMap::new`; its owner is being dropped, so no slice of it
            // is left.
            unsafe { libc::munmap(self.base as *mut libc::c_void, self.len) };
            self.len = 0;
        }
    }

    /// Replaces the file mapping by a private copy at the same address and
    /// releases the lease. False if the copy's memory could not be had (the
    /// lease is kept: the caller tries again).
    fn detach(&mut self) -> bool {
        let Some(fd) = self.lease.as_ref() else {
            return true;
        };
        // SAFETY: a fresh anonymous mapping; nothing existing is touched.
        let copy = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                self.len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if copy == libc::MAP_FAILED {
            return false;
        }
        // SAFETY: `base..base + len` is our file mapping, whole and still
        // backed (the lease holds the truncation back until released
        // below); `copy` is `len` fresh writable bytes. `mremap` then moves
        // the copy onto `base` in one step, dropping the file mapping.
        unsafe {
            std::ptr::copy_nonoverlapping(self.base as *const u8, copy.cast::<u8>(), self.len);
            libc::mprotect(copy, self.len, libc::PROT_READ);
            let moved = libc::mremap(
                copy,
                self.len,
                self.len,
                libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
                self.base as *mut libc::c_void,
            );
            if moved == libc::MAP_FAILED {
                libc::munmap(copy, self.len);
                return false;
            }
            libc::fcntl(fd.as_raw_fd(), libc::F_SETLEASE, libc::F_UNLCK);
        }
        self.lease = None;
        true
    }
}

impl LeasedMap {
    /// Maps `len` bytes of `file` from `offset` under a read lease, if one
    /// can be had; `None` if not (the caller reads the file instead).
    /// `file_len` is the length the caller checked: a file that changed
    /// length before the lease is not mapped.
    pub(crate) fn new(file: &File, offset: u64, len: usize, file_len: u64) -> Option<Self> {
        if len == 0 || break_time_s()? < MIN_BREAK_TIME_S {
            return None;
        }
        let page = thread_support::page_size();
        let start = offset - offset % page as u64;
        let lead = (offset - start) as usize;
        let map_len = lead.checked_add(len)?;
        let fd = file.try_clone().ok().map(OwnedFd::from)?;
        let (keeper, keeper_tid, shared) = Keeper::start()?;
        let owner_pid = std::process::id() as libc::pid_t;
        let mut map = LeasedMap {
            base: std::ptr::null_mut(),
            len: map_len,
            shared,
            keeper: Some(keeper),
            owner_pid,
        };
        let raw = fd.as_raw_fd();
        let owner = OwnerEx {
            kind: F_OWNER_TID,
            pid: keeper_tid,
        };
        // SAFETY: fcntl on a descriptor we own; `owner` outlives the call.
        let signalled = unsafe {
            libc::fcntl(raw, F_SETSIG, break_signal()) == 0
                && libc::fcntl(raw, F_SETOWN_EX, &owner) == 0
        };
        if !signalled {
            return None; // `map` drops: its keeper is stopped
        }
        let shared = Arc::clone(&map.shared);
        // The lease is taken under the registry's lock, so that no `fork`
        // falls between the lease and the registration that lets the fork
        // handler detach it; and under the state's, so that a break
        // signalled as soon as the lease is taken finds the mapping (or its
        // release) when the keeper gets the lock.
        let mut attempt = 0;
        let (mut registry, mut state) = loop {
            let registry = Registry::lock();
            let state = shared.state.lock();
            // SAFETY: fcntl on a descriptor we own.
            if unsafe { libc::fcntl(raw, libc::F_SETLEASE, libc::F_RDLCK) } == 0 {
                break (registry, state);
            }
            // EAGAIN: the file is open for writing somewhere. Often only
            // for a moment: the child of a `fork` made while the cache was
            // being written holds a copy of the writer's descriptor until it
            // calls `exec`. So a few tries, 1 + 4 + 16 ms apart, then a copy.
            let busy = std::io::Error::last_os_error().raw_os_error() == Some(libc::EAGAIN);
            drop((state, registry));
            if !busy || attempt == 3 {
                return None;
            }
            std::thread::sleep(Duration::from_millis(1 << (2 * attempt)));
            attempt += 1;
        };
        // SAFETY: fstat into a local.
        let same_len = unsafe {
            let mut st: libc::stat = std::mem::zeroed();
            libc::fstat(raw, &mut st) == 0 && st.st_size as u64 == file_len
        };
        let fits = (start as u128 + map_len as u128) <= file_len as u128;
        let base = if same_len && fits {
            // SAFETY: a new read-only shared mapping of the file, inside its
            // checked length, which the lease now keeps.
            unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    map_len,
                    libc::PROT_READ,
                    libc::MAP_SHARED,
                    raw,
                    start as libc::off_t,
                )
            }
        } else {
            libc::MAP_FAILED
        };
        if base == libc::MAP_FAILED {
            // SAFETY: releasing the lease we took on our descriptor.
            unsafe { libc::fcntl(raw, libc::F_SETLEASE, libc::F_UNLCK) };
            drop(state);
            drop(registry);
            return None;
        }
        state.base = base as usize;
        state.len = map_len;
        state.lease = Some(fd);
        drop(state);
        registry.add(&shared);
        drop(registry);
        // The bytes asked for start `lead` bytes in.
        map.base = base.cast::<u8>().wrapping_add(lead);
        map.len = len;
        Some(map)
    }

    /// The mapped bytes (the `len` asked for, from `offset`).
    pub(crate) fn bytes(&self) -> &[u8] {
        // SAFETY: `len` readable bytes at `base` for as long as `self`
        // lives: the file mapping (under the lease) or its private copy.
        unsafe { std::slice::from_raw_parts(self.base, self.len) }
    }

    /// True while the bytes are the file's pages (not yet detached).
    pub(crate) fn is_file_backed(&self) -> bool {
        self.shared.state.lock().lease.is_some()
    }
}

impl Drop for LeasedMap {
    fn drop(&mut self) {
        if std::process::id() as libc::pid_t != self.owner_pid {
            return self.drop_in_forked_child();
        }
        Registry::lock().remove(&self.shared);
        {
            let mut state = self.shared.state.lock();
            state.unmap();
            if let Some(fd) = state.lease.take() {
                // SAFETY: releasing our lease before closing the descriptor.
                unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETLEASE, libc::F_UNLCK) };
            }
        }
        let Some(keeper) = self.keeper.take() else {
            return;
        };
        self.shared.stop.store(true, Ordering::Release);
        let one = 1u64;
        // SAFETY: writes 8 bytes from a local to our eventfd.
        unsafe {
            libc::write(
                self.shared.stop_fd.as_raw_fd(),
                (&one as *const u64).cast(),
                8,
            )
        };
        let _ = keeper.join();
    }
}

impl LeasedMap {
    /// Drop in a child made by `fork`. The mapping was detached before the
    /// fork; the keeper is a thread of the parent; the state's lock may have
    /// been copied held by a thread the child does not have, and no other
    /// thread of the child can reach the state.
    fn drop_in_forked_child(&mut self) {
        // SAFETY: the only thread that can reach the state (above).
        let state = unsafe { &mut *self.shared.state.data_ptr() };
        state.unmap();
        // Had the copy failed before the fork, this closes the child's
        // descriptor only: an F_UNLCK would end the parent's lease too.
        drop(state.lease.take());
        if let Some(keeper) = self.keeper.take() {
            std::mem::forget(keeper);
        }
    }
}

/// The keeper thread of one mapping.
struct Keeper;

impl Keeper {
    /// Starts a keeper; its handle, its TID and the state it watches.
    fn start() -> Option<(JoinHandle<()>, libc::pid_t, Arc<Shared>)> {
        // SAFETY: creates a descriptor, owned just below.
        let stop_fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        if stop_fd < 0 {
            return None;
        }
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                base: 0,
                len: 0,
                lease: None,
            }),
            stop: AtomicBool::new(false),
            // SAFETY: a fresh descriptor that nothing else owns.
            stop_fd: unsafe { OwnedFd::from_raw_fd(stop_fd) },
            started: Mutex::new(None),
            started_cv: Condvar::new(),
        });
        let watched = Arc::clone(&shared);
        let handle = std::thread::Builder::new()
            .name("cllm-cache-keeper".into())
            .stack_size(64 << 10)
            .spawn(move || {
                let _library = thread_support::tsan::library_thread();
                let signals = Signals::block_and_open();
                // SAFETY: gettid has no preconditions.
                let tid = signals.as_ref().map(|_| unsafe { libc::gettid() });
                *watched.started.lock() = Some(tid);
                watched.started_cv.notify_one();
                if let Some(signals) = signals {
                    keep(&watched, &signals);
                }
            })
            .ok()?;
        let started = {
            let mut started = shared.started.lock();
            shared.started_cv.wait_while(&mut started, |s| s.is_none());
            started.flatten()
        };
        match started {
            Some(tid) => Some((handle, tid, shared)),
            None => {
                let _ = handle.join();
                None
            }
        }
    }
}

/// The keeper's loop: every signal is either the owner's stop or a lease
/// break (a queue overflow turns a break into SIGIO: also a break).
/// Detaching on a signal that was not a break only costs the sharing.
fn keep(shared: &Shared, signals: &Signals) {
    loop {
        let woken = signals.wait(&shared.stop_fd);
        if shared.stop.load(Ordering::Acquire) {
            return;
        }
        if woken == Woken::Failed {
            // Signals may be missed from now on: give up the lease.
            std::thread::sleep(Duration::from_millis(10));
        }
        while !shared.state.lock().detach() {
            if shared.stop.load(Ordering::Acquire) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

#[derive(PartialEq, Eq)]
enum Woken {
    /// A signal, or the owner's stop.
    Event,
    /// `poll` failed for a reason other than an interruption.
    Failed,
}

/// The keeper's signals, blocked in its thread and read from a `signalfd`.
struct Signals {
    fd: OwnedFd,
}

impl Signals {
    fn block_and_open() -> Option<Self> {
        // SAFETY: signal-set calls on a local set; the mask change is this
        // thread's own.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, break_signal());
            libc::sigaddset(&mut set, libc::SIGIO);
            if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
                return None;
            }
            let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC);
            (fd >= 0).then(|| Signals {
                fd: OwnedFd::from_raw_fd(fd),
            })
        }
    }

    /// Waits for a signal (and takes it) or for `stop` to be readable.
    fn wait(&self, stop: &OwnedFd) -> Woken {
        let mut fds = [
            libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: stop.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        loop {
            // SAFETY: two initialised pollfd entries.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
            if n > 0 {
                break;
            }
            if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
                return Woken::Failed;
            }
        }
        if fds[0].revents != 0 {
            // SAFETY: an all-zero siginfo is a valid buffer; the read takes
            // one record (the descriptor is ready, so it does not block).
            unsafe {
                let mut info: libc::signalfd_siginfo = std::mem::zeroed();
                libc::read(
                    self.fd.as_raw_fd(),
                    (&mut info as *mut libc::signalfd_siginfo).cast(),
                    size_of::<libc::signalfd_siginfo>(),
                );
            }
        }
        Woken::Event
    }
}

/// Every live lease of this process, for the `fork` handler. Locked with a
/// pthread mutex: the handler holds it across the `fork` (so that no lease
/// is taken in between) and the child unlocks it, which pthread mutexes
/// allow and ThreadSanitizer understands.
struct Registry {
    live: Vec<Arc<Shared>>,
}

struct RegistryCell {
    lock: UnsafeCell<libc::pthread_mutex_t>,
    data: UnsafeCell<Registry>,
}

// SAFETY: `data` is only reached through `Registry::lock`, which holds
// `lock`.
unsafe impl Sync for RegistryCell {}

static REGISTRY: RegistryCell = RegistryCell {
    lock: UnsafeCell::new(libc::PTHREAD_MUTEX_INITIALIZER),
    data: UnsafeCell::new(Registry { live: Vec::new() }),
};

/// The registry, locked.
struct RegistryGuard(());

impl Registry {
    fn lock() -> RegistryGuard {
        static HANDLERS: Once = Once::new();
        HANDLERS.call_once(|| {
            // SAFETY: registers plain functions; glibc unregisters them when
            // a library holding them is unloaded.
            unsafe {
                libc::pthread_atfork(
                    Some(before_fork),
                    Some(after_fork_unlock),
                    Some(after_fork_in_child),
                )
            };
        });
        // SAFETY: the static mutex, initialised.
        unsafe { libc::pthread_mutex_lock(REGISTRY.lock.get()) };
        RegistryGuard(())
    }
}

impl RegistryGuard {
    fn data(&mut self) -> &mut Registry {
        // SAFETY: the lock is held by this guard.
        unsafe { &mut *REGISTRY.data.get() }
    }

    fn add(&mut self, shared: &Arc<Shared>) {
        self.data().live.push(Arc::clone(shared));
    }

    fn remove(&mut self, shared: &Arc<Shared>) {
        self.data().live.retain(|s| !Arc::ptr_eq(s, shared));
    }
}

impl Drop for RegistryGuard {
    fn drop(&mut self) {
        // SAFETY: locked by this guard.
        unsafe { libc::pthread_mutex_unlock(REGISTRY.lock.get()) };
    }
}

/// Before `fork`: every mapping becomes a private copy, lease released, and
/// the registry stays locked until the `fork` is done.
extern "C" fn before_fork() {
    let mut guard = Registry::lock();
    for shared in &guard.data().live {
        let mut state = shared.state.lock();
        // A copy that cannot be allocated now leaves that mapping leased:
        // the child could then fault if the file were truncated.
        let _ = state.detach();
    }
    std::mem::forget(guard); // unlocked by the handlers below
}

extern "C" fn after_fork_unlock() {
    // SAFETY: locked by `before_fork` in this thread.
    unsafe { libc::pthread_mutex_unlock(REGISTRY.lock.get()) };
}

extern "C" fn after_fork_in_child() {
    // The child has no keepers and no leases: its mappings were detached.
    // SAFETY: the lock `before_fork` took is held (it was copied locked).
    unsafe {
        (*REGISTRY.data.get()).live.clear();
        libc::pthread_mutex_unlock(REGISTRY.lock.get());
    }
}

/// `/proc/sys/fs/lease-break-time`, read once (`None` if unreadable).
fn break_time_s() -> Option<u64> {
    static TIME: OnceLock<Option<u64>> = OnceLock::new();
    *TIME.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/fs/lease-break-time")
            .ok()?
            .trim()
            .parse()
            .ok()
    })
}
