//! Parity records: per-block digests and Reed-Solomon recovery blocks for one file's
//! content, so that a damaged copy is rebuilt from its own intact blocks without a
//! second full copy (docs/design.md section 2.6).
//!
//! Pure streaming code over `std::io`: no file system, no paths. The engine names
//! records by content digest (`.rebound/<set>/parity/<xx>/<hex>` in the parity
//! directory), writes them through `durable`, and checks a rebuilt file against the
//! manifest's digest before it replaces anything.
//!
//! A record (little endian, streamed front to back, never seeked):
//!
//! ```text
//! magic "RBPARIT1" | u8 version (1) | u8 redundancy | u16 algo id | u32 block
//! | u32 window | u64 size | content digest (algo.digest_len() bytes)
//! | per window: k_w x u64 xxh3-64 of each data block (zero padded to `block`),
//!               m_w x `block` bytes of Reed-Solomon recovery blocks
//! | trailer: 32 bytes, BLAKE3 of every byte before it
//! ```
//!
//! Every reader here holds at most one window (`window * block` bytes of data and the
//! same window's recovery blocks), whatever a record's header claims: a header is
//! bounded before anything is allocated from it.

// The engine's wiring (issue 16) lands in parallel: until it calls this module, only
// its tests do. Remove this line with the merge that wires it.
#![allow(dead_code)]

use std::fmt;
use std::io::{self, Read};

use reed_solomon_simd::{ReedSolomonDecoder, ReedSolomonEncoder};
use xxhash_rust::xxh3::xxh3_64;

use crate::digest::{Digest, HashAlgo, Hasher};

/// Default block size (`parity_block_size`).
pub const DEFAULT_BLOCK: u32 = 4096;
/// Default redundancy in percent (`parity_redundancy`).
pub const DEFAULT_REDUNDANCY: u8 = 10;
/// Smallest block size; every block size is a multiple of it.
pub const MIN_BLOCK: u32 = 64;
/// Largest configurable block size.
pub const MAX_BLOCK: u32 = 1 << 24;
/// Data bytes per window (one Reed-Solomon code): the encoder's and decoder's memory.
pub const WINDOW_BYTES: u64 = 8 << 20;
/// Most data blocks per window: reed-solomon-simd takes any 1..=32768 original
/// shards with any 1..=32768 recovery shards, so a window this size takes every
/// redundancy up to 100%.
pub const MAX_WINDOW: u32 = 32768;
/// Files are cut into about this many blocks when they are small (see [`Layout::new`]).
const TARGET_BLOCKS: u64 = 32;

const MAGIC: &[u8; 8] = b"RBPARIT1";
const VERSION: u8 = 1;
/// Header bytes before the content digest.
const FIXED_HEADER: usize = 28;
/// BLAKE3 of everything before it.
const TRAILER: usize = 32;
/// Bytes per data block digest (xxh3-64).
const BLOCK_DIGEST: usize = 8;
/// Buffer for bytes only hashed, never kept (recovery blocks a reader does not need).
const SKIP_BUF: usize = 64 << 10;

/// How a file's content is cut into blocks and windows. Everything follows from the
/// size, the configured block size and the redundancy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Content size in bytes.
    pub size: u64,
    /// Effective block size (a multiple of [`MIN_BLOCK`], at most the configured one).
    pub block: u32,
    /// Data blocks per window (the last window may hold fewer).
    pub window: u32,
    /// Recovery blocks per window, in percent of its data blocks (rounded up, at least 1).
    pub redundancy: u8,
}

impl Layout {
    /// The layout of a `size`-byte file for a configured block size and redundancy.
    ///
    /// The block is the configured one for large files, but a small file gets blocks of
    /// about `size / 32` (rounded up to 64 bytes): with a few blocks only, "at least one
    /// recovery block" would cost far more than the redundancy asked (a 4 KiB file in
    /// one 4 KiB block would need a 100% record). An out-of-range block size is clamped
    /// to `[MIN_BLOCK, MAX_BLOCK]` and rounded down to a multiple of 64, a redundancy to
    /// `1..=100` (the configuration refuses both before they get here).
    pub fn new(size: u64, block: u32, redundancy: u8) -> Layout {
        let configured = block.clamp(MIN_BLOCK, MAX_BLOCK) / MIN_BLOCK * MIN_BLOCK;
        let small = size
            .div_ceil(TARGET_BLOCKS)
            .div_ceil(u64::from(MIN_BLOCK))
            .saturating_mul(u64::from(MIN_BLOCK));
        let block = u32::try_from(small.clamp(u64::from(MIN_BLOCK), u64::from(configured)))
            .unwrap_or(configured);
        let window = u32::try_from((WINDOW_BYTES / u64::from(block)).max(1))
            .unwrap_or(MAX_WINDOW)
            .min(MAX_WINDOW);
        Layout {
            size,
            block,
            window,
            redundancy: redundancy.clamp(1, 100),
        }
    }

    /// The same layout with an explicit window, so that tests cover many windows with
    /// small files. Records are self-describing: readers take the window from the header.
    #[cfg(test)]
    pub(crate) fn with_window(size: u64, block: u32, redundancy: u8, window: u32) -> Layout {
        Layout {
            window: window.clamp(1, MAX_WINDOW),
            ..Layout::new(size, block, redundancy)
        }
    }

    // Fields are public, so every method guards against a hand-made zero block or window
    // (`max(1)`) instead of dividing by zero; records are checked by `check_header`.
    fn block64(&self) -> u64 {
        u64::from(self.block.max(1))
    }

    fn window64(&self) -> u64 {
        u64::from(self.window.max(1))
    }

    /// Data blocks in all (0 for an empty file).
    pub fn blocks(&self) -> u64 {
        self.size.div_ceil(self.block64())
    }

    /// Windows in all (0 for an empty file).
    pub fn windows(&self) -> u64 {
        self.blocks().div_ceil(self.window64())
    }

    /// Data blocks of window `w` (`w < windows()`).
    pub fn window_blocks(&self, w: u64) -> u64 {
        let first = w.saturating_mul(self.window64());
        self.blocks().saturating_sub(first).min(self.window64())
    }

    /// Recovery blocks of a window of `k` data blocks: `ceil(k * redundancy / 100)`, at
    /// least 1.
    pub fn recovery(&self, k: u64) -> u64 {
        let r = u64::from(self.redundancy.clamp(1, 100));
        // k is at most MAX_WINDOW for a checked layout; saturate for hand-made ones.
        k.saturating_mul(r).div_ceil(100).max(1)
    }

    /// Recovery blocks in all.
    pub fn recovery_blocks(&self) -> u64 {
        let windows = self.windows();
        if windows == 0 {
            return 0;
        }
        let full = windows - 1;
        full.saturating_mul(self.recovery(self.window64()))
            .saturating_add(self.recovery(self.window_blocks(full)))
    }

    /// Size in bytes of the whole record (`u64::MAX` if it would not fit in a u64:
    /// only a hand-made or hostile layout gets there).
    pub fn record_size(&self, algo: HashAlgo) -> u64 {
        self.record_len(algo).unwrap_or(u64::MAX)
    }

