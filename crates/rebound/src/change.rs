//! Planning an intentional change: `commit` and `update` (new content for some paths)
//! and `seal` (the factory state). Pure like [`crate::plan`]: the engine observes the
//! set and the new files, this module decides every write, [`crate::exec`] carries
//! them out in the plan's order. A change's plan has two parts (docs/design.md
//! section 5):
//!
//! 1. **The change, up to its commit point**, all or nothing: the new content staged
//!    in every writable copy that does not hold it, a committed file synced where it
//!    is, (for `seal`) the golden copy written and sealed, then the new generation's
//!    manifest written to its first slot ([`Action::CommitManifest`]), then to the
//!    other.
//! 2. **What a boot does once that manifest is durable**: planned by [`plan::plan`]
//!    on the state the first part leaves ([`predict`]). A cut anywhere in it is
//!    finished by the next boot the same way.
//!
//! So `--dry-run` prints every action the real run takes, and the real run carries
//! out that same plan: nothing is observed twice.

use std::collections::BTreeSet;

use crate::config::{Links, Role, SetConfig};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::fs::{full, Meta};
use crate::manifest::{Entry, Manifest};
use crate::names::{GOLDEN_SIGNATURE, SEALED_MARKER, STAGE_DIR};
use crate::observe::{FileState, Observed, SetState, SlotState, TagState};
use crate::parity_store::RecordState;
use crate::plan::{self, Action, Checked, Need, Plan, PlanError, Planned, Source, SourceKind};
use crate::relpath::RelPath;
use crate::sign::{golden_manifest_bytes, SignKey};

/// Which mode a new generation records for a changed file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModeRule {
    /// The source's (`commit`: the committed file's; `update`: the file's under DIR).
    Source,
    /// The mode the manifest records for the path, else the source's (`write`: the
    /// new content replaces the file's bytes, not its permissions).
    Kept,
    /// This one (`write --mode`).
    Given(u32),
}

/// One file of a `commit`, `update` or `write`, as observed before planning.
#[derive(Debug, Clone)]
pub struct NewFile {
    /// Where it goes in the set.
    pub path: RelPath,
    /// Where its new content is: the committed file itself ([`SourceKind::Writable`])
    /// or the update's copy ([`SourceKind::Incoming`]).
    pub from: Source,
    /// Its content, hashed right after `meta` was taken.
    pub digest: Digest,
    /// `lstat` of `from`, right before it was hashed.
    pub meta: Meta,
    /// The writable replica it already sits in (`commit`), as an index into the
    /// set's replicas.
    pub origin: Option<usize>,
    /// Which mode the new generation records for it.
    pub mode: ModeRule,
}

/// A planned `commit` or `update`.
#[derive(Debug, Clone)]
pub struct Change {
    /// The change, then the boot after it (or only a boot: see `recorded`).
    pub plan: Plan,
    /// What the new generation records for each new file; empty when the manifest
    /// records this content already (then `plan` is a boot's: "already committed").
    pub recorded: Vec<(RelPath, Entry)>,
}

impl Change {
    /// The paths whose restores install the change: not repairs.
    pub fn installs(&self) -> BTreeSet<RelPath> {
        self.recorded.iter().map(|(p, _)| p.clone()).collect()
    }
}

/// A planned `seal`.
#[derive(Debug, Clone)]
pub struct Sealing {
    /// The seal, then the boot that fills the other copies.
    pub plan: Plan,
    /// Symbolic links left unprotected (`links = "skip"`).
    pub skipped: Vec<RelPath>,
}

fn set_error(set: &SetConfig) -> impl Fn(PlanError) -> Error + '_ {
    move |e| Error::Set {
        set: set.name.clone(),
        what: e.0,
    }
}

