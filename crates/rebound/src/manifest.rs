//! The manifest: what a replica's protected files must contain, and its on-disk format.
//!
//! Format (version 2) is UTF-8 text, one record a line, each line ending in `\n`:
//!
//! ```text
//! rebound-manifest 2
//! set <name>
//! generation <u64>
//! hash <blake3|sha256|crc32|xxh3>
//! tag <i64>                                   (only if the set has a version tag)
//! file <size> <mode, octal> <uid> <gid> <hex digest> <path, percent-encoded>   (sorted by path)
//! end <blake3 hex of every byte before this line>
//! ```
//!
//! `<uid> <gid>` are both decimal, or both `-`: the owner is not recorded (an entry
//! read from a version 1 manifest, which had no owner field, and not recorded since).
//! Version 1 (the same without `<uid> <gid>`) is still read; its entries have no
//! owner. rebound writes version 2 only.
//!
//! The `end` line is the checksum: a manifest whose checksum does not match, or that
//! breaks any rule above, is *absent* (not partially trusted). The checksum is always
//! BLAKE3, whatever the entries' algorithm, so a CRC-32 set still has a strong
//! integrity check on its manifest.
//!
//! Version 3 (keyed, docs/design.md section 2.3) is version 2's body under
//! `rebound-manifest 3`, with a `mac <key id> <hex>` line per device key before the
//! `end` line ([`record::seal_keyed`]). With a key, only a version 3 manifest whose
//! MAC of that key holds for this set and this replica root is read
//! ([`Manifest::decode_keyed`]); without one, version 3 is read by its `end` line, as
//! version 2.

use std::collections::BTreeMap;

use serde::Serialize;

use std::path::Path;

use crate::digest::{Digest, HashAlgo};
use crate::keys::{DeviceKey, Signers};
use crate::names::{
    MANIFEST_MAGIC, MANIFEST_MAX_BYTES, MANIFEST_VERSION, MANIFEST_VERSION_1,
    MANIFEST_VERSION_KEYED,
};
use crate::record;
use crate::relpath::RelPath;

/// Who owns a file: numeric user and group ids, as `stat` gives them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.uid, self.gid)
    }
}

/// One protected file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// Size in bytes.
    pub size: u64,
    /// Permission bits (`0o7777` at most: setuid, setgid, sticky and rwx).
    pub mode: u32,
    /// Owner, `None` if not recorded (read from a format 1 manifest): then it is
    /// neither checked nor restored.
    pub owner: Option<Owner>,
    /// Digest of the content.
    pub digest: Digest,
}

/// The protected files of a set at one generation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Manifest {
    /// Name of the set it belongs to.
    pub set: String,
    /// Only grows; the intact manifest with the highest generation is current.
    pub generation: u64,
    /// Algorithm of every entry's digest.
    pub hash: HashAlgo,
    /// The legacy version tag this generation corresponds to (mirror mode).
    pub tag: Option<i64>,
    /// Protected files by relative path.
    pub entries: BTreeMap<RelPath, Entry>,
}

/// Why bytes are not a valid manifest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("line {line}: {what}")]
    Malformed { line: usize, what: String },
    #[error("checksum mismatch (torn or corrupted write)")]
    Checksum,
    #[error("truncated (no `end` line)")]
    Truncated,
    #[error("unsupported format version {0} (this rebound reads versions {MANIFEST_VERSION_1} to {MANIFEST_VERSION_KEYED})")]
    Version(String),
    /// Read with a device key: not a version 3 manifest with a valid MAC of that key
    /// for this set and copy.
    #[error("{0}")]
    Unauthenticated(String),
}