    fn record_len(&self, algo: HashAlgo) -> Option<u64> {
        let digests = self.blocks().checked_mul(BLOCK_DIGEST as u64)?;
        let recovery = self.recovery_blocks().checked_mul(self.block64())?;
        ((FIXED_HEADER + algo.digest_len() + TRAILER) as u64)
            .checked_add(digests)?
            .checked_add(recovery)
    }

    /// Bytes of content in window `w`.
    fn window_bytes(&self, w: u64) -> u64 {
        let start = w
            .saturating_mul(self.window64())
            .saturating_mul(self.block64());
        self.size
            .saturating_sub(start)
            .min(self.window64().saturating_mul(self.block64()))
    }

    /// The bounds every record's header must meet: what `Layout::new` can produce, or
    /// a smaller window. This is what keeps a hostile header from making a reader
    /// allocate more than one window.
    fn check(&self) -> Result<(), String> {
        if self.block < MIN_BLOCK || self.block > MAX_BLOCK || self.block % MIN_BLOCK != 0 {
            return Err(format!("block size {} out of bounds", self.block));
        }
        if self.redundancy == 0 || self.redundancy > 100 {
            return Err(format!("redundancy {}% out of bounds", self.redundancy));
        }
        let window_bytes = u64::from(self.window) * u64::from(self.block);
        if self.window == 0
            || self.window > MAX_WINDOW
            || (self.window > 1 && window_bytes > WINDOW_BYTES)
        {
            return Err(format!(
                "window of {} blocks of {} bytes out of bounds",
                self.window, self.block
            ));
        }
        Ok(())
    }
}

/// The id of an algorithm in a record's header.
fn algo_id(algo: HashAlgo) -> u16 {
    match algo {
        HashAlgo::Blake3 => 0,
        HashAlgo::Sha256 => 1,
        HashAlgo::Crc32 => 2,
        HashAlgo::Xxh3 => 3,
    }
}

/// What a record says about itself, once checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordInfo {
    pub layout: Layout,
    /// Digest of the content it protects (the manifest's algorithm).
    pub digest: Digest,
}

/// What a damaged copy's blocks say against a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fit {
    /// Data blocks in all.
    pub blocks: u64,
    /// Data blocks whose digest does not match (missing bytes count as damaged).
    pub damaged: u64,
    /// Every window has at least as many recovery blocks as damaged data blocks.
    pub recoverable: bool,
    /// The window with the most damage beyond its recovery blocks: (damaged, recovery);
    /// `None` if every window is recoverable.
    pub worst: Option<(u64, u64)>,
}

/// Why a record or a stream failed: an inner reader's I/O error (kept as it is, so the
/// caller sees the real cause), or bad data.
enum Fail {
    Io(io::Error),
    Bad(String),
}

impl From<io::Error> for Fail {
    fn from(e: io::Error) -> Fail {
        Fail::Io(e)
    }
}

impl From<Fail> for io::Error {
    fn from(f: Fail) -> io::Error {
        match f {
            Fail::Io(e) => e,
            Fail::Bad(msg) => io::Error::new(io::ErrorKind::InvalidData, msg),
        }
    }
}

fn bad<T>(msg: impl Into<String>) -> Result<T, Fail> {
    Err(Fail::Bad(msg.into()))
}

/// Reads until `buf` is full or the reader ends; the count read. Retries `Interrupted`
/// like `read_exact`, so a signal never looks like a short file.
fn fill<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn usize_of(n: u64) -> Result<usize, Fail> {
    usize::try_from(n).or_else(|_| bad("record too large for this machine"))
}

/// A record being read front to back: every byte goes through the trailer's hasher.
struct RecordReader<R> {
    inner: R,
    hasher: blake3::Hasher,
}

impl<R: Read> RecordReader<R> {
    fn new(inner: R) -> Self {
        RecordReader {
            inner,
            hasher: blake3::Hasher::new(),
        }
    }

    fn exact(&mut self, buf: &mut [u8]) -> Result<(), Fail> {
        let n = fill(&mut self.inner, buf)?;
        self.hasher.update(&buf[..n]);
        if n < buf.len() {
            return bad("parity record is truncated");
        }
        Ok(())
    }

    /// Hashes `n` bytes without keeping them, in a fixed buffer.
    fn skip(&mut self, mut n: u64) -> Result<(), Fail> {
        let mut buf = vec![0u8; SKIP_BUF];
        while n > 0 {
            let k = usize::try_from(n).map_or(SKIP_BUF, |n| n.min(SKIP_BUF));
            self.exact(&mut buf[..k])?;
            n -= k as u64;
        }
        Ok(())
    }

    /// Reads and parses the header: bounds, version, algorithm. The digest is read
    /// only once the algorithm (hence its length) is known to be the caller's.
    fn header(&mut self, algo: HashAlgo) -> Result<RecordInfo, Fail> {
        let mut h = [0u8; FIXED_HEADER];
        self.exact(&mut h)?;
        if &h[..8] != MAGIC {
            return bad("not a parity record (bad magic)");
        }
        if h[8] != VERSION {
            return bad(format!("parity record version {} is not supported", h[8]));
        }
        let le16 = |i: usize| u16::from_le_bytes([h[i], h[i + 1]]);
        let le32 = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        let id = le16(10);
        if id != algo_id(algo) {
            return bad(format!(
                "parity record's hash algorithm (id {id}) is not {}",
                algo.name()
            ));
        }
        let mut size = [0u8; 8];
        size.copy_from_slice(&h[20..28]);
        let layout = Layout {
            size: u64::from_le_bytes(size),
            block: le32(12),
            window: le32(16),
            redundancy: h[9],
        };
        layout
            .check()
            .or_else(|e| bad(format!("parity record: {e}")))?;
        let mut d = [0u8; 32];
        let d = &mut d[..algo.digest_len()];
        self.exact(d)?;
        let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
        let Some(digest) = Digest::from_hex(algo, &hex) else {
            return bad("parity record: bad digest");
        };
        Ok(RecordInfo { layout, digest })
    }

    /// Reads `k` block digests into `out`.
    fn digests(&mut self, k: usize, out: &mut Vec<u64>) -> Result<(), Fail> {
        let mut raw = vec![0u8; k * BLOCK_DIGEST];
        self.exact(&mut raw)?;
        out.clear();
        out.extend(raw.chunks_exact(BLOCK_DIGEST).map(|c| {
            let mut b = [0u8; BLOCK_DIGEST];
            b.copy_from_slice(c);
            u64::from_le_bytes(b)
        }));
        Ok(())
    }

    /// Reads the trailer, compares it with the hash of everything read before, and
    /// checks that nothing follows it.
    fn trailer(&mut self) -> Result<(), Fail> {
        let mut t = [0u8; TRAILER];
        if fill(&mut self.inner, &mut t)? < TRAILER {
            return bad("parity record is truncated");
        }
        if self.hasher.finalize().as_bytes() != &t {
            return bad("parity record is damaged (checksum mismatch)");
        }
        let mut one = [0u8; 1];
        if fill(&mut self.inner, &mut one)? != 0 {
            return bad("parity record is longer than its header says");
        }
        Ok(())
    }
}

