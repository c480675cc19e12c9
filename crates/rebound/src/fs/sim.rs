//! [`SimFs`]: an in-memory filesystem that simulates power cuts, for the crash explorer.
//!
//! It keeps two states: the *live* one (what the running process sees) and the
//! *durable* one (what survives a power cut), plus the list of *pending* operations
//! that are live but not yet durable. The rules follow what real filesystems promise
//! (docs/design.md, "Assumptions about the storage"):
//!
//! - file data and metadata (writes, mode and owner changes) becomes durable on
//!   `sync_all` of that file;
//! - a name (create, mkdir, rename, unlink) becomes durable on `sync_dir` of its parent
//!   directory, never by syncing the file;
//! - pending operations on different files land in any order, so any subset of them may
//!   survive a cut; a write may be torn at a 512-byte boundary or zero-filled;
//! - optionally, `rename` is not atomic (vfat): its "remove the old target" and "move
//!   the new name" halves are separate pending operations, and the second half becomes
//!   durable only when the moved *file* is synced, not its directory. That is what
//!   Linux's vfat does: a rename over an existing name gives the moved inode the
//!   target's directory slot and only marks the inode dirty, so the slot is written
//!   when the inode is (docs/powercut.md, finding 1).
//!
//! [`SimFs::crash_states`] builds the states a cut could leave; each is a new `SimFs`
//! whose live and durable states are equal. Everything is deterministic and seeded.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Cursor, Read};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use super::{full, full_dir, DirEntry, DirId, Fs, Kind, Meta, OpenAt, Perm, ReadAt, WriteFile};
use crate::error::{Error, Result};
use crate::manifest::Owner;
use crate::relpath::RelPath;

/// A node of the namespace.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Node {
    File(u64),
    Dir,
    Symlink,
}

/// Content, permission bits and owner of one inode. The simulated process runs as
/// root (uid 0, gid 0): files it creates are owned by 0:0, and it may chown.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
struct Data {
    bytes: Vec<u8>,
    mode: u32,
    owner: Owner,
}

/// One pending (live but not yet durable) operation.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Write {
        ino: u64,
        off: usize,
        bytes: Vec<u8>,
    },
    Chmod {
        ino: u64,
        mode: u32,
    },
    Chown {
        ino: u64,
        owner: Owner,
    },
    Create {
        path: PathBuf,
        ino: u64,
    },
    Mkdir {
        path: PathBuf,
    },
    Unlink {
        path: PathBuf,
    },
    /// An atomic rename (of a file, a link, or a directory with everything below it).
    /// Durable once every directory in `waiting` was synced after it: the one
    /// directory of a rename within a directory; both parents of a move between
    /// directories (a journal commits both entries at once; when that commit happens
    /// is only known for sure once both were synced). Until then a cut may or may not
    /// keep it, always whole: never both names, never neither.
    Rename {
        from: PathBuf,
        to: PathBuf,
        waiting: Vec<PathBuf>,
    },
    /// First half of a non-atomic rename: the old target disappears.
    RenameDrop {
        to: PathBuf,
    },
    /// Second half of a non-atomic rename: the new name appears, the old one goes.
    /// Durable on a sync of the moved inode `ino`.
    RenameMove {
        from: PathBuf,
        to: PathBuf,
        ino: u64,
    },
}

impl Op {
    /// The directory whose sync makes this operation durable, if it is a name operation.
    fn dir(&self) -> Option<&Path> {
        match self {
            Op::Create { path, .. } | Op::Mkdir { path } | Op::Unlink { path } => path.parent(),
            Op::RenameDrop { to } => to.parent(),
            Op::Rename { .. } => None,
            Op::Write { .. } | Op::Chmod { .. } | Op::Chown { .. } | Op::RenameMove { .. } => None,
        }
    }

    fn ino(&self) -> Option<u64> {
        match self {
            Op::Write { ino, .. }
            | Op::Chmod { ino, .. }
            | Op::Chown { ino, .. }
            | Op::RenameMove { ino, .. } => Some(*ino),
            _ => None,
        }
    }

    fn describe(&self) -> String {
        match self {
            Op::Write { ino, off, bytes } => {
                format!("write inode {ino} at {off}: {} bytes", bytes.len())
            }
            Op::Chmod { ino, mode } => format!("chmod inode {ino} {mode:o}"),
            Op::Chown { ino, owner } => format!("chown inode {ino} {owner}"),
            Op::Create { path, ino } => format!("create {} (inode {ino})", path.display()),
            Op::Mkdir { path } => format!("mkdir {}", path.display()),
            Op::Unlink { path } => format!("unlink {}", path.display()),
            Op::Rename { from, to, .. } => {
                format!("rename {} -> {}", from.display(), to.display())
            }
            Op::RenameDrop { to } => format!("rename, first half: drop {}", to.display()),
            Op::RenameMove { from, to, .. } => format!(
                "rename, second half: {} -> {}",
                from.display(),
                to.display()
            ),
        }
    }
}

/// A namespace and the data of its inodes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Image {
    ns: BTreeMap<PathBuf, Node>,
    data: BTreeMap<u64, Data>,
}

