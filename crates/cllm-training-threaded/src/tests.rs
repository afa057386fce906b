//! Unit tests of the orchestration with a mock host: the edge cases a real
//! host rarely produces (iterators that pad for ever, batches of changing
//! size, replicas that cannot be made, non-finite gradients, two epochs at
//! once), and the host's rules (never two calls at once on one object, steps
//! in batch order).

use crate::error::Error;
use crate::host::{
    CLLMBatch, CLLMBatchIterator, CLLMTraining, Host, cllm_float_span, cllm_replica_ops,
};
use crate::settings::{self, Request};
use crate::system::{Mode, Plan, TrainingSystem};
use std::ffi::c_void;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// What the mock iterator returns: batches of `(batch_size, seq_len, valid)`.
#[derive(Clone, Default)]
struct Script {
    batches: Vec<(u32, u32, u32)>,
    /// After the script: padding-only batches for ever (else NULL).
    pad_forever: bool,
    /// What `num_batches` reports.
    num_batches: usize,
}

/// A training object of the mock: one weight, a gradient buffer, an in-use
/// flag to catch concurrent calls.
struct MockTraining {
    weight: f64,
    grad: Vec<f32>,
    in_use: AtomicBool,
    is_replica: bool,
    /// The last batch's first input token (forward stores it for backward).
    last_input: u32,
}

#[derive(Default)]
struct Mock {
    script: Script,
    next: AtomicUsize,
    live_batches: AtomicUsize,
    fetched: AtomicUsize,
    misuse: AtomicUsize,
    steps_on_replicas: AtomicUsize,
    replicas_made: AtomicUsize,
    replicas_freed: AtomicUsize,
    /// `create_replica` fails from this call on (0: never).
    fail_replica_at: usize,
    /// Backward writes NaN into the gradient for this input token.
    nan_on_token: Option<u32>,
    /// Forward sleeps this long (to hold an epoch open).
    slow_forward: Duration,
    /// The replicas report a gradient buffer of a different length.
    bad_replica_layout: bool,
    /// Every object reports a gradient buffer of 2^58 floats.
    absurd_gradient: bool,
    /// The replicas list this one buffer (of GRAD_LEN floats) as theirs.
    shared_replica_gradient: Vec<f32>,
    /// Every object lists its gradient buffer twice.
    gradient_listed_twice: bool,
    /// The loss is NaN for this input token.
    nan_loss_on_token: Option<u32>,
    /// Losses passed to the optimizer-step hook, in call order.
    hook_losses: parking_lot::Mutex<Vec<f32>>,
}

#[derive(Clone)]
struct MockHost(Arc<Mock>);

/// The mock object behind a training pointer.
///
/// # Safety
/// `t` was made by [`new_training`], is not freed while the reference lives,
/// and nothing else uses it meanwhile (the drop-in's one-call-at-a-time
/// rule, which `MockHost::enter` checks).
unsafe fn training<'a>(t: *mut CLLMTraining) -> &'a mut MockTraining {
    // SAFETY: the contract above.
    unsafe { &mut *t.cast::<MockTraining>() }
}

fn new_training(is_replica: bool, grad_len: usize) -> *mut CLLMTraining {
    Box::into_raw(Box::new(MockTraining {
        weight: 1.0,
        grad: vec![0.0; grad_len],
        in_use: AtomicBool::new(false),
        is_replica,
        last_input: 0,
    }))
    .cast()
}

/// Frees a training object.
///
/// # Safety
/// `t` was made by [`new_training`] and is not used again.
unsafe fn free_training(t: *mut CLLMTraining) {
    // SAFETY: the contract above: a box of ours, dropped once.
    drop(unsafe { Box::from_raw(t.cast::<MockTraining>()) });
}

/// A test's master training object, freed when dropped (after the system
/// that trains on it).
struct Master(*mut CLLMTraining);

impl Master {
    fn new() -> Self {
        Self(new_training(false, GRAD_LEN))
    }

