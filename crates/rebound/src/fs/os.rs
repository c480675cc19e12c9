//! [`OsFs`]: the real filesystem, through `openat`-style calls relative to directory
//! handles, never following a symbolic link below a replica root.
//!
//! Each replica root is opened once per [`OsFs`] (one run of a command), at its first
//! use, and every later access goes through that handle: a root renamed and replaced
//! by a link (or a mount placed over it) while a run is under way does not move the
//! run's remaining writes elsewhere.

use std::collections::HashMap;
use std::ffi::CStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;

use super::journal::Journal;
use super::{full, full_dir, Cursor, DirEntry, DirId, Fs, Kind, Meta, OpenAt, Perm, WriteFile};
use crate::error::{Error, Result};
use crate::manifest::Owner;
use crate::relpath::RelPath;

/// The source of the mount in `mountinfo` (proc(5)) whose mount point is the
/// longest prefix of `path` (canonical): the last such line wins, as the kernel
/// stacks mounts in that order.
fn mount_source_in(mountinfo: &str, path: &Path) -> Option<String> {
    let mut best: Option<(usize, String)> = None;
    for line in mountinfo.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let (Some(point), Some(dash)) = (fields.get(4), fields.iter().position(|f| *f == "-"))
        else {
            continue;
        };
        let Some(source) = fields.get(dash + 2) else {
            continue;
        };
        let point = PathBuf::from(unescape_octal(point));
        if !path.starts_with(&point) {
            continue;
        }
        let depth = point.components().count();
        if best.as_ref().is_none_or(|(d, _)| depth >= *d) {
            best = Some((depth, unescape_octal(source)));
        }
    }
    best.map(|(_, s)| s)
}

