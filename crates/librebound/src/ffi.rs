//! The C boundary: every exported function, and the only `unsafe` code of the crate.
//! Each function checks its pointers (NULL, UTF-8) and runs its work through
//! [`crate::guard`], which catches panics. cbindgen renders these doc comments into
//! `include/rebound.h`.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::Path;

use crate::{guard, guard_value, with_last_error, Rebound};

/// A string argument as Rust text: NULL, or bytes that are not UTF-8, are an error
/// naming the argument.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string that stays valid for `'a`.
unsafe fn text<'a>(p: *const c_char, what: &str) -> Result<&'a str, String> {
    if p.is_null() {
        return Err(format!(
            "{what} is NULL; pass a NUL-terminated UTF-8 string"
        ));
    }
    // SAFETY: not NULL (checked above); the caller promises a NUL-terminated string
    // valid for 'a.
    let c = unsafe { CStr::from_ptr(p) };
    c.to_str().map_err(|_| {
        format!(
            "{what} is not UTF-8 ({}); rebound protects only UTF-8 paths",
            c.to_string_lossy()
        )
    })
}

/// Like [`text`], but NULL is `None` (for "every set").
///
/// # Safety
/// As for [`text`].
unsafe fn optional_text<'a>(p: *const c_char, what: &str) -> Result<Option<&'a str>, String> {
    if p.is_null() {
        return Ok(None);
    }
    // SAFETY: the caller's promise, passed on.
    unsafe { text(p, what) }.map(Some)
}

/// The handle behind `rb`, or an error for NULL.
///
/// # Safety
/// `rb` is NULL or a handle from `rebound_open` not yet closed.
unsafe fn handle<'a>(rb: *const Rebound) -> Result<&'a Rebound, String> {
    // SAFETY: the caller promises a live handle or NULL; `as_ref` checks NULL.
    unsafe { rb.as_ref() }
        .ok_or_else(|| "the rebound handle is NULL (rebound_open failed?)".to_string())
}

/// Opens the configuration file `config_path` (NULL: `$REBOUND_CONFIG` if set, else
/// /etc/rebound.toml) and checks it.
///
/// Returns a handle for the other calls, to be freed with `rebound_close`, or NULL
/// with the reason (naming the file) in `rebound_last_error()`. A handle may be used
/// from several threads at once.
#[no_mangle]
pub unsafe extern "C" fn rebound_open(config_path: *const c_char) -> *mut Rebound {
    let rb = guard_value(|| {
        // SAFETY: the caller passes NULL or a NUL-terminated string.
        let path = unsafe { optional_text(config_path, "config_path") }?;
        Rebound::open(path.map(Path::new))
    });
    rb.map_or(std::ptr::null_mut(), |rb| Box::into_raw(Box::new(rb)))
}

/// Frees a handle from `rebound_open`. NULL is ignored. No call may use the handle
/// during or after this one.
#[no_mangle]
pub unsafe extern "C" fn rebound_close(rb: *mut Rebound) {
    if rb.is_null() {
        return;
    }
    // SAFETY: `rb` came from Box::into_raw in rebound_open and is freed only here, once
    // (the caller's promise).
    let rb = unsafe { Box::from_raw(rb) };
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(rb)));
}

/// Sets how long `rebound_boot`, `rebound_commit` and `rebound_write` wait for the lock
/// another rebound (the command line, another process or thread) holds on the same
/// replica roots, in seconds (default 60; 0: do not wait). Returns 0, or 2 if `rb` is
/// NULL.
#[no_mangle]
pub unsafe extern "C" fn rebound_set_wait(rb: *mut Rebound, seconds: u32) -> c_int {
    c_int::from(guard(|| {
        // SAFETY: the caller passes NULL or a live handle.
        let rb = unsafe { handle(rb) }?;
        rb.set_wait(u64::from(seconds));
        Ok((0, String::new()))
    }))
}

