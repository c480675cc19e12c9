//! The only module that orders writes and syncs. Everything rebound makes durable goes
//! through [`Durable`], so the write protocol below is the whole story of power-fail
//! safety (docs/design.md walks every crash point of it):
//!
//! 1. create every missing parent directory, fsyncing the directory that got the new
//!    name after each one;
//! 2. create a temporary file `.rebound-tmp-*` in the target's directory (`O_EXCL`);
//! 3. stream the content into it while hashing, and refuse it if the source did not
//!    hash to the expected digest; then give it its owner (`fchown`) and, after that,
//!    exactly its permission bits (`fchmod`: a chown clears setuid and setgid);
//! 4. fsync the temporary file (data, mode and owner together);
//! 5. read it back and check its digest;
//! 6. rename it over the target (atomic for the name on journaling filesystems);
//! 7. fsync the file again under its new name: on vfat a rename over an existing
//!    name is written to the directory only with the moved file's inode, which an
//!    fsync of the directory does not write (found by the power-cut lab,
//!    docs/powercut.md); elsewhere it is a cheap no-op;
//! 8. fsync the directory, which makes the new name durable.
//!
//! A failed fsync *poisons* the run: data may already be lost, retrying would only
//! hide it, so every later write is refused with [`Error::Poisoned`].

use std::io::{self, Read};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::digest::{Digest, HashAlgo};
use crate::error::{Error, Result};
use crate::fs::{full, Fs, Kind, WriteFile};
use crate::hashing::{hash_reader, CHUNK};
use crate::manifest::Owner;
use crate::names::TEMP_PREFIX;
use crate::relpath::RelPath;

/// Test-only switches that break the protocol on purpose, to prove that the crash
/// explorer and the power-cut lab notice. Never set in a product.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Breakage {
    /// Skip every fsync of a file (steps 4 and 7, and [`Durable::sync_file`]).
    pub skip_file_sync: bool,
    /// Skip fsync of directories (steps 1 and 8).
    pub skip_dir_sync: bool,
    /// Skip the fsync of the file under its new name (step 7).
    pub skip_renamed_sync: bool,
}

/// Durable writes through a [`Fs`].
pub struct Durable<'a> {
    fs: &'a dyn Fs,
    poisoned: AtomicBool,
    temp_seq: AtomicU64,
    breakage: Breakage,
}

impl std::fmt::Debug for Durable<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Durable")
            .field("poisoned", &self.poisoned)
            .field("breakage", &self.breakage)
            .finish()
    }
}

impl<'a> Durable<'a> {
    /// Durable writes through `fs`.
    pub fn new(fs: &'a dyn Fs) -> Durable<'a> {
        #[allow(unused_mut)]
        let mut breakage = Breakage::default();
        #[cfg(feature = "fault-injection")]
        if std::env::var_os("REBOUND_FAULT_SKIP_SYNC").is_some_and(|v| v == "1") {
            breakage = Breakage {
                skip_file_sync: true,
                skip_dir_sync: true,
                skip_renamed_sync: true,
            };
        }
        Durable {
            fs,
            poisoned: AtomicBool::new(false),
            temp_seq: AtomicU64::new(0),
            breakage,
        }
    }

    /// A writer of its own for bookkeeping that nothing protected depends on (the
    /// history, the metrics): the same filesystem and protocol, but a failed fsync in
    /// one does not stop the other. Temporary names go on from this writer's.
    pub fn separate(&self) -> Durable<'a> {
        Durable {
            fs: self.fs,
            poisoned: AtomicBool::new(false),
            temp_seq: AtomicU64::new(self.temp_seq.load(Ordering::SeqCst) + (1 << 32)),
            breakage: self.breakage,
        }
    }

    /// Breaks the protocol on purpose (tests of the crash explorer only).
    #[doc(hidden)]
    pub fn with_breakage(mut self, b: Breakage) -> Self {
        self.breakage = b;
        self
    }

