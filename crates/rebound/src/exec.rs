//! Execute: carry out a [`Plan`] through [`Durable`], in the plan's order.
//!
//! A failed action is recorded and the run goes on with the others (a boot check
//! should repair all it can), except that after a failed fsync ([`Error::Poisoned`])
//! nothing more is written, and staged content is only removed when everything before
//! it succeeded.
//!
//! A replica into which a restore failed still gets the new manifest and tag. The
//! manifest records the target the replica is verified against (not a claim that it
//! is complete: every boot hashes every file), and it is the only record of the files
//! that *were* restored. Holding back its tag would look safer against the vendor's
//! note 1 but is not: a copy whose higher tag was refused as an upgrade (it held no
//! files) would keep that tag, and once partly refilled would look upgraded at the next
//! boot, making a half-filled copy the truth.
//!
//! A file an application changes while the run works on it is never reverted or
//! removed: each `Restore` and `RemoveStale` carries what observe saw at its target
//! ([`Prior`]), and right before the rename (or the removal) the target is looked at
//! again: `lstat`, hash, `lstat`. If it is not what observe saw, the action is skipped
//! with [`Error::Changed`] ("changed during this run: left as it is, checked at the
//! next run"), like a failed restore: the file is not counted as intact, the run
//! exits 2, and the next run looks at it again (by then its owner may have committed
//! it). A boot also asks its change journal ([`Fs::changed_by_others`]): a file
//! changed after the boot watched its directory, even before observe hashed it (so
//! observe took the change for damage), is left the same way. The remaining windows:
//! a change before the watch, and the few system calls between the last `lstat` and
//! the rename.
//!
//! A failed `Stage` stops the whole plan: it belongs to an intentional change
//! (`commit --remove`), which is all or nothing, and the removal it protects must
//! never happen without it. So does any failure up to and including a plan's
//! [`Action::CommitManifest`] (`commit`, `update`, `seal`): the change is made whole
//! or not at all. After the commit point the plan is a boot's, best effort.

use serde::Serialize;

use std::path::Path;

use crate::digest::Digest;
use crate::digest::HashAlgo;
use crate::durable::Durable;
use crate::error::{Error, Result};
use crate::fs::{full, Fs, Kind};
use crate::hashing::{hash_reader, CHUNK};
use crate::keys::Signers;
use crate::manifest::Manifest;
use crate::names::{GOLDEN_MANIFEST, MANIFEST_SLOTS};
use crate::parity;
use crate::plan::{Action, Checked, Plan, Prior, Source, SourceKind};
use crate::relpath::RelPath;
use crate::sign::golden_manifest_bytes;

/// What [`Error::Changed`] says about a file a boot (or the reconcile of a commit)
/// left alone.
pub const CHANGED_DURING_RUN: &str = "during this run: left as it is, checked at the next run";

/// What [`Error::Changed`] says about a file `commit` refused to record.
pub const CHANGED_WHILE_COMMITTING: &str = "while committing; retry";

/// What happened to one action.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub action: Action,
    /// `None` if it succeeded.
    pub error: Option<String>,
}

/// Carries out `plan`, returning what happened to each action.
pub fn execute(d: &Durable<'_>, plan: &Plan) -> Vec<Outcome> {
    execute_signed(d, plan, Signers::NONE)
}

/// As [`execute`], the manifests written to writable copies carrying a MAC of each key
/// of `signers` (format version 3; none: version 2).
pub fn execute_signed(d: &Durable<'_>, plan: &Plan, signers: Signers<'_>) -> Vec<Outcome> {
    // An intentional change is all or nothing up to its commit point.
    let commit_at = plan
        .actions
        .iter()
        .position(|a| matches!(a, Action::CommitManifest { .. }));
    let mut out = Vec::new();
    let mut failed = false;
    let mut stopped: Option<&'static str> = None;
    for (i, a) in plan.actions.iter().enumerate() {
        if let Some(why) = stopped {
            out.push(Outcome {
                action: a.clone(),
                error: Some(why.into()),
            });
            continue;
        }
        if failed && matches!(a, Action::RemoveStaged { .. }) {
            out.push(Outcome {
                action: a.clone(),
                error: Some("skipped: an earlier action failed, so the staged copy is kept".into()),
            });
            continue;
        }
        let r = run(d, plan, a, signers);
        if r.is_err() {
            failed = true;
            // IMPORTANT: a removal after a failed stage could lose the last copy.
            if matches!(a, Action::Stage { .. }) {
                stopped = Some("skipped: staging failed, so nothing of this change was done");
            }
            // IMPORTANT: nothing of a change that did not reach its commit point may be
            // carried out (its restores would install content no manifest records).
            if commit_at.is_some_and(|c| i <= c) {
                stopped =
                    Some("skipped: the change failed before its commit point, so it was not made");
            }
        }
        out.push(Outcome {
            action: a.clone(),
            error: r.err().map(|e| e.to_string()),
        });
    }
    out
}