/// Plans a `commit` or `update` of `files` over the observed `state`: complete, or
/// what must be read first ([`Planned::Need`]), like a boot's plan.
///
/// # Errors
/// As [`plan::plan`], and a generation that cannot grow.
pub fn plan_commit(
    set: &SetConfig,
    state: &SetState,
    files: &[NewFile],
) -> Result<Planned<Change>> {
    let boot = match plan::plan(set, state).map_err(set_error(set))? {
        Planned::Complete(p) => p,
        Planned::Need(n) => return Ok(Planned::Need(n)),
    };
    let base = boot
        .manifest
        .as_deref()
        .cloned()
        .unwrap_or_else(|| Manifest::new(&set.name, 0, set.hash, None));
    let mut next = base.clone();
    for f in files {
        // The owner: a commit records the committed file's. An update records the
        // owner the path already has (the update replaces content; its files belong
        // to whoever unpacked them, often root, while the device's application may
        // own the file), and the source's for a new path.
        let owner = match (f.origin, base.entries.get(&f.path).and_then(|e| e.owner)) {
            (None, Some(kept)) => kept,
            _ => f.meta.owner(),
        };
        let mode = match f.mode {
            ModeRule::Source => f.meta.mode,
            ModeRule::Given(m) => m,
            ModeRule::Kept => base.entries.get(&f.path).map_or(f.meta.mode, |e| e.mode),
        };
        let e = Entry {
            size: f.meta.size,
            mode,
            owner: Some(owner),
            digest: f.digest,
        };
        next.entries.insert(f.path.clone(), e);
    }
    refuse_file_dir_clash(set, &next, files)?;
    // A format 1 manifest recorded no owners: this generation records them, from each
    // file's verified copy.
    plan::learn_owners(&mut next, state);
    if next.entries == base.entries && boot.manifest.is_some() {
        return Ok(Planned::Complete(Change {
            plan: boot,
            recorded: Vec::new(),
        }));
    }
    // IMPORTANT: the new generation must exceed every replica's, golden's included (a
    // reseal cut before its live manifest leaves golden ahead): read golden's manifest
    // first if it is not read yet. Generations never repeat.
    if golden_unread(state) {
        return Ok(Planned::Need(Need {
            golden: true,
            ..Need::default()
        }));
    }
    next.generation = plan::next_generation(state)
        .map_err(set_error(set))?
        .max(base.generation.saturating_add(1));
    let mut change = stage_new_files(set, state, files, &next)?;
    // The committed file itself must be durable on its own partition before the
    // manifest says it is the truth there.
    change.extend(
        files
            .iter()
            .filter(|f| f.origin.is_some())
            .map(|f| Action::SyncFile {
                root: f.from.root.clone(),
                path: f.from.rel.clone(),
            }),
    );
    // The commit point goes to the replica the committed files sit in (else the first
    // writable one); the committed files are checked unchanged right before it.
    let ci = files
        .iter()
        .find_map(|f| f.origin)
        .or_else(|| set.writable().next().map(|(i, _)| i))
        .ok_or(Error::Internal("set without a writable replica"))?;
    let checked = files
        .iter()
        .filter(|f| f.origin.is_some())
        .map(|f| Checked {
            root: f.from.root.clone(),
            path: f.from.rel.clone(),
            meta: f.meta,
        })
        .collect();
    // IMPORTANT: the parity of the new content before the manifest that names it.
    // Only the new content's: another file's missing record is the boot's to write,
    // after the commit point (its failure must not stop this change).
    let new: Vec<(Digest, Source)> = files.iter().map(|f| (f.digest, f.from.clone())).collect();
    change.extend(
        plan::parity_writes(set, state, &next, &[], &new)
            .now
            .into_iter()
            .filter(|a| {
                matches!(a, Action::WriteParity { digest, .. } if new.iter().any(|(d, _)| d == digest))
            }),
    );
    change.extend(commit_manifest(state, ci, next.generation, checked)?);
    let recorded = files
        .iter()
        .filter_map(|f| {
            next.entries
                .get(&f.path)
                .map(|e| (f.path.clone(), e.clone()))
        })
        .collect();
    let after = predict(state, &change, &next, files);
    Ok(then_boot(set, &after, change, next)?.map(|plan| Change { plan, recorded }))
}

/// The directories above `path` (`a/b/c`: `a`, `a/b`).
fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('/').map(move |(i, _)| &path[..i])
}

/// A path cannot be a file and a directory of other files at once. A new file at the
/// path of a directory of recorded files (`rebound write app/lib` where `app/lib/x` is
/// protected), or below a recorded file (`app.cfg/x`), would commit a manifest that no
/// copy can hold: every later boot would fail to restore it. Refused before anything
/// is written.
fn refuse_file_dir_clash(set: &SetConfig, next: &Manifest, files: &[NewFile]) -> Result<()> {
    let recorded: BTreeSet<&str> = next.entries.keys().map(RelPath::as_str).collect();
    let dirs: BTreeSet<&str> = recorded.iter().flat_map(|p| ancestors(p)).collect();
    for f in files {
        let p = f.path.as_str();
        let clash = if dirs.contains(p) {
            Some(format!(
                "{p}: is a directory of protected files here; a file cannot replace it"
            ))
        } else {
            ancestors(p)
                .find(|a| recorded.contains(a))
                .map(|a| format!("{p}: {a} is a protected file, it cannot also be a directory"))
        };
        if let Some(what) = clash {
            return Err(set_error(set)(PlanError(what)));
        }
    }
    Ok(())
}

