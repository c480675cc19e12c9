//! Plan: a pure function from an observed [`SetState`] to the actions that bring every
//! writable replica to the authoritative content. No I/O happens here, so `--dry-run`
//! prints exactly what `boot` would do, and the crash explorer can check plans.
//!
//! Deciding what is true (docs/design.md has the table of cases):
//! 1. A version tag (mirror mode) higher than the authoritative manifest's tag means an
//!    external upgrade happened in that replica: its current files become the truth
//!    at a new generation. A missing tag counts as -1; an invalid one is ignored.
//! 2. Otherwise the intact manifest with the highest generation among the writable
//!    replicas is the truth; failing that, the golden manifest (the seed's "copy
//!    checksum.json from the backup partition"); failing that (mirror mode, first run)
//!    the replica with the highest tag, or the first one holding files, is adopted.
//! 3. Each entry is sourced from a replica whose file hashes to it (writable first,
//!    then staged content, then golden). With no source, the golden (factory) version
//!    of that path is restored if it verifies, and the entry follows it; otherwise the
//!    file is lost: left untouched and reported.
//!
//! Actions come in a safe order: junk removal (frees space); manifests of replicas that
//! already hold everything (the commit point of a new generation); content (each
//! restore preceded, where a directory or a file stands in its way, by moving that
//! aside under `.rebound/<set>/displaced/`); the other manifests; removal of files the
//! new generation dropped; version tags last; then removal of staged content the new
//! generation no longer needs.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

use crate::config::{Links, Role, SetConfig};
use crate::digest::Digest;
use crate::manifest::{Entry, Manifest, Owner};
use crate::names::{DISPLACED_DIR, GOLDEN_MANIFEST, MANIFEST_SLOTS, STAGE_DIR};
use crate::observe::{FileState, Observed, ReplicaState, SetState, SlotState, TagState};
use crate::parity_store::{describe_fit, record_rel, RecordState};
use crate::relpath::RelPath;

/// Where a restore reads from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// Replica root.
    pub root: PathBuf,
    /// Path below the root: the file itself, or its staged copy.
    pub rel: RelPath,
    /// What kind of copy it is.
    pub kind: SourceKind,
}

/// The kinds of copy a restore reads from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// The file in a writable replica (live, an extra copy, a mirror peer).
    Writable,
    /// Staged content of an intentional change, in a writable replica's `.rebound/`.
    Staged,
    /// The golden (factory) copy.
    Golden,
    /// A parity record (`rel`, in the parity directory `root`): the file is rebuilt
    /// from the intact blocks of the damaged copy it replaces and the record's
    /// recovery blocks ([`crate::parity::Rebuild`]).
    Parity,
    /// The new content of an `update`, in the directory it was given: outside every
    /// replica, read only to stage it.
    Incoming,
}

/// The JSON form reports have always had: `root`, `rel`, and the flags `staged` and
/// `golden`; then `parity`.
impl Serialize for Source {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Source", 5)?;
        st.serialize_field("root", &self.root)?;
        st.serialize_field("rel", &self.rel)?;
        st.serialize_field("staged", &(self.kind == SourceKind::Staged))?;
        st.serialize_field("golden", &(self.kind == SourceKind::Golden))?;
        st.serialize_field("parity", &(self.kind == SourceKind::Parity))?;
        st.end()
    }
}

/// What an action expects to find at the file it replaces or removes: what observe
/// saw there. It is checked again right before the file is replaced or removed
/// (`exec`): a file that changed since (an application writing it during the run) is
/// left as it is and reported, never reverted or removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Prior {
    /// Nothing was there: a file that appeared since is left alone.
    Missing,
    /// A regular file with this content.
    File { digest: Digest },
    /// Something else (a link, a directory, an unreadable file): not checked again.
    Other,
}

impl Prior {
    /// What `s` says is at a path.
    pub fn of(s: Option<&FileState>) -> Prior {
        match s {
            None | Some(FileState::Missing) => Prior::Missing,
            Some(FileState::File {
                digest: Some(d), ..
            }) => Prior::File { digest: *d },
            Some(_) => Prior::Other,
        }
    }
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Remove a leftover temporary file or unneeded/damaged staged content.
    RemoveJunk { root: PathBuf, rel: RelPath },
    /// Replace (or create) a file with verified content, unless it changed since it
    /// was observed (`prior`), giving it the recorded permission bits and owner
    /// (`None`: not recorded, left to the process's own).
    Restore {
        root: PathBuf,
        path: RelPath,
        from: Source,
        digest: Digest,
        size: u64,
        mode: u32,
        prior: Prior,
        owner: Option<Owner>,
    },
    /// Give a file whose content is intact its recorded permission bits, and its
    /// recorded owner where `owner` is set (only when the owner is wrong).
    SetMeta {
        root: PathBuf,
        path: RelPath,
        mode: u32,
        owner: Option<Owner>,
    },
    /// Copy a file that this plan removes into its replica's stage, before the
    /// removal: until the new manifest is durable, a cut rolls the removal back from
    /// there. A failed `Stage` stops the plan.
    Stage {
        root: PathBuf,
        rel: RelPath,
        from: Source,
        digest: Digest,
        mode: u32,
    },
    /// Write the authoritative manifest into a replica's slot.
    WriteManifest {
        root: PathBuf,
        slot: usize,
        generation: u64,
    },
    /// Remove a file that the new generation no longer names (it matched the old one,
    /// `digest`, and is removed only if it still does).
    RemoveStale {
        root: PathBuf,
        path: RelPath,
        digest: Digest,
    },
    /// Write the vendor version tag.
    WriteTag {
        root: PathBuf,
        rel: RelPath,
        value: i64,
    },
    /// Remove staged content once every writable replica holds it in place.
    RemoveStaged { root: PathBuf, rel: RelPath },
    /// Make a file durable where it is: the file a `commit` accepts, before the
    /// manifest that records it is written (an application rarely fsyncs it).
    SyncFile { root: PathBuf, path: RelPath },
    /// The commit point of an intentional change (`commit`, `update`, `seal`): write
    /// the new generation's manifest ([`Plan::committed`]) into this slot. Right
    /// before its rename, every file the change takes from where an application
    /// writes it (`checked`) must still have the metadata it had when it was hashed;
    /// one that changed refuses it. If this action, or any before it, fails, nothing
    /// more of the plan is done: the change is all or nothing.
    CommitManifest {
        root: PathBuf,
        slot: usize,
        generation: u64,
        checked: Vec<Checked>,
    },
    /// `seal --force`: remove the golden copy's seal marker before any golden file is
    /// replaced, so that no marker ever vouches for a half-replaced golden copy.
    Unseal { root: PathBuf, rel: RelPath },
    /// `seal`: copy a file into the golden copy, with its recorded mode and owner.
    /// Seal is the only writer of the golden copy: nothing there is checked first.
    WriteGolden {
        root: PathBuf,
        path: RelPath,
        from: Source,
        digest: Digest,
        mode: u32,
        owner: Option<Owner>,
    },
    /// `seal`: write the golden manifest ([`Plan::committed`]).
    WriteGoldenManifest { root: PathBuf, generation: u64 },
    /// `seal --sign-key`: write the golden manifest's signature file (`signature`, its
    /// whole text: [`crate::sign`]), after the golden manifest and before the seal
    /// marker, so a sealed golden copy always carries its signature.
    WriteGoldenSignature {
        root: PathBuf,
        rel: RelPath,
        signature: String,
    },
    /// `seal`: write the seal marker, last: the golden copy is complete only now.
    WriteSealMarker {
        root: PathBuf,
        rel: RelPath,
        generation: u64,
    },
    /// Write the parity record of `digest` (`size` bytes, read from `from`, an intact
    /// copy) into the parity directory `root` at `rel`, with this block size and
    /// redundancy: before any manifest that names that content for the first time.
    /// The record is checked against `digest` while it is computed (a source that
    /// changed fails it); it replaces a damaged record of the same name.
    WriteParity {
        root: PathBuf,
        rel: RelPath,
        from: Source,
        digest: Digest,
        size: u64,
        block: u32,
        redundancy: u8,
    },
    /// Remove a parity record that the target no longer names (after every manifest
    /// of the target).
    RemoveParity { root: PathBuf, rel: RelPath },
    /// Move what stands where a protected file or the version tag must be written (a
    /// directory at its path, a file at one of its parent directories' paths) to `to`,
    /// inside `.rebound/<set>/displaced/`, by a rename within the same root. Never
    /// deleted: it is the user's data. Comes right before the write that needs it.
    MoveAside {
        root: PathBuf,
        path: RelPath,
        to: RelPath,
    },
}

/// A file a `commit` takes from where an application writes it, and what `lstat` said
/// of it when it was hashed ([`Action::CommitManifest`] checks it again).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Checked {
    pub root: PathBuf,
    pub path: RelPath,
    #[serde(skip)]
    pub meta: crate::fs::Meta,
}

impl Action {
    /// Whether the action only tidies up (nothing protected is wrong without it).
    pub fn is_cleanup(&self) -> bool {
        matches!(
            self,
            Action::RemoveJunk { .. } | Action::RemoveStaged { .. } | Action::RemoveParity { .. }
        )
    }
}

/// How the authoritative manifest was chosen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Authority {
    /// The intact manifest with the highest generation, found in `root`.
    Manifest { root: PathBuf, generation: u64 },
    /// No writable replica had an intact manifest: the golden one was used.
    Golden { root: PathBuf },
    /// A version tag showed an external upgrade in `root`: its files were adopted.
    Upgrade { root: PathBuf, tag: i64 },
    /// First run of a mirror set: `root`'s files were adopted.
    Adopt { root: PathBuf },
    /// Nothing to protect yet (no manifest, no files anywhere).
    Empty,
    /// An intentional change (`commit --remove`) made this manifest.
    Change { generation: u64 },
}

/// What was found wrong with one file in one replica.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub root: PathBuf,
    pub path: RelPath,
    pub problem: Problem,
    pub detail: String,
}

/// The kind of a [`Finding`]. Its JSON value (and [`Problem::as_str`]) is the snake
/// case name, as reports have always given it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Problem {
    /// The file is missing.
    Missing,
    /// Its content does not match the manifest.
    Corrupt,
    /// Something other than a regular file stands at its path.
    NotAFile,
    /// It could not be read (or hashed).
    Unreadable,
    /// Intact content, another mode than recorded.
    WrongMode,
    /// Intact content, another owner than recorded.
    WrongOwner,
    /// The golden copy of the file is damaged or missing.
    GoldenDamaged,
    /// No intact copy anywhere: the file cannot be restored.
    Lost,
    /// The committed version has no intact copy; the factory one is restored.
    FactoryFallback,
    /// A manifest slot of a writable replica is unusable.
    ManifestDamaged,
    /// A manifest slot is missing or behind the other's generation.
    ManifestOutdated,
    /// A parity record is damaged: never used, rewritten from an intact copy.
    ParityDamaged,
}