/// The first failure of an intentional change before (or at) its commit point: the
/// change was not made, and this says why. `None` when the plan has no commit point
/// or reached it.
pub fn change_failed(plan: &Plan, outcomes: &[Outcome]) -> Option<String> {
    let c = plan
        .actions
        .iter()
        .position(|a| matches!(a, Action::CommitManifest { .. }))?;
    outcomes.iter().take(c + 1).find_map(|o| o.error.clone())
}

fn run(d: &Durable<'_>, plan: &Plan, a: &Action, signers: Signers<'_>) -> Result<()> {
    let no_guard = || Ok(());
    match a {
        Action::RemoveJunk { root, rel }
        | Action::RemoveStaged { root, rel }
        | Action::RemoveParity { root, rel }
        | Action::Unseal { root, rel } => d.remove_file(root, rel),
        Action::WriteParity {
            root,
            rel,
            from,
            digest,
            size,
            block,
            redundancy,
        } => {
            let algo = plan_algo(plan)?;
            let src = d.fs().open_read(&from.root, &from.rel)?;
            let name = full(&from.root, &from.rel);
            let mut enc = parity::Encoder::new(src, algo, *digest, *size, *block, *redundancy);
            d.write_file_guarded(
                root, rel, 0o644, None, &mut enc, &name, algo, None, &no_guard,
            )
            .map(|_| ())
            .map_err(|err| match err {
                // The copy no longer holds what the plan read it as: it changed.
                Error::Io { ref source, .. }
                    if source.kind() == std::io::ErrorKind::InvalidData
                        && from.kind == SourceKind::Writable =>
                {
                    Error::Changed {
                        path: name.clone(),
                        what: if plan
                            .actions
                            .iter()
                            .any(|a| matches!(a, Action::CommitManifest { .. }))
                        {
                            CHANGED_WHILE_COMMITTING
                        } else {
                            CHANGED_DURING_RUN
                        },
                    }
                }
                other => other,
            })
        }
        Action::RemoveStale { root, path, digest } => {
            let algo = plan_algo(plan)?;
            let prior = Prior::File { digest: *digest };
            // Already gone is what this action wants; anything else must be unchanged.
            d.remove_file_guarded(root, path, &|| match d.fs().metadata(root, path)? {
                None => Ok(()),
                Some(_) => unchanged(d.fs(), root, path, prior, algo),
            })
        }
        Action::MoveAside { root, path, to } => d.move_aside(root, path, to),
        Action::Restore {
            root,
            path,
            from,
            digest,
            mode,
            prior,
            owner,
            ..
        } => {
            let algo = plan_algo(plan)?;
            let to = (root.as_path(), path, *mode, *owner);
            let guard = || unchanged(d.fs(), root, path, *prior, algo);
            if from.kind == SourceKind::Parity {
                return rebuild(d, algo, from, *digest, *prior, to, &guard);
            }
            copy(d, plan, from, *digest, to, &guard)
        }
        // Staged content is rebound's own: it gets the mode, and its owner only when
        // the restore from it gives the file its place.
        Action::Stage {
            root,
            rel,
            from,
            digest,
            mode,
        } => copy(d, plan, from, *digest, (root, rel, *mode, None), &no_guard).map_err(|err| {
            match err {
                // A file taken from where an application writes it no longer hashes
                // as it did: it changed.
                Error::Mismatch { .. } if from.kind == SourceKind::Writable => Error::Changed {
                    path: full(&from.root, &from.rel),
                    what: CHANGED_WHILE_COMMITTING,
                },
                other => other,
            }
        }),
        Action::WriteGolden {
            root,
            path,
            from,
            digest,
            mode,
            owner,
        } => copy(
            d,
            plan,
            from,
            *digest,
            (root, path, *mode, *owner),
            &no_guard,
        ),
        Action::SyncFile { root, path } => d.sync_file(root, path),
        Action::CommitManifest {
            root,
            slot,
            generation,
            checked,
        } => {
            let m = committed(plan, *generation)?;
            // IMPORTANT: the committed files are checked unchanged right before the
            // rename that makes this manifest the truth.
            let guard = || still_as_hashed(d.fs(), checked);
            write_manifest_guarded(d, root, &plan.set, *slot, (m, signers), &guard)
        }
        Action::WriteGoldenManifest { root, generation } => d.write_bytes(
            root,
            &RelPath::meta(&plan.set, GOLDEN_MANIFEST),
            0o444,
            &golden_manifest_bytes(committed(plan, *generation)?),
        ),
        Action::WriteGoldenSignature {
            root,
            rel,
            signature,
        } => d.write_bytes(root, rel, 0o444, signature.as_bytes()),
        Action::WriteSealMarker {
            root,
            rel,
            generation,
        } => d.write_bytes(
            root,
            rel,
            0o444,
            format!("sealed generation {generation}\n").as_bytes(),
        ),
        Action::SetMeta {
            root,
            path,
            mode,
            owner,
        } => d.set_meta(root, path, *mode, *owner),
        Action::WriteManifest {
            root,
            slot,
            generation,
        } => {
            let m = plan
                .manifest
                .as_deref()
                .filter(|m| m.generation == *generation)
                .map_or_else(|| committed(plan, *generation), Ok)?;
            write_manifest(d, root, &plan.set, *slot, (m, signers))
        }
        Action::WriteTag { root, rel, value } => {
            d.write_bytes(root, rel, 0o644, format!("{value}\n").as_bytes())
        }
    }
}

