//! How a system is configured: the caller's arguments, the `CLLM_TRAINING_*`
//! environment variables, and the replica operations a host adapter
//! registered. An unmodified trainer (CLLM's `train_model`) only ever calls
//! `threaded_training_create(training, iterator, threads)`, so the
//! environment and the registered adapter are the only ways to give it
//! replica mode, another sphere count or a fixed group size.
//!
//! Precedence, highest first (docs/environment.md):
//! 1. `CLLM_TRAINING_SPHERES`, `CLLM_TRAINING_MODE`, `CLLM_TRAINING_GROUP_SIZE`
//!    (an empty value counts as unset);
//! 2. the arguments of the call (`num_threads`, `cllm_training_settings`,
//!    the `ops` of `threaded_training_create_with_replicas`);
//! 3. the replica operations registered by a linked host adapter;
//! 4. the defaults: cores - 1 spheres, replica mode if operations are known
//!    (2 or 3) else serialised, a group of one batch per sphere.
//!
//! A bad value is an error naming the variable and the value: nothing trains
//! with settings nobody asked for.

use crate::error::Error;
use crate::host::cllm_replica_ops;
use crate::replicas::ReplicaOps;
use parking_lot::Mutex;

/// Which way the spheres train (the two modes are described in
/// [`system`](crate::system)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// One training object, calls serialised in batch order.
    Serialized,
    /// One replica per batch of a group, reduced gradients, one step per
    /// group.
    Replicas,
}

/// The sphere count (overrides the trainer's `num_threads`).
pub const ENV_SPHERES: &str = "CLLM_TRAINING_SPHERES";
/// `serial` or `replica`.
pub const ENV_MODE: &str = "CLLM_TRAINING_MODE";
/// Batches per optimizer step in replica mode.
pub const ENV_GROUP: &str = "CLLM_TRAINING_GROUP_SIZE";

/// The largest group size: each batch of a group has its own replica.
pub const MAX_GROUP: usize = 4096;

/// What the caller asked for (before the environment is applied).
#[derive(Debug, Clone, Copy, Default)]
pub struct Request {
    /// Spheres; `<= 0`: cores - 1 (at least 1).
    pub threads: i64,
    /// `None`: replica mode if operations are known, else serialised.
    pub mode: Option<Mode>,
    /// Batches per optimizer step in replica mode; `None`: one per sphere.
    pub group: Option<usize>,
    /// The host's replica operations given in the call.
    pub ops: Option<cllm_replica_ops>,
}

/// The resolved configuration of a system.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Spheres (worker threads), at least 1.
    pub spheres: usize,
    /// The training mode.
    pub mode: Mode,
    /// Batches per optimizer step: the group size in replica mode, 1 in
    /// serialised mode.
    pub group: usize,
    /// The host's operations: replicas in replica mode; in both modes their
    /// optional `optimizer_step` replaces `cllm_optimizer_step_adam`.
    pub ops: Option<cllm_replica_ops>,
}

/// Operations registered by a host adapter, kept for every later creation.
struct Registered(Option<cllm_replica_ops>);

// SAFETY: the operations are plain function pointers and the host's `user`
// pointer, which the host promises usable from any thread (one call at a
// time per training object, which the system keeps).
unsafe impl Send for Registered {}

static REGISTERED: Mutex<Registered> = Mutex::new(Registered(None));

/// Registers (or, with `None`, forgets) the replica operations that every
/// later creation uses when its caller gives none.
pub fn register(ops: Option<cllm_replica_ops>) -> Result<(), Error> {
    if let Some(ops) = &ops {
        check_ops(ops)?;
    }
    REGISTERED.lock().0 = ops;
    Ok(())
}

/// The registered operations, if any.
pub fn registered() -> Option<cllm_replica_ops> {
    REGISTERED.lock().0
}

/// Refuses operations without one of the three required functions.
pub fn check_ops(ops: &cllm_replica_ops) -> Result<(), Error> {
    ReplicaOps::check(ops).map(|_| ())
}

/// The process environment, read at each creation (empty means unset).
pub fn process_env(name: &str) -> Option<String> {
    std::env::var_os(name)
        .map(|v| v.to_string_lossy().into_owned())
        .filter(|v| !v.is_empty())
}

fn bad_value(name: &'static str, value: &str, expected: String) -> Error {
    Error::BadEnvironment {
        name,
        value: value.to_owned(),
        expected,
    }
}

/// A whole number from 1 to `max`.
fn parse_count(name: &'static str, value: &str, max: usize) -> Result<usize, Error> {
    match value.parse::<usize>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(bad_value(
            name,
            value,
            format!("expected a whole number from 1 to {max}"),
        )),
    }
}

