//! The narrow filesystem interface every byte of rebound's I/O goes through.
//!
//! All paths are a replica root (an absolute directory from the configuration) plus a
//! validated [`RelPath`]. Implementations must never follow a symbolic link below the
//! root: a link planted inside a protected tree makes the operation fail with
//! [`Error::Symlink`] instead of reaching outside. [`os::OsFs`] is the real one;
//! [`sim::SimFs`] simulates power cuts for the crash explorer.
//!
//! Method names follow `std` where they mean the same thing. Nothing here orders or
//! syncs writes on its own: that is the job of [`crate::durable`].

pub mod journal;
pub mod os;
pub mod sim;

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::manifest::Owner;
use crate::relpath::RelPath;

/// What kind of object a name refers to (never following links).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Other,
}

/// A directory's identity: `(device, inode)`.
pub type DirId = (u64, u64);

/// What `lstat` tells about an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub kind: Kind,
    pub size: u64,
    /// Permission bits (`0o7777`: setuid, setgid, sticky and rwx).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime_ns: i128,
    pub ctime_ns: i128,
    pub ino: u64,
    pub dev: u64,
}

/// One name in a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// The name; entries whose name is not UTF-8 are reported with `name: None`.
    pub name: Option<String>,
    /// The raw name escaped for messages, only when it is not UTF-8 (a UTF-8 name is
    /// shown as it is: [`DirEntry::display`]).
    escaped: String,
    pub kind: Kind,
}

impl DirEntry {
    /// The entry of raw name `bytes`.
    pub fn new(bytes: &[u8], kind: Kind) -> DirEntry {
        match std::str::from_utf8(bytes) {
            Ok(n) => DirEntry {
                name: Some(n.to_string()),
                escaped: String::new(),
                kind,
            },
            Err(_) => DirEntry {
                name: None,
                escaped: escape_name(bytes),
                kind,
            },
        }
    }

    /// The raw name for messages: as is if it is UTF-8, else with every invalid byte
    /// written `\xNN` ([`escape_name`]).
    pub fn display(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.escaped)
    }
}

/// A file open for writing, created new by [`Fs::create_new`].
pub trait WriteFile {
    /// Appends all of `buf`.
    ///
    /// # Errors
    /// The I/O error, with the file's path.
    fn write_all(&mut self, buf: &[u8]) -> Result<()>;
    /// Makes the file's data and metadata durable (`fsync`).
    ///
    /// # Errors
    /// The I/O error, with the file's path. After an error the data may be lost.
    fn sync_all(&mut self) -> Result<()>;
    /// Gives the file an owner (`fchown`). Linux clears the setuid and setgid bits
    /// on a chown, so [`WriteFile::set_mode`] comes after it.
    ///
    /// # Errors
    /// The I/O error, with the file's path (`EPERM` when not running as root).
    fn set_owner(&mut self, owner: Owner) -> Result<()>;
    /// Sets exactly the permission bits `mode` (`fchmod`, whatever the umask, and
    /// after the data: a write by a process without `CAP_FSETID` clears setuid).
    ///
    /// # Errors
    /// The I/O error, with the file's path.
    fn set_mode(&mut self, mode: u32) -> Result<()>;
}

impl Meta {
    /// The owner as `stat` gives it.
    pub fn owner(&self) -> Owner {
        Owner {
            uid: self.uid,
            gid: self.gid,
        }
    }
}

/// Reads many files below one root in a row (a directory walk, a hashing pass),
/// with the guarantees of the [`Fs`] methods of the same names: no link is followed
/// below the root. Implementations may keep directory handles open between calls, so
/// use a cursor only for reading, and only for as long as one pass lasts.
pub trait Cursor {
    /// As [`Fs::metadata`].
    ///
    /// # Errors
    /// As [`Fs::metadata`].
    fn metadata(&mut self, rel: &RelPath) -> Result<Option<Meta>>;