/// Reads up to `len` bytes of one block of `file` into `buf` (a whole block, zero
/// padded); whether all `len` bytes were there. Once the file ended it is not read
/// again.
fn read_block<F: Read>(
    file: &mut F,
    eof: &mut bool,
    buf: &mut [u8],
    len: usize,
) -> io::Result<bool> {
    buf.fill(0);
    if *eof {
        return Ok(len == 0);
    }
    let n = fill(file, &mut buf[..len])?;
    if n < len {
        *eof = true;
        // IMPORTANT: the bytes that were there stay, but the block counts as damaged
        // whatever its digest says: missing bytes are never taken to be zeros.
        return Ok(false);
    }
    Ok(true)
}

/// Reads window `w` of `file` into `data` (`k * block` bytes, zero padded) and
/// returns the indexes of its damaged blocks: missing bytes or a digest mismatch.
fn damaged_blocks<F: Read>(
    layout: &Layout,
    w: u64,
    file: &mut F,
    eof: &mut bool,
    data: &mut [u8],
    digests: &[u64],
) -> Result<Vec<usize>, Fail> {
    let block = layout.block as usize;
    let mut left = usize_of(layout.window_bytes(w))?;
    let mut damaged = Vec::new();
    for (i, (buf, want)) in data.chunks_exact_mut(block).zip(digests).enumerate() {
        let len = left.min(block);
        left -= len;
        let whole = read_block(file, eof, buf, len)?;
        if !whole || xxh3_64(buf) != *want {
            damaged.push(i);
        }
    }
    Ok(damaged)
}

/// Checks a whole record read from `r` (at most `max` bytes are read): its header,
/// its bounds and its checksum. `Err` says why it is damaged.
///
/// Memory is bounded whatever `r` holds: the header is checked, and its record length
/// compared with `max`, before the rest is streamed through a fixed buffer.
///
/// # Errors
/// A record that is not for `algo`, out of bounds, longer than `max`, of another
/// length than its header says, whose checksum does not match, or that could not be
/// read.
pub fn check_record<R: Read>(r: R, algo: HashAlgo, max: u64) -> Result<RecordInfo, String> {
    let mut rr = RecordReader::new(r.take(max));
    let run = |rr: &mut RecordReader<_>| -> Result<RecordInfo, Fail> {
        let info = rr.header(algo)?;
        let Some(len) = info.layout.record_len(algo) else {
            return bad("parity record: size out of bounds");
        };
        if len > max {
            return bad(format!(
                "parity record would be {len} bytes, more than the {max} allowed"
            ));
        }
        let head = (FIXED_HEADER + algo.digest_len()) as u64;
        rr.skip(len - head - TRAILER as u64)?;
        rr.trailer()?;
        Ok(info)
    };
    run(&mut rr).map_err(|f| match f {
        Fail::Io(e) => format!("parity record could not be read: {e}"),
        Fail::Bad(msg) => msg,
    })
}

/// Compares the blocks of a damaged copy (`file`, read to its end or to the layout's
/// size) with a record (`record`) for `digest`. `Err`: the record is unusable (damaged,
/// or for other content), or `file` could not be read.
///
/// The whole record is read (its checksum is checked: a record is never trusted), and
/// `file` up to the record's size: bytes beyond it are ignored, missing ones make their
/// blocks damaged. Memory: one block of `file`, one window's block digests.
///
/// # Errors
/// A record damaged, out of bounds or for other content; an I/O error of either
/// reader.
pub fn analyze<R: Read, F: Read>(
    record: R,
    mut file: F,
    algo: HashAlgo,
    digest: Digest,
) -> Result<Fit, String> {
    let mut rr = RecordReader::new(record);
    let mut run = || -> Result<Fit, Fail> {
        let info = rr.header(algo)?;
        if info.digest != digest {
            return bad("parity record is for other content");
        }
        let layout = info.layout;
        let block = layout.block as usize;
        let mut fit = Fit {
            blocks: layout.blocks(),
            damaged: 0,
            recoverable: true,
            worst: None,
        };
        let mut buf = vec![0u8; block];
        let mut digests = Vec::new();
        let mut eof = false;
        for w in 0..layout.windows() {
            let k = layout.window_blocks(w);
            let m = layout.recovery(k);
            rr.digests(usize_of(k)?, &mut digests)?;
            let mut left = usize_of(layout.window_bytes(w))?;
            let mut damaged = 0u64;
            for want in &digests {
                let len = left.min(block);
                left -= len;
                let whole = read_block(&mut file, &mut eof, &mut buf, len)
                    .map_err(|e| Fail::Bad(format!("file could not be read: {e}")))?;
                if !whole || xxh3_64(&buf) != *want {
                    damaged += 1;
                }
            }
            rr.skip(m * u64::from(layout.block))?;
            fit.damaged += damaged;
            if damaged > m {
                fit.recoverable = false;
                let beyond = |(d, m): (u64, u64)| d - m;
                if fit.worst.is_none_or(|wm| beyond(wm) < damaged - m) {
                    fit.worst = Some((damaged, m));
                }
            }
        }
        rr.trailer()?;
        Ok(fit)
    };
    run().map_err(|f| match f {
        Fail::Io(e) => format!("parity record could not be read: {e}"),
        Fail::Bad(msg) => msg,
    })
}

/// Bytes ready to be yielded, and the error that stopped a stream: once a read failed,
/// every later read fails the same way (a stream is never resumed half way).
#[derive(Debug, Default)]
struct Out {
    buf: Vec<u8>,
    pos: usize,
    failed: Option<(io::ErrorKind, String)>,
    done: bool,
}

