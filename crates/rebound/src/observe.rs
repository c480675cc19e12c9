//! Observe: read the state of every replica of a set, writing nothing.
//!
//! The result, [`SetState`], is everything the pure planner needs: each replica's
//! manifest slots, version tag, staged content, leftover temporary files and the state
//! of every file of interest (hashed, for writable replicas; golden files are hashed
//! on demand, only when a restore needs them, unless a deep check asks for all).
//!
//! At [`Depth::Boot`] a golden replica is observed lazily ([`Observed::Lazy`]): only
//! its seal marker is read, and its manifest is not even decoded. The planner asks
//! for more when it needs it ([`crate::plan::Planned::Need`]: golden files it would
//! restore from, or the golden manifest), the
//! engine reads it ([`hash_on_demand`], [`observe_golden`]) and plans again. A boot
//! with nothing to restore from golden therefore never reads the golden copy.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

use crate::config::{Role, SetConfig};
use crate::digest::{Digest, HashAlgo};
use crate::error::{Error, Result};
use crate::fs::{full, read_small, Fs, Kind, Meta};
use crate::hashing;
use crate::hashing::{hash_reader, CHUNK};
use crate::keys::DeviceKey;
use crate::manifest::{generation_hint, Manifest, Owner};
use crate::names::{
    is_temp_name, DISPLACED_DIR, GOLDEN_MANIFEST, GOLDEN_SIGNATURE, MANIFEST_MAX_BYTES,
    MANIFEST_SLOTS, SEALED_MARKER, STAGE_DIR, TAG_MAX_BYTES,
};
use crate::parity_store::{observe_parity, ParityState};
use crate::relpath::RelPath;
use crate::sign::{PublicKey, KEY_FILE_MAX_BYTES};
use crate::statcache;

/// State of one manifest slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state", content = "detail")]
pub enum SlotState {
    Missing,
    /// Present but unusable (torn, corrupt, wrong set): treated as absent.
    Damaged(String),
    Intact(u64),
    /// Intact, but its digests are of another algorithm than the set's `hash`: the
    /// configuration changed since it was written. Never treated as absent (that
    /// would re-adopt or fall back to factory); the planner refuses the set while it
    /// is the newest manifest (docs/design.md §3).
    OtherHash {
        generation: u64,
        hash: HashAlgo,
    },
}

/// What the golden manifest's signature said (a golden replica whose manifest was read).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state", content = "detail")]
pub enum SignatureState {
    /// The set has no `golden_public_key`: signatures are not checked.
    NotChecked,
    /// Verified (strictly) with the set's `golden_public_key`, over the very bytes
    /// decoded as the golden manifest.
    Verified,
    /// Missing, malformed, by another key, or not matching the manifest: the golden
    /// manifest is damaged ([`SlotState::Damaged`]) and never used.
    Refused(String),
}

/// State of a version tag file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state", content = "value")]
pub enum TagState {
    /// The set has no `version_file`.
    NotConfigured,
    /// Missing: counts as -1, as in the vendor script.
    Missing,
    Value(i64),
    /// Present but not an integer: reported, ignored, rewritten.
    Invalid(String),
}

/// State of one file in one replica.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum FileState {
    Missing,
    /// A regular file. `digest` is `None` when it was not hashed (golden, on demand).
    File {
        size: u64,
        mode: u32,
        owner: Owner,
        digest: Option<Digest>,
    },
    /// Something other than a regular file (a link, a directory, a device).
    NotFile {
        kind: String,
    },
    /// Could not be read (I/O error, or a link in a parent directory).
    Unreadable {
        error: String,
    },
}

impl FileState {
    /// The manifest entry that records this file as it is: a hashed regular file's
    /// size, mode, owner and digest (what `seal` and an adoption record).
    pub fn entry(&self) -> Option<crate::manifest::Entry> {
        match self {
            FileState::File {
                size,
                mode,
                owner,
                digest: Some(d),
            } => Some(crate::manifest::Entry {
                size: *size,
                mode: *mode,
                owner: Some(*owner),
                digest: *d,
            }),
            _ => None,
        }
    }

    /// The digest, if this is a hashed regular file.
    pub fn digest(&self) -> Option<Digest> {
        match self {
            FileState::File { digest, .. } => *digest,
            _ => None,
        }
    }
}

/// How much of a replica has been read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Observed {
    /// Manifests, tag, staging, junk, and every file of interest listed (and hashed
    /// where the depth asks for it).
    Full,
    /// A golden replica at boot: only `root_exists` and `sealed` are known. `slots`
    /// is empty and `manifest` is `None` because they were not read (not because
    /// they are missing), and `files` holds only the paths looked up on demand.
    /// Nothing may be concluded about the rest of the replica.
    Lazy,
}

/// Everything observed about one replica.
#[derive(Debug, Clone, Serialize)]
pub struct ReplicaState {
    pub root: std::path::PathBuf,
    pub role: Role,
    pub root_exists: bool,
    /// How much was read: see [`Observed`].
    pub observed: Observed,
    /// The two slots of a writable replica, or the one manifest of a golden replica.
    pub slots: Vec<SlotState>,
    /// Index in `slots` of the current manifest.
    pub current_slot: Option<usize>,
    /// Per slot of a writable replica: whether it holds exactly the current manifest.
    /// Every generation goes to both slots (`names::MANIFEST_SLOTS`), so a slot that
    /// does not (damaged, missing, or behind after a cut between the two writes or on
    /// a device written by an older rebound) is rewritten by the next boot.
    #[serde(skip)]
    pub slot_current: Vec<bool>,
    /// Writable replicas: the highest generation any slot claims, damaged slots
    /// included (read leniently with [`crate::manifest::generation_hint`]). Never an
    /// authority: only a floor for the next generation, so that a generation a damaged
    /// slot held is never given to different content.
    #[serde(skip)]
    pub generation_floor: Option<u64>,
    /// Shared with the plan ([`crate::plan::Plan::manifest`]) when the plan keeps it.
    #[serde(skip)]
    pub manifest: Option<Arc<Manifest>>,
    /// Golden only: the seal completed.
    pub sealed: bool,
    /// Golden only, once its manifest was read: what its signature said (`None`: no
    /// golden manifest to check, or not read yet).
    pub signature: Option<SignatureState>,
    /// Golden only: a signature file is there (seal removes it before replacing the
    /// golden manifest).
    #[serde(skip)]
    pub signature_file: bool,
    pub tag: TagState,
    /// Every file of interest: selected files found here, and every path any
    /// manifest of the set names.
    pub files: BTreeMap<RelPath, FileState>,
    /// Verified staged content, by digest.
    pub staged: BTreeSet<Digest>,
    /// Junk to remove: leftover temporary files, damaged or stray staged files.
    pub junk: Vec<RelPath>,
    /// Problems met while observing (unreadable directories, names that cannot be
    /// protected: not UTF-8, or a path longer than 4096 bytes). Every report shows
    /// each of them ([`crate::plan::Plan::warnings`]).
    pub problems: Vec<String>,
    /// What stands where rebound may have to write (writable replicas only): for a
    /// protected path or the version tag, the directory at that very path, or the
    /// regular (or special) file at one of its parent directories' paths. A restore
    /// there first moves it aside ([`crate::plan::Action::MoveAside`]).
    #[serde(skip)]
    pub blocked: BTreeMap<RelPath, RelPath>,
    /// Names already used in `.rebound/<set>/displaced/` (the plan picks a new one).
    #[serde(skip)]
    pub displaced: BTreeSet<String>,
    /// Temporary-file names the walk met, kept as junk only if they lie in a
    /// directory rebound writes into ([`collect_temps`]).
    #[serde(skip)]
    temps_seen: Vec<RelPath>,
    /// Directories the walk listed (their temporary files are in `temps_seen`).
    #[serde(skip)]
    walked: BTreeSet<Option<RelPath>>,
    /// `lstat` of every regular file the walk found, for the stat cache (empty
    /// unless the stat cache is in use).
    #[serde(skip)]
    pub stats: BTreeMap<RelPath, Meta>,
    /// How the stat cache was used (`changed_only` sets, boot only).
    #[serde(skip)]
    pub stat_cache: Option<statcache::Usage>,
    /// The walk asks the change journal to watch each directory before it lists it
    /// ([`Fs::watch_dir`]; a no-op unless a boot started the journal): the first
    /// writable replica of a boot, the one applications write.
    #[serde(skip)]
    watch: bool,
}