/// mountinfo writes space, tab, newline and backslash as `\NNN` (octal).
fn unescape_octal(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let oct = b
            .get(i + 1..i + 4)
            .filter(|o| o.iter().all(|c| (b'0'..=b'7').contains(c)));
        let v = oct.and_then(|o| {
            let v = o.iter().fold(0u32, |a, c| a * 8 + u32::from(c - b'0'));
            u8::try_from(v).ok()
        });
        match (b[i], v) {
            (b'\\', Some(v)) => {
                out.push(v);
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The operating system's filesystem.
#[derive(Debug, Default)]
pub struct OsFs {
    /// Every root opened so far, by its configured path: opened once, used for the
    /// life of this value (a root that does not exist yet is not remembered).
    roots: Mutex<HashMap<PathBuf, Arc<OwnedFd>>>,
    /// The change journal, once a directory is watched ([`Fs::watch_dir`]).
    journal: Mutex<Journal>,
    /// Files opened for reading, for [`OsFs::keep_journal`].
    reads: AtomicU64,
    #[cfg(feature = "fault-injection")]
    fault: fault::Fault,
}

impl OsFs {
    /// A handle on the real filesystem. Use one per run: it keeps every replica root
    /// it opens open until it is dropped.
    pub fn new() -> OsFs {
        OsFs::default()
    }

    /// The root's directory handle, opened at its first use and kept. `None` if the
    /// root does not exist.
    fn root(&self, root: &Path) -> Result<Option<Arc<OwnedFd>>> {
        let mut roots = self.roots.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(fd) = roots.get(root) {
            return Ok(Some(Arc::clone(fd)));
        }
        match open_root(root) {
            Ok(fd) => {
                let fd = Arc::new(fd);
                roots.insert(root.to_path_buf(), Arc::clone(&fd));
                Ok(Some(fd))
            }
            Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Opens the directory `dir` below `root`, component by component, refusing links.
    /// `Ok(None)` if some component (or the root) does not exist.
    fn open_dir(&self, root: &Path, dir: Option<&RelPath>) -> Result<Option<OwnedFd>> {
        match self.root(root)? {
            None => Ok(None),
            Some(fd) => open_below(root, &fd, dir),
        }
    }

    /// Opens the parent of `rel`, failing with `NotFound` if it is missing.
    fn open_parent(&self, root: &Path, rel: &RelPath, op: &'static str) -> Result<OwnedFd> {
        let parent = rel.parent();
        self.open_dir(root, parent.as_ref())?.ok_or_else(|| {
            Error::io(
                op,
                full(root, rel),
                io::Error::new(io::ErrorKind::NotFound, "parent directory does not exist"),
            )
        })
    }

    /// Notes in the change journal that this run itself changes `rel`.
    fn own(&self, root: &Path, rel: &RelPath) {
        self.journal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .own(root, rel);
    }

    /// Drains the change journal now and then while files are read (a boot's hashing
    /// is its longest phase), so that the kernel's event queue does not overflow
    /// before the first guard reads it. Never waits for another thread's drain.
    fn keep_journal(&self) {
        if self.reads.fetch_add(1, Ordering::Relaxed) % 32 == 0 {
            if let Ok(mut j) = self.journal.try_lock() {
                j.drain();
            }
        }
    }

    /// Called before every operation that changes the filesystem.
    fn mutation(&self) {
        #[cfg(feature = "fault-injection")]
        self.fault.mutation();
    }
}

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

fn errno_to_io(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e.raw_os_error())
}

fn open_root(root: &Path) -> Result<OwnedFd> {
    // The configured root itself may be reached through links (e.g. /usr -> /mnt/usr):
    // it is the administrator's choice. Only below it are links refused.
    rustix::fs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::io("open directory", root, errno_to_io(e)))
}

/// Opens `dir` below an open root directory, component by component, refusing links
/// (`dir: None`: a new handle on the root itself).
fn open_below(root: &Path, base: &OwnedFd, dir: Option<&RelPath>) -> Result<Option<OwnedFd>> {
    let Some(dir) = dir else {
        return base
            .try_clone()
            .map(Some)
            .map_err(|e| Error::io("open directory", root, e));
    };
    let mut fd: Option<OwnedFd> = None;
    let mut sofar = root.to_path_buf();
    for comp in dir.components() {
        sofar.push(comp);
        let at = fd.as_ref().unwrap_or(base);
        fd = Some(
            match rustix::fs::openat(at, comp, DIR_FLAGS, Mode::empty()) {
                Ok(f) => f,
                Err(Errno::NOENT) => return Ok(None),
                Err(Errno::LOOP) | Err(Errno::NOTDIR) => {
                    return Err(Error::Symlink { path: sofar })
                }
                Err(e) => return Err(Error::io("open directory", sofar, errno_to_io(e))),
            },
        );
    }
    Ok(fd)
}

fn kind_of(mode: u32) -> Kind {
    match rustix::fs::FileType::from_raw_mode(mode) {
        rustix::fs::FileType::RegularFile => Kind::File,
        rustix::fs::FileType::Directory => Kind::Dir,
        rustix::fs::FileType::Symlink => Kind::Symlink,
        _ => Kind::Other,
    }
}

fn meta_of(st: &rustix::fs::Stat) -> Meta {
    Meta {
        kind: kind_of(st.st_mode),
        size: u64::try_from(st.st_size).unwrap_or(0),
        mode: st.st_mode & 0o7777,
        uid: st.st_uid,
        gid: st.st_gid,
        mtime_ns: i128::from(st.st_mtime) * 1_000_000_000 + i128::from(st.st_mtime_nsec),
        ctime_ns: i128::from(st.st_ctime) * 1_000_000_000 + i128::from(st.st_ctime_nsec),
        ino: st.st_ino,
        dev: st.st_dev,
    }
}

struct OsWriter {
    file: File,
    path: std::path::PathBuf,
}

impl WriteFile for OsWriter {
    fn write_all(&mut self, buf: &[u8]) -> Result<()> {
        self.file
            .write_all(buf)
            .map_err(|e| Error::io("write", &self.path, e))
    }
    fn sync_all(&mut self) -> Result<()> {
        self.file
            .sync_all()
            .map_err(|e| Error::io("fsync", &self.path, e))
    }
    fn set_owner(&mut self, owner: Owner) -> Result<()> {
        fchown(&self.file, owner, &self.path)
    }
    fn set_mode(&mut self, mode: u32) -> Result<()> {
        rustix::fs::fchmod(&self.file, Mode::from_bits_truncate(mode & 0o7777))
            .map_err(|e| Error::io("chmod", &self.path, errno_to_io(e)))
    }
}

/// `fchown` to `owner` (never to id -1, which means "leave as it is").
fn fchown(fd: &impl AsFd, owner: Owner, path: &Path) -> Result<()> {
    if owner.uid == u32::MAX || owner.gid == u32::MAX {
        return Err(Error::io(
            "chown",
            path,
            io::Error::new(io::ErrorKind::InvalidInput, "invalid owner id"),
        ));
    }
    rustix::fs::fchown(
        fd,
        Some(rustix::fs::Uid::from_raw(owner.uid)),
        Some(rustix::fs::Gid::from_raw(owner.gid)),
    )
    .map_err(|e| Error::io("chown", path, errno_to_io(e)))
}

/// Opens the regular file `rel` for a metadata change: read-only, never following a
/// link, and refusing anything but a regular file (checked on the open handle).
fn open_for_meta(
    parent: &OwnedFd,
    root: &Path,
    rel: &RelPath,
    op: &'static str,
) -> Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
    let fd = match rustix::fs::openat(parent, rel.file_name(), flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::LOOP) => {
            return Err(Error::Symlink {
                path: full(root, rel),
            })
        }
        Err(e) => return Err(Error::io("open", full(root, rel), errno_to_io(e))),
    };
    let st =
        rustix::fs::fstat(&fd).map_err(|e| Error::io("stat", full(root, rel), errno_to_io(e)))?;
    if kind_of(st.st_mode) != Kind::File {
        return Err(Error::io(
            op,
            full(root, rel),
            io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"),
        ));
    }
    Ok(fd)
}

impl Fs for OsFs {
    fn metadata(&self, root: &Path, rel: &RelPath) -> Result<Option<Meta>> {
        let Some(parent) = self.open_dir(root, rel.parent().as_ref())? else {
            return Ok(None);
        };
        match rustix::fs::statat(&parent, rel.file_name(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(meta_of(&st))),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(Error::io("stat", full(root, rel), errno_to_io(e))),
        }
    }

    fn dir_metadata(&self, root: &Path, dir: Option<&RelPath>) -> Result<Option<Meta>> {
        match dir {
            Some(d) => self.metadata(root, d),
            // The root itself follows links, as `open_root` does (the administrator's
            // choice, e.g. /usrapp -> /mnt/system); below it nothing does. Asked of
            // the handle this run uses, not of the name.
            None => match self.root(root)? {
                None => Ok(None),
                Some(fd) => rustix::fs::fstat(&*fd)
                    .map(|st| Some(meta_of(&st)))
                    .map_err(|e| Error::io("stat", root, errno_to_io(e))),
            },
        }
    }

    fn read_dir(&self, root: &Path, dir: Option<&RelPath>) -> Result<Vec<DirEntry>> {
        let path = full_dir(root, dir);
        let fd = self.open_dir(root, dir)?.ok_or_else(|| {
            Error::io(
                "read directory",
                &path,
                io::Error::from(io::ErrorKind::NotFound),
            )
        })?;
        let mut d = rustix::fs::Dir::read_from(&fd)
            .map_err(|e| Error::io("read directory", &path, errno_to_io(e)))?;
        let mut out = Vec::new();
        for ent in d.by_ref() {
            let ent = ent.map_err(|e| Error::io("read directory", &path, errno_to_io(e)))?;
            let raw: &CStr = ent.file_name();
            let bytes = raw.to_bytes();
            if bytes == b"." || bytes == b".." {
                continue;
            }
            let kind = match ent.file_type() {
                rustix::fs::FileType::RegularFile => Kind::File,
                rustix::fs::FileType::Directory => Kind::Dir,
                rustix::fs::FileType::Symlink => Kind::Symlink,
                rustix::fs::FileType::Unknown => {
                    // Some filesystems do not fill d_type: ask lstat.
                    match rustix::fs::statat(&fd, raw, AtFlags::SYMLINK_NOFOLLOW) {
                        Ok(st) => kind_of(st.st_mode),
                        Err(_) => Kind::Other,
                    }
                }
                _ => Kind::Other,
            };
            out.push(DirEntry::new(bytes, kind));
        }
        Ok(out)
    }

    fn open_read(&self, root: &Path, rel: &RelPath) -> Result<Box<dyn Read + Send + '_>> {
        self.keep_journal();
        let parent = self.open_parent(root, rel, "open")?;
        open_file_at(&parent, root, rel)
    }

    fn open_read_damaged(&self, root: &Path, rel: &RelPath) -> Result<Box<dyn Read + Send + '_>> {
        self.keep_journal();
        let parent = self.open_parent(root, rel, "open")?;
        let (file, _, _) = open_plain_file_at(&parent, root, rel)?;
        Ok(Box::new(super::Tolerant::new(file)))
    }

    fn open_read_at(&self, root: &Path, rel: &RelPath) -> Result<OpenAt> {
        self.keep_journal();
        let parent = self.open_parent(root, rel, "open")?;
        open_file_at_shared(&parent, root, rel)
    }

    fn start_journal(&self) {
        *self.journal.lock().unwrap_or_else(|e| e.into_inner()) = Journal::started();
    }

    fn stop_journal(&self) {
        *self.journal.lock().unwrap_or_else(|e| e.into_inner()) = Journal::default();
    }

    fn watch_dir(&self, root: &Path, dir: Option<&RelPath>) {
        let mut journal = self.journal.lock().unwrap_or_else(|e| e.into_inner());
        if !journal.is_active() {
            return;
        }
        // Opened through the run's root handle, refusing links, as every read is.
        if let Ok(Some(fd)) = self.open_dir(root, dir) {
            journal.watch(root, dir, &fd, &full_dir(root, dir));
            drop(journal);
            #[cfg(feature = "fault-injection")]
            self.fault.watched();
        }
    }

    fn journal_blind(&self) -> bool {
        self.journal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .blind()
    }

    fn changed_by_others(&self, root: &Path, rel: &RelPath) -> Option<bool> {
        self.journal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .changed_by_others(root, rel)
    }

    /// `REBOUND_BOOT_ID` if set and not empty (a system without /proc, or a test that
    /// plays several boots), else `/proc/sys/kernel/random/boot_id`.
    fn boot_id(&self) -> Option<String> {
        let id = match std::env::var("REBOUND_BOOT_ID") {
            Ok(v) if !v.is_empty() => v,
            _ => {
                let mut s = String::new();
                File::open("/proc/sys/kernel/random/boot_id")
                    .ok()?
                    .take(128)
                    .read_to_string(&mut s)
                    .ok()?;
                s
            }
        };
        let id = id.trim();
        // One token of printable ASCII: it is written into a record line.
        (!id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic()))
            .then(|| id.to_string())
    }

    fn mount_source(&self, path: &Path) -> Option<String> {
        let path = std::fs::canonicalize(path).ok()?;
        let mut text = String::new();
        File::open("/proc/self/mountinfo")
            .ok()?
            .take(4 << 20)
            .read_to_string(&mut text)
            .ok()?;
        mount_source_in(&text, &path)
    }

    fn cursor<'a>(&'a self, root: &'a Path) -> Box<dyn Cursor + 'a> {
        Box::new(OsCursor {
            fs: self,
            root,
            root_fd: None,
            last: None,
        })
    }

    fn root_identity(&self, root: &Path) -> Result<Option<Vec<DirId>>> {
        let Some(fd) = self.root(root)? else {
            return Ok(None);
        };
        let id = |fd: &OwnedFd, at: &Path| {
            rustix::fs::fstat(fd)
                .map(|st| (st.st_dev, st.st_ino))
                .map_err(|e| Error::io("stat", at, errno_to_io(e)))
        };
        let mut out = vec![id(&fd, root)?];
        let mut cur = open_below(root, &fd, None)?.ok_or_else(|| {
            Error::io(
                "open directory",
                root,
                io::Error::from(io::ErrorKind::NotFound),
            )
        })?;
        let mut at = root.to_path_buf();
        // `..` of `/` is `/` itself: the walk ends there (bounded all the same).
        for _ in 0..4096 {
            at.push("..");
            let up = rustix::fs::openat(&cur, "..", DIR_FLAGS, Mode::empty())
                .map_err(|e| Error::io("open directory", &at, errno_to_io(e)))?;
            let up_id = id(&up, &at)?;
            if out.last() == Some(&up_id) {
                break;
            }
            out.push(up_id);
            cur = up;
        }
        Ok(Some(out))
    }

    fn create_new(&self, root: &Path, rel: &RelPath, mode: u32) -> Result<Box<dyn WriteFile + '_>> {
        self.mutation();
        self.own(root, rel);
        let parent = self.open_parent(root, rel, "create")?;
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(
            &parent,
            rel.file_name(),
            flags,
            Mode::from_bits_truncate(0o600),
        )
        .map_err(|e| Error::io("create", full(root, rel), errno_to_io(e)))?;
        // Exact bits, whatever the umask.
        rustix::fs::fchmod(&fd, Mode::from_bits_truncate(mode & 0o7777))
            .map_err(|e| Error::io("chmod", full(root, rel), errno_to_io(e)))?;
        Ok(Box::new(OsWriter {
            file: File::from(fd),
            path: full(root, rel),
        }))
    }

    fn set_owner(&self, root: &Path, rel: &RelPath, owner: Owner) -> Result<()> {
        self.mutation();
        let parent = self.open_parent(root, rel, "chown")?;
        let fd = open_for_meta(&parent, root, rel, "chown")?;
        fchown(&fd, owner, &full(root, rel))
    }

    fn set_mode(&self, root: &Path, rel: &RelPath, mode: u32) -> Result<()> {
        self.mutation();
        let parent = self.open_parent(root, rel, "chmod")?;
        let fd = open_for_meta(&parent, root, rel, "chmod")?;
        rustix::fs::fchmod(&fd, Mode::from_bits_truncate(mode & 0o7777))
            .map_err(|e| Error::io("chmod", full(root, rel), errno_to_io(e)))
    }

    fn rename(&self, root: &Path, from: &RelPath, to: &RelPath) -> Result<()> {
        self.mutation();
        self.own(root, from);
        self.own(root, to);
        let fp = self.open_parent(root, from, "rename")?;
        let tp = self.open_parent(root, to, "rename")?;
        rustix::fs::renameat(&fp, from.file_name(), &tp, to.file_name()).map_err(|e| {
            Error::io(
                "rename",
                format!(
                    "{} -> {}",
                    full(root, from).display(),
                    full(root, to).display()
                ),
                errno_to_io(e),
            )
        })
    }

    fn remove_file(&self, root: &Path, rel: &RelPath) -> Result<()> {
        self.mutation();
        self.own(root, rel);
        let parent = self.open_parent(root, rel, "remove")?;
        rustix::fs::unlinkat(&parent, rel.file_name(), AtFlags::empty())
            .map_err(|e| Error::io("remove", full(root, rel), errno_to_io(e)))
    }

    fn create_dir(&self, root: &Path, rel: &RelPath) -> Result<()> {
        self.mutation();
        self.own(root, rel);
        let parent = self.open_parent(root, rel, "create directory")?;
        rustix::fs::mkdirat(&parent, rel.file_name(), Mode::from_bits_truncate(0o755))
            .map_err(|e| Error::io("create directory", full(root, rel), errno_to_io(e)))
    }

    fn create_root(&self, root: &Path) -> Result<()> {
        self.mutation();
        rustix::fs::mkdir(root, Mode::from_bits_truncate(0o755))
            .map_err(|e| Error::io("create directory", root, errno_to_io(e)))?;
        if let Some(parent) = root.parent() {
            let fd = rustix::fs::open(
                parent,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| Error::io("open directory", parent, errno_to_io(e)))?;
            self.sync_fd(&fd, "fsync directory", parent)?;
        }
        Ok(())
    }

    fn sync_dir(&self, root: &Path, dir: Option<&RelPath>) -> Result<()> {
        let path = full_dir(root, dir);
        let fd = self.open_dir(root, dir)?.ok_or_else(|| {
            Error::io(
                "fsync directory",
                &path,
                io::Error::from(io::ErrorKind::NotFound),
            )
        })?;
        self.sync_fd(&fd, "fsync directory", &path)
    }

    fn sync_file(&self, root: &Path, rel: &RelPath) -> Result<()> {
        let parent = self.open_parent(root, rel, "fsync")?;
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
        let fd = match rustix::fs::openat(&parent, rel.file_name(), flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::LOOP) => {
                return Err(Error::Symlink {
                    path: full(root, rel),
                })
            }
            Err(e) => return Err(Error::io("open", full(root, rel), errno_to_io(e))),
        };
        self.sync_fd(&fd, "fsync", &full(root, rel))
    }
}