    /// The pointer a system is created over.
    fn ptr(&self) -> *mut CLLMTraining {
        self.0
    }

    /// The weight, read between epochs (no call runs on the master then).
    fn weight(&self) -> f64 {
        // SAFETY: made by `new_training`, live until `drop`; no epoch runs.
        unsafe { training(self.0) }.weight
    }
}

impl Drop for Master {
    fn drop(&mut self) {
        // SAFETY: made by `new_training`; the tests drop the system first.
        unsafe { free_training(self.0) }
    }
}

impl MockHost {
    /// Marks `t` in use (counting a second concurrent user as misuse).
    ///
    /// # Safety
    /// As for [`training`], apart from the concurrent use this checks.
    unsafe fn enter<'a>(&self, t: *mut CLLMTraining) -> &'a mut MockTraining {
        // SAFETY: the contract above.
        let m = unsafe { training(t) };
        if m.in_use.swap(true, Ordering::SeqCst) {
            self.0.misuse.fetch_add(1, Ordering::SeqCst);
        }
        m
    }
    fn leave(m: &MockTraining) {
        m.in_use.store(false, Ordering::SeqCst);
    }
}

// SAFETY: the mock keeps its own rules; it checks the drop-in's use of them.
unsafe impl Host for MockHost {
    unsafe fn reset(&self, _: *mut CLLMBatchIterator) {
        self.0.next.store(0, Ordering::SeqCst);
    }
    unsafe fn next(&self, _: *mut CLLMBatchIterator) -> *mut CLLMBatch {
        self.0.fetched.fetch_add(1, Ordering::SeqCst);
        let i = self.0.next.fetch_add(1, Ordering::SeqCst);
        let (bs, sl, valid) = match self.0.script.batches.get(i) {
            Some(&b) => b,
            None if self.0.script.pad_forever => {
                (self.0.script.batches[0].0, self.0.script.batches[0].1, 0)
            }
            None => return std::ptr::null_mut(),
        };
        let n = (bs * sl) as usize;
        // Inputs carry the batch index, so forward can tell batches apart.
        let inputs = vec![i as u32 + 1; n].leak().as_mut_ptr();
        let targets = vec![1u32; n].leak().as_mut_ptr();
        self.0.live_batches.fetch_add(1, Ordering::SeqCst);
        Box::into_raw(Box::new(CLLMBatch {
            input_ids: inputs,
            target_ids: targets,
            attention_mask: std::ptr::null_mut(),
            batch_size: bs,
            seq_len: sl,
            num_valid_tokens: valid,
        }))
    }
    unsafe fn num_batches(&self, _: *mut CLLMBatchIterator) -> usize {
        self.0.script.num_batches
    }
    unsafe fn free_batch(&self, b: *mut CLLMBatch) {
        // SAFETY: made by `next` above.
        let b = unsafe { Box::from_raw(b) };
        let n = (b.batch_size * b.seq_len) as usize;
        // SAFETY: the vectors were leaked with exactly this length.
        unsafe {
            drop(Vec::from_raw_parts(b.input_ids, n, n));
            drop(Vec::from_raw_parts(b.target_ids, n, n));
        }
        self.0.live_batches.fetch_sub(1, Ordering::SeqCst);
    }
    unsafe fn forward(&self, t: *mut CLLMTraining, inputs: *mut u32) -> f32 {
        // SAFETY: the drop-in passes training objects it was given.
        let m = unsafe { self.enter(t) };
        std::thread::sleep(self.0.slow_forward);
        // SAFETY: a whole batch is passed.
        m.last_input = unsafe { *inputs };
        Self::leave(m);
        0.0
    }
    unsafe fn loss(&self, t: *mut CLLMTraining, _: *mut u32) -> f32 {
        // SAFETY: the drop-in passes training objects it was given.
        let m = unsafe { self.enter(t) };
        let loss = if self.0.nan_loss_on_token == Some(m.last_input) {
            f32::NAN
        } else {
            1.0 / m.last_input as f32
        };
        Self::leave(m);
        loss
    }
    unsafe fn backward(&self, t: *mut CLLMTraining, _: *mut u32) {
        // SAFETY: the drop-in passes training objects it was given.
        let m = unsafe { self.enter(t) };
        let g = if self.0.nan_on_token == Some(m.last_input) {
            f32::NAN
        } else {
            m.last_input as f32
        };
        m.grad.iter_mut().for_each(|x| *x = g);
        Self::leave(m);
    }
    unsafe fn step(&self, t: *mut CLLMTraining) {
        // SAFETY: the drop-in passes training objects it was given.
        let m = unsafe { self.enter(t) };
        if m.is_replica {
            self.0.steps_on_replicas.fetch_add(1, Ordering::SeqCst);
        }
        // Order-sensitive: the result tells whether steps ran in batch order.
        m.weight = m.weight * 0.5 + f64::from(m.grad[0]);
        m.grad.iter_mut().for_each(|x| *x = 0.0);
        Self::leave(m);
    }
}

