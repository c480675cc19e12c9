//! Parallel hashing of a list of files: the part of a verification pass that costs.
//!
//! Files are handed out one at a time from a shared counter to at most `threads`
//! workers (the calling thread is one of them; the others are scoped threads, so
//! nothing outlives the call). Each worker reads through one [`Cursor`] per replica
//! root (keeping the last directory open) into one page-aligned buffer of [`CHUNK`]
//! bytes that it reuses for every file: memory does not depend on file sizes or on
//! the number of files beyond one result per file, and no file is buffered whole.
//!
//! Why aligned: the kernel copies page-cache pages into the buffer; a buffer that
//! starts a few bytes past a page boundary (a plain `Vec<u8>` may) makes that copy
//! several times slower. Why a counter instead of fixed shares: file sizes vary by
//! orders of magnitude, and adjacent files share a directory, which keeps each
//! worker's cursor warm.
//!
//! Results come back in the order of the input, one per file, so callers see
//! exactly what a sequential pass would have produced, whatever the thread count.
//!
//! # One large file, many threads
//!
//! With blake3 and more than one thread, a file larger than [`SPLIT_ABOVE`] is
//! hashed by all the workers of the pass, so that one 1 GiB file does not leave the
//! others idle. No second pool: the worker that opens the file puts its pieces up
//! on the pass's board, and every worker claims pieces before new files (so the
//! split file is done first and at most one file per worker is in pieces at once).
//! A worker with nothing to claim waits only while another is still opening a file
//! that may yet be split, so no worker leaves while pieces can still come, and none
//! waits for a piece in progress: whoever hashes the last piece finishes the file.
//!
//! The pieces are whole subtrees of blake3's tree: the input is halved at
//! `left_subtree_len` (a power of two of 1 KiB chunks) until each part is at most
//! [`PIECE`] bytes; each is hashed with `set_input_offset` to its chaining value
//! (`finalize_non_root`), and the values are merged back along the same halvings
//! (`merge_subtrees_non_root`, then `merge_subtrees_root` at the top): the result is
//! `blake3::hash` of the whole file, as the tests check around chunk, piece and tree
//! boundaries. crc32, xxh3 and sha256 are sequential by construction: their files
//! are always read by one worker.
//!
//! The file is opened once ([`Fs::open_read_at`], with the checks of every open: a
//! regular file, no link followed, mode and owner from the `fstat` of that open) and
//! every worker reads its pieces from that one handle with positioned reads, so a
//! file replaced by rename meanwhile cannot mix two contents. A one-thread pass
//! hashes what it reads until the end of the file (size = bytes hashed); a split
//! file is read to the size its open saw, then must end there. If a piece meets the
//! end early (the file shrank) or bytes follow that size (it grew), the pieces are
//! dropped and the same open file is hashed again by one worker from its start to
//! its end, which is what a one-thread pass reading it then gets. A read error in
//! any piece fails the file with that error, as it fails a one-thread pass.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use blake3::hazmat::{
    left_subtree_len, merge_subtrees_non_root, merge_subtrees_root, ChainingValue, HasherExt, Mode,
};

use crate::digest::{Digest, HashAlgo};
use crate::error::{Error, Result};
use crate::fs::{full, Cursor, Fs, OpenAt, ReadAt};
use crate::manifest::Owner;
use crate::relpath::RelPath;

/// Read size of every hash loop and of the durable copy: large enough that system
/// calls cost little against the copy and the hash, small enough to stay in the L2
/// cache while it is hashed.
pub const CHUNK: usize = 256 * 1024;

/// A file larger than this is split among the workers of a pass (blake3, more than
/// one thread). Below it, the cost of a file is mostly its open and its first reads,
/// and the other workers have other files to take.
pub const SPLIT_ABOVE: u64 = 8 << 20;

/// The largest piece of a split file: a power of two of blake3 chunks (so pieces are
/// whole subtrees of its tree), large enough that each worker reads long sequential
/// runs, small enough that a few hundred MiB make dozens of pieces to share.
pub const PIECE: u64 = 4 << 20;

/// Page size the buffer is aligned to.
const ALIGN: usize = 4096;

/// Most threads [`default_threads`] picks: beyond that, a boot-time check competes
/// with the services starting beside it for little gain (storage is the limit).
pub const MAX_DEFAULT_THREADS: usize = 4;

/// The default thread count: the CPUs this process may use, at most
/// [`MAX_DEFAULT_THREADS`], at least one.
pub fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .clamp(1, MAX_DEFAULT_THREADS)
}

/// A reusable read buffer whose first byte sits on a page boundary.
///
/// Safe code cannot ask the allocator for an alignment with a plain `Vec<u8>`, so the
/// storage is one page larger than needed and the buffer is the aligned window in it.
#[derive(Debug)]
pub struct AlignedBuf {
    storage: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBuf {
    /// A zeroed buffer of `len` bytes.
    pub fn new(len: usize) -> AlignedBuf {
        let storage = vec![0u8; len + ALIGN];
        // `align_offset` may in principle decline (return a huge value); then fall
        // back to the start: slower, never wrong.
        let off = storage.as_ptr().align_offset(ALIGN);
        let start = if off < ALIGN { off } else { 0 };
        AlignedBuf {
            storage,
            start,
            len,
        }
    }

    /// The buffer.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.storage[self.start..self.start + self.len]
    }
}

/// One file to hash: a replica root and a path below it.
pub type Job<'a> = (&'a Path, &'a RelPath);

/// What hashing one file found: the digest of exactly `size` bytes, read from a
/// regular file whose permission bits were `mode` and owner `owner` when it was
/// opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hashed {
    pub digest: Digest,
    pub size: u64,
    pub mode: u32,
    pub owner: Owner,
}