    /// As [`Fs::open_read`].
    ///
    /// # Errors
    /// As [`Fs::open_read`].
    fn open_read(&mut self, rel: &RelPath) -> Result<Box<dyn Read + Send + '_>>;

    /// As [`Cursor::open_read`], also giving the file's permission bits and owner as
    /// the open file saw them. The default asks [`Cursor::metadata`] first;
    /// [`os::OsFs`]'s cursor takes them from the `fstat` its open makes anyway, so a
    /// walk that hashes what it lists needs no `lstat` of its own.
    ///
    /// # Errors
    /// As [`Fs::open_read`].
    fn open_read_perm(&mut self, rel: &RelPath) -> Result<(Box<dyn Read + Send + '_>, Perm)> {
        let perm = self.metadata(rel)?.map_or(Perm::default(), |m| Perm {
            mode: m.mode,
            owner: m.owner(),
        });
        Ok((self.open_read(rel)?, perm))
    }

    /// As [`Fs::open_read_at`].
    ///
    /// # Errors
    /// As [`Fs::open_read_at`].
    fn open_read_at(&mut self, rel: &RelPath) -> Result<OpenAt>;
}

/// A file open for positioned reads (`pread`): several threads read pieces of it at
/// once through one shared handle, so that all of them read the same file even if its
/// name is replaced meanwhile (two opens could each find a different file).
pub trait ReadAt: Send + Sync {
    /// Reads up to `buf.len()` bytes starting `offset` bytes into the file, without
    /// moving any shared position; `Ok(0)` at (or past) the end of the file.
    ///
    /// # Errors
    /// The I/O error as it is (`Interrupted` included: the caller retries).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
}

impl ReadAt for std::fs::File {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        std::os::unix::fs::FileExt::read_at(self, buf, offset)
    }
}

/// A regular file opened once for positioned reads ([`Fs::open_read_at`]), with what
/// the `fstat` of that open said about it.
#[derive(Clone)]
pub struct OpenAt {
    pub file: Arc<dyn ReadAt>,
    /// The size at the open. A reader that splits the file reads exactly this many
    /// bytes and then checks that the file ends there (it may change meanwhile).
    pub size: u64,
    pub perm: Perm,
}

impl std::fmt::Debug for OpenAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAt")
            .field("size", &self.size)
            .field("perm", &self.perm)
            .finish_non_exhaustive()
    }
}

/// Permission bits and owner of a file, as an open saw them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Perm {
    pub mode: u32,
    pub owner: Owner,
}

/// The cursor of an [`Fs`] that keeps nothing open: each call is the `Fs` call.
struct PlainCursor<'a, F: ?Sized> {
    fs: &'a F,
    root: &'a Path,
}

impl<F: Fs + ?Sized> Cursor for PlainCursor<'_, F> {
    fn metadata(&mut self, rel: &RelPath) -> Result<Option<Meta>> {
        self.fs.metadata(self.root, rel)
    }
    fn open_read(&mut self, rel: &RelPath) -> Result<Box<dyn Read + Send + '_>> {
        self.fs.open_read(self.root, rel)
    }
    fn open_read_at(&mut self, rel: &RelPath) -> Result<OpenAt> {
        self.fs.open_read_at(self.root, rel)
    }
}

/// The unit [`Tolerant`] skips after a read error: a page.
pub const SECTOR: u64 = 4096;

/// A reader of a damaged copy ([`Fs::open_read_damaged`]): a read that fails with EIO
/// yields zeros from the current offset to the next [`SECTOR`] boundary instead, and
/// the reader seeks past them. Only EIO: any other error is returned as it is (a file
/// that vanished, a permission refused is not damage to work around).
#[derive(Debug)]
pub struct Tolerant<R> {
    inner: R,
    pos: u64,
    /// Bytes read as zeros because the storage refused them.
    pub unreadable: u64,
}