/// Applies the environment (`env`), the caller's request and the registered
/// operations, in that order of precedence.
pub fn resolve(
    request: Request,
    env: impl Fn(&str) -> Option<String>,
    registered: Option<cllm_replica_ops>,
) -> Result<Plan, Error> {
    let spheres = match env(ENV_SPHERES) {
        Some(v) => parse_count(ENV_SPHERES, &v, sphere_pool::MAX_SPHERES)?,
        None => sphere_pool::resolve_spheres(request.threads)?,
    };
    let ops = request.ops.or(registered);
    let env_mode = env(ENV_MODE);
    let mode = match env_mode.as_deref() {
        Some("serial") => Mode::Serialized,
        Some("replica") => Mode::Replicas,
        Some(other) => {
            return Err(bad_value(
                ENV_MODE,
                other,
                "expected \"serial\" or \"replica\"".to_owned(),
            ));
        }
        None => request.mode.unwrap_or(if ops.is_some() {
            Mode::Replicas
        } else {
            Mode::Serialized
        }),
    };
    if let Some(ops) = &ops {
        check_ops(ops)?;
    }
    if mode == Mode::Replicas && ops.is_none() {
        return Err(Error::ReplicaModeWithoutOps {
            variable: env_mode.is_some().then_some(ENV_MODE),
        });
    }
    let group = match (env(ENV_GROUP), request.group) {
        (Some(v), _) => Some((parse_count(ENV_GROUP, &v, MAX_GROUP)?, Some(ENV_GROUP))),
        (None, Some(group)) if !(1..=MAX_GROUP).contains(&group) => {
            return Err(Error::GroupOutOfRange {
                group,
                max: MAX_GROUP,
            });
        }
        (None, Some(g)) => Some((g, None)),
        (None, None) => None,
    };
    let group = match (mode, group) {
        (Mode::Replicas, Some((g, _))) => g,
        (Mode::Replicas, None) => spheres,
        (Mode::Serialized, None) => 1,
        // A group is a replica-mode setting; serialised mode steps per batch.
        (Mode::Serialized, Some((group, variable))) => {
            return Err(Error::GroupInSerialMode { group, variable });
        }
    };
    Ok(Plan {
        spheres,
        mode,
        group,
        ops,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::{CLLMTraining, cllm_float_span};
    use std::ffi::c_void;

    unsafe extern "C" fn create(_: *mut c_void, _: *mut CLLMTraining) -> *mut CLLMTraining {
        std::ptr::null_mut()
    }
    unsafe extern "C" fn free(_: *mut c_void, _: *mut CLLMTraining) {}
    unsafe extern "C" fn grads(
        _: *mut c_void,
        _: *mut CLLMTraining,
        _: *mut cllm_float_span,
        _: usize,
    ) -> usize {
        0
    }

    fn ops() -> cllm_replica_ops {
        cllm_replica_ops {
            user: std::ptr::null_mut(),
            create_replica: Some(create),
            free_replica: Some(free),
            gradient_buffers: Some(grads),
            optimizer_step: None,
        }
    }

    fn env(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    fn req(threads: i64) -> Request {
        Request {
            threads,
            ..Request::default()
        }
    }

    #[test]
    fn without_environment_the_call_and_the_adapter_decide() {
        let p = resolve(req(3), env(&[]), None).unwrap();
        assert_eq!((p.spheres, p.mode, p.group), (3, Mode::Serialized, 1));
        let p = resolve(req(3), env(&[]), Some(ops())).unwrap();
        assert_eq!((p.spheres, p.mode, p.group), (3, Mode::Replicas, 3));
        let r = Request {
            mode: Some(Mode::Serialized),
            ..req(2)
        };
        let p = resolve(r, env(&[]), Some(ops())).unwrap();
        assert_eq!(p.mode, Mode::Serialized);
        assert!(
            p.ops.is_some(),
            "the adapter's step hook stays in serialised mode"
        );
    }

    #[test]
    fn the_environment_overrides_the_call() {
        let e = env(&[(ENV_SPHERES, "1"), (ENV_MODE, "replica"), (ENV_GROUP, "4")]);
        let r = Request {
            group: Some(2),
            ..req(8)
        };
        let p = resolve(r, e, Some(ops())).unwrap();
        assert_eq!((p.spheres, p.mode, p.group), (1, Mode::Replicas, 4));
        let p = resolve(req(2), env(&[(ENV_MODE, "serial")]), Some(ops())).unwrap();
        assert_eq!((p.mode, p.group), (Mode::Serialized, 1));
    }

    #[test]
    fn bad_values_name_the_variable_and_the_value() {
        for (vars, needle) in [
            (&[(ENV_SPHERES, "0")][..], "CLLM_TRAINING_SPHERES=\"0\""),
            (&[(ENV_SPHERES, "two")][..], "CLLM_TRAINING_SPHERES=\"two\""),
            (
                &[(ENV_SPHERES, "5000")][..],
                "CLLM_TRAINING_SPHERES=\"5000\"",
            ),
            (&[(ENV_SPHERES, "-3")][..], "CLLM_TRAINING_SPHERES=\"-3\""),
            (&[(ENV_MODE, "fast")][..], "CLLM_TRAINING_MODE=\"fast\""),
            (&[(ENV_GROUP, "0")][..], "CLLM_TRAINING_GROUP_SIZE=\"0\""),
            (
                &[(ENV_GROUP, "4097")][..],
                "CLLM_TRAINING_GROUP_SIZE=\"4097\"",
            ),
        ] {
            let vars: &'static [(&str, &str)] = Box::leak(vars.to_vec().into_boxed_slice());
            let e = resolve(req(2), env(vars), Some(ops()))
                .unwrap_err()
                .to_string();
            assert!(e.contains(needle), "{e}");
        }
    }

    #[test]
    fn replica_mode_without_operations_and_a_group_in_serial_mode_are_refused() {
        let e = resolve(req(2), env(&[(ENV_MODE, "replica")]), None).unwrap_err();
        assert_eq!(
            e,
            Error::ReplicaModeWithoutOps {
                variable: Some(ENV_MODE)
            }
        );
        let e = resolve(req(2), env(&[(ENV_GROUP, "4")]), None).unwrap_err();
        assert_eq!(
            e,
            Error::GroupInSerialMode {
                group: 4,
                variable: Some(ENV_GROUP)
            }
        );
        let mut bad = ops();
        bad.gradient_buffers = None;
        let missing = Err(Error::MissingReplicaFunction);
        assert_eq!(resolve(req(2), env(&[]), Some(bad)).map(|_| ()), missing);
        assert_eq!(register(Some(bad)), missing);
    }
}