/// Where a copy goes: root, path, mode and owner.
type Target<'a> = (&'a Path, &'a RelPath, u32, Option<crate::manifest::Owner>);

/// Copies `from` (which must hash to `digest`) to `to` through the write protocol,
/// calling `guard` right before the rename.
fn copy(
    d: &Durable<'_>,
    plan: &Plan,
    from: &Source,
    digest: Digest,
    to: Target<'_>,
    guard: &dyn Fn() -> Result<()>,
) -> Result<()> {
    let (root, rel, mode, owner) = to;
    let mut src = d.fs().open_read(&from.root, &from.rel)?;
    let name = full(&from.root, &from.rel);
    let algo = plan_algo(plan)?;
    d.write_file_guarded(
        root,
        rel,
        mode,
        owner,
        &mut *src,
        &name,
        algo,
        Some(digest),
        guard,
    )
    .map(|_| ())
}

/// Rebuilds a damaged file from its own intact blocks and the parity record `from`,
/// through the write protocol: the rebuilt content must hash to `digest` before it
/// replaces the damaged copy (and `guard` must still hold right before the rename).
fn rebuild(
    d: &Durable<'_>,
    algo: HashAlgo,
    from: &Source,
    digest: Digest,
    prior: Prior,
    to: Target<'_>,
    guard: &dyn Fn() -> Result<()>,
) -> Result<()> {
    let (root, rel, mode, owner) = to;
    let record = d.fs().open_read(&from.root, &from.rel)?;
    // What stands there now is read if observe saw a regular file (a page the storage
    // refuses reads as zeros: a damaged block), or something it could not read (an
    // unreadable file is read the same way; a directory cannot be opened: no intact
    // block); a missing file offers none.
    let damaged: Box<dyn std::io::Read + Send + '_> = match prior {
        Prior::File { .. } => d.fs().open_read_damaged(root, rel)?,
        Prior::Other => d
            .fs()
            .open_read_damaged(root, rel)
            .unwrap_or_else(|_| Box::new(std::io::empty())),
        Prior::Missing => Box::new(std::io::empty()),
    };
    let mut src = parity::Rebuild::new(record, damaged, algo, digest);
    let name = full(&from.root, &from.rel);
    d.write_file_guarded(
        root,
        rel,
        mode,
        owner,
        &mut src,
        &name,
        algo,
        Some(digest),
        guard,
    )
    .map(|_| ())
}