/// Whether a set name is acceptable (also used by the configuration). The name is a
/// directory under `.rebound/`, so `.` and `..` are refused: they would name the
/// metadata directory itself or the replica root.
pub fn valid_set_name(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

impl Manifest {
    /// An empty manifest.
    pub fn new(set: &str, generation: u64, hash: HashAlgo, tag: Option<i64>) -> Manifest {
        Manifest {
            set: set.to_string(),
            generation,
            hash,
            tag,
            entries: BTreeMap::new(),
        }
    }

    /// Serializes to the on-disk format (version 2, no key).
    pub fn encode(&self) -> Vec<u8> {
        record::seal(self.body(MANIFEST_VERSION))
    }

    /// Serializes for the writable copy at `root`: version 3 with a `mac` line per key
    /// of `signers`, or (no key) version 2 as [`Manifest::encode`].
    pub fn encode_for(&self, signers: Signers<'_>, root: &Path) -> Vec<u8> {
        if !signers.any() {
            return self.encode();
        }
        record::seal_keyed(self.body(MANIFEST_VERSION_KEYED), signers, &self.set, root)
    }

    /// Parses a manifest read from the writable copy at `root` of set `set` with its
    /// device key: only a version 3 manifest with a valid MAC of `key` (bound to `set`
    /// and `root`) is accepted.
    ///
    /// # Errors
    /// As [`Manifest::decode`], and [`ManifestError::Unauthenticated`] for anything
    /// without such a MAC (versions 1 and 2 included: no downgrade).
    pub fn decode_keyed(
        bytes: &[u8],
        key: &DeviceKey,
        set: &str,
        root: &Path,
    ) -> Result<Manifest, ManifestError> {
        let body = record::open_keyed(bytes, key, set, root).map_err(|e| match e {
            record::Broken::Truncated => ManifestError::Truncated,
            record::Broken::Checksum => ManifestError::Checksum,
            e => ManifestError::Unauthenticated(e.describe().to_string()),
        })?;
        let (version, m) = Manifest::decode_body(body)?;
        if version != MANIFEST_VERSION_KEYED {
            return Err(ManifestError::Unauthenticated(format!(
                "version {version} manifest: not authenticated by the device key (only version {MANIFEST_VERSION_KEYED} carries a MAC)"
            )));
        }
        Ok(m)
    }

    fn body(&self, version: u32) -> String {
        let mut s = String::new();
        s.push_str(&format!("{MANIFEST_MAGIC} {version}\n"));
        s.push_str(&format!("set {}\n", self.set));
        s.push_str(&format!("generation {}\n", self.generation));
        s.push_str(&format!("hash {}\n", self.hash));
        if let Some(t) = self.tag {
            s.push_str(&format!("tag {t}\n"));
        }
        for (path, e) in &self.entries {
            let owner = match e.owner {
                Some(o) => format!("{} {}", o.uid, o.gid),
                None => "- -".to_string(),
            };
            s.push_str(&format!(
                "file {} {:o} {owner} {} {}\n",
                e.size,
                e.mode,
                e.digest,
                record::encode_path(path.as_str())
            ));
        }
        s
    }

    /// Parses the on-disk format (version 2 or 3, or version 1 whose entries then have
    /// no owner), checking every rule and the checksum (not a version 3 MAC: that is
    /// [`Manifest::decode_keyed`]).
    ///
    /// # Errors
    /// Returns what is wrong with the bytes; such a manifest must be treated as absent.
    pub fn decode(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        // Checksum first: anything torn fails here, before any field is trusted.
        let body = record::open(bytes).map_err(|e| match e {
            record::Broken::Checksum => ManifestError::Checksum,
            _ => ManifestError::Truncated,
        })?;
        Manifest::decode_body(body).map(|(_, m)| m)
    }

    /// Parses a body whose trailer holds: its format version and the manifest.
    fn decode_body(body: &[u8]) -> Result<(u32, Manifest), ManifestError> {
        let text = std::str::from_utf8(body).map_err(|_| ManifestError::Malformed {
            line: 0,
            what: "not UTF-8".into(),
        })?;
        // Exact `\n` line ends: a `\r` or any other byte out of place is malformed.
        let mut lines = text
            .strip_suffix('\n')
            .unwrap_or(text)
            .split('\n')
            .enumerate()
            .map(|(i, l)| (i + 1, l))
            .peekable();
        let mut field = |key: &str| -> Result<(usize, String), ManifestError> {
            match lines.next() {
                Some((n, l)) => match l.strip_prefix(key).and_then(|r| r.strip_prefix(' ')) {
                    Some(v) => Ok((n, v.to_string())),
                    None => Err(bad(n, format!("expected `{key} ...`"))),
                },
                None => Err(ManifestError::Truncated),
            }
        };
        let (_, version) = field(MANIFEST_MAGIC)?;
        let version = parse_version(&version)?;
        let with_owner = version != MANIFEST_VERSION_1;
        let (n, set) = field("set")?;
        let set = parse_set(n, set)?;
        let (n, g) = field("generation")?;
        let generation = parse_u64(&g).ok_or_else(|| bad(n, "invalid generation"))?;
        let (n, h) = field("hash")?;
        let hash: HashAlgo = h.parse().map_err(|e: String| bad(n, e))?;
        let mut m = Manifest::new(&set, generation, hash, None);
        if let Some((n, t)) = lines.next_if(|(_, l)| l.starts_with("tag ")) {
            m.tag = Some(parse_tag_line(n, t)?);
        }
        // Entries arrive sorted (checked against the previous one, no copy kept) and
        // the map is built from the sorted list in one go (its nodes full: inserted
        // one by one at the end, they would be about half full). The list is sized
        // from the line count: grown by doubling it would hold up to twice the room.
        // But never beyond what the text can hold: an entry line is at least `min_line`
        // bytes, so a crafted body of blank lines under a valid checksum (rebound
        // never writes one) reserves no more than a real manifest of its size would,
        // not an entry (80 bytes) per byte before its first line is found malformed.
        let min_line = "file 0 0  a\n".len()
            + if with_owner { "0 0 ".len() } else { 0 }
            + 2 * hash.digest_len();
        let newlines = text.bytes().filter(|b| *b == b'\n').count();
        let mut entries: Vec<(RelPath, Entry)> =
            Vec::with_capacity(newlines.min(text.len() / min_line));
        for (n, l) in lines {
            let (path, entry) = parse_file_line(n, l, with_owner, hash)?;
            if entries.last().is_some_and(|(p, _)| *p >= path) {
                return Err(bad(n, "paths not sorted or duplicated"));
            }
            entries.push((path, entry));
        }
        m.entries = entries.into_iter().collect();
        Ok((version, m))
    }
}

/// What a streamed manifest's lines before its entries say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Header {
    pub version: u32,
    pub set: String,
    pub generation: u64,
    pub hash: HashAlgo,
    pub tag: Option<i64>,
}

/// What a streamed manifest's trailer proved ([`Stream::finish`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Trailer {
    /// BLAKE3 of the body (every byte before the `mac` lines): two manifests with
    /// the same body say the same, whichever copy each was written for.
    pub body: blake3::Hash,
    /// The checksum of the `end` line (every byte before it): two slots with the same
    /// one hold the same bytes.
    pub sum: blake3::Hash,
}

/// The longest line a stream accepts: a path of 4096 bytes, every byte
/// percent-encoded, and the fields before it fit well under it.
const STREAM_LINE_MAX: u64 = 32 << 10;

/// Body bytes a stream hashes at once.
const HASH_AT: usize = 64 << 10;