impl ReplicaState {
    /// A replica of which nothing is known yet but its root, role and existence.
    pub(crate) fn blank(
        root: &Path,
        role: Role,
        root_exists: bool,
        observed: Observed,
    ) -> ReplicaState {
        ReplicaState {
            root: root.to_path_buf(),
            role,
            root_exists,
            observed,
            slots: Vec::new(),
            current_slot: None,
            slot_current: Vec::new(),
            generation_floor: None,
            manifest: None,
            sealed: false,
            signature: None,
            signature_file: false,
            tag: TagState::NotConfigured,
            files: BTreeMap::new(),
            staged: BTreeSet::new(),
            junk: Vec::new(),
            problems: Vec::new(),
            blocked: BTreeMap::new(),
            displaced: BTreeSet::new(),
            temps_seen: Vec::new(),
            walked: BTreeSet::new(),
            stats: BTreeMap::new(),
            stat_cache: None,
            watch: false,
        }
    }

    /// The generation of the current manifest.
    pub fn generation(&self) -> Option<u64> {
        self.manifest.as_ref().map(|m| m.generation)
    }

    /// The newest intact manifest of this replica whose algorithm is not the set's:
    /// its slot index, generation and algorithm.
    pub fn other_hash(&self) -> Option<(usize, u64, HashAlgo)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match s {
                SlotState::OtherHash { generation, hash } => Some((i, *generation, *hash)),
                _ => None,
            })
            .max_by_key(|(_, g, _)| *g)
    }

    /// The order in which a new manifest is written to this replica's slots: every
    /// slot, first one that does not hold the current manifest (damaged, missing or
    /// behind; if both hold it, the one after the current slot), so that the current
    /// manifest survives a cut during that first write. The first write is the one
    /// that makes the new generation durable here; once the others are written too,
    /// one damaged slot always leaves another at the newest generation.
    pub fn slot_order(&self) -> Vec<usize> {
        let n = MANIFEST_SLOTS.len();
        let first = (0..n)
            .find(|i| !self.slot_current.get(*i).copied().unwrap_or(false))
            .unwrap_or_else(|| self.current_slot.map_or(0, |c| (c + 1) % n));
        std::iter::once(first)
            .chain((0..n).filter(|i| *i != first))
            .collect()
    }
}

/// Everything observed about a set.
#[derive(Debug, Clone, Serialize)]
pub struct SetState {
    pub set: String,
    pub hash: HashAlgo,
    pub replicas: Vec<ReplicaState>,
    /// The parity directory, if the set has one.
    pub parity: Option<ParityState>,
    /// Threads for hashing on demand.
    #[serde(skip)]
    pub threads: usize,
}

/// How much to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// Hash writable replicas; golden files on demand.
    Boot,
    /// Hash everything, golden included (`verify`).
    Deep,
}

/// What [`read_manifest`] made of a slot's bytes.
enum Decoded {
    /// Nothing usable (missing, damaged, another set's or another hash's manifest).
    Nothing,
    /// An intact manifest of this set.
    Manifest(Manifest),
    /// The very bytes of the best manifest read so far (the other slot of the same
    /// generation, the usual case): not decoded a second time.
    SameAsBest,
}

/// Reads and decodes one manifest slot, once: the state of the slot, the generation
/// it claims (leniently, even if damaged: a floor, never an authority), what it holds
/// (see [`Decoded`]) and the BLAKE3 hash of its bytes.
///
/// `best` is the hash of the bytes of the best manifest read so far and its
/// generation: a slot with exactly those bytes is that manifest (same bytes, same
/// checksum, same verdict), so it is not decoded again (a manifest of 100,000 files
/// is megabytes in memory).
///
/// With `key` (a golden manifest of a set with `golden_public_key`), the bytes must
/// carry a valid signature ([`GOLDEN_SIGNATURE`]) before they are decoded: otherwise
/// the slot is damaged, whatever they hold. The signature's verdict is returned too.
#[allow(clippy::too_many_arguments)]
fn read_manifest(
    fs: &dyn Fs,
    set: &SetConfig,
    root: &Path,
    rel: &RelPath,
    public: Option<&PublicKey>,
    device: Option<&DeviceKey>,
    best: Option<(blake3::Hash, u64)>,
) -> (
    SlotState,
    Option<u64>,
    Decoded,
    Option<SignatureState>,
    Option<blake3::Hash>,
) {
    let bytes = match read_small(fs, root, rel, MANIFEST_MAX_BYTES) {
        Ok(None) => return (SlotState::Missing, None, Decoded::Nothing, None, None),
        Err(e) => {
            return (
                SlotState::Damaged(e.to_string()),
                None,
                Decoded::Nothing,
                None,
                None,
            )
        }
        Ok(Some(bytes)) => bytes,
    };
    let hint = generation_hint(&bytes);
    let hash = blake3::hash(&bytes);
    if public.is_none() {
        if let Some((_, generation)) = best.filter(|(h, _)| *h == hash) {
            return (
                SlotState::Intact(generation),
                hint,
                Decoded::SameAsBest,
                None,
                Some(hash),
            );
        }
    }
    let verdict = public.map(|k| match verify_signature(fs, set, root, k, &bytes) {
        Ok(()) => SignatureState::Verified,
        Err(why) => SignatureState::Refused(why),
    });
    if let Some(SignatureState::Refused(why)) = &verdict {
        return (
            SlotState::Damaged(format!("{}: {why}", full(root, rel).display())),
            hint,
            Decoded::Nothing,
            verdict,
            Some(hash),
        );
    }
    let (s, m) = decode_slot(set, root, rel, &bytes, device);
    drop(bytes);
    let m = m.map_or(Decoded::Nothing, Decoded::Manifest);
    (s, hint, m, verdict, Some(hash))
}

/// Checks the golden manifest `bytes` against its signature file with `key`.
fn verify_signature(
    fs: &dyn Fs,
    set: &SetConfig,
    root: &Path,
    key: &PublicKey,
    bytes: &[u8],
) -> std::result::Result<(), String> {
    let rel = RelPath::meta(&set.name, GOLDEN_SIGNATURE);
    let shown = full(root, &rel);
    match read_small(fs, root, &rel, KEY_FILE_MAX_BYTES) {
        Ok(None) => Err(format!(
            "not signed: {} is missing (the set has golden_public_key; seal the golden copy with --sign-key)",
            shown.display()
        )),
        Err(e) => Err(format!("signature unreadable: {e}")),
        Ok(Some(sig)) => key
            .verify_golden(&set.name, bytes, &sig)
            .map_err(|why| format!("signature {}: {why}", shown.display())),
    }
}

