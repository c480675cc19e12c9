//! Keeps two writing runs (`boot`, `commit`, `update`, `seal`) off the same replica
//! roots at the same time, whichever configuration file, program or library call
//! started them: an `flock` on each root directory itself (opened read-only, so no lock
//! file is created anywhere and a read-only golden mount can be locked too).
//!
//! This module talks to the operating system directly, not through [`crate::fs::Fs`]:
//! a lock is not stored data, has nothing to make durable and nothing for the crash
//! simulator to model (a power cut or a killed process drops it, which is exactly what
//! `flock` does). It lives in the library, not in the CLI, so that every program that
//! embeds the engine (the planned C library) takes the same locks in the same order.
//!
//! The rules (docs/design.md §5.5):
//! - an existing root is locked exclusively, and its parent directory shared;
//! - a missing root (one a boot will create) is represented by its parent, locked
//!   exclusively: a run that creates a root therefore excludes every run that would
//!   lock that root once it exists (they all hold its parent shared);
//! - every lock object is taken once, in the order of its (device, inode), so two runs
//!   never deadlock; a busy lock is polled (`LOCK_NB`) until a deadline;
//! - once all are held the roots are looked at again: one created or replaced in the
//!   meantime means planning again.
//!
//! Readers (`verify`, `status`, `boot --dry-run`) take no lock: every write is a rename
//! of a complete file, so they see each file old or new, never torn. [`busy`] lets them
//! say that a writer is running.

use std::fmt;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::fs::{FlockOperation, Mode, OFlags};
use rustix::io::Errno;

use crate::config::SetConfig;
use crate::error::{Error, Result};

/// How often a busy lock is tried again.
const POLL: Duration = Duration::from_millis(50);
/// Plans that a root changing under them may cost before giving up.
const REPLANS: usize = 8;

/// The process holding a lock, as far as `/proc/locks` tells.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Holder {
    /// `None` when no process could be matched (no `/proc`, another pid namespace).
    pub pid: Option<u32>,
    /// Its command line (or name), when readable.
    pub command: Option<String>,
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.pid, &self.command) {
            (Some(p), Some(c)) => write!(f, "pid {p} ({})", crate::escape::escape(c)),
            (Some(p), None) => write!(f, "pid {p} (its command is not readable)"),
            (None, _) => f.write_str("another process (its pid is not visible here)"),
        }
    }
}

/// Locks held until dropped (or until the process ends, however it ends).
#[derive(Debug)]
pub struct Locks {
    _held: Vec<OwnedFd>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Strength {
    Shared,
    Exclusive,
}

/// One directory to lock.
#[derive(Debug)]
struct Target {
    /// (st_dev, st_ino): the lock object's identity and the global lock order.
    id: (u64, u64),
    strength: Strength,
    /// What a message names: a root, or the parent standing for a missing root.
    what: PathBuf,
    fd: OwnedFd,
}

/// A root's identity as planned: checked again once every lock is held.
type Seen = Option<(u64, u64)>;

/// Every replica root of `sets`, golden ones included, in configuration order: what a
/// writer of those sets passes to [`lock_roots`] and a reader to [`busy`].
pub fn roots<'c>(sets: &[&'c SetConfig]) -> Vec<&'c Path> {
    sets.iter()
        .flat_map(|s| s.replicas.iter().map(|r| r.root.as_path()))
        .collect()
}

