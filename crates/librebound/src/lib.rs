//! librebound: rebound's engine behind a C ABI (`include/rebound.h`), for applications
//! that write protected files. Every function is in [`ffi`] (the only module with
//! `unsafe` code: it turns C pointers into Rust values); what each call does is here,
//! in safe Rust, and each returns one of the command line's exit statuses
//! (`rebound_core::exit`).
//!
//! Rules every call keeps (README.md, "From an application"):
//! - no panic crosses the C boundary: each call runs under `catch_unwind`, and a panic
//!   is status 2 with its message in `rebound_last_error()` (the library must be built
//!   with a profile that unwinds: `--profile release-lib`);
//! - writers (`boot`, `commit`, `write`) take the same locks as the command line
//!   (`rebound_core::lock`), waiting up to the handle's wait (default 60 s);
//! - a handle is immutable except for its wait (an atomic), so one handle may be used
//!   from several threads at once: each call locks for itself.

mod ffi;

use std::cell::RefCell;
use std::ffi::CString;
use std::fmt::Write as _;
use std::io::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rebound_core::lock::{self, Locks};
use rebound_core::{describe_action, escape, exit, Config, Engine, Error, OsFs, Report, SetConfig};

/// How long a writer waits for another run's lock unless `rebound_set_wait` says
/// otherwise: the command line's default (`--wait`).
const DEFAULT_WAIT_SECS: u64 = 60;

/// The most findings or failures `rebound_last_error()` lists one by one.
const MAX_LISTED: usize = 20;

/// An open configuration: what `rebound_open` returns (`rebound *` in C).
#[derive(Debug)]
pub struct Rebound {
    config: Config,
    wait_secs: AtomicU64,
}

/// What a call ends with: a status, and the text `rebound_last_error()` then gives
/// (empty for status 0).
type Done = std::result::Result<(u8, String), String>;

thread_local! {
    /// This thread's last error text, NUL-terminated for C.
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Sets this thread's last error text (a NUL in it would end the C string early: it
/// is shown as `\0`).
fn set_last_error(text: &str) {
    let c = CString::new(text.replace('\0', "\\0")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = c);
}

/// Calls `f` with this thread's last error text (valid while `f` runs).
fn with_last_error<R>(f: impl FnOnce(&CString) -> R) -> R {
    LAST_ERROR.with(|e| f(&e.borrow()))
}

/// Runs one C call: clears the last error, catches a panic, and turns the outcome into
/// a status and the last error text.
fn guard(f: impl FnOnce() -> Done) -> u8 {
    set_last_error("");
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok((code, text))) => {
            set_last_error(&text);
            code
        }
        Ok(Err(text)) => {
            set_last_error(&text);
            exit::ERROR
        }
        Err(payload) => {
            set_last_error(&panic_text(payload.as_ref()));
            exit::ERROR
        }
    }
}

/// Like [`guard`], for a call whose result is a value (`None`: failed, text set).
fn guard_value<T>(f: impl FnOnce() -> std::result::Result<T, String>) -> Option<T> {
    set_last_error("");
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Some(v),
        Ok(Err(text)) => {
            set_last_error(&text);
            None
        }
        Err(payload) => {
            set_last_error(&panic_text(payload.as_ref()));
            None
        }
    }
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_string());
    format!("internal error in librebound (a bug: please report it): panic: {what}; nothing more was done by this call")
}

/// The configuration file when the caller names none: `$REBOUND_CONFIG` if set, else
/// the default, as for the command line.
fn default_config_path() -> std::result::Result<PathBuf, String> {
    match std::env::var_os("REBOUND_CONFIG") {
        Some(v) if v.is_empty() => Err(
            "REBOUND_CONFIG is set but empty; unset it or pass the configuration file to rebound_open".into(),
        ),
        Some(v) => Ok(PathBuf::from(v)),
        None => Ok(PathBuf::from(rebound_core::DEFAULT_CONFIG)),
    }
}

/// A path as the command line takes it: a relative one is relative to the current
/// directory.
fn absolute(path: &Path) -> std::result::Result<PathBuf, String> {
    if path.is_absolute() {
        return Ok(path.to_path_buf());
    }
    let cwd = std::env::current_dir()
        .map_err(|e| format!("{}: the current directory: {e}", path.display()))?;
    Ok(cwd.join(path))
}

