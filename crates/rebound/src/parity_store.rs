//! A set's parity directory as observe sees it: which records are there, which are
//! intact, and how a damaged copy's blocks fit a record. Reads only; the planner
//! decides from [`ParityState`] ([`crate::plan`]), `exec` writes records and rebuilds
//! files through `durable` ([`crate::parity`] is the codec).
//!
//! Records are named by the content digest they protect
//! (`.rebound/<set>/parity/<xx>/<hex>`), so a record serves every path holding that
//! content, survives renames, and the record of a new content never replaces the
//! record of the content still committed: a cut between writing a record and the
//! manifest that names it leaves both (docs/design.md section 2.6).

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::SetConfig;
use crate::digest::Digest;
use crate::error::Error;
use crate::fs::{full, Fs, Kind};
use crate::names::{is_temp_name, PARITY_DIR};
use crate::observe::SetState;
use crate::parity::{self, Fit, Layout};
use crate::relpath::RelPath;

/// Largest record read (a record of the largest file rebound can protect is far
/// smaller than this; a bigger file there is not a record).
pub const RECORD_MAX_BYTES: u64 = 1 << 40;

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

/// Lists (and, with `check`, reads whole and checks) every record of the set's parity
/// directory. Never fails: what cannot be read is a problem of the report.
pub fn observe_parity(
    fs: &dyn Fs,
    set: &SetConfig,
    check: bool,
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
                // A leftover temporary file, or a name no record has (another hash
                // algorithm's record after a change of `hash`): not ours to keep.
                if is_temp_name(name) || Digest::from_hex(set.hash, name).is_none() {
                    st.junk.push(rel);
                }
                continue;
            };
            let state = if check {
                check_one(fs, &pc.root, &rel, set, &digest)
            } else {
                RecordState::Listed
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
) -> RecordState {
    let r = match fs.open_read(root, rel) {
        Ok(r) => r,
        Err(e) => return RecordState::Damaged(format!("cannot be read: {e}")),
    };
    match parity::check_record(r, set.hash, RECORD_MAX_BYTES) {
        Ok(info) if info.digest == *digest => RecordState::Intact(info.layout),
        Ok(_) => RecordState::Damaged("it protects other content than its name says".into()),
        Err(why) => RecordState::Damaged(why),
    }
}

/// Compares each damaged copy `(replica, path, digest)` with the record of `digest`,
/// filling [`ParityState::fits`]. A copy that is missing, or not a regular file, has
/// no intact block (an empty file is compared). A record found damaged here is marked
/// so (it is then rewritten, never used).
pub fn check_fits(fs: &dyn Fs, state: &mut SetState, wanted: &[(usize, RelPath, Digest)]) {
    let algo = state.hash;
    let roots: Vec<PathBuf> = state.replicas.iter().map(|r| r.root.clone()).collect();
    let set = state.set.clone();
    let Some(ps) = state.parity.as_mut() else {
        return;
    };
    for (ri, path, digest) in wanted {
        let Some(root) = roots.get(*ri) else { continue };
        let rel = record_rel(&set, digest);
        let fit = (|| {
            let record = fs
                .open_read(&ps.root, &rel)
                .map_err(|e| format!("parity record could not be read: {e}"))?;
            let file: Box<dyn Read + Send + '_> = match fs.metadata(root, path) {
                Ok(Some(m)) if m.kind == Kind::File => fs
                    .open_read(root, path)
                    .map_err(|e| format!("{}: {e}", full(root, path).display()))?,
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
