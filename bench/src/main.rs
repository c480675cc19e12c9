//! The benchmark's own helpers, used by `bench/compare.sh`:
//!
//! - `gen small DIR`: 10,000 files of 1-64 KiB (uniform sizes, about 334 MB) in
//!   100 directories of 100 files;
//! - `gen tiny DIR`: 100,000 files of 1 KiB in 1,000 directories of 100 files;
//! - `gen big DIR`: one 1 GiB file;
//! - `gen file BYTES DIR`: one file `DIR/file.bin` of BYTES bytes (`bench/parity.sh`);
//! - `gen tree N DIR`: N files of 1-64 KiB as in `small`, in directories of 100 files
//!   (`gen tree 10000` is `small`);
//! - `floor [--threads N] [--buf KIB] DIR...`: the true I/O floor of reading the
//!   trees: walk them (readdir only), then open + read until end of file + close of
//!   every regular file, with one page-aligned, reused buffer per thread, files
//!   handed out to N threads from a shared counter. Prints the bytes and files read
//!   and a checksum-free total, so the work cannot be optimised away;
//! - `floor --hash crc32|xxh3|blake3 ...`: the read+hash floor: the same, and every
//!   file also hashed through the same buffer with the same crates, types and
//!   calls as rebound's one hash loop (crates/rebound/src/digest.rs, hashing.rs):
//!   `crc32fast::Hasher`, `xxhash_rust::xxh3::Xxh3Default` finished with
//!   `digest128()`, `blake3::Hasher::update` (one thread per file, no mmap); prints
//!   an xor of the digests, so the hashing cannot be optimised away;
//! - `gen few N DIR`: N files of 1-8 KiB (a small set: process start dominates);
//! - `--skip-meta` (floor, du): leave out `.rebound` directories (rebound's metadata:
//!   the manifests of every set sharing the tree); a FILE argument is read as one
//!   file (the one manifest a boot reads);
//! - `du [--skip-meta] DIR|FILE...`: the regular files below DIR, their bytes and the
//!   bytes of the blocks they occupy (`st_blocks * 512`), the page-granular floor of
//!   a cold read;
//! - `drop`: `sync`, then drops the page cache, dentries and inodes (root only:
//!   `echo 3 > /proc/sys/vm/drop_caches`), hyperfine's `--prepare` of a cold run;
//! - `io OUT -- CMD ARGS...`: runs CMD, and once it has exited but before it is
//!   reaped (`waitid(WNOWAIT)`), copies its `/proc/PID/io` (the whole process,
//!   every thread included) to OUT; exits with CMD's status.
//!
//! Content is pseudo-random (xorshift, fixed seed), so runs are repeatable.
//! Independent of rebound's code: it is the yardstick. Its dependencies are the hash
//! crates rebound uses, at the versions of the workspace's Cargo.lock, and rustix
//! (for `waitid`), so the floor hashes exactly as rebound does without unsafe code.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A page-aligned buffer of `len` bytes: over-allocate by a page and slice at the
/// first page boundary (a plain `Vec<u8>` may start 16 bytes off, which makes the
/// kernel's copy to user space several times slower).
fn aligned(storage: &mut Vec<u8>, len: usize) -> &mut [u8] {
    *storage = vec![0u8; len + 4096];
    let off = storage.as_ptr().align_offset(4096);
    &mut storage[off..off + len]
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn fill(&mut self, buf: &mut [u8]) {
        for c in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            c.copy_from_slice(&v[..c.len()]);
        }
    }
}

/// `files` files in directories of `per_dir` (the last one may hold fewer).
fn gen_tree(
    dir: &Path,
    files: usize,
    per_dir: usize,
    size: impl Fn(&mut Rng) -> usize,
) -> io::Result<()> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut buf = vec![0u8; 64 * 1024];
    for i in 0..files {
        let sub = dir.join(format!("d{:04}", i / per_dir));
        if i % per_dir == 0 {
            fs::create_dir_all(&sub)?;
        }
        let n = size(&mut rng);
        rng.fill(&mut buf[..n]);
        let mut out = File::create(sub.join(format!("f{:04}.bin", i % per_dir)))?;
        out.write_all(&buf[..n])?;
    }
    Ok(())
}

fn gen_file(bytes: u64, dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let mut buf = vec![0u8; 1 << 20];
    let mut out = File::create(dir.join("file.bin"))?;
    let mut left = bytes;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        rng.fill(&mut buf[..n]);
        out.write_all(&buf[..n])?;
        left -= n as u64;
    }
    Ok(())
}

fn small_size(r: &mut Rng) -> usize {
    1024 + (r.next() % (63 * 1024 + 1)) as usize
}

fn few_size(r: &mut Rng) -> usize {
    1024 + (r.next() % (7 * 1024 + 1)) as usize
}