/// Stages the new content in every writable replica that does not hold it at its
/// path already (nor staged): until the commit point nothing else is written there,
/// and after it every copy restores from what it holds itself.
fn stage_new_files(
    set: &SetConfig,
    state: &SetState,
    files: &[NewFile],
    next: &Manifest,
) -> Result<Vec<Action>> {
    let mut out = Vec::new();
    for (ri, r) in state.replicas.iter().enumerate() {
        if r.role != Role::Writable {
            continue;
        }
        let mut done: BTreeSet<Digest> = BTreeSet::new();
        for f in files {
            if f.origin == Some(ri) {
                continue;
            }
            let here = r.files.get(&f.path).and_then(FileState::digest);
            if here == Some(f.digest) || r.staged.contains(&f.digest) || !done.insert(f.digest) {
                continue;
            }
            let mode = next.entries.get(&f.path).map_or(f.meta.mode, |e| e.mode);
            out.push(Action::Stage {
                root: r.root.clone(),
                rel: stage_rel(set, &f.digest)?,
                from: f.from.clone(),
                digest: f.digest,
                mode,
            });
        }
    }
    Ok(out)
}

fn stage_rel(set: &SetConfig, d: &Digest) -> Result<RelPath> {
    RelPath::meta(&set.name, STAGE_DIR)
        .join(&d.to_hex())
        .map_err(|e| Error::Usage(e.to_string()))
}

/// The commit point in writable replica `ri`: the new manifest to the slot that does
/// not hold the current one ([`crate::observe::ReplicaState::slot_order`]), guarded
/// by `checked`; then to the other slot.
fn commit_manifest(
    state: &SetState,
    ri: usize,
    generation: u64,
    checked: Vec<Checked>,
) -> Result<Vec<Action>> {
    let r = state
        .replicas
        .get(ri)
        .ok_or(Error::Internal("commit replica not observed"))?;
    let order = r.slot_order();
    let Some((first, rest)) = order.split_first() else {
        return Err(Error::Internal("a replica without manifest slots"));
    };
    let mut out = vec![Action::CommitManifest {
        root: r.root.clone(),
        slot: *first,
        generation,
        checked,
    }];
    out.extend(rest.iter().map(|slot| Action::WriteManifest {
        root: r.root.clone(),
        slot: *slot,
        generation,
    }));
    Ok(out)
}

/// The whole plan: `change` (up to and just after its commit point), then the plan a
/// boot makes over `after`, the state the change leaves. Asks for what that boot
/// needs read, like any plan.
fn then_boot(
    set: &SetConfig,
    after: &SetState,
    change: Vec<Action>,
    committed: Manifest,
) -> Result<Planned> {
    Ok(plan::plan(set, after)
        .map_err(set_error(set))?
        .map(|mut p| {
            let mut actions = change;
            actions.append(&mut p.actions);
            p.actions = actions;
            p.committed = Some(committed);
            p
        }))
}

fn golden_unread(state: &SetState) -> bool {
    state
        .replicas
        .iter()
        .any(|r| r.role == Role::Golden && r.observed == Observed::Lazy)
}