/// The set's `golden_public_key`, read (every observation of a golden copy reads it:
/// a key file that is not one fails the set, never lets an unsigned golden copy in).
///
/// # Errors
/// [`Error::Config`] naming the key file and what is wrong.
fn golden_key(fs: &dyn Fs, set: &SetConfig) -> Result<Option<PublicKey>> {
    match &set.golden_public_key {
        None => Ok(None),
        Some(p) => PublicKey::load(fs, p).map(Some).map_err(|e| match e {
            Error::Config { path, what } => Error::Config {
                path,
                what: format!("golden_public_key of set `{}`: {what}", set.name),
            },
            other => other,
        }),
    }
}

/// Decodes one slot. With the set's device key (writable copies only), a manifest
/// without a valid MAC of it for this set and root is `Damaged`, saying why: treated
/// as absent, as a torn one is (docs/design.md section 2.3).
fn decode_slot(
    set: &SetConfig,
    root: &Path,
    rel: &RelPath,
    bytes: &[u8],
    key: Option<&DeviceKey>,
) -> (SlotState, Option<Manifest>) {
    let decoded = match key {
        Some(k) => Manifest::decode_keyed(bytes, k, &set.name, root),
        None => Manifest::decode(bytes),
    };
    match decoded {
        Err(e) => (
            SlotState::Damaged(format!("{}: {e}", full(root, rel).display())),
            None,
        ),
        Ok(m) if m.set != set.name => (
            SlotState::Damaged(format!(
                "{}: belongs to set `{}`",
                full(root, rel).display(),
                m.set
            )),
            None,
        ),
        Ok(m) if m.hash != set.hash => (
            SlotState::OtherHash {
                generation: m.generation,
                hash: m.hash,
            },
            None,
        ),
        Ok(m) => (SlotState::Intact(m.generation), Some(m)),
    }
}

/// Parses a version tag the way the vendor script's `[ -eq ]` would accept it:
/// an optionally signed decimal integer with surrounding white space.
pub fn parse_tag(bytes: &[u8]) -> std::result::Result<i64, String> {
    let s = std::str::from_utf8(bytes).map_err(|_| "not text".to_string())?;
    let t = s.trim();
    t.parse::<i64>()
        .map_err(|_| format!("`{}` is not an integer", t.escape_debug()))
}

/// Observes one set.
///
/// # Errors
/// Only errors that make the whole set unreadable; per-file problems are recorded
/// in the state instead.
pub fn observe(fs: &dyn Fs, set: &SetConfig, depth: Depth) -> Result<SetState> {
    // A configured key that was not read stops the set here: never a silent fallback
    // to manifests without a MAC.
    set.device_key()?;
    let mut replicas = Vec::new();
    for r in &set.replicas {
        replicas.push(if r.role == Role::Golden && depth == Depth::Boot {
            observe_lazy(fs, set, &r.root)?
        } else {
            observe_meta(fs, set, &r.root, r.role)?
        });
    }
    // Every path some manifest names is of interest in every replica (a lazy golden
    // replica's manifest is not known yet: [`observe_golden`] adds its paths).
    let named = named_paths(&replicas);
    if depth == Depth::Boot {
        if let Some(live) = replicas.iter_mut().find(|r| r.role == Role::Writable) {
            live.watch = true;
        }
    }
    for r in &mut replicas {
        if r.observed == Observed::Lazy {
            continue;
        }
        let hash = match r.role {
            Role::Writable => true,
            Role::Golden => depth == Depth::Deep,
        };
        // The stat cache serves boots only: `verify` always reads everything.
        if r.role == Role::Writable && depth == Depth::Boot && set.changed_only && r.root_exists {
            r.stat_cache = Some(statcache::load(fs, set, &r.root));
        }
        observe_files(fs, set, r, &named, hash);
    }
    collect_temps(fs, set, &mut replicas);
    for r in &mut replicas {
        find_blocked(fs, set, r);
    }
    // Records are read whole and checked at every boot (a damaged one is rewritten
    // from an intact copy), except the boots of a `changed_only` set that are not full
    // checks: those list them (a record used is checked while it is read).
    // (The map of named contents is built only for a set with a parity directory: a
    // boot of any other set pays nothing for parity.)
    let check =
        set.parity.is_some() && (depth == Depth::Deep || !set.changed_only || set.force_full);
    let named: BTreeMap<Digest, u64> = if check {
        replicas
            .iter()
            .filter_map(|r| r.manifest.as_ref())
            .flat_map(|m| m.entries.values().map(|e| (e.digest, e.size)))
            .collect()
    } else {
        BTreeMap::new()
    };
    let parity = observe_parity(fs, set, check.then_some(&named), depth == Depth::Deep);
    Ok(SetState {
        set: set.name.clone(),
        hash: set.hash,
        replicas,
        parity,
        threads: set.threads,
    })
}

/// The paths a set claims in one of its writable roots: the selected files found there
/// and the selected paths its current manifest there names (a path it no longer
/// selects is being released, not claimed). Hashes no protected file (each selected
/// entry is `lstat`ed), for the check that no file belongs to two sets.
///
/// # Errors
/// Only if the root cannot even be examined.
pub fn claims(fs: &dyn Fs, set: &SetConfig, root: &Path) -> Result<BTreeSet<RelPath>> {
    let mut st = observe_meta(fs, set, root, Role::Writable)?;
    let mut out = named_paths(std::slice::from_ref(&st));
    out.retain(|p| set.selects(p));
    if !st.root_exists {
        return Ok(out);
    }
    let mut found = BTreeMap::new();
    walk_set(
        fs,
        set,
        &mut st,
        &mut |p, s| {
            found.insert(p, s);
        },
        &out,
        false,
    );
    out.extend(found.into_keys());
    Ok(out)
}

/// Every path some known manifest of the set names.
fn named_paths(replicas: &[ReplicaState]) -> BTreeSet<RelPath> {
    replicas
        .iter()
        .filter_map(|r| r.manifest.as_ref())
        .flat_map(|m| m.entries.keys().cloned())
        .collect()
}

/// A golden replica at boot: whether it exists and is sealed, nothing else.
pub(crate) fn observe_lazy(fs: &dyn Fs, set: &SetConfig, root: &Path) -> Result<ReplicaState> {
    // Read now so that a bad key file fails every run, not only the one that needs
    // the golden copy.
    golden_key(fs, set)?;
    let root_exists = matches!(fs.dir_metadata(root, None)?, Some(m) if m.kind == Kind::Dir);
    let sealed = root_exists
        && matches!(
            fs.metadata(root, &RelPath::meta(&set.name, SEALED_MARKER)),
            Ok(Some(m)) if m.kind == Kind::File
        );
    let mut st = ReplicaState::blank(root, Role::Golden, root_exists, Observed::Lazy);
    st.sealed = sealed;
    Ok(st)
}