/// Opens the regular file `rel` in its already open parent directory, refusing links
/// and anything but a regular file (a FIFO would block, a device is not data).
fn open_file_at(
    parent: &OwnedFd,
    root: &Path,
    rel: &RelPath,
) -> Result<Box<dyn Read + Send + 'static>> {
    open_file_perm_at(parent, root, rel).map(|(r, _)| r)
}

/// As [`open_file_at`], also giving the permission bits and owner from its `fstat`.
fn open_file_perm_at(
    parent: &OwnedFd,
    root: &Path,
    rel: &RelPath,
) -> Result<(Box<dyn Read + Send + 'static>, Perm)> {
    open_plain_file_at(parent, root, rel).map(|(f, p, _)| (Box::new(f) as Box<dyn Read + Send>, p))
}

/// As [`open_file_perm_at`], one handle for positioned reads shared by threads.
fn open_file_at_shared(parent: &OwnedFd, root: &Path, rel: &RelPath) -> Result<OpenAt> {
    let (file, perm, size) = open_plain_file_at(parent, root, rel)?;
    Ok(OpenAt {
        file: Arc::new(file),
        size,
        perm,
    })
}

/// As [`open_file_perm_at`], the file itself (seekable), and its size from the same
/// `fstat`.
fn open_plain_file_at(parent: &OwnedFd, root: &Path, rel: &RelPath) -> Result<(File, Perm, u64)> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
    let fd = match rustix::fs::openat(parent, rel.file_name(), flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::LOOP) => {
            return Err(Error::Symlink {
                path: full(root, rel),
            })
        }
        Err(e) => return Err(Error::io("open", full(root, rel), errno_to_io(e))),
    };
    // Refuse anything but a regular file (a FIFO would block, a device is not data).
    let st =
        rustix::fs::fstat(&fd).map_err(|e| Error::io("stat", full(root, rel), errno_to_io(e)))?;
    if kind_of(st.st_mode) != Kind::File {
        return Err(Error::io(
            "open",
            full(root, rel),
            io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"),
        ));
    }
    let perm = Perm {
        mode: st.st_mode & 0o7777,
        owner: Owner {
            uid: st.st_uid,
            gid: st.st_gid,
        },
    };
    Ok((File::from(fd), perm, u64::try_from(st.st_size).unwrap_or(0)))
}