/// Hashes every file of `jobs` with `algo` on at most `threads` threads (at least
/// one: the caller's). Result `i` is the digest of `jobs[i]`, or why it could not be
/// read; one unreadable file never stops the others.
///
/// With blake3 and more than one thread, a file larger than [`SPLIT_ABOVE`] is
/// hashed in pieces by all the workers (see the module doc); its digest and size are
/// those a one-thread pass gives.
pub fn hash_files<'a>(
    fs: &'a dyn Fs,
    jobs: &[Job<'a>],
    algo: HashAlgo,
    threads: usize,
) -> Vec<Result<Hashed>> {
    let layout = Layout {
        above: SPLIT_ABOVE,
        piece: PIECE,
    };
    hash_files_in(fs, jobs, algo, threads, layout).0
}

/// When and how a file is split: files larger than `above` bytes, in pieces of at
/// most `piece` bytes (a power of two, at least blake3's 1 KiB chunk, at most
/// `above`). [`SPLIT_ABOVE`] and [`PIECE`] outside tests; tests use small ones to
/// reach every shape of the tree with small files.
#[derive(Debug, Clone, Copy)]
struct Layout {
    above: u64,
    piece: u64,
}

/// [`hash_files`] with `layout`; also how many files were hashed in pieces and
/// merged (the others were read whole by one worker).
fn hash_files_in<'a>(
    fs: &'a dyn Fs,
    jobs: &[Job<'a>],
    algo: HashAlgo,
    threads: usize,
    layout: Layout,
) -> (Vec<Result<Hashed>>, usize) {
    if jobs.is_empty() {
        return (Vec::new(), 0);
    }
    let split = algo == HashAlgo::Blake3 && threads > 1;
    // Without splitting, a worker beyond one per file would find nothing to do; with
    // it, a single large file keeps every worker busy.
    let workers = if split {
        threads
    } else {
        threads.clamp(1, jobs.len())
    };
    let pass = Pass {
        fs,
        jobs,
        algo,
        split,
        layout,
        board: Mutex::new(Board {
            next_file: 0,
            opening: 0,
            splits: VecDeque::new(),
            waiting: 0,
        }),
        wake: Condvar::new(),
        out: Mutex::new((0..jobs.len()).map(|_| None).collect()),
        merged: AtomicUsize::new(0),
    };
    let worker = || pass.work();
    std::thread::scope(|s| {
        let mut handles = Vec::with_capacity(workers - 1);
        for i in 1..workers {
            // A thread that cannot be started is no failure: the others, and at
            // least the caller, take its share.
            if let Ok(h) = std::thread::Builder::new()
                .name(format!("rebound-hash-{i}"))
                .spawn_scoped(s, worker)
            {
                handles.push(h);
            }
        }
        worker();
        for h in handles {
            // A worker that panicked leaves its current file without a result:
            // reported below as an error, never as a digest.
            let _ = h.join();
        }
    });
    let merged = pass.merged.into_inner();
    let out = pass
        .out
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);
    let out = out
        .into_iter()
        .zip(jobs)
        .map(|(r, (root, rel))| {
            r.unwrap_or_else(|| {
                Err(Error::io(
                    "hash",
                    full(root, rel),
                    io::Error::other("internal: the hashing thread stopped"),
                ))
            })
        })
        .collect();
    (out, merged)
}

/// One hashing pass: the files, what is left to hand out, and the results.
struct Pass<'p, 'a> {
    fs: &'a dyn Fs,
    jobs: &'p [Job<'a>],
    algo: HashAlgo,
    /// Whether a large file is split among the workers (blake3, several threads).
    split: bool,
    layout: Layout,
    board: Mutex<Board>,
    /// Signalled when a split file's pieces are put up or the last open in flight
    /// ends: the two things a worker with nothing to claim waits for.
    wake: Condvar,
    /// One slot per file, filled in place: no second copy of the results to merge.
    out: Mutex<Vec<Option<Result<Hashed>>>>,
    /// Files whose digest was merged from their pieces.
    merged: AtomicUsize,
}

/// What is left to hand out.
struct Board {
    /// The next file of the input to claim.
    next_file: usize,
    /// Files claimed whose open has not yet told whether they are split: until it
    /// has, an idle worker waits instead of leaving (their pieces may come).
    opening: usize,
    /// Split files with pieces not yet claimed, oldest first, each with its next
    /// piece: pieces are claimed before new files, so a split file finishes first.
    splits: VecDeque<(Arc<Split>, usize)>,
    /// Workers waiting on [`Pass::wake`]: without any, an open that ends wakes
    /// nobody (a wake is a system call, and a pass of small files makes one per file).
    waiting: usize,
}

/// One unit of work.
enum Task {
    /// File `i` of the input.
    File(usize),
    /// Piece `k` of a split file.
    Piece(Arc<Split>, usize),
}

/// A large file hashed in pieces: each piece a whole subtree of blake3's tree.
struct Split {
    /// Its index in the input.
    i: usize,
    /// Its full path, for messages.
    name: PathBuf,
    open: OpenAt,
    /// The largest piece ([`Layout::piece`]).
    piece: u64,
    /// `(offset, length)` of each piece, in file order ([`pieces`]).
    pieces: Vec<(u64, u64)>,
    progress: Mutex<Progress>,
}

/// What the pieces of a [`Split`] found so far.
struct Progress {
    cvs: Vec<Option<ChainingValue>>,
    /// Pieces not yet hashed.
    left: usize,
    /// The first read error.
    error: Option<io::Error>,
    /// A piece met the end of the file before its end: the file shrank.
    short: bool,
}