/// Makes every lazily observed (golden) replica of `state` fully observed, as a
/// boot-depth [`observe`] did before golden was read lazily: its manifest is decoded,
/// its files listed (not hashed). The paths its manifest names become of interest in
/// every replica: writable replicas get those they did not list yet, hashed. Nothing
/// already read in this run is read again: files hashed on demand keep their digest.
///
/// # Errors
/// Only errors that make a root unreadable.
pub fn observe_golden(fs: &dyn Fs, set: &SetConfig, state: &mut SetState) -> Result<()> {
    let was_lazy: Vec<bool> = state
        .replicas
        .iter()
        .map(|r| r.observed == Observed::Lazy)
        .collect();
    if !was_lazy.contains(&true) {
        return Ok(());
    }
    for (r, _) in state
        .replicas
        .iter_mut()
        .zip(&was_lazy)
        .filter(|(_, l)| **l)
    {
        let looked_up = std::mem::take(&mut r.files);
        *r = observe_meta(fs, set, &r.root, r.role)?;
        r.files = looked_up;
    }
    let named = named_paths(&state.replicas);
    for (r, lazy) in state.replicas.iter_mut().zip(was_lazy) {
        let hash = r.role == Role::Writable;
        if lazy {
            // The walk lists everything again; what was looked up on demand (and
            // maybe hashed) is kept where the walk agrees on the file.
            let looked_up = std::mem::take(&mut r.files);
            observe_files(fs, set, r, &named, false);
            for (p, old) in looked_up {
                match r.files.get_mut(&p) {
                    Some(FileState::File {
                        size,
                        digest: d @ None,
                        ..
                    }) => {
                        if let FileState::File {
                            size: s,
                            digest: Some(got),
                            ..
                        } = old
                        {
                            if s == *size {
                                *d = Some(got);
                            }
                        }
                    }
                    Some(_) => {}
                    None => {
                        r.files.insert(p, old);
                    }
                }
            }
        } else if r.root_exists {
            let extra: Vec<RelPath> = named
                .iter()
                .filter(|p| !r.files.contains_key(*p))
                .cloned()
                .collect();
            if extra.is_empty() {
                continue;
            }
            let mut found = std::mem::take(&mut r.files);
            add_named(fs, r, &mut found, extra.iter());
            r.files = found;
            if hash {
                hash_listed(fs, set, r);
            }
        } else {
            for p in &named {
                r.files.entry(p.clone()).or_insert(FileState::Missing);
            }
        }
    }
    // New paths of interest may lie in new directories (their leftovers), and be
    // blocked (a directory at a path only the golden manifest names).
    collect_temps(fs, set, &mut state.replicas);
    for r in &mut state.replicas {
        find_blocked(fs, set, r);
    }
    Ok(())
}

/// Looks up, in every writable replica that has not met them, the paths an intentional
/// change is about to name (`commit`, `update`), as [`observe_golden`] does for the
/// golden manifest's: what a replica holds at a new path (a directory in the way, a
/// file at a parent path, or the content already) must be known before the change is
/// planned, or its restore there would fail, or find a "change" that is not one.
pub fn observe_paths(fs: &dyn Fs, set: &SetConfig, state: &mut SetState, paths: &[RelPath]) {
    let wanted: BTreeSet<RelPath> = paths.iter().cloned().collect();
    let mut added = false;
    for r in state
        .replicas
        .iter_mut()
        .filter(|r| r.role == Role::Writable && r.observed == Observed::Full)
    {
        let extra: Vec<RelPath> = not_in(&wanted, &r.files).into_iter().cloned().collect();
        if extra.is_empty() {
            continue;
        }
        added = true;
        if !r.root_exists {
            for p in extra {
                r.files.insert(p, FileState::Missing);
            }
            continue;
        }
        let mut found = std::mem::take(&mut r.files);
        add_named(fs, r, &mut found, extra.iter());
        r.files = found;
        hash_listed(fs, set, r);
    }
    if added {
        collect_temps(fs, set, &mut state.replicas);
        for r in &mut state.replicas {
            find_blocked(fs, set, r);
        }
    }
}

/// Observes one replica's metadata only: manifests, seal marker, tag, staging, junk.
/// Hashes no protected file.
///
/// # Errors
/// Only if the root cannot even be examined.
pub fn observe_meta(fs: &dyn Fs, set: &SetConfig, root: &Path, role: Role) -> Result<ReplicaState> {
    observe_meta_with(fs, set, root, role, true)
}

/// [`observe_meta`], with the manifest slots read (`slots`) or left to the caller (the
/// streaming boot reads them line by line: `slots`, `current_slot`, `slot_current`,
/// `generation_floor` and `manifest` stay blank).
///
/// # Errors
/// Only if the root cannot even be examined.
pub(crate) fn observe_meta_with(
    fs: &dyn Fs,
    set: &SetConfig,
    root: &Path,
    role: Role,
    slots: bool,
) -> Result<ReplicaState> {
    let root_exists = matches!(fs.dir_metadata(root, None)?, Some(m) if m.kind == Kind::Dir);
    let mut st = ReplicaState::blank(root, role, root_exists, Observed::Full);
    if !root_exists {
        st.slots = match role {
            Role::Writable => vec![SlotState::Missing; MANIFEST_SLOTS.len()],
            Role::Golden => vec![SlotState::Missing],
        };
        st.slot_current = vec![false; st.slots.len()];
        if set.version_file.is_some() {
            st.tag = TagState::Missing;
        }
        return Ok(st);
    }
    let key = match role {
        Role::Golden => golden_key(fs, set)?,
        Role::Writable => None,
    };
    if slots {
        read_slots(fs, set, root, &mut st, key.as_ref());
    }
    if role == Role::Golden {
        st.sealed = matches!(
            fs.metadata(root, &RelPath::meta(&set.name, SEALED_MARKER)),
            Ok(Some(m)) if m.kind == Kind::File
        );
    }
    if let Some(vf) = &set.version_file {
        st.tag = match read_small(fs, root, vf, TAG_MAX_BYTES) {
            Ok(None) => TagState::Missing,
            Ok(Some(b)) => match parse_tag(&b) {
                Ok(v) => TagState::Value(v),
                Err(e) => TagState::Invalid(format!("{}: {e}", full(root, vf).display())),
            },
            Err(e) => TagState::Invalid(e.to_string()),
        };
    }
    read_meta_dir(fs, set, root, &mut st);
    read_stage(fs, set, root, &mut st);
    Ok(st)
}

/// Reads every manifest slot of a replica once: their states, the current manifest
/// and which slots hold it, and (writable replicas) the generation floor.
fn read_slots(
    fs: &dyn Fs,
    set: &SetConfig,
    root: &Path,
    st: &mut ReplicaState,
    key: Option<&PublicKey>,
) {
    let role = st.role;
    let names: Vec<&str> = match role {
        Role::Writable => MANIFEST_SLOTS.to_vec(),
        Role::Golden => vec![GOLDEN_MANIFEST],
    };
    // Only the best manifest so far is kept: at most two are in memory at once. Each
    // slot is compared with it, so it is known which slots hold the current manifest.
    let mut best: Option<(usize, Manifest, blake3::Hash)> = None;
    let mut current = vec![false; names.len()];
    for (i, name) in names.iter().enumerate() {
        let rel = RelPath::meta(&set.name, name);
        let device = match role {
            Role::Writable => set.key.key.as_deref(),
            Role::Golden => None,
        };
        let known = best.as_ref().map(|(_, m, h)| (*h, m.generation));
        let (s, hint, m, verdict, hash) = read_manifest(fs, set, root, &rel, key, device, known);
        if role == Role::Writable {
            st.generation_floor = st.generation_floor.max(hint);
        } else if s != SlotState::Missing {
            st.signature = Some(verdict.unwrap_or(SignatureState::NotChecked));
        }
        match (m, hash) {
            (Decoded::SameAsBest, _) => current[i] = true,
            (Decoded::Manifest(m), Some(hash)) => match &best {
                Some((_, b, _)) if *b == m => current[i] = true,
                Some((_, b, _)) if b.generation >= m.generation => {}
                _ => {
                    current.iter_mut().for_each(|c| *c = false);
                    current[i] = true;
                    best = Some((i, m, hash));
                }
            },
            _ => {}
        }
        st.slots.push(s);
    }
    if let Some((i, m, _)) = best {
        st.current_slot = Some(i);
        st.manifest = Some(Arc::new(m));
    }
    st.slot_current = current;
}