impl Image {
    fn apply(&mut self, op: &Op, tear: Tear) {
        match op {
            Op::Write { ino, off, bytes } => {
                let d = self.data.entry(*ino).or_default();
                let bytes: Vec<u8> = match tear {
                    Tear::Whole => bytes.clone(),
                    Tear::Half => bytes[..(bytes.len() / 2) / 512 * 512].to_vec(),
                    Tear::Zero => vec![0; bytes.len()],
                };
                let end = off + bytes.len();
                if d.bytes.len() < end {
                    d.bytes.resize(end, 0);
                }
                d.bytes[*off..end].copy_from_slice(&bytes);
            }
            Op::Chmod { ino, mode } => self.data.entry(*ino).or_default().mode = *mode,
            Op::Chown { ino, owner } => {
                let d = self.data.entry(*ino).or_default();
                d.owner = *owner;
                // As Linux does on a chown: setuid and setgid are cleared.
                d.mode &= !0o6000;
            }
            Op::Create { path, ino } => {
                self.ns.insert(path.clone(), Node::File(*ino));
            }
            Op::Mkdir { path } => {
                self.ns.insert(path.clone(), Node::Dir);
            }
            Op::Unlink { path } | Op::RenameDrop { to: path } => {
                self.ns.remove(path);
            }
            Op::Rename { from, to, .. } | Op::RenameMove { from, to, .. } => {
                if let Some(n) = self.ns.remove(from) {
                    if n == Node::Dir {
                        // Everything below a directory moves with it.
                        let below: Vec<PathBuf> = self
                            .ns
                            .keys()
                            .filter(|p| p.starts_with(from))
                            .cloned()
                            .collect();
                        for p in below {
                            if let (Some(m), Ok(rest)) = (self.ns.remove(&p), p.strip_prefix(from))
                            {
                                self.ns.insert(to.join(rest), m);
                            }
                        }
                    }
                    self.ns.insert(to.clone(), n);
                }
            }
        }
    }

    /// Drops names whose parent directory does not exist (lost with it).
    fn prune(&mut self) {
        let paths: Vec<PathBuf> = self.ns.keys().cloned().collect();
        for p in paths {
            // Parents sort before children, so one pass in order suffices.
            if let Some(parent) = p.parent() {
                if parent != Path::new("/") && self.ns.get(parent) != Some(&Node::Dir) {
                    self.ns.remove(&p);
                }
            }
        }
        let live: BTreeSet<u64> = self
            .ns
            .values()
            .filter_map(|n| match n {
                Node::File(i) => Some(*i),
                _ => None,
            })
            .collect();
        self.data.retain(|i, _| live.contains(i));
    }
}

/// Which pending operations land, which one (if any) is torn, and a description.
type Choice = (Vec<bool>, Option<(usize, Tear)>, String);

/// How a pending write lands in a crash state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tear {
    Whole,
    /// Only its first half, rounded down to 512 bytes.
    Half,
    /// Its extent is allocated but holds zeros.
    Zero,
}

#[derive(Debug, Clone, Default)]
struct State {
    live: Image,
    durable: Image,
    pending: Vec<(u64, Op)>,
    next_ino: u64,
    /// Mutating operations so far (the crash points).
    ops: u64,
    /// Power is cut before this operation: it and every later mutation fail.
    crash_at: Option<u64>,
    /// The n-th sync (1-based) fails with EIO.
    fail_sync_at: Option<u64>,
    syncs: u64,
    atomic_rename: bool,
    log: Vec<String>,
    /// Every path a mutation touched, for "golden is never written" checks.
    touched: Vec<PathBuf>,
    /// What [`Fs::boot_id`] says (None: unknown, each boot run counts as a boot).
    boot_id: Option<String>,
    /// What [`Fs::now`] says, in seconds since the epoch (None: the real clock).
    clock: Option<i64>,
}

/// The in-memory power-cut simulating filesystem.
#[derive(Debug)]
pub struct SimFs {
    st: Mutex<State>,
}

/// One state a power cut can leave, with how it was made (for reproductions).
#[derive(Debug)]
pub struct CrashState {
    pub fs: SimFs,
    /// Human-readable: which pending operations were dropped or torn.
    pub how: String,
}

impl Default for SimFs {
    fn default() -> Self {
        SimFs::new()
    }
}

fn cut(op: &'static str, path: impl Into<PathBuf>) -> Error {
    Error::io(op, path, io::Error::other("simulated power cut"))
}