/// [`OsFs::cursor`]: keeps the root and the last directory used open. Files come in
/// path order, so consecutive files mostly share their directory, and each file then
/// costs one `openat` instead of one per path component plus the root.
struct OsCursor<'a> {
    fs: &'a OsFs,
    root: &'a Path,
    /// The root, once opened (`None` inside: it does not exist).
    root_fd: Option<Option<Arc<OwnedFd>>>,
    /// The last directory opened below the root (`None` inside: it does not exist).
    last: Option<(Option<RelPath>, Option<OwnedFd>)>,
}

impl OsCursor<'_> {
    /// The open parent directory of `rel`, `None` if some component is missing.
    fn parent(&mut self, rel: &RelPath) -> Result<Option<&OwnedFd>> {
        // Compared as text: no path is made for the parent of a file in the
        // directory already open (most files).
        let hit = matches!(&self.last, Some((d, _)) if d.as_ref().map(RelPath::as_str) == rel.parent_str());
        if !hit {
            let want = rel.parent();
            if self.root_fd.is_none() {
                self.root_fd = Some(self.fs.root(self.root)?);
            }
            let fd = match self.root_fd.as_ref().and_then(Option::as_ref) {
                None => None,
                Some(root_fd) => open_below(self.root, root_fd, want.as_ref())?,
            };
            self.last = Some((want, fd));
        }
        Ok(self.last.as_ref().and_then(|(_, fd)| fd.as_ref()))
    }
}