/// Rebound's own junk in the metadata directory (temp files of manifest writes; the
/// leftovers beside protected files and the tag are found by [`collect_temps`]), and
/// the names used in `displaced/`.
fn read_meta_dir(fs: &dyn Fs, set: &SetConfig, root: &Path, st: &mut ReplicaState) {
    let meta = RelPath::meta_dir(&set.name);
    if let Ok(entries) = fs.read_dir(root, Some(&meta)) {
        for e in entries {
            if let Some(n) = &e.name {
                if n == GOLDEN_SIGNATURE && st.role == Role::Golden {
                    st.signature_file = true;
                }
                if is_temp_name(n) && e.kind == Kind::File {
                    if let Ok(p) = meta.join(n) {
                        st.junk.push(p);
                    }
                } else if n == DISPLACED_DIR && e.kind == Kind::Dir {
                    if let Ok(d) = meta.join(DISPLACED_DIR) {
                        if let Ok(list) = fs.read_dir(root, Some(&d)) {
                            st.displaced = list.iter().map(|e| e.display().to_string()).collect();
                        }
                    }
                }
            }
        }
    }
}

/// Staged content: keeps what verifies against its name, marks the rest as junk.
fn read_stage(fs: &dyn Fs, set: &SetConfig, root: &Path, st: &mut ReplicaState) {
    let stage = RelPath::meta(&set.name, STAGE_DIR);
    if let Ok(entries) = fs.read_dir(root, Some(&stage)) {
        let mut buf = vec![0u8; CHUNK];
        for e in entries {
            let Some(n) = &e.name else { continue };
            let Ok(p) = stage.join(n) else { continue };
            if e.kind != Kind::File {
                st.problems.push(format!(
                    "{}: unexpected non-file in staging",
                    full(root, &p).display()
                ));
                continue;
            }
            let verified = Digest::from_hex(set.hash, n).and_then(|d| {
                let mut r = fs.open_read(root, &p).ok()?;
                let got = hash_reader(&mut *r, &full(root, &p), set.hash, &mut buf).ok()?;
                (got == d).then_some(d)
            });
            match verified {
                Some(d) => {
                    st.staged.insert(d);
                }
                None => st.junk.push(p),
            }
        }
    }
}

fn observe_files(
    fs: &dyn Fs,
    set: &SetConfig,
    st: &mut ReplicaState,
    named: &BTreeSet<RelPath>,
    hash: bool,
) {
    if !st.root_exists {
        for p in named {
            st.files.insert(p.clone(), FileState::Missing);
        }
        return;
    }
    let mut found: BTreeMap<RelPath, FileState> = BTreeMap::new();
    walk_set(
        fs,
        set,
        st,
        &mut |p, s| {
            found.insert(p, s);
        },
        named,
        hash,
    );
    let unlisted = not_in(named, &found);
    add_named(fs, st, &mut found, unlisted.into_iter());
    st.files = found;
    if hash {
        hash_listed(fs, set, st);
    }
}

/// [`walk`] from every start of `set` (its walk roots) in `st`'s root, through one
/// cursor.
fn walk_set(
    fs: &dyn Fs,
    set: &SetConfig,
    st: &mut ReplicaState,
    found: &mut dyn FnMut(RelPath, FileState),
    named: &BTreeSet<RelPath>,
    hash: bool,
) {
    let root = st.root.clone();
    let mut cursor = fs.cursor(&root);
    for start in set.walk_roots() {
        walk(
            fs,
            &mut *cursor,
            set,
            st,
            start.as_ref(),
            found,
            named,
            hash,
        );
    }
}

/// Leftover temporary files of the write protocol, looked for only where rebound
/// writes: the directory of every protected path (selected by the patterns or named
/// by a manifest, in any replica of the set: a seal or a restore writes there in
/// every replica), the root and the version tag's directory. Only exact temporary
/// names ([`is_temp_name`]) count; a user's file that merely looks like one, or a
/// temporary name in any other directory (an excluded one, say), is never touched.
/// The metadata and staging directories are handled by [`observe_meta`]. Directories
/// the walk listed are not listed again.
fn collect_temps(fs: &dyn Fs, set: &SetConfig, replicas: &mut [ReplicaState]) {
    let mut dirs = Dirs::of_set(set);
    for r in replicas.iter() {
        for p in r.files.keys() {
            dirs.add_dir_of(p);
        }
    }
    let dirs = dirs.set;
    for r in replicas.iter_mut() {
        if r.observed == Observed::Lazy || !r.root_exists {
            continue;
        }
        // `temps_seen` is kept: a later call (more paths of interest) looks at them
        // again.
        let found = temps_among(fs, &r.root, &dirs, &r.temps_seen, &r.walked);
        r.junk.extend(found);
        // Listed now: a second call (after the golden manifest was read) only looks
        // in directories that became of interest since.
        r.walked.extend(dirs.iter().cloned());
        r.junk.sort();
        r.junk.dedup();
    }
}

/// The temporary files of one copy in `dirs`: those its walk met there (`seen`), and
/// those in the directories of `dirs` it did not walk.
fn temps_among(
    fs: &dyn Fs,
    root: &Path,
    dirs: &BTreeSet<Option<RelPath>>,
    seen: &[RelPath],
    walked: &BTreeSet<Option<RelPath>>,
) -> Vec<RelPath> {
    let mut out: Vec<RelPath> = seen
        .iter()
        .filter(|t| dirs.contains(&t.parent()))
        .cloned()
        .collect();
    for d in dirs.iter().filter(|d| !walked.contains(*d)) {
        out.extend(temps_in(fs, root, d.as_ref()));
    }
    out
}

/// The temporary files of the write protocol in directory `d` of `root` (none if it
/// cannot be listed).
fn temps_in(fs: &dyn Fs, root: &Path, d: Option<&RelPath>) -> Vec<RelPath> {
    let Ok(entries) = fs.read_dir(root, d) else {
        return Vec::new();
    };
    entries
        .into_iter()
        .filter(|e| e.kind == Kind::File)
        .filter_map(|e| e.name.filter(|n| is_temp_name(n)))
        .filter_map(|n| match d {
            None => RelPath::new(&n).ok(),
            Some(d) => d.join(&n).ok(),
        })
        .collect()
}

/// Directories where rebound writes, recorded from the paths of the files in them
/// (for [`Walked::leftovers`]).
#[derive(Debug, Default)]
pub(crate) struct Dirs {
    set: BTreeSet<Option<RelPath>>,
    /// The directory recorded last (`None`: the root, or none yet: the root is always
    /// looked at anyway).
    last: Option<String>,
}

impl Dirs {
    /// Where rebound writes besides the directories of protected files: the root and
    /// the version tag's directory.
    pub(crate) fn of_set(set: &SetConfig) -> Dirs {
        let mut d = Dirs::default();
        d.set.insert(None);
        if let Some(vf) = &set.version_file {
            d.set.insert(vf.parent());
        }
        d
    }

    /// Records the directory of file `p`. Files come directory by directory: most are
    /// in the one recorded last, and make no path.
    pub(crate) fn add_dir_of(&mut self, p: &RelPath) {
        if self.last.as_deref() == p.parent_str() {
            return;
        }
        let d = p.parent();
        self.last = d.as_ref().map(|d| d.as_str().to_string());
        self.set.insert(d);
    }
}

/// What the streaming boot ([`crate::stream`]) needs of a walk of a writable root: the
/// directories holding selected files (where `collect_temps` looks for leftovers), the
/// directories walked and the temporary files met; nothing per file.
#[derive(Debug)]
pub(crate) struct Walked {
    dirs: Dirs,
    temps_seen: Vec<RelPath>,
    walked: BTreeSet<Option<RelPath>>,
}