impl Problem {
    /// The name reports use (`not_a_file`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Problem::Missing => "missing",
            Problem::Corrupt => "corrupt",
            Problem::NotAFile => "not_a_file",
            Problem::Unreadable => "unreadable",
            Problem::WrongMode => "wrong_mode",
            Problem::WrongOwner => "wrong_owner",
            Problem::GoldenDamaged => "golden_damaged",
            Problem::Lost => "lost",
            Problem::FactoryFallback => "factory_fallback",
            Problem::ManifestDamaged => "manifest_damaged",
            Problem::ManifestOutdated => "manifest_outdated",
            Problem::ParityDamaged => "parity_damaged",
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How much of the golden copy a plan rests on. Reports must not claim more: a boot
/// that had nothing to restore from golden never read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GoldenCheck {
    /// Not read beyond its seal marker (a boot with nothing to restore from it).
    NotChecked,
    /// Only the files looked at as restore sources were read, each checked against
    /// the authoritative entry; its manifest was not read.
    SourcesOnly,
    /// Its manifest was read and its files listed; content was read only where a
    /// restore needed it (a boot that needed the golden manifest).
    Listed,
    /// Every golden file the authority names was hashed and checked against the
    /// golden manifest (`verify`).
    Checked,
}

/// The plan for one set.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub set: String,
    pub authority: Authority,
    /// The generation every writable replica will hold.
    pub generation: u64,
    pub tag: Option<i64>,
    pub files: usize,
    pub findings: Vec<Finding>,
    /// Files with no intact copy anywhere (exit status 3).
    pub lost: Vec<RelPath>,
    pub warnings: Vec<String>,
    pub actions: Vec<Action>,
    /// How much of the golden copy was looked at (`None`: the set has none).
    pub golden: Option<GoldenCheck>,
    /// The authoritative manifest after this plan. `None` also for a streamed boot
    /// of an intact set (docs/design.md section 3.2): the manifest on disk is the
    /// target, unchanged, and was not kept in memory.
    #[serde(skip)]
    pub manifest: Option<Arc<Manifest>>,
    /// The manifest an intentional change commits ([`Action::CommitManifest`], and
    /// the golden manifest a seal writes); most often the same as `manifest`.
    #[serde(skip)]
    pub committed: Option<Manifest>,
}

impl Plan {
    /// A plan with no authority that does nothing (the base of the early returns).
    fn nothing(set: &SetConfig, golden: Option<GoldenCheck>) -> Plan {
        Plan {
            set: set.name.clone(),
            authority: Authority::Empty,
            generation: 0,
            tag: None,
            files: 0,
            findings: Vec::new(),
            lost: Vec::new(),
            warnings: Vec::new(),
            actions: Vec::new(),
            golden,
            manifest: None,
            committed: None,
        }
    }

    /// Whether the plan changes anything protected (cleanup aside).
    pub fn repairs(&self) -> bool {
        self.actions.iter().any(|a| !a.is_cleanup())
    }
}

/// Why no plan can be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PlanError(pub String);

enum Choice<'s> {
    Chosen(Chosen<'s>),
    /// No manifest and no file anywhere.
    Nothing,
    /// The golden manifest is the authority, but it has not been read yet.
    NeedGolden,
}

struct Chosen<'s> {
    authority: Authority,
    /// Borrowed from the state when it is a replica's manifest: shared with the plan
    /// (never copied) unless the plan changes an entry.
    manifest: Cow<'s, Arc<Manifest>>,
    /// Changed from what any replica holds: needs a new generation.
    fresh: bool,
}

/// The generation a new manifest takes: above every intact manifest observed (golden's
/// included, once read; those of another hash algorithm too, or the older-algorithm
/// manifest would still look newest afterwards) and above every generation a damaged
/// slot still claims (read leniently: [`ReplicaState::generation_floor`]), so that no
/// generation is ever given to two different manifests, even after a damaged slot cost
/// the newest one.
///
/// # Errors
/// Only if an intact manifest already holds `u64::MAX` (a floor that large, read
/// from a damaged slot, is ignored rather than trusted).
pub fn next_generation(state: &SetState) -> Result<u64, PlanError> {
    let intact = state
        .replicas
        .iter()
        .flat_map(|r| [r.generation(), r.other_hash().map(|(_, g, _)| g)])
        .flatten()
        .max()
        .unwrap_or(0);
    let floor = state
        .replicas
        .iter()
        .filter_map(|r| r.generation_floor)
        .max()
        .unwrap_or(0);
    intact
        .max(floor)
        .checked_add(1)
        .or_else(|| intact.checked_add(1))
        .ok_or_else(|| {
            PlanError(format!(
                "set `{}`: a manifest holds the largest possible generation ({intact}); no newer one can be written (remove the set's .rebound/{}/ manifests and seal again)",
                state.set, state.set
            ))
        })
}

/// One rule for both modes: the newest intact manifest of the set (of every replica
/// read so far, golden included) must use the configured hash algorithm. A manifest of
/// another algorithm is intact, not absent: treating it as absent re-adopted the first
/// mirror replica (a corrupt file there was copied over the good backup) or fell back
/// to the factory copy. The set is refused instead, naming the manifest, both
/// algorithms and the two ways out. An older manifest of another algorithm (the slot a
/// `seal --force` under the new algorithm has not overwritten yet) is ignored.
fn refuse_other_hash(set: &SetConfig, state: &SetState) -> Result<(), PlanError> {
    let newest_same = state
        .replicas
        .iter()
        .filter_map(ReplicaState::generation)
        .max();
    let newest_other = state
        .replicas
        .iter()
        .filter_map(|r| r.other_hash().map(|(slot, g, h)| (r, slot, g, h)))
        .max_by_key(|(_, _, g, _)| *g);
    let Some((r, slot, g, h)) = newest_other else {
        return Ok(());
    };
    if newest_same.is_some_and(|s| s > g) {
        return Ok(());
    }
    let name = match r.role {
        Role::Writable => crate::names::MANIFEST_SLOTS
            .get(slot)
            .copied()
            .unwrap_or("manifest"),
        Role::Golden => GOLDEN_MANIFEST,
    };
    Err(PlanError(format!(
        "{}: intact manifest (generation {g}) uses {h}, but the set is configured for {}; nothing was done (it is never taken as absent: that would adopt or restore unverified files). Set `hash = \"{h}\"` back in the configuration, or check the current files and run `rebound seal --force {}` to record them with {} deliberately",
        r.root.join(RelPath::meta(&set.name, name).as_str()).display(),
        set.hash,
        set.name,
        set.hash
    )))
}

/// Records, for every entry of `m` whose owner is not recorded (read from a format 1
/// manifest), the owner of the first writable replica's file that verifies against
/// it. An entry with no verified copy stays without one.
pub(crate) fn learn_owners(m: &mut Manifest, state: &SetState) {
    for (p, e) in m.entries.iter_mut().filter(|(_, e)| e.owner.is_none()) {
        e.owner = state
            .replicas
            .iter()
            .filter(|r| r.role == Role::Writable)
            .find_map(|r| match r.files.get(p) {
                Some(FileState::File {
                    owner,
                    digest: Some(d),
                    ..
                }) if *d == e.digest => Some(*owner),
                _ => None,
            });
    }
}

/// Builds a manifest from a replica's current selected files.
fn adopt_files(
    set: &SetConfig,
    r: &ReplicaState,
    warnings: &mut Vec<String>,
) -> BTreeMap<RelPath, Entry> {
    let mut entries = BTreeMap::new();
    let mut links: Vec<&str> = Vec::new();
    for (p, s) in &r.files {
        if !set.selects(p) {
            continue;
        }
        match s {
            f @ FileState::File {
                digest: Some(_), ..
            } => {
                entries.extend(f.entry().map(|e| (p.clone(), e)));
            }
            FileState::Missing => {}
            FileState::NotFile { kind } if kind == "symbolic link" && set.links == Links::Skip => {
                links.push(p.as_str());
            }
            other => warnings.push(format!(
                "{}: not adopted ({})",
                r.root.join(p.as_str()).display(),
                describe(other)
            )),
        }
    }
    if !links.is_empty() {
        warnings.push(format!(
            "{} symbolic link{} in {} left unprotected (links = \"skip\"): {}",
            links.len(),
            if links.len() == 1 { "" } else { "s" },
            r.root.display(),
            links.join(", ")
        ));
    }
    entries
}

/// Removes every entry that lies below another entry (`f/...` where `f` is a file of
/// the same manifest), saying so. No copy can hold `f` as a file and `f/x` at once, so
/// a manifest naming both would make every boot fail. The file nearer the root wins:
/// whether it is a kept previous file with adopted files under it (a directory left at
/// its path) or an adopted file over kept previous ones (an upgrade that turned a
/// directory into a file).
fn drop_entries_below_files(
    entries: &mut BTreeMap<RelPath, Entry>,
    root: &std::path::Path,
    warnings: &mut Vec<String>,
) {
    let names: BTreeSet<&str> = entries.keys().map(RelPath::as_str).collect();
    let below: Vec<(RelPath, String)> = entries
        .keys()
        .filter_map(|p| {
            let s = p.as_str();
            s.match_indices('/')
                .map(|(i, _)| &s[..i])
                .find(|f| names.contains(f))
                .map(|f| (p.clone(), f.to_string()))
        })
        .collect();
    for (p, f) in below {
        entries.remove(&p);
        warnings.push(format!(
            "{}: not adopted: it lies inside {f}, which this version holds as a file",
            root.join(p.as_str()).display()
        ));
    }
}