const GRAD_LEN: usize = 8;

unsafe extern "C" fn mock_create_replica(
    user: *mut c_void,
    _master: *mut CLLMTraining,
) -> *mut CLLMTraining {
    // SAFETY: `user` is the test's `Mock`.
    let mock = unsafe { &*(user as *const Mock) };
    let made = mock.replicas_made.fetch_add(1, Ordering::SeqCst) + 1;
    if mock.fail_replica_at != 0 && made >= mock.fail_replica_at {
        mock.replicas_made.fetch_sub(1, Ordering::SeqCst);
        return std::ptr::null_mut();
    }
    let len = if mock.bad_replica_layout {
        GRAD_LEN + 1
    } else {
        GRAD_LEN
    };
    new_training(true, len)
}

unsafe extern "C" fn mock_free_replica(user: *mut c_void, replica: *mut CLLMTraining) {
    // SAFETY: `user` is the test's `Mock`.
    let mock = unsafe { &*(user as *const Mock) };
    mock.replicas_freed.fetch_add(1, Ordering::SeqCst);
    // SAFETY: the drop-in frees each replica made by `mock_create_replica`
    // once, after its last use.
    unsafe { free_training(replica) };
}

unsafe extern "C" fn mock_gradients(
    user: *mut c_void,
    t: *mut CLLMTraining,
    out: *mut cllm_float_span,
    capacity: usize,
) -> usize {
    // SAFETY: `user` is the test's `Mock`.
    let mock = unsafe { &*(user as *const Mock) };
    // SAFETY: the drop-in lists buffers of objects it was given, while no
    // other call runs on them.
    let m = unsafe { training(t) };
    let span = if mock.absurd_gradient {
        // The drop-in must never touch it.
        cllm_float_span {
            data: m.grad.as_mut_ptr(),
            len: 1 << 58,
        }
    } else if m.is_replica && !mock.shared_replica_gradient.is_empty() {
        // Never written: the creation is refused first.
        cllm_float_span {
            data: mock.shared_replica_gradient.as_ptr().cast_mut(),
            len: mock.shared_replica_gradient.len(),
        }
    } else {
        cllm_float_span {
            data: m.grad.as_mut_ptr(),
            len: m.grad.len(),
        }
    };
    let count = if mock.gradient_listed_twice { 2 } else { 1 };
    for i in 0..count.min(capacity) {
        // SAFETY: `out` has room for `capacity` spans.
        unsafe { *out.add(i) = span };
    }
    count
}

fn ops(mock: &Arc<Mock>) -> cllm_replica_ops {
    cllm_replica_ops {
        user: Arc::as_ptr(mock) as *mut c_void,
        create_replica: Some(mock_create_replica),
        free_replica: Some(mock_free_replica),
        gradient_buffers: Some(mock_gradients),
        optimizer_step: None,
    }
}