/// The walk of [`observe_files`] over a writable root (watching each directory before
/// listing it, as the first writable copy of a boot is), keeping no file. `None` when
/// the full observation would warn: a problem (an unreadable directory, a name that
/// cannot be protected).
pub(crate) fn walk_selected(
    fs: &dyn Fs,
    set: &SetConfig,
    root: &Path,
    watch: bool,
) -> Option<Walked> {
    let mut st = ReplicaState::blank(root, Role::Writable, true, Observed::Full);
    st.watch = watch;
    let mut dirs = Dirs::default();
    // Every selected entry, whatever it is: a link or a special file no manifest
    // names is left alone by the planner too (one a manifest names fails its
    // `O_NOFOLLOW` open in the stream), but its directory is one `collect_temps`
    // looks in.
    walk_set(
        fs,
        set,
        &mut st,
        &mut |p, _| dirs.add_dir_of(&p),
        &BTreeSet::new(),
        true,
    );
    st.problems.is_empty().then_some(Walked {
        dirs,
        temps_seen: st.temps_seen,
        walked: st.walked,
    })
}

impl Walked {
    /// Whether a temporary file of the write protocol lies, in any of the copies
    /// `walks` were made of (`roots`, in the same order), where the full boot would
    /// remove it ([`collect_temps`]: in every copy, the directories of the selected
    /// files of all copies and of the `protected` ones, the root and the version
    /// tag's directory).
    pub(crate) fn leftovers(
        fs: &dyn Fs,
        set: &SetConfig,
        roots: &[&Path],
        walks: &[Walked],
        protected: &Dirs,
    ) -> bool {
        let mut dirs = Dirs::of_set(set).set;
        dirs.extend(walks.iter().flat_map(|w| w.dirs.set.iter().cloned()));
        dirs.extend(protected.set.iter().cloned());
        roots
            .iter()
            .zip(walks)
            .any(|(root, w)| !temps_among(fs, root, &dirs, &w.temps_seen, &w.walked).is_empty())
    }
}

/// Fills [`ReplicaState::blocked`] of a writable replica: for each path of interest
/// that is a directory, or lies below a regular or special file, and for the version
/// tag, what stands in the way. A symbolic link in the way is not recorded: it is
/// never followed nor moved, and the restore below it fails naming it
/// (docs/design.md §7). Only paths already known to be odd are examined further, so
/// an intact replica costs nothing here.
fn find_blocked(fs: &dyn Fs, set: &SetConfig, st: &mut ReplicaState) {
    if st.role != Role::Writable || !st.root_exists || st.observed == Observed::Lazy {
        return;
    }
    let mut blocked = BTreeMap::new();
    for (p, s) in &st.files {
        match s {
            FileState::NotFile { kind } if kind == "directory" => {
                blocked.insert(p.clone(), p.clone());
            }
            FileState::Unreadable { .. } => {
                if let Some(b) = blocker(fs, &st.root, p) {
                    blocked.insert(p.clone(), b);
                }
            }
            _ => {}
        }
    }
    if let (Some(vf), TagState::Invalid(_)) = (&set.version_file, &st.tag) {
        if let Some(b) = blocker(fs, &st.root, vf) {
            blocked.insert(vf.clone(), b);
        }
    }
    st.blocked = blocked;
}

/// What stands in the way of writing a regular file at `rel`: `rel` itself if it is a
/// directory, or the nearest parent path that is a regular or special file. `None`
/// if nothing does, or if a symbolic link or an error is in the way.
fn blocker(fs: &dyn Fs, root: &Path, rel: &RelPath) -> Option<RelPath> {
    match fs.metadata(root, rel) {
        Ok(Some(m)) if m.kind == Kind::Dir => return Some(rel.clone()),
        Err(Error::Symlink { .. }) => {}
        _ => return None,
    }
    let mut prefix: Option<RelPath> = None;
    for comp in rel.components() {
        let here = match &prefix {
            None => RelPath::new(comp),
            Some(p) => p.join(comp),
        }
        .ok()?;
        if here == *rel {
            return None;
        }
        match fs.metadata(root, &here) {
            Ok(Some(m)) if m.kind == Kind::Dir => {}
            Ok(Some(m)) if matches!(m.kind, Kind::File | Kind::Other) => return Some(here),
            _ => return None,
        }
        prefix = Some(here);
    }
    None
}

/// The paths of `named` that `found` does not hold, by one merge of the two sorted
/// key sequences (no lookup per path).
fn not_in<'n, V>(named: &'n BTreeSet<RelPath>, found: &BTreeMap<RelPath, V>) -> Vec<&'n RelPath> {
    let mut out = Vec::new();
    let mut keys = found.keys().peekable();
    for p in named {
        while keys.next_if(|k| *k < p).is_some() {}
        if keys.peek() != Some(&p) {
            out.push(p);
        }
    }
    out
}

/// Adds the state of each of `paths` (named by a manifest, not found by the walk).
fn add_named<'p>(
    fs: &dyn Fs,
    st: &ReplicaState,
    found: &mut BTreeMap<RelPath, FileState>,
    paths: impl Iterator<Item = &'p RelPath>,
) {
    for p in paths {
        let s = match fs.metadata(&st.root, p) {
            Ok(None) => FileState::Missing,
            Ok(Some(m)) => file_state(&m),
            Err(e) => FileState::Unreadable {
                error: e.to_string(),
            },
        };
        found.insert(p.clone(), s);
    }
}

/// Hashes every listed regular file of `st` that has no digest yet (the stat cache
/// of a changed-only boot may supply some digests instead).
fn hash_listed(fs: &dyn Fs, set: &SetConfig, st: &mut ReplicaState) {
    // Changed-only boot: files whose metadata equals their last verified record
    // take the recorded digest; everything else is read.
    if let Some(usage) = st.stat_cache.as_mut().filter(|u| !u.full) {
        for (p, s) in st.files.iter_mut() {
            if let (
                FileState::File {
                    digest: d @ None, ..
                },
                Some(m),
                Some(rec),
            ) = (s, st.stats.get(p), usage.cache.records.get(p))
            {
                if rec.matches(m) {
                    *d = Some(rec.digest);
                    usage.skipped += 1;
                }
            }
        }
    }
    // In batches of HASH_BATCH files: the list of files to hash and their results
    // (about 100 bytes a file) exist for one batch at a time, not for the whole set.
    let root = st.root.as_path();
    let unhashed = |s: &FileState| matches!(s, FileState::File { digest: None, .. });
    let mut from: Option<RelPath> = None;
    loop {
        let after = match &from {
            None => (Bound::Unbounded, Bound::Unbounded),
            Some(p) => (Bound::Excluded(p), Bound::Unbounded),
        };
        let batch: Vec<RelPath> = st
            .files
            .range::<RelPath, _>(after)
            .filter(|(_, s)| unhashed(s))
            .take(HASH_BATCH)
            .map(|(p, _)| p.clone())
            .collect();
        let (Some(first), Some(last)) = (batch.first(), batch.last().cloned()) else {
            return;
        };
        let jobs: Vec<(&Path, &RelPath)> = batch.iter().map(|p| (root, p)).collect();
        let results = hashing::hash_files(fs, &jobs, set.hash, set.threads);
        // The same filter over the same, unchanged range yields the same files in the
        // same order: result `i` belongs to the `i`-th of them (none looked up).
        let slots = st
            .files
            .range_mut::<RelPath, _>((Bound::Included(first), Bound::Included(&last)))
            .map(|(_, s)| s)
            .filter(|s| unhashed(s));
        for (s, r) in slots.zip(results) {
            set_digest(s, r);
        }
        from = Some(last);
    }
}