impl Rebound {
    /// `rebound_open`: loads and checks a configuration file (`None`: as the command
    /// line finds it).
    pub fn open(config: Option<&Path>) -> std::result::Result<Rebound, String> {
        let path = match config {
            Some(p) => p.to_path_buf(),
            None => default_config_path()?,
        };
        let config = Config::load(&path).map_err(|e| e.to_string())?;
        Ok(Rebound {
            config,
            wait_secs: AtomicU64::new(DEFAULT_WAIT_SECS),
        })
    }

    pub fn set_wait(&self, secs: u64) {
        self.wait_secs.store(secs, Ordering::Relaxed);
    }

    /// The writer's locks on every replica root of `sets` (as the command line takes
    /// them), waiting up to the handle's wait.
    fn lock(&self, sets: &[&SetConfig]) -> std::result::Result<Locks, String> {
        let wait = Duration::from_secs(self.wait_secs.load(Ordering::Relaxed));
        lock::lock_roots(&lock::roots(sets), wait, &mut |_, _| {}).map_err(|e| match e {
            Error::Locked { .. } => format!("{e}; rebound_set_wait() sets how long to wait"),
            e => e.to_string(),
        })
    }

    fn names(set: Option<&str>) -> Vec<String> {
        set.map(|s| vec![s.to_string()]).unwrap_or_default()
    }

    /// `rebound_boot`: verifies and repairs `set` (`None`: every set).
    pub fn boot(&self, set: Option<&str>) -> Done {
        let names = Self::names(set);
        let sets = self.config.select(&names).map_err(|e| e.to_string())?;
        let locks = self.lock(&sets)?;
        let fs = OsFs::new();
        let report = Engine::new(&fs)
            .boot(&self.config, &names, false)
            .map_err(|e| e.to_string())?;
        drop(locks);
        Ok(summary(&report))
    }

    /// `rebound_verify`: checks `set` (`None`: every set), writes nothing, takes no
    /// lock.
    pub fn verify(&self, set: Option<&str>) -> Done {
        let names = Self::names(set);
        let fs = OsFs::new();
        let report = Engine::new(&fs)
            .verify(&self.config, &names)
            .map_err(|e| e.to_string())?;
        Ok(summary(&report))
    }

    /// `rebound_commit`: records the content `path` has now.
    pub fn commit(&self, path: &Path) -> Done {
        let path = absolute(path)?;
        let set = self.set_of(&path)?;
        let locks = self.lock(&[set])?;
        let fs = OsFs::new();
        let report = Engine::new(&fs)
            .commit(&self.config, &[path], false)
            .map_err(|e| e.to_string())?;
        drop(locks);
        Ok(summary(&report))
    }

    /// `rebound_write`: replaces `path` with `data` and commits it as one change
    /// (`rebound write`), keeping the recorded mode (a new file gets 0644).
    pub fn write(&self, path: &Path, data: &[u8]) -> Done {
        let path = absolute(path)?;
        let set = self.set_of(&path)?;
        // Spooled before any lock is taken, as the command line does.
        let spool = Spool::new(data)?;
        let locks = self.lock(&[set])?;
        let fs = OsFs::new();
        let report = Engine::new(&fs)
            .write(&self.config, &path, &spool.path, None, false)
            .map_err(|e| e.to_string())?;
        drop(locks);
        Ok(summary(&report))
    }

    /// `rebound_status_json`: what `rebound status --json` prints.
    pub fn status_json(&self) -> std::result::Result<String, String> {
        let fs = OsFs::new();
        let st = Engine::new(&fs)
            .status(&self.config, &[])
            .map_err(|e| e.to_string())?;
        serde_json::to_string_pretty(&st).map_err(|e| format!("status as JSON: {e}"))
    }

    fn set_of(&self, path: &Path) -> std::result::Result<&SetConfig, String> {
        let (si, _, _) = self.config.locate(path).map_err(|e| e.to_string())?;
        self.config.sets.get(si).ok_or_else(|| {
            format!(
                "{}: no set protects this path (see {})",
                path.display(),
                self.config.path.display()
            )
        })
    }
}

