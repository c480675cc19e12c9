//! A set's parity directory as observe sees it: which records are there, which are
//! intact, and how a damaged copy's blocks fit a record. Reads only; the planner
//! decides from [`ParityState`] ([`crate::plan`]), `exec` writes records and rebuilds
//! files through `durable` ([`crate::parity`] is the codec).
//!
//! Records are named by the content digest they protect
//! (`.rebound/<set>/parity/<xx>/<hex>`), so a record serves every path holding that
//! content, survives renames, and the record of a new content never replaces the
//! record of the content still committed: a cut between writing a record and the
//! manifest that names it leaves both (docs/design.md section 2.5).

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::SetConfig;
use crate::digest::Digest;
use crate::error::Error;
use crate::fs::{full, Fs, Kind};
use crate::names::PARITY_DIR;
use crate::observe::SetState;
use crate::parity::{self, Fit, Layout};
use crate::relpath::RelPath;

/// What one record is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state", content = "detail")]
pub enum RecordState {
    /// Listed, not read: a boot of a `changed_only` set between full checks. It is
    /// used as a source (its checksum is checked while it is used) and never vouched
    /// for.
    Listed,
    /// Read whole; its checksum and header are right.
    Intact(#[serde(skip)] Layout),
    /// Unusable (torn, wrong checksum, for another content): never used; rewritten from
    /// an intact copy of the file.
    Damaged(String),
}

impl RecordState {
    /// Whether the record may be used as a source.
    pub fn usable(&self) -> bool {
        !matches!(self, RecordState::Damaged(_))
    }
}

/// Everything observed about a set's parity directory.
#[derive(Debug, Clone, Serialize)]
pub struct ParityState {
    pub root: PathBuf,
    pub root_exists: bool,
    /// Records found, by the content digest they are named by.
    pub records: BTreeMap<Digest, RecordState>,
    /// Leftover temporary files and names that are not records: removed.
    pub junk: Vec<RelPath>,
    /// Problems met while listing it (one report line each).
    pub problems: Vec<String>,
    /// Damaged copies compared with their record ([`check_fits`]): by replica index
    /// and path, the fit or why there is none.
    #[serde(skip)]
    pub fits: BTreeMap<(usize, RelPath), Result<Fit, String>>,
    /// `verify`: every damaged copy with a record is compared with it, even when a
    /// full copy is there to restore it from (the report says what parity could do).
    #[serde(skip)]
    pub analyze_all: bool,
}

/// The record of `digest` in a set's parity directory.
pub fn record_rel(set: &str, digest: &Digest) -> RelPath {
    let hex = digest.to_hex();
    let fan = hex.get(..2).unwrap_or("00");
    RelPath::meta(set, &format!("{PARITY_DIR}/{fan}/{hex}"))
}

fn parity_dir(set: &str) -> RelPath {
    RelPath::meta(set, PARITY_DIR)
}

/// The most bytes a record of a `size`-byte content may hold, whatever its header
/// says (block digests of 64-byte blocks are `size / 8`, recovery blocks at 100% about
/// `size`, plus rounding per window): a larger file there is not read.
pub fn record_max(size: u64) -> u64 {
    size.saturating_mul(3).saturating_add(1 << 20)
}

/// Lists every record of the set's parity directory and, with `named`, reads whole and
/// checks those of the contents it names (content digest -> size: what the manifests
/// name), each at most [`record_max`] bytes long. The others are only listed: a boot
/// removes them and never uses one. Never fails: what cannot be read is a problem of
/// the report.
pub fn observe_parity(
    fs: &dyn Fs,
    set: &SetConfig,
    named: Option<&BTreeMap<Digest, u64>>,
    deep: bool,
) -> Option<ParityState> {
    let pc = set.parity.as_ref()?;
    let mut st = ParityState {
        root: pc.root.clone(),
        root_exists: false,
        records: BTreeMap::new(),
        junk: Vec::new(),
        problems: Vec::new(),
        fits: BTreeMap::new(),
        analyze_all: deep,
    };
    match fs.dir_metadata(&pc.root, None) {
        Ok(Some(m)) if m.kind == Kind::Dir => st.root_exists = true,
        Ok(_) => {
            st.problems.push(format!(
                "parity directory {} does not exist (is its partition mounted?): no file can be repaired from parity, and no parity is written",
                pc.root.display()
            ));
            return Some(st);
        }
        Err(e) => {
            st.problems.push(format!(
                "parity directory {}: {e}; parity is not used",
                pc.root.display()
            ));
            return Some(st);
        }
    }
    let dir = parity_dir(&set.name);
    let fans = match fs.read_dir(&pc.root, Some(&dir)) {
        Ok(v) => v,
        // Not there yet: no record.
        Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            return Some(st)
        }
        Err(e) => {
            st.problems.push(format!(
                "parity directory {}: {e}",
                full(&pc.root, &dir).display()
            ));
            return Some(st);
        }
    };
    for f in fans {
        let Some(fan) = f.name.as_deref().filter(|_| f.kind == Kind::Dir) else {
            if let Some(rel) = f.name.as_deref().and_then(|n| dir.join(n).ok()) {
                if f.kind == Kind::File {
                    st.junk.push(rel);
                }
            }
            continue;
        };
        let Ok(fan_rel) = dir.join(fan) else { continue };
        let entries = match fs.read_dir(&pc.root, Some(&fan_rel)) {
            Ok(v) => v,
            Err(e) => {
                st.problems
                    .push(format!("{}: {e}", full(&pc.root, &fan_rel).display()));
                continue;
            }
        };
        for e in entries {
            let Some(name) = &e.name else { continue };
            let Ok(rel) = fan_rel.join(name) else {
                continue;
            };
            if e.kind != Kind::File {
                continue;
            }
            let digest = Digest::from_hex(set.hash, name).filter(|_| name.starts_with(fan));
            let Some(digest) = digest else {
                // A leftover temporary file (`is_temp_name`), or a name no record of this
                // set has (another hash algorithm's after a change of `hash`, or in the
                // wrong fan directory): rebound's own directory, nothing to keep.
                st.junk.push(rel);
                continue;
            };
            let state = match named.map(|n| n.get(&digest)) {
                Some(Some(size)) => check_one(fs, &pc.root, &rel, set, &digest, *size),
                _ => RecordState::Listed,
            };
            st.records.insert(digest, state);
        }
    }
    Some(st)
}