impl Out {
    /// Yields from `buf`, calling `produce` for more while it is empty and the stream
    /// has not ended.
    fn read(
        &mut self,
        dst: &mut [u8],
        mut produce: impl FnMut(&mut Vec<u8>) -> Result<bool, Fail>,
    ) -> io::Result<usize> {
        if let Some((kind, msg)) = &self.failed {
            return Err(io::Error::new(*kind, msg.clone()));
        }
        while self.pos == self.buf.len() && !self.done && !dst.is_empty() {
            self.buf.clear();
            self.pos = 0;
            match produce(&mut self.buf) {
                Ok(more) => self.done = !more,
                Err(f) => {
                    let e = io::Error::from(f);
                    self.failed = Some((e.kind(), e.to_string()));
                    self.buf.clear();
                    return Err(e);
                }
            }
        }
        let n = dst.len().min(self.buf.len() - self.pos);
        dst[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// A `Read` yielding a record's bytes for the content read from `src`, which must
/// hash (with `algo`) to `digest` and be `size` bytes long: otherwise a read fails with
/// `io::ErrorKind::InvalidData` (the source changed while it was read) before the
/// record's last bytes are yielded. Memory: one window.
pub struct Encoder<R> {
    src: R,
    algo: HashAlgo,
    digest: Digest,
    layout: Layout,
    /// The next part to yield: 0 the header, 1 + w window w, then the trailer.
    next: u64,
    content: Option<Hasher>,
    trailer: blake3::Hasher,
    data: Vec<u8>,
    rs: Option<ReedSolomonEncoder>,
    out: Out,
}

impl<R> fmt::Debug for Encoder<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Encoder")
            .field("layout", &self.layout)
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

impl<R: Read> Encoder<R> {
    pub fn new(
        src: R,
        algo: HashAlgo,
        digest: Digest,
        size: u64,
        block: u32,
        redundancy: u8,
    ) -> Encoder<R> {
        Encoder::with_layout(src, algo, digest, Layout::new(size, block, redundancy))
    }

    /// An encoder for an explicit layout (tests: many small windows).
    pub(crate) fn with_layout(src: R, algo: HashAlgo, digest: Digest, layout: Layout) -> Self {
        Encoder {
            src,
            algo,
            digest,
            layout,
            next: 0,
            content: Some(algo.hasher()),
            trailer: blake3::Hasher::new(),
            data: Vec::new(),
            rs: None,
            out: Out::default(),
        }
    }

    /// The layout of the record being written.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Puts the next part of the record in `out`; false once the trailer was yielded.
    fn produce(&mut self, out: &mut Vec<u8>) -> Result<bool, Fail> {
        let windows = self.layout.windows();
        let l = self.layout;
        if self.next == 0 {
            l.check().or_else(|e| bad(format!("parity layout: {e}")))?;
            out.extend_from_slice(MAGIC);
            out.push(VERSION);
            out.push(l.redundancy);
            out.extend_from_slice(&algo_id(self.algo).to_le_bytes());
            out.extend_from_slice(&l.block.to_le_bytes());
            out.extend_from_slice(&l.window.to_le_bytes());
            out.extend_from_slice(&l.size.to_le_bytes());
            if self.digest.as_bytes().len() != self.algo.digest_len() {
                return bad("digest is not of the record's algorithm");
            }
            out.extend_from_slice(self.digest.as_bytes());
        } else if self.next <= windows {
            self.window(self.next - 1, out)?;
        } else if self.next == windows + 1 {
            // The source must end at `size` and hash to the digest the record names;
            // if it does not, the trailer is never yielded, so the record is never
            // complete.
            let mut one = [0u8; 1];
            if fill(&mut self.src, &mut one)? != 0 {
                return bad("parity source is longer than its size (it changed)");
            }
            let content = self.content.take().map(Hasher::finish);
            // IMPORTANT: a record for other content than its header names is refused
            // here, before its trailer makes it look whole.
            if content != Some(self.digest) {
                return bad("parity source does not match its digest (it changed)");
            }
            out.extend_from_slice(self.trailer.finalize().as_bytes());
            self.next += 1;
            return Ok(true);
        } else {
            return Ok(false);
        }
        self.trailer.update(out);
        self.next += 1;
        Ok(true)
    }

    /// Reads window `w` of the source and puts its block digests and recovery blocks
    /// in `out`.
    fn window(&mut self, w: u64, out: &mut Vec<u8>) -> Result<(), Fail> {
        let l = self.layout;
        let block = l.block as usize;
        let k = usize_of(l.window_blocks(w))?;
        let m = usize_of(l.recovery(k as u64))?;
        let bytes = usize_of(l.window_bytes(w))?;
        self.data.clear();
        // Zero padded: the last block is short in the file, whole in the code.
        self.data.resize(k * block, 0);
        let n = fill(&mut self.src, &mut self.data[..bytes])?;
        if n < bytes {
            return bad("parity source is shorter than its size (it changed)");
        }
        if let Some(h) = &mut self.content {
            h.update(&self.data[..bytes]);
        }
        out.reserve(k * BLOCK_DIGEST + m * block);
        for b in self.data.chunks_exact(block) {
            out.extend_from_slice(&xxh3_64(b).to_le_bytes());
        }
        let rs_err = |e: reed_solomon_simd::Error| Fail::Bad(format!("reed-solomon: {e}"));
        let rs = match &mut self.rs {
            Some(rs) => {
                rs.reset(k, m, block).map_err(rs_err)?;
                rs
            }
            None => self
                .rs
                .insert(ReedSolomonEncoder::new(k, m, block).map_err(rs_err)?),
        };
        for b in self.data.chunks_exact(block) {
            rs.add_original_shard(b).map_err(rs_err)?;
        }
        let result = rs.encode().map_err(rs_err)?;
        for r in result.recovery_iter() {
            out.extend_from_slice(r);
        }
        Ok(())
    }
}

impl<R: Read> Read for Encoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut out = std::mem::take(&mut self.out);
        let r = out.read(buf, |o| self.produce(o));
        self.out = out;
        r
    }
}

/// A `Read` yielding exactly the protected content (`digest`), rebuilt from the
/// intact blocks of `file` (a damaged copy: shorter, longer, damaged blocks; an empty
/// reader for a missing file) and the record's recovery blocks. A window that cannot
/// be rebuilt, a rebuilt block that does not match its digest, or a record for other
/// content fails the read with `io::ErrorKind::InvalidData`. Memory: one window.
///
/// Before the last bytes are yielded, the record's trailer and the digest of all the
/// content yielded are checked: a stream that ends without an error yielded `digest`'s
/// content. Earlier windows are yielded before that, so a caller writes them to a
/// temporary file and keeps it only if every read succeeded.
pub struct Rebuild<R, F> {
    record: RecordReader<R>,
    file: F,
    file_eof: bool,
    algo: HashAlgo,
    digest: Digest,
    layout: Option<Layout>,
    next_window: u64,
    content: Option<Hasher>,
    digests: Vec<u64>,
    recovery: Vec<u8>,
    rs: Option<ReedSolomonDecoder>,
    out: Out,
}

impl<R, F> fmt::Debug for Rebuild<R, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rebuild")
            .field("layout", &self.layout)
            .field("next_window", &self.next_window)
            .finish_non_exhaustive()
    }
}

impl<R: Read, F: Read> Rebuild<R, F> {
    pub fn new(record: R, file: F, algo: HashAlgo, digest: Digest) -> Rebuild<R, F> {
        Rebuild {
            record: RecordReader::new(record),
            file,
            file_eof: false,
            algo,
            digest,
            layout: None,
            next_window: 0,
            content: Some(algo.hasher()),
            digests: Vec::new(),
            recovery: Vec::new(),
            rs: None,
            out: Out::default(),
        }
    }

    /// Puts the next window's content in `out`; false once everything was yielded.
    fn produce(&mut self, out: &mut Vec<u8>) -> Result<bool, Fail> {
        let layout = match self.layout {
            Some(l) => l,
            None => {
                let info = self.record.header(self.algo)?;
                if info.digest != self.digest {
                    return bad("parity record is for other content");
                }
                self.layout = Some(info.layout);
                info.layout
            }
        };
        let windows = layout.windows();
        if self.next_window > windows {
            return Ok(false);
        }
        if self.next_window < windows {
            self.window(layout, self.next_window, out)?;
        }
        self.next_window += 1;
        if self.next_window >= windows {
            // IMPORTANT: the last bytes are yielded only once the record is known
            // whole and everything yielded hashes to the digest asked for.
            self.record.trailer()?;
            let content = self.content.take().map(Hasher::finish);
            if content != Some(self.digest) {
                return bad("rebuilt content does not match its digest");
            }
            self.next_window = windows + 1;
        }
        Ok(true)
    }