/// Plans a `seal`: golden mode copies the first replica's selected files into the
/// golden copy and seals it; mirror mode adopts the first replica. Both then write
/// the first replica's manifest (the commit point) and fill the other copies as a
/// boot would. The golden replica must have been read ([`crate::observe::observe_golden`]).
///
/// # Errors
/// [`Error::Usage`] for what cannot be sealed (nothing selected, a selected path that
/// is not a regular file, a golden copy sealed already without `force`);
/// [`Error::Io`] for a first replica that does not exist.
///
/// With `sign`, the golden manifest is signed ([`Action::WriteGoldenSignature`], after
/// the golden manifest, before the marker). A signature file already there is removed
/// right after the unseal, signed or not: it vouches for the manifest being replaced.
pub fn plan_seal(
    set: &SetConfig,
    state: &SetState,
    force: bool,
    sign: Option<&SignKey>,
) -> Result<Planned<Sealing>> {
    let primary = state
        .replicas
        .first()
        .ok_or(Error::Internal("set without replicas"))?;
    if !primary.root_exists {
        return Err(Error::io(
            "seal",
            &primary.root,
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "the first replica does not exist",
            ),
        ));
    }
    let g = plan::next_generation(state).map_err(set_error(set))?;
    let mut m = Manifest::new(&set.name, g, set.hash, None);
    let skipped = sealed_entries(set, state, &mut m)?;
    let mut change = Vec::new();
    match state.replicas.iter().find(|r| r.role == Role::Golden) {
        Some(gs) => {
            if gs.observed == Observed::Lazy {
                return Err(Error::Internal("seal planned before golden was read"));
            }
            let marker = RelPath::meta(&set.name, SEALED_MARKER);
            if gs.sealed {
                if !force {
                    return Err(Error::Usage(format!(
                        "golden copy {} is already sealed; use `seal --force` to replace the factory state",
                        gs.root.display()
                    )));
                }
                // IMPORTANT: unseal first, so a crash in the middle of a reseal never
                // leaves a marker vouching for half-replaced golden files.
                change.push(Action::Unseal {
                    root: gs.root.clone(),
                    rel: marker.clone(),
                });
            }
            if gs.signature_file {
                change.push(Action::Unseal {
                    root: gs.root.clone(),
                    rel: RelPath::meta(&set.name, GOLDEN_SIGNATURE),
                });
            }
            // Leftovers of an interrupted seal: seal is the only writer of golden.
            change.extend(gs.junk.iter().map(|j| Action::RemoveJunk {
                root: gs.root.clone(),
                rel: j.clone(),
            }));
            // Golden files get the recorded mode and owner too, so the golden image
            // is a faithful copy (restores take both from the manifest).
            change.extend(m.entries.iter().map(|(p, e)| Action::WriteGolden {
                root: gs.root.clone(),
                path: p.clone(),
                from: Source {
                    root: primary.root.clone(),
                    rel: p.clone(),
                    kind: SourceKind::Writable,
                },
                digest: e.digest,
                mode: e.mode,
                owner: e.owner,
            }));
            change.push(Action::WriteGoldenManifest {
                root: gs.root.clone(),
                generation: m.generation,
            });
            // IMPORTANT: the signature before the marker, over exactly the bytes the
            // golden manifest write writes: a sealed golden copy is a signed one.
            if let Some(k) = sign {
                change.push(Action::WriteGoldenSignature {
                    root: gs.root.clone(),
                    rel: RelPath::meta(&set.name, GOLDEN_SIGNATURE),
                    signature: k.sign_golden(&set.name, &golden_manifest_bytes(&m)),
                });
            }
            // IMPORTANT: lastly, the marker: the golden copy is complete only now.
            change.push(Action::WriteSealMarker {
                root: gs.root.clone(),
                rel: marker,
                generation: m.generation,
            });
        }
        None => {
            // Mirror: the first replica is declared the truth; its tag, raised to the
            // highest seen so that no other copy looks newer afterwards.
            m.tag = state
                .replicas
                .iter()
                .filter_map(|r| match r.tag {
                    TagState::Value(v) => Some(v),
                    _ => None,
                })
                .max();
        }
    }
    // IMPORTANT: the parity of the sealed content before the manifest that names it.
    change.extend(plan::parity_writes(set, state, &m, &[], &[]).now);
    change.extend(commit_manifest(state, 0, m.generation, Vec::new())?);
    let after = predict(state, &change, &m, &[]);
    Ok(then_boot(set, &after, change, m)?.map(|plan| Sealing { plan, skipped }))
}

/// Fills `m` with the first replica's selected regular files. Every selected path
/// that cannot be sealed is named in one error, not only the first; the symbolic
/// links left alone with `links = "skip"` are returned.
fn sealed_entries(set: &SetConfig, state: &SetState, m: &mut Manifest) -> Result<Vec<RelPath>> {
    let primary = state
        .replicas
        .first()
        .ok_or(Error::Internal("set without replicas"))?;
    let mut refused: Vec<String> = Vec::new();
    let mut skipped: Vec<RelPath> = Vec::new();
    for (p, f) in primary.files.iter().filter(|(p, _)| set.selects(p)) {
        match f {
            f @ FileState::File {
                digest: Some(_), ..
            } => {
                m.entries.extend(f.entry().map(|e| (p.clone(), e)));
            }
            FileState::Missing => {}
            FileState::NotFile { kind } if kind == "symbolic link" && set.links == Links::Skip => {
                skipped.push(p.clone());
            }
            other => refused.push(format!(
                "{}: {}",
                full(&primary.root, p).display(),
                match other {
                    FileState::NotFile { kind } => format!("is a {kind}"),
                    FileState::Unreadable { error } => error.clone(),
                    _ => "not hashed".into(),
                }
            )),
        }
    }
    if !refused.is_empty() {
        let n = refused.len();
        return Err(Error::Usage(format!(
            "{n} selected path{} cannot be sealed (rebound protects regular files only, and never follows a link):\n    {}\nreplace or exclude {}{}, then seal again",
            if n == 1 { "" } else { "s" },
            refused.join("\n    "),
            if n == 1 { "it" } else { "them" },
            if set.links == Links::Refuse {
                format!(", or set `links = \"skip\"` in set `{}` to leave symbolic links unprotected", set.name)
            } else {
                String::new()
            }
        )));
    }
    if m.entries.is_empty() {
        return Err(Error::Usage(format!(
            "no file in {} matches the include patterns ({}); nothing to seal",
            primary.root.display(),
            set.include.join(", ")
        )));
    }
    Ok(skipped)
}