fn check_one(
    fs: &dyn Fs,
    root: &Path,
    rel: &RelPath,
    set: &SetConfig,
    digest: &Digest,
    size: u64,
) -> RecordState {
    let r = match fs.open_read(root, rel) {
        Ok(r) => r,
        Err(e) => return RecordState::Damaged(format!("cannot be read: {e}")),
    };
    match parity::check_record(r, set.hash, record_max(size)) {
        Ok(info) if info.digest == *digest && info.layout.size == size => {
            RecordState::Intact(info.layout)
        }
        Ok(_) => RecordState::Damaged("it protects other content than its name says".into()),
        Err(why) => RecordState::Damaged(why),
    }
}

/// Compares each damaged copy `(replica, path, digest)` with the record of `digest`,
/// filling [`ParityState::fits`]. A copy that is missing, or not a regular file, has
/// no intact block (an empty file is compared). A record found damaged here is marked
/// so (it is then rewritten, never used).
pub fn check_fits(fs: &dyn Fs, state: &mut SetState, wanted: &[(usize, RelPath, Digest, u64)]) {
    let algo = state.hash;
    let roots: Vec<PathBuf> = state.replicas.iter().map(|r| r.root.clone()).collect();
    let set = state.set.clone();
    let Some(ps) = state.parity.as_mut() else {
        return;
    };
    for (ri, path, digest, size) in wanted {
        let Some(root) = roots.get(*ri) else { continue };
        let rel = record_rel(&set, digest);
        let fit = (|| {
            // Never read more than a record of this content can hold.
            if let Ok(Some(m)) = fs.metadata(&ps.root, &rel) {
                if m.size > record_max(*size) {
                    return Err(format!(
                        "parity record is {} bytes, more than any record of a {size}-byte file",
                        m.size
                    ));
                }
            }
            let record = fs
                .open_read(&ps.root, &rel)
                .map_err(|e| format!("parity record could not be read: {e}"))?;
            let file: Box<dyn Read + Send + '_> = match fs.metadata(root, path) {
                // IMPORTANT: a copy that cannot be opened is the copy's problem, never
                // the record's (the prefix keeps the record usable, below).
                Ok(Some(m)) if m.kind == Kind::File => {
                    fs.open_read_damaged(root, path).map_err(|e| {
                        format!(
                            "file could not be read: {}: {e}",
                            full(root, path).display()
                        )
                    })?
                }
                _ => Box::new(io::empty()),
            };
            parity::analyze(record, file, algo, *digest)
        })();
        if let Err(why) = &fit {
            // Only the record's own faults condemn it (a copy that cannot be read
            // is the copy's problem).
            if !why.starts_with("file could not be read") {
                ps.records
                    .insert(*digest, RecordState::Damaged(why.clone()));
            }
        }
        ps.fits.insert((*ri, path.clone()), fit);
    }
}