/// Takes the writer's locks on `roots` (every replica root of the sets a run may
/// write, golden ones included), waiting up to `wait` for runs that hold them. The
/// first time a lock is busy, `on_wait` is told which directory and who holds it.
///
/// # Errors
/// [`Error::Locked`] when `wait` passed with a lock still held by another run;
/// [`Error::Io`] when a root or its parent cannot be opened or locked.
pub fn lock_roots(
    roots: &[&Path],
    wait: Duration,
    on_wait: &mut dyn FnMut(&Path, &Holder),
) -> Result<Locks> {
    // `None`: a wait too long to represent, that is, no deadline.
    let deadline = Instant::now().checked_add(wait);
    let mut told: Vec<(u64, u64)> = Vec::new();
    let mut attempt = 0;
    loop {
        let (targets, seen) = plan(roots)?;
        for t in &targets {
            acquire(t, deadline, wait, &mut |what, h| {
                if !told.contains(&t.id) {
                    told.push(t.id);
                    on_wait(what, h);
                }
            })?;
        }
        let now: Vec<Seen> = roots.iter().map(|r| identity(r)).collect::<Result<_>>()?;
        if now == seen {
            return Ok(Locks {
                _held: targets.into_iter().map(|t| t.fd).collect(),
            });
        }
        // A root was created, removed or replaced between planning and locking (by
        // a run that has finished since, or by hand): plan again from what is there.
        drop(targets);
        attempt += 1;
        if attempt > REPLANS {
            let changed = roots
                .iter()
                .zip(&now)
                .zip(&seen)
                .find(|((_, n), s)| n != s)
                .map_or_else(|| roots.first().copied(), |((r, _), _)| Some(*r));
            return Err(Error::Usage(format!(
                "{}: this replica root keeps changing (created, removed or replaced) while rebound locks it; nothing was done (find what replaces it, then rerun)",
                changed.map_or_else(String::new, |r| r.display().to_string())
            )));
        }
    }
}

/// Who holds a writer's lock on any of `roots` right now, for a reader to say that
/// what it reports may change under it. Looks at `/proc/locks` only and takes no lock
/// itself, even for an instant (a writer trying its lock at that instant with
/// `--wait 0` would fail); without `/proc`, it finds nobody. Missing roots are skipped.
pub fn busy(roots: &[&Path]) -> Vec<(PathBuf, Holder)> {
    let Ok(text) = std::fs::read_to_string("/proc/locks") else {
        return Vec::new();
    };
    let locks = parse_locks(&text);
    let mut out = Vec::new();
    for r in roots {
        let Ok(st) = rustix::fs::stat(*r) else {
            continue;
        };
        let writers: Vec<&LockLine> = locks.iter().filter(|l| l.exclusive).collect();
        if let Some(pid) = find_pid(&writers, (st.st_dev, st.st_ino)) {
            out.push((r.to_path_buf(), describe(pid)));
        }
    }
    out
}

/// What to lock for `roots`, sorted in the global lock order, one target per object
/// (the strongest wanted); and each root's identity as seen now.
fn plan(roots: &[&Path]) -> Result<(Vec<Target>, Vec<Seen>)> {
    let mut targets = Vec::new();
    let mut seen = Vec::new();
    for &root in roots {
        let parent = root.parent().filter(|p| !p.as_os_str().is_empty());
        match open_dir(root) {
            Ok(fd) => {
                let id = ident(&fd, root)?;
                seen.push(Some(id));
                targets.push(Target {
                    id,
                    strength: Strength::Exclusive,
                    what: root.to_path_buf(),
                    fd,
                });
                // Shared: excludes only a run that is creating a sibling... or this
                // root, had it been missing when that run looked.
                if let Some(p) = parent {
                    if let Ok(fd) = open_dir(p) {
                        targets.push(Target {
                            id: ident(&fd, p)?,
                            strength: Strength::Shared,
                            what: p.to_path_buf(),
                            fd,
                        });
                    }
                }
            }
            Err(Errno::NOENT) => {
                seen.push(None);
                // IMPORTANT: the parent stands for the root a boot may create in it.
                // No parent, no creation (a missing parent is an unmounted partition,
                // and rebound never creates it), so nothing to lock.
                if let Some(p) = parent {
                    match open_dir(p) {
                        Ok(fd) => targets.push(Target {
                            id: ident(&fd, p)?,
                            strength: Strength::Exclusive,
                            what: p.to_path_buf(),
                            fd,
                        }),
                        Err(Errno::NOENT | Errno::NOTDIR) => {}
                        Err(e) => return Err(io_err("open for locking", p, e)),
                    }
                }
            }
            // Not a directory: the run itself reports it, and writes nothing there.
            Err(Errno::NOTDIR) => seen.push(None),
            Err(e) => return Err(io_err("open for locking", root, e)),
        }
    }
    // The strongest wanted strength of each object comes first, then dedup keeps it.
    targets.sort_by(|a, b| a.id.cmp(&b.id).then(b.strength.cmp(&a.strength)));
    targets.dedup_by(|later, first| later.id == first.id);
    Ok((targets, seen))
}