/// A manifest read line by line (the streaming boot, docs/design.md section 3.2),
/// holding one line, never the file. Accepts exactly what [`Manifest::decode`] (or
/// with `key`, [`Manifest::decode_keyed`]) accepts, but trusts nothing until
/// [`Stream::finish`] has checked the `end` line (and the `mac` line of `key`): what
/// a caller concluded from the entries before then is void if `finish` fails.
///
/// Read without `parse`, `finish` proves only that the bytes are intact (and
/// authenticated): the entries are not checked, so the caller must compare the body
/// hash ([`Trailer::body`]) with that of a stream that parsed them.
pub(crate) struct Stream<'k, R> {
    input: R,
    line: Vec<u8>,
    /// A line read but not consumed: the first after the header (no `tag`) or after
    /// the entries.
    pending: bool,
    n: usize,
    read: u64,
    sum: blake3::Hasher,
    /// The device key and its hasher over the body; wiped when finalized or dropped.
    mac: Option<(&'k DeviceKey, blake3::Hasher)>,
    /// Body lines not hashed yet: hashed 64 KiB at a time, which BLAKE3 does several
    /// chunks at once (a line at a time, it would do one).
    unhashed: Vec<u8>,
    parse: bool,
    with_owner: bool,
    prev: String,
    pub header: Header,
}

impl<R> Drop for Stream<'_, R> {
    fn drop(&mut self) {
        if let Some((_, h)) = &mut self.mac {
            zeroize::Zeroize::zeroize(h);
        }
    }
}

impl<R> std::fmt::Debug for Stream<'_, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("line", &self.n)
            .field("header", &self.header)
            .finish_non_exhaustive()
    }
}

impl<'k, R: std::io::BufRead> Stream<'k, R> {
    /// Reads the header. With `key` (and the set and copy its MAC is bound to), only a
    /// version 3 manifest with a valid MAC of it passes [`Stream::finish`]. Without
    /// `parse`, the entries are checked by the checksum only (a slot compared with one
    /// that was parsed: same `body` hash, same content).
    ///
    /// # Errors
    /// What is wrong with the header, or the read.
    pub(crate) fn open(
        input: R,
        key: Option<(&'k DeviceKey, &str, &Path)>,
        parse: bool,
    ) -> Result<Stream<'k, R>, ManifestError> {
        let mut s = Stream {
            input,
            line: Vec::new(),
            pending: false,
            n: 0,
            read: 0,
            sum: blake3::Hasher::new(),
            mac: key.map(|(k, set, root)| (k, k.mac_start(set, root))),
            unhashed: Vec::with_capacity(HASH_AT),
            parse,
            with_owner: true,
            prev: String::new(),
            header: Header {
                version: 0,
                set: String::new(),
                generation: 0,
                hash: HashAlgo::Blake3,
                tag: None,
            },
        };
        let (_, v) = s.field(MANIFEST_MAGIC)?;
        let version = parse_version(&v)?;
        s.with_owner = version != MANIFEST_VERSION_1;
        if s.mac.is_some() && version != MANIFEST_VERSION_KEYED {
            return Err(ManifestError::Unauthenticated(format!(
                "version {version} manifest: not authenticated by the device key"
            )));
        }
        let (n, set) = s.field("set")?;
        let set = parse_set(n, set)?;
        let (n, g) = s.field("generation")?;
        let generation = parse_u64(&g).ok_or_else(|| bad(n, "invalid generation"))?;
        let (n, h) = s.field("hash")?;
        let hash: HashAlgo = h.parse().map_err(|e: String| bad(n, e))?;
        s.next_line()?;
        let tag = match s.text()? {
            Some(t) if t.starts_with("tag ") => {
                let v = parse_tag_line(s.n, t)?;
                s.body_line();
                Some(v)
            }
            _ => {
                s.pending = true;
                None
            }
        };
        s.header = Header {
            version,
            set,
            generation,
            hash,
            tag,
        };
        Ok(s)
    }

    /// The next entry in path order (`None` after the last one; its path is not
    /// decoded without `parse`, and then `None` is returned for each entry too, as
    /// `Some(None)`).
    ///
    /// # Errors
    /// A malformed line, paths out of order, the read.
    #[allow(clippy::type_complexity)]
    pub(crate) fn next_entry(&mut self) -> Result<Option<Option<(RelPath, Entry)>>, ManifestError> {
        if !self.pending {
            self.next_line()?;
        }
        if !self.line.starts_with(b"file ") {
            self.pending = true;
            return Ok(None);
        }
        self.pending = false;
        let entry = if self.parse {
            let l = self.text()?.unwrap_or_default();
            let (path, entry) = parse_file_line(self.n, l, self.with_owner, self.header.hash)?;
            if !self.prev.is_empty() && self.prev.as_str() >= path.as_str() {
                return Err(bad(self.n, "paths not sorted or duplicated"));
            }
            self.prev.clear();
            self.prev.push_str(path.as_str());
            Some((path, entry))
        } else {
            None
        };
        self.body_line();
        Ok(Some(entry))
    }

    /// Reads the rest and checks the trailer: the `mac` lines, then the `end` line
    /// last, its checksum, and with a key, its MAC.
    ///
    /// # Errors
    /// Why the manifest is not intact (or not authenticated).
    pub(crate) fn finish(mut self) -> Result<Trailer, ManifestError> {
        while self.next_entry()?.is_some() {}
        self.hash_body();
        let body = self.sum.clone().finalize();
        // The body ends here: the key's MAC of it, against which each `mac` line of
        // the key's id is checked as it is read (none is kept).
        let want = self.mac.take().map(|(k, mut h)| {
            let w = h.finalize();
            zeroize::Zeroize::zeroize(&mut h);
            (k.id(), w)
        });
        let (mut ours, mut wrong) = (false, false);
        loop {
            let l = self.text()?.ok_or(ManifestError::Truncated)?;
            if let Some(sum) = l.strip_prefix("end ") {
                let ok = sum == self.sum.finalize().to_hex().as_str();
                let sum = blake3::Hash::from_hex(sum).map_err(|_| ManifestError::Checksum)?;
                self.next_line()?;
                if !ok || !self.line.is_empty() {
                    return Err(ManifestError::Checksum);
                }
                if want.is_some() && (!ours || wrong) {
                    return Err(ManifestError::Unauthenticated(
                        "not authenticated by the device key".into(),
                    ));
                }
                return Ok(Trailer { body, sum });
            }
            let (id, mac) = l
                .strip_prefix("mac ")
                .and_then(|m| m.split_once(' '))
                .filter(|(id, mac)| is_lower_hex(id, 16) && is_lower_hex(mac, 64))
                .ok_or_else(|| bad(self.n, "expected `mac ...` or `end ...`"))?;
            if let Some((kid, w)) = &want {
                if id == *kid {
                    ours = true;
                    wrong |= blake3::Hash::from_hex(mac).ok() != Some(*w);
                }
            }
            self.sum.update(&self.line);
            self.next_line()?;
        }
    }