/// Replaces the protected file `path` with the `len` bytes at `data` and commits it,
/// as one change (`rebound write PATH`): after a power cut at any point the next boot
/// leaves the old committed content or the new one. The file keeps its recorded mode
/// (a new file gets 0644). A relative `path` is relative to the current directory.
/// `data` may be NULL only when `len` is 0.
///
/// Returns 0 done, 2 error (not protected, a golden path, lock still held, I/O),
/// 3 some file of the set has no intact copy; the reason is in `rebound_last_error()`.
#[no_mangle]
pub unsafe extern "C" fn rebound_write(
    rb: *mut Rebound,
    path: *const c_char,
    data: *const c_void,
    len: usize,
) -> c_int {
    c_int::from(guard(|| {
        // SAFETY: the caller passes NULL or a live handle.
        let rb = unsafe { handle(rb) }?;
        // SAFETY: the caller passes NULL or a NUL-terminated string.
        let path = unsafe { text(path, "path") }?;
        let bytes: &[u8] = if len == 0 {
            &[]
        } else if data.is_null() {
            return Err(format!("{path}: data is NULL but len is {len}"));
        } else {
            // SAFETY: not NULL, and the caller promises `len` readable bytes at `data`
            // that do not change during the call.
            unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) }
        };
        rb.write(Path::new(path), bytes)
    }))
}

/// Records the content the protected file `path` has now (after the application
/// changed it), as `rebound commit PATH` does. A relative `path` is relative to the
/// current directory.
///
/// Returns 0 done, 2 error, 3 some file of the set has no intact copy; the reason is
/// in `rebound_last_error()`.
#[no_mangle]
pub unsafe extern "C" fn rebound_commit(rb: *mut Rebound, path: *const c_char) -> c_int {
    c_int::from(guard(|| {
        // SAFETY: the caller passes NULL or a live handle.
        let rb = unsafe { handle(rb) }?;
        // SAFETY: the caller passes NULL or a NUL-terminated string.
        let path = unsafe { text(path, "path") }?;
        rb.commit(Path::new(path))
    }))
}

/// Verifies and repairs the set named `set` (NULL: every set), as `rebound boot` does.
///
/// Returns 0 every file intact (after repairs), 2 error, 3 some file has no intact
/// copy left (named in `rebound_last_error()`).
#[no_mangle]
pub unsafe extern "C" fn rebound_boot(rb: *mut Rebound, set: *const c_char) -> c_int {
    c_int::from(guard(|| {
        // SAFETY: the caller passes NULL or a live handle.
        let rb = unsafe { handle(rb) }?;
        // SAFETY: the caller passes NULL or a NUL-terminated string.
        let set = unsafe { optional_text(set, "set") }?;
        rb.boot(set)
    }))
}

/// Checks the set named `set` (NULL: every set) and writes nothing, as
/// `rebound verify` does; takes no lock.
///
/// Returns 0 intact, 1 damage found that a boot would repair (listed in
/// `rebound_last_error()`), 2 error, 3 some file has no intact copy left.
#[no_mangle]
pub unsafe extern "C" fn rebound_verify(rb: *mut Rebound, set: *const c_char) -> c_int {
    c_int::from(guard(|| {
        // SAFETY: the caller passes NULL or a live handle.
        let rb = unsafe { handle(rb) }?;
        // SAFETY: the caller passes NULL or a NUL-terminated string.
        let set = unsafe { optional_text(set, "set") }?;
        rb.verify(set)
    }))
}

/// The status of every set as JSON (what `rebound status --json` prints), or NULL with
/// the reason in `rebound_last_error()`. Free it with `rebound_free_string`.
#[no_mangle]
pub unsafe extern "C" fn rebound_status_json(rb: *mut Rebound) -> *mut c_char {
    guard_value(|| {
        // SAFETY: the caller passes NULL or a live handle.
        let rb = unsafe { handle(rb) }?;
        let json = rb.status_json()?;
        CString::new(json).map_err(|e| format!("status JSON holds a NUL byte: {e}"))
    })
    .map_or(std::ptr::null_mut(), CString::into_raw)
}

/// Frees a string returned by `rebound_status_json`. NULL is ignored.
#[no_mangle]
pub unsafe extern "C" fn rebound_free_string(s: *mut c_char) {
    if s.is_null() {
        return;
    }
    // SAFETY: `s` came from CString::into_raw in rebound_status_json and is freed only
    // here, once (the caller's promise).
    drop(unsafe { CString::from_raw(s) });
}

/// The calling thread's last error text: why its last call failed (or what it found),
/// "" after a call that returned 0. Never NULL. Valid until this thread's next call
/// into the library; copy it to keep it.
#[no_mangle]
pub extern "C" fn rebound_last_error() -> *const c_char {
    with_last_error(|e| e.as_ptr())
}

/// Test builds only (feature `test-panic`): panics inside the library, to check that a
/// panic becomes status 2 with its message in `rebound_last_error()`.
#[cfg(feature = "test-panic")]
#[no_mangle]
pub extern "C" fn rebound_test_panic() -> c_int {
    #[allow(clippy::panic)]
    c_int::from(guard(|| panic!("rebound_test_panic was called")))
}