fn acquire(
    t: &Target,
    deadline: Option<Instant>,
    wait: Duration,
    on_wait: &mut dyn FnMut(&Path, &Holder),
) -> Result<()> {
    let op = match t.strength {
        Strength::Shared => FlockOperation::NonBlockingLockShared,
        Strength::Exclusive => FlockOperation::NonBlockingLockExclusive,
    };
    let mut first = true;
    loop {
        match rustix::fs::flock(&t.fd, op) {
            Ok(()) => return Ok(()),
            Err(Errno::INTR) => {}
            Err(Errno::WOULDBLOCK) => {
                let now = Instant::now();
                let left = deadline.map(|d| d.saturating_duration_since(now));
                if left == Some(Duration::ZERO) {
                    return Err(Error::Locked {
                        path: t.what.clone(),
                        holder: holder(t.id).to_string(),
                        waited_secs: wait.as_secs(),
                    });
                }
                if first {
                    on_wait(&t.what, &holder(t.id));
                    first = false;
                }
                std::thread::sleep(left.map_or(POLL, |l| l.min(POLL)));
            }
            Err(e) => return Err(io_err("lock", &t.what, e)),
        }
    }
}

fn open_dir(p: &Path) -> std::result::Result<OwnedFd, Errno> {
    // Links are followed: a configured root may be a link to its mount point.
    rustix::fs::open(
        p,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

fn ident(fd: &OwnedFd, p: &Path) -> Result<(u64, u64)> {
    let st = rustix::fs::fstat(fd).map_err(|e| io_err("stat", p, e))?;
    Ok((st.st_dev, st.st_ino))
}

/// A root's identity now (`None`: not a directory there).
fn identity(root: &Path) -> Result<Seen> {
    match rustix::fs::stat(root) {
        Ok(st)
            if rustix::fs::FileType::from_raw_mode(st.st_mode)
                == rustix::fs::FileType::Directory =>
        {
            Ok(Some((st.st_dev, st.st_ino)))
        }
        Ok(_) | Err(Errno::NOENT | Errno::NOTDIR) => Ok(None),
        Err(e) => Err(io_err("stat", root, e)),
    }
}

fn io_err(op: &'static str, p: &Path, e: Errno) -> Error {
    Error::io(op, p, std::io::Error::from_raw_os_error(e.raw_os_error()))
}

/// The process holding an `flock` on the object `id`, from `/proc/locks`.
fn holder(id: (u64, u64)) -> Holder {
    let Ok(text) = std::fs::read_to_string("/proc/locks") else {
        return Holder::default();
    };
    let locks = parse_locks(&text);
    find_pid(&locks.iter().collect::<Vec<_>>(), id).map_or_else(Holder::default, describe)
}

/// Among `locks`, a process other than this one locking the object `id`. The device
/// in `/proc/locks` is the superblock's, which can differ from `st_dev` (btrfs
/// subvolumes): an inode number locked by exactly one process is taken as a match then.
fn find_pid(locks: &[&LockLine], id: (u64, u64)) -> Option<u32> {
    let (major, minor) = (
        u64::from(rustix::fs::major(id.0)),
        u64::from(rustix::fs::minor(id.0)),
    );
    let own = std::process::id();
    let mut same_ino = Vec::new();
    for l in locks {
        if l.pid == own || l.ino != id.1 {
            continue;
        }
        if (l.major, l.minor) == (major, minor) {
            return Some(l.pid);
        }
        if !same_ino.contains(&l.pid) {
            same_ino.push(l.pid);
        }
    }
    match same_ino.as_slice() {
        [pid] => Some(*pid),
        _ => None,
    }
}

/// One granted `flock` of `/proc/locks`.
#[derive(Debug, PartialEq, Eq)]
struct LockLine {
    /// `WRITE` (`LOCK_EX`), as opposed to `READ` (`LOCK_SH`).
    exclusive: bool,
    pid: u32,
    major: u64,
    minor: u64,
    ino: u64,
}

/// The granted FLOCK lines of `/proc/locks`
/// (`1: FLOCK  ADVISORY  WRITE 1234 08:02:131 0 EOF`); waiters (`1: -> FLOCK ...`) and
/// other kinds of lock are skipped.
fn parse_locks(text: &str) -> Vec<LockLine> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.get(1) != Some(&"FLOCK") {
                return None;
            }
            let exclusive = f.get(3) == Some(&"WRITE");
            let pid = f.get(4)?.parse().ok()?;
            let mut dev = f.get(5)?.split(':');
            let major = u64::from_str_radix(dev.next()?, 16).ok()?;
            let minor = u64::from_str_radix(dev.next()?, 16).ok()?;
            let ino = dev.next()?.parse().ok()?;
            (pid != 0).then_some(LockLine {
                exclusive,
                pid,
                major,
                minor,
                ino,
            })
        })
        .collect()
}

