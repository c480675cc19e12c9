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

use std::io::{self, Read};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use crate::digest::{Digest, HashAlgo};
use crate::error::{Error, Result};
use crate::fs::{full, Cursor, Fs};
use crate::manifest::Owner;
use crate::relpath::RelPath;

/// Read size of every hash loop and of the durable copy: large enough that system
/// calls cost little against the copy and the hash, small enough to stay in the L2
/// cache while it is hashed.
pub const CHUNK: usize = 256 * 1024;

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
pub fn hash_files<'a>(
    fs: &'a dyn Fs,
    jobs: &[Job<'a>],
    algo: HashAlgo,
    threads: usize,
) -> Vec<Result<Hashed>> {
    let workers = threads.clamp(1, jobs.len().max(1));
    let next = AtomicUsize::new(0);
    // One slot per file, filled in place: no second copy of the results to merge.
    let out: Mutex<Vec<Option<Result<Hashed>>>> =
        Mutex::new((0..jobs.len()).map(|_| None).collect());
    let worker = || work(fs, jobs, algo, &next, &out);
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
    let out = out.into_inner().unwrap_or_else(PoisonError::into_inner);
    out.into_iter()
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
        .collect()
}

/// One worker: claims files from `next` until none is left, reading them through
/// its own aligned buffer and a cursor on the root it last read from.
fn work<'a>(
    fs: &'a dyn Fs,
    jobs: &[Job<'a>],
    algo: HashAlgo,
    next: &AtomicUsize,
    out: &Mutex<Vec<Option<Result<Hashed>>>>,
) {
    let mut buf = AlignedBuf::new(CHUNK);
    let mut cursor: Option<(&'a Path, Box<dyn Cursor + 'a>)> = None;
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(&(root, rel)) = jobs.get(i) else {
            return;
        };
        if cursor.as_ref().is_none_or(|(r, _)| *r != root) {
            cursor = Some((root, fs.cursor(root)));
        }
        let r = match cursor.as_mut() {
            Some((_, c)) => hash_one(&mut **c, root, rel, algo, buf.as_mut_slice()),
            None => continue,
        };
        // The lock is held only to store the result (tens of nanoseconds against
        // microseconds per file). A poisoned lock still holds valid slots.
        let mut slots = out.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = slots.get_mut(i) {
            *slot = Some(r);
        }
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
    let (digest, size) = hash_counted(&mut *r, &full(root, rel), algo, buf)?;
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
    hash_counted(r, name, algo, buf).map(|(d, _)| d)
}

/// The one hash loop: the digest of everything `r` yields, and how many bytes that was.
fn hash_counted(
    r: &mut dyn Read,
    name: &Path,
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
            Err(e) => return Err(Error::io("read", name, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::os::OsFs;
    use crate::fs::sim::SimFs;
    use std::path::PathBuf;

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
        for threads in [1, 2, 4] {
            let got = hash_files(&OsFs::new(), &jobs, HashAlgo::Crc32, threads);
            assert_eq!(got.len(), 6);
            assert_eq!(
                got[0].as_ref().unwrap().digest,
                HashAlgo::Crc32.digest(b"a")
            );
            assert_eq!(
                got[5].as_ref().unwrap().digest,
                HashAlgo::Crc32.digest(b"c")
            );
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
}
