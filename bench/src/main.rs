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
//!   and a checksum-free total, so the work cannot be optimised away.
//!
//! Content is pseudo-random (xorshift, fixed seed), so runs are repeatable.
//! Deliberately std-only and independent of rebound's code: it is the yardstick.

use std::fs::{self, File};
use std::io::{self, Read, Write};
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

fn gen_sized(kind: &str, n: u64, dir: &Path) -> io::Result<()> {
    match kind {
        "file" => gen_file(n, dir),
        "tree" => {
            fs::create_dir_all(dir)?;
            gen_tree(dir, n as usize, 100, small_size)
        }
        other => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("unknown sized corpus `{other}` (file, tree)"),
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

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
    for e in fs::read_dir(dir)? {
        let e = e?;
        let t = e.file_type()?;
        if t.is_dir() {
            walk(&e.path(), out)?;
        } else if t.is_file() {
            out.push(e.path());
        }
    }
    Ok(())
}

fn floor(dirs: &[PathBuf], threads: usize, buf_kib: usize) -> io::Result<(u64, usize)> {
    let mut files = Vec::new();
    for d in dirs {
        walk(d, &mut files)?;
    }
    let next = AtomicUsize::new(0);
    let results: Vec<io::Result<u64>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads.max(1))
            .map(|_| {
                s.spawn(|| -> io::Result<u64> {
                    let mut storage = Vec::new();
                    let buf = aligned(&mut storage, buf_kib * 1024);
                    let mut total = 0u64;
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(p) = files.get(i) else {
                            return Ok(total);
                        };
                        let mut f = File::open(p)?;
                        loop {
                            match f.read(buf) {
                                Ok(0) => break,
                                Ok(n) => total += n as u64,
                                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                                Err(e) => return Err(e),
                            }
                        }
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
    let mut bytes = 0;
    for r in results {
        bytes += r?;
    }
    Ok((bytes, files.len()))
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: rebound-bench gen small|tiny|big DIR | gen file|tree N DIR | floor [--threads N] [--buf KIB] DIR..."
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
            let mut dirs = Vec::new();
            let mut it = args[1..].iter();
            while let Some(a) = it.next() {
                match a.as_str() {
                    "--threads" => threads = it.next().and_then(|v| v.parse().ok()).unwrap_or(0),
                    "--buf" => buf = it.next().and_then(|v| v.parse().ok()).unwrap_or(0),
                    d => dirs.push(PathBuf::from(d)),
                }
            }
            if threads == 0 || buf == 0 || dirs.is_empty() {
                return usage();
            }
            floor(&dirs, threads, buf).map(|(b, n)| format!("{n} files, {b} bytes\n"))
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