impl Cursor for OsCursor<'_> {
    fn metadata(&mut self, rel: &RelPath) -> Result<Option<Meta>> {
        let root = self.root;
        let Some(parent) = self.parent(rel)? else {
            return Ok(None);
        };
        match rustix::fs::statat(parent, rel.file_name(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(meta_of(&st))),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(Error::io("stat", full(root, rel), errno_to_io(e))),
        }
    }

    fn open_read(&mut self, rel: &RelPath) -> Result<Box<dyn Read + Send + '_>> {
        self.open_read_perm(rel).map(|(r, _)| r)
    }

    fn open_read_perm(&mut self, rel: &RelPath) -> Result<(Box<dyn Read + Send + '_>, Perm)> {
        let root = self.root;
        let parent = self.parent_to_open(rel)?;
        open_file_perm_at(parent, root, rel)
    }

    fn open_read_at(&mut self, rel: &RelPath) -> Result<OpenAt> {
        let root = self.root;
        let parent = self.parent_to_open(rel)?;
        open_file_at_shared(parent, root, rel)
    }
}

impl OsCursor<'_> {
    /// The open parent directory of a file about to be opened for reading (the
    /// journal kept up to date first); a missing parent is the file's `NotFound`.
    fn parent_to_open(&mut self, rel: &RelPath) -> Result<&OwnedFd> {
        self.fs.keep_journal();
        let root = self.root;
        self.parent(rel)?.ok_or_else(|| {
            Error::io(
                "open",
                full(root, rel),
                io::Error::new(io::ErrorKind::NotFound, "parent directory does not exist"),
            )
        })
    }
}