fn gen_sized(kind: &str, n: u64, dir: &Path) -> io::Result<()> {
    match kind {
        "file" => gen_file(n, dir),
        "few" => {
            fs::create_dir_all(dir)?;
            gen_tree(dir, n as usize, 100, few_size)
        }
        "tree" => {
            fs::create_dir_all(dir)?;
            gen_tree(dir, n as usize, 100, small_size)
        }
        other => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("unknown sized corpus `{other}` (file, tree, few)"),
        )),
    }
}

fn gen(kind: &str, dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    match kind {
        "small" => gen_tree(dir, 10_000, 100, small_size),
        "tiny" => gen_tree(dir, 100_000, 100, |_| 1024),
        "big" => {
            let mut rng = Rng(0x2545_F491_4F6C_DD1D);
            let mut buf = vec![0u8; 1 << 20];
            let mut out = File::create(dir.join("big.bin"))?;
            for _ in 0..1024 {
                rng.fill(&mut buf);
                out.write_all(&buf)?;
            }
            Ok(())
        }
        other => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("unknown corpus `{other}` (small, tiny, big)"),
        )),
    }
}

/// The regular files below `dir` (by directory entry type: no stat), in directory
/// order; `.rebound` directories skipped with `skip_meta`. A `dir` that is a regular
/// file is itself the list (a manifest named on the command line).
fn walk_top(dir: &Path, skip_meta: bool, out: &mut Vec<PathBuf>) -> io::Result<()> {
    if fs::symlink_metadata(dir)?.is_file() {
        out.push(dir.to_path_buf());
        return Ok(());
    }
    walk(dir, skip_meta, out)
}

fn walk(dir: &Path, skip_meta: bool, out: &mut Vec<PathBuf>) -> io::Result<()> {
    for e in fs::read_dir(dir)? {
        let e = e?;
        let t = e.file_type()?;
        if t.is_dir() {
            if skip_meta && e.file_name() == ".rebound" {
                continue;
            }
            walk(&e.path(), skip_meta, out)?;
        } else if t.is_file() {
            out.push(e.path());
        }
    }
    Ok(())
}

/// The hash algorithms of the read+hash floor, exactly as rebound streams them.
#[derive(Clone, Copy)]
enum Algo {
    None,
    Crc32,
    Xxh3,
    Blake3,
}

impl Algo {
    fn parse(s: &str) -> Option<Algo> {
        match s {
            "none" => Some(Algo::None),
            "crc32" => Some(Algo::Crc32),
            "xxh3" => Some(Algo::Xxh3),
            "blake3" => Some(Algo::Blake3),
            _ => None,
        }
    }
}

/// One streaming hasher, as rebound's `digest::Hasher` (the xxh3 state boxed there
/// too: it carries a buffer of several hundred bytes).
enum Hasher {
    None,
    Crc32(crc32fast::Hasher),
    Xxh3(Box<xxhash_rust::xxh3::Xxh3Default>),
    Blake3(Box<blake3::Hasher>),
}

impl Hasher {
    fn new(a: Algo) -> Hasher {
        match a {
            Algo::None => Hasher::None,
            Algo::Crc32 => Hasher::Crc32(crc32fast::Hasher::new()),
            Algo::Xxh3 => Hasher::Xxh3(Box::default()),
            Algo::Blake3 => Hasher::Blake3(Box::new(blake3::Hasher::new())),
        }
    }
    fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::None => {}
            Hasher::Crc32(h) => h.update(data),
            Hasher::Xxh3(h) => h.update(data),
            Hasher::Blake3(h) => {
                h.update(data);
            }
        }
    }
    /// The digest folded to 64 bits (only to keep the work observable).
    fn finish(self) -> u64 {
        match self {
            Hasher::None => 0,
            Hasher::Crc32(h) => u64::from(h.finalize()),
            Hasher::Xxh3(h) => h.digest128() as u64,
            Hasher::Blake3(h) => {
                let d = h.finalize();
                let mut b = [0u8; 8];
                b.copy_from_slice(&d.as_bytes()[..8]);
                u64::from_le_bytes(b)
            }
        }
    }
}

fn floor(
    dirs: &[PathBuf],
    skip_meta: bool,
    threads: usize,
    buf_kib: usize,
    algo: Algo,
) -> io::Result<(u64, usize, u64)> {
    let mut files = Vec::new();
    for d in dirs {
        walk_top(d, skip_meta, &mut files)?;
    }
    let next = AtomicUsize::new(0);
    let results: Vec<io::Result<(u64, u64)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads.max(1))
            .map(|_| {
                s.spawn(|| -> io::Result<(u64, u64)> {
                    let mut storage = Vec::new();
                    let buf = aligned(&mut storage, buf_kib * 1024);
                    let mut total = 0u64;
                    let mut fold = 0u64;
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(p) = files.get(i) else {
                            return Ok((total, fold));
                        };
                        let mut f = File::open(p)?;
                        let mut h = Hasher::new(algo);
                        loop {
                            match f.read(buf) {
                                Ok(0) => break,
                                Ok(n) => {
                                    h.update(&buf[..n]);
                                    total += n as u64;
                                }
                                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                                Err(e) => return Err(e),
                            }
                        }
                        fold ^= h.finish();
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(io::Error::other("thread panicked")))
            })
            .collect()
    });
    let (mut bytes, mut fold) = (0, 0);
    for r in results {
        let (b, f) = r?;
        bytes += b;
        fold ^= f;
    }
    Ok((bytes, files.len(), fold))
}

