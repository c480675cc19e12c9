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
    /// The raw name for messages: as is if it is UTF-8, else with every invalid
    /// byte written `\xNN` ([`escape_name`]).
    pub display: String,
    pub kind: Kind,
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
    let mut buf = Vec::new();
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
    use super::*;

    #[test]
    fn invalid_bytes_of_a_name_are_escaped_and_valid_text_kept() {
        assert_eq!(escape_name(b"caf\xe9.json"), "caf\\xe9.json");
        assert_eq!(escape_name("é\u{1F600}".as_bytes()), "é\u{1F600}");
        assert_eq!(escape_name(b"\xff\xfe"), "\\xff\\xfe");
    }
}