impl SimFs {
    /// An empty filesystem with atomic rename.
    pub fn new() -> SimFs {
        let st = State {
            atomic_rename: true,
            next_ino: 1,
            ..State::default()
        };
        SimFs { st: Mutex::new(st) }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means another thread panicked in a test; the state is
        // still the best record of what happened.
        self.st.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The kernel boot id this filesystem reports ([`Fs::boot_id`]).
    pub fn set_boot_id(&self, id: Option<&str>) {
        self.lock().boot_id = id.map(str::to_string);
    }

    /// Stops the clock at `secs` since the epoch ([`Fs::now`]); `None`: the real one.
    pub fn set_clock(&self, secs: Option<i64>) {
        self.lock().clock = secs;
    }

    /// Models a filesystem without atomic rename (vfat).
    pub fn set_atomic_rename(&self, atomic: bool) {
        self.lock().atomic_rename = atomic;
    }

    /// Cuts power before mutating operation `k` (1-based): it and all later mutations
    /// fail, and the state stays as it was at the cut.
    pub fn set_crash_at(&self, k: Option<u64>) {
        self.lock().crash_at = k;
    }

    /// Makes the `n`-th sync (1-based, files and directories) fail with EIO.
    pub fn set_fail_sync_at(&self, n: Option<u64>) {
        self.lock().fail_sync_at = n;
    }

    /// Syncs (files and directories) so far, the count [`SimFs::set_fail_sync_at`] uses.
    pub fn syncs(&self) -> u64 {
        self.lock().syncs
    }

    /// Mutating operations so far.
    pub fn ops(&self) -> u64 {
        self.lock().ops
    }

    /// Whether the power was cut.
    pub fn crashed(&self) -> bool {
        let st = self.lock();
        st.crash_at.is_some_and(|k| st.ops >= k)
    }

    /// The operations so far, one line each, numbered from 1.
    pub fn log(&self) -> Vec<String> {
        self.lock().log.clone()
    }

    /// Every path a mutation touched.
    pub fn touched(&self) -> Vec<PathBuf> {
        self.lock().touched.clone()
    }

    /// Forgets the operation log, counters and touched paths (after a scenario's setup).
    pub fn reset_counters(&self) {
        let mut st = self.lock();
        st.ops = 0;
        st.syncs = 0;
        st.log.clear();
        st.touched.clear();
    }

    /// Setup helper: creates a directory and its parents, durably.
    pub fn mkdir_all(&self, path: &Path) {
        let mut st = self.lock();
        let mut p = PathBuf::new();
        for c in path.components() {
            p.push(c);
            if p != Path::new("/") {
                st.live.ns.entry(p.clone()).or_insert(Node::Dir);
                st.durable.ns.entry(p.clone()).or_insert(Node::Dir);
            }
        }
    }

    /// Setup helper: writes a whole file durably (parents created).
    pub fn put(&self, path: &Path, bytes: &[u8]) {
        if let Some(parent) = path.parent() {
            self.mkdir_all(parent);
        }
        let mut guard = self.lock();
        let st = &mut *guard;
        let ino = st.next_ino;
        st.next_ino += 1;
        let d = Data {
            bytes: bytes.to_vec(),
            mode: 0o644,
            owner: Owner::default(),
        };
        for img in [&mut st.live, &mut st.durable] {
            img.ns.insert(path.to_path_buf(), Node::File(ino));
            img.data.insert(ino, d.clone());
        }
        st.live.prune();
        st.durable.prune();
    }

    /// Setup helper: sets a file's permission bits and owner, durably (a `chmod` and
    /// `chown` by someone else, synced).
    pub fn set_perm(&self, path: &Path, mode: u32, owner: Owner) {
        let mut guard = self.lock();
        let st = &mut *guard;
        for img in [&mut st.live, &mut st.durable] {
            if let Some(Node::File(i)) = img.ns.get(path) {
                let i = *i;
                if let Some(d) = img.data.get_mut(&i) {
                    d.mode = mode & 0o7777;
                    d.owner = owner;
                }
            }
        }
    }

    /// Setup helper: plants a symbolic link, durably.
    pub fn put_symlink(&self, path: &Path) {
        let mut st = self.lock();
        st.live.ns.insert(path.to_path_buf(), Node::Symlink);
        st.durable.ns.insert(path.to_path_buf(), Node::Symlink);
    }

    /// Setup helper: removes a file or an empty directory, durably.
    pub fn remove(&self, path: &Path) {
        let mut st = self.lock();
        let under: Vec<PathBuf> = st
            .live
            .ns
            .keys()
            .filter(|p| p.starts_with(path))
            .cloned()
            .collect();
        for p in under {
            st.live.ns.remove(&p);
            st.durable.ns.remove(&p);
        }
    }

    /// Makes everything live durable (the end of a scenario's setup).
    pub fn sync_everything(&self) {
        let mut st = self.lock();
        st.durable = st.live.clone();
        st.pending.clear();
    }

    /// The live content of a file, `None` if it is not a regular file.
    pub fn get(&self, path: &Path) -> Option<Vec<u8>> {
        let st = self.lock();
        match st.live.ns.get(path) {
            Some(Node::File(i)) => Some(
                st.live
                    .data
                    .get(i)
                    .map(|d| d.bytes.clone())
                    .unwrap_or_default(),
            ),
            _ => None,
        }
    }

    /// Every regular file below `root`, with its live content.
    pub fn files_under(&self, root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
        let st = self.lock();
        st.live
            .ns
            .iter()
            .filter(|(p, _)| p.starts_with(root))
            .filter_map(|(p, n)| match n {
                Node::File(i) => Some((
                    p.clone(),
                    st.live
                        .data
                        .get(i)
                        .map(|d| d.bytes.clone())
                        .unwrap_or_default(),
                )),
                _ => None,
            })
            .collect()
    }

    /// Pending operations, described.
    pub fn pending(&self) -> Vec<String> {
        self.lock()
            .pending
            .iter()
            .map(|(k, o)| format!("#{k} {}", o.describe()))
            .collect()
    }

    /// The states a power cut right now could leave: every pending operation landed;
    /// none; each one dropped; each prefix; `random` seeded random subsets; and each
    /// pending write torn (half) or zero-filled. Duplicates are removed.
    pub fn crash_states(&self, random: usize, seed: u64) -> Vec<CrashState> {
        let st = self.lock();
        let n = st.pending.len();
        let mut choices: Vec<Choice> = Vec::new();
        choices.push((vec![true; n], None, "every pending operation landed".into()));
        choices.push((vec![false; n], None, "no pending operation landed".into()));
        for i in 0..n {
            let mut keep = vec![true; n];
            keep[i] = false;
            choices.push((keep, None, format!("dropped pending #{}", st.pending[i].0)));
            let prefix: Vec<bool> = (0..n).map(|j| j < i).collect();
            choices.push((
                prefix,
                None,
                format!("only pending before #{} landed", st.pending[i].0),
            ));
            if matches!(st.pending[i].1, Op::Write { .. }) {
                for t in [Tear::Half, Tear::Zero] {
                    choices.push((
                        vec![true; n],
                        Some((i, t)),
                        format!("pending #{} landed {t:?}", st.pending[i].0),
                    ));
                }
            }
        }
        let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        for r in 0..random {
            let keep: Vec<bool> = (0..n)
                .map(|_| {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    rng & 1 == 1
                })
                .collect();
            choices.push((keep, None, format!("random subset {r}")));
        }
        let mut seen: Vec<Image> = Vec::new();
        let mut out = Vec::new();
        for (keep, tear, how) in choices {
            let mut img = st.durable.clone();
            for (i, (_, op)) in st.pending.iter().enumerate() {
                if keep[i] {
                    let t = match tear {
                        Some((j, t)) if j == i => t,
                        _ => Tear::Whole,
                    };
                    img.apply(op, t);
                }
            }
            img.prune();
            if seen.contains(&img) {
                continue;
            }
            seen.push(img.clone());
            let dropped: Vec<String> = st
                .pending
                .iter()
                .zip(&keep)
                .filter(|(_, k)| !**k)
                .map(|((k, o), _)| format!("#{k} {}", o.describe()))
                .collect();
            let how = if dropped.is_empty() {
                how
            } else {
                format!("{how}; not landed: {}", dropped.join("; "))
            };
            let fs = SimFs::new();
            {
                let mut s = fs.lock();
                s.live = img.clone();
                s.durable = img;
                s.next_ino = st.next_ino;
                s.atomic_rename = st.atomic_rename;
            }
            out.push(CrashState { fs, how });
        }
        out
    }

    /// Counts a mutation; fails if the power is already cut.
    fn mutation(st: &mut State, what: String, op: &'static str, path: &Path) -> Result<u64> {
        st.ops += 1;
        if st.crash_at.is_some_and(|k| st.ops >= k) {
            return Err(cut(op, path));
        }
        st.log.push(format!("{}: {what}", st.ops));
        st.touched.push(path.to_path_buf());
        Ok(st.ops)
    }

    /// Resolves `root/dir` without following links. `Ok(None)` if a component is missing.
    fn dir_path(st: &State, root: &Path, dir: Option<&RelPath>) -> Result<Option<PathBuf>> {
        match st.live.ns.get(root) {
            Some(Node::Dir) => {}
            Some(_) => {
                return Err(Error::Symlink {
                    path: root.to_path_buf(),
                })
            }
            None => return Ok(None),
        }
        let mut p = root.to_path_buf();
        if let Some(d) = dir {
            for c in d.components() {
                p.push(c);
                match st.live.ns.get(&p) {
                    Some(Node::Dir) => {}
                    Some(_) => return Err(Error::Symlink { path: p }),
                    None => return Ok(None),
                }
            }
        }
        Ok(Some(p))
    }

    fn parent_path(st: &State, root: &Path, rel: &RelPath, op: &'static str) -> Result<PathBuf> {
        Self::dir_path(st, root, rel.parent().as_ref())?.ok_or_else(|| {
            Error::io(
                op,
                full(root, rel),
                io::Error::new(io::ErrorKind::NotFound, "parent directory does not exist"),
            )
        })
    }

    fn record(st: &mut State, k: u64, op: Op) {
        st.live.apply(&op, Tear::Whole);
        st.pending.push((k, op));
    }

    /// Records a metadata change (chmod, chown) of inode `ino` as one mutation.
    fn record_meta(&self, path: &Path, op: Op) -> Result<()> {
        let mut st = self.lock();
        let what = format!("{} ({})", op.describe(), path.display());
        let k = Self::mutation(&mut st, what, "chmod", path)?;
        Self::record(&mut st, k, op);
        Ok(())
    }

    /// The inode of the regular file `rel`, for a metadata change.
    fn file_ino(&self, root: &Path, rel: &RelPath, op: &'static str) -> Result<(u64, PathBuf)> {
        let st = self.lock();
        let p = Self::parent_path(&st, root, rel, op)?.join(rel.file_name());
        match st.live.ns.get(&p) {
            Some(Node::File(i)) => Ok((*i, p)),
            Some(Node::Symlink) => Err(Error::Symlink { path: p }),
            Some(Node::Dir) => Err(Error::io(
                op,
                p,
                io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"),
            )),
            None => Err(Error::io(
                "open",
                p,
                io::Error::from(io::ErrorKind::NotFound),
            )),
        }
    }

    fn sync_ino(&self, ino: u64, path: &Path) -> Result<()> {
        let mut st = self.lock();
        Self::mutation(&mut st, format!("fsync {}", path.display()), "fsync", path)?;
        st.syncs += 1;
        if st.fail_sync_at == Some(st.syncs) {
            return Err(Error::io("fsync", path, io::Error::from_raw_os_error(5)));
        }
        // A moved name that becomes durable takes with it, in order, what it depends
        // on: the creation of the name it was moved from and the removal of the old
        // target (the first half of the same rename).
        let moved: Vec<(PathBuf, PathBuf)> = st
            .pending
            .iter()
            .filter_map(|(_, o)| match o {
                Op::RenameMove { from, to, ino: i } if *i == ino => {
                    Some((from.clone(), to.clone()))
                }
                _ => None,
            })
            .collect();
        let (now, later): (Vec<_>, Vec<_>) =
            std::mem::take(&mut st.pending)
                .into_iter()
                .partition(|(_, o)| {
                    o.ino() == Some(ino)
                        || match o {
                            Op::RenameDrop { to } => moved.iter().any(|(_, t)| t == to),
                            Op::Create { path, .. } => moved.iter().any(|(f, _)| f == path),
                            _ => false,
                        }
                });
        for (_, o) in &now {
            st.durable.apply(o, Tear::Whole);
        }
        st.pending = later;
        Ok(())
    }
}

struct SimWriter<'a> {
    fs: &'a SimFs,
    ino: u64,
    off: usize,
    path: PathBuf,
}

