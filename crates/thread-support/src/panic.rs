//! Panic capture: a body's panic becomes a value its crate maps into its own
//! error type (the engine's `Error::Panicked`, a role pool's
//! `TaskError::Panicked`, a C status at the FFI edge).

use std::panic::{AssertUnwindSafe, catch_unwind};

/// The text of a panic payload (`&str` or `String`, else a placeholder).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}

/// The text of a caught panic, consuming its payload. The payload is
/// dropped here, under `catch_unwind`, because its own destructor may panic
/// too (`std::panic::panic_any` of such a value); that second payload is
/// leaked. Dropped anywhere else, the second panic would unwind out of the
/// code that caught the first: out of a worker's loop (the thread ends and
/// whoever waits for it hangs) or across an FFI boundary (an abort).
pub fn take_panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    let message = panic_message(payload.as_ref());
    if let Err(second) = catch_unwind(AssertUnwindSafe(move || drop(payload))) {
        std::mem::forget(second);
    }
    message
}

/// Why a fallible body did not finish: its own error, or a panic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure<E> {
    /// The body returned `Err`.
    Failed(E),
    /// The body panicked; the panic's text.
    Panicked(String),
}

/// Runs `body`, turning a panic into [`Failure::Panicked`] and its error into
/// [`Failure::Failed`]. The body's state is not used after a panic by any
/// caller in the workspace (each stops the work it belonged to), hence
/// `AssertUnwindSafe`.
pub fn catch<R, E>(body: impl FnOnce() -> Result<R, E>) -> Result<R, Failure<E>> {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(Failure::Failed(e)),
        Err(payload) => Err(Failure::Panicked(take_panic_message(payload))),
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn messages_of_str_string_and_other_payloads() {
        assert_eq!(panic_message(&"static text"), "static text");
        assert_eq!(panic_message(&String::from("owned")), "owned");
        assert_eq!(panic_message(&42u32), "panic with a non-string payload");
    }

    #[test]
    fn catch_separates_values_errors_and_panics() {
        assert_eq!(catch(|| Ok::<_, i32>(5)), Ok(5));
        assert_eq!(catch(|| Err::<(), _>(-3)), Err(Failure::Failed(-3)));
        let caught = catch(|| -> Result<(), i32> { panic!("boom {}", 7) });
        assert_eq!(caught, Err(Failure::Panicked("boom 7".to_owned())));
    }

    /// A payload whose destructor panics.
    struct PanicsOnDrop;
    impl Drop for PanicsOnDrop {
        fn drop(&mut self) {
            panic!("the payload's destructor");
        }
    }

    #[test]
    fn catch_survives_a_payload_that_panics_when_dropped() {
        let caught = catch(|| -> Result<(), i32> { std::panic::panic_any(PanicsOnDrop) });
        assert_eq!(
            caught,
            Err(Failure::Panicked(
                "panic with a non-string payload".to_owned()
            ))
        );
    }
}