/// What an upgrade adopted from `root` changes against the previous manifest. An
/// upgrade makes that copy's content the truth, including a file that changed there
/// without the upgrade writing it (bit rot in that copy), so the report names every
/// changed, added and removed file for the device's log.
fn upgrade_summary(
    before: &BTreeMap<RelPath, Entry>,
    after: &BTreeMap<RelPath, Entry>,
    root: &std::path::Path,
    tag: i64,
) -> String {
    const SHOWN: usize = 10;
    let changed: Vec<&str> = after
        .iter()
        .filter(|(p, e)| before.get(*p).is_some_and(|b| b.digest != e.digest))
        .map(|(p, _)| p.as_str())
        .collect();
    let added: Vec<&str> = after
        .keys()
        .filter(|p| !before.contains_key(*p))
        .map(RelPath::as_str)
        .collect();
    let removed: Vec<&str> = before
        .keys()
        .filter(|p| !after.contains_key(*p))
        .map(RelPath::as_str)
        .collect();
    let list = |what: &str, v: &[&str]| {
        if v.is_empty() {
            return format!("0 {what}");
        }
        let more = v.len().saturating_sub(SHOWN);
        let names = v.iter().take(SHOWN).copied().collect::<Vec<_>>().join(", ");
        if more > 0 {
            format!("{} {what} ({names}, and {more} more)", v.len())
        } else {
            format!("{} {what} ({names})", v.len())
        }
    };
    format!(
        "upgrade to version tag {tag} adopted from {}: {}, {}, {}; every change of that copy is taken as the upgrade's",
        root.display(),
        list("changed", &changed),
        list("added", &added),
        list("removed", &removed)
    )
}

fn describe(s: &FileState) -> String {
    match s {
        FileState::Missing => "missing".into(),
        FileState::File { .. } => "regular file".into(),
        FileState::NotFile { kind } => format!("is a {kind}, not a regular file"),
        FileState::Unreadable { error } => error.clone(),
    }
}

/// The writable replica holding the intact manifest with the highest generation (the
/// first of equals), and that manifest.
fn highest_manifest(state: &SetState) -> Option<(&ReplicaState, &Arc<Manifest>)> {
    state
        .replicas
        .iter()
        .filter(|r| r.role == Role::Writable)
        .filter_map(|r| r.manifest.as_ref().map(|m| (r, m)))
        .fold(
            None,
            |acc: Option<(&ReplicaState, &Arc<Manifest>)>, (r, m)| match acc {
                Some((_, am)) if am.generation >= m.generation => acc,
                _ => Some((r, m)),
            },
        )
}

/// Chooses the authority: one case after the other, as the first table of
/// docs/design.md section 3 lists them. The first that applies decides.
fn choose<'s>(
    set: &SetConfig,
    state: &'s SetState,
    warnings: &mut Vec<String>,
) -> Result<Choice<'s>, PlanError> {
    refuse_other_hash(set, state)?;
    for r in state.replicas.iter().filter(|r| r.role == Role::Writable) {
        if let TagState::Invalid(why) = &r.tag {
            warnings.push(format!("version tag ignored: {why}"));
        }
    }
    let best = highest_manifest(state);
    if let Some(c) = upgrade_by_tag(set, state, best.map(|(r, m)| (r, &**m)), warnings)? {
        return Ok(Choice::Chosen(c));
    }
    if let Some((r, m)) = best {
        return Ok(Choice::Chosen(Chosen {
            authority: Authority::Manifest {
                root: r.root.clone(),
                generation: m.generation,
            },
            manifest: Cow::Borrowed(m),
            fresh: false,
        }));
    }
    if let Some(c) = golden_fallback(set, state)? {
        return Ok(c);
    }
    adopt_first_run(set, state, warnings)
}

/// Case "upgrade by tag" (mirror sets with a version file): a writable replica whose
/// tag is above the authoritative manifest's had an external upgrade; its files become
/// the truth at a new generation. `None` if no tag is higher, or the replica with the
/// higher tag holds no file at all.
fn upgrade_by_tag<'s>(
    set: &SetConfig,
    state: &'s SetState,
    best: Option<(&'s ReplicaState, &'s Manifest)>,
    warnings: &mut Vec<String>,
) -> Result<Option<Chosen<'s>>, PlanError> {
    if set.version_file.is_none() {
        return Ok(None);
    }
    let tag_a = best.and_then(|(_, m)| m.tag).unwrap_or(-1);
    let upgraded = state
        .replicas
        .iter()
        .filter(|r| r.role == Role::Writable)
        .filter_map(|r| match r.tag {
            TagState::Value(t) if t > tag_a => Some((r, t)),
            _ => None,
        })
        .fold(None::<(&ReplicaState, i64)>, |acc, (r, t)| match acc {
            Some((_, at)) if at >= t => acc,
            _ => Some((r, t)),
        });
    let Some((r, t)) = upgraded else {
        return Ok(None);
    };
    // IMPORTANT: with a device key the tag is not authenticated (the vendor's updater
    // writes it without the key): adopting files on its word would let whoever can
    // write the partition install files by bumping it. The authenticated manifest
    // stays the authority; upgrades go through `rebound update` (docs/design.md 2.3).
    if set.key.key.is_some() {
        if best.is_some() {
            warnings.push(format!(
                "version tag {t} in {} not adopted: with a device key a version tag is not authenticated; install upgrades with `rebound update` (the copy is brought back to the manifest)",
                r.root.display()
            ));
        }
        return Ok(None);
    }
    if !holds_files(r) {
        // A tag with no files: with no manifest anywhere, nothing to adopt yet.
        // IMPORTANT: with a manifest, this is a copy cut off before its files (the
        // vendor's note 1: the tag reached the flash, the files did not). Adopting it
        // would remove every file of the other copies, the last intact ones; the
        // manifest stays the authority and the copy is refilled.
        if best.is_some() {
            warnings.push(format!(
                "version tag {t} in {} not adopted: that copy holds none of the protected files (a copy or upgrade cut off before its files were written); it is refilled from the manifest instead",
                r.root.display()
            ));
        }
        return Ok(None);
    }
    let mut m = Manifest::new(&set.name, next_generation(state)?, set.hash, Some(t));
    m.entries = adopt_files(set, r, warnings);
    // IMPORTANT: a file the upgraded copy holds but cannot offer (a link, a directory,
    // an unreadable file) is not dropped by the upgrade: dropping it would remove the
    // other copies' intact ones, maybe the last. The previous entry stays, and the
    // copy is repaired from the others.
    if let Some((_, bm)) = best {
        for (p, e) in &bm.entries {
            if matches!(
                r.files.get(p),
                Some(FileState::NotFile { .. } | FileState::Unreadable { .. })
            ) {
                m.entries.entry(p.clone()).or_insert_with(|| e.clone());
            }
        }
        drop_entries_below_files(&mut m.entries, &r.root, warnings);
        warnings.push(upgrade_summary(&bm.entries, &m.entries, &r.root, t));
    }
    let root = r.root.clone();
    Ok(Some(Chosen {
        authority: if best.is_some() {
            Authority::Upgrade { root, tag: t }
        } else {
            Authority::Adopt { root }
        },
        manifest: Cow::Owned(Arc::new(m)),
        fresh: true,
    }))
}

fn holds_files(r: &ReplicaState) -> bool {
    r.files
        .values()
        .any(|f| matches!(f, FileState::File { .. }))
}

/// Case "golden fallback": no writable replica has an intact manifest; the golden
/// manifest is the authority (the seed's "copy checksum.json from the backup
/// partition"). `None` for a set without a golden copy.
fn golden_fallback<'s>(
    set: &SetConfig,
    state: &'s SetState,
) -> Result<Option<Choice<'s>>, PlanError> {
    let Some(g) = state.replicas.iter().find(|r| r.role == Role::Golden) else {
        return Ok(None);
    };
    if !g.root_exists {
        return Err(PlanError(format!(
            "no intact manifest in any writable replica, and the golden copy {} does not exist (is its partition mounted?)",
            g.root.display()
        )));
    }
    if !g.sealed {
        return Err(PlanError(format!(
            "golden copy {} is not sealed (no {} marker): run `rebound seal {}` at the factory step",
            g.root.display(),
            crate::names::SEALED_MARKER,
            set.name
        )));
    }
    if g.observed == Observed::Lazy {
        return Ok(Some(Choice::NeedGolden));
    }
    match &g.manifest {
        Some(m) => Ok(Some(Choice::Chosen(Chosen {
            authority: Authority::Golden {
                root: g.root.clone(),
            },
            manifest: Cow::Borrowed(m),
            fresh: false,
        }))),
        None => Err(PlanError(format!(
            "no intact manifest in any replica (golden manifest in {}: {}); reflash the golden copy or reseal",
            g.root.display(),
            match g.slots.first() {
                Some(SlotState::Damaged(why)) => why.clone(),
                _ => "missing".into(),
            }
        ))),
    }
}

/// Case "adopt" (a mirror set's first run): the replica with the highest tag, else
/// the first one holding any file, becomes the truth. [`Choice::Nothing`] when no
/// replica holds a file.
fn adopt_first_run<'s>(
    set: &SetConfig,
    state: &'s SetState,
    warnings: &mut Vec<String>,
) -> Result<Choice<'s>, PlanError> {
    let tag = |r: &ReplicaState| match r.tag {
        TagState::Value(v) => Some(v),
        _ => None,
    };
    let pick = state
        .replicas
        .iter()
        .filter(|r| r.role == Role::Writable && holds_files(r))
        .fold(None::<&ReplicaState>, |acc, r| match acc {
            Some(a) if tag(a).unwrap_or(-1) >= tag(r).unwrap_or(-1) => acc,
            _ => Some(r),
        });
    let Some(r) = pick else {
        return Ok(Choice::Nothing);
    };
    // IMPORTANT: with a device key, files are adopted only on a real first run (no
    // manifest slot present in any writable copy). Slots that are there but not
    // authenticated (tampered with, written without the key, or torn) are no reason to
    // trust the files beside them.
    // A manifest slot is there in some writable copy (intact or not): not a first run.
    let present = state
        .replicas
        .iter()
        .filter(|r| r.role == Role::Writable)
        .flat_map(|r| r.slots.iter())
        .any(|s| !matches!(s, SlotState::Missing));
    if set.key.key.is_some() && present {
        return Err(PlanError(
            "no writable copy has a manifest authenticated by the device key, and there is no golden copy: the files are not adopted (they may have been tampered with). If the key was just turned on, rekey under the configuration without it first (`rebound rekey --key PATH`, docs/design.md 2.3); to accept the files as they are, `rebound seal --force` this set".into(),
        ));
    }
    // IMPORTANT: a parity set's manifests live in its one copy, beside its files: one
    // fault that damaged both slots may have damaged files too. Adopting them would make
    // a damaged file the truth and remove the record of its committed content, the
    // only thing left that can repair it. With slots there but none intact, and records
    // of earlier content, nothing is adopted: the set is refused, everything kept.
    if set.mode == crate::config::Mode::Parity {
        let records = state.parity.as_ref().map_or(0, |p| p.records.len());
        if present && records > 0 {
            return Err(PlanError(format!(
                "no intact manifest in the copy {} (its slots are damaged), and the parity directory holds {records} record{} of committed content: the files are not adopted as they are (a damaged file would become the truth and lose the record that can repair it); nothing was done. Check the files; to accept them as they are, `rebound seal {}`",
                r.root.display(),
                if records == 1 { "" } else { "s" },
                set.name
            )));
        }
    }
    // The manifests of a parity set live in its one copy: a copy that lost them (a
    // reformatted partition, reflashed files) looks like a first run. The records of
    // earlier content say it is not; the files are adopted as they are (nothing else
    // can vouch for them), and the report says so.
    if let Some(n) = state
        .parity
        .as_ref()
        .map(|p| p.records.len())
        .filter(|n| *n > 0)
    {
        warnings.push(format!(
            "no manifest in any copy, but the parity directory holds {n} record{} of earlier content: the copy's manifests were lost (a reformatted or reflashed partition?); its files are adopted as they are, unchecked, and those records are removed",
            if n == 1 { "" } else { "s" }
        ));
    }
    let mut m = Manifest::new(&set.name, next_generation(state)?, set.hash, tag(r));
    m.entries = adopt_files(set, r, warnings);
    Ok(Choice::Chosen(Chosen {
        authority: Authority::Adopt {
            root: r.root.clone(),
        },
        manifest: Cow::Owned(Arc::new(m)),
        fresh: true,
    }))
}