    /// Rebuilds window `w` into `out` (its content, the last block trimmed).
    fn window(&mut self, l: Layout, w: u64, out: &mut Vec<u8>) -> Result<(), Fail> {
        let block = l.block as usize;
        let k = usize_of(l.window_blocks(w))?;
        let m = usize_of(l.recovery(k as u64))?;
        self.record.digests(k, &mut self.digests)?;
        out.resize(k * block, 0);
        let damaged = damaged_blocks(
            &l,
            w,
            &mut self.file,
            &mut self.file_eof,
            out,
            &self.digests,
        )?;
        let recovery_bytes = (m as u64) * u64::from(l.block);
        if damaged.len() > m {
            return bad(format!(
                "window {w}: {} damaged blocks, only {m} recovery blocks",
                damaged.len()
            ));
        }
        if damaged.is_empty() {
            self.record.skip(recovery_bytes)?;
        } else {
            self.recovery.clear();
            self.recovery.resize(m * block, 0);
            self.record.exact(&mut self.recovery)?;
            let rs_err = |e: reed_solomon_simd::Error| Fail::Bad(format!("reed-solomon: {e}"));
            let rs = match &mut self.rs {
                Some(rs) => {
                    rs.reset(k, m, block).map_err(rs_err)?;
                    rs
                }
                None => self
                    .rs
                    .insert(ReedSolomonDecoder::new(k, m, block).map_err(rs_err)?),
            };
            let mut d = damaged.iter().peekable();
            for (i, b) in out.chunks_exact(block).enumerate() {
                if d.peek() == Some(&&i) {
                    d.next();
                } else {
                    rs.add_original_shard(i, b).map_err(rs_err)?;
                }
            }
            // Exactly as many recovery blocks as damaged ones: the decoder needs no
            // more, and a damaged recovery block is caught by the digest check below.
            for (j, r) in self
                .recovery
                .chunks_exact(block)
                .take(damaged.len())
                .enumerate()
            {
                rs.add_recovery_shard(j, r).map_err(rs_err)?;
            }
            let result = rs.decode().map_err(rs_err)?;
            for &i in &damaged {
                let Some(restored) = result.restored_original(i) else {
                    return bad(format!("window {w}: block {i} was not rebuilt"));
                };
                // IMPORTANT: a rebuilt block is yielded only if it matches its digest.
                if xxh3_64(restored) != self.digests[i] {
                    return bad(format!("window {w}: rebuilt block {i} does not match"));
                }
                out[i * block..(i + 1) * block].copy_from_slice(restored);
            }
        }
        out.truncate(usize_of(l.window_bytes(w))?);
        if let Some(h) = &mut self.content {
            h.update(out);
        }
        Ok(())
    }
}