    /// Reads line `n + 1` into `line` (empty at the end of the input).
    fn next_line(&mut self) -> Result<(), ManifestError> {
        use std::io::{BufRead as _, Read as _};
        self.line.clear();
        let got = (&mut self.input)
            .take(STREAM_LINE_MAX)
            .read_until(b'\n', &mut self.line)
            .map_err(|e| bad(self.n + 1, e.to_string()))?;
        self.read += got as u64;
        self.n += 1;
        if self.read > MANIFEST_MAX_BYTES {
            return Err(bad(self.n, "larger than a manifest may be"));
        }
        if got > 0 && !self.line.ends_with(b"\n") {
            return Err(ManifestError::Truncated);
        }
        Ok(())
    }

    /// The current line without its `\n` (`None` at the end of the input).
    fn text(&self) -> Result<Option<&str>, ManifestError> {
        match self.line.strip_suffix(b"\n") {
            None => Ok(None),
            Some(l) => std::str::from_utf8(l)
                .map(Some)
                .map_err(|_| bad(self.n, "not UTF-8")),
        }
    }

    /// The current line belongs to the body: checksummed and MAC'd.
    fn body_line(&mut self) {
        self.unhashed.extend_from_slice(&self.line);
        if self.unhashed.len() >= HASH_AT {
            self.hash_body();
        }
    }

    /// Hashes the body lines read so far.
    fn hash_body(&mut self) {
        self.sum.update(&self.unhashed);
        if let Some((_, h)) = &mut self.mac {
            h.update(&self.unhashed);
        }
        self.unhashed.clear();
    }

    /// Reads a header line `key value`, part of the body.
    fn field(&mut self, key: &str) -> Result<(usize, String), ManifestError> {
        self.next_line()?;
        let v = match self.text()? {
            None => return Err(ManifestError::Truncated),
            Some(l) => l
                .strip_prefix(key)
                .and_then(|r| r.strip_prefix(' '))
                .map(str::to_string)
                .ok_or_else(|| bad(self.n, format!("expected `{key} ...`")))?,
        };
        self.body_line();
        Ok((self.n, v))
    }
}

/// `str::splitn(left, ' ')` by a byte search (a line of a 100,000-file manifest is
/// split on every boot: `char` patterns cost several times as much).
struct SplitSpaces<'a> {
    rest: Option<&'a str>,
    left: usize,
}

impl<'a> Iterator for SplitSpaces<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let s = self.rest?;
        self.left = self.left.checked_sub(1)?;
        let at = (self.left > 0)
            .then(|| s.bytes().position(|b| b == b' '))
            .flatten();
        match at {
            Some(i) => {
                self.rest = s.get(i + 1..);
                s.get(..i)
            }
            None => self.rest.take(),
        }
    }
}

fn is_lower_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The manifest `bytes` hold, read through `Stream` (open, every entry, finish) and
/// collected: `None` where the stream refuses it. For tests and fuzzing, which compare
/// it with [`Manifest::decode`] (`decode_keyed`).
pub fn read_streamed(bytes: &[u8], key: Option<(&DeviceKey, &str, &Path)>) -> Option<Manifest> {
    let mut s = Stream::open(bytes, key, true).ok()?;
    let h = s.header.clone();
    let mut m = Manifest::new(&h.set, h.generation, h.hash, h.tag);
    while let Some(e) = s.next_entry().ok()? {
        let (p, e) = e?;
        m.entries.insert(p, e);
    }
    s.finish().ok()?;
    Some(m)
}

/// The format version of a manifest's first line (`rebound-manifest <version>`).
fn parse_version(v: &str) -> Result<u32, ManifestError> {
    match v {
        "1" => Ok(MANIFEST_VERSION_1),
        "2" => Ok(MANIFEST_VERSION),
        "3" => Ok(MANIFEST_VERSION_KEYED),
        _ => Err(ManifestError::Version(v.to_string())),
    }
}

/// The value of the `set` line (line `n`).
fn parse_set(n: usize, set: String) -> Result<String, ManifestError> {
    if valid_set_name(&set) {
        Ok(set)
    } else {
        Err(bad(n, format!("invalid set name `{set}`")))
    }
}

/// A `tag <value>` line (line `n`).
fn parse_tag_line(n: usize, l: &str) -> Result<i64, ManifestError> {
    l.strip_prefix("tag ")
        .and_then(parse_i64)
        .ok_or_else(|| bad(n, "invalid tag"))
}