/// What a plan still needs read before it can be made: golden files to hash
/// ([`crate::observe::hash_on_demand`]) and the golden manifest
/// ([`crate::observe::observe_golden`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Need {
    pub hash: Vec<(usize, RelPath)>,
    pub golden: bool,
    /// Damaged copies to compare with the parity record of their content
    /// ([`crate::parity_store::check_fits`]).
    pub parity: Vec<(usize, RelPath, Digest, u64)>,
}

/// A plan, or what must be read before it can be made. Only a complete plan can be
/// carried out: an incomplete one does not exist.
#[derive(Debug, Clone)]
pub enum Planned<T = Plan> {
    Complete(T),
    Need(Need),
}

impl<T> Planned<T> {
    /// The complete plan turned into something else (a change's plan around it).
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Planned<U> {
        match self {
            Planned::Complete(t) => Planned::Complete(f(t)),
            Planned::Need(n) => Planned::Need(n),
        }
    }
}

/// Makes the plan for a set. Pure: reads only `state`. The plan is complete, or says
/// what must be read first ([`Planned::Need`]): read it and plan again.
///
/// # Errors
/// [`PlanError`] when no authoritative manifest can be chosen (golden not sealed,
/// every manifest damaged).
pub fn plan(set: &SetConfig, state: &SetState) -> Result<Planned, PlanError> {
    let mut warnings = observed_problems(state);
    let golden = golden_check(state);
    match choose(set, state, &mut warnings)? {
        Choice::Chosen(c) => plan_to(set, state, c, warnings, golden),
        Choice::NeedGolden => Ok(Planned::Need(Need {
            golden: true,
            ..Need::default()
        })),
        Choice::Nothing => {
            // A parity set's copy gone with its manifests (a reformatted or unmounted
            // partition) while its parity directory knew its files: a loss, not a
            // set with nothing to protect.
            if let Some(n) = state
                .parity
                .as_ref()
                .map(|p| p.records.len())
                .filter(|n| *n > 0)
            {
                return Err(PlanError(format!(
                    "no manifest and no included file in the copy, but the parity directory holds {n} record{} of earlier content: the copy's files and manifests are gone (a reformatted or unmounted partition?) and cannot be rebuilt from parity alone; nothing was done. If the set is meant to start empty, remove {}",
                    if n == 1 { "" } else { "s" },
                    state.parity.as_ref().map_or_else(String::new, |p| {
                        crate::fs::full(&p.root, &RelPath::meta_dir(&set.name))
                            .display()
                            .to_string()
                    })
                )));
            }
            warnings.push(format!(
                "set `{}`: no manifest and no included file in any replica; nothing is protected yet",
                set.name
            ));
            Ok(Planned::Complete(Plan {
                warnings,
                actions: state_junk(state),
                ..Plan::nothing(set, golden)
            }))
        }
    }
}

/// The plan that makes `target` the truth: an intentional change (`commit --remove`)
/// decided by the engine, carried out like any boot (files, then manifests, then
/// removals, tags and staged content; docs/design.md section 3.1). `target`'s
/// generation must exceed every generation observed (golden's included). Pure.
///
/// # Errors
/// As [`next_generation`], when the plan needs a newer generation than `target`'s.
pub fn plan_change(
    set: &SetConfig,
    state: &SetState,
    target: Manifest,
) -> Result<Planned, PlanError> {
    let chosen = Chosen {
        authority: Authority::Change {
            generation: target.generation,
        },
        manifest: Cow::Owned(Arc::new(target)),
        fresh: true,
    };
    plan_to(
        set,
        state,
        chosen,
        observed_problems(state),
        golden_check(state),
    )
}

/// Entries that the include/exclude patterns no longer select (the configuration was
/// narrowed since they were recorded) are released: the new generation drops them,
/// their files are left exactly as they are (never restored, never removed), and the
/// golden copy is never used for them. Reported once: the next generation does not
/// name them. Returns whether any was released.
fn release_unselected(
    set: &SetConfig,
    target: &mut Cow<'_, Manifest>,
    warnings: &mut Vec<String>,
) -> bool {
    let released: Vec<RelPath> = target
        .entries
        .keys()
        .filter(|p| !set.selects(p))
        .cloned()
        .collect();
    if released.is_empty() {
        return false;
    }
    const SHOWN: usize = 10;
    let names: Vec<&str> = released.iter().take(SHOWN).map(|p| p.as_str()).collect();
    warnings.push(format!(
        "released {} file(s) that the include/exclude patterns no longer select: {}{}; they are left as they are and no longer protected",
        released.len(),
        names.join(", "),
        if released.len() > SHOWN {
            format!(", and {} more", released.len() - SHOWN)
        } else {
            String::new()
        }
    ));
    let t = target.to_mut();
    for p in &released {
        t.entries.remove(p);
    }
    true
}

/// A golden copy that was read but whose manifest is damaged or gone has lost the
/// factory fallback, even while every writable copy is intact: say so (verify exits
/// 1 on it). Nothing is written to golden; only reflashing it repairs this.
fn golden_manifest_findings(set: &SetConfig, state: &SetState) -> Vec<Finding> {
    let Some(g) = state.replicas.iter().find(|r| r.role == Role::Golden) else {
        return Vec::new();
    };
    let detail = if !g.root_exists {
        "the golden copy does not exist (is its partition mounted?): there is no factory fallback"
            .to_string()
    } else if g.observed == Observed::Full && g.manifest.is_none() {
        let why = match g.slots.first() {
            Some(SlotState::Damaged(d)) => format!("damaged ({d})"),
            Some(SlotState::OtherHash { hash, .. }) => format!(
                "of another hash algorithm ({hash}, the set is configured for {})",
                set.hash
            ),
            _ => "missing".to_string(),
        };
        format!(
            "the golden manifest is {why}: the factory copy cannot be verified or used (reflash the golden image)"
        )
    } else {
        return Vec::new();
    };
    vec![Finding {
        root: g.root.clone(),
        path: RelPath::meta(&set.name, GOLDEN_MANIFEST),
        problem: Problem::GoldenDamaged,
        detail,
    }]
}

/// What a path's decision reads besides the path's own row: the set, the state, and
/// where the golden copy stands.
struct PathContext<'s> {
    set: &'s SetConfig,
    state: &'s SetState,
    golden_idx: Option<usize>,
    golden_manifest: Option<&'s Manifest>,
    golden_lazy: bool,
    /// The authority's entries and generation (what may be moved aside, and where to).
    names: &'s BTreeMap<RelPath, Entry>,
    generation: u64,
    /// `verify`: compare every damaged copy with its parity record.
    analyze_parity: bool,
}

/// What the plan does about one path of the authority: a pure function of that path's
/// states across the replicas ([`decide_path`]).
#[derive(Debug, Default)]
struct PathDecision {
    /// The factory entry the target takes instead of the authority's (no intact copy
    /// of the committed version is left).
    fallback: Option<Entry>,
    findings: Vec<Finding>,
    /// Moves aside, restores and metadata fixes, in replica order.
    actions: Vec<Action>,
    need: Need,
    lost: bool,
}

/// Decides one path: where its content comes from (a verified writable copy, staged
/// content, golden; else the factory version; else it is lost), what is wrong with it
/// in each replica, and the writes that repair it. `row` holds each replica's state of
/// the path (`None`: not in its map).
fn decide_path(
    cx: &PathContext<'_>,
    path: &RelPath,
    entry: &Entry,
    row: &[Option<&FileState>],
) -> PathDecision {
    let mut d = PathDecision::default();
    // An intact full copy first, then parity, then golden (docs/design.md 3).
    let copy = find_copy(cx.state, cx.set, row, path, entry);
    let rebuilt = match &copy {
        Some(_) if !cx.analyze_parity => Rebuilt::Nothing,
        _ => parity_sources(cx, path, entry, row, &mut d.need.parity),
    };
    let (rebuilt, source) = match (rebuilt, copy) {
        (_, Some(c)) => (None, Some(c)),
        (Rebuilt::Sources(v), None) => (Some(v), None),
        // Compared with parity first: golden is read only if parity cannot help.
        (Rebuilt::Pending, None) => return d,
        (Rebuilt::Nothing, None) => (
            None,
            find_golden(cx.state, row, path, entry, &mut d.need.hash),
        ),
    };
    if let Some(rebuilt) = rebuilt {
        repair_copies(
            cx,
            path,
            entry,
            row,
            &|i| rebuilt.get(i).cloned().flatten(),
            true,
            &mut d,
        );
        return d;
    }
    let (entry, source) = match source {
        Some(s) => (entry.clone(), Some(s)),
        // The fallback needs the golden manifest: ask for it, unless a golden file
        // still waits to be hashed (it may turn out to be the source).
        None if cx.golden_lazy => {
            d.need.golden = d.need.hash.is_empty();
            (entry.clone(), None)
        }
        // The seed's behaviour: fall back to the factory version.
        None => match factory_version(cx, row, path, &mut d.need.hash) {
            Some((ge, src)) if ge != *entry => {
                d.findings.push(Finding {
                    root: src.root.clone(),
                    path: path.clone(),
                    problem: Problem::FactoryFallback,
                    detail: "no copy of the committed version is intact; restoring the factory (golden) version".into(),
                });
                d.fallback = Some(ge.clone());
                (ge, Some(src))
            }
            Some((ge, src)) => (ge, Some(src)),
            None => (entry.clone(), None),
        },
    };
    repair_copies(cx, path, &entry, row, &|_| source.clone(), false, &mut d);
    // Lost only once nothing about this path is still to be read.
    if source.is_none() && d.need.hash.is_empty() && !cx.golden_lazy {
        d.lost = true;
        d.findings.push(Finding {
            root: cx.state.replicas[0].root.clone(),
            path: path.clone(),
            problem: Problem::Lost,
            detail: "no replica holds an intact copy; left as it is".into(),
        });
    }
    d
}