impl<R: Read + std::io::Seek> Tolerant<R> {
    pub fn new(inner: R) -> Tolerant<R> {
        Tolerant {
            inner,
            pos: 0,
            unreadable: 0,
        }
    }
}

/// EIO.
const EIO: i32 = 5;

impl<R: Read + std::io::Seek> Read for Tolerant<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            match self.inner.read(buf) {
                Ok(n) => {
                    self.pos += n as u64;
                    return Ok(n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.raw_os_error() == Some(EIO) => {
                    let next = (self.pos / SECTOR + 1) * SECTOR;
                    let n = usize::try_from(next - self.pos)
                        .unwrap_or(usize::MAX)
                        .min(buf.len());
                    buf[..n].fill(0);
                    self.pos += n as u64;
                    self.unreadable += n as u64;
                    self.inner.seek(std::io::SeekFrom::Start(self.pos))?;
                    return Ok(n);
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// The filesystem operations rebound needs, relative to a replica root.
///
/// `dir: None` means the root itself.
pub trait Fs: Sync {
    /// `lstat` of `rel`, `None` if it does not exist.
    ///
    /// # Errors
    /// I/O errors; [`crate::Error::Symlink`] if a parent component is a link.
    fn metadata(&self, root: &Path, rel: &RelPath) -> Result<Option<Meta>>;

    /// `lstat` of a directory (or the root), `None` if it does not exist.
    ///
    /// # Errors
    /// I/O errors; [`crate::Error::Symlink`] if a component is a link.
    fn dir_metadata(&self, root: &Path, dir: Option<&RelPath>) -> Result<Option<Meta>>;

    /// The names in a directory (without `.` and `..`), in no particular order.
    ///
    /// # Errors
    /// I/O errors; [`crate::Error::Symlink`] if a component is a link.
    fn read_dir(&self, root: &Path, dir: Option<&RelPath>) -> Result<Vec<DirEntry>>;

    /// Opens a regular file for reading, refusing links.
    ///
    /// # Errors
    /// I/O errors (`NotFound` if missing); [`crate::Error::Symlink`] for a link.
    fn open_read(&self, root: &Path, rel: &RelPath) -> Result<Box<dyn Read + Send + '_>>;

    /// Opens a regular file once for positioned reads that several threads share
    /// (hashing one large file in pieces), with the checks of [`Fs::open_read`] (no
    /// link followed, nothing but a regular file) and the size, permission bits and
    /// owner that the open itself saw (`fstat` of the opened file, never a second
    /// lookup by name).
    ///
    /// # Errors
    /// As [`Fs::open_read`].
    fn open_read_at(&self, root: &Path, rel: &RelPath) -> Result<OpenAt>;

    /// Opens a damaged copy of a protected file for a parity comparison or rebuild: as
    /// [`Fs::open_read`], except that a range the storage refuses to read (EIO: how
    /// eMMC and UBI report an uncorrectable page) reads as zeros up to the next
    /// [`SECTOR`] boundary and reading goes on after it ([`Tolerant`]), so that the
    /// block holding it counts as damaged instead of failing the whole file. The
    /// default (a filesystem without such errors) is `open_read`.
    ///
    /// # Errors
    /// As [`Fs::open_read`].
    fn open_read_damaged(&self, root: &Path, rel: &RelPath) -> Result<Box<dyn Read + Send + '_>> {
        self.open_read(root, rel)
    }

    /// Creates a new file (`O_EXCL`) with exactly the permission bits `mode`.
    ///
    /// # Errors
    /// I/O errors, including `AlreadyExists`.
    fn create_new(&self, root: &Path, rel: &RelPath, mode: u32) -> Result<Box<dyn WriteFile + '_>>;

    /// Renames within one root, replacing `to` atomically if it exists.
    ///
    /// # Errors
    /// I/O errors.
    fn rename(&self, root: &Path, from: &RelPath, to: &RelPath) -> Result<()>;

    /// Gives an existing regular file an owner, through a handle opened without
    /// following a link (`fchown`). Linux clears setuid and setgid on a chown, so
    /// [`Fs::set_mode`] comes after it. Not durable until the file is synced
    /// ([`Fs::sync_file`]).
    ///
    /// # Errors
    /// I/O errors (`EPERM` when not running as root); [`crate::Error::Symlink`] for
    /// a link; `InvalidInput` for anything but a regular file.
    fn set_owner(&self, root: &Path, rel: &RelPath, owner: Owner) -> Result<()>;

    /// Sets exactly the permission bits `mode` of an existing regular file, through a
    /// handle opened without following a link (`fchmod`). Not durable until the file
    /// is synced ([`Fs::sync_file`]).
    ///
    /// # Errors
    /// I/O errors; [`crate::Error::Symlink`] for a link; `InvalidInput` for anything
    /// but a regular file.
    fn set_mode(&self, root: &Path, rel: &RelPath, mode: u32) -> Result<()>;

    /// Removes a file (not a directory).
    ///
    /// # Errors
    /// I/O errors, including `NotFound`.
    fn remove_file(&self, root: &Path, rel: &RelPath) -> Result<()>;

    /// Creates one directory (its parent must exist).
    ///
    /// # Errors
    /// I/O errors, including `AlreadyExists`.
    fn create_dir(&self, root: &Path, rel: &RelPath) -> Result<()>;

    /// Creates the root directory itself (its parent must exist: it is the mount
    /// point of the partition, and rebound never creates that).
    ///
    /// # Errors
    /// I/O errors, `NotFound` if the parent is missing.
    fn create_root(&self, root: &Path) -> Result<()>;

    /// Makes the directory's entries durable (`fsync` on the directory).
    ///
    /// # Errors
    /// I/O errors. After an error, recent names in the directory may be lost.
    fn sync_dir(&self, root: &Path, dir: Option<&RelPath>) -> Result<()>;

    /// Makes an existing file durable by name (opens it read-only, refusing links,
    /// and `fsync`s it). After a rename this also writes the file's new directory
    /// slot on vfat, where an `fsync` of the directory does not (docs/design.md).
    ///
    /// # Errors
    /// I/O errors; [`crate::Error::Symlink`] for a link. After an error the file's
    /// recent data or name may be lost.
    fn sync_file(&self, root: &Path, rel: &RelPath) -> Result<()>;

    /// Who a root directory is: the `(device, inode)` of the root (reached through a
    /// link if the root itself is one, as every method here does), then of each
    /// directory above it up to `/`, nearest first. `None` if the root does not exist.
    /// Two roots are one directory when their first pairs are equal, and one lies
    /// inside the other when the other's first pair is among its later ones, however
    /// either is spelled.
    ///
    /// # Errors
    /// I/O errors while examining the root or a directory above it.
    fn root_identity(&self, root: &Path) -> Result<Option<Vec<DirId>>>;

    /// Starts a boot's change journal afresh: from now on [`Fs::watch_dir`] watches.
    fn start_journal(&self) {}

    /// Ends the change journal, forgetting every watch and noted change, so that no
    /// other run (in the same process) reads it; [`Fs::watch_dir`] watches nothing
    /// until the next start.
    fn stop_journal(&self) {}

    /// Starts noting the changes that others (not this `Fs`) make to the entries of
    /// directory `dir` below `root`, for [`Fs::changed_by_others`]: a boot's change
    /// journal (docs/design.md section 3.1), once started ([`Fs::start_journal`]).
    /// Best effort: a directory that cannot be watched is not. The default watches
    /// nothing.
    fn watch_dir(&self, root: &Path, dir: Option<&RelPath>) {
        let _ = (root, dir);
    }

    /// `Some(true)` if someone other than this `Fs` created, wrote, removed or renamed
    /// `rel` since its directory was watched ([`Fs::watch_dir`]), `Some(false)` if
    /// nobody did, `None` if that is not known (not watched, events lost, or this `Fs`
    /// changed `rel` itself). The default knows nothing.
    fn changed_by_others(&self, root: &Path, rel: &RelPath) -> Option<bool> {
        let _ = (root, rel);
        None
    }

    /// Whether the change journal knew nothing for part of the run (inotify not
    /// available, or its event queue overflowed): files changed during the run were
    /// then judged by the content re-check alone.
    fn journal_blind(&self) -> bool {
        false
    }

    /// The kernel's id of the running boot, which tells a set's boot counter whether
    /// a `rebound boot` starts a new boot or runs again in the same one. `None` when
    /// unknown: every `rebound boot` run then counts as a boot. The default knows
    /// nothing.
    fn boot_id(&self) -> Option<String> {
        None
    }

    /// The device (mount source, such as `/dev/mmcblk0p5` or `ubi0:data`) of the
    /// filesystem that holds `path`, for messages that name a partition. The default
    /// knows nothing.
    fn mount_source(&self, path: &Path) -> Option<String> {
        let _ = path;
        None
    }

    /// The wall-clock time, for the event log. Only recorded and shown, never trusted
    /// for ordering (a device without a real-time clock starts in 1970): the boot
    /// counter orders events.
    fn now(&self) -> std::time::SystemTime {
        std::time::SystemTime::now()
    }

    /// A `Cursor` for reading many files below `root` in a row. The default makes
    /// each call separately; [`os::OsFs`] keeps the last directory open, which saves
    /// opening every parent directory again for each file (most of the system calls
    /// of a verification pass over small files).
    fn cursor<'a>(&'a self, root: &'a Path) -> Box<dyn Cursor + 'a> {
        Box::new(PlainCursor { fs: self, root })
    }
}

/// Reads a small file whole (a manifest, a version tag, a stat cache, a record):
/// `Ok(None)` if it does not exist, an error if it holds more than `max` bytes (it is
/// never read further than that) or cannot be read.
///
/// # Errors
/// I/O errors, and `InvalidData` for a file larger than `max`.
pub fn read_small(fs: &dyn Fs, root: &Path, rel: &RelPath, max: u64) -> Result<Option<Vec<u8>>> {
    let mut r = match fs.open_read(root, rel) {
        Ok(r) => r,
        Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            return Ok(None)
        }
        Err(e) => return Err(e),
    };
    // Sized from `lstat` when it can be (a hint only: the read decides): a buffer
    // grown by doubling holds up to twice the bytes, and a manifest of 100,000 files
    // is megabytes, read at every boot.
    let hint = fs
        .metadata(root, rel)
        .ok()
        .flatten()
        .map_or(0, |m| m.size.min(max).saturating_add(1));
    let mut buf = Vec::with_capacity(usize::try_from(hint).unwrap_or(0));
    (&mut r)
        .take(max + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Error::io("read", full(root, rel), e))?;
    if buf.len() as u64 > max {
        return Err(Error::io(
            "read",
            full(root, rel),
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("larger than {max} bytes"),
            ),
        ));
    }
    Ok(Some(buf))
}

/// A file name for messages: its valid UTF-8 as is, each byte that is not valid UTF-8
/// as `\xNN`, so two different raw names never print the same.
pub fn escape_name(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// The full path of `rel` under `root`, for messages.
pub fn full(root: &Path, rel: &RelPath) -> PathBuf {
    root.join(rel.as_str())
}

/// The full path of a directory under `root`, for messages.
pub fn full_dir(root: &Path, dir: Option<&RelPath>) -> PathBuf {
    match dir {
        Some(d) => root.join(d.as_str()),
        None => root.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::io::Read;

    /// A file whose bytes in `bad` cannot be read (EIO), like an uncorrectable page.
    struct Flaky {
        data: Vec<u8>,
        pos: usize,
        bad: std::ops::Range<usize>,
    }

    impl Read for Flaky {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.bad.contains(&self.pos) {
                return Err(std::io::Error::from_raw_os_error(5));
            }
            let end = if self.pos < self.bad.start {
                self.bad.start
            } else {
                self.data.len()
            };
            let n = buf.len().min(end.saturating_sub(self.pos));
            buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }

    impl std::io::Seek for Flaky {
        fn seek(&mut self, to: std::io::SeekFrom) -> std::io::Result<u64> {
            if let std::io::SeekFrom::Start(p) = to {
                self.pos = usize::try_from(p).unwrap_or(usize::MAX);
            }
            Ok(self.pos as u64)
        }
    }

    #[test]
    fn an_unreadable_page_reads_as_zeros_and_the_rest_as_it_is() {
        let data: Vec<u8> = (0..5 * 4096 + 100).map(|i| (i % 251) as u8 + 1).collect();
        let mut t = super::Tolerant::new(Flaky {
            data: data.clone(),
            pos: 0,
            bad: 8192 + 10..8192 + 20,
        });
        let mut out = Vec::new();
        t.read_to_end(&mut out).unwrap();
        assert_eq!(out.len(), data.len());
        assert_eq!(out[..8192 + 10], data[..8192 + 10]);
        assert!(out[8192 + 10..3 * 4096].iter().all(|b| *b == 0));
        assert_eq!(out[3 * 4096..], data[3 * 4096..]);
        assert_eq!(t.unreadable, 4096 - 10);
        // Any other error is returned.
        struct Gone;
        impl Read for Gone {
            fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
                Err(std::io::Error::from_raw_os_error(13))
            }
        }
        impl std::io::Seek for Gone {
            fn seek(&mut self, _: std::io::SeekFrom) -> std::io::Result<u64> {
                Ok(0)
            }
        }
        assert!(super::Tolerant::new(Gone).read(&mut [0u8; 8]).is_err());
    }

    /// An unreadable page of a copy is a damaged block for parity: compared and
    /// rebuilt like a flipped bit, never the whole file lost.
    #[test]
    fn an_unreadable_page_is_rebuilt_from_parity() {
        use crate::digest::HashAlgo;
        use crate::parity::{analyze, Encoder, Rebuild};
        let data: Vec<u8> = (0..64 * 4096).map(|i| (i * 7 % 253) as u8).collect();
        let algo = HashAlgo::Blake3;
        let digest = algo.digest(&data);
        let mut rec = Vec::new();
        Encoder::new(&data[..], algo, digest, data.len() as u64, 4096, 10)
            .read_to_end(&mut rec)
            .unwrap();
        let flaky = || {
            super::Tolerant::new(Flaky {
                data: data.clone(),
                pos: 0,
                bad: 20 * 4096 + 5..20 * 4096 + 6,
            })
        };
        let fit = analyze(&rec[..], flaky(), algo, digest).unwrap();
        assert_eq!((fit.damaged, fit.recoverable), (1, true));
        let mut out = Vec::new();
        Rebuild::new(&rec[..], flaky(), algo, digest)
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, data);
        // Read plainly, the same page fails the whole comparison.
        let plain = Flaky {
            data: data.clone(),
            pos: 0,
            bad: 20 * 4096 + 5..20 * 4096 + 6,
        };
        assert!(analyze(&rec[..], plain, algo, digest).is_err());
    }

    use super::*;

    #[test]
    fn invalid_bytes_of_a_name_are_escaped_and_valid_text_kept() {
        assert_eq!(escape_name(b"caf\xe9.json"), "caf\\xe9.json");
        assert_eq!(escape_name("é\u{1F600}".as_bytes()), "é\u{1F600}");
        assert_eq!(escape_name(b"\xff\xfe"), "\\xff\\xfe");
    }
}