/// `Ok` if every committed file still has the `lstat` it had when it was hashed.
fn still_as_hashed(fs: &dyn Fs, checked: &[Checked]) -> Result<()> {
    for c in checked {
        if fs.metadata(&c.root, &c.path)? != Some(c.meta) {
            return Err(Error::Changed {
                path: full(&c.root, &c.path),
                what: CHANGED_WHILE_COMMITTING,
            });
        }
    }
    Ok(())
}

/// `Ok` if nobody changed `rel` during the run, as far as the change journal knows,
/// and it is still what observe saw there (`prior`); else [`Error::Changed`]. A
/// regular file is `lstat`ed, hashed and `lstat`ed again: a write that lands while it
/// is hashed changes its size, mtime or ctime.
fn unchanged(fs: &dyn Fs, root: &Path, rel: &RelPath, prior: Prior, algo: HashAlgo) -> Result<()> {
    let changed = || Error::Changed {
        path: full(root, rel),
        what: CHANGED_DURING_RUN,
    };
    // Someone else changed it since the boot watched its directory, before or after
    // observe hashed it (the change journal, docs/design.md section 3.1).
    if fs.changed_by_others(root, rel) == Some(true) {
        return Err(changed());
    }
    match prior {
        Prior::Other => Ok(()),
        Prior::Missing => match fs.metadata(root, rel)? {
            None => Ok(()),
            Some(_) => Err(changed()),
        },
        Prior::File { digest } => {
            let Some(before) = fs.metadata(root, rel)?.filter(|m| m.kind == Kind::File) else {
                return Err(changed());
            };
            let mut r = fs.open_read(root, rel)?;
            let mut buf = vec![0u8; CHUNK];
            let now = hash_reader(&mut *r, &full(root, rel), algo, &mut buf)?;
            drop(r);
            if now != digest || fs.metadata(root, rel)? != Some(before) {
                return Err(changed());
            }
            Ok(())
        }
    }
}

/// The manifest of generation `generation` that the plan's change commits.
fn committed(plan: &Plan, generation: u64) -> Result<&Manifest> {
    plan.committed
        .as_ref()
        .filter(|m| m.generation == generation)
        .ok_or(Error::Internal("plan without the manifest it commits"))
}

fn plan_algo(plan: &Plan) -> Result<crate::digest::HashAlgo> {
    plan.manifest
        .as_ref()
        .map(|m| m.hash)
        .ok_or(Error::Internal("plan without its manifest"))
}

/// Writes a manifest into slot `slot` of a writable replica.
///
/// # Errors
/// As [`Durable::write_bytes`].
pub fn write_manifest(
    d: &Durable<'_>,
    root: &std::path::Path,
    set: &str,
    slot: usize,
    m: (&Manifest, Signers<'_>),
) -> Result<()> {
    write_manifest_guarded(d, root, set, slot, m, &|| Ok(()))
}

/// As [`write_manifest`], with `guard` called right before the slot is replaced (see
/// [`Durable::write_file_guarded`]).
///
/// # Errors
/// As [`Durable::write_bytes`], and `guard`'s error (nothing is written then).
pub fn write_manifest_guarded(
    d: &Durable<'_>,
    root: &std::path::Path,
    set: &str,
    slot: usize,
    (m, signers): (&Manifest, Signers<'_>),
    guard: &dyn Fn() -> Result<()>,
) -> Result<()> {
    let name = MANIFEST_SLOTS
        .get(slot)
        .copied()
        .unwrap_or(MANIFEST_SLOTS[0]);
    d.write_bytes_guarded(
        root,
        &RelPath::meta(set, name),
        0o644,
        &m.encode_for(signers, root),
        guard,
    )
}
