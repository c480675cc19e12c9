//! Parity records: per-block digests and Reed-Solomon recovery blocks for one file's
//! content, so that a damaged copy is rebuilt from its own intact blocks without a
//! second full copy (docs/design.md section 2.6).
//!
//! Pure streaming code over `std::io`: no file system, no paths. The engine names
//! records by content digest (`.rebound/<set>/parity/<xx>/<hex>` in the parity
//! directory), writes them through `durable`, and checks a rebuilt file against the
//! manifest's digest before it replaces anything.
//!
//! API STUB: the implementation lands with the codec.

use std::io::{self, Read};

use crate::digest::{Digest, HashAlgo};

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
    pub fn new(_size: u64, _block: u32, _redundancy: u8) -> Layout {
        unimplemented_layout()
    }
    /// Data blocks in all (0 for an empty file).
    pub fn blocks(&self) -> u64 {
        0
    }
    /// Recovery blocks in all.
    pub fn recovery_blocks(&self) -> u64 {
        0
    }
    /// Size in bytes of the whole record.
    pub fn record_size(&self, _algo: HashAlgo) -> u64 {
        0
    }
}

fn unimplemented_layout() -> Layout {
    Layout {
        size: 0,
        block: MIN_BLOCK,
        window: 1,
        redundancy: DEFAULT_REDUNDANCY,
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

/// A `Read` yielding a record's bytes for the content read from `src`, which must
/// hash (with `algo`) to `digest` and be `size` bytes long: otherwise a read fails with
/// `io::ErrorKind::InvalidData` (the source changed while it was read) before the
/// record's last bytes are yielded. Memory: one window.
#[derive(Debug)]
pub struct Encoder<R> {
    src: R,
}

impl<R: Read> Encoder<R> {
    pub fn new(
        src: R,
        _algo: HashAlgo,
        _digest: Digest,
        _size: u64,
        _block: u32,
        _redundancy: u8,
    ) -> Encoder<R> {
        Encoder { src }
    }
}

impl<R: Read> Read for Encoder<R> {
    fn read(&mut self, _buf: &mut [u8]) -> io::Result<usize> {
        let _ = &mut self.src;
        Err(io::Error::other("not implemented"))
    }
}

/// Checks a whole record read from `r` (at most `max` bytes are read): its header,
/// its bounds and its checksum. `Err` says why it is damaged.
pub fn check_record<R: Read>(_r: R, _algo: HashAlgo, _max: u64) -> Result<RecordInfo, String> {
    Err("not implemented".into())
}

/// Compares the blocks of a damaged copy (`file`, read to its end or to the layout's
/// size) with a record (`record`) for `digest`. `Err`: the record is unusable (damaged,
/// or for other content), or `file` could not be read.
pub fn analyze<R: Read, F: Read>(
    _record: R,
    _file: F,
    _algo: HashAlgo,
    _digest: Digest,
) -> Result<Fit, String> {
    Err("not implemented".into())
}

/// A `Read` yielding exactly the protected content (`digest`), rebuilt from the
/// intact blocks of `file` (a damaged copy: shorter, longer, damaged blocks; an empty
/// reader for a missing file) and the record's recovery blocks. A window that cannot
/// be rebuilt, a rebuilt block that does not match its digest, or a record for other
/// content fails the read with `io::ErrorKind::InvalidData`. Memory: one window.
#[derive(Debug)]
pub struct Rebuild<R, F> {
    record: R,
    file: F,
}

impl<R: Read, F: Read> Rebuild<R, F> {
    pub fn new(record: R, file: F, _algo: HashAlgo, _digest: Digest) -> Rebuild<R, F> {
        Rebuild { record, file }
    }
}

impl<R: Read, F: Read> Read for Rebuild<R, F> {
    fn read(&mut self, _buf: &mut [u8]) -> io::Result<usize> {
        let _ = (&mut self.record, &mut self.file);
        Err(io::Error::other("not implemented"))
    }
}