impl WriteFile for SimWriter<'_> {
    fn write_all(&mut self, buf: &[u8]) -> Result<()> {
        let mut st = self.fs.lock();
        let k = SimFs::mutation(
            &mut st,
            format!("write {} bytes to {}", buf.len(), self.path.display()),
            "write",
            &self.path,
        )?;
        SimFs::record(
            &mut st,
            k,
            Op::Write {
                ino: self.ino,
                off: self.off,
                bytes: buf.to_vec(),
            },
        );
        self.off += buf.len();
        Ok(())
    }

    fn sync_all(&mut self) -> Result<()> {
        self.fs.sync_ino(self.ino, &self.path)
    }

    fn set_owner(&mut self, owner: Owner) -> Result<()> {
        self.fs.record_meta(
            &self.path,
            Op::Chown {
                ino: self.ino,
                owner,
            },
        )
    }

    fn set_mode(&mut self, mode: u32) -> Result<()> {
        self.fs.record_meta(
            &self.path,
            Op::Chmod {
                ino: self.ino,
                mode: mode & 0o7777,
            },
        )
    }
}

impl SimFs {
    /// Opens a file for reading: its live bytes as they are now (later writes do not
    /// show through, as if every write replaced the file) and its metadata.
    fn open_snapshot(&self, root: &Path, rel: &RelPath) -> Result<(Vec<u8>, Meta)> {
        let st = self.lock();
        let p = Self::parent_path(&st, root, rel, "open")?.join(rel.file_name());
        match st.live.ns.get(&p) {
            Some(n @ Node::File(i)) => {
                let bytes = st
                    .live
                    .data
                    .get(i)
                    .map(|d| d.bytes.clone())
                    .unwrap_or_default();
                let m = meta(&st.live, n);
                Ok((bytes, m))
            }
            Some(Node::Symlink) => Err(Error::Symlink { path: p }),
            Some(Node::Dir) => Err(Error::io(
                "open",
                p,
                io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"),
            )),
            None => Err(Error::io(
                "open",
                p,
                io::Error::from(io::ErrorKind::NotFound),
            )),
        }
    }
}