fn describe(pid: u32) -> Holder {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
        .ok()
        .map(|b| {
            let words: Vec<String> = b
                .split(|&c| c == 0)
                .filter(|w| !w.is_empty())
                .map(|w| String::from_utf8_lossy(w).into_owned())
                .collect();
            words.join(" ")
        })
        .filter(|s| !s.is_empty());
    let command = cmdline.or_else(|| {
        std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .ok()
            .map(|s| s.trim_end().to_string())
            .filter(|s| !s.is_empty())
    });
    Holder {
        pid: Some(pid),
        command: command.map(|c| shorten(&c, 200)),
    }
}

fn shorten(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn proc_locks_lines_are_parsed_and_waiters_skipped() {
        let text = "1: FLOCK  ADVISORY  WRITE 4242 fd:01:131 0 EOF\n\
                    1: -> FLOCK  ADVISORY  WRITE 4343 fd:01:131 0 EOF\n\
                    2: POSIX  ADVISORY  WRITE 77 08:02:9 0 EOF\n\
                    3: FLOCK  ADVISORY  READ 0 08:02:10 0 EOF\n\
                    garbage\n";
        assert_eq!(
            parse_locks(text),
            vec![LockLine {
                exclusive: true,
                pid: 4242,
                major: 0xfd,
                minor: 1,
                ino: 131
            }]
        );
    }

    #[test]
    fn an_unknown_holder_says_so() {
        assert_eq!(
            Holder::default().to_string(),
            "another process (its pid is not visible here)"
        );
        let h = Holder {
            pid: Some(7),
            command: Some("evil\nresult: intact".into()),
        };
        assert_eq!(h.to_string(), "pid 7 (evil\\nresult: intact)");
    }

    #[test]
    fn a_lock_held_in_this_process_blocks_a_second_one_until_released() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("r");
        std::fs::create_dir(&root).unwrap();
        let first = lock_roots(&[&root], Duration::ZERO, &mut |_, _| {}).unwrap();
        // flock locks belong to the open file description: a second open conflicts.
        let mut told = 0;
        let e =
            lock_roots(&[&root], Duration::from_millis(120), &mut |_, _| told += 1).unwrap_err();
        assert!(matches!(e, Error::Locked { .. }), "{e}");
        assert_eq!(told, 1, "the wait is announced once");
        drop(first);
        lock_roots(&[&root], Duration::ZERO, &mut |_, _| {}).unwrap();
    }

    #[test]
    fn a_missing_root_is_locked_through_its_parent_which_excludes_users_of_siblings_only_then() {
        let d = tempfile::tempdir().unwrap();
        let missing = d.path().join("new");
        let sibling = d.path().join("old");
        std::fs::create_dir(&sibling).unwrap();
        let creator = lock_roots(&[&missing], Duration::ZERO, &mut |_, _| {}).unwrap();
        // The sibling's run needs the parent shared: it waits for the creator.
        assert!(lock_roots(&[&sibling], Duration::ZERO, &mut |_, _| {}).is_err());
        drop(creator);
        let a = lock_roots(&[&sibling], Duration::ZERO, &mut |_, _| {}).unwrap();
        // Two runs on different existing roots under one parent do not wait.
        let other = d.path().join("other");
        std::fs::create_dir(&other).unwrap();
        let b = lock_roots(&[&other], Duration::ZERO, &mut |_, _| {}).unwrap();
        drop((a, b));
    }

    #[test]
    fn the_same_root_named_twice_or_through_a_link_is_locked_once() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("r");
        std::fs::create_dir(&root).unwrap();
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&root, &link).unwrap();
        let l = lock_roots(&[&root, &link, &root], Duration::ZERO, &mut |_, _| {}).unwrap();
        // Locked once: a second lock would conflict with the first.
        drop(l);
        // This process's own locks are not "another writer".
        let _l = lock_roots(&[&link], Duration::ZERO, &mut |_, _| {}).unwrap();
        assert!(busy(&[&root]).is_empty());
    }
}