/// The new content of a `rebound_write`, in a private temporary directory (removed
/// when dropped).
struct Spool {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Spool {
    fn new(data: &[u8]) -> std::result::Result<Spool, String> {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let dir = tempfile::Builder::new()
            .prefix("rebound-write.")
            .tempdir()
            .map_err(|e| format!("a temporary directory for the new content: {e} (set TMPDIR to a writable directory)"))?;
        let path = dir.path().join("content");
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)?;
            f.write_all(data)?;
            // Set after the write: the umask does not narrow it. The mode a new
            // protected file gets; an existing one keeps its recorded mode.
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))
        };
        write().map_err(|e| format!("{}: writing the new content: {e}", path.display()))?;
        Ok(Spool { _dir: dir, path })
    }
}

/// A report's status and, unless it is 0, what `rebound_last_error()` says about it:
/// each set's error, failed actions, files with no intact copy, and damage found.
fn summary(report: &Report) -> (u8, String) {
    let code = report.exit_code();
    if code == exit::OK {
        return (code, String::new());
    }
    let mut out = Vec::new();
    for s in &report.sets {
        if let Some(e) = &s.error {
            out.push(format!("set {}: {e}", s.set));
        }
        for o in &s.outcomes {
            if let Some(e) = &o.error {
                out.push(format!(
                    "set {}: failed: {}: {e}",
                    s.set,
                    describe_action(&o.action)
                ));
            }
        }
        let Some(p) = &s.plan else { continue };
        if !p.lost.is_empty() {
            let lost: Vec<String> = p.lost.iter().map(|r| r.to_string()).collect();
            out.push(format!(
                "set {}: no intact copy left of {} (left as they are)",
                s.set,
                lost.join(", ")
            ));
        }
        if code == exit::DAMAGE {
            for f in &p.findings {
                out.push(format!(
                    "set {}: {}: {}",
                    s.set,
                    f.root.join(f.path.as_str()).display(),
                    f.problem.as_str().replace('_', " ")
                ));
            }
        }
    }
    let n = out.len();
    let mut text = String::new();
    for line in out.iter().take(MAX_LISTED) {
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(&escape(line));
    }
    if n > MAX_LISTED {
        let _ = write!(
            text,
            "\n... and {} more (rebound status, rebound verify)",
            n - MAX_LISTED
        );
    }
    if text.is_empty() {
        text = format!("status {code}");
    }
    (code, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_sync_send<T: Sync + Send>() {}

    #[test]
    fn handle_is_sync_and_send() {
        assert_sync_send::<Rebound>();
    }

    #[test]
    #[allow(clippy::panic)]
    fn a_panic_is_status_2_with_its_message() {
        let code = guard(|| panic!("boom {}", 42));
        assert_eq!(code, exit::ERROR);
        let text = with_last_error(|e| e.to_string_lossy().into_owned());
        assert!(text.contains("panic: boom 42"), "{text}");
        let v: Option<u8> = guard_value(|| panic!("static boom"));
        assert!(v.is_none());
        let text = with_last_error(|e| e.to_string_lossy().into_owned());
        assert!(text.contains("panic: static boom"), "{text}");
    }

    #[test]
    fn each_call_clears_the_last_error() {
        assert_eq!(guard(|| Err("bad".into())), exit::ERROR);
        assert_eq!(with_last_error(|e| e.to_string_lossy().into_owned()), "bad");
        assert_eq!(guard(|| Ok((0, String::new()))), exit::OK);
        assert_eq!(with_last_error(|e| e.as_bytes().len()), 0);
    }

    #[test]
    fn a_nul_in_an_error_does_not_cut_it() {
        set_last_error("a\0b");
        assert_eq!(
            with_last_error(|e| e.to_string_lossy().into_owned()),
            "a\\0b"
        );
    }

    #[test]
    fn open_names_the_bad_file() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| unreachable!("{e}"));
        let p = dir.path().join("missing.toml");
        let e = Rebound::open(Some(&p)).err().unwrap_or_default();
        assert!(e.contains("missing.toml"), "{e}");
    }
}