/// Files hashed per batch by [`hash_listed`]: its list and results are about 1.5 MB
/// (about 180 bytes a file), against about 180 bytes a file of the whole set before.
/// The price: a batch ends when its slowest file does, so with files of very
/// different sizes, a large file at the end of one batch is not overlapped with the
/// next batch's files (the other workers wait for it). Every batch of files of like
/// size (the usual tree) loses at most one file's time per worker; a blake3 file
/// above [`hashing::SPLIT_ABOVE`] is hashed by every worker anyway.
const HASH_BATCH: usize = 8192;

fn file_state(m: &Meta) -> FileState {
    match m.kind {
        Kind::File => FileState::File {
            size: m.size,
            mode: m.mode,
            owner: m.owner(),
            digest: None,
        },
        Kind::Dir => FileState::NotFile {
            kind: "directory".into(),
        },
        Kind::Symlink => FileState::NotFile {
            kind: "symbolic link".into(),
        },
        Kind::Other => FileState::NotFile {
            kind: "special file".into(),
        },
    }
}

/// Records the outcome of hashing a `File` state: its digest, with the size, mode
/// and owner of what was hashed (a walk that lists files by their directory entry
/// type leaves them to this), or why it is unreadable.
fn set_digest(s: &mut FileState, r: Result<hashing::Hashed>) {
    if let FileState::File {
        digest: d @ None,
        size,
        mode,
        owner,
    } = s
    {
        match r {
            Ok(h) => {
                *d = Some(h.digest);
                *size = h.size;
                *mode = h.mode;
                *owner = h.owner;
            }
            // The walk listed it by its directory entry, without `lstat`: a file
            // removed, or replaced by a link or directory, before the hash opened it
            // is what it now is, not "unreadable".
            Err(Error::Io { ref source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                *s = FileState::Missing
            }
            Err(Error::Io { ref source, .. })
                if source.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) =>
            {
                *s = FileState::NotFile {
                    kind: "symbolic link".into(),
                }
            }
            Err(e) => {
                *s = FileState::Unreadable {
                    error: e.to_string(),
                }
            }
        }
    }
}

/// Watches, ahead of its turn, every directory the walk of `set` will read in the
/// writable root `root` ([`Fs::watch_dir`]; docs/design.md section 3.1): for the sets
/// a boot observes after the first one, whose own walk would watch them only once the
/// sets before them were done. Only directories are read here, no file. A literal
/// path's directory is watched even if the file is missing.
pub fn watch(fs: &dyn Fs, set: &SetConfig, root: &Path) {
    let mut stack: Vec<Option<RelPath>> = Vec::new();
    for start in set.walk_roots() {
        match start {
            None => stack.push(None),
            Some(p) => match fs.metadata(root, &p) {
                Ok(Some(m)) if m.kind == Kind::Dir => {
                    if !set.excludes_below(&p) {
                        stack.push(Some(p));
                    }
                }
                Ok(_) => fs.watch_dir(root, p.parent().as_ref()),
                Err(_) => {}
            },
        }
    }
    while let Some(dir) = stack.pop() {
        fs.watch_dir(root, dir.as_ref());
        let Ok(entries) = fs.read_dir(root, dir.as_ref()) else {
            continue;
        };
        for e in entries {
            let Some(name) = e.name.as_deref().filter(|_| e.kind == Kind::Dir) else {
                continue;
            };
            let rel = match &dir {
                None => RelPath::new(name),
                Some(d) => d.join(name),
            };
            match rel {
                Ok(rel) if !rel.is_meta() && !set.excludes_below(&rel) => stack.push(Some(rel)),
                _ => {}
            }
        }
    }
}

/// Where a walk starts below the root (`p`, a protected path's directory or the path
/// itself): the directory to list, if it is one; a file there is recorded at once.
fn walk_start(
    fs: &dyn Fs,
    set: &SetConfig,
    st: &mut ReplicaState,
    p: &RelPath,
    found: &mut dyn FnMut(RelPath, FileState),
) -> Option<Option<RelPath>> {
    let m = match fs.metadata(&st.root, p) {
        Ok(Some(m)) if m.kind == Kind::Dir => {
            return (!set.excludes_below(p)).then(|| Some(p.clone()));
        }
        Ok(m) => m,
        Err(e) => {
            st.problems.push(e.to_string());
            return None;
        }
    };
    if st.watch {
        fs.watch_dir(&st.root, p.parent().as_ref());
    }
    if let Some(m) = m.filter(|_| set.selects(p)) {
        found(p.clone(), file_state(&m));
        if m.kind == Kind::File && st.stat_cache.is_some() {
            st.stats.insert(p.clone(), m);
        }
    }
    None
}

/// The path of directory entry `e` of `dir`. A name rebound cannot hold as a path
/// (not UTF-8, or the path would be longer than 4096 bytes) is reported where it could
/// be protected, never skipped in silence (`e.display` escapes invalid bytes as
/// `\xNN`): `None` then.
fn entry_path(
    set: &SetConfig,
    st: &mut ReplicaState,
    dir: Option<&RelPath>,
    e: &crate::fs::DirEntry,
) -> Option<RelPath> {
    let rel = match e.name.as_deref() {
        None => Err("its name is not UTF-8"),
        Some(name) => match dir {
            None => RelPath::new(name),
            Some(d) => d.join(name),
        }
        .map_err(|_| "its path is longer than 4096 bytes"),
    };
    let why = match rel {
        Ok(rel) => return Some(rel),
        Err(why) => why,
    };
    let path = match dir {
        None => e.display().to_string(),
        Some(d) => format!("{d}/{}", e.display()),
    };
    let relevant = match e.kind {
        Kind::Dir => set.may_select_below(&path),
        _ => RelPath::new(&path).map_or(true, |p| set.selects(&p)),
    };
    if relevant {
        st.problems.push(format!(
            "{}: not protected: {why}{} (rename it)",
            st.root.join(&path).display(),
            if e.kind == Kind::Dir {
                "; nothing below it is protected"
            } else {
                ""
            }
        ));
    }
    None
}