impl Pass<'_, '_> {
    /// One worker: claims pieces and files until none is left, through its own
    /// aligned buffer and a cursor on the root it last opened a file in.
    fn work(&self) {
        let mut buf = AlignedBuf::new(CHUNK);
        let mut cursor: Option<(&Path, Box<dyn Cursor + '_>)> = None;
        while let Some(task) = self.take() {
            match task {
                Task::Piece(s, k) => self.hash_piece(&s, k, buf.as_mut_slice()),
                Task::File(i) => {
                    // Counted in `Board::opening` since `take`: the guard uncounts it
                    // however this ends, also by unwinding (in `cursor`, say) before
                    // the open, so no other worker waits for that open forever.
                    let opening = self.split.then_some(Opening {
                        pass: self,
                        split: None,
                    });
                    let Some(&(root, rel)) = self.jobs.get(i) else {
                        continue;
                    };
                    if cursor.as_ref().is_none_or(|(r, _)| *r != root) {
                        cursor = Some((root, self.fs.cursor(root)));
                    }
                    if let Some((_, c)) = cursor.as_mut() {
                        self.hash_file(i, opening, &mut **c, root, rel, buf.as_mut_slice());
                    }
                }
            }
        }
    }

    /// The next task: a piece of the oldest split file, else the next file, else
    /// (while an open in flight may still put up pieces) wait; `None` when nothing
    /// is left and nothing can come.
    fn take(&self) -> Option<Task> {
        let mut b = self.board.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some((s, next)) = b.splits.front_mut() {
                let (task, all) = (
                    Task::Piece(Arc::clone(s), *next),
                    *next + 1 >= s.pieces.len(),
                );
                *next += 1;
                if all {
                    b.splits.pop_front();
                }
                return Some(task);
            }
            if b.next_file < self.jobs.len() {
                let i = b.next_file;
                b.next_file += 1;
                if self.split {
                    b.opening += 1;
                }
                return Some(Task::File(i));
            }
            if !self.split || b.opening == 0 {
                return None;
            }
            b.waiting += 1;
            b = self.wake.wait(b).unwrap_or_else(PoisonError::into_inner);
            b.waiting -= 1;
        }
    }

    /// Stores the result of file `i`. The lock is held only to store it (tens of
    /// nanoseconds against microseconds per file). A poisoned lock still holds valid
    /// slots.
    fn store(&self, i: usize, r: Result<Hashed>) {
        let mut slots = self.out.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = slots.get_mut(i) {
            *slot = Some(r);
        }
    }

    /// Opens file `i` and hashes it, or (`opening`: the pass splits files) puts its
    /// pieces up for every worker.
    fn hash_file(
        &self,
        i: usize,
        opening: Option<Opening<'_, '_, '_>>,
        c: &mut dyn Cursor,
        root: &Path,
        rel: &RelPath,
        buf: &mut [u8],
    ) {
        let Some(mut opening) = opening else {
            self.store(i, hash_one(c, root, rel, self.algo, buf));
            return;
        };
        let open = match c.open_read_at(rel) {
            Ok(open) => open,
            Err(e) => {
                drop(opening);
                self.store(i, Err(e));
                return;
            }
        };
        if open.size > self.layout.above {
            let s = Split::new(i, full(root, rel), open, self.layout.piece);
            opening.split = Some(Arc::new(s));
            // Dropped: the pieces are up, for this worker too.
            return;
        }
        drop(opening);
        // The path is made only for a message (most files have none).
        let r = hash_counted(
            &mut AtReader {
                file: &*open.file,
                pos: 0,
            },
            &|| full(root, rel),
            self.algo,
            buf,
        )
        .map(|(digest, size)| Hashed {
            digest,
            size,
            mode: open.perm.mode,
            owner: open.perm.owner,
        });
        self.store(i, r);
    }

    /// Hashes piece `k` of `s`; the worker that hashes the last one finishes the file.
    fn hash_piece(&self, s: &Split, k: usize, buf: &mut [u8]) {
        if s.hash_piece(k, buf) {
            let (r, merged) = s.finish(buf);
            if merged {
                self.merged.fetch_add(1, Ordering::Relaxed);
            }
            self.store(s.i, r);
        }
    }
}

/// A file claimed but not yet known to be split or not: counted in
/// [`Board::opening`] until dropped (also when its worker unwinds, so that no other
/// worker waits for it forever). Dropped with `split` set, it puts that file's
/// pieces up in the same step, so no worker sees neither the open nor the pieces.
struct Opening<'x, 'p, 'a> {
    pass: &'x Pass<'p, 'a>,
    split: Option<Arc<Split>>,
}

impl Drop for Opening<'_, '_, '_> {
    fn drop(&mut self) {
        let mut b = self
            .pass
            .board
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(s) = self.split.take() {
            b.splits.push_back((s, 0));
        }
        b.opening = b.opening.saturating_sub(1);
        let wake = b.waiting > 0;
        drop(b);
        if wake {
            self.pass.wake.notify_all();
        }
    }
}

impl Split {
    /// File `i` of the input, named `name`, open as `open`, in pieces of at most
    /// `piece` bytes.
    fn new(i: usize, name: PathBuf, open: OpenAt, piece: u64) -> Split {
        let pieces = pieces(open.size, piece);
        Split {
            i,
            name,
            open,
            piece,
            progress: Mutex::new(Progress {
                cvs: vec![None; pieces.len()],
                left: pieces.len(),
                error: None,
                short: false,
            }),
            pieces,
        }
    }

    /// Hashes piece `k`; `true` if it was the last one left (then call
    /// [`Split::finish`]).
    fn hash_piece(&self, k: usize, buf: &mut [u8]) -> bool {
        let Some(&(offset, len)) = self.pieces.get(k) else {
            return false;
        };
        let r = piece_cv(&*self.open.file, offset, len, buf);
        let mut p = self.progress.lock().unwrap_or_else(PoisonError::into_inner);
        match r {
            Ok(Some(cv)) => {
                if let Some(slot) = p.cvs.get_mut(k) {
                    *slot = Some(cv);
                }
            }
            Ok(None) => p.short = true,
            Err(e) => {
                p.error.get_or_insert(e);
            }
        }
        p.left = p.left.saturating_sub(1);
        p.left == 0
    }