impl<R: Read, F: Read> Read for Rebuild<R, F> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut out = std::mem::take(&mut self.out);
        let r = out.read(buf, |o| self.produce(o));
        self.out = out;
        r
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use proptest::prelude::*;

    /// Deterministic bytes that are never a run of zeros for long (so zeroing a range
    /// always damages the blocks it touches).
    fn content(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8 | 1
            })
            .collect()
    }

    fn encode_layout(data: &[u8], algo: HashAlgo, layout: Layout) -> Vec<u8> {
        let mut rec = Vec::new();
        Encoder::with_layout(data, algo, algo.digest(data), layout)
            .read_to_end(&mut rec)
            .unwrap();
        assert_eq!(rec.len() as u64, layout.record_size(algo), "{layout:?}");
        rec
    }

    fn encode(data: &[u8], block: u32, redundancy: u8) -> (Vec<u8>, Layout) {
        let layout = Layout::new(data.len() as u64, block, redundancy);
        (encode_layout(data, HashAlgo::Blake3, layout), layout)
    }

    fn rebuild(rec: &[u8], file: &[u8], algo: HashAlgo, digest: Digest) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        Rebuild::new(rec, file, algo, digest).read_to_end(&mut out)?;
        Ok(out)
    }

    fn fit(rec: &[u8], file: &[u8], data: &[u8]) -> Fit {
        analyze(rec, file, HashAlgo::Blake3, HashAlgo::Blake3.digest(data)).unwrap()
    }

    fn rebuilt(rec: &[u8], file: &[u8], data: &[u8]) -> io::Result<Vec<u8>> {
        rebuild(rec, file, HashAlgo::Blake3, HashAlgo::Blake3.digest(data))
    }

    fn flip_block(file: &mut [u8], l: &Layout, b: u64, sel: usize) {
        let start = (b * u64::from(l.block)) as usize;
        let end = (start + l.block as usize).min(file.len());
        let i = start + sel % (end - start);
        file[i] ^= 1 << (sel % 8);
    }

    #[test]
    fn layout_small_files_get_about_32_blocks() {
        let l = Layout::new(4096, 4096, 10);
        assert_eq!((l.block, l.blocks(), l.windows()), (128, 32, 1));
        assert_eq!(l.recovery_blocks(), 4);
        let l = Layout::new(1 << 30, 4096, 10);
        assert_eq!((l.block, l.window, l.blocks()), (4096, 2048, 1 << 18));
        assert_eq!(l.windows(), 128);
        assert_eq!(l.recovery_blocks(), 128 * 205);
        // A small configured block on a large file: the window is capped by the codec.
        let l = Layout::new(1 << 30, 64, 100);
        assert_eq!((l.block, l.window), (64, MAX_WINDOW));
        assert!(ReedSolomonEncoder::supports(
            l.window as usize,
            l.recovery(u64::from(l.window)) as usize
        ));
        // A block above the window: one block per window.
        let l = Layout::new(1 << 30, MAX_BLOCK, 10);
        assert_eq!((l.block, l.window), (MAX_BLOCK, 1));
    }

    #[test]
    fn layout_clamps_what_config_refuses() {
        let l = Layout::new(1 << 20, 100, 0);
        assert_eq!((l.block, l.redundancy), (64, 1));
        let l = Layout::new(1 << 40, u32::MAX, 200);
        assert_eq!((l.block, l.redundancy), (MAX_BLOCK, 100));
        let l = Layout::new(0, 4096, 10);
        assert_eq!((l.blocks(), l.windows(), l.recovery_blocks()), (0, 0, 0));
        assert_eq!(l.record_size(HashAlgo::Sha256), 28 + 32 + 32);
        // A hand-made layout never divides by zero.
        let l = Layout {
            size: 10,
            block: 0,
            window: 0,
            redundancy: 0,
        };
        let _ = (
            l.blocks(),
            l.windows(),
            l.recovery_blocks(),
            l.record_size(HashAlgo::Crc32),
        );
    }

    #[test]
    fn roundtrip_every_size_and_algo() {
        for size in [
            0,
            1,
            2,
            63,
            64,
            65,
            127,
            2048,
            2049,
            4095,
            4096,
            100_000,
            (1 << 20) + 3,
        ] {
            for algo in HashAlgo::ALL {
                let data = content(size, size as u64);
                let layout = Layout::new(size as u64, DEFAULT_BLOCK, DEFAULT_REDUNDANCY);
                let rec = encode_layout(&data, algo, layout);
                let digest = algo.digest(&data);
                let info = check_record(&rec[..], algo, u64::MAX).unwrap();
                assert_eq!(info, RecordInfo { layout, digest });
                assert_eq!(rebuild(&rec, &data, algo, digest).unwrap(), data);
                let f = analyze(&rec[..], &data[..], algo, digest).unwrap();
                assert_eq!(
                    f,
                    Fit {
                        blocks: layout.blocks(),
                        damaged: 0,
                        recoverable: true,
                        worst: None
                    }
                );
            }
        }
    }

    #[test]
    fn small_reads_yield_the_same_bytes() {
        let data = content(10_000, 3);
        let (rec, _) = encode(&data, 4096, 10);
        let mut enc = Encoder::new(
            &data[..],
            HashAlgo::Blake3,
            HashAlgo::Blake3.digest(&data),
            10_000,
            4096,
            10,
        );
        let mut got = Vec::new();
        let mut buf = [0u8; 7];
        loop {
            let n = enc.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, rec);
        let mut file = data.clone();
        file[5] ^= 1;
        let mut rb = Rebuild::new(
            &rec[..],
            &file[..],
            HashAlgo::Blake3,
            HashAlgo::Blake3.digest(&data),
        );
        let mut got = Vec::new();
        loop {
            let n = rb.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, data);
    }

    #[test]
    fn damage_within_capacity_is_rebuilt() {
        // 1 MiB + 1000: 257 blocks of 4 KiB, one window, 26 recovery blocks.
        let data = content((1 << 20) + 1000, 7);
        let (rec, l) = encode(&data, 4096, 10);
        assert_eq!((l.blocks(), l.recovery(l.blocks())), (257, 26));

        // Bit flips in as many blocks as there are recovery blocks, the last one too.
        let mut file = data.clone();
        for b in (0..25).map(|i| i * 10).chain([256]) {
            flip_block(&mut file, &l, b, b as usize * 31);
        }
        let f = fit(&rec, &file, &data);
        assert_eq!((f.damaged, f.recoverable, f.worst), (26, true, None));
        assert_eq!(rebuilt(&rec, &file, &data).unwrap(), data);

        // A zeroed range across block boundaries: blocks 2..=7.
        let mut file = data.clone();
        file[10_000..30_000].fill(0);
        assert_eq!(
            (
                fit(&rec, &file, &data).damaged,
                fit(&rec, &file, &data).recoverable
            ),
            (6, true)
        );
        assert_eq!(rebuilt(&rec, &file, &data).unwrap(), data);

        // A torn last page: its last 4096 bytes zeroed, or garbage (2 blocks: the size is
        // not a multiple of the block).
        for garbage in [false, true] {
            let mut file = data.clone();
            let n = file.len();
            let tail = &mut file[n - 4096..];
            if garbage {
                tail.copy_from_slice(&content(4096, 99));
            } else {
                tail.fill(0);
            }
            assert_eq!(fit(&rec, &file, &data).damaged, 2);
            assert_eq!(rebuilt(&rec, &file, &data).unwrap(), data);
        }

        // Truncation: the file lost its last 4 blocks (the short one of 1000 bytes and
        // three whole ones) and 5 bytes of a fifth.
        let file = &data[..data.len() - 1000 - 3 * 4096 - 5];
        assert_eq!(fit(&rec, file, &data).damaged, 5);
        assert_eq!(rebuilt(&rec, file, &data).unwrap(), data);
        // Truncation inside the last block only: the block is damaged even though the
        // bytes that are there match.
        let file = &data[..data.len() - 1];
        assert_eq!(fit(&rec, file, &data).damaged, 1);
        assert_eq!(rebuilt(&rec, file, &data).unwrap(), data);

        // A grown file: the bytes beyond the size are ignored.
        let mut file = data.clone();
        file.extend_from_slice(&content(5000, 1));
        assert_eq!(fit(&rec, &file, &data).damaged, 0);
        assert_eq!(rebuilt(&rec, &file, &data).unwrap(), data);
        // Grown and damaged.
        file[0] ^= 0x80;
        assert_eq!(fit(&rec, &file, &data).damaged, 1);
        assert_eq!(rebuilt(&rec, &file, &data).unwrap(), data);
    }

    #[test]
    fn damage_beyond_capacity_is_reported_and_never_rebuilt() {
        let data = content((1 << 20) + 1000, 8);
        let (rec, l) = encode(&data, 4096, 10);
        let mut file = data.clone();
        for b in 0..27 {
            flip_block(&mut file, &l, b * 9, 5);
        }
        let f = fit(&rec, &file, &data);
        assert_eq!(
            f,
            Fit {
                blocks: 257,
                damaged: 27,
                recoverable: false,
                worst: Some((27, 26))
            }
        );
        let e = rebuilt(&rec, &file, &data).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn missing_file_is_recoverable_only_when_recovery_covers_every_block() {
        // 100 bytes: two 64-byte blocks; 100% redundancy gives two recovery blocks.
        let data = content(100, 1);
        let (rec, l) = encode(&data, 4096, 100);
        assert_eq!((l.blocks(), l.recovery_blocks()), (2, 2));
        let f = fit(&rec, &[], &data);
        assert_eq!((f.damaged, f.recoverable), (2, true));
        assert_eq!(rebuilt(&rec, &[], &data).unwrap(), data);
        // One block: one recovery block at any redundancy.
        let data = content(64, 2);
        let (rec, _) = encode(&data, 4096, 1);
        assert!(fit(&rec, &[], &data).recoverable);
        assert_eq!(rebuilt(&rec, &[], &data).unwrap(), data);
        // 4 KiB at 10%: 32 blocks, 4 recovery blocks.
        let data = content(4096, 3);
        let (rec, _) = encode(&data, 4096, 10);
        let f = fit(&rec, &[], &data);
        assert_eq!(
            f,
            Fit {
                blocks: 32,
                damaged: 32,
                recoverable: false,
                worst: Some((32, 4))
            }
        );
        assert!(rebuilt(&rec, &[], &data).is_err());
        // An empty file needs nothing.
        let (rec, _) = encode(&[], 4096, 10);
        assert!(fit(&rec, &[], &[]).recoverable);
        assert_eq!(rebuilt(&rec, &[], &[]).unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn many_windows_each_use_their_own_recovery_blocks() {
        // 196 blocks of 1 KiB in windows of 16: 12 full windows (2 recovery blocks
        // each) and one of 4 (1 recovery block).
        let data = content(200_000, 4);
        let l = Layout::with_window(200_000, 1024, 10, 16);
        assert_eq!((l.block, l.blocks(), l.windows()), (1024, 196, 13));
        assert_eq!(l.recovery_blocks(), 12 * 2 + 1);
        let rec = encode_layout(&data, HashAlgo::Blake3, l);
        // Self-describing: no hint needed to check it.
        assert_eq!(
            check_record(&rec[..], HashAlgo::Blake3, u64::MAX)
                .unwrap()
                .layout,
            l
        );
        let mut file = data.clone();
        for w in 0..12 {
            flip_block(&mut file, &l, w * 16 + 3, 1);
            flip_block(&mut file, &l, w * 16 + 15, 2);
        }
        flip_block(&mut file, &l, 195, 3);
        let f = fit(&rec, &file, &data);
        assert_eq!((f.damaged, f.recoverable), (25, true));
        assert_eq!(rebuilt(&rec, &file, &data).unwrap(), data);
        // A third damaged block in window 5, and four in window 7: the worst is 7.
        flip_block(&mut file, &l, 5 * 16, 4);
        for b in [7 * 16, 7 * 16 + 1] {
            flip_block(&mut file, &l, b, 4);
        }
        let f = fit(&rec, &file, &data);
        assert_eq!(
            (f.damaged, f.recoverable, f.worst),
            (28, false, Some((4, 2)))
        );
        assert!(rebuilt(&rec, &file, &data).is_err());
    }

    #[test]
    fn large_file_spans_default_windows() {
        // 20 MiB at the default block: windows of 2048 blocks (8 MiB), three of them.
        let data = content(20 << 20, 5);
        let (rec, l) = encode(&data, DEFAULT_BLOCK, DEFAULT_REDUNDANCY);
        assert_eq!((l.block, l.window, l.windows()), (4096, 2048, 3));
        let mut file = data.clone();
        for w in 0..3 {
            for i in 0..l.recovery(l.window_blocks(w)) {
                flip_block(&mut file, &l, w * 2048 + i * 5, 0);
            }
        }
        let f = fit(&rec, &file, &data);
        assert!(f.recoverable);
        assert_eq!(f.damaged, l.recovery_blocks());
        assert!(rebuilt(&rec, &file, &data).unwrap() == data);
    }

    #[test]
    fn any_damaged_byte_of_a_record_is_refused() {
        let data = content(300, 6);
        let (rec, l) = encode(&data, 4096, 20);
        let digest = HashAlgo::Blake3.digest(&data);
        assert_eq!(l.windows(), 1);
        for i in 0..rec.len() {
            for flip in [0x01, 0x80, 0xff] {
                let mut bad = rec.clone();
                bad[i] ^= flip;
                assert!(
                    check_record(&bad[..], HashAlgo::Blake3, u64::MAX).is_err(),
                    "{i}"
                );
                assert!(
                    analyze(&bad[..], &data[..], HashAlgo::Blake3, digest).is_err(),
                    "{i}"
                );
                assert!(
                    rebuild(&bad, &data, HashAlgo::Blake3, digest).is_err(),
                    "{i}"
                );
            }
        }
        for n in 0..rec.len() {
            assert!(
                check_record(&rec[..n], HashAlgo::Blake3, u64::MAX).is_err(),
                "{n}"
            );
            assert!(
                analyze(&rec[..n], &data[..], HashAlgo::Blake3, digest).is_err(),
                "{n}"
            );
            assert!(
                rebuild(&rec[..n], &data, HashAlgo::Blake3, digest).is_err(),
                "{n}"
            );
        }
        let mut long = rec.clone();
        long.push(0);
        assert!(check_record(&long[..], HashAlgo::Blake3, u64::MAX).is_err());
        assert!(analyze(&long[..], &data[..], HashAlgo::Blake3, digest).is_err());
        assert!(rebuild(&long, &data, HashAlgo::Blake3, digest).is_err());
        // A record longer than the caller allows is refused from its header.
        let n = rec.len() as u64;
        assert!(check_record(&rec[..], HashAlgo::Blake3, n - 1).is_err());
        assert!(check_record(&rec[..], HashAlgo::Blake3, n).is_ok());
    }

    /// A record with a chosen header and a valid trailer: what a hostile writer makes.
    fn forged(block: u32, window: u32, size: u64, redundancy: u8, body: &[u8]) -> Vec<u8> {
        let mut r = Vec::new();
        r.extend_from_slice(MAGIC);
        r.extend_from_slice(&[VERSION, redundancy]);
        r.extend_from_slice(&3u16.to_le_bytes());
        r.extend_from_slice(&block.to_le_bytes());
        r.extend_from_slice(&window.to_le_bytes());
        r.extend_from_slice(&size.to_le_bytes());
        r.extend_from_slice(HashAlgo::Xxh3.digest(b"x").as_bytes());
        r.extend_from_slice(body);
        let t = *blake3::hash(&r).as_bytes();
        r.extend_from_slice(&t);
        r
    }

    #[test]
    fn hostile_headers_are_refused_without_allocating_from_them() {
        let algo = HashAlgo::Xxh3;
        let digest = algo.digest(b"x");
        for (block, window, size, r) in [
            (0, 1, 100, 10),
            (65, 1, 100, 10),
            (MAX_BLOCK + 64, 1, 100, 10),
            (64, 0, 100, 10),
            (64, MAX_WINDOW + 1, 100, 10),
            (MAX_BLOCK, 2, 100, 10),
            (4096, 4096, 100, 10),
            (64, 1, 100, 0),
            (64, 1, 100, 101),
        ] {
            let rec = forged(block, window, size, r, &[]);
            let e = check_record(&rec[..], algo, u64::MAX).unwrap_err();
            assert!(e.contains("out of bounds"), "{e}");
            assert!(analyze(&rec[..], &b"x"[..], algo, digest).is_err());
            assert!(rebuild(&rec, b"x", algo, digest).is_err());
        }
        // In bounds, but claiming an absurd size: refused by length, never read.
        for size in [u64::MAX, 1 << 62, 1 << 40] {
            let rec = forged(MAX_BLOCK, 1, size, 100, &[]);
            assert!(check_record(&rec[..], algo, 1 << 30).is_err());
            assert!(check_record(&rec[..], algo, u64::MAX).is_err());
            // analyze and Rebuild read it window by window and find it truncated.
            assert!(analyze(&rec[..], &b"x"[..], algo, digest).is_err());
            assert!(rebuild(&rec, b"x", algo, digest).is_err());
        }
    }

    #[test]
    fn record_for_other_content_or_algo_is_refused() {
        let data = content(5000, 9);
        let (rec, _) = encode(&data, 4096, 10);
        let other = HashAlgo::Blake3.digest(b"other");
        assert!(analyze(&rec[..], &data[..], HashAlgo::Blake3, other).is_err());
        let e = rebuild(&rec, &data, HashAlgo::Blake3, other).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        let sha = HashAlgo::Sha256.digest(&data);
        assert!(check_record(&rec[..], HashAlgo::Sha256, u64::MAX).is_err());
        assert!(analyze(&rec[..], &data[..], HashAlgo::Sha256, sha).is_err());
        let e = rebuild(&rec, &data, HashAlgo::Sha256, sha).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn encoder_refuses_a_source_that_changed() {
        let data = content(50_000, 10);
        let digest = HashAlgo::Blake3.digest(&data);
        let full = Layout::new(50_000, 4096, 10).record_size(HashAlgo::Blake3) as usize;
        let mut changed = data.clone();
        changed[49_999] ^= 1;
        let longer = [&data[..], b"!"].concat();
        for (src, size) in [
            (&changed[..], 50_000),
            (&data[..49_999], 50_000),
            (&longer[..], 50_000),
            (&data[..], 49_999),
        ] {
            let mut enc = Encoder::new(src, HashAlgo::Blake3, digest, size, 4096, 10);
            let mut got = Vec::new();
            let e = enc.read_to_end(&mut got).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidData);
            // The trailer was never yielded, and the encoder stays failed.
            assert!(got.len() < full);
            assert!(enc.read(&mut [0u8; 16]).is_err());
        }
    }

    /// A reader that fails with a chosen error after `ok` bytes.
    struct Failing<'a> {
        data: &'a [u8],
        ok: usize,
    }

    impl Read for Failing<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.ok == 0 {
                return Err(io::Error::new(io::ErrorKind::PermissionDenied, "no"));
            }
            let n = buf.len().min(self.ok).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            self.ok -= n;
            Ok(n)
        }
    }

    #[test]
    fn inner_io_errors_propagate_as_they_are() {
        let data = content(20_000, 11);
        let digest = HashAlgo::Blake3.digest(&data);
        let (rec, _) = encode(&data, 4096, 10);
        let src = Failing {
            data: &data,
            ok: 100,
        };
        let mut enc = Encoder::new(src, HashAlgo::Blake3, digest, 20_000, 4096, 10);
        let e = enc.read_to_end(&mut Vec::new()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
        let file = Failing {
            data: &data,
            ok: 100,
        };
        let mut rb = Rebuild::new(&rec[..], file, HashAlgo::Blake3, digest);
        let e = rb.read_to_end(&mut Vec::new()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
        let record = Failing {
            data: &rec,
            ok: 100,
        };
        let mut rb = Rebuild::new(record, &data[..], HashAlgo::Blake3, digest);
        let e = rb.read_to_end(&mut Vec::new()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
        let file = Failing {
            data: &data,
            ok: 100,
        };
        assert!(analyze(&rec[..], file, HashAlgo::Blake3, digest).is_err());
        let record = Failing {
            data: &rec,
            ok: 100,
        };
        assert!(check_record(record, HashAlgo::Blake3, u64::MAX).is_err());
    }

    #[test]
    fn damaged_recovery_block_never_yields_wrong_bytes() {
        // Bytes in the record's recovery blocks changed and its trailer forged: the
        // rebuilt block fails its digest.
        let data = content(4096, 12);
        let (mut rec, l) = encode(&data, 4096, 10);
        let head = FIXED_HEADER + 32 + 32 * BLOCK_DIGEST;
        rec[head + 3] ^= 1;
        let n = rec.len() - TRAILER;
        let t = *blake3::hash(&rec[..n]).as_bytes();
        rec[n..].copy_from_slice(&t);
        let mut file = data.clone();
        flip_block(&mut file, &l, 0, 0);
        let e = rebuilt(&rec, &file, &data).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }

    /// Run with `cargo test -p rebound --release --lib parity::tests::speed -- --ignored --nocapture`.
    #[test]
    #[ignore = "a figure, not a check: run in --release"]
    fn speed_64_mib_at_10_percent() {
        let data = content(64 << 20, 13);
        let digest = HashAlgo::Blake3.digest(&data);
        let mib = 64.0;
        let t = std::time::Instant::now();
        let mut rec = Vec::new();
        Encoder::new(
            &data[..],
            HashAlgo::Blake3,
            digest,
            data.len() as u64,
            4096,
            10,
        )
        .read_to_end(&mut rec)
        .unwrap();
        let enc = t.elapsed().as_secs_f64();
        let l = Layout::new(data.len() as u64, 4096, 10);
        let t = std::time::Instant::now();
        analyze(&rec[..], &data[..], HashAlgo::Blake3, digest).unwrap();
        let ana = t.elapsed().as_secs_f64();
        let t = std::time::Instant::now();
        assert_eq!(
            rebuild(&rec, &data, HashAlgo::Blake3, digest).unwrap(),
            data
        );
        let intact = t.elapsed().as_secs_f64();
        let mut file = data.clone();
        for w in 0..l.windows() {
            for i in 0..l.recovery(l.window_blocks(w)) {
                flip_block(&mut file, &l, w * u64::from(l.window) + i * 9, 0);
            }
        }
        let t = std::time::Instant::now();
        assert_eq!(
            rebuild(&rec, &file, HashAlgo::Blake3, digest).unwrap(),
            data
        );
        let full = t.elapsed().as_secs_f64();
        println!(
            "64 MiB, 4 KiB blocks, 10%: record {} bytes; encode {:.0} MiB/s, analyze {:.0} MiB/s, \
             rebuild intact {:.0} MiB/s, rebuild with 10% of blocks damaged {:.0} MiB/s",
            rec.len(),
            mib / enc,
            mib / ana,
            mib / intact,
            mib / full
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn damage_patterns_rebuild_exactly_or_fail(
            size in 0usize..200 << 10,
            block in 1u32..=128,
            redundancy in 1u8..=50,
            window in proptest::option::of(1u32..64),
            seed in any::<u64>(),
            hits in proptest::collection::vec(any::<(u64, usize)>(), 0..40),
            cut in proptest::option::of(any::<u64>()),
        ) {
            let block = block * MIN_BLOCK;
            let data = content(size, seed);
            let l = match window {
                Some(w) => Layout::with_window(size as u64, block, redundancy, w),
                None => Layout::new(size as u64, block, redundancy),
            };
            let rec = encode_layout(&data, HashAlgo::Blake3, l);
            let mut file = data.clone();
            let blocks = l.blocks();
            if blocks > 0 {
                for (b, sel) in hits {
                    flip_block(&mut file, &l, b % blocks, sel);
                }
            }
            if let Some(c) = cut {
                file.truncate((c % (size as u64 + 1)) as usize);
            }
            // Damaged: a missing byte, or bytes that differ (a bit flipped twice is
            // intact again).
            let damaged: Vec<u64> = (0..blocks)
                .filter(|&b| {
                    let s = (b * u64::from(l.block)) as usize;
                    let e = (s + l.block as usize).min(size);
                    file.len() < e || file[s..e] != data[s..e]
                })
                .collect();
            let mut per_window = vec![0u64; l.windows() as usize];
            for &b in &damaged {
                per_window[(b / u64::from(l.window)) as usize] += 1;
            }
            let ok = per_window
                .iter()
                .enumerate()
                .all(|(w, &d)| d <= l.recovery(l.window_blocks(w as u64)));
            let f = fit(&rec, &file, &data);
            prop_assert_eq!(f.damaged, damaged.len() as u64);
            prop_assert_eq!(f.recoverable, ok);
            prop_assert_eq!(f.worst.is_none(), ok);
            match rebuilt(&rec, &file, &data) {
                Ok(got) => {
                    prop_assert!(ok);
                    prop_assert!(got == data);
                }
                Err(e) => {
                    prop_assert!(!ok);
                    prop_assert_eq!(e.kind(), io::ErrorKind::InvalidData);
                }
            }
        }

        #[test]
        fn arbitrary_records_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..2048),
            header in any::<(u32, u32, u64, u8)>(),
            forge in any::<bool>(),
            max in any::<u64>(),
        ) {
            let rec = if forge {
                let (block, window, size, r) = header;
                forged(block % (1 << 16), window % 256, size % (1 << 20), r, &bytes)
            } else {
                bytes
            };
            let digest = HashAlgo::Xxh3.digest(b"x");
            let _ = check_record(&rec[..], HashAlgo::Xxh3, max);
            let _ = check_record(&rec[..], HashAlgo::Xxh3, u64::MAX);
            let _ = analyze(&rec[..], &b"x"[..], HashAlgo::Xxh3, digest);
            let _ = rebuild(&rec, b"x", HashAlgo::Xxh3, digest);
        }

        #[test]
        fn flipped_record_bytes_are_refused(
            size in 0usize..20_000,
            redundancy in 1u8..=100,
            pos in any::<usize>(),
            flip in 1u8..=255,
        ) {
            let data = content(size, size as u64);
            let (mut rec, _) = encode(&data, 4096, redundancy);
            let i = pos % rec.len();
            rec[i] ^= flip;
            prop_assert!(check_record(&rec[..], HashAlgo::Blake3, u64::MAX).is_err());
        }
    }
}