/// Walks `start` (a directory or a single file) collecting selected files and junk.
///
/// With `hash` (every listed file is hashed in this same pass) and no stat cache, a
/// regular file is known by its directory entry type alone (`d_type`; filesystems that
/// do not fill it are asked with `lstat` by [`Fs::read_dir`]): its size and mode are
/// placeholders until the hash sets them from the open file ([`set_digest`]), and a
/// file that cannot be hashed becomes `Unreadable`, so no placeholder outlives the
/// pass. Otherwise each selected entry is `lstat`ed.
///
/// A path a manifest names is kept as the manifest's own copy of it (`named`): one
/// string per path in memory, not one per map.
#[allow(clippy::too_many_arguments)]
fn walk(
    fs: &dyn Fs,
    cursor: &mut dyn crate::fs::Cursor,
    set: &SetConfig,
    st: &mut ReplicaState,
    start: Option<&RelPath>,
    found: &mut dyn FnMut(RelPath, FileState),
    named: &BTreeSet<RelPath>,
    hash: bool,
) {
    let by_type = hash && st.stat_cache.is_none();
    let mut stack: Vec<Option<RelPath>> = Vec::new();
    match start {
        None => stack.push(None),
        Some(p) => stack.extend(walk_start(fs, set, st, p, found)),
    }
    while let Some(dir) = stack.pop() {
        if st.watch {
            fs.watch_dir(&st.root, dir.as_ref());
        }
        let entries = match fs.read_dir(&st.root, dir.as_ref()) {
            Ok(e) => e,
            Err(e) => {
                st.problems.push(e.to_string());
                continue;
            }
        };
        st.walked.insert(dir.clone());
        for e in entries {
            // A name rebound cannot hold as a path (not UTF-8, or the path would be
            // longer than 4096 bytes) is reported where it could be protected, never
            // skipped in silence (`e.display` escapes invalid bytes as `\xNN`).
            let Some(rel) = entry_path(set, st, dir.as_ref(), &e) else {
                continue;
            };
            if rel.is_meta() {
                continue;
            }
            if e.kind == Kind::File && is_temp_name(rel.file_name()) {
                st.temps_seen.push(rel);
                continue;
            }
            match e.kind {
                Kind::Dir if set.excludes_below(&rel) => {}
                Kind::Dir => stack.push(Some(rel)),
                Kind::File if by_type && set.selects(&rel) => {
                    let rel = named.get(&rel).cloned().unwrap_or(rel);
                    // Placeholders, set from the open file by the hash.
                    found(
                        rel,
                        FileState::File {
                            size: 0,
                            mode: 0,
                            owner: Owner::default(),
                            digest: None,
                        },
                    );
                }
                _ if set.selects(&rel) => {
                    let rel = named.get(&rel).cloned().unwrap_or(rel);
                    // Through the cursor: the directory is already open.
                    let s = match cursor.metadata(&rel) {
                        Ok(Some(m)) => {
                            // Kept only where the stat cache needs it: memory.
                            if m.kind == Kind::File && st.stat_cache.is_some() {
                                st.stats.insert(rel.clone(), m);
                            }
                            file_state(&m)
                        }
                        Ok(None) => FileState::Missing,
                        Err(e) => FileState::Unreadable {
                            error: e.to_string(),
                        },
                    };
                    found(rel, s);
                }
                _ => {}
            }
        }
    }
}

/// Hashes golden files on demand (when the planner needs them as sources), in
/// parallel; a file already hashed in this run is not read again. In a lazily
/// observed replica, a path not looked up yet is first `lstat`ed (a regular file is
/// then hashed, whatever its size).
pub fn hash_on_demand(fs: &dyn Fs, state: &mut SetState, wanted: &[(usize, RelPath)]) {
    for (ri, p) in wanted {
        let Some(r) = state.replicas.get_mut(*ri) else {
            continue;
        };
        if r.observed == Observed::Lazy && !r.files.contains_key(p) {
            let s = if !r.root_exists {
                FileState::Missing
            } else {
                match fs.metadata(&r.root, p) {
                    Ok(None) => FileState::Missing,
                    Ok(Some(m)) => file_state(&m),
                    Err(e) => FileState::Unreadable {
                        error: e.to_string(),
                    },
                }
            };
            r.files.insert(p.clone(), s);
        }
    }
    let todo: Vec<(usize, &RelPath)> = wanted
        .iter()
        .filter(|(ri, p)| {
            matches!(
                state.replicas.get(*ri).and_then(|r| r.files.get(p)),
                Some(FileState::File { digest: None, .. })
            )
        })
        .map(|(ri, p)| (*ri, p))
        .collect();
    let jobs: Vec<(&std::path::Path, &RelPath)> = todo
        .iter()
        .filter_map(|(ri, p)| state.replicas.get(*ri).map(|r| (r.root.as_path(), *p)))
        .collect();
    let results = hashing::hash_files(fs, &jobs, state.hash, state.threads);
    let done: Vec<(usize, RelPath, Result<hashing::Hashed>)> = todo
        .iter()
        .map(|(ri, p)| (*ri, (*p).clone()))
        .zip(results)
        .map(|((ri, p), r)| (ri, p, r))
        .collect();
    for (ri, p, r) in done {
        if let Some(s) = state.replicas.get_mut(ri).and_then(|r| r.files.get_mut(&p)) {
            set_digest(s, r);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed() -> FileState {
        FileState::File {
            size: 0,
            mode: 0,
            owner: Owner::default(),
            digest: None,
        }
    }

    /// A file listed by its directory entry (no `lstat`) that changed before the hash
    /// opened it is reported as what it now is (found in review: "unreadable").
    #[test]
    fn a_listed_file_gone_or_replaced_by_a_link_before_its_open_is_said_so() {
        let gone = Error::io("open", "/r/a", io::Error::from(io::ErrorKind::NotFound));
        let mut s = listed();
        set_digest(&mut s, Err(gone));
        assert_eq!(s, FileState::Missing);
        let link = Error::io(
            "open",
            "/r/a",
            io::Error::from_raw_os_error(rustix::io::Errno::LOOP.raw_os_error()),
        );
        let mut s = listed();
        set_digest(&mut s, Err(link));
        assert!(matches!(s, FileState::NotFile { .. }), "{s:?}");
        let eio = Error::io("read", "/r/a", io::Error::from_raw_os_error(5));
        let mut s = listed();
        set_digest(&mut s, Err(eio));
        assert!(matches!(s, FileState::Unreadable { .. }), "{s:?}");
    }

    /// `hash_listed` hashes in batches of `HASH_BATCH` files and gives result `i` of a
    /// batch to the `i`-th file without a digest in the batch's range: across several
    /// batches, with files that already have one (the stat cache's) and files in
    /// other states between them, on several threads, every file gets its own
    /// digest and no other state changes.
    #[test]
    fn hashing_in_batches_gives_every_file_its_own_digest() {
        let mut config = crate::config::Config::parse(
            "threads = 3\n[[set]]\nname='s'\nmode='golden'\nlive='/live'\ngolden='/gold'\ninclude=['**']\nhash='xxh3'\n",
            Path::new("/etc/rebound.toml"),
        )
        .unwrap();
        let set = config.sets.remove(0);
        let dir = tempfile::tempdir().unwrap();
        let fs = crate::fs::os::OsFs::new();
        let root = dir.path();
        let mut st = ReplicaState::blank(root, Role::Writable, true, Observed::Full);
        let cached = set.hash.digest(b"from the stat cache");
        let n = 2 * HASH_BATCH + 7;
        // Names sorted in another order than they are numbered: d0/.., d1/.., ...
        let name = |i: usize| format!("d{}/f{i:05}", i % 7);
        for i in 0..n {
            let rel = name(i);
            std::fs::create_dir_all(root.join(&rel).parent().unwrap()).unwrap();
            std::fs::write(root.join(&rel), rel.as_bytes()).unwrap();
            let s = match i % 5 {
                0 => FileState::File {
                    size: 0,
                    mode: 0,
                    owner: Owner::default(),
                    digest: Some(cached),
                },
                1 => FileState::Missing,
                _ => listed(),
            };
            st.files.insert(RelPath::new(&rel).unwrap(), s);
        }
        hash_listed(&fs, &set, &mut st);
        assert_eq!(st.files.len(), n);
        for i in 0..n {
            let rel = name(i);
            let s = &st.files[&RelPath::new(&rel).unwrap()];
            match i % 5 {
                0 => assert_eq!(s.digest(), Some(cached), "{rel}"),
                1 => assert_eq!(*s, FileState::Missing, "{rel}"),
                _ => {
                    assert_eq!(s.digest(), Some(set.hash.digest(rel.as_bytes())), "{rel}");
                    assert!(
                        matches!(s, FileState::File { size, .. } if *size == rel.len() as u64),
                        "{rel}: {s:?}"
                    );
                }
            }
        }
    }
}
