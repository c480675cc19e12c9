//! The change journal of a boot: which protected files someone other than rebound
//! changed while the run went on (docs/design.md section 3.1).
//!
//! A file an application writes while a boot runs, before the boot has hashed it,
//! looks exactly like damage: its content differs from the manifest. Only the time of
//! the change tells them apart, and a device's clock cannot place a file's ctime (an
//! unset clock restarts from the same date at every power-on). So the boot asks the
//! kernel instead: before it hashes anything, it watches every directory it will walk
//! (inotify), and each later creation, write, removal or rename of a name there is
//! noted. Right before a restore or a removal, the journal is read: a target someone
//! changed since its directory was watched is left as it is.
//!
//! Best effort, and never the only check: a directory that cannot be watched (no
//! inotify, the watch limit reached), a lost event queue (overflow) or a name rebound
//! changed itself in this run make the journal answer "not known", and the content
//! re-check before the rename decides alone, as without a journal.

use std::collections::{HashMap, HashSet};
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};
use rustix::io::Errno;

use crate::relpath::RelPath;

/// What a watch reports: the names of a directory created, written, removed or
/// renamed, and the watched directory itself removed or moved. Attribute changes are
/// not content (an application's `chmod` during a boot is set back, as any mode that
/// differs from the manifest). `CLOSE_WRITE` is left out: an application that only
/// opens a damaged file for writing at every boot (and writes nothing) would make
/// every boot leave it. Writes through a shared mapping make no event at all.
const WATCHED: WatchFlags = WatchFlags::CREATE
    .union(WatchFlags::MODIFY)
    .union(WatchFlags::DELETE)
    .union(WatchFlags::MOVED_FROM)
    .union(WatchFlags::MOVED_TO)
    .union(WatchFlags::DELETE_SELF)
    .union(WatchFlags::MOVE_SELF)
    .union(WatchFlags::ONLYDIR)
    .union(WatchFlags::EXCL_UNLINK);

/// A directory below a root: `None` is the root itself.
type Dir = (PathBuf, Option<RelPath>);

/// One run's journal. Created by the first watch; dropped (with its watches) with the
/// [`super::os::OsFs`] that holds it.
#[derive(Debug, Default)]
pub struct Journal {
    /// Started by a boot ([`Journal::started`]); a journal not started watches
    /// nothing.
    active: bool,
    /// The inotify instance; `None` before the first watch or if it cannot be had.
    fd: Option<OwnedFd>,
    /// inotify could not be set up: nothing is known.
    unavailable: bool,
    /// Some directory asked for could not be watched (inotify unavailable, the watch
    /// limit reached, ...): for its files nothing is known.
    incomplete: bool,
    /// Watch descriptor -> the directories it watches (one directory reached under
    /// two root spellings has one descriptor and two keys).
    dirs: HashMap<i32, Vec<Dir>>,
    /// Watched directories that were removed or moved away since: what now stands at
    /// their path was not watched.
    gone: HashSet<Dir>,
    /// The directories watched.
    watched: HashSet<Dir>,
    /// Names changed since their directory was watched, by anyone.
    changed: HashSet<(PathBuf, RelPath)>,
    /// Names this process changed itself in this run.
    own: HashSet<(PathBuf, RelPath)>,
    /// Events were lost (the kernel's queue overflowed): nothing is known any more.
    lost: bool,
}

impl Journal {
    /// A journal that watches what it is asked to.
    pub fn started() -> Journal {
        Journal {
            active: true,
            ..Journal::default()
        }
    }