    /// The filesystem underneath, for reads.
    pub fn fs(&self) -> &'a dyn Fs {
        self.fs
    }

    /// Whether an fsync has failed in this run.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::SeqCst)
    }

    fn check(&self) -> Result<()> {
        if self.is_poisoned() {
            Err(Error::Poisoned)
        } else {
            Ok(())
        }
    }

    fn sync_dir(&self, root: &Path, dir: Option<&RelPath>) -> Result<()> {
        if self.breakage.skip_dir_sync {
            return Ok(());
        }
        self.fs.sync_dir(root, dir).inspect_err(|_| {
            // IMPORTANT: never retry an fsync; stop writing instead.
            self.poisoned.store(true, Ordering::SeqCst);
        })
    }

    fn sync_file_raw(&self, root: &Path, rel: &RelPath) -> Result<()> {
        self.fs.sync_file(root, rel).inspect_err(|_| {
            // IMPORTANT: never retry an fsync; stop writing instead.
            self.poisoned.store(true, Ordering::SeqCst);
        })
    }

    /// Makes an existing file durable where it is (`commit` syncs the file it accepts,
    /// so a commit is durable on the file's own partition too).
    ///
    /// # Errors
    /// I/O errors, [`Error::Poisoned`].
    pub fn sync_file(&self, root: &Path, rel: &RelPath) -> Result<()> {
        self.check()?;
        if self.breakage.skip_file_sync {
            return Ok(());
        }
        self.sync_file_raw(root, rel)
    }

    /// Gives an existing file its recorded permission bits (and owner, if given) and
    /// makes that durable: `fchown` first (it clears setuid and setgid), then
    /// `fchmod`, then an fsync of the file, which is what makes inode metadata
    /// durable. A chown that fails (`EPERM` when not running as root) does not stop
    /// the mode from being set; it is reported after, as [`Error::Owner`].
    ///
    /// # Errors
    /// I/O errors, [`Error::Owner`], [`Error::Poisoned`].
    pub fn set_meta(
        &self,
        root: &Path,
        rel: &RelPath,
        mode: u32,
        owner: Option<Owner>,
    ) -> Result<()> {
        self.check()?;
        let chown = match owner {
            Some(o) => self.fs.set_owner(root, rel, o).err().map(|e| (o, e)),
            None => None,
        };
        self.fs.set_mode(root, rel, mode)?;
        // IMPORTANT: a chmod or chown is durable only once the file is synced.
        self.sync_file(root, rel)?;
        match chown {
            Some((o, e)) => Err(Error::owner(full(root, rel), o, e)),
            None => Ok(()),
        }
    }

    /// Makes sure the root directory exists. Only its last component is ever created:
    /// a missing parent means the partition is not mounted, and writing into the
    /// mount point would put data on the wrong filesystem.
    ///
    /// # Errors
    /// I/O errors; `NotFound` naming the root if its parent is missing.
    pub fn ensure_root(&self, root: &Path) -> Result<()> {
        self.check()?;
        match self.fs.dir_metadata(root, None)? {
            Some(m) if m.kind == Kind::Dir => Ok(()),
            Some(_) => Err(Error::io(
                "open directory",
                root,
                io::Error::new(io::ErrorKind::InvalidInput, "not a directory"),
            )),
            None => self.fs.create_root(root),
        }
    }

    /// Makes sure directory `dir` (and its parents) exist below `root`, creating what
    /// is missing and fsyncing each parent that got a new name.
    ///
    /// # Errors
    /// I/O errors; [`Error::Symlink`] if a component is a link or a file.
    pub fn ensure_dir(&self, root: &Path, dir: Option<&RelPath>) -> Result<()> {
        self.ensure_root(root)?;
        let Some(dir) = dir else { return Ok(()) };
        let mut prefix: Option<RelPath> = None;
        for comp in dir.components() {
            let here = match &prefix {
                None => RelPath::new(comp),
                Some(p) => p.join(comp),
            }
            .map_err(|e| Error::Usage(format!("{dir}: {e}")))?;
            match self.fs.metadata(root, &here)? {
                Some(m) if m.kind == Kind::Dir => {}
                Some(_) => {
                    return Err(Error::Symlink {
                        path: full(root, &here),
                    })
                }
                None => {
                    self.fs.create_dir(root, &here)?;
                    // IMPORTANT: the new directory's name is durable only once its
                    // parent is synced.
                    self.sync_dir(root, prefix.as_ref())?;
                }
            }
            prefix = Some(here);
        }
        Ok(())
    }

    fn temp_name(&self, parent: Option<&RelPath>) -> Result<RelPath> {
        let n = self.temp_seq.fetch_add(1, Ordering::SeqCst);
        let name = format!("{TEMP_PREFIX}{}-{n}", std::process::id());
        match parent {
            Some(p) => p.join(&name),
            None => RelPath::new(&name),
        }
        .map_err(|e| Error::Usage(e.to_string()))
    }

    /// Replaces (or creates) `rel` under `root` with the content read from `src`,
    /// following the protocol in the module doc. With `expected`, the source must hash
    /// to it or nothing is changed. The file gets exactly the permission bits `mode`
    /// and, if given, the owner `owner`, both before the rename.
    ///
    /// Returns the digest of what was written.
    ///
    /// # Errors
    /// I/O errors (the target is then unchanged), [`Error::Mismatch`] if the source or
    /// the read-back does not hash as expected, [`Error::Poisoned`]. [`Error::Owner`]
    /// if the owner could not be set (not running as root): the content is then
    /// written all the same, with the process's own owner.
    // Each argument is one independent fact of the write; a struct would only rename them.
    #[allow(clippy::too_many_arguments)]
    pub fn write_file(
        &self,
        root: &Path,
        rel: &RelPath,
        mode: u32,
        owner: Option<Owner>,
        src: &mut dyn Read,
        src_name: &Path,
        algo: HashAlgo,
        expected: Option<Digest>,
    ) -> Result<Digest> {
        self.write_file_guarded(
            root,
            rel,
            mode,
            owner,
            src,
            src_name,
            algo,
            expected,
            &|| Ok(()),
        )
    }

    /// As [`Durable::write_file`], calling `guard` once the new content is durable in
    /// its temporary file, right before the rename that replaces the target: the last
    /// moment to find out that the target (or anything the write depends on) changed
    /// since it was looked at. If `guard` fails, the temporary file is removed, the
    /// target is left as it is, and its error is returned.
    ///
    /// # Errors
    /// As [`Durable::write_file`], and `guard`'s error.
    #[allow(clippy::too_many_arguments)]
    pub fn write_file_guarded(
        &self,
        root: &Path,
        rel: &RelPath,
        mode: u32,
        owner: Option<Owner>,
        src: &mut dyn Read,
        src_name: &Path,
        algo: HashAlgo,
        expected: Option<Digest>,
        guard: &dyn Fn() -> Result<()>,
    ) -> Result<Digest> {
        self.check()?;
        let parent = rel.parent();
        self.ensure_dir(root, parent.as_ref())?;
        let (temp, out) = self.create_temp(root, parent.as_ref(), mode)?;
        let perm = (mode, owner);
        let result = self.fill_temp(root, &temp, out, perm, src, src_name, algo, expected);
        let (digest, chown) = match result {
            Ok(r) => r,
            Err(e) => {
                // Best effort: the temp file is junk either way, and the next run
                // removes any that survive.
                let _ = self.fs.remove_file(root, &temp);
                return Err(e);
            }
        };
        // IMPORTANT: the guard runs as late as possible: between it and the rename
        // nothing but this process's own next call happens.
        if let Err(e) = guard() {
            let _ = self.fs.remove_file(root, &temp);
            return Err(e);
        }
        // IMPORTANT: rename only after the content is durable (step 4 inside
        // fill_temp), or a crash could leave the target name on empty data.
        if let Err(e) = self.fs.rename(root, &temp, rel) {
            // E.g. a directory sits at the target: the temp file is junk.
            let _ = self.fs.remove_file(root, &temp);
            return Err(e);
        }
        // IMPORTANT: fsync the file under its new name (vfat writes the new directory
        // slot only with the inode), then the directory: the name is durable only now.
        if !self.breakage.skip_renamed_sync && !self.breakage.skip_file_sync {
            self.sync_file_raw(root, rel)?;
        }
        self.sync_dir(root, parent.as_ref())?;
        match chown {
            Some((o, e)) => Err(Error::owner(full(root, rel), o, e)),
            None => Ok(digest),
        }
    }

    /// Creates a new temporary file beside the target. Names are unique within a run;
    /// a leftover from an earlier run can have the same name (at boot a process often
    /// gets the same pid every time), so an existing name is skipped, never reused.
    fn create_temp<'f>(
        &'f self,
        root: &Path,
        parent: Option<&RelPath>,
        mode: u32,
    ) -> Result<(RelPath, Box<dyn WriteFile + 'f>)> {
        let mut tries = 0;
        loop {
            let temp = self.temp_name(parent)?;
            match self.fs.create_new(root, &temp, mode) {
                Ok(out) => return Ok((temp, out)),
                Err(Error::Io { source, .. })
                    if source.kind() == io::ErrorKind::AlreadyExists && tries < 1000 =>
                {
                    tries += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Steps 3 to 5. Returns the digest, and the owner that could not be given to
    /// the file with why (the write goes on without it).
    #[allow(clippy::too_many_arguments)]
    fn fill_temp(
        &self,
        root: &Path,
        temp: &RelPath,
        mut out: Box<dyn WriteFile + '_>,
        (mode, owner): (u32, Option<Owner>),
        src: &mut dyn Read,
        src_name: &Path,
        algo: HashAlgo,
        expected: Option<Digest>,
    ) -> Result<(Digest, Option<(Owner, Error)>)> {
        let mut h = algo.hasher();
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = match src.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io("read", src_name, e)),
            };
            h.update(&buf[..n]);
            out.write_all(&buf[..n])?;
        }
        let digest = h.finish();
        if let Some(exp) = expected {
            if exp != digest {
                return Err(Error::Mismatch {
                    path: src_name.to_path_buf(),
                    expected: exp.to_hex(),
                    found: digest.to_hex(),
                });
            }
        }
        // The owner (only where it is not already the temp's: a chown is a change to
        // the inode like any other), then exactly the mode: a chown clears setuid and
        // setgid, and so does a write by a process without CAP_FSETID.
        let mut chown = None;
        let mut chowned = false;
        if let Some(o) = owner {
            let now = self.fs.metadata(root, temp)?.map(|m| m.owner());
            if now != Some(o) {
                match out.set_owner(o) {
                    Ok(()) => chowned = true,
                    Err(e) => chown = Some((o, e)),
                }
            }
        }
        if chowned || mode & 0o6000 != 0 {
            out.set_mode(mode)?;
        }
        // IMPORTANT: data, mode and owner are made durable together, before the
        // rename puts them under the protected name.
        if !self.breakage.skip_file_sync {
            out.sync_all()
                .inspect_err(|_| self.poisoned.store(true, Ordering::SeqCst))?;
        }
        drop(out);
        // Read-back check: what the filesystem returns is what we meant to write.
        let mut back = self.fs.open_read(root, temp)?;
        let found = hash_reader(&mut *back, &full(root, temp), algo, &mut buf)?;
        if found != digest {
            return Err(Error::Mismatch {
                path: full(root, temp),
                expected: digest.to_hex(),
                found: found.to_hex(),
            });
        }
        Ok((digest, chown))
    }

    /// Writes a small file (manifest, tag) with the same protocol.
    ///
    /// # Errors
    /// As [`Durable::write_file`].
    pub fn write_bytes(&self, root: &Path, rel: &RelPath, mode: u32, bytes: &[u8]) -> Result<()> {
        self.write_bytes_guarded(root, rel, mode, bytes, &|| Ok(()))
    }

    /// As [`Durable::write_bytes`], with a guard as in [`Durable::write_file_guarded`].
    ///
    /// # Errors
    /// As [`Durable::write_file_guarded`].
    pub fn write_bytes_guarded(
        &self,
        root: &Path,
        rel: &RelPath,
        mode: u32,
        bytes: &[u8],
        guard: &dyn Fn() -> Result<()>,
    ) -> Result<()> {
        let mut src = bytes;
        self.write_file_guarded(
            root,
            rel,
            mode,
            None,
            &mut src,
            Path::new("<memory>"),
            HashAlgo::Blake3,
            None,
            guard,
        )
        .map(|_| ())
    }

    /// Removes a file, if `guard` (called right before the removal) allows it, and
    /// makes the removal durable. A file already gone is fine.
    ///
    /// # Errors
    /// As [`Durable::remove_file`], and `guard`'s error (nothing is removed then).
    pub fn remove_file_guarded(
        &self,
        root: &Path,
        rel: &RelPath,
        guard: &dyn Fn() -> Result<()>,
    ) -> Result<()> {
        self.check()?;
        guard()?;
        self.remove_file(root, rel)
    }

    /// Removes a file and makes the removal durable. A file already gone is fine.
    ///
    /// # Errors
    /// I/O errors, [`Error::Poisoned`].
    pub fn remove_file(&self, root: &Path, rel: &RelPath) -> Result<()> {
        self.check()?;
        match self.fs.remove_file(root, rel) {
            Ok(()) => {}
            Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                return Ok(())
            }
            Err(e) => return Err(e),
        }
        self.sync_dir(root, rel.parent().as_ref())
    }

    /// Moves what stands at `from` (a directory, a file) to `to` in the same root,
    /// creating `to`'s parents, and makes the move durable. `to` must not exist: a
    /// rename would replace it, and what is moved aside is the user's data. Nothing
    /// is ever deleted: a cut leaves it at `from` or at `to`, whole (a rename within
    /// one filesystem is atomic for the name on ext4, xfs, btrfs, UBIFS).
    ///
    /// # Errors
    /// I/O errors, `AlreadyExists` if `to` exists, [`Error::Poisoned`].
    pub fn move_aside(&self, root: &Path, from: &RelPath, to: &RelPath) -> Result<()> {
        self.check()?;
        let Some(m) = self.fs.metadata(root, from)? else {
            // Gone already (moved by a run that was cut after the rename): nothing
            // stands in the way any more.
            return Ok(());
        };
        // IMPORTANT: never rename over anything (it would be replaced, i.e. deleted).
        if self.fs.metadata(root, to)?.is_some() {
            return Err(Error::io(
                "move aside",
                full(root, to),
                io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "already exists; nothing moved",
                ),
            ));
        }
        let to_parent = to.parent();
        self.ensure_dir(root, to_parent.as_ref())?;
        self.fs.rename(root, from, to)?;
        // A moved file: on vfat its new directory slot is written with its inode
        // (as step 7 of the write protocol).
        if m.kind == Kind::File && !self.breakage.skip_renamed_sync && !self.breakage.skip_file_sync
        {
            self.sync_file_raw(root, to)?;
        }
        // IMPORTANT: both directories: the new name, then the old one's removal.
        self.sync_dir(root, to_parent.as_ref())?;
        self.sync_dir(root, from.parent().as_ref())
    }
}
