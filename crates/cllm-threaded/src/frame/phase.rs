//! Named phases of a frame (physics, agents, stats...): registration,
//! recording and their timing statistics.

use super::cllm_frame;
use crate::error::FfiError;
use crate::guard::{ns, out_ptr, write_out};
use crate::status::cllm_status;
use crate::{text_out, with_handle};
use frame_guard::{PhaseId, PhaseStats};
use std::ffi::{c_char, c_int};

/// A buffer of this size holds every phase name and its NUL: names have 1 to
/// `CLLM_FRAME_PHASE_NAME_MAX - 1` bytes.
pub const CLLM_FRAME_PHASE_NAME_MAX: usize = 64;
/// The most phases one guard holds (each keeps a 15 KiB histogram); phase
/// ids run from 0 to `CLLM_FRAME_PHASE_MAX - 1`.
pub const CLLM_FRAME_PHASE_MAX: usize = 256;

/// Cumulative timing of one phase (`cllm_frame_phase_stats`). Times are 0
/// while `count` is 0.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct cllm_frame_phase_statistics {
    /// Runs recorded.
    pub count: u64,
    /// Sum of the runs, ns (exact).
    pub total_ns: u64,
    /// Median run, ns (within 1.6 %).
    pub p50_ns: u64,
    /// 99th-percentile run, ns (within 1.6 %).
    pub p99_ns: u64,
    /// Longest run, ns (exact).
    pub max_ns: u64,
}

/// Reads a phase name: not NULL, 1 to `CLLM_FRAME_PHASE_NAME_MAX - 1` bytes
/// of UTF-8. Reads at most `CLLM_FRAME_PHASE_NAME_MAX` bytes, so a runaway
/// string is refused without reading past that.
///
/// # Safety
/// `name` is NULL or a NUL-terminated string.
unsafe fn phase_name_arg(name: *const c_char) -> Result<String, FfiError> {
    if name.is_null() {
        return Err(FfiError::null("name"));
    }
    let mut len = 0;
    // SAFETY: a NUL-terminated string (caller's promise) is readable up to
    // and including its NUL, and the scan stops there.
    while len < CLLM_FRAME_PHASE_NAME_MAX && unsafe { *name.add(len) } != 0 {
        len += 1;
    }
    if len == 0 {
        return Err(FfiError::invalid("name is an empty string"));
    }
    if len == CLLM_FRAME_PHASE_NAME_MAX {
        return Err(FfiError::invalid(format!(
            "name is longer than {} bytes (CLLM_FRAME_PHASE_NAME_MAX {CLLM_FRAME_PHASE_NAME_MAX} with the NUL)",
            CLLM_FRAME_PHASE_NAME_MAX - 1
        )));
    }
    // SAFETY: the `len` bytes before the NUL were just read.
    let bytes = unsafe { std::slice::from_raw_parts(name.cast::<u8>(), len) };
    let text = std::str::from_utf8(bytes)
        .map_err(|e| FfiError::invalid(format!("name is not UTF-8: {e}")))?;
    Ok(text.to_owned())
}

impl cllm_frame {
    /// The phase numbered `phase`, or an error naming the valid range.
    fn phase(&self, phase: c_int) -> Result<PhaseId, FfiError> {
        usize::try_from(phase)
            .ok()
            .and_then(|i| self.guard.phase(i))
            .ok_or_else(|| {
                FfiError::invalid(format!(
                    "phase {phase} is not registered (this guard has {} phases, ids from 0)",
                    self.guard.phase_count()
                ))
            })
    }

    /// The figures of a phase this guard gave.
    fn phase_stat(&self, phase: PhaseId) -> PhaseStats {
        // Phases are never removed, so an id from `phase` stays valid.
        self.guard
            .phase_stat(phase)
            .expect("a phase id checked by this guard")
    }
}

/// Registers a named phase of the frame (physics, agents, stats...), or finds
/// the one already registered under `name`; `*out_phase` receives its id,
/// from 0 in registration order. Time it with `cllm_frame_record_phase`.
/// Errors: `CLLM_ERR_NULL` (frame, name, out_phase),
/// `CLLM_ERR_INVALID_ARGUMENT` (`name` empty, not UTF-8, or of
/// `CLLM_FRAME_PHASE_NAME_MAX` bytes or more), `CLLM_ERR_FULL` (a new name
/// when the guard already has `CLLM_FRAME_PHASE_MAX` phases).
///
/// # Safety
/// `frame` is NULL or a live guard; `name` is NULL or a NUL-terminated
/// string (copied); `out_phase` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_frame_add_phase(
    frame: *mut cllm_frame,
    name: *const c_char,
    out_phase: *mut c_int,
) -> cllm_status {
    with_handle!(frame, |f| {
        // SAFETY: the caller passes NULL or a NUL-terminated string.
        let name = unsafe { phase_name_arg(name) }?;
        let out_phase = out_ptr(out_phase, "out_phase")?;
        let Some(id) = f.guard.add_phase_within(&name, CLLM_FRAME_PHASE_MAX) else {
            return Err(FfiError::new(
                cllm_status::CLLM_ERR_FULL,
                format!(
                    "cannot add phase \"{name}\": the guard already has CLLM_FRAME_PHASE_MAX ({CLLM_FRAME_PHASE_MAX}) phases"
                ),
            ));
        };
        let id = c_int::try_from(id.index()).expect("phase ids stay under CLLM_FRAME_PHASE_MAX");
        // SAFETY: `out_phase` was checked and is writable.
        unsafe { write_out(out_phase, id) };
        Ok(())
    })
}

