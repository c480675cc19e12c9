//! The stat cache of `changed_only` sets: lets a boot skip hashing files that have
//! not changed since they last verified.
//!
//! Each writable replica keeps, under `.rebound/<set>/`, a [`STAT_CACHE`] file: one
//! record per file that verified, with its size, mtime, ctime and inode as `lstat`
//! saw them before it was hashed, and the digest it had. A boot that finds a file's
//! metadata equal to its record takes the recorded digest instead of reading the file.
//! The planner is not involved: it sees a digest either way.
//!
//! What it cannot see, by construction: a change of content that leaves size, mtime,
//! ctime and inode alone, which is what silent media corruption (bit rot, a flash
//! page going bad) does. That is why every [`crate::config::SetConfig::full_check_every`]-th
//! boot, and `boot --full`, hash everything; [`STAT_CACHE_BOOTS`] counts the boots
//! since the last full check.
//!
//! Safety rules:
//! - The cache only ever *skips* work. A missing, torn, corrupt or foreign cache (or
//!   counter) means a full check, never a wrong digest: the file ends in a BLAKE3
//!   checksum line like a manifest, and anything odd discards it whole.
//! - "Racily clean" files (git's term) are never recorded: a file whose mtime or ctime
//!   is within [`RACY_MARGIN_NS`] of the moment the pass began could be changed again
//!   within the same timestamp tick without its metadata showing it (coarse kernel
//!   clocks, vfat's 2-second mtime). It is hashed again next boot, and recorded then.
//! - Only files whose digest equals the authoritative manifest's, and that the plan
//!   does not touch, are recorded.
//! - Both files are written with the durable protocol, and only when they change.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::config::SetConfig;
use crate::digest::{Digest, HashAlgo};
use crate::durable::Durable;
use crate::fs::{read_small, Fs, Meta};
use crate::manifest::Manifest;
use crate::names::{STAT_CACHE, STAT_CACHE_BOOTS};
use crate::record;
use crate::relpath::RelPath;

/// First line of the cache; the number is the format version.
const MAGIC: &str = "rebound-statcache 1";
/// Largest cache read, to bound memory on a corrupt file.
const MAX_BYTES: u64 = 256 << 20;
/// Files changed this close to the start of the pass are not recorded (see module doc).
pub const RACY_MARGIN_NS: i128 = 3_000_000_000;

/// What `lstat` said of a file when it verified, and its digest then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    pub size: u64,
    pub mtime_ns: i128,
    pub ctime_ns: i128,
    pub ino: u64,
    pub digest: Digest,
}

impl Record {
    /// Whether `m` is the metadata this record was made from.
    pub fn matches(&self, m: &Meta) -> bool {
        self.size == m.size
            && self.mtime_ns == m.mtime_ns
            && self.ctime_ns == m.ctime_ns
            && self.ino == m.ino
    }
}

/// The cache of one replica.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatCache {
    pub records: BTreeMap<RelPath, Record>,
}

/// How one replica's files were checked by this observation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage {
    /// The cache as read (empty if missing or unusable).
    pub cache: StatCache,
    /// Boots since the last full check, as read (`None`: missing or unusable).
    pub boots: Option<u32>,
    /// Whether this pass hashed every file.
    pub full: bool,
    /// Files whose digest came from the cache.
    pub skipped: usize,
}

impl StatCache {
    /// The text form (format version 1).
    pub fn encode(&self, algo: HashAlgo) -> Vec<u8> {
        record::seal(self.body(algo))
    }

    /// The text form for `set`'s copy at `root`: with the set's device key, a `mac`
    /// line bound to the set and the root (docs/design.md section 2.3).
    pub fn encode_for(&self, set: &SetConfig, root: &Path) -> Vec<u8> {
        record::seal_keyed(self.body(set.hash), set.signers(), &set.name, root)
    }

    /// Parses `set`'s cache read at `root`: with the set's device key, only one whose
    /// MAC holds (anything else is no cache: a full check).
    pub fn decode_for(bytes: &[u8], set: &SetConfig, root: &Path) -> Option<StatCache> {
        let body = match set.key.key.as_deref() {
            Some(k) => record::open_keyed(bytes, k, &set.name, root).ok()?,
            None => record::open(bytes).ok()?,
        };
        StatCache::parse_body(body, set.hash)
    }