    /// The file's result once every piece is hashed: the root of the pieces' chaining
    /// values if the file ended exactly at the size its open saw ([`Split::merged`]);
    /// a read error as the one-thread pass reports it; and if the file shrank or grew
    /// meanwhile, a sequential hash of the same open file to its end, as the
    /// one-thread pass would have read it (size = bytes hashed).
    /// The flag says whether the digest came from the pieces.
    fn finish(&self, buf: &mut [u8]) -> (Result<Hashed>, bool) {
        let hashed = |digest, size| Hashed {
            digest,
            size,
            mode: self.open.perm.mode,
            owner: self.open.perm.owner,
        };
        match self.merged(buf) {
            Ok(Some(root)) => return (Ok(hashed(root, self.open.size)), true),
            Ok(None) => {}
            Err(e) => return (Err(e), false),
        }
        let mut r = AtReader {
            file: &*self.open.file,
            pos: 0,
        };
        let r = hash_counted(&mut r, &|| self.name.clone(), HashAlgo::Blake3, buf)
            .map(|(d, n)| hashed(d, n));
        (r, false)
    }

    /// The digest merged from the pieces, once all are hashed; `None` if they do not
    /// make the file (one came short, the file does not end at the size its open saw,
    /// or it is a single piece).
    ///
    /// # Errors
    /// The first read error of a piece or of the end-of-file check, naming the file.
    fn merged(&self, buf: &mut [u8]) -> Result<Option<Digest>> {
        let mut p = self.progress.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(e) = p.error.take() {
            return Err(Error::io("read", &self.name, e));
        }
        if p.short
            || !ends_at(&*self.open.file, self.open.size, buf)
                .map_err(|e| Error::io("read", &self.name, e))?
        {
            return Ok(None);
        }
        let Some(cvs) = p
            .cvs
            .iter()
            .copied()
            .collect::<Option<Vec<ChainingValue>>>()
        else {
            return Ok(None);
        };
        Ok(root_of(self.open.size, self.piece, &cvs).map(|r| Digest::from_slice(r.as_bytes())))
    }
}