/// Every regular file below `dir`, `.rebound` included (`walk` does not filter).
fn du(dirs: &[PathBuf], skip_meta: bool) -> io::Result<String> {
    let mut files = Vec::new();
    for d in dirs {
        walk_top(d, skip_meta, &mut files)?;
    }
    let (mut bytes, mut alloc) = (0u64, 0u64);
    for p in &files {
        let m = fs::symlink_metadata(p)?;
        bytes += m.len();
        alloc += m.blocks() * 512;
    }
    Ok(format!(
        "files {} bytes {bytes} alloc {alloc}\n",
        files.len()
    ))
}

/// Runs `cmd`, and copies its `/proc/PID/io` to `out` after it exits but before it
/// is reaped: a zombie keeps its I/O accounting (the exited threads' counts are
/// folded into the process's), which `wait` would discard. Returns its exit code.
fn io_of(out: &Path, cmd: &[String]) -> io::Result<u8> {
    use rustix::process::{waitid, Pid, WaitId, WaitIdOptions};
    let (prog, args) = cmd
        .split_first()
        .ok_or_else(|| io::Error::other("no command"))?;
    let mut child = std::process::Command::new(prog).args(args).spawn()?;
    let pid = Pid::from_child(&child);
    loop {
        match waitid(
            WaitId::Pid(pid),
            WaitIdOptions::EXITED | WaitIdOptions::NOWAIT,
        ) {
            Ok(_) => break,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let io = fs::read_to_string(format!("/proc/{}/io", child.id()))?;
    fs::write(out, io)?;
    let status = child.wait()?;
    Ok(status.code().map_or(1, |c| u8::try_from(c).unwrap_or(1)))
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: rebound-bench gen small|tiny|big DIR | gen file|tree|few N DIR | floor [--threads N] [--buf KIB] [--hash none|crc32|xxh3|blake3] [--skip-meta] DIR|FILE... | du [--skip-meta] DIR|FILE... | drop | io OUT -- CMD ARGS..."
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let r = match args.first().map(String::as_str) {
        Some("gen") if args.len() == 3 => {
            gen(&args[1], Path::new(&args[2])).map(|()| String::new())
        }
        Some("gen") if args.len() == 4 => match args[2].parse() {
            Ok(n) => gen_sized(&args[1], n, Path::new(&args[3])).map(|()| String::new()),
            Err(_) => return usage(),
        },
        Some("floor") => {
            let mut threads = 1;
            let mut buf = 256;
            let mut algo = Some(Algo::None);
            let mut skip_meta = false;
            let mut dirs = Vec::new();
            let mut it = args[1..].iter();
            while let Some(a) = it.next() {
                match a.as_str() {
                    "--threads" => threads = it.next().and_then(|v| v.parse().ok()).unwrap_or(0),
                    "--buf" => buf = it.next().and_then(|v| v.parse().ok()).unwrap_or(0),
                    "--hash" => algo = it.next().and_then(|v| Algo::parse(v)),
                    "--skip-meta" => skip_meta = true,
                    d => dirs.push(PathBuf::from(d)),
                }
            }
            let Some(algo) = algo else {
                return usage();
            };
            if threads == 0 || buf == 0 || dirs.is_empty() {
                return usage();
            }
            floor(&dirs, skip_meta, threads, buf, algo)
                .map(|(b, n, x)| format!("{n} files, {b} bytes, digests {x:016x}\n"))
        }
        Some("du") if args.len() > 1 => {
            let skip_meta = args[1] == "--skip-meta";
            let from = if skip_meta { 2 } else { 1 };
            let dirs: Vec<PathBuf> = args[from..].iter().map(PathBuf::from).collect();
            if dirs.is_empty() {
                return usage();
            }
            du(&dirs, skip_meta)
        }
        Some("drop") if args.len() == 1 => {
            rustix::fs::sync();
            fs::write("/proc/sys/vm/drop_caches", "3\n").map(|()| String::new())
        }
        Some("io") if args.len() > 3 && args[2] == "--" => {
            return match io_of(Path::new(&args[1]), &args[3..]) {
                Ok(code) => ExitCode::from(code),
                Err(e) => {
                    eprintln!("rebound-bench: io: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        _ => return usage(),
    };
    match r {
        Ok(s) => {
            print!("{s}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rebound-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