    fn body(&self, algo: HashAlgo) -> String {
        let mut s = format!("{MAGIC}\nhash {algo}\n");
        for (p, r) in &self.records {
            s.push_str(&format!(
                "{} {} {} {} {} {}\n",
                r.size,
                r.mtime_ns,
                r.ctime_ns,
                r.ino,
                r.digest,
                record::encode_path(p.as_str())
            ));
        }
        s
    }

    /// Parses [`StatCache::encode`]'s output for `algo`; `None` for anything else.
    pub fn decode(bytes: &[u8], algo: HashAlgo) -> Option<StatCache> {
        StatCache::parse_body(record::open(bytes).ok()?, algo)
    }

    fn parse_body(body: &[u8], algo: HashAlgo) -> Option<StatCache> {
        let body = std::str::from_utf8(body).ok()?;
        // Exact `\n` line ends: `str::lines` also ends a line at `\r\n`, a second
        // spelling of the same cache that rebound never writes (found by fuzzing the
        // boot counter's parser, which had the same flaw).
        let mut lines = body.strip_suffix('\n')?.split('\n');
        if lines.next()? != MAGIC || lines.next()? != format!("hash {algo}") {
            return None;
        }
        let mut records = BTreeMap::new();
        for l in lines {
            let f: Vec<&str> = l.split(' ').collect();
            let [size, mtime, ctime, ino, digest, path] = f.as_slice() else {
                return None;
            };
            let path = RelPath::new(&record::decode_path(path)?).ok()?;
            let rec = Record {
                size: size.parse().ok()?,
                mtime_ns: mtime.parse().ok()?,
                ctime_ns: ctime.parse().ok()?,
                ino: ino.parse().ok()?,
                digest: Digest::from_hex(algo, digest)?,
            };
            records.insert(path, rec);
        }
        Some(StatCache { records })
    }
}

/// Reads a replica's cache and counter and decides whether this pass is full.
/// Never fails: whatever cannot be read makes the pass full.
pub fn load(fs: &dyn Fs, set: &SetConfig, root: &Path) -> Usage {
    let cache = read_small(fs, root, &RelPath::meta(&set.name, STAT_CACHE), MAX_BYTES)
        .ok()
        .flatten()
        .and_then(|b| StatCache::decode_for(&b, set, root));
    let boots = read_small(fs, root, &RelPath::meta(&set.name, STAT_CACHE_BOOTS), 1024)
        .ok()
        .flatten()
        .and_then(|b| {
            // With a key, the count is a keyed record too: a count an attacker wrote
            // (to put the next full check off) is no count, and a full check is due.
            let body = match set.key.key.as_deref() {
                Some(k) => record::open_keyed(&b, k, &set.name, root).ok()?.to_vec(),
                None => b,
            };
            String::from_utf8(body).ok()
        })
        .and_then(|s| s.strip_suffix('\n')?.parse::<u32>().ok());
    let due = match boots {
        None => true,
        Some(n) => n.saturating_add(1) >= set.full_check_every,
    };
    let full = set.force_full || due || cache.is_none();
    Usage {
        cache: cache.unwrap_or_default(),
        boots,
        full,
        skipped: 0,
    }
}

/// One writable replica of a `changed_only` set after a boot, as [`save`] and
/// [`describe`] need it: plain data, built by the engine from what observe saw and
/// what the plan did (so this module depends on neither).
#[derive(Debug)]
pub struct Seen<'a> {
    pub root: &'a Path,
    pub usage: &'a Usage,
    /// How many files were looked at (`lstat`ed) in this replica.
    pub looked_at: usize,
    /// Each file hashed (or taken from the cache) in this run: its digest and the
    /// metadata `lstat` gave before.
    pub files: Vec<(&'a RelPath, Digest, &'a Meta)>,
    /// The paths the plan restored, fixed or removed in this replica.
    pub touched: BTreeSet<&'a RelPath>,
}