/// What [`SimFs::open_read_at`] reads: the bytes the open saw.
struct Snapshot(Vec<u8>);

impl ReadAt for Snapshot {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let from = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.0.len());
        let n = buf.len().min(self.0.len() - from);
        buf[..n].copy_from_slice(&self.0[from..from + n]);
        Ok(n)
    }
}

impl Fs for SimFs {
    fn boot_id(&self) -> Option<String> {
        self.lock().boot_id.clone()
    }

    fn now(&self) -> std::time::SystemTime {
        match self.lock().clock {
            None => std::time::SystemTime::now(),
            Some(s) if s >= 0 => {
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(s.unsigned_abs())
            }
            Some(s) => std::time::UNIX_EPOCH - std::time::Duration::from_secs(s.unsigned_abs()),
        }
    }

    fn metadata(&self, root: &Path, rel: &RelPath) -> Result<Option<Meta>> {
        let st = self.lock();
        let Some(parent) = Self::dir_path(&st, root, rel.parent().as_ref())? else {
            return Ok(None);
        };
        let p = parent.join(rel.file_name());
        Ok(st.live.ns.get(&p).map(|n| meta(&st.live, n)))
    }

    fn dir_metadata(&self, root: &Path, dir: Option<&RelPath>) -> Result<Option<Meta>> {
        match dir {
            Some(d) => self.metadata(root, d),
            None => {
                let st = self.lock();
                Ok(st.live.ns.get(root).map(|n| meta(&st.live, n)))
            }
        }
    }

    fn read_dir(&self, root: &Path, dir: Option<&RelPath>) -> Result<Vec<DirEntry>> {
        let st = self.lock();
        let p = Self::dir_path(&st, root, dir)?.ok_or_else(|| {
            Error::io(
                "read directory",
                full_dir(root, dir),
                io::Error::from(io::ErrorKind::NotFound),
            )
        })?;
        Ok(st
            .live
            .ns
            .iter()
            .filter(|(c, _)| c.parent() == Some(p.as_path()))
            .map(|(c, n)| {
                let name = c
                    .file_name()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                DirEntry::new(name.as_bytes(), meta(&st.live, n).kind)
            })
            .collect())
    }