/// The state the change part of a plan (`actions`, committing `committed`) leaves,
/// as the next observation would find it: the committed files as they were hashed,
/// staged content, manifests, the golden copy and its marker. Pure.
pub fn predict(
    state: &SetState,
    actions: &[Action],
    committed: &Manifest,
    files: &[NewFile],
) -> SetState {
    let mut st = state.clone();
    for f in files {
        if let Some(r) = f.origin.and_then(|ri| st.replicas.get_mut(ri)) {
            r.files.insert(
                f.path.clone(),
                FileState::File {
                    size: f.meta.size,
                    mode: f.meta.mode,
                    owner: f.meta.owner(),
                    digest: Some(f.digest),
                },
            );
        }
    }
    for a in actions {
        apply(&mut st, a, committed);
    }
    st
}

/// What one action of a change leaves in `st` (see [`predict`]).
fn apply(st: &mut SetState, a: &Action, committed: &Manifest) {
    if let Action::WriteParity { digest, .. } = a {
        if let Some(p) = st.parity.as_mut() {
            p.records.insert(*digest, RecordState::Listed);
        }
        return;
    }
    let root = match a {
        Action::Stage { root, .. }
        | Action::CommitManifest { root, .. }
        | Action::WriteManifest { root, .. }
        | Action::Unseal { root, .. }
        | Action::RemoveJunk { root, .. }
        | Action::WriteGolden { root, .. }
        | Action::WriteGoldenManifest { root, .. }
        | Action::WriteGoldenSignature { root, .. }
        | Action::WriteSealMarker { root, .. } => root,
        _ => return,
    };
    let Some(r) = st.replicas.iter_mut().find(|r| r.root == *root) else {
        return;
    };
    r.root_exists = true;
    match a {
        Action::Stage { digest, rel, .. } => {
            // IMPORTANT: a damaged file at the stage's name was observed as junk; the
            // stage replaces it, and its removal after the commit point would take
            // the only source of the restores that follow.
            r.junk.retain(|j| j != rel);
            r.staged.insert(*digest);
        }
        Action::CommitManifest {
            slot, generation, ..
        }
        | Action::WriteManifest {
            slot, generation, ..
        } => {
            if r.slots.len() <= *slot {
                r.slots.resize(*slot + 1, SlotState::Missing);
            }
            r.slots[*slot] = SlotState::Intact(*generation);
            r.manifest = Some(std::sync::Arc::new(committed.clone()));
            r.current_slot = Some(*slot);
            r.slot_current = r
                .slots
                .iter()
                .map(|s| *s == SlotState::Intact(*generation))
                .collect();
            r.generation_floor = Some(r.generation_floor.unwrap_or(0).max(*generation));
        }
        Action::Unseal { .. } => r.sealed = false,
        Action::RemoveJunk { rel, .. } => r.junk.retain(|j| j != rel),
        Action::WriteGolden { path, .. } => {
            if let Some(e) = committed.entries.get(path) {
                r.files.insert(
                    path.clone(),
                    FileState::File {
                        size: e.size,
                        mode: e.mode,
                        owner: e.owner.unwrap_or_default(),
                        digest: Some(e.digest),
                    },
                );
            }
        }
        Action::WriteGoldenManifest { generation, .. } => {
            r.slots = vec![SlotState::Intact(*generation)];
            r.current_slot = Some(0);
            r.manifest = Some(std::sync::Arc::new(committed.clone()));
        }
        Action::WriteGoldenSignature { .. } => r.signature_file = true,
        Action::WriteSealMarker { .. } => r.sealed = true,
        _ => {}
    }
}

#[cfg(test)]
#[path = "change_tables.rs"]
mod tables;