/// One `file ...` line (line `n`): its path and entry. Every rule but the order of
/// the paths, which the caller checks against the previous line.
fn parse_file_line(
    n: usize,
    l: &str,
    with_owner: bool,
    hash: HashAlgo,
) -> Result<(RelPath, Entry), ManifestError> {
    let r = l
        .strip_prefix("file ")
        .ok_or_else(|| bad(n, "expected `file ...`"))?;
    let mut parts = SplitSpaces {
        rest: Some(r),
        left: if with_owner { 6 } else { 4 },
    };
    let (size, mode) = (parts.next(), parts.next());
    let owner = if with_owner {
        match (parts.next(), parts.next()) {
            (Some("-"), Some("-")) => Some(None),
            (Some(u), Some(g)) => parse_id(u)
                .zip(parse_id(g))
                .map(|(uid, gid)| Some(Owner { uid, gid })),
            _ => None,
        }
    } else {
        Some(None)
    };
    let (Some(size), Some(mode), Some(owner), Some(digest), Some(path)) =
        (size, mode, owner, parts.next(), parts.next())
    else {
        return Err(bad(
            n,
            if with_owner {
                "expected `file <size> <mode> <uid> <gid> <digest> <path>`"
            } else {
                "expected `file <size> <mode> <digest> <path>`"
            },
        ));
    };
    let size = parse_u64(size).ok_or_else(|| bad(n, "invalid size"))?;
    let mode = parse_mode(mode).ok_or_else(|| bad(n, "invalid mode"))?;
    let digest =
        Digest::from_hex(hash, digest).ok_or_else(|| bad(n, format!("invalid {hash} digest")))?;
    let path = record::decode_path(path).ok_or_else(|| bad(n, "invalid path encoding"))?;
    let path = RelPath::new(&path).map_err(|e| bad(n, format!("path `{path}`: {e}")))?;
    if path.is_meta() {
        return Err(bad(
            n,
            format!("path `{path}` is inside rebound's metadata"),
        ));
    }
    Ok((
        path,
        Entry {
            size,
            mode,
            owner,
            digest,
        },
    ))
}

/// The generation a damaged manifest claims, read leniently: the first of its first
/// eight lines that reads `generation <digits>` (leading zeros allowed, nothing
/// verified). Never an authority: only a floor for the next generation, so that a
/// generation a damaged slot once held is not given to different content. `None` if no
/// such line, or its number does not fit a `u64`.
pub fn generation_hint(bytes: &[u8]) -> Option<u64> {
    bytes.split(|&b| b == b'\n').take(8).find_map(|line| {
        let digits = line.strip_prefix(b"generation ")?;
        if digits.is_empty() || digits.len() > 20 || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(digits).ok()?.parse().ok()
    })
}

fn bad(line: usize, what: impl Into<String>) -> ManifestError {
    ManifestError::Malformed {
        line,
        what: what.into(),
    }
}

/// Canonical unsigned decimal: no sign, no leading zeros.
fn parse_u64(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0'))
    {
        return None;
    }
    s.parse().ok()
}

/// A user or group id: canonical decimal below `u32::MAX` (which stands for "no
/// change" in `chown`, never an id).
fn parse_id(s: &str) -> Option<u32> {
    parse_u64(s)
        .and_then(|v| u32::try_from(v).ok())
        .filter(|&v| v != u32::MAX)
}

fn parse_i64(s: &str) -> Option<i64> {
    match s.strip_prefix('-') {
        Some(r) => parse_u64(r)
            .filter(|&v| v != 0 && v <= i64::MAX as u64 + 1)
            .map(|v| (v as i128).wrapping_neg() as i64),
        None => parse_u64(s).and_then(|v| i64::try_from(v).ok()),
    }
}