    fn open_read(&self, root: &Path, rel: &RelPath) -> Result<Box<dyn Read + Send + '_>> {
        let (bytes, _) = self.open_snapshot(root, rel)?;
        Ok(Box::new(Cursor::new(bytes)))
    }

    fn open_read_at(&self, root: &Path, rel: &RelPath) -> Result<OpenAt> {
        let (bytes, m) = self.open_snapshot(root, rel)?;
        Ok(OpenAt {
            size: bytes.len() as u64,
            file: std::sync::Arc::new(Snapshot(bytes)),
            perm: Perm {
                mode: m.mode,
                owner: m.owner(),
            },
        })
    }

    fn create_new(&self, root: &Path, rel: &RelPath, mode: u32) -> Result<Box<dyn WriteFile + '_>> {
        let mut st = self.lock();
        let p = full(root, rel);
        let k = Self::mutation(&mut st, format!("create {}", p.display()), "create", &p)?;
        let p = Self::parent_path(&st, root, rel, "create")?.join(rel.file_name());
        if st.live.ns.contains_key(&p) {
            return Err(Error::io(
                "create",
                p,
                io::Error::from(io::ErrorKind::AlreadyExists),
            ));
        }
        let ino = st.next_ino;
        st.next_ino += 1;
        Self::record(
            &mut st,
            k,
            Op::Create {
                path: p.clone(),
                ino,
            },
        );
        Self::record(
            &mut st,
            k,
            Op::Chmod {
                ino,
                mode: mode & 0o7777,
            },
        );
        drop(st);
        Ok(Box::new(SimWriter {
            fs: self,
            ino,
            off: 0,
            path: p,
        }))
    }

    fn set_owner(&self, root: &Path, rel: &RelPath, owner: Owner) -> Result<()> {
        let (ino, p) = self.file_ino(root, rel, "chown")?;
        self.record_meta(&p, Op::Chown { ino, owner })
    }

    fn set_mode(&self, root: &Path, rel: &RelPath, mode: u32) -> Result<()> {
        let (ino, p) = self.file_ino(root, rel, "chmod")?;
        self.record_meta(
            &p,
            Op::Chmod {
                ino,
                mode: mode & 0o7777,
            },
        )
    }

    fn rename(&self, root: &Path, from: &RelPath, to: &RelPath) -> Result<()> {
        let mut st = self.lock();
        let f = full(root, from);
        let t = full(root, to);
        let k = Self::mutation(
            &mut st,
            format!("rename {} -> {}", f.display(), t.display()),
            "rename",
            &t,
        )?;
        let f = Self::parent_path(&st, root, from, "rename")?.join(from.file_name());
        let t = Self::parent_path(&st, root, to, "rename")?.join(to.file_name());
        let Some(moved) = st.live.ns.get(&f).cloned() else {
            return Err(Error::io(
                "rename",
                f,
                io::Error::from(io::ErrorKind::NotFound),
            ));
        };
        if st.live.ns.get(&t) == Some(&Node::Dir) {
            return Err(Error::io("rename", t, io::Error::from_raw_os_error(21)));
        }
        if moved == Node::Dir && (st.live.ns.contains_key(&t) || t.starts_with(&f)) {
            // ENOTDIR over a file; EINVAL into itself (rebound never asks either).
            return Err(Error::io("rename", t, io::Error::from_raw_os_error(22)));
        }
        let waiting: Vec<PathBuf> = {
            let mut w: Vec<PathBuf> = [t.parent(), f.parent()]
                .into_iter()
                .flatten()
                .map(Path::to_path_buf)
                .collect();
            w.dedup();
            w
        };
        // vfat's split rename is modelled for a file replacing a file (the write
        // protocol); a directory or link is moved whole.
        if st.atomic_rename || !matches!(moved, Node::File(_)) {
            Self::record(
                &mut st,
                k,
                Op::Rename {
                    from: f,
                    to: t,
                    waiting,
                },
            );
        } else {
            let ino = match st.live.ns.get(&f) {
                Some(Node::File(i)) => *i,
                _ => 0,
            };
            Self::record(&mut st, k, Op::RenameDrop { to: t.clone() });
            Self::record(
                &mut st,
                k,
                Op::RenameMove {
                    from: f,
                    to: t,
                    ino,
                },
            );
        }
        Ok(())
    }

    fn remove_file(&self, root: &Path, rel: &RelPath) -> Result<()> {
        let mut st = self.lock();
        let p = full(root, rel);
        let k = Self::mutation(&mut st, format!("unlink {}", p.display()), "remove", &p)?;
        let p = Self::parent_path(&st, root, rel, "remove")?.join(rel.file_name());
        match st.live.ns.get(&p) {
            Some(Node::File(_)) | Some(Node::Symlink) => {
                Self::record(&mut st, k, Op::Unlink { path: p });
                Ok(())
            }
            Some(Node::Dir) => Err(Error::io("remove", p, io::Error::from_raw_os_error(21))),
            None => Err(Error::io(
                "remove",
                p,
                io::Error::from(io::ErrorKind::NotFound),
            )),
        }
    }

    fn create_dir(&self, root: &Path, rel: &RelPath) -> Result<()> {
        let mut st = self.lock();
        let p = full(root, rel);
        let k = Self::mutation(
            &mut st,
            format!("mkdir {}", p.display()),
            "create directory",
            &p,
        )?;
        let p = Self::parent_path(&st, root, rel, "create directory")?.join(rel.file_name());
        if st.live.ns.contains_key(&p) {
            return Err(Error::io(
                "create directory",
                p,
                io::Error::from(io::ErrorKind::AlreadyExists),
            ));
        }
        Self::record(&mut st, k, Op::Mkdir { path: p });
        Ok(())
    }

    fn root_identity(&self, root: &Path) -> Result<Option<Vec<DirId>>> {
        // No links in the simulated namespace above or at a root: a directory is
        // who its path says, and its identity is a digest of that path.
        let st = self.lock();
        if st.live.ns.get(root) != Some(&Node::Dir) {
            return Ok(None);
        }
        let id = |p: &Path| {
            let h = blake3::hash(p.as_os_str().as_encoded_bytes());
            let mut b = [0u8; 8];
            b.copy_from_slice(&h.as_bytes()[..8]);
            (u64::MAX, u64::from_le_bytes(b))
        };
        Ok(Some(root.ancestors().map(id).collect()))
    }

    fn create_root(&self, root: &Path) -> Result<()> {
        let mut st = self.lock();
        let k = Self::mutation(
            &mut st,
            format!("mkdir {}", root.display()),
            "create directory",
            root,
        )?;
        let parent_ok = root
            .parent()
            .is_some_and(|p| p == Path::new("/") || st.live.ns.get(p) == Some(&Node::Dir));
        if !parent_ok {
            return Err(Error::io(
                "create directory",
                root,
                io::Error::from(io::ErrorKind::NotFound),
            ));
        }
        if st.live.ns.contains_key(root) {
            return Err(Error::io(
                "create directory",
                root,
                io::Error::from(io::ErrorKind::AlreadyExists),
            ));
        }
        Self::record(
            &mut st,
            k,
            Op::Mkdir {
                path: root.to_path_buf(),
            },
        );
        drop(st);
        // The parent (the mount point) is synced, as OsFs does.
        let mut st = self.lock();
        let parent = root.parent().map(Path::to_path_buf).unwrap_or_default();
        Self::sync_names(&mut st, &parent);
        Ok(())
    }

    fn sync_dir(&self, root: &Path, dir: Option<&RelPath>) -> Result<()> {
        let mut st = self.lock();
        let shown = full_dir(root, dir);
        Self::mutation(
            &mut st,
            format!("fsync directory {}", shown.display()),
            "fsync directory",
            &shown,
        )?;
        st.syncs += 1;
        if st.fail_sync_at == Some(st.syncs) {
            return Err(Error::io(
                "fsync directory",
                shown,
                io::Error::from_raw_os_error(5),
            ));
        }
        let p = Self::dir_path(&st, root, dir)?.ok_or_else(|| {
            Error::io(
                "fsync directory",
                full_dir(root, dir),
                io::Error::from(io::ErrorKind::NotFound),
            )
        })?;
        Self::sync_names(&mut st, &p);
        Ok(())
    }

    fn sync_file(&self, root: &Path, rel: &RelPath) -> Result<()> {
        let (ino, p) = {
            let st = self.lock();
            let p = Self::parent_path(&st, root, rel, "fsync")?.join(rel.file_name());
            match st.live.ns.get(&p) {
                Some(Node::File(i)) => (*i, p),
                Some(Node::Symlink) => return Err(Error::Symlink { path: p }),
                _ => {
                    return Err(Error::io(
                        "open",
                        p,
                        io::Error::from(io::ErrorKind::NotFound),
                    ))
                }
            }
        };
        self.sync_ino(ino, &p)
    }
}