/// Whether `file` ends at `size`: a read there finds nothing.
fn ends_at(file: &dyn ReadAt, size: u64, buf: &mut [u8]) -> io::Result<bool> {
    let Some(one) = buf.get_mut(..1) else {
        return Ok(true);
    };
    loop {
        match file.read_at(one, size) {
            Ok(n) => return Ok(n == 0),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// The pieces of a `size`-byte input as `(offset, length)`, in order: the subtrees
/// of blake3's tree (each left subtree a power of two of chunks, [`left_subtree_len`])
/// split in two until each is at most `piece` bytes. `piece` is a power of two of at
/// least one chunk, so every piece starts on a chunk boundary that its length fits:
/// the only layout whose chaining values merge into blake3's root.
fn pieces(size: u64, piece: u64) -> Vec<(u64, u64)> {
    fn walk(offset: u64, len: u64, piece: u64, out: &mut Vec<(u64, u64)>) {
        if len <= piece {
            out.push((offset, len));
        } else {
            let left = left_subtree_len(len);
            walk(offset, left, piece, out);
            walk(offset + left, len - left, piece, out);
        }
    }
    let mut out = Vec::new();
    walk(0, size, piece, &mut out);
    out
}

/// The blake3 root of a `size`-byte input from the chaining values of its
/// [`pieces`] (same `piece`), merged along the same tree. `None` if the input is one
/// piece (it has no parent node: hash it whole) or `cvs` does not fit.
fn root_of(size: u64, piece: u64, cvs: &[ChainingValue]) -> Option<blake3::Hash> {
    fn cv(
        len: u64,
        piece: u64,
        cvs: &mut std::slice::Iter<'_, ChainingValue>,
    ) -> Option<ChainingValue> {
        if len <= piece {
            return cvs.next().copied();
        }
        let left = left_subtree_len(len);
        let l = cv(left, piece, cvs)?;
        let r = cv(len - left, piece, cvs)?;
        Some(merge_subtrees_non_root(&l, &r, Mode::Hash))
    }
    if size <= piece {
        return None;
    }
    let mut it = cvs.iter();
    let left = left_subtree_len(size);
    let l = cv(left, piece, &mut it)?;
    let r = cv(size - left, piece, &mut it)?;
    if it.next().is_some() {
        return None;
    }
    Some(merge_subtrees_root(&l, &r, Mode::Hash))
}

/// The chaining value of the piece of `len` bytes at `offset` (a subtree from
/// [`pieces`]), read through `buf`; `None` if the file ends before the piece does,
/// or for an empty piece (no subtree is empty: only an empty file has one, and it is
/// never split).
fn piece_cv(
    file: &dyn ReadAt,
    offset: u64,
    len: u64,
    buf: &mut [u8],
) -> io::Result<Option<ChainingValue>> {
    if len == 0 {
        return Ok(None);
    }
    let mut h = blake3::Hasher::new();
    h.set_input_offset(offset);
    let end = offset + len;
    let mut pos = offset;
    while pos < end {
        let want = usize::try_from(end - pos)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        match file.read_at(&mut buf[..want], pos) {
            Ok(0) => return Ok(None),
            Ok(n) => {
                h.update(&buf[..n]);
                pos += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Some(h.finalize_non_root()))
}

/// Reads a [`ReadAt`] from `pos` on, as a plain reader.
struct AtReader<'f> {
    file: &'f dyn ReadAt,
    pos: u64,
}

impl Read for AtReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// Opens and hashes one file through `cursor`, streaming it through `buf`.
fn hash_one(
    cursor: &mut dyn Cursor,
    root: &Path,
    rel: &RelPath,
    algo: HashAlgo,
    buf: &mut [u8],
) -> Result<Hashed> {
    let (mut r, perm) = cursor.open_read_perm(rel)?;
    let (digest, size) = hash_counted(&mut *r, &|| full(root, rel), algo, buf)?;
    Ok(Hashed {
        digest,
        size,
        mode: perm.mode,
        owner: perm.owner,
    })
}

/// Hashes everything `r` yields, through `buf` (best [`CHUNK`] bytes long).
///
/// # Errors
/// The read error, naming `name`.
pub fn hash_reader(
    r: &mut dyn Read,
    name: &Path,
    algo: HashAlgo,
    buf: &mut [u8],
) -> Result<Digest> {
    hash_counted(r, &|| name.to_path_buf(), algo, buf).map(|(d, _)| d)
}

/// The one hash loop: the digest of everything `r` yields, and how many bytes that was.
fn hash_counted(
    r: &mut dyn Read,
    name: &dyn Fn() -> PathBuf,
    algo: HashAlgo,
    buf: &mut [u8],
) -> Result<(Digest, u64)> {
    let mut h = algo.hasher();
    let mut size = 0u64;
    loop {
        match r.read(buf) {
            Ok(0) => return Ok((h.finish(), size)),
            Ok(n) => {
                h.update(&buf[..n]);
                size += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io("read", name(), e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::os::OsFs;
    use crate::fs::sim::SimFs;

    fn rel(s: &str) -> RelPath {
        RelPath::new(s).unwrap()
    }

    /// Content of file `i`: sizes from empty to several buffers, around CHUNK.
    fn content(i: usize) -> Vec<u8> {
        let len = match i % 5 {
            0 => 0,
            1 => 1 + i,
            2 => CHUNK - 1,
            3 => CHUNK + 1,
            _ => 3 * CHUNK + i,
        };
        (0..len).map(|b| (b * 31 + i) as u8).collect()
    }

    #[test]
    fn aligned_buffer_starts_on_a_page_and_has_the_asked_length() {
        for len in [1, 4095, 4096, CHUNK] {
            let mut b = AlignedBuf::new(len);
            let s = b.as_mut_slice();
            assert_eq!(s.len(), len);
            assert_eq!(s.as_ptr() as usize % ALIGN, 0);
        }
    }

    #[test]
    fn any_thread_count_gives_the_sequential_digests_in_input_order() {
        let fs = SimFs::new();
        let roots = [PathBuf::from("/a"), PathBuf::from("/b")];
        let mut names = Vec::new();
        for i in 0..23 {
            let root = &roots[i % 2];
            let name = format!("d{}/f{i}", i % 3);
            fs.put(&root.join(&name), &content(i));
            names.push((root.clone(), rel(&name)));
        }
        let jobs: Vec<Job<'_>> = names.iter().map(|(r, p)| (r.as_path(), p)).collect();
        for algo in HashAlgo::ALL {
            let want: Vec<Digest> = (0..23).map(|i| algo.digest(&content(i))).collect();
            for threads in [0, 1, 2, 3, 8, 64] {
                let got: Vec<Digest> = hash_files(&fs, &jobs, algo, threads)
                    .into_iter()
                    .map(|r| r.unwrap().digest)
                    .collect();
                assert_eq!(got, want, "{algo} on {threads} threads");
            }
        }
        assert!(hash_files(&fs, &[], HashAlgo::Blake3, 4).is_empty());
    }

    #[test]
    fn an_unreadable_file_fails_alone_and_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("d")).unwrap();
        std::fs::write(root.join("d/a"), b"a").unwrap();
        std::fs::write(root.join("d/c"), b"c").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("d/link")).unwrap();
        std::fs::create_dir(root.join("d/dir")).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("up")).unwrap();
        let paths = ["d/a", "d/missing", "d/link", "d/dir", "up/passwd", "d/c"].map(rel);
        let jobs: Vec<Job<'_>> = paths.iter().map(|p| (root, p)).collect();
        // Blake3 on several threads opens through `open_read_at` (the open that may
        // split a file): the same refusals.
        for (algo, threads) in [
            (HashAlgo::Crc32, 1),
            (HashAlgo::Crc32, 2),
            (HashAlgo::Crc32, 4),
        ]
        .into_iter()
        .chain([1, 2, 4].map(|t| (HashAlgo::Blake3, t)))
        {
            let got = hash_files(&OsFs::new(), &jobs, algo, threads);
            assert_eq!(got.len(), 6);
            assert_eq!(got[0].as_ref().unwrap().digest, algo.digest(b"a"));
            assert_eq!(got[5].as_ref().unwrap().digest, algo.digest(b"c"));
            for (i, want) in [(1, "d/missing"), (2, "d/link"), (3, "d/dir"), (4, "up")] {
                let e = got[i].as_ref().unwrap_err().to_string();
                assert!(e.contains(want), "file {i}: {e}");
            }
            // Links are refused, never followed out of the root.
            assert!(matches!(got[2], Err(Error::Symlink { .. })), "{:?}", got[2]);
            assert!(matches!(got[4], Err(Error::Symlink { .. })), "{:?}", got[4]);
        }
    }

    #[test]
    fn os_cursor_agrees_with_the_plain_calls_across_directories() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let mut paths = Vec::new();
        for (i, p) in ["top", "x/a", "x/b", "x/y/c", "z/d", "x/e"]
            .iter()
            .enumerate()
        {
            let full = root.join(p);
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(&full, content(i)).unwrap();
            paths.push(rel(p));
        }
        let fs = OsFs::new();
        let mut c = fs.cursor(root);
        for p in paths.iter().chain(&[rel("x/nope"), rel("nope/f")]) {
            assert_eq!(c.metadata(p).unwrap(), fs.metadata(root, p).unwrap(), "{p}");
        }
        let jobs: Vec<Job<'_>> = paths.iter().map(|p| (root, p)).collect();
        let got = hash_files(&fs, &jobs, HashAlgo::Xxh3, 2);
        for (i, r) in got.iter().enumerate() {
            let h = r.as_ref().unwrap();
            assert_eq!(h.digest, HashAlgo::Xxh3.digest(&content(i)));
            // Size, mode and owner come from the open itself, and agree with lstat.
            let m = fs.metadata(root, &paths[i]).unwrap().unwrap();
            assert_eq!(
                (h.size, h.mode, h.owner),
                (m.size, m.mode, m.owner()),
                "{}",
                paths[i]
            );
        }
    }

    /// Bytes `0..len` of a pattern that differs at every position of a chunk and
    /// between chunks, so a piece hashed at the wrong offset shows.
    fn pattern(len: usize, seed: usize) -> Vec<u8> {
        (0..len)
            .map(|b| (b.wrapping_mul(31) ^ (b >> 10).wrapping_mul(7) ^ seed) as u8)
            .collect()
    }

    /// A file in memory, for [`Split`] without a filesystem; `size` is what its
    /// open claims (a file that grew or shrank since says more or less than `data`).
    struct Mem(Vec<u8>);

    impl ReadAt for Mem {
        fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
            let from = usize::try_from(offset).unwrap().min(self.0.len());
            let n = buf.len().min(self.0.len() - from);
            buf[..n].copy_from_slice(&self.0[from..from + n]);
            Ok(n)
        }
    }

    fn open_mem(data: Vec<u8>, size: u64) -> OpenAt {
        OpenAt {
            file: Arc::new(Mem(data)),
            size,
            perm: crate::fs::Perm {
                mode: 0o640,
                owner: Owner { uid: 7, gid: 8 },
            },
        }
    }

    /// Hashes a split file's pieces in a shuffled order on one thread, then finishes;
    /// also whether the digest came from the pieces.
    fn split_alone(open: OpenAt, piece: u64) -> (Result<Hashed>, bool) {
        let s = Split::new(0, PathBuf::from("/r/big"), open, piece);
        let mut buf = AlignedBuf::new(CHUNK);
        let n = s.pieces.len();
        let mut last = false;
        for k in (0..n)
            .rev()
            .step_by(2)
            .chain((0..n).rev().skip(1).step_by(2))
        {
            assert!(!last, "a piece after the last");
            last = s.hash_piece(k, buf.as_mut_slice());
        }
        assert!(last || n == 0);
        s.finish(buf.as_mut_slice())
    }

    #[test]
    fn pieces_are_aligned_subtrees_that_cover_the_file_in_order() {
        for piece in [1024u64, 2048, 8192] {
            for size in [
                piece + 1,
                3 * piece,
                5 * piece + 7,
                64 * piece,
                64 * piece + 1,
            ] {
                let ps = pieces(size, piece);
                let mut at = 0;
                for &(off, len) in &ps {
                    assert_eq!(off, at, "{size}/{piece}: contiguous");
                    assert!(len > 0 && len <= piece, "{size}/{piece}: {len}");
                    // A subtree starts on a chunk boundary and is no longer than its
                    // start allows (blake3's max_subtree_len).
                    assert_eq!(off % 1024, 0);
                    if let Some(max) = blake3::hazmat::max_subtree_len(off) {
                        assert!(len <= max, "{size}/{piece}: {len} at {off}");
                    }
                    at += len;
                }
                assert_eq!(at, size);
            }
        }
    }

    #[test]
    fn merged_pieces_give_blake3_of_the_whole_around_every_boundary() {
        let mut sizes = vec![0usize, 1, 1023, 1024, 1025, 2047, 2048, 2049];
        for k in [3usize, 4, 5, 7, 8, 9, 16, 17, 31, 32, 33, 64, 65] {
            sizes.extend([k * 1024 - 1, k * 1024, k * 1024 + 1]);
        }
        for piece in [1024u64, 2048, 4096, 16384] {
            for &size in &sizes {
                let data = pattern(size, 3);
                let (got, merged) = split_alone(open_mem(data.clone(), size as u64), piece);
                let got = got.unwrap();
                assert_eq!(
                    got.digest,
                    HashAlgo::Blake3.digest(&data),
                    "{size} bytes, pieces of {piece}"
                );
                // Merged from the pieces whenever there are two or more, never the
                // sequential fallback.
                assert_eq!(
                    merged,
                    size as u64 > piece,
                    "{size} bytes, pieces of {piece}"
                );
                assert_eq!((got.size, got.mode), (size as u64, 0o640));
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn any_size_and_piece_merges_to_blake3(size in 0usize..200_000, shift in 10u32..16) {
            let data = pattern(size, size);
            let piece = 1u64 << shift;
            let (got, merged) = split_alone(open_mem(data.clone(), size as u64), piece);
            let got = got.unwrap();
            proptest::prop_assert_eq!(got.digest, HashAlgo::Blake3.digest(&data));
            proptest::prop_assert_eq!(merged, size as u64 > piece);
            proptest::prop_assert_eq!(got.size, size as u64);
            if size as u64 > piece {
                let cvs: Vec<ChainingValue> = pieces(size as u64, piece)
                    .iter()
                    .map(|&(o, l)| {
                        piece_cv(&Mem(data.clone()), o, l, &mut [0u8; 3000]).unwrap().unwrap()
                    })
                    .collect();
                let root = root_of(size as u64, piece, &cvs).unwrap();
                proptest::prop_assert_eq!(root, blake3::hash(&data));
            }
        }

        #[test]
        fn a_pass_with_split_files_equals_the_sequential_one(
            sizes in proptest::collection::vec(0usize..40_000, 1..12),
            threads in 1usize..=8,
            shift in 10u32..13,
        ) {
            let fs = SimFs::new();
            let root = PathBuf::from("/r");
            let names: Vec<RelPath> = (0..sizes.len()).map(|i| rel(&format!("d{}/f{i}", i % 2))).collect();
            for (i, n) in names.iter().enumerate() {
                fs.put(&root.join(n.as_str()), &pattern(sizes[i], i));
            }
            let jobs: Vec<Job<'_>> = names.iter().map(|p| (root.as_path(), p)).collect();
            let piece = 1u64 << shift;
            let layout = Layout { above: 2 * piece, piece };
            let (got, merged) = hash_files_in(&fs, &jobs, HashAlgo::Blake3, threads, layout);
            let seq = hash_files(&fs, &jobs, HashAlgo::Blake3, 1);
            let large = sizes.iter().filter(|n| **n as u64 > layout.above).count();
            proptest::prop_assert_eq!(merged, if threads > 1 { large } else { 0 });
            for (i, (g, s)) in got.iter().zip(&seq).enumerate() {
                let (g, s) = (g.as_ref().unwrap(), s.as_ref().unwrap());
                proptest::prop_assert_eq!(g, s);
                proptest::prop_assert_eq!(g.digest, HashAlgo::Blake3.digest(&pattern(sizes[i], i)));
            }
        }
    }

    #[test]
    fn split_files_among_small_ones_hash_as_the_sequential_pass_on_any_thread_count() {
        let fs = SimFs::new();
        let root = PathBuf::from("/r");
        // Large (split) and small files interleaved, large ones first and last.
        let sizes = [
            70_000,
            0,
            5,
            8193,
            1024,
            3 * 4096 + 1,
            1025,
            65_536,
            2049,
            40_000,
            1,
            100_000,
        ];
        let names: Vec<RelPath> = (0..sizes.len())
            .map(|i| rel(&format!("d{}/f{i}", i % 3)))
            .collect();
        for (i, n) in names.iter().enumerate() {
            fs.put(&root.join(n.as_str()), &pattern(sizes[i], i));
        }
        let jobs: Vec<Job<'_>> = names.iter().map(|p| (root.as_path(), p)).collect();
        let want: Vec<Hashed> = hash_files(&fs, &jobs, HashAlgo::Blake3, 1)
            .into_iter()
            .map(|r| r.unwrap())
            .collect();
        for (i, w) in want.iter().enumerate() {
            assert_eq!(w.digest, HashAlgo::Blake3.digest(&pattern(sizes[i], i)));
            assert_eq!(w.size, sizes[i] as u64);
        }
        for piece in [1024u64, 4096] {
            let layout = Layout {
                above: 2 * piece,
                piece,
            };
            for threads in [0, 1, 2, 3, 4, 5, 6, 7, 8, 64] {
                let (got, merged) = hash_files_in(&fs, &jobs, HashAlgo::Blake3, threads, layout);
                let got: Vec<Hashed> = got.into_iter().map(|r| r.unwrap()).collect();
                assert_eq!(got, want, "{threads} threads, pieces of {piece}");
                let large = sizes.iter().filter(|n| **n as u64 > layout.above).count();
                assert_eq!(merged, if threads > 1 { large } else { 0 });
                // Other algorithms are never split, and agree with one thread too.
                let crc = hash_files_in(&fs, &jobs, HashAlgo::Crc32, threads, layout);
                assert_eq!(crc.1, 0);
                for (i, r) in crc.0.iter().enumerate() {
                    let r = r.as_ref().unwrap();
                    assert_eq!(r.digest, HashAlgo::Crc32.digest(&pattern(sizes[i], i)));
                }
            }
        }
        // One file alone still keeps every thread's pieces in order.
        for threads in 1..=8 {
            let (one, merged) = hash_files_in(
                &fs,
                &jobs[..1],
                HashAlgo::Blake3,
                threads,
                Layout {
                    above: 2048,
                    piece: 1024,
                },
            );
            assert_eq!(one[0].as_ref().unwrap(), &want[0], "{threads} threads");
            assert_eq!(merged, usize::from(threads > 1));
        }
    }

    #[test]
    fn a_file_that_grew_or_shrank_is_hashed_sequentially_to_its_end() {
        let data = pattern(20_000, 1);
        let want = HashAlgo::Blake3.digest(&data);
        // The open saw fewer bytes than are there (it grew), or more (it shrank): the
        // result is what a one-thread pass reads from the same open file.
        for said in [10_000u64, 19_999, 20_001, 30_000, 70_000] {
            let (got, merged) = split_alone(open_mem(data.clone(), said), 1024);
            let got = got.unwrap();
            assert_eq!((got.digest, got.size), (want, 20_000), "open said {said}");
            assert!(!merged, "open said {said}");
        }
    }

    #[test]
    fn a_read_error_in_a_piece_fails_the_file_with_its_name() {
        struct Bad;
        impl ReadAt for Bad {
            fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
                if offset >= 5 * 1024 {
                    return Err(io::Error::from_raw_os_error(5));
                }
                buf.fill(1);
                Ok(buf.len().min(1024))
            }
        }
        let open = OpenAt {
            file: Arc::new(Bad),
            size: 9000,
            perm: crate::fs::Perm::default(),
        };
        let e = split_alone(open, 1024).0.unwrap_err();
        let Error::Io { op, path, source } = &e else {
            panic!("{e:?}");
        };
        assert_eq!((*op, path.as_path()), ("read", Path::new("/r/big")));
        assert_eq!(source.raw_os_error(), Some(5));
    }

    #[test]
    fn os_files_above_the_threshold_hash_as_blake3_on_any_thread_count() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let sizes = [SPLIT_ABOVE as usize + 4097, 3, 2 * PIECE as usize + 1];
        let mut paths = Vec::new();
        for (i, n) in sizes.iter().enumerate() {
            std::fs::write(root.join(format!("f{i}")), pattern(*n, i)).unwrap();
            paths.push(rel(&format!("f{i}")));
        }
        std::os::unix::fs::symlink(root.join("f0"), root.join("link")).unwrap();
        paths.push(rel("link"));
        let jobs: Vec<Job<'_>> = paths.iter().map(|p| (root, p)).collect();
        let fs = OsFs::new();
        for threads in [1, 2, 3] {
            let layout = Layout {
                above: SPLIT_ABOVE,
                piece: PIECE,
            };
            let (got, merged) = hash_files_in(&fs, &jobs, HashAlgo::Blake3, threads, layout);
            assert_eq!(merged, if threads > 1 { 2 } else { 0 });
            for (i, n) in sizes.iter().enumerate() {
                let h = got[i].as_ref().unwrap();
                assert_eq!(h.digest, HashAlgo::Blake3.digest(&pattern(*n, i)));
                let m = fs.metadata(root, &paths[i]).unwrap().unwrap();
                assert_eq!((h.size, h.mode, h.owner), (m.size, m.mode, m.owner()));
            }
            assert!(matches!(got[3], Err(Error::Symlink { .. })), "{:?}", got[3]);
        }
    }

    /// A worker that unwinds between claiming a file and opening it (here: its
    /// filesystem's `cursor` panics) must not leave the others waiting for that open
    /// forever: the pass ends, the file without a digest (or the caller's panic
    /// goes on), the other files hashed.
    #[test]
    fn a_worker_that_panics_before_its_open_leaves_no_one_waiting() {
        use crate::fs::{DirEntry, DirId, Meta, WriteFile};

        struct PanicCursor {
            sim: SimFs,
            bad: PathBuf,
        }
        impl Fs for PanicCursor {
            fn metadata(&self, root: &Path, rel: &RelPath) -> Result<Option<Meta>> {
                self.sim.metadata(root, rel)
            }
            fn dir_metadata(&self, root: &Path, dir: Option<&RelPath>) -> Result<Option<Meta>> {
                self.sim.dir_metadata(root, dir)
            }
            fn read_dir(&self, root: &Path, dir: Option<&RelPath>) -> Result<Vec<DirEntry>> {
                self.sim.read_dir(root, dir)
            }
            fn open_read(&self, root: &Path, rel: &RelPath) -> Result<Box<dyn Read + Send + '_>> {
                self.sim.open_read(root, rel)
            }
            fn open_read_at(&self, root: &Path, rel: &RelPath) -> Result<OpenAt> {
                self.sim.open_read_at(root, rel)
            }
            fn create_new(
                &self,
                root: &Path,
                rel: &RelPath,
                mode: u32,
            ) -> Result<Box<dyn WriteFile + '_>> {
                self.sim.create_new(root, rel, mode)
            }
            fn rename(&self, root: &Path, from: &RelPath, to: &RelPath) -> Result<()> {
                self.sim.rename(root, from, to)
            }
            fn set_owner(&self, root: &Path, rel: &RelPath, owner: Owner) -> Result<()> {
                self.sim.set_owner(root, rel, owner)
            }
            fn set_mode(&self, root: &Path, rel: &RelPath, mode: u32) -> Result<()> {
                self.sim.set_mode(root, rel, mode)
            }
            fn remove_file(&self, root: &Path, rel: &RelPath) -> Result<()> {
                self.sim.remove_file(root, rel)
            }
            fn create_dir(&self, root: &Path, rel: &RelPath) -> Result<()> {
                self.sim.create_dir(root, rel)
            }
            fn create_root(&self, root: &Path) -> Result<()> {
                self.sim.create_root(root)
            }
            fn sync_dir(&self, root: &Path, dir: Option<&RelPath>) -> Result<()> {
                self.sim.sync_dir(root, dir)
            }
            fn sync_file(&self, root: &Path, rel: &RelPath) -> Result<()> {
                self.sim.sync_file(root, rel)
            }
            fn root_identity(&self, root: &Path) -> Result<Option<Vec<DirId>>> {
                self.sim.root_identity(root)
            }
            fn cursor<'a>(&'a self, root: &'a Path) -> Box<dyn Cursor + 'a> {
                assert!(root != self.bad, "cursor on {}", root.display());
                self.sim.cursor(root)
            }
        }

        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let fs = PanicCursor {
                sim: SimFs::new(),
                bad: PathBuf::from("/bad"),
            };
            let (good, bad) = (PathBuf::from("/good"), PathBuf::from("/bad"));
            let names: Vec<RelPath> = (0..6).map(|i| rel(&format!("f{i}"))).collect();
            for (i, n) in names.iter().enumerate() {
                fs.sim.put(&good.join(n.as_str()), &pattern(5000 * i, i));
                fs.sim.put(&bad.join(n.as_str()), &pattern(10, i));
            }
            // The bad root's file last, after a file that is split.
            let mut jobs: Vec<Job<'_>> = names.iter().map(|p| (good.as_path(), p)).collect();
            jobs.push((bad.as_path(), &names[0]));
            let layout = Layout {
                above: 2048,
                piece: 1024,
            };
            let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                hash_files_in(&fs, &jobs, HashAlgo::Blake3, 3, layout).0
            }));
            let _ = tx.send(done.map(|r| {
                r.iter()
                    .map(|r| r.as_ref().map(|h| h.digest).map_err(|_| ()))
                    .collect::<Vec<_>>()
            }));
        });
        let got = rx
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("the pass never ended: workers wait for an open that unwound");
        // The caller's own worker may be the one that panicked: then the pass panics.
        if let Ok(got) = got {
            for (i, r) in got.iter().take(6).enumerate() {
                assert_eq!(
                    r,
                    &Ok(HashAlgo::Blake3.digest(&pattern(5000 * i, i))),
                    "{i}"
                );
            }
            assert!(got[6].is_err());
        }
    }
}