/// The optimizer-step hook: records the loss, then steps as the host does.
unsafe extern "C" fn mock_hook(user: *mut c_void, t: *mut CLLMTraining, loss: f32) {
    // SAFETY: `user` is the test's `Mock`.
    let mock = unsafe { &*(user as *const Mock) };
    mock.hook_losses.lock().push(loss);
    // SAFETY: the drop-in calls the hook as it would call the step.
    unsafe { MockHost(Arc::new(Mock::default())).step(t) };
}

fn script(n: usize) -> Script {
    Script {
        batches: vec![(4, 8, 32); n],
        pad_forever: false,
        num_batches: n,
    }
}

/// The mock iterator ignores its pointer; any non-NULL one will do.
fn any_iterator() -> *mut CLLMBatchIterator {
    std::ptr::NonNull::<u8>::dangling().as_ptr().cast()
}

/// The plan the C entry points would make from these arguments, without
/// environment or registered adapter.
fn plan(
    mock: &Arc<Mock>,
    threads: i64,
    replicas: bool,
    group: Option<usize>,
) -> Result<Plan, Error> {
    let request = Request {
        threads,
        mode: None,
        group,
        ops: replicas.then(|| ops(mock)),
    };
    settings::resolve(request, |_| None, None)
}

/// A system over `master` (which the caller drops after the system).
fn try_system_grouped(
    mock: &Arc<Mock>,
    master: &Master,
    threads: i64,
    replicas: bool,
    group: Option<usize>,
) -> Result<TrainingSystem<MockHost>, Error> {
    let plan = plan(mock, threads, replicas, group)?;
    // SAFETY: the mock host accepts any iterator pointer; `master` is live
    // and outlives the system (the caller drops it after).
    unsafe { TrainingSystem::create(MockHost(mock.clone()), master.ptr(), any_iterator(), plan) }
}

fn try_system(
    mock: &Arc<Mock>,
    master: &Master,
    threads: i64,
    replicas: bool,
) -> Result<TrainingSystem<MockHost>, Error> {
    try_system_grouped(mock, master, threads, replicas, None)
}

fn system(mock: &Arc<Mock>, threads: i64, replicas: bool) -> (TrainingSystem<MockHost>, Master) {
    let master = Master::new();
    (
        try_system(mock, &master, threads, replicas).unwrap(),
        master,
    )
}

/// The error of a creation over a fresh master that must fail.
fn create_error(mock: &Arc<Mock>, threads: i64, replicas: bool) -> Error {
    let master = Master::new();
    try_system(mock, &master, threads, replicas)
        .err()
        .expect("creation must fail")
}

#[test]
fn an_epoch_stops_at_num_batches_when_the_iterator_pads_for_ever() {
    let mock = Arc::new(Mock {
        script: Script {
            batches: vec![(4, 8, 32); 3],
            pad_forever: true,
            num_batches: 5,
        },
        ..Mock::default()
    });
    let (sys, master) = system(&mock, 2, false);
    let loss = sys.train_epoch().unwrap();
    assert_eq!(
        mock.fetched.load(Ordering::SeqCst),
        5,
        "fetched past num_batches"
    );
    let stats = sys.stats();
    assert_eq!((stats.batches, stats.skipped_batches), (3, 2));
    // Losses 1/1, 1/2, 1/3 with equal token counts.
    assert!(
        (loss - (1.0 + 0.5 + 1.0 / 3.0) / 3.0).abs() < 1e-6,
        "loss {loss}"
    );
    drop(sys);
    assert_eq!(
        mock.live_batches.load(Ordering::SeqCst),
        0,
        "batches leaked"
    );
    drop(master);
}