/// Records one run of `phase` that took `duration_ns` (measured by the
/// caller). Any thread may record. Errors: `CLLM_ERR_NULL` (frame),
/// `CLLM_ERR_INVALID_ARGUMENT` (`phase` not an id from
/// `cllm_frame_add_phase` on this guard; `duration_ns` over 1e18). Nothing
/// is recorded on error.
///
/// # Safety
/// `frame` is NULL or a live guard.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_frame_record_phase(
    frame: *mut cllm_frame,
    phase: c_int,
    duration_ns: u64,
) -> cllm_status {
    with_handle!(frame, |f| {
        let phase = f.phase(phase)?;
        let duration = super::duration_ns("duration_ns", duration_ns)?;
        f.guard.record_phase(phase, duration);
        Ok(())
    })
}

/// Writes the number of phases registered to `*out_count`; their ids are 0
/// to `*out_count - 1`. Errors: `CLLM_ERR_NULL` (frame, out_count).
///
/// # Safety
/// `frame` is NULL or a live guard; `out_count` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_frame_phase_count(
    frame: *const cllm_frame,
    out_count: *mut c_int,
) -> cllm_status {
    with_handle!(frame, |f| {
        let out_count = out_ptr(out_count, "out_count")?;
        let count = c_int::try_from(f.guard.phase_count())
            .expect("phase counts stay under CLLM_FRAME_PHASE_MAX");
        // SAFETY: `out_count` was checked and is writable.
        unsafe { write_out(out_count, count) };
        Ok(())
    })
}

/// Writes the cumulative timing of `phase` to `*out`. Errors:
/// `CLLM_ERR_NULL` (frame, out), `CLLM_ERR_INVALID_ARGUMENT` (`phase` not
/// registered).
///
/// # Safety
/// `frame` is NULL or a live guard; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_frame_phase_stats(
    frame: *const cllm_frame,
    phase: c_int,
    out: *mut cllm_frame_phase_statistics,
) -> cllm_status {
    with_handle!(frame, |f| {
        let out = out_ptr(out, "out")?;
        let s = f.phase_stat(f.phase(phase)?);
        let stats = cllm_frame_phase_statistics {
            count: s.count,
            total_ns: ns(s.total),
            p50_ns: ns(s.p50),
            p99_ns: ns(s.p99),
            max_ns: ns(s.max),
        };
        // SAFETY: `out` was checked and is writable.
        unsafe { write_out(out, stats) };
        Ok(())
    })
}

/// Copies the name of `phase` into the caller's buffer (the text shape of
/// docs/c-api.md: on success the name and a NUL, `*out_len` = its length;
/// `CLLM_ERR_BUFFER_TOO_SMALL` with the length needed in `*out_len` and
/// nothing written if `buf_len` is not more than it). A buffer of
/// `CLLM_FRAME_PHASE_NAME_MAX` bytes always suffices. Errors also:
/// `CLLM_ERR_NULL` (frame, out_len; buf with buf_len > 0),
/// `CLLM_ERR_INVALID_ARGUMENT` (`phase` not registered).
///
/// # Safety
/// `frame` is NULL or a live guard; `buf` is NULL or writable for `buf_len`
/// bytes; `out_len` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_frame_phase_name(
    frame: *const cllm_frame,
    phase: c_int,
    buf: *mut c_char,
    buf_len: usize,
    out_len: *mut usize,
) -> cllm_status {
    with_handle!(frame, |f| {
        let out = text_out!(buf, buf_len, out_len)?;
        out.write(&f.phase_stat(f.phase(phase)?).name)
    })
}

#[cfg(test)]
mod tests {
    use super::super::{cllm_frame_create, cllm_frame_free, cllm_frame_options_default};
    use super::*;
    use crate::error::last_error_message;

    fn manual_frame() -> *mut cllm_frame {
        let options = super::super::cllm_frame_options {
            manual_clock: true,
            ..cllm_frame_options_default()
        };
        let mut frame = std::ptr::null_mut();
        // SAFETY: valid options and out pointer.
        let status = unsafe { cllm_frame_create(&options, &mut frame) };
        assert_eq!(status, cllm_status::CLLM_OK);
        frame
    }