impl SimFs {
    /// An independent copy with the same live, durable and pending state (counters,
    /// log and crash point reset), to explore several futures from one state.
    pub fn fork(&self) -> SimFs {
        let st = self.lock();
        let copy = State {
            live: st.live.clone(),
            durable: st.durable.clone(),
            pending: st.pending.clone(),
            next_ino: st.next_ino,
            atomic_rename: st.atomic_rename,
            ..State::default()
        };
        SimFs {
            st: Mutex::new(copy),
        }
    }

    /// Makes the pending name operations of directory `dir` durable, in order (a
    /// rename between two directories once both were synced).
    fn sync_names(st: &mut State, dir: &Path) {
        let mut now = Vec::new();
        let mut later = Vec::new();
        for (k, mut o) in std::mem::take(&mut st.pending) {
            let durable = match &mut o {
                Op::Rename { waiting, .. } => {
                    waiting.retain(|w| w != dir);
                    waiting.is_empty()
                }
                other => other.dir() == Some(dir),
            };
            if durable {
                now.push((k, o));
            } else {
                later.push((k, o));
            }
        }
        for (_, o) in &now {
            st.durable.apply(o, Tear::Whole);
        }
        st.pending = later;
    }
}

fn meta(img: &Image, n: &Node) -> Meta {
    let (kind, size, mode, owner, ino) = match n {
        Node::File(i) => {
            let d = img.data.get(i);
            (
                Kind::File,
                d.map_or(0, |d| d.bytes.len() as u64),
                d.map_or(0o644, |d| d.mode),
                d.map_or(Owner::default(), |d| d.owner),
                *i,
            )
        }
        Node::Dir => (Kind::Dir, 0, 0o755, Owner::default(), 0),
        Node::Symlink => (Kind::Symlink, 0, 0o777, Owner::default(), 0),
    };
    Meta {
        kind,
        size,
        mode,
        uid: owner.uid,
        gid: owner.gid,
        mtime_ns: 0,
        ctime_ns: 0,
        ino,
        dev: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(s: &str) -> RelPath {
        RelPath::new(s).unwrap()
    }

    #[test]
    fn unsynced_data_and_names_are_lost_synced_ones_survive() {
        let fs = SimFs::new();
        fs.mkdir_all(Path::new("/r"));
        let root = Path::new("/r");
        let mut w = fs.create_new(root, &rel("a"), 0o644).unwrap();
        w.write_all(b"hello").unwrap();
        drop(w);
        // Nothing synced: the "none landed" state has no file at all.
        let states = fs.crash_states(0, 1);
        assert!(states.iter().any(|s| s.fs.get(Path::new("/r/a")).is_none()));
        // Data synced but not the name: still lost in the worst case.
        let mut w = fs.create_new(root, &rel("b"), 0o644).unwrap();
        w.write_all(b"world").unwrap();
        w.sync_all().unwrap();
        drop(w);
        let worst = &fs.crash_states(0, 1)[1];
        assert!(worst.fs.get(Path::new("/r/b")).is_none());
        // Name synced too: survives every crash state.
        fs.sync_dir(root, None).unwrap();
        for s in fs.crash_states(4, 1) {
            assert_eq!(
                s.fs.get(Path::new("/r/b")).as_deref(),
                Some(&b"world"[..]),
                "{}",
                s.how
            );
        }
    }

    #[test]
    fn rename_without_file_sync_can_leave_an_empty_file() {
        let fs = SimFs::new();
        fs.put(Path::new("/r/t"), b"old");
        let root = Path::new("/r");
        let mut w = fs.create_new(root, &rel("tmp"), 0o644).unwrap();
        w.write_all(b"new").unwrap();
        drop(w);
        fs.rename(root, &rel("tmp"), &rel("t")).unwrap();
        fs.sync_dir(root, None).unwrap();
        // The classic bug: the name is durable, the data is not.
        let states = fs.crash_states(0, 1);
        assert!(states
            .iter()
            .any(|s| s.fs.get(Path::new("/r/t")) == Some(Vec::new())));
    }

    #[test]
    fn chmod_and_chown_are_durable_only_once_the_file_is_synced() {
        let fs = SimFs::new();
        fs.put(Path::new("/r/f"), b"data");
        let root = Path::new("/r");
        let app = Owner {
            uid: 1000,
            gid: 1000,
        };
        let perm = |s: &SimFs| {
            let m = s.metadata(root, &rel("f")).unwrap().unwrap();
            (m.mode, m.owner())
        };
        fs.set_mode(root, &rel("f"), 0o4755).unwrap();
        // A chown clears setuid, as Linux does: the mode is set again after it.
        fs.set_owner(root, &rel("f"), app).unwrap();
        assert_eq!(perm(&fs), (0o755, app));
        fs.set_mode(root, &rel("f"), 0o4755).unwrap();
        assert_eq!(perm(&fs), (0o4755, app));
        let states = fs.crash_states(4, 1);
        assert!(states
            .iter()
            .any(|s| perm(&s.fs) == (0o644, Owner::default())));
        // Syncing the directory does not make them durable; syncing the file does.
        fs.sync_dir(root, None).unwrap();
        assert!(fs
            .crash_states(4, 1)
            .iter()
            .any(|s| perm(&s.fs) != (0o4755, app)));
        fs.sync_file(root, &rel("f")).unwrap();
        for s in fs.crash_states(4, 1) {
            assert_eq!(perm(&s.fs), (0o4755, app), "{}", s.how);
        }
        // Links are refused, never followed.
        fs.put_symlink(Path::new("/r/l"));
        assert!(matches!(
            fs.set_mode(root, &rel("l"), 0o600),
            Err(Error::Symlink { .. })
        ));
        assert!(matches!(
            fs.set_owner(root, &rel("l"), app),
            Err(Error::Symlink { .. })
        ));
    }

    #[test]
    fn non_atomic_rename_can_lose_the_target_name() {
        let fs = SimFs::new();
        fs.set_atomic_rename(false);
        fs.put(Path::new("/r/t"), b"old");
        let root = Path::new("/r");
        let mut w = fs.create_new(root, &rel("tmp"), 0o644).unwrap();
        w.write_all(b"new").unwrap();
        w.sync_all().unwrap();
        drop(w);
        fs.sync_dir(root, None).unwrap();
        fs.rename(root, &rel("tmp"), &rel("t")).unwrap();
        let states = fs.crash_states(0, 1);
        assert!(states.iter().any(|s| s.fs.get(Path::new("/r/t")).is_none()));
    }

    #[test]
    fn links_inside_a_root_are_never_followed() {
        let fs = SimFs::new();
        fs.mkdir_all(Path::new("/r"));
        fs.put_symlink(Path::new("/r/dir"));
        let e = fs.metadata(Path::new("/r"), &rel("dir/x")).unwrap_err();
        assert!(matches!(e, Error::Symlink { .. }), "{e}");
        assert!(matches!(
            fs.open_read(Path::new("/r"), &rel("dir")),
            Err(Error::Symlink { .. })
        ));
    }

    #[test]
    fn a_directory_moved_between_directories_is_whole_under_one_name_in_every_crash_state() {
        let fs = SimFs::new();
        fs.put(Path::new("/r/a/d/x"), b"x");
        fs.put(Path::new("/r/a/d/sub/y"), b"y");
        fs.mkdir_all(Path::new("/r/m/n"));
        let root = Path::new("/r");
        fs.rename(root, &rel("a/d"), &rel("m/n/d")).unwrap();
        assert_eq!(
            fs.get(Path::new("/r/m/n/d/sub/y")).as_deref(),
            Some(&b"y"[..])
        );
        assert!(fs.get(Path::new("/r/a/d/x")).is_none());
        let whole = |s: &SimFs| {
            let old = s.files_under(Path::new("/r/a")).len();
            let new = s.files_under(Path::new("/r/m")).len();
            (old, new)
        };
        for s in fs.crash_states(8, 3) {
            let w = whole(&s.fs);
            assert!(w == (2, 0) || w == (0, 2), "{w:?} {}", s.how);
        }
        // One parent synced: still pending; both: durable.
        fs.sync_dir(root, Some(&rel("m/n"))).unwrap();
        assert!(fs.crash_states(0, 1).iter().any(|s| whole(&s.fs) == (2, 0)));
        fs.sync_dir(root, Some(&rel("a"))).unwrap();
        for s in fs.crash_states(8, 3) {
            assert_eq!(whole(&s.fs), (0, 2), "{}", s.how);
        }
    }

    #[test]
    fn crash_at_stops_every_later_mutation() {
        let fs = SimFs::new();
        fs.mkdir_all(Path::new("/r"));
        fs.set_crash_at(Some(2));
        let root = Path::new("/r");
        fs.create_dir(root, &rel("a")).unwrap();
        assert!(fs.create_dir(root, &rel("b")).is_err());
        assert!(fs.crashed());
        assert!(fs.get(Path::new("/r/b")).is_none());
    }

    #[test]
    fn failing_sync_reports_eio() {
        let fs = SimFs::new();
        fs.mkdir_all(Path::new("/r"));
        fs.set_fail_sync_at(Some(1));
        let e = fs.sync_dir(Path::new("/r"), None).unwrap_err();
        assert!(e.to_string().contains("fsync"), "{e}");
    }
}