impl OsFs {
    fn sync_fd(&self, fd: &impl AsFd, op: &'static str, path: &Path) -> Result<()> {
        self.mutation();
        rustix::fs::fsync(fd).map_err(|e| Error::io(op, path, errno_to_io(e)))
    }
}

#[cfg(feature = "fault-injection")]
mod fault {
    //! Test-only: pause the process before its k-th filesystem mutation, so that a
    //! crash test can cut power (shutdown ioctl, sysrq) at an exact point.
    //! Set `REBOUND_FAULT_PAUSE_AT=k`; the process prints
    //! `rebound: fault-injection: paused before mutation k` on stderr and sleeps.
    //! With `REBOUND_FAULT_RESUME_FILE=PATH` it goes on once PATH exists (a test that
    //! changes a file while rebound is paused, then lets it continue).

    use std::sync::atomic::{AtomicU64, Ordering};

    #[derive(Debug, Default)]
    pub struct Fault {
        count: AtomicU64,
        watches: AtomicU64,
    }

    /// Sleeps until the resume file exists (or an hour without one).
    fn wait() {
        let resume = std::env::var_os("REBOUND_FAULT_RESUME_FILE");
        loop {
            match &resume {
                // Test-only: the test's own marker file, outside every root.
                Some(p) if std::path::Path::new(p).exists() => return,
                Some(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
                None => std::thread::sleep(std::time::Duration::from_secs(3600)),
            }
        }
    }

    /// Counts one more event in `counter`; if the variable `var` names that count,
    /// prints `what` with it and pauses (see [`wait`]).
    fn count_and_pause(counter: &AtomicU64, var: &str, what: &str) {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        let pause = std::env::var(var).ok().and_then(|v| v.parse::<u64>().ok());
        if pause == Some(n) {
            eprintln!("rebound: fault-injection: paused {what} {n}");
            wait();
        }
    }

    impl Fault {
        /// With `REBOUND_FAULT_PAUSE_AFTER_WATCH=k`: pause once the k-th directory is
        /// watched (a boot's change journal), before anything is hashed.
        pub fn watched(&self) {
            count_and_pause(
                &self.watches,
                "REBOUND_FAULT_PAUSE_AFTER_WATCH",
                "after watch",
            );
        }

        pub fn mutation(&self) {
            count_and_pause(&self.count, "REBOUND_FAULT_PAUSE_AT", "before mutation");
        }
    }
}

#[cfg(test)]
mod mountinfo_tests {
    use super::*;