/// What parity can do for one path with no intact full copy.
enum Rebuilt {
    /// No usable record (or no parity directory), or no copy fits it.
    Nothing,
    /// Damaged copies were asked to be compared with the record (`Need::parity`).
    Pending,
    /// Per replica: where its content comes from (the record, or the first copy
    /// rebuilt from it, once rebuilt); `None` for intact copies and golden.
    Sources(Vec<Option<Source>>),
}

/// Parity as the source of `entry`'s damaged copies: each copy whose own intact blocks
/// and the record's recovery blocks suffice is rebuilt from them; the others are
/// copied from the first rebuilt one. Copies not compared with the record yet are
/// asked for (`need`).
fn parity_sources(
    cx: &PathContext<'_>,
    path: &RelPath,
    entry: &Entry,
    row: &[Option<&FileState>],
    need: &mut Vec<(usize, RelPath, Digest, u64)>,
) -> Rebuilt {
    let Some(ps) = cx.state.parity.as_ref().filter(|p| p.root_exists) else {
        return Rebuilt::Nothing;
    };
    match ps.records.get(&entry.digest) {
        // A record for other content than its name says (its size) is no source.
        Some(RecordState::Intact(l)) if l.size != entry.size => return Rebuilt::Nothing,
        Some(r) if r.usable() => {}
        _ => return Rebuilt::Nothing,
    }
    let rel = record_rel(&cx.set.name, &entry.digest);
    let mut out: Vec<Option<Source>> = vec![None; row.len()];
    let mut pending = false;
    for (i, (r, fs)) in cx.state.replicas.iter().zip(row).enumerate() {
        if r.role != Role::Writable || fs.and_then(FileState::digest) == Some(entry.digest) {
            continue;
        }
        match ps.fits.get(&(i, path.clone())) {
            None => {
                need.push((i, path.clone(), entry.digest, entry.size));
                pending = true;
            }
            Some(Ok(f)) if f.recoverable => {
                out[i] = Some(Source {
                    root: ps.root.clone(),
                    rel: rel.clone(),
                    kind: SourceKind::Parity,
                });
            }
            Some(_) => {}
        }
    }
    if pending {
        return Rebuilt::Pending;
    }
    let Some(first) = out.iter().position(Option::is_some) else {
        return Rebuilt::Nothing;
    };
    let chained = Source {
        root: cx.state.replicas[first].root.clone(),
        rel: path.clone(),
        kind: SourceKind::Writable,
    };
    for (i, (r, fs)) in cx.state.replicas.iter().zip(row).enumerate() {
        if r.role == Role::Writable
            && out[i].is_none()
            && fs.and_then(FileState::digest) != Some(entry.digest)
        {
            out[i] = Some(chained.clone());
        }
    }
    Rebuilt::Sources(out)
}

/// What is wrong with each replica's copy of a path, and the writes that repair it from
/// `sources` (per replica). Intact content gets its mode and owner fixed
/// ([`fix_meta`]); a damaged copy gets a finding (with what parity could do, if it was
/// compared) and, with a source (`source_of` the replica's index: asked only for a
/// damaged copy), a move aside of what is in its way and a `Restore`.
/// `rebuilt` (sources from parity, [`Rebuilt`]): the rebuilds first, then the copies
/// taken from a rebuilt one; otherwise in replica order.
fn repair_copies(
    cx: &PathContext<'_>,
    path: &RelPath,
    entry: &Entry,
    row: &[Option<&FileState>],
    source_of: &dyn Fn(usize) -> Option<Source>,
    rebuilt: bool,
    d: &mut PathDecision,
) {
    let mut later = Vec::new();
    for (i, (r, fs)) in cx.state.replicas.iter().zip(row).enumerate() {
        let fs = fs.cloned().unwrap_or(FileState::Missing);
        if r.role == Role::Golden {
            // A lazily read golden copy was read only as a source: nothing to say.
            if r.observed != Observed::Lazy {
                let ge = cx.golden_manifest.and_then(|m| m.entries.get(path));
                d.findings.extend(golden_file_finding(r, path, ge, &fs));
            }
            continue;
        }
        if fs.digest() == Some(entry.digest) {
            // Intact content; its permission bits and owner must be the recorded ones
            // too (a setuid bit added, a file made unreadable, a config handed to
            // root). An owner not recorded (format 1) is not checked.
            d.actions
                .extend(fix_meta(r, path, entry, &fs, &mut d.findings));
            continue;
        }
        let mut finding = damage_finding(r, path, entry, &fs);
        add_fit(cx, r, path, &mut finding);
        d.findings.push(finding);
        let Some(src) = source_of(i) else { continue };
        let to = if !rebuilt || src.kind == SourceKind::Parity {
            &mut d.actions
        } else {
            &mut later
        };
        to.extend(move_aside(cx.set, r, path, cx.names, cx.generation));
        to.push(Action::Restore {
            root: r.root.clone(),
            path: path.clone(),
            from: src,
            digest: entry.digest,
            size: entry.size,
            mode: entry.mode,
            prior: Prior::of(Some(&fs)),
            owner: entry.owner,
        });
    }
    d.actions.extend(later);
}

/// Adds to a damaged copy's finding what its parity record can do for it, if it was
/// compared with one (`verify` compares every damaged copy).
fn add_fit(cx: &PathContext<'_>, r: &ReplicaState, path: &RelPath, f: &mut Finding) {
    let Some(ps) = &cx.state.parity else { return };
    let Some(ri) = cx.state.replicas.iter().position(|x| std::ptr::eq(x, r)) else {
        return;
    };
    if let Some(fit) = ps.fits.get(&(ri, path.clone())) {
        f.detail = format!("{}; {}", f.detail, describe_fit(fit));
    }
}

/// The factory version of `path`: golden's entry and the golden file as source, if it
/// verifies against it. A golden file not hashed yet is asked for (`need_hash`).
fn factory_version(
    cx: &PathContext<'_>,
    row: &[Option<&FileState>],
    path: &RelPath,
    need_hash: &mut Vec<(usize, RelPath)>,
) -> Option<(Entry, Source)> {
    let gi = cx.golden_idx?;
    let ge = cx.golden_manifest?.entries.get(path)?;
    match row[gi] {
        Some(FileState::File { digest: None, .. }) => {
            need_hash.push((gi, path.clone()));
            None
        }
        Some(FileState::File {
            digest: Some(d), ..
        }) if *d == ge.digest => Some((ge.clone(), golden_source(&cx.state.replicas[gi], path))),
        _ => None,
    }
}

/// What is wrong with golden's copy of a file its manifest names (`ge`), if anything.
fn golden_file_finding(
    g: &ReplicaState,
    path: &RelPath,
    ge: Option<&Entry>,
    fs: &FileState,
) -> Option<Finding> {
    let detail = match (ge?, fs) {
        (
            ge,
            FileState::File {
                digest: Some(d), ..
            },
        ) if *d != ge.digest => "the golden copy does not match the golden manifest; it is not used (reflash the golden image)".to_string(),
        (_, FileState::Missing) => "missing from the golden copy".to_string(),
        // A link (never followed), a directory or an unreadable file in the golden
        // copy is as unusable as a corrupt one: report it, never use it.
        (_, FileState::NotFile { .. } | FileState::Unreadable { .. }) => format!(
            "unusable in the golden copy ({}); it is not used (reflash the golden image)",
            describe(fs)
        ),
        _ => return None,
    };
    Some(Finding {
        root: g.root.clone(),
        path: path.clone(),
        problem: Problem::GoldenDamaged,
        detail,
    })
}

/// The finding for a writable replica's copy of a file that does not hold `entry`.
fn damage_finding(r: &ReplicaState, path: &RelPath, entry: &Entry, fs: &FileState) -> Finding {
    let (problem, detail) = match fs {
        FileState::Missing => (Problem::Missing, "file is missing".to_string()),
        FileState::File {
            digest: Some(d), ..
        } => (
            Problem::Corrupt,
            format!(
                "content does not match the manifest (expected {}, found {d})",
                entry.digest
            ),
        ),
        FileState::File { digest: None, .. } => (Problem::Unreadable, "not hashed".to_string()),
        FileState::NotFile { kind } => (
            Problem::NotAFile,
            format!("is a {kind}, not a regular file"),
        ),
        FileState::Unreadable { error } => (Problem::Unreadable, error.clone()),
    };
    Finding {
        root: r.root.clone(),
        path: path.clone(),
        problem,
        detail,
    }
}

/// Every path of the authority decided: the findings, the content actions (in path
/// order), the lost paths, what must still be read, and the target after factory
/// fallbacks (`fresh` when one changed it).
struct Content {
    findings: Vec<Finding>,
    actions: Vec<Action>,
    lost: Vec<RelPath>,
    need: Need,
    fallbacks: Vec<(RelPath, Entry)>,
}

fn decide_paths(cx: &PathContext<'_>, base: &Manifest) -> Content {
    let mut out = Content {
        findings: Vec::new(),
        actions: Vec::new(),
        lost: Vec::new(),
        need: Need::default(),
        fallbacks: Vec::new(),
    };
    // Every map here is sorted by path, and the authority's entries are visited in
    // that order: one forward cursor per replica finds each path's state in a step or
    // two instead of a tree lookup per replica per path.
    let mut cursors: Vec<Seek<'_, FileState>> = cx
        .state
        .replicas
        .iter()
        .map(|r| Seek::new(&r.files))
        .collect();
    let mut row: Vec<Option<&FileState>> = vec![None; cx.state.replicas.len()];
    // Released paths (no longer selected) are skipped: see `release_unselected`.
    for (path, entry) in base.entries.iter().filter(|(p, _)| cx.set.selects(p)) {
        for (slot, c) in row.iter_mut().zip(cursors.iter_mut()) {
            *slot = c.seek(path);
        }
        let d = decide_path(cx, path, entry, &row);
        out.findings.extend(d.findings);
        out.actions.extend(d.actions);
        out.need.hash.extend(d.need.hash);
        out.need.parity.extend(d.need.parity);
        out.need.golden |= d.need.golden;
        if d.lost {
            out.lost.push(path.clone());
        }
        if let Some(e) = d.fallback {
            out.fallbacks.push((path.clone(), e));
        }
    }
    out
}