fn parse_mode(s: &str) -> Option<u32> {
    // Canonical octal: 1-4 digits, no leading zero (`0` itself aside).
    if s.is_empty() || s.len() > 4 || !s.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return None;
    }
    if s.len() > 1 && s.starts_with('0') {
        return None;
    }
    u32::from_str_radix(s, 8).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Manifest {
        let mut m = Manifest::new("config", 7, HashAlgo::Blake3, Some(3));
        for (p, c, owner) in [
            ("a b%.json", "x", Some(Owner { uid: 0, gid: 0 })),
            (
                "app/main.py",
                "yy",
                Some(Owner {
                    uid: 1000,
                    gid: 100,
                }),
            ),
            ("é/ü", "", None),
        ] {
            m.entries.insert(
                RelPath::new(p).unwrap(),
                Entry {
                    size: c.len() as u64,
                    mode: 0o644,
                    owner,
                    digest: HashAlgo::Blake3.digest(c.as_bytes()),
                },
            );
        }
        m
    }

    #[test]
    fn round_trips() {
        let m = sample();
        assert_eq!(Manifest::decode(&m.encode()), Ok(m));
        let mut m2 = Manifest::new("x", 0, HashAlgo::Crc32, None);
        m2.entries.insert(
            RelPath::new("f").unwrap(),
            Entry {
                size: 0,
                mode: 0o4755,
                owner: Some(Owner {
                    uid: u32::MAX - 1,
                    gid: 7,
                }),
                digest: HashAlgo::Crc32.digest(b""),
            },
        );
        assert_eq!(Manifest::decode(&m2.encode()), Ok(m2));
    }

    #[test]
    fn xxh3_manifest_round_trips_and_refuses_a_short_digest() {
        let mut m = Manifest::new("x", 1, HashAlgo::Xxh3, None);
        m.entries.insert(
            RelPath::new("f").unwrap(),
            Entry {
                size: 3,
                mode: 0o644,
                owner: Some(Owner { uid: 0, gid: 0 }),
                digest: HashAlgo::Xxh3.digest(b"abc"),
            },
        );
        let text = m.encode();
        assert!(String::from_utf8_lossy(&text).contains("hash xxh3\n"));
        assert!(String::from_utf8_lossy(&text).contains(" 06b05ab6733a618578af5f94892f3950 f\n"));
        assert_eq!(Manifest::decode(&text), Ok(m));
        // A CRC-32-sized digest under `hash xxh3` is refused, checksum or not.
        let body = "rebound-manifest 1\nset x\ngeneration 1\nhash xxh3\nfile 0 644 00000000 f\n";
        let full = format!("{body}end {}\n", blake3::hash(body.as_bytes()).to_hex());
        assert!(Manifest::decode(full.as_bytes()).is_err());
    }

    #[test]
    fn every_truncation_is_refused() {
        let bytes = sample().encode();
        for n in 0..bytes.len() {
            assert!(
                Manifest::decode(&bytes[..n]).is_err(),
                "prefix {n} accepted"
            );
        }
    }

    #[test]
    fn every_single_byte_flip_is_refused() {
        let bytes = sample().encode();
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x01;
            assert!(Manifest::decode(&b).is_err(), "flip at {i} accepted");
        }
    }

    #[test]
    fn escaping_paths_are_refused_even_with_a_valid_checksum() {
        for p in [
            "../etc/passwd",
            "/etc/passwd",
            "a/../../b",
            ".rebound/manifest.0",
        ] {
            let body = format!(
                "rebound-manifest 1\nset s\ngeneration 1\nhash crc32\nfile 0 644 00000000 {p}\n"
            );
            let text = format!("{body}end {}\n", blake3::hash(body.as_bytes()).to_hex());
            assert!(Manifest::decode(text.as_bytes()).is_err(), "{p}");
        }
    }

    #[test]
    fn only_canonical_percent_escapes_are_accepted() {
        let doc = |p: &str| {
            let body = format!(
                "rebound-manifest 1\nset s\ngeneration 1\nhash crc32\nfile 0 644 00000000 {p}\n"
            );
            format!("{body}end {}\n", blake3::hash(body.as_bytes()).to_hex())
        };
        assert!(Manifest::decode(doc("a%0Ab").as_bytes()).is_ok());
        // A sign, lower case, a printable byte escaped, a short escape: all refused
        // (one manifest, one byte representation).
        for p in ["a%+Ab", "a%-1b", "a%0ab", "a%41b", "a%0", "a% Ab"] {
            assert!(Manifest::decode(doc(p).as_bytes()).is_err(), "{p}");
        }
    }

    #[test]
    fn set_names_dot_and_dot_dot_are_invalid_in_manifests_too() {
        assert!(valid_set_name("a.b") && valid_set_name("..a") && valid_set_name("..."));
        assert!(!valid_set_name(".") && !valid_set_name("..") && !valid_set_name(""));
        let mut bytes = Manifest::new("x", 1, HashAlgo::Blake3, None).encode();
        let text = String::from_utf8(bytes.clone()).unwrap();
        let body = text.replace("set x\n", "set ..\n");
        let body = &body[..body.rfind("end ").unwrap()];
        bytes = format!("{body}end {}\n", blake3::hash(body.as_bytes()).to_hex()).into_bytes();
        assert!(Manifest::decode(&bytes).is_err());
    }

    #[test]
    fn future_version_is_named() {
        let body = "rebound-manifest 4\nset s\ngeneration 1\nhash crc32\n";
        let text = format!("{body}end {}\n", blake3::hash(body.as_bytes()).to_hex());
        assert_eq!(
            Manifest::decode(text.as_bytes()),
            Err(ManifestError::Version("4".into()))
        );
    }

    fn key(b: u8) -> DeviceKey {
        DeviceKey::from_bytes(&[b; 32], Path::new("/etc/rebound/device.key"))
    }

    #[test]
    fn keyed_manifest_is_version_3_and_read_only_with_its_key_set_and_root() {
        let (k, k2) = (key(1), key(2));
        let root = Path::new("/data");
        let m = sample();
        let one = Signers {
            keys: [Some(&k), None],
        };
        let bytes = m.encode_for(one, root);
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.starts_with("rebound-manifest 3\n"), "{text}");
        assert!(text.contains(&format!("\nmac {} ", k.id())), "{text}");
        assert_eq!(
            Manifest::decode_keyed(&bytes, &k, "config", root),
            Ok(m.clone())
        );
        // Without a key: read by its `end` line, as version 2.
        assert_eq!(Manifest::decode(&bytes), Ok(m.clone()));
        let unauth = |r: Result<Manifest, ManifestError>| {
            matches!(r, Err(ManifestError::Unauthenticated(_)))
        };
        assert!(unauth(Manifest::decode_keyed(&bytes, &k2, "config", root)));
        assert!(unauth(Manifest::decode_keyed(&bytes, &k, "other", root)));
        assert!(unauth(Manifest::decode_keyed(
            &bytes,
            &k,
            "config",
            Path::new("/backup")
        )));
        // Downgrade: a version 2 (or 1) manifest is never accepted with a key.
        assert!(unauth(Manifest::decode_keyed(
            &m.encode(),
            &k,
            "config",
            root
        )));
        assert!(unauth(Manifest::decode_keyed(
            doc(1, "3 4755 352441c2 f").as_bytes(),
            &k,
            "s",
            root
        )));
        // A version 2 body under a valid MAC (never written) is refused too.
        let mut v2 = String::from_utf8(m.encode()).unwrap();
        v2.truncate(v2.rfind("end ").unwrap());
        let forged = record::seal_keyed(v2, one, "config", root);
        assert!(unauth(Manifest::decode_keyed(&forged, &k, "config", root)));
        // No key: plain version 2, as before.
        assert_eq!(m.encode_for(Signers::NONE, root), m.encode());
        // Every flipped byte and every truncation refused with the key.
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x01;
            assert!(
                Manifest::decode_keyed(&b, &k, "config", root).is_err(),
                "flip at {i}"
            );
        }
        for n in 0..bytes.len() {
            assert!(
                Manifest::decode_keyed(&bytes[..n], &k, "config", root).is_err(),
                "prefix {n}"
            );
        }
        // Both keys (rekey --key NEW): either reads it.
        let both = m.encode_for(
            Signers {
                keys: [Some(&k), Some(&k2)],
            },
            root,
        );
        assert_eq!(
            Manifest::decode_keyed(&both, &k, "config", root),
            Ok(m.clone())
        );
        assert_eq!(Manifest::decode_keyed(&both, &k2, "config", root), Ok(m));
    }

    fn doc(version: u32, file: &str) -> String {
        let body =
            format!("rebound-manifest {version}\nset s\ngeneration 1\nhash crc32\nfile {file}\n");
        format!("{body}end {}\n", blake3::hash(body.as_bytes()).to_hex())
    }

    #[test]
    fn format_1_is_read_without_owners_and_rewritten_as_format_2() {
        let m = Manifest::decode(doc(1, "3 4755 352441c2 f").as_bytes()).unwrap();
        let e = &m.entries[&RelPath::new("f").unwrap()];
        assert_eq!((e.size, e.mode, e.owner), (3, 0o4755, None));
        let again = String::from_utf8(m.encode()).unwrap();
        assert!(again.starts_with("rebound-manifest 2\n"), "{again}");
        assert!(again.contains("file 3 4755 - - 352441c2 f\n"), "{again}");
        assert_eq!(Manifest::decode(again.as_bytes()), Ok(m));
        // A format 1 line has no owner fields: one with them is refused, and a
        // format 2 line without them too.
        assert!(Manifest::decode(doc(1, "3 644 0 0 352441c2 f").as_bytes()).is_err());
        assert!(Manifest::decode(doc(2, "3 644 352441c2 f").as_bytes()).is_err());
    }

    #[test]
    fn format_2_owners_are_canonical_decimal_or_both_unknown() {
        let ok = Manifest::decode(doc(2, "3 600 1000 1000 352441c2 f").as_bytes()).unwrap();
        assert_eq!(
            ok.entries[&RelPath::new("f").unwrap()].owner,
            Some(Owner {
                uid: 1000,
                gid: 1000
            })
        );
        assert!(Manifest::decode(doc(2, "3 600 - - 352441c2 f").as_bytes()).is_ok());
        for owner in [
            "- 0",
            "0 -",
            "01 0",
            "0 +1",
            "4294967296 0",
            "4294967295 0",
            "-1 0",
            "0x1 0",
        ] {
            let line = format!("3 600 {owner} 352441c2 f");
            assert!(
                Manifest::decode(doc(2, &line).as_bytes()).is_err(),
                "{owner}"
            );
        }
    }

    #[test]
    fn number_parsers_are_canonical() {
        assert_eq!(parse_u64("0"), Some(0));
        assert_eq!(parse_u64("01"), None);
        assert_eq!(parse_u64("+1"), None);
        assert_eq!(parse_i64("-1"), Some(-1));
        assert_eq!(parse_i64("-0"), None);
        assert_eq!(parse_i64("-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_i64("9223372036854775808"), None);
        assert_eq!(parse_mode("644"), Some(0o644));
        assert_eq!(parse_mode("0644"), None);
        assert_eq!(parse_mode("8"), None);
    }

    #[test]
    fn generation_hint_reads_a_damaged_manifest_leniently_and_never_overflows() {
        let good = sample().encode();
        assert_eq!(generation_hint(&good), Some(7));
        // Damaged after the generation line: still read.
        let mut torn = good.clone();
        torn.truncate(good.len() / 2);
        assert_eq!(Manifest::decode(&torn).ok(), None);
        assert_eq!(generation_hint(&torn), Some(7));
        // A flipped bit in the magic line does not hide it.
        let mut flipped = good.clone();
        flipped[3] ^= 0x20;
        assert_eq!(generation_hint(&flipped), Some(7));
        assert_eq!(generation_hint(b"x\ngeneration 0042\n"), Some(42));
        for bad in [
            &b""[..],
            b"generation \n",
            b"generation -1\n",
            b"generation 1x\n",
            b"generation 18446744073709551616\n",
            b"a\nb\nc\nd\ne\nf\ng\nh\ngeneration 5\n",
        ] {
            assert_eq!(
                generation_hint(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(
            generation_hint(b"generation 18446744073709551615\n"),
            Some(u64::MAX)
        );
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Manifest::decode(&bytes);
            let _ = generation_hint(&bytes);
        }

        #[test]
        fn arbitrary_paths_round_trip(names in proptest::collection::vec("[^/\0]{1,12}", 1..4)) {
            let joined = names.join("/");
            prop_assume!(RelPath::new(&joined).is_ok());
            let p = RelPath::new(&joined).unwrap();
            prop_assume!(!p.is_meta());
            let mut m = Manifest::new("s", 1, HashAlgo::Sha256, Some(-1));
            m.entries.insert(p, Entry { size: 1, mode: 0o600, owner: Some(Owner { uid: 1, gid: 2 }), digest: HashAlgo::Sha256.digest(b"z") });
            prop_assert_eq!(Manifest::decode(&m.encode()), Ok(m));
        }
    }

    proptest! {
        #[test]
        fn split_spaces_is_splitn(s in "[a b]{0,12}", n in 0usize..8) {
            let ours: Vec<&str> = SplitSpaces { rest: Some(&s), left: n }.collect();
            let std: Vec<&str> = s.splitn(n, ' ').collect();
            prop_assert_eq!(ours, std);
        }
    }

    fn streamed(bytes: &[u8], key: Option<(&DeviceKey, &str, &Path)>) -> Option<Manifest> {
        read_streamed(bytes, key)
    }

    /// The stream's trailer without parsing the entries.
    fn scanned(bytes: &[u8], key: Option<(&DeviceKey, &str, &Path)>) -> Option<Trailer> {
        Stream::open(bytes, key, false).ok()?.finish().ok()
    }

    #[test]
    fn a_stream_reads_what_decode_reads() {
        let (k, k2) = (key(1), key(2));
        let root = Path::new("/data");
        let m = sample();
        let plain = m.encode();
        assert_eq!(streamed(&plain, None), Some(m.clone()));
        let keyed = m.encode_for(
            Signers {
                keys: [Some(&k), Some(&k2)],
            },
            root,
        );
        assert_eq!(streamed(&keyed, None), Some(m.clone()));
        assert_eq!(
            streamed(&keyed, Some((&k, "config", root))),
            Some(m.clone())
        );
        assert_eq!(
            streamed(&keyed, Some((&k2, "config", root))),
            Some(m.clone())
        );
        // The MAC binds the key, the set and the copy; a version 2 manifest has none.
        let other = key(3);
        assert_eq!(streamed(&keyed, Some((&other, "config", root))), None);
        assert_eq!(streamed(&keyed, Some((&k, "other", root))), None);
        assert_eq!(
            streamed(&keyed, Some((&k, "config", Path::new("/b")))),
            None
        );
        assert_eq!(streamed(&plain, Some((&k, "config", root))), None);
        // Same body, whichever copy it was written for; the `end` sums differ.
        let elsewhere = m.encode_for(
            Signers {
                keys: [Some(&k), Some(&k2)],
            },
            Path::new("/b"),
        );
        let (a, b) = (
            scanned(&elsewhere, None).unwrap(),
            scanned(&keyed, None).unwrap(),
        );
        assert_eq!(a.body, b.body);
        assert_ne!(a.sum, b.sum);
        // Version 1 (no owners) reads as decode reads it; anything after the `end`
        // line is refused.
        let v1 = doc(1, "3 4755 352441c2 f");
        assert!(Manifest::decode(v1.as_bytes()).is_ok());
        assert_eq!(
            streamed(v1.as_bytes(), None),
            Manifest::decode(v1.as_bytes()).ok()
        );
        let mut extra = plain.clone();
        extra.extend_from_slice(b"file 1 644 0 0 00 x\n");
        assert!(Manifest::decode(&extra).is_err());
        assert_eq!(streamed(&extra, None), None);
        assert_eq!(scanned(&extra, None), None);
    }

    /// `body` sealed as rebound seals it: with `key`, a `mac` line of it, then the
    /// `end` line (what anyone with the key, or without one for the plain checksum,
    /// can write: the parsers must then agree on the body itself).
    fn reseal(body: &[u8], key: Option<(&DeviceKey, &str, &Path)>) -> Vec<u8> {
        let mut out = body.to_vec();
        if let Some((k, set, root)) = key {
            out.extend_from_slice(
                format!("mac {} {}\n", k.id(), k.mac(set, root, body).to_hex()).as_bytes(),
            );
        }
        let sum = blake3::hash(&out);
        out.extend_from_slice(format!("end {}\n", sum.to_hex()).as_bytes());
        out
    }

    proptest! {
        /// A body changed (a byte replaced, inserted or removed, a line repeated, two
        /// lines swapped) and sealed again
        /// with a valid checksum (and MAC): the stream reads exactly what decode
        /// reads, or refuses exactly what it refuses.
        #[test]
        fn a_resealed_body_reads_the_same_through_both_parsers(
            keyed in any::<bool>(),
            at in any::<prop::sample::Index>(),
            byte in prop::sample::select(vec![b' ', b'\n', b'\r', b'/', b'%', b'-', b'0', b'7', b'9', b'a', b'f', b'z', 0u8, 0xc3, 0xff]),
            how in 0..5u8,
        ) {
            let k = key(1);
            let root = Path::new("/data");
            let m = sample();
            let mut body = m
                .body(if keyed { MANIFEST_VERSION_KEYED } else { MANIFEST_VERSION })
                .into_bytes();
            let i = at.index(body.len());
            match how {
                0 => body[i] = byte,
                1 => body.insert(i, byte),
                2 => {
                    body.remove(i);
                }
                // Whole lines: one repeated, or two swapped (paths out of order).
                _ => {
                    let text = String::from_utf8(body.clone()).unwrap_or_default();
                    let mut lines: Vec<&str> = text.lines().collect();
                    let j = at.index(lines.len() - 1);
                    if how == 3 {
                        lines.insert(j, lines[j]);
                    } else {
                        lines.swap(j, j + 1);
                    }
                    body = lines.iter().map(|l| format!("{l}\n")).collect::<String>().into_bytes();
                }
            }
            let key_of = keyed.then_some((&k, "config", root));
            let bytes = reseal(&body, key_of);
            let decoded = match key_of {
                Some((k, set, root)) => Manifest::decode_keyed(&bytes, k, set, root),
                None => Manifest::decode(&bytes),
            };
            prop_assert_eq!(streamed(&bytes, key_of), decoded.ok());
        }
    }

    proptest! {
        /// Whatever the damage (a byte changed, inserted or removed, the file cut), a
        /// stream accepts only what decode accepts, and reads the same manifest; a
        /// scan without parsing, only with the body of the parsed original (the
        /// scan alone checks no entry: its caller compares the body hash).
        #[test]
        fn a_stream_accepts_nothing_decode_refuses(
            keyed in any::<bool>(),
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
            how in 0..4u8,
        ) {
            let k = key(1);
            let root = Path::new("/data");
            let m = sample();
            let mut bytes = if keyed {
                m.encode_for(Signers { keys: [Some(&k), None] }, root)
            } else {
                m.encode()
            };
            let i = at.index(bytes.len());
            match how {
                0 => bytes[i] = byte,
                1 => bytes.insert(i, byte),
                2 => {
                    bytes.remove(i);
                }
                _ => bytes.truncate(i),
            }
            let key_of = keyed.then_some((&k, "config", root));
            let decoded = match key_of {
                Some((k, set, root)) => Manifest::decode_keyed(&bytes, k, set, root),
                None => Manifest::decode(&bytes),
            };
            if let Some(s) = streamed(&bytes, key_of) {
                prop_assert_eq!(decoded.clone(), Ok(s));
            }
            let original = scanned(&if keyed {
                m.encode_for(Signers { keys: [Some(&k), None] }, root)
            } else {
                m.encode()
            }, key_of).map(|t| t.body);
            if let Some(t) = scanned(&bytes, key_of) {
                prop_assert!(original.is_some());
                if Some(t.body) == original {
                    prop_assert!(decoded.is_ok());
                }
            }
        }
    }
}