    #[test]
    fn the_longest_mount_point_names_the_partition() {
        let info = "\
22 1 179:2 / / rw,relatime shared:1 - ext4 /dev/mmcblk0p2 rw
30 22 179:5 / /data rw,relatime shared:9 - ext4 /dev/mmcblk0p5 rw
31 30 0:40 / /data/my\\040dir rw - ubifs ubi0:data rw
32 22 0:41 / /datab rw - vfat /dev/sda1 rw
";
        let at = |p: &str| mount_source_in(info, Path::new(p));
        assert_eq!(at("/data/app").as_deref(), Some("/dev/mmcblk0p5"));
        assert_eq!(at("/data").as_deref(), Some("/dev/mmcblk0p5"));
        assert_eq!(at("/datab/x").as_deref(), Some("/dev/sda1"));
        assert_eq!(at("/data/my dir/x").as_deref(), Some("ubi0:data"));
        assert_eq!(at("/etc").as_deref(), Some("/dev/mmcblk0p2"));
        assert_eq!(mount_source_in("garbage\n\n", Path::new("/x")), None);
        assert_eq!(unescape_octal("a\\777b\\04"), "a\\777b\\04");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn rel(s: &str) -> RelPath {
        RelPath::new(s).unwrap()
    }

    #[test]
    fn set_mode_and_set_owner_change_the_file_and_never_follow_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let outside = tempfile::NamedTempFile::new().unwrap();
        std::fs::set_permissions(outside.path(), std::fs::Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("link")).unwrap();
        std::fs::write(root.join("f"), b"x").unwrap();
        let fs = OsFs::new();
        fs.set_mode(root, &rel("f"), 0o4751).unwrap();
        let me = std::fs::metadata(root.join("f")).unwrap();
        assert_eq!(me.mode() & 0o7777, 0o4751);
        // Chown to the owner it already has: allowed for anyone.
        let owner = Owner {
            uid: me.uid(),
            gid: me.gid(),
        };
        fs.set_owner(root, &rel("f"), owner).unwrap();
        assert!(matches!(
            fs.set_mode(root, &rel("link"), 0o777),
            Err(Error::Symlink { .. })
        ));
        assert!(matches!(
            fs.set_owner(root, &rel("link"), owner),
            Err(Error::Symlink { .. })
        ));
        let target = std::fs::metadata(outside.path()).unwrap();
        assert_eq!(target.mode() & 0o7777, 0o600, "a link was followed");
        // A directory is not a file: refused, named.
        std::fs::create_dir(root.join("d")).unwrap();
        let e = fs.set_mode(root, &rel("d"), 0o700).unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
        // -1 is "no change" to chown, never an owner.
        let e = fs
            .set_owner(
                root,
                &rel("f"),
                Owner {
                    uid: u32::MAX,
                    gid: 0,
                },
            )
            .unwrap_err()
            .to_string();
        assert!(e.contains("invalid owner"), "{e}");
    }
}