    /// Watches directory `dir` below `root`, open as `handle` (opened through the run's
    /// root handle, so no link is followed); `fallback` is its path, used if `/proc`
    /// is not mounted. A directory that cannot be watched is not.
    pub fn watch(&mut self, root: &Path, dir: Option<&RelPath>, handle: &OwnedFd, fallback: &Path) {
        let key = (root.to_path_buf(), dir.cloned());
        if !self.active || self.watched.contains(&key) {
            return;
        }
        if self.unavailable {
            self.incomplete = true;
            return;
        }
        if self.fd.is_none() {
            match inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK) {
                Ok(fd) => self.fd = Some(fd),
                Err(_) => {
                    self.unavailable = true;
                    self.incomplete = true;
                    return;
                }
            }
        }
        let Some(fd) = &self.fd else { return };
        // The open handle names the very directory the run reads, whatever happens to
        // its path; inotify takes a path, and /proc/self/fd/N resolves to the handle.
        let by_handle = PathBuf::from(format!("/proc/self/fd/{}", handle.as_raw_fd()));
        let wd = match inotify::add_watch(fd, &by_handle, WATCHED) {
            // No /proc: by its path, only if that is still the directory of the handle
            // (a component swapped for a link since would watch another directory).
            Err(Errno::NOENT) => match (rustix::fs::fstat(handle), rustix::fs::stat(fallback)) {
                (Ok(a), Ok(b)) if (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino) => {
                    inotify::add_watch(fd, fallback, WATCHED | WatchFlags::DONT_FOLLOW)
                }
                _ => Err(Errno::NOENT),
            },
            r => r,
        };
        match wd {
            Ok(wd) => {
                self.dirs.entry(wd).or_default().push(key.clone());
                self.watched.insert(key);
            }
            Err(_) => self.incomplete = true,
        }
    }

    /// Notes that this process itself changes `rel` (called before the change).
    pub fn own(&mut self, root: &Path, rel: &RelPath) {
        if self.fd.is_some() {
            self.own.insert((root.to_path_buf(), rel.clone()));
        }
    }

    /// `Some(true)` if someone else changed `rel` since its directory was watched, or
    /// replaced a directory above it (removed, moved, created one in its place: what
    /// stands there now was not watched; the root itself is not judged so, since the
    /// run goes on through its handle whatever its name); `Some(false)` if nobody did; `None` if that
    /// is not known.
    pub fn changed_by_others(&mut self, root: &Path, rel: &RelPath) -> Option<bool> {
        self.drain();
        let key = (root.to_path_buf(), rel.clone());
        let dir = (root.to_path_buf(), rel.parent());
        if self.lost || !self.watched.contains(&dir) || self.own.contains(&key) {
            return None;
        }
        let mut up = rel.parent();
        while let Some(d) = up {
            let here = (root.to_path_buf(), d.clone());
            if (self.changed.contains(&here) && !self.own.contains(&here))
                || self.gone.contains(&(root.to_path_buf(), Some(d.clone())))
            {
                return Some(true);
            }
            up = d.parent();
        }
        Some(self.changed.contains(&key))
    }

    /// Whether the journal knew nothing for part of the run: events were lost, or a
    /// directory could not be watched (no inotify, the watch limit reached). Then
    /// only the content re-check judged those files.
    pub fn blind(&self) -> bool {
        self.lost || self.incomplete
    }

    /// Whether a boot started this journal.
    pub fn is_active(&self) -> bool {
        self.active
    }

    /// Reads every pending event into `changed` (also called while a boot hashes, so
    /// that the kernel's queue does not overflow before the first guard).
    pub fn drain(&mut self) {
        let Some(fd) = &self.fd else { return };
        let mut buf = [MaybeUninit::<u8>::uninit(); 4096];
        let mut reader = inotify::Reader::new(fd, &mut buf);
        loop {
            let ev = match reader.next() {
                Ok(ev) => ev,
                Err(Errno::INTR) => continue,
                // WOULDBLOCK: nothing pending. Any other error: the events cannot be
                // read, so what they said is lost.
                Err(e) => {
                    if e != Errno::WOULDBLOCK {
                        self.lost = true;
                    }
                    return;
                }
            };
            if ev.events().contains(ReadFlags::QUEUE_OVERFLOW) {
                self.lost = true;
                continue;
            }
            let Some(keys) = self.dirs.get(&ev.wd()) else {
                continue;
            };
            if ev
                .events()
                .intersects(ReadFlags::DELETE_SELF | ReadFlags::MOVE_SELF)
            {
                self.gone.extend(keys.iter().cloned());
                continue;
            }
            let Some(name) = ev.file_name().and_then(|n| n.to_str().ok()) else {
                continue;
            };
            for (root, dir) in keys {
                let rel = match dir {
                    None => RelPath::new(name),
                    Some(d) => d.join(name),
                };
                if let Ok(rel) = rel {
                    self.changed.insert((root.clone(), rel));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(s: &str) -> RelPath {
        RelPath::new(s).unwrap()
    }

    fn open(p: &Path) -> OwnedFd {
        rustix::fs::open(
            p,
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY,
            rustix::fs::Mode::empty(),
        )
        .unwrap()
    }

    /// A journal watching `root` itself.
    fn watching(root: &Path) -> Journal {
        let mut j = Journal::started();
        j.watch(root, None, &open(root), root);
        j
    }

    #[test]
    fn changes_by_others_after_the_watch_are_noted_and_only_they() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("sub")).unwrap();
        for f in ["a", "b", "sub/c", "sub/d", "mine"] {
            std::fs::write(root.join(f), b"1").unwrap();
        }
        // Changed before the watch: not this run's business.
        std::fs::write(root.join("b"), b"2").unwrap();
        let mut j = Journal::started();
        assert_eq!(
            j.changed_by_others(root, &rel("a")),
            None,
            "nothing watched yet"
        );
        j.watch(root, None, &open(root), root);
        j.watch(
            root,
            Some(&rel("sub")),
            &open(&root.join("sub")),
            &root.join("sub"),
        );
        std::fs::write(root.join("a"), b"2").unwrap();
        std::fs::remove_file(root.join("sub/c")).unwrap();
        std::fs::write(root.join("sub/new"), b"n").unwrap();
        j.own(root, &rel("mine"));
        std::fs::write(root.join("mine"), b"2").unwrap();
        assert_eq!(j.changed_by_others(root, &rel("a")), Some(true));
        assert_eq!(j.changed_by_others(root, &rel("b")), Some(false));
        assert_eq!(j.changed_by_others(root, &rel("sub/c")), Some(true));
        assert_eq!(j.changed_by_others(root, &rel("sub/d")), Some(false));
        assert_eq!(j.changed_by_others(root, &rel("sub/new")), Some(true));
        assert_eq!(
            j.changed_by_others(root, &rel("mine")),
            None,
            "its own change"
        );
        assert_eq!(
            j.changed_by_others(root, &rel("other/x")),
            None,
            "a directory not watched"
        );
    }

    #[test]
    fn a_directory_replaced_after_the_watch_changes_everything_below_it() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for d in ["conf", "moved/deep", "kept"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        for f in ["conf/x", "moved/deep/y", "kept/z"] {
            std::fs::write(root.join(f), b"1").unwrap();
        }
        let mut j = watching(root);
        for d in ["conf", "moved", "moved/deep", "kept"] {
            j.watch(root, Some(&rel(d)), &open(&root.join(d)), &root.join(d));
        }
        // The application moves a directory away and writes a new one in its place.
        std::fs::rename(root.join("conf"), root.join("conf.old")).unwrap();
        std::fs::create_dir(root.join("conf")).unwrap();
        std::fs::write(root.join("conf/x"), b"2").unwrap();
        std::fs::rename(root.join("moved"), root.join("elsewhere")).unwrap();
        assert_eq!(j.changed_by_others(root, &rel("conf/x")), Some(true));
        assert_eq!(j.changed_by_others(root, &rel("moved/deep/y")), Some(true));
        assert_eq!(j.changed_by_others(root, &rel("kept/z")), Some(false));
    }

    #[test]
    fn one_directory_under_two_root_spellings_is_noted_under_both() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("data");
        std::fs::create_dir(&root).unwrap();
        let other = dir.path().join("link");
        std::os::unix::fs::symlink(&root, &other).unwrap();
        std::fs::write(root.join("a"), b"1").unwrap();
        let mut j = Journal::started();
        j.watch(&root, None, &open(&root), &root);
        j.watch(&other, None, &open(&other), &other);
        std::fs::write(root.join("a"), b"2").unwrap();
        assert_eq!(j.changed_by_others(&root, &rel("a")), Some(true));
        assert_eq!(j.changed_by_others(&other, &rel("a")), Some(true));
    }

    #[test]
    fn opening_for_writing_without_writing_is_no_change() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("db"), b"1").unwrap();
        let mut j = watching(root);
        drop(
            std::fs::OpenOptions::new()
                .write(true)
                .open(root.join("db"))
                .unwrap(),
        );
        assert_eq!(j.changed_by_others(root, &rel("db")), Some(false));
        assert!(!j.blind());
    }

    #[test]
    fn a_journal_not_started_watches_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("a"), b"1").unwrap();
        let mut j = Journal::default();
        j.watch(root, None, &open(root), root);
        std::fs::write(root.join("a"), b"2").unwrap();
        assert_eq!(j.changed_by_others(root, &rel("a")), None);
    }

    #[test]
    fn a_directory_that_cannot_be_watched_makes_the_journal_incomplete() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let mut j = watching(root);
        assert!(!j.blind());
        // A handle on something that is no directory cannot be watched (ONLYDIR).
        let file = rustix::fs::open(
            root.join("f").as_path(),
            rustix::fs::OFlags::CREATE | rustix::fs::OFlags::WRONLY,
            rustix::fs::Mode::from_bits_truncate(0o600),
        )
        .unwrap();
        j.watch(root, Some(&rel("f")), &file, &root.join("f"));
        assert!(j.blind(), "a watch that failed is reported");
    }

    #[test]
    fn an_atomic_replace_by_rename_is_a_change() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("cfg"), b"1").unwrap();
        let mut j = watching(root);
        std::fs::write(root.join("cfg.tmp"), b"2").unwrap();
        std::fs::rename(root.join("cfg.tmp"), root.join("cfg")).unwrap();
        assert_eq!(j.changed_by_others(root, &rel("cfg")), Some(true));
    }
}