/// Writes each writable replica's cache and counter after a boot's plan was carried
/// out, when they changed. `target` is the manifest the replicas were brought to;
/// `started_ns` is the wall clock (ns since the epoch) taken before the set was
/// observed. Best effort: a failure only costs a full check later.
pub fn save(
    d: &Durable<'_>,
    set: &SetConfig,
    seen: &[Seen<'_>],
    target: &Manifest,
    started_ns: i128,
) {
    for r in seen {
        if d.is_poisoned() {
            return;
        }
        let usage = r.usage;
        let mut next = StatCache::default();
        for &(p, got, m) in &r.files {
            let Some(e) = target.entries.get(p) else {
                continue;
            };
            let racy = m.mtime_ns > started_ns - RACY_MARGIN_NS
                || m.ctime_ns > started_ns - RACY_MARGIN_NS;
            if got != e.digest || racy || r.touched.contains(p) {
                continue;
            }
            next.records.insert(
                p.clone(),
                Record {
                    size: m.size,
                    mtime_ns: m.mtime_ns,
                    ctime_ns: m.ctime_ns,
                    ino: m.ino,
                    digest: got,
                },
            );
        }
        if next != usage.cache {
            let _ = d.write_bytes(
                r.root,
                &RelPath::meta(&set.name, STAT_CACHE),
                0o644,
                &next.encode_for(set, r.root),
            );
        }
        let boots = if usage.full {
            0
        } else {
            usage.boots.unwrap_or(0).saturating_add(1)
        };
        if usage.boots != Some(boots) {
            let _ = d.write_bytes(
                r.root,
                &RelPath::meta(&set.name, STAT_CACHE_BOOTS),
                0o644,
                &boots_record(set, r.root, boots),
            );
        }
    }
}

/// `rebound rekey`: rewrites each writable copy's cache and counter that read as valid
/// (with the configured key, if any) with the set's keys now ([`SetConfig::signers`]).
/// One that does not read is left: it is no cache already (a full check). Returns
/// notes for the report: a copy that could not be written.
pub fn reseal(d: &Durable<'_>, set: &SetConfig) -> Vec<String> {
    let mut notes = Vec::new();
    for (_, r) in set.writable() {
        let cache_rel = RelPath::meta(&set.name, STAT_CACHE);
        let cache = read_small(d.fs(), &r.root, &cache_rel, MAX_BYTES)
            .ok()
            .flatten()
            .and_then(|b| StatCache::decode_for(&b, set, &r.root));
        let mut writes = Vec::new();
        if let Some(c) = cache {
            writes.push((cache_rel, c.encode_for(set, &r.root)));
            if let Some(n) = load(d.fs(), set, &r.root).boots {
                writes.push((
                    RelPath::meta(&set.name, STAT_CACHE_BOOTS),
                    boots_record(set, &r.root, n),
                ));
            }
        }
        for (rel, bytes) in writes {
            if let Err(e) = d.write_bytes(&r.root, &rel, 0o644, &bytes) {
                notes.push(format!(
                    "the stat cache {} was not rewritten ({e}): the next boot does a full check",
                    crate::fs::full(&r.root, &rel).display()
                ));
            }
        }
    }
    notes
}

/// The boots-since-full-check counter as written: `N\n`, and with the set's device
/// key a `mac` and an `end` line after it.
fn boots_record(set: &SetConfig, root: &Path, boots: u32) -> Vec<u8> {
    let text = format!("{boots}\n");
    if set.signers().any() {
        record::seal_keyed(text, set.signers(), &set.name, root)
    } else {
        text.into_bytes()
    }
}

/// Nanoseconds since the epoch of the wall clock (0 if it is before 1970).
pub fn now_ns() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

/// One note per writable replica of a `changed_only` set: how much the cache saved.
pub fn describe(set: &SetConfig, seen: &[Seen<'_>]) -> Vec<String> {
    seen.iter()
        .map(|r| {
            let u = r.usage;
            if u.full {
                format!(
                    "{}: full check (every {} boots, or `boot --full`)",
                    r.root.display(),
                    set.full_check_every
                )
            } else {
                format!(
                    "{}: {} of {} files unchanged since they verified, not read (changed-only; a full check every {} boots)",
                    r.root.display(),
                    u.skipped,
                    r.looked_at,
                    set.full_check_every
                )
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::engine::Engine;
    use crate::fs::os::OsFs;
    use crate::fs::{Cursor, DirEntry, WriteFile};
    use crate::observe::Depth;
    use crate::plan::Action;
    use std::collections::BTreeMap as Map;
    use std::io::Read;
    use std::path::PathBuf;
    use std::sync::Mutex;

    /// The real filesystem, counting how often each file is opened for reading.
    #[derive(Default)]
    struct Counting {
        os: OsFs,
        opens: Mutex<Map<PathBuf, usize>>,
    }

    impl Counting {
        /// Names of the protected files opened since the last call.
        fn take(&self, root: &Path) -> Vec<String> {
            let mut m = self.opens.lock().unwrap();
            let out = m
                .keys()
                .filter_map(|p| p.strip_prefix(root).ok())
                .filter(|p| !p.starts_with(".rebound"))
                .map(|p| p.display().to_string())
                .collect();
            m.clear();
            out
        }
    }

    impl Fs for Counting {
        fn metadata(&self, root: &Path, rel: &RelPath) -> crate::Result<Option<Meta>> {
            self.os.metadata(root, rel)
        }
        fn dir_metadata(&self, root: &Path, dir: Option<&RelPath>) -> crate::Result<Option<Meta>> {
            self.os.dir_metadata(root, dir)
        }
        fn read_dir(&self, root: &Path, dir: Option<&RelPath>) -> crate::Result<Vec<DirEntry>> {
            self.os.read_dir(root, dir)
        }
        fn open_read(
            &self,
            root: &Path,
            rel: &RelPath,
        ) -> crate::Result<Box<dyn Read + Send + '_>> {
            *self
                .opens
                .lock()
                .unwrap()
                .entry(root.join(rel.as_str()))
                .or_default() += 1;
            self.os.open_read(root, rel)
        }
        fn open_read_at(&self, root: &Path, rel: &RelPath) -> crate::Result<crate::fs::OpenAt> {
            *self
                .opens
                .lock()
                .unwrap()
                .entry(root.join(rel.as_str()))
                .or_default() += 1;
            self.os.open_read_at(root, rel)
        }
        fn create_new(
            &self,
            root: &Path,
            rel: &RelPath,
            mode: u32,
        ) -> crate::Result<Box<dyn WriteFile + '_>> {
            self.os.create_new(root, rel, mode)
        }
        fn set_owner(
            &self,
            root: &Path,
            rel: &RelPath,
            owner: crate::manifest::Owner,
        ) -> crate::Result<()> {
            self.os.set_owner(root, rel, owner)
        }
        fn set_mode(&self, root: &Path, rel: &RelPath, mode: u32) -> crate::Result<()> {
            self.os.set_mode(root, rel, mode)
        }
        fn rename(&self, root: &Path, from: &RelPath, to: &RelPath) -> crate::Result<()> {
            self.os.rename(root, from, to)
        }
        fn remove_file(&self, root: &Path, rel: &RelPath) -> crate::Result<()> {
            self.os.remove_file(root, rel)
        }
        fn create_dir(&self, root: &Path, rel: &RelPath) -> crate::Result<()> {
            self.os.create_dir(root, rel)
        }
        fn create_root(&self, root: &Path) -> crate::Result<()> {
            self.os.create_root(root)
        }
        fn sync_dir(&self, root: &Path, dir: Option<&RelPath>) -> crate::Result<()> {
            self.os.sync_dir(root, dir)
        }
        fn sync_file(&self, root: &Path, rel: &RelPath) -> crate::Result<()> {
            self.os.sync_file(root, rel)
        }
        fn root_identity(&self, root: &Path) -> crate::Result<Option<Vec<crate::fs::DirId>>> {
            self.os.root_identity(root)
        }
        // No `cursor`: the default one goes through `open_read` above and is counted.
    }

    struct Device {
        _dir: tempfile::TempDir,
        live: PathBuf,
        config: Config,
        fs: Counting,
    }

    /// A sealed golden set with files a, b, c, changed-only, a full check every 3 boots.
    fn device() -> Device {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("live");
        let golden = dir.path().join("golden");
        std::fs::create_dir_all(live.join("d")).unwrap();
        std::fs::create_dir_all(&golden).unwrap();
        for (n, c) in [("a", "alpha"), ("d/b", "bravo"), ("d/c", "charlie")] {
            std::fs::write(live.join(n), c).unwrap();
        }
        let text = format!(
            "threads = 2\n[[set]]\nname = 's'\nmode = 'golden'\nlive = '{}'\ngolden = '{}'\ninclude = ['**']\nhash = 'xxh3'\nchanged_only = true\nfull_check_every = 3\n",
            live.display(),
            golden.display()
        );
        let config = Config::parse(&text, Path::new("/test.toml")).unwrap();
        let fs = Counting::default();
        let rep = Engine::new(&fs).seal(&config, &[], false, false).unwrap();
        assert_eq!(rep.exit_code(), 0, "{rep:?}");
        fs.take(&live);
        Device {
            _dir: dir,
            live,
            config,
            fs,
        }
    }

    impl Device {
        /// One boot's observation and plan, then the cache update as `boot` does it,
        /// with the clock `skew_s` seconds ahead (so files just written by the test
        /// are not "racily clean"). Returns the protected files that were read.
        fn boot(&self, skew_s: i128) -> Vec<String> {
            let set = &self.config.sets[0];
            let (state, plan) = Engine::new(&self.fs).plan_set(set, Depth::Boot).unwrap();
            assert!(plan.actions.is_empty(), "{plan:?}");
            assert!(plan.findings.is_empty(), "{plan:?}");
            let read = self.fs.take(&self.live);
            if let Some(target) = &plan.manifest {
                save(
                    &Durable::new(&self.fs),
                    set,
                    &crate::engine::cache_seen(&state, &plan),
                    target,
                    now_ns() + skew_s * 1_000_000_000,
                );
            }
            read
        }

        fn set_mut(&mut self) -> &mut SetConfig {
            &mut self.config.sets[0]
        }
    }

    const ALL: [&str; 3] = ["a", "d/b", "d/c"];

    #[test]
    fn unchanged_files_are_not_read_and_every_third_boot_is_full() {
        let d = device();
        // The seal's own boot found no usable cache: full, and files were too fresh
        // to record. With the clock ahead, this boot records them.
        assert_eq!(d.boot(10), ALL);
        // full_check_every = 3: two boots from the cache, then a full one.
        for _ in 0..2 {
            assert_eq!(d.boot(10), Vec::<String>::new());
            assert_eq!(d.boot(10), Vec::<String>::new());
            assert_eq!(d.boot(10), ALL);
        }
    }

    #[test]
    fn a_changed_file_is_read_again_and_the_damage_is_found() {
        let mut d = device();
        d.set_mut().full_check_every = 100;
        d.boot(10);
        // Same size, new inode: content replaced behind rebound's back.
        let b = d.live.join("d/b");
        std::fs::write(d.live.join("d/tmp"), "BRAVO").unwrap();
        std::fs::rename(d.live.join("d/tmp"), &b).unwrap();
        let set = &d.config.sets[0];
        let (_, plan) = Engine::new(&d.fs).plan_set(set, Depth::Boot).unwrap();
        assert_eq!(d.fs.take(&d.live), ["d/b"]);
        assert!(
            plan.actions
                .iter()
                .any(|a| matches!(a, Action::Restore { path, .. } if path.as_str() == "d/b")),
            "{plan:?}"
        );
        // A size change, and an mtime change alone, are seen as well.
        std::fs::write(d.live.join("d/b"), "bravo").unwrap();
        d.boot(10);
        d.boot(10);
        std::fs::write(d.live.join("a"), "alpha!").unwrap();
        let f = std::fs::File::options()
            .write(true)
            .open(d.live.join("d/c"))
            .unwrap();
        f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000))
            .unwrap();
        drop(f);
        let (_, plan) = Engine::new(&d.fs).plan_set(set, Depth::Boot).unwrap();
        let mut read = d.fs.take(&d.live);
        read.sort();
        assert_eq!(read, ["a", "d/c"]);
        assert!(plan
            .actions
            .iter()
            .any(|a| matches!(a, Action::Restore { path, .. } if path.as_str() == "a")));
    }

    #[test]
    fn a_corrupt_or_missing_cache_or_counter_means_a_full_check() {
        let d = device();
        d.boot(10);
        assert!(d.boot(10).is_empty());
        let meta = d.live.join(".rebound/s");
        let cache = meta.join(STAT_CACHE);
        let good = std::fs::read(&cache).unwrap();
        assert!(StatCache::decode(&good, HashAlgo::Xxh3).is_some());
        // One flipped byte anywhere: the checksum refuses the whole cache.
        for i in [0, good.len() / 2, good.len() - 2] {
            let mut bad = good.clone();
            bad[i] ^= 0x20;
            assert_eq!(StatCache::decode(&bad, HashAlgo::Xxh3), None, "flip at {i}");
        }
        let mut bad = good.clone();
        bad[good.len() / 2] ^= 0x20;
        std::fs::write(&cache, &bad).unwrap();
        std::fs::write(meta.join(STAT_CACHE_BOOTS), "0\n").unwrap();
        assert_eq!(d.boot(10), ALL);
        // Rewritten by that full check; then a garbage counter: full again.
        assert!(d.boot(10).is_empty());
        std::fs::write(meta.join(STAT_CACHE_BOOTS), "many\n").unwrap();
        assert_eq!(d.boot(10), ALL);
        std::fs::remove_file(&cache).unwrap();
        assert_eq!(d.boot(10), ALL);
        // Another algorithm's cache is not used.
        assert!(StatCache::decode(&good, HashAlgo::Blake3).is_none());
        // A `\r\n` line end, resealed (a second spelling rebound never writes): refused.
        let Ok(body) = crate::record::open(&good) else {
            panic!("the cache opens")
        };
        let body = String::from_utf8_lossy(body).replacen('\n', "\r\n", 1);
        assert!(StatCache::decode(&crate::record::seal(body), HashAlgo::Xxh3).is_none());
    }

    #[test]
    fn racily_clean_files_are_not_recorded_and_full_is_forced_on_demand() {
        let mut d = device();
        // Clock not ahead: the files are seconds old at most, so none is recorded.
        assert_eq!(d.boot(0), ALL);
        assert_eq!(d.boot(0), ALL);
        d.boot(10);
        assert!(d.boot(10).is_empty());
        d.set_mut().force_full = true;
        assert_eq!(d.boot(10), ALL);
        d.set_mut().force_full = false;
        // `verify` never uses the cache.
        let set = &d.config.sets[0];
        Engine::new(&d.fs).plan_set(set, Depth::Deep).unwrap();
        assert_eq!(d.fs.take(&d.live), ALL);
    }

    #[test]
    fn the_cache_is_rewritten_only_when_it_changes() {
        use std::os::unix::fs::MetadataExt;
        let mut d = device();
        d.set_mut().full_check_every = 100;
        let cache = d.live.join(".rebound/s").join(STAT_CACHE);
        d.boot(10);
        let ino = || std::fs::metadata(&cache).unwrap().ino();
        let first = ino();
        d.boot(10);
        d.boot(10);
        assert_eq!(ino(), first, "same records: not rewritten");
        std::fs::write(d.live.join("a"), "alpha").unwrap();
        assert_eq!(d.boot(10), ["a"]);
        assert_ne!(ino(), first, "a's record changed: rewritten");
    }

    #[test]
    fn boot_counts_boots_and_says_how_it_checked() {
        let d = device();
        let engine = Engine::new(&d.fs);
        let boots = d.live.join(".rebound/s").join(STAT_CACHE_BOOTS);
        d.boot(10);
        let r = engine.boot(&d.config, &[], false).unwrap();
        assert_eq!(r.exit_code(), 0);
        assert!(
            r.sets[0]
                .notes
                .iter()
                .any(|n| n.contains("3 of 3 files unchanged")),
            "{r:?}"
        );
        assert_eq!(std::fs::read_to_string(&boots).unwrap(), "1\n");
        let r = engine.boot(&d.config, &[], true).unwrap();
        assert!(
            r.sets[0].notes.iter().any(|n| n.contains("changed-only")),
            "{r:?}"
        );
        assert_eq!(
            std::fs::read_to_string(&boots).unwrap(),
            "1\n",
            "dry run writes nothing"
        );
        let mut full = d.config.clone();
        full.force_full_check();
        let r = engine.boot(&full, &[], false).unwrap();
        assert!(
            r.sets[0].notes.iter().any(|n| n.contains("full check")),
            "{r:?}"
        );
        assert_eq!(std::fs::read_to_string(&boots).unwrap(), "0\n");
    }

    #[test]
    fn paths_with_odd_bytes_round_trip() {
        let mut c = StatCache::default();
        for p in ["a b", "%41", "é/\n/x", "t\tab"] {
            c.records.insert(
                RelPath::new(p).unwrap(),
                Record {
                    size: 1,
                    mtime_ns: -5,
                    ctime_ns: 1 << 70,
                    ino: 7,
                    digest: HashAlgo::Crc32.digest(p.as_bytes()),
                },
            );
        }
        let bytes = c.encode(HashAlgo::Crc32);
        assert_eq!(StatCache::decode(&bytes, HashAlgo::Crc32), Some(c));
        let _ = |c: &mut dyn Cursor| c.metadata(&RelPath::new("x").unwrap());
    }
}