#[test]
fn serialised_mode_steps_in_batch_order_one_call_at_a_time() {
    let mock = Arc::new(Mock {
        script: script(40),
        ..Mock::default()
    });
    let (sys, master) = system(&mock, 4, false);
    sys.train_epoch().unwrap();
    sys.train_epoch().unwrap();
    drop(sys);
    // The same steps applied sequentially, in order.
    let mut expected = 1.0f64;
    for _ in 0..2 {
        for k in 1..=40u32 {
            expected = expected * 0.5 + f64::from(k);
        }
    }
    assert_eq!(master.weight(), expected);
    assert_eq!(
        mock.misuse.load(Ordering::SeqCst),
        0,
        "concurrent calls on the training object"
    );
    assert_eq!(mock.live_batches.load(Ordering::SeqCst), 0);
    drop(master);
}

#[test]
fn a_batch_of_another_size_stops_the_epoch_and_frees_every_batch() {
    let mut s = script(6);
    s.batches[4] = (2, 8, 16);
    let mock = Arc::new(Mock {
        script: s,
        ..Mock::default()
    });
    for replicas in [false, true] {
        let (sys, master) = system(&mock, 2, replicas);
        let err = sys.train_epoch().unwrap_err();
        assert_eq!(
            err,
            Error::BatchSizeChanged {
                batch_size: 2,
                seq_len: 8,
                tokens: 16,
                expected: 32
            }
        );
        assert_eq!(
            mock.live_batches.load(Ordering::SeqCst),
            0,
            "replicas={replicas}: batches leaked"
        );
        drop(sys);
        drop(master);
    }
}

#[test]
fn a_batch_claiming_more_valid_tokens_than_it_holds_is_refused() {
    let mut s = script(2);
    s.batches[1] = (4, 8, 33);
    let mock = Arc::new(Mock {
        script: s,
        ..Mock::default()
    });
    let (sys, master) = system(&mock, 1, false);
    assert_eq!(
        sys.train_epoch().unwrap_err(),
        Error::TooManyValidTokens {
            valid: 33,
            tokens: 32
        }
    );
    drop(sys);
    drop(master);
}

#[test]
fn replica_mode_reduces_token_weighted_and_steps_once_per_group() {
    let mut s = script(5);
    s.batches[1].2 = 16; // batch 2 has half the valid tokens
    let mock = Arc::new(Mock {
        script: s,
        ..Mock::default()
    });
    let (sys, master) = system(&mock, 2, true);
    assert_eq!(sys.mode(), Mode::Replicas);
    sys.train_epoch().unwrap();
    let stats = sys.stats();
    assert_eq!(stats.steps, 3, "groups of 2, 2 and 1");
    // Group 1: gradients 1 (32 tokens) and 2 (16 tokens): 1*2/3 + 2*1/3.
    let g1 = 1.0f32 * (32.0f64 / 48.0) as f32 + 2.0 * (16.0f64 / 48.0) as f32;
    let g2 = 3.0f32 * 0.5 + 4.0 * 0.5;
    let g3 = 5.0f32;
    let expected = ((1.0 * 0.5 + f64::from(g1)) * 0.5 + f64::from(g2)) * 0.5 + f64::from(g3);
    assert_eq!(master.weight(), expected);
    assert_eq!(
        stats.grad_norm,
        Some((5.0f64 * 5.0 * GRAD_LEN as f64).sqrt() as f32)
    );
    assert_eq!(
        mock.steps_on_replicas.load(Ordering::SeqCst),
        0,
        "a step ran on a replica"
    );
    assert_eq!(mock.misuse.load(Ordering::SeqCst), 0);
    drop(sys);
    assert_eq!(mock.replicas_freed.load(Ordering::SeqCst), 2);
    drop(master);
}

#[test]
fn a_non_finite_gradient_stops_the_epoch_without_a_step() {
    let mock = Arc::new(Mock {
        script: script(4),
        nan_on_token: Some(3),
        ..Mock::default()
    });
    let (sys, master) = system(&mock, 2, true);
    let err = sys.train_epoch().unwrap_err();
    assert!(matches!(err, Error::NonFiniteGradient(_)), "{err}");
    assert_eq!(
        sys.stats().steps,
        1,
        "the group holding the NaN was not applied"
    );
    assert!(master.weight().is_finite());
    assert_eq!(mock.live_batches.load(Ordering::SeqCst), 0);
    drop(sys);
    drop(master);
}