/// A fit for reports: "3 of 512 blocks damaged, repairable from parity".
pub fn describe_fit(fit: &Result<Fit, String>) -> String {
    match fit {
        Ok(f) if f.recoverable => format!(
            "parity: {} of {} blocks damaged, repairable",
            f.damaged, f.blocks
        ),
        Ok(f) => match f.worst {
            Some((d, m)) => format!(
                "parity: {} of {} blocks damaged, not repairable ({d} damaged blocks in one window, {m} recovery blocks)",
                f.damaged, f.blocks
            ),
            None => format!("parity: {} of {} blocks damaged, not repairable", f.damaged, f.blocks),
        },
        Err(why) => format!("parity: not usable ({why})"),
    }
}

#[cfg(test)]
mod review_tests {
    //! Review of issue 16: reproductions.
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::io::{self, Read};
    use std::path::{Path, PathBuf};

    use crate::config::Config;
    use crate::engine::Engine;
    use crate::error::{Error, Result};
    use crate::fs::sim::SimFs;
    use crate::fs::{DirEntry, DirId, Fs, Meta, WriteFile};
    use crate::manifest::Owner;
    use crate::relpath::RelPath;

    /// The simulated filesystem, except that opening `fail` for reading fails with EIO
    /// (a flash page that cannot be read; `lstat` still works).
    struct FailOpen<'a> {
        sim: &'a SimFs,
        fail: PathBuf,
    }

    impl Fs for FailOpen<'_> {
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
            let p = root.join(rel.as_str());
            if p == self.fail {
                return Err(Error::io("open", p, io::Error::from_raw_os_error(5)));
            }
            self.sim.open_read(root, rel)
        }
        fn open_read_at(&self, root: &Path, rel: &RelPath) -> Result<crate::fs::OpenAt> {
            let p = root.join(rel.as_str());
            if p == self.fail {
                return Err(Error::io("open", p, io::Error::from_raw_os_error(5)));
            }
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
        fn boot_id(&self) -> Option<String> {
            self.sim.boot_id()
        }
        fn now(&self) -> std::time::SystemTime {
            self.sim.now()
        }
    }

    fn data() -> Vec<u8> {
        let mut x: u32 = 7;
        (0..64 * 1024)
            .map(|_| {
                x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (x >> 24) as u8
            })
            .collect()
    }

    /// Two files hold the same content, so one record serves both. One of them cannot
    /// be opened (EIO); the other has one damaged block, well within the record's
    /// recovery blocks. The copy that cannot be opened is that copy's problem: it must
    /// not condemn the intact record, and the other file must be rebuilt from it.
    #[test]
    fn review_a_copy_that_cannot_be_opened_does_not_condemn_an_intact_record() {
        let sim = SimFs::new();
        let content = data();
        sim.put(Path::new("/live/a.bin"), &content);
        sim.put(Path::new("/live/b.bin"), &content);
        sim.mkdir_all(Path::new("/par"));
        let config = Config::parse(
            "[[set]]\nname = \"s\"\nmode = \"parity\"\nlive = \"/live\"\nparity = \"/par\"\ninclude = [\"**\"]\n",
            Path::new("/etc/rebound.toml"),
        )
        .unwrap();
        let r = Engine::new(&sim).boot(&config, &[], false).unwrap();
        assert_eq!(r.exit_code(), 0, "{r:#?}");

        let mut damaged = content.clone();
        damaged[100] ^= 0x10;
        sim.put(Path::new("/live/b.bin"), &damaged);
        let fs = FailOpen {
            sim: &sim,
            fail: PathBuf::from("/live/a.bin"),
        };
        let r = Engine::new(&fs).boot(&config, &[], false).unwrap();
        let text = format!("{r:#?}");
        assert!(
            !text.contains("parity_damaged") && !text.contains("ParityDamaged"),
            "an intact record was reported damaged because another copy could not be opened:\n{text}"
        );
        assert_eq!(
            sim.get(Path::new("/live/b.bin")).unwrap(),
            content,
            "b.bin was not rebuilt from its intact record:\n{text}"
        );
    }
}