/// IMPORTANT: a damaged slot that claims a generation above the authority's may have
/// held a newer manifest (two faults: a cut between the two slot writes, then damage
/// to the slot written first). Rewriting it with the older generation would erase the
/// claim, and a later commit would reuse that generation for different content: the
/// authority is written again at a generation above the claim. Returns the warning.
fn claimed_above(state: &SetState, generation: u64) -> Option<String> {
    let (r, g) = state
        .replicas
        .iter()
        .filter(|r| r.role == Role::Writable)
        .filter_map(|r| r.generation_floor.map(|g| (r, g)))
        .max_by_key(|(_, g)| *g)
        .filter(|(_, g)| *g > generation)?;
    Some(format!(
        "a damaged manifest slot in {} claims generation {g}, above the newest intact one ({generation}): a newer generation may have been lost with it; the intact content is written again under a newer generation, so that {g} is never reused",
        r.root.display()
    ))
}

/// The manifest writes and removals of one writable replica.
struct ReplicaWrites {
    ri: usize,
    /// It holds the target already: only its slots that do not are rewritten.
    same: bool,
    writes: Vec<Action>,
    /// Files its own manifest names that the target drops, holding the recorded
    /// content: removed (after a manifest of the target is durable somewhere).
    stale: Vec<Action>,
}

/// Per writable replica: the slots to write, the files to remove, and findings about
/// its slots.
fn replica_writes(
    set: &SetConfig,
    state: &SetState,
    target: &Manifest,
    findings: &mut Vec<Finding>,
) -> Vec<ReplicaWrites> {
    let mut out = Vec::new();
    for (ri, r) in state.replicas.iter().enumerate() {
        if r.role != Role::Writable {
            continue;
        }
        let mut stale = Vec::new();
        if let Some(own) = &r.manifest {
            let mut in_target = Seek::new(&target.entries);
            for (p, e) in &own.entries {
                // IMPORTANT: a released path (no longer selected) is not rebound's to
                // remove: only files a new generation dropped while still selected are.
                if in_target.seek(p).is_some() || !set.selects(p) {
                    continue;
                }
                if r.files.get(p).and_then(FileState::digest) == Some(e.digest) {
                    stale.push(Action::RemoveStale {
                        root: r.root.clone(),
                        path: p.clone(),
                        digest: e.digest,
                    });
                }
            }
        }
        // (Most often the target is this very manifest, borrowed: no need to compare.)
        let same = r
            .manifest
            .as_ref()
            .is_some_and(|m| std::ptr::eq(&**m, target) || **m == *target);
        slot_findings(set, r, same, target.generation, findings);
        let writes = slot_writes(r, same)
            .into_iter()
            .map(|slot| Action::WriteManifest {
                root: r.root.clone(),
                slot,
                generation: target.generation,
            })
            .collect();
        out.push(ReplicaWrites {
            ri,
            same,
            writes,
            stale,
        });
    }
    out
}

/// The phases of a plan, in the order their actions are carried out (docs/design.md
/// section 3.1). Within a phase, actions keep the order they were decided in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    /// Staged content the target does not name: frees space first.
    UnneededStaged,
    /// Leftover temporary files.
    Junk,
    /// Parity records of content an intact copy holds: before any manifest names it.
    Parity,
    /// Files this plan removes, staged before any removal (no manifest of the target
    /// can be written before them).
    StageRemovals,
    /// The second slot of replicas that hold the target already.
    RefreshSlots,
    /// Manifests of replicas that hold every file of the target and remove nothing:
    /// the commit point of a new generation.
    EarlyManifests,
    /// Moves aside, restores and metadata fixes, path by path.
    Content,
    /// Parity records of content only this plan's restores bring back.
    ParityRestored,
    /// The other replicas' removals and manifests, replica by replica.
    LateManifests,
    /// Removals left for after every manifest.
    Stale,
    /// Parity records the target does not name.
    ParityStale,
    /// Version tags, last of what the user sees.
    Tags,
    /// Staged content of earlier changes, now held in place.
    StagedDone,
    /// What this plan staged for its removals.
    Unstage,
}

/// Actions gathered by phase and put in [`Phase`] order.
#[derive(Default)]
struct Phased(BTreeMap<Phase, Vec<Action>>);

impl Phased {
    fn add(&mut self, phase: Phase, actions: impl IntoIterator<Item = Action>) {
        self.0.entry(phase).or_default().extend(actions);
    }

    /// The actions in phase order. A thing in the way is moved aside once, before the
    /// first write that needs it.
    fn into_actions(self) -> Vec<Action> {
        let mut moved: BTreeSet<(PathBuf, RelPath)> = BTreeSet::new();
        self.0
            .into_values()
            .flatten()
            .filter(|a| match a {
                Action::MoveAside { root, path, .. } => moved.insert((root.clone(), path.clone())),
                _ => true,
            })
            .collect()
    }
}

/// The manifest writes and removals in their order: before, among or after the
/// content, so that a crash never leaves a removal without a manifest that explains
/// it, nor a half-filled replica looking like the source.
fn order_manifests(
    set: &SetConfig,
    state: &SetState,
    content: &[Action],
    replicas: Vec<ReplicaWrites>,
    phased: &mut Phased,
) {
    let (same, manifests): (Vec<_>, Vec<_>) = replicas.into_iter().partition(|w| w.same);
    let durable_somewhere = !same.is_empty();
    let mut stale: BTreeMap<usize, Vec<Action>> = BTreeMap::new();
    for w in same {
        // The target is already durable in these replicas: restoring its second copy
        // first keeps the window in which one more damaged slot could cost it short.
        phased.add(Phase::RefreshSlots, w.writes);
        if !w.stale.is_empty() {
            stale.insert(w.ri, w.stale);
        }
    }
    let restored: BTreeSet<&PathBuf> = content
        .iter()
        .filter_map(|a| match a {
            Action::Restore { root, .. } => Some(root),
            _ => None,
        })
        .collect();
    // A replica that already holds every file of the target and removes nothing gets
    // its manifest *before* the restores: that write is then the commit point of a new
    // generation (an adoption or an upgrade is decided once, and a crash while copying
    // to the other replicas cannot make a half-filled replica look like the source).
    let (early, mut late): (Vec<_>, Vec<_>) = manifests
        .into_iter()
        .partition(|w| w.stale.is_empty() && !restored.contains(&state.replicas[w.ri].root));
    // IMPORTANT: otherwise the first manifest written is the commit point; it must go
    // to a replica that removes nothing, so that a crash right after it never leaves a
    // removal without a manifest that explains it.
    late.sort_by_key(|w| !w.stale.is_empty());
    let can_remove =
        durable_somewhere || !early.is_empty() || late.first().is_some_and(|w| w.stale.is_empty());
    for w in early {
        phased.add(Phase::EarlyManifests, w.writes);
    }
    // IMPORTANT: every writable replica removes something and none holds the target
    // yet (`commit --remove` of a file every copy holds): the first replica's files
    // are staged in it, then removed, then its manifest is written, the commit point.
    // A cut before that manifest finds the removed files missing and restores them
    // from the stage (rolled back); after it, the other replicas' own manifests still
    // name them and they are removed as stale (rolled forward).
    let staged = match late.first() {
        Some(w) if !can_remove => stage_removals(set, state, w.ri, &w.stale).map(|s| (w.ri, s)),
        _ => None,
    };
    let first_removes = staged.as_ref().map(|(ri, _)| *ri);
    if let Some((_, stages)) = staged {
        phased.add(
            Phase::Unstage,
            stages.iter().filter_map(|a| match a {
                Action::Stage { root, rel, .. } => Some(Action::RemoveStaged {
                    root: root.clone(),
                    rel: rel.clone(),
                }),
                _ => None,
            }),
        );
        phased.add(Phase::StageRemovals, stages);
    }
    let mut removable = can_remove;
    for w in late {
        if removable || first_removes == Some(w.ri) {
            phased.add(Phase::LateManifests, w.stale);
        } else {
            stale.insert(w.ri, w.stale);
        }
        phased.add(Phase::LateManifests, w.writes);
        // A manifest of the target is written from here on: it explains removals.
        removable |= first_removes.is_some();
    }
    if removable {
        phased.add(Phase::Stale, stale.into_values().flatten());
    }
}