#[test]
fn failing_to_make_a_replica_frees_those_made_and_starts_no_thread() {
    let mock = Arc::new(Mock {
        script: script(1),
        fail_replica_at: 3,
        ..Mock::default()
    });
    let err = create_error(&mock, 4, true);
    assert_eq!(err, Error::ReplicaNotMade(2));
    assert_eq!(mock.replicas_made.load(Ordering::SeqCst), 2);
    assert_eq!(mock.replicas_freed.load(Ordering::SeqCst), 2);
}

#[test]
fn replicas_with_another_gradient_layout_are_refused() {
    let mock = Arc::new(Mock {
        script: script(1),
        bad_replica_layout: true,
        ..Mock::default()
    });
    let err = create_error(&mock, 2, true);
    assert!(matches!(err, Error::LayoutMismatch { .. }), "{err}");
    let made = mock.replicas_made.load(Ordering::SeqCst);
    assert_eq!(mock.replicas_freed.load(Ordering::SeqCst), made);
}

#[test]
fn a_second_epoch_at_the_same_time_is_refused_as_busy() {
    let mock = Arc::new(Mock {
        script: script(8),
        slow_forward: Duration::from_millis(20),
        ..Mock::default()
    });
    let (sys, master) = system(&mock, 1, false);
    let sys = Arc::new(sys);
    let first = {
        let sys = sys.clone();
        std::thread::spawn(move || sys.train_epoch())
    };
    std::thread::sleep(Duration::from_millis(30));
    let second = sys.train_epoch();
    assert_eq!(second.unwrap_err(), Error::Busy);
    assert!(first.join().unwrap().is_ok());
    drop(sys);
    drop(master);
}

#[test]
fn absurd_thread_counts_and_null_objects_are_refused() {
    let mock = Arc::new(Mock {
        script: script(1),
        ..Mock::default()
    });
    let e = create_error(&mock, 5000, false);
    assert!(
        matches!(e, Error::Pool(sphere_pool::Error::InvalidArgument(_))),
        "{e}"
    );
    let p = plan(&mock, 1, false, None).unwrap();
    let master = Master::new();
    for (training, iter, null) in [
        (std::ptr::null_mut(), any_iterator(), "training"),
        (master.ptr(), std::ptr::null_mut(), "batch_iterator"),
    ] {
        // SAFETY: the NULL pointer is refused before any use; the other is
        // live (the master) or any pointer (the mock's iterator).
        let e = unsafe { TrainingSystem::create(MockHost(mock.clone()), training, iter, p) }
            .err()
            .unwrap();
        assert_eq!(e, Error::NullArgument(null));
    }
}

/// The weight after one epoch of `batches` batches over `threads` spheres.
fn weight_after_epoch(threads: i64, group: Option<usize>) -> f64 {
    let mut sc = script(11);
    sc.batches[3].2 = 7; // unequal token weights
    sc.batches[8].2 = 20;
    let mock = Arc::new(Mock {
        script: sc,
        ..Mock::default()
    });
    let master = Master::new();
    let sys = try_system_grouped(&mock, &master, threads, true, group).unwrap();
    assert_eq!(sys.group_size(), group.unwrap_or(threads as usize));
    sys.train_epoch().unwrap();
    assert_eq!(sys.stats().steps, 11u64.div_ceil(sys.group_size() as u64));
    drop(sys);
    assert_eq!(mock.misuse.load(Ordering::SeqCst), 0);
    assert_eq!(
        mock.replicas_freed.load(Ordering::SeqCst),
        group.unwrap_or(threads as usize)
    );
    master.weight()
}