    fn add_phase(frame: *mut cllm_frame, name: &std::ffi::CStr) -> Result<c_int, cllm_status> {
        let mut id = -1;
        // SAFETY: a live guard, a NUL-terminated name, a writable out pointer.
        match unsafe { cllm_frame_add_phase(frame, name.as_ptr(), &mut id) } {
            cllm_status::CLLM_OK => Ok(id),
            status => Err(status),
        }
    }

    #[test]
    fn phase_names_are_checked_without_reading_past_the_limit() {
        let frame = manual_frame();
        assert_eq!(
            add_phase(frame, c""),
            Err(cllm_status::CLLM_ERR_INVALID_ARGUMENT)
        );
        assert_eq!(last_error_message(), "name is an empty string");
        let longest = std::ffi::CString::new("p".repeat(CLLM_FRAME_PHASE_NAME_MAX - 1)).unwrap();
        assert_eq!(add_phase(frame, &longest), Ok(0));
        let too_long = std::ffi::CString::new("p".repeat(CLLM_FRAME_PHASE_NAME_MAX)).unwrap();
        assert_eq!(
            add_phase(frame, &too_long),
            Err(cllm_status::CLLM_ERR_INVALID_ARGUMENT)
        );
        assert!(last_error_message().contains("longer than 63 bytes"));
        assert_eq!(
            add_phase(frame, c"caf\xe9"),
            Err(cllm_status::CLLM_ERR_INVALID_ARGUMENT)
        );
        assert!(last_error_message().contains("not UTF-8"));
        // SAFETY: a live guard, freed once.
        unsafe { cllm_frame_free(frame) };
    }

    #[test]
    fn phases_stop_at_the_cap_but_known_names_are_still_found() {
        let frame = manual_frame();
        for i in 0..CLLM_FRAME_PHASE_MAX {
            let name = std::ffi::CString::new(format!("phase {i}")).unwrap();
            assert_eq!(add_phase(frame, &name), Ok(i as c_int));
        }
        assert_eq!(
            add_phase(frame, c"one more"),
            Err(cllm_status::CLLM_ERR_FULL)
        );
        assert!(last_error_message().contains("CLLM_FRAME_PHASE_MAX"));
        assert_eq!(add_phase(frame, c"phase 7"), Ok(7));
        // SAFETY: a live guard, freed once.
        unsafe { cllm_frame_free(frame) };
    }

    #[test]
    fn a_recorded_phase_comes_back_and_an_unknown_id_is_refused() {
        let frame = manual_frame();
        let physics = add_phase(frame, c"physics").unwrap();
        // SAFETY: a live guard.
        let status = unsafe { cllm_frame_record_phase(frame, physics + 1, 1_000_000) };
        assert_eq!(status, cllm_status::CLLM_ERR_INVALID_ARGUMENT);
        assert_eq!(
            last_error_message(),
            "phase 1 is not registered (this guard has 1 phases, ids from 0)"
        );
        for ns in [2_000_000, 4_500_000] {
            // SAFETY: a live guard.
            let status = unsafe { cllm_frame_record_phase(frame, physics, ns) };
            assert_eq!(status, cllm_status::CLLM_OK);
        }
        let mut out = std::mem::MaybeUninit::uninit();
        // SAFETY: a live guard, a writable out pointer.
        let status = unsafe { cllm_frame_phase_stats(frame, physics, out.as_mut_ptr()) };
        assert_eq!(status, cllm_status::CLLM_OK);
        // SAFETY: written on success.
        let out = unsafe { out.assume_init() };
        assert_eq!(
            (out.count, out.total_ns, out.max_ns),
            (2, 6_500_000, 4_500_000)
        );
        // The name through the text shape: exact fit, one short, size query.
        let mut buf = [0 as c_char; 8];
        let mut len = 0;
        // SAFETY: a live guard, buffers of the sizes given.
        let status =
            unsafe { cllm_frame_phase_name(frame, physics, buf.as_mut_ptr(), 8, &mut len) };
        assert_eq!((status, len), (cllm_status::CLLM_OK, 7));
        // SAFETY: as above.
        let status =
            unsafe { cllm_frame_phase_name(frame, physics, buf.as_mut_ptr(), 7, &mut len) };
        assert_eq!((status, len), (cllm_status::CLLM_ERR_BUFFER_TOO_SMALL, 7));
        // SAFETY: a NULL buffer of length 0 is a size query.
        let status =
            unsafe { cllm_frame_phase_name(frame, physics, std::ptr::null_mut(), 0, &mut len) };
        assert_eq!((status, len), (cllm_status::CLLM_ERR_BUFFER_TOO_SMALL, 7));
        // SAFETY: a live guard, freed once.
        unsafe { cllm_frame_free(frame) };
    }
}