/// Plans toward the chosen authority, phase by phase: release what is no longer
/// selected, decide every path, choose the generation, then the manifests, removals,
/// tags and staged content, each in its [`Phase`].
fn plan_to(
    set: &SetConfig,
    state: &SetState,
    chosen: Chosen<'_>,
    mut warnings: Vec<String>,
    golden: Option<GoldenCheck>,
) -> Result<Planned, PlanError> {
    let Chosen {
        authority,
        manifest: base,
        mut fresh,
    } = chosen;
    // A copy-on-write view of `base`: copied only if the plan changes an entry.
    let mut target: Cow<'_, Manifest> = Cow::Borrowed(&**base);
    fresh |= release_unselected(set, &mut target, &mut warnings);
    let golden_idx = state.replicas.iter().position(|r| r.role == Role::Golden);
    let golden_lazy = golden_idx.is_some_and(|i| state.replicas[i].observed == Observed::Lazy);
    let cx = PathContext {
        set,
        state,
        golden_idx,
        golden_manifest: golden_idx.and_then(|i| state.replicas[i].manifest.as_deref()),
        golden_lazy,
        names: &base.entries,
        generation: base.generation,
        analyze_parity: state.parity.as_ref().is_some_and(|p| p.analyze_all),
    };
    let content = decide_paths(&cx, &base);
    let mut findings = golden_manifest_findings(set, state);
    findings.extend(content.findings);
    if !content.fallbacks.is_empty() {
        let t = target.to_mut();
        t.entries.extend(content.fallbacks);
        fresh = true;
    }
    if let Some(w) = claimed_above(state, target.generation) {
        warnings.push(w);
        fresh = true;
    }
    let mut need = content.need;
    // A new generation must exceed golden's too: a lazily observed golden copy is read
    // first (its generation is not known yet).
    need.golden |= fresh && golden_lazy;
    need.hash.sort();
    need.hash.dedup();
    if need.golden || !need.hash.is_empty() || !need.parity.is_empty() {
        return Ok(Planned::Need(need));
    }
    if fresh {
        let g = target.generation.max(next_generation(state)?);
        if g != target.generation {
            target.to_mut().generation = g;
        }
    }
    let mut phased = Phased::default();
    let replicas = replica_writes(set, state, &target, &mut findings);
    order_manifests(set, state, &content.actions, replicas, &mut phased);
    phased.add(Phase::Junk, state_junk(state));
    let pw = parity_writes(set, state, &target, &content.actions, &[]);
    findings.extend(pw.findings);
    phased.add(Phase::Parity, pw.now);
    phased.add(Phase::ParityRestored, pw.restored);
    phased.add(Phase::ParityStale, pw.stale);
    phased.add(Phase::Content, content.actions);
    phased.add(Phase::Tags, tag_writes(set, state, &target, &base));
    staged_content(set, state, &target, &mut phased);
    Ok(Planned::Complete(Plan {
        set: set.name.clone(),
        authority,
        generation: target.generation,
        tag: target.tag,
        files: target.entries.len(),
        findings,
        lost: content.lost,
        warnings,
        actions: phased.into_actions(),
        golden,
        // The state's own manifest when nothing changed (a manifest of 100,000
        // files is megabytes: shared, not copied).
        manifest: Some(match target {
            Cow::Borrowed(_) => Arc::clone(&*base),
            Cow::Owned(m) => Arc::new(m),
        }),
        committed: None,
    }))
}

/// The version tag written (after moving aside what is in its way) into every
/// writable replica that does not hold the target's.
fn tag_writes(
    set: &SetConfig,
    state: &SetState,
    target: &Manifest,
    base: &Manifest,
) -> Vec<Action> {
    let (Some(vf), Some(t)) = (&set.version_file, target.tag) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for r in state.replicas.iter().filter(|r| r.role == Role::Writable) {
        if r.tag != TagState::Value(t) {
            out.extend(move_aside(set, r, vf, &target.entries, base.generation));
            out.push(Action::WriteTag {
                root: r.root.clone(),
                rel: vf.clone(),
                value: t,
            });
        }
    }
    out
}

/// Staged content of earlier changes: removed first when the target does not name
/// it, last (once everything else is done) when it does.
fn staged_content(set: &SetConfig, state: &SetState, target: &Manifest, phased: &mut Phased) {
    // Nothing staged (every boot but one after a cut during a change): no set of the
    // target's digests, which is as large as the set.
    if state.replicas.iter().all(|r| r.staged.is_empty()) {
        return;
    }
    let named: BTreeSet<Digest> = target.entries.values().map(|e| e.digest).collect();
    for r in state.replicas.iter().filter(|r| r.role == Role::Writable) {
        for d in &r.staged {
            if let Ok(rel) = RelPath::meta(&set.name, STAGE_DIR).join(&d.to_hex()) {
                let phase = if named.contains(d) {
                    Phase::StagedDone
                } else {
                    Phase::UnneededStaged
                };
                phased.add(
                    phase,
                    [Action::RemoveStaged {
                        root: r.root.clone(),
                        rel,
                    }],
                );
            }
        }
    }
}

/// The `Stage` actions that must precede the removals (`removes`) in replica `ri` when
/// no manifest of the target can be written before them (see [`order_manifests`]).
/// Content already staged there, or held at the same path by another writable copy
/// (removed only after the commit point), is not staged. `None` if a stage cannot be
/// named: then the removals must wait for the commit point.
fn stage_removals(
    set: &SetConfig,
    state: &SetState,
    ri: usize,
    removes: &[Action],
) -> Option<Vec<Action>> {
    let r = &state.replicas[ri];
    let mut done: BTreeSet<Digest> = BTreeSet::new();
    let mut out = Vec::new();
    for a in removes {
        let Action::RemoveStale { root, path, digest } = a else {
            continue;
        };
        // Another writable copy holding it is the rollback source until its own
        // removal, which comes after the commit point: no stage needed.
        let elsewhere = state.replicas.iter().enumerate().any(|(i, o)| {
            i != ri
                && o.role == Role::Writable
                && o.files.get(path).and_then(FileState::digest) == Some(*digest)
        });
        if elsewhere || r.staged.contains(digest) || !done.insert(*digest) {
            continue;
        }
        // Never fails (a hex name is a valid component).
        let rel = RelPath::meta(&set.name, STAGE_DIR)
            .join(&digest.to_hex())
            .ok()?;
        let mode = r
            .manifest
            .as_ref()
            .and_then(|m| m.entries.get(path))
            .map_or(0o644, |e| e.mode);
        out.push(Action::Stage {
            root: root.clone(),
            rel,
            from: Source {
                root: root.clone(),
                rel: path.clone(),
                kind: SourceKind::Writable,
            },
            digest: *digest,
            mode,
        });
    }
    Some(out)
}

/// The action that moves aside what stands where `path` must be written in writable
/// replica `r` ([`ReplicaState::blocked`]), unless it is itself a protected file, or a directory holding protected files (`names`): moving
/// those would only move the conflict, so the write fails instead, naming it. The destination is
/// `.rebound/<set>/displaced/<generation>[-<k>]/<what>`, a name not used yet.
fn move_aside(
    set: &SetConfig,
    r: &ReplicaState,
    path: &RelPath,
    names: &BTreeMap<RelPath, Entry>,
    generation: u64,
) -> Option<Action> {
    let what = r.blocked.get(path)?;
    // A file in the way must not be a protected file itself; a directory at the path
    // must not hold protected files (an inconsistent manifest: leave it to fail).
    let conflict = if what == path {
        let below = format!("{what}/");
        names.keys().any(|k| k.as_str().starts_with(&below))
    } else {
        names.contains_key(what)
    };
    if conflict {
        return None;
    }
    let id = std::iter::once(generation.to_string())
        .chain((1..).map(|k| format!("{generation}-{k}")))
        .find(|n| !r.displaced.contains(n))?;
    let to = RelPath::new(&format!(
        "{}/{DISPLACED_DIR}/{id}/{what}",
        RelPath::meta_dir(&set.name)
    ))
    .ok()?;
    Some(Action::MoveAside {
        root: r.root.clone(),
        path: what.clone(),
        to,
    })
}

/// Everything observing the replicas met that the report must show: names that
/// cannot be protected, unreadable directories (one line each).
fn observed_problems(state: &SetState) -> Vec<String> {
    state
        .replicas
        .iter()
        .flat_map(|r| r.problems.iter().cloned())
        .chain(state.parity.iter().flat_map(|p| p.problems.iter().cloned()))
        .collect()
}

/// The findings and the [`Action::SetMeta`] for a writable replica's file whose
/// content matches `entry` but whose permission bits or owner do not.
fn fix_meta(
    r: &ReplicaState,
    path: &RelPath,
    entry: &Entry,
    fs: &FileState,
    findings: &mut Vec<Finding>,
) -> Option<Action> {
    let FileState::File { mode, owner, .. } = fs else {
        return None;
    };
    let wrong_mode = *mode != entry.mode;
    let wrong_owner = entry.owner.filter(|o| o != owner);
    if wrong_mode {
        findings.push(Finding {
            root: r.root.clone(),
            path: path.clone(),
            problem: Problem::WrongMode,
            detail: format!(
                "permission bits are {mode:04o}, the manifest records {:04o}",
                entry.mode
            ),
        });
    }
    if let Some(o) = wrong_owner {
        findings.push(Finding {
            root: r.root.clone(),
            path: path.clone(),
            problem: Problem::WrongOwner,
            detail: format!("owned by {owner} (uid:gid), the manifest records {o}"),
        });
    }
    (wrong_mode || wrong_owner.is_some()).then(|| Action::SetMeta {
        root: r.root.clone(),
        path: path.clone(),
        mode: entry.mode,
        owner: wrong_owner,
    })
}

/// The slots of writable replica `r` to write, in order. A replica that does not hold
/// the target yet gets it in every slot ([`ReplicaState::slot_order`]: first one that
/// does not hold its current manifest, so a cut during that write leaves the current
/// one intact; a cut between the writes leaves one slot at the new generation, and the
/// next boot writes the other). A replica that already holds the target (`same`) gets
/// only the slots that do not hold it (damaged, missing, or behind).
fn slot_writes(r: &ReplicaState, same: bool) -> Vec<usize> {
    let order = r.slot_order();
    if same {
        order
            .into_iter()
            .filter(|i| !r.slot_current.get(*i).copied().unwrap_or(false))
            .collect()
    } else {
        order
    }
}

/// Findings about the manifest slots of writable replica `r`: a damaged slot always
/// (a media fault, or a write torn where rename is not atomic); a missing or older
/// slot beside the target (`same`: the replica holds the target in its other slot).
fn slot_findings(
    set: &SetConfig,
    r: &ReplicaState,
    same: bool,
    generation: u64,
    findings: &mut Vec<Finding>,
) {
    if r.observed != Observed::Full || !r.root_exists {
        return;
    }
    for (i, (slot, name)) in r.slots.iter().zip(MANIFEST_SLOTS).enumerate() {
        let path = RelPath::meta(&set.name, name);
        let prefix = format!("{}: ", r.root.join(path.as_str()).display());
        let (problem, detail) = match slot {
            SlotState::Damaged(why) => (Problem::ManifestDamaged,
                format!(
                    "this manifest slot is unusable ({}); `boot` rewrites it with generation {generation}",
                    why.strip_prefix(&prefix).unwrap_or(why)
                ),
            ),
            _ if !same || r.slot_current.get(i).copied().unwrap_or(false) => continue,
            SlotState::Missing => (Problem::ManifestOutdated,
                format!("this manifest slot is missing; `boot` writes generation {generation} to it, so that one damaged slot cannot cost that generation"),
            ),
            SlotState::OtherHash { generation: g, hash } => (Problem::ManifestOutdated,
                format!("this manifest slot holds generation {g} recorded with {hash}, an older algorithm; `boot` rewrites it with generation {generation}"),
            ),
            SlotState::Intact(g) => (Problem::ManifestOutdated,
                format!("this manifest slot holds generation {g}, not {generation} (a write cut between the two slots, or a device written by an older rebound); `boot` rewrites it, so that one damaged slot cannot cost generation {generation}"),
            ),
        };
        findings.push(Finding {
            root: r.root.clone(),
            path,
            problem,
            detail,
        });
    }
}