#[test]
fn a_fixed_group_gives_the_same_weights_for_any_sphere_count() {
    for group in [1, 3, 4, 5] {
        let reference = weight_after_epoch(1, Some(group));
        for threads in 2..=4 {
            assert_eq!(
                weight_after_epoch(threads, Some(group)).to_bits(),
                reference.to_bits(),
                "group {group}, {threads} spheres"
            );
        }
    }
    // The default group follows the sphere count, and so do the weights
    // (this is what a fixed group is for).
    assert_ne!(weight_after_epoch(2, None), weight_after_epoch(3, None));
}

#[test]
fn an_absurd_gradient_length_is_refused_before_anything_is_sized_from_it() {
    let mock = Arc::new(Mock {
        script: script(1),
        absurd_gradient: true,
        ..Mock::default()
    });
    let e = create_error(&mock, 2, true);
    assert!(
        matches!(e, Error::GradientTooLarge { buffer: 0, .. }),
        "{e}"
    );
    assert_eq!(mock.replicas_made.load(Ordering::SeqCst), 0);
}

#[test]
fn overlapping_gradient_buffers_are_refused_at_creation() {
    // Two replicas that list one buffer: the spheres would write it at once.
    let mock = Arc::new(Mock {
        script: script(1),
        shared_replica_gradient: vec![0.0; GRAD_LEN],
        ..Mock::default()
    });
    let e = create_error(&mock, 3, true);
    assert!(
        matches!(e, Error::BuffersOverlap { first: Some(a), second: Some(b) } if a != b),
        "{e}"
    );
    let made = mock.replicas_made.load(Ordering::SeqCst);
    assert_eq!(mock.replicas_freed.load(Ordering::SeqCst), made);
    // Each object lists its buffer twice (the master's twice: the reduction
    // would hold two `&mut` slices of it); whichever lies lowest in memory
    // is reported.
    let mock = Arc::new(Mock {
        script: script(1),
        gradient_listed_twice: true,
        ..Mock::default()
    });
    let e = create_error(&mock, 2, true);
    assert!(
        matches!(e, Error::BuffersOverlap { first, second } if first == second),
        "{e}"
    );
}

#[test]
fn a_non_finite_host_loss_is_counted_and_gives_a_non_finite_epoch_loss() {
    let mock = Arc::new(Mock {
        script: script(4),
        nan_loss_on_token: Some(2),
        ..Mock::default()
    });
    let (sys, master) = system(&mock, 2, false);
    let loss = sys.train_epoch().unwrap();
    assert!(loss.is_nan(), "{loss}");
    assert_eq!(sys.stats().nonfinite_losses, 1);
    drop(sys);
    drop(master);
}

#[test]
fn the_optimizer_step_hook_replaces_the_step_with_the_batch_or_group_loss() {
    for (replicas, expected) in [
        (false, vec![1.0f32, 0.5, 1.0 / 3.0, 0.25]),
        // Groups of two batches of equal weight: the mean of their losses.
        (
            true,
            vec![
                ((1.0f64 + 0.5) / 2.0) as f32,
                ((1.0f64 / 3.0) as f32 as f64 / 2.0 + 0.125) as f32,
            ],
        ),
    ] {
        let mock = Arc::new(Mock {
            script: script(4),
            ..Mock::default()
        });
        let master = Master::new();
        let mut o = ops(&mock);
        o.optimizer_step = Some(mock_hook);
        let request = Request {
            threads: 2,
            mode: Some(if replicas {
                Mode::Replicas
            } else {
                Mode::Serialized
            }),
            group: None,
            ops: Some(o),
        };
        let plan = settings::resolve(request, |_| None, None).unwrap();
        // SAFETY: as in `try_system_grouped`.
        let sys = unsafe {
            TrainingSystem::create(MockHost(mock.clone()), master.ptr(), any_iterator(), plan)
        }
        .unwrap();
        sys.train_epoch().unwrap();
        assert_eq!(*mock.hook_losses.lock(), expected, "replicas={replicas}");
        assert!(master.weight() != 1.0, "the hook stepped");
        drop(sys);
    }
}