/// How much of the golden copy `state` holds (`None`: no golden replica).
fn golden_check(state: &SetState) -> Option<GoldenCheck> {
    let g = state.replicas.iter().find(|r| r.role == Role::Golden)?;
    Some(match g.observed {
        // Nothing there to check (reported as golden_damaged).
        _ if !g.root_exists => GoldenCheck::NotChecked,
        Observed::Lazy if g.files.is_empty() => GoldenCheck::NotChecked,
        Observed::Lazy => GoldenCheck::SourcesOnly,
        Observed::Full
            if g.files
                .values()
                .all(|f| !matches!(f, FileState::File { digest: None, .. })) =>
        {
            GoldenCheck::Checked
        }
        Observed::Full => GoldenCheck::Listed,
    })
}

fn state_junk(state: &SetState) -> Vec<Action> {
    let parity = state.parity.iter().flat_map(|p| {
        p.junk.iter().map(|j| Action::RemoveJunk {
            root: p.root.clone(),
            rel: j.clone(),
        })
    });
    state
        .replicas
        .iter()
        .filter(|r| r.role == Role::Writable)
        .flat_map(|r| {
            r.junk.iter().map(|j| Action::RemoveJunk {
                root: r.root.clone(),
                rel: j.clone(),
            })
        })
        .chain(parity)
        .collect()
}

/// The parity records a plan writes and removes.
#[derive(Default)]
pub(crate) struct ParityWrites {
    /// From copies intact as observed: before any manifest.
    pub now: Vec<Action>,
    /// From copies this plan restores: after them.
    pub restored: Vec<Action>,
    /// Records the target does not name: after every manifest.
    pub stale: Vec<Action>,
    pub findings: Vec<Finding>,
}

/// The parity writes that keep the parity directory in step with `target`: a record
/// for every content it names that has no usable one (missing, or damaged: reported),
/// read from a copy intact as observed (writable, staged, golden) or, failing that,
/// from one this plan's `content` restores; the removal of every record it does not
/// name. Nothing without a parity directory (or while it is not there: unmounted).
/// `new` names the sources of a change's new content (`commit`, `update`), which
/// observe did not see as the set's.
pub(crate) fn parity_writes(
    set: &SetConfig,
    state: &SetState,
    target: &Manifest,
    content: &[Action],
    new: &[(Digest, Source)],
) -> ParityWrites {
    let mut out = ParityWrites::default();
    let (Some(pc), Some(ps)) = (&set.parity, &state.parity) else {
        return out;
    };
    if !ps.root_exists {
        return out;
    }
    let mut done: BTreeSet<Digest> = BTreeSet::new();
    for (path, entry) in target.entries.iter().filter(|(p, _)| set.selects(p)) {
        let rec = ps.records.get(&entry.digest);
        if rec.is_some_and(RecordState::usable) || done.contains(&entry.digest) {
            continue;
        }
        let rel = record_rel(&set.name, &entry.digest);
        let restored = || {
            content.iter().find_map(|a| match a {
                Action::Restore {
                    root,
                    path: p,
                    digest,
                    ..
                } if p == path && *digest == entry.digest => Some(Source {
                    root: root.clone(),
                    rel: path.clone(),
                    kind: SourceKind::Writable,
                }),
                _ => None,
            })
        };
        let incoming = new
            .iter()
            .find(|(d, _)| *d == entry.digest)
            .map(|(_, s)| s.clone());
        let source = incoming
            .map(|s| (true, s))
            .or_else(|| intact_copy(set, state, path, entry).map(|s| (true, s)))
            .or_else(|| restored().map(|s| (false, s)));
        if let Some(RecordState::Damaged(why)) = rec {
            out.findings.push(Finding {
                root: ps.root.clone(),
                path: rel.clone(),
                problem: Problem::ParityDamaged,
                detail: format!(
                    "the parity record of {path} is damaged ({why}); not used, {}",
                    if source.is_some() {
                        "rewritten from an intact copy"
                    } else {
                        "and no intact copy is left to rewrite it from"
                    }
                ),
            });
        }
        let Some((early, from)) = source else {
            continue;
        };
        let list = if early {
            &mut out.now
        } else {
            &mut out.restored
        };
        done.insert(entry.digest);
        list.push(Action::WriteParity {
            root: ps.root.clone(),
            rel,
            from,
            digest: entry.digest,
            size: entry.size,
            block: pc.block,
            redundancy: pc.redundancy,
        });
    }
    let named: BTreeSet<&Digest> = target.entries.values().map(|e| &e.digest).collect();
    for d in ps.records.keys().filter(|d| !named.contains(d)) {
        out.stale.push(Action::RemoveParity {
            root: ps.root.clone(),
            rel: record_rel(&set.name, d),
        });
    }
    out
}

/// A copy of `entry` intact as observed: a writable replica's file at `path`, staged
/// content, or a golden file hashed and matching.
fn intact_copy(set: &SetConfig, state: &SetState, path: &RelPath, entry: &Entry) -> Option<Source> {
    for r in &state.replicas {
        if r.files.get(path).and_then(FileState::digest) == Some(entry.digest) {
            return Some(Source {
                root: r.root.clone(),
                rel: path.clone(),
                kind: if r.role == Role::Golden {
                    SourceKind::Golden
                } else {
                    SourceKind::Writable
                },
            });
        }
    }
    state
        .replicas
        .iter()
        .filter(|r| r.role == Role::Writable && r.staged.contains(&entry.digest))
        .find_map(|r| {
            let rel = RelPath::meta(&set.name, STAGE_DIR)
                .join(&entry.digest.to_hex())
                .ok()?;
            Some(Source {
                root: r.root.clone(),
                rel,
                kind: SourceKind::Staged,
            })
        })
}

fn golden_source(g: &ReplicaState, path: &RelPath) -> Source {
    Source {
        root: g.root.clone(),
        rel: path.clone(),
        kind: SourceKind::Golden,
    }
}

/// A forward-only lookup in a map keyed by path, for keys asked in ascending order.
struct Seek<'a, V> {
    it: std::iter::Peekable<std::collections::btree_map::Iter<'a, RelPath, V>>,
}

impl<'a, V> Seek<'a, V> {
    fn new(map: &'a BTreeMap<RelPath, V>) -> Self {
        Seek {
            it: map.iter().peekable(),
        }
    }

    /// The value of `key`, which must not be less than the key of the previous call.
    fn seek(&mut self, key: &RelPath) -> Option<&'a V> {
        while let Some((k, _)) = self.it.peek() {
            match (*k).cmp(key) {
                std::cmp::Ordering::Less => {
                    self.it.next();
                }
                std::cmp::Ordering::Equal => return self.it.next().map(|(_, v)| v),
                std::cmp::Ordering::Greater => return None,
            }
        }
        None
    }
}

/// An intact full copy of `entry` among the writable replicas, or its staged content.
/// `row` holds each replica's state of `path` (`None`: not in its map).
fn find_copy(
    state: &SetState,
    set: &SetConfig,
    row: &[Option<&FileState>],
    path: &RelPath,
    entry: &Entry,
) -> Option<Source> {
    let writable = state
        .replicas
        .iter()
        .zip(row)
        .filter(|(r, _)| r.role == Role::Writable);
    for (r, fs) in writable.clone() {
        if fs.and_then(FileState::digest) == Some(entry.digest) {
            return Some(Source {
                root: r.root.clone(),
                rel: path.clone(),
                kind: SourceKind::Writable,
            });
        }
    }
    for (r, _) in writable {
        if r.staged.contains(&entry.digest) {
            if let Ok(rel) = RelPath::meta(&set.name, STAGE_DIR).join(&entry.digest.to_hex()) {
                return Some(Source {
                    root: r.root.clone(),
                    rel,
                    kind: SourceKind::Staged,
                });
            }
        }
    }
    None
}

/// The golden copy of `entry`, if it verifies; a golden file not hashed yet is asked
/// for (`need_hash`).
fn find_golden(
    state: &SetState,
    row: &[Option<&FileState>],
    path: &RelPath,
    entry: &Entry,
    need_hash: &mut Vec<(usize, RelPath)>,
) -> Option<Source> {
    for (gi, g) in state
        .replicas
        .iter()
        .enumerate()
        .filter(|(_, r)| r.role == Role::Golden)
    {
        match row[gi] {
            // Lazily observed and not looked up yet: ask (it is `lstat`ed, then
            // hashed if it is a regular file).
            None if g.observed == Observed::Lazy => {
                need_hash.push((gi, path.clone()));
            }
            Some(FileState::File {
                digest: None, size, ..
            }) if *size == entry.size => {
                need_hash.push((gi, path.clone()));
            }
            Some(FileState::File {
                digest: Some(d), ..
            }) if *d == entry.digest => {
                return Some(golden_source(g, path));
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
#[path = "plan_tables.rs"]
pub(crate) mod tables;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn p(s: &str) -> RelPath {
        RelPath::new(s).unwrap()
    }

    #[test]
    fn seek_finds_keys_asked_in_order_and_nothing_else() {
        let map: BTreeMap<RelPath, u32> = ["a/b", "a/c", "b", "d/e/f"]
            .iter()
            .enumerate()
            .map(|(i, k)| (p(k), i as u32))
            .collect();
        let mut s = Seek::new(&map);
        assert_eq!(s.seek(&p("a")), None);
        assert_eq!(s.seek(&p("a/b")), Some(&0));
        assert_eq!(s.seek(&p("a/bb")), None);
        assert_eq!(s.seek(&p("b")), Some(&2));
        assert_eq!(s.seek(&p("c")), None);
        assert_eq!(s.seek(&p("d/e/f")), Some(&3));
        assert_eq!(s.seek(&p("z")), None);
        // Against a lookup, for every subsequence of a larger key set.
        let keys: Vec<RelPath> = (0..200).map(|i| p(&format!("d{}/f{}", i % 7, i))).collect();
        let big: BTreeMap<RelPath, usize> = keys
            .iter()
            .step_by(3)
            .cloned()
            .enumerate()
            .map(|(i, k)| (k, i))
            .collect();
        let mut asked: Vec<&RelPath> = keys.iter().collect();
        asked.sort();
        let mut s = Seek::new(&big);
        for k in asked {
            assert_eq!(s.seek(k), big.get(k), "{k:?}");
        }
    }
}
