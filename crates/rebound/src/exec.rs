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
//! it). The remaining window is the few system calls between the last `lstat` and the
//! rename.
//!
//! A file written after the run started but before observe hashed it looks like
//! damage to observe, and to the check above it is unchanged. So a boot also passes
//! the time it started ([`execute_since`]): a target whose `ctime` lies in the run's
//! window ([`changed_during_run`]) was changed during the run and is left alone the
//! same way. The clock is the filesystem's own ([`Fs::clock_ns`]); a clock not to be
//! trusted (not set since power-on) gives no window, and a damaged file is then
//! repaired as before: a wrong "changed during this run" must never repeat at every
//! boot, or that file would never be repaired.
//!
//! A failed `Stage` stops the whole plan: it belongs to an intentional change
//! (`commit --remove`), which is all or nothing, and the removal it protects must
//! never happen without it.

use serde::Serialize;

use std::path::Path;

use crate::digest::HashAlgo;
use crate::durable::{hash_reader, Durable, CHUNK};
use crate::error::{Error, Result};
use crate::fs::{full, Fs, Kind};
use crate::manifest::Manifest;
use crate::names::MANIFEST_SLOTS;
use crate::plan::{Action, Plan, Prior};
use crate::relpath::RelPath;

/// What [`Error::Changed`] says about a file a boot (or the reconcile of a commit)
/// left alone.
pub const CHANGED_DURING_RUN: &str = "during this run: left as it is, checked at the next run";

/// What happened to one action.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub action: Action,
    /// `None` if it succeeded.
    pub error: Option<String>,
}

/// Nanoseconds in a second.
const NS: i128 = 1_000_000_000;

/// Whether a file whose last change is stamped `ctime_ns` was changed during a run
/// that started at `started_ns`, as seen at `now_ns` (all on the filesystem's clock,
/// [`Fs::clock_ns`]). True if the stamp lies between the two, both included.
///
/// - A filesystem that stamps whole seconds (vfat: 2 s; ext2/3 with small inodes: 1 s)
///   rounds a change made just after the start down to before it; a stamp without a
///   sub-second part therefore counts from the start rounded down to an even second
///   (a change up to 2 s before the run may then count: its repair waits one boot).
/// - The upper bound keeps a stamp from the future out: a file written while the clock
///   ran ahead of now (set back since, by NTP or an RTC) is not "changed during this
///   run", so it is repaired. A clock that went back during the run gives no window.
pub fn changed_during_run(ctime_ns: i128, started_ns: i128, now_ns: i128) -> bool {
    if now_ns < started_ns {
        return false;
    }
    let from = if ctime_ns.rem_euclid(NS) == 0 {
        started_ns - started_ns.rem_euclid(2 * NS)
    } else {
        started_ns
    };
    from <= ctime_ns && ctime_ns <= now_ns
}

/// The start of a run's window for a set, if its clock can be trusted: `started_ns`
/// (the run's start, [`Fs::clock_ns`]), unless a file rebound wrote in an earlier run
/// is stamped later (`newest_own_ns`, [`crate::observe::ReplicaState::own_stamp_ns`]
/// over the set's replicas): then the clock went back since, and stamps of earlier
/// runs may fall in this run's window. A device whose clock restarts from the same
/// date at every power-on is the case: a boot that repairs (or leaves) a file writes
/// its last-repair record after it, so at the next boot that record is stamped after
/// the start, and the file is repaired then.
pub fn window_start(started_ns: Option<i128>, newest_own_ns: Option<i128>) -> Option<i128> {
    started_ns.filter(|s| newest_own_ns.is_none_or(|o| o <= *s))
}

/// Carries out `plan`, returning what happened to each action.
pub fn execute(d: &Durable<'_>, plan: &Plan) -> Vec<Outcome> {
    execute_since(d, plan, None)
}

/// As [`execute`], for a run that started at `started_ns` on the filesystem's clock
/// ([`Fs::clock_ns`], taken before anything was observed): a file to be replaced or
/// removed whose `ctime` is in the run's window ([`changed_during_run`]) is left as
/// it is and reported, like one that changed after it was observed. `None`: no window
/// (the clock is not trusted), only the content check.
pub fn execute_since(d: &Durable<'_>, plan: &Plan, started_ns: Option<i128>) -> Vec<Outcome> {
    let mut out = Vec::new();
    let mut failed = false;
    let mut stopped = false;
    for a in &plan.actions {
        if stopped {
            out.push(Outcome {
                action: a.clone(),
                error: Some("skipped: staging failed, so nothing of this change was done".into()),
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
        let r = run(d, plan, a, started_ns);
        if r.is_err() {
            failed = true;
            // IMPORTANT: a removal after a failed stage could lose the last copy.
            stopped |= matches!(a, Action::Stage { .. });
        }
        out.push(Outcome {
            action: a.clone(),
            error: r.err().map(|e| e.to_string()),
        });
    }
    out
}

fn run(d: &Durable<'_>, plan: &Plan, a: &Action, started_ns: Option<i128>) -> Result<()> {
    match a {
        Action::RemoveJunk { root, rel } | Action::RemoveStaged { root, rel } => {
            d.remove_file(root, rel)
        }
        Action::RemoveStale { root, path, digest } => {
            let algo = plan_algo(plan)?;
            let prior = Prior::File { digest: *digest };
            // Already gone is what this action wants; anything else must be unchanged.
            d.remove_file_guarded(root, path, &|| match d.fs().metadata(root, path)? {
                None => Ok(()),
                Some(_) => unchanged(d.fs(), root, path, prior, algo, started_ns),
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
            let mut src = d.fs().open_read(&from.root, &from.rel)?;
            d.write_file_guarded(
                root,
                path,
                *mode,
                *owner,
                &mut *src,
                &full(&from.root, &from.rel),
                algo,
                Some(*digest),
                &|| unchanged(d.fs(), root, path, *prior, algo, started_ns),
            )
            .map(|_| ())
        }
        Action::Stage {
            root,
            rel,
            from,
            digest,
            mode,
        } => {
            let mut src = d.fs().open_read(&from.root, &from.rel)?;
            // Staged content is rebound's own: it gets the mode, and its owner only
            // when the restore from it gives the file its place.
            d.write_file(
                root,
                rel,
                *mode,
                None,
                &mut *src,
                &full(&from.root, &from.rel),
                plan_algo(plan)?,
                Some(*digest),
            )
            .map(|_| ())
        }
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
                .as_ref()
                .filter(|m| m.generation == *generation)
                .ok_or_else(|| Error::Usage("internal: plan without its manifest".into()))?;
            write_manifest(d, root, &plan.set, *slot, m)
        }
        Action::WriteTag { root, rel, value } => {
            d.write_bytes(root, rel, 0o644, format!("{value}\n").as_bytes())
        }
    }
}

/// `Ok` if `rel` is still what observe saw there (`prior`) and, in a run that started
/// at `started_ns`, was not changed since then; else [`Error::Changed`]. A regular file
/// is `lstat`ed, hashed and `lstat`ed again: a write that lands while it is hashed
/// changes its size, mtime or ctime. Its `ctime` tells a write that landed after the
/// run started but before observe hashed it (observe then saw that content).
fn unchanged(
    fs: &dyn Fs,
    root: &Path,
    rel: &RelPath,
    prior: Prior,
    algo: HashAlgo,
    started_ns: Option<i128>,
) -> Result<()> {
    let changed = || Error::Changed {
        path: full(root, rel),
        what: CHANGED_DURING_RUN,
    };
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
            // IMPORTANT: the clock is read after the `lstat`s, so `now` is never
            // earlier than the stamp they saw.
            if let (Some(start), Some(at)) = (started_ns, fs.clock_ns()) {
                if changed_during_run(before.ctime_ns, start, at) {
                    return Err(changed());
                }
            }
            Ok(())
        }
    }
}

fn plan_algo(plan: &Plan) -> Result<crate::digest::HashAlgo> {
    plan.manifest
        .as_ref()
        .map(|m| m.hash)
        .ok_or_else(|| Error::Usage("internal: plan without its manifest".into()))
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
    m: &Manifest,
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
    m: &Manifest,
    guard: &dyn Fn() -> Result<()>,
) -> Result<()> {
    let name = MANIFEST_SLOTS
        .get(slot)
        .copied()
        .unwrap_or(MANIFEST_SLOTS[0]);
    d.write_bytes_guarded(root, &RelPath::meta(set, name), 0o644, &m.encode(), guard)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i128 = NS;

    #[test]
    fn a_stamp_between_the_start_and_now_is_changed_during_the_run() {
        let start = 100 * S + 300;
        assert!(changed_during_run(start, start, start + S));
        assert!(changed_during_run(start + 5, start, start + S));
        assert!(changed_during_run(start + S, start, start + S));
        // Before the run: damage, repaired.
        assert!(!changed_during_run(start - 1, start, start + S));
    }

    #[test]
    fn a_whole_second_stamp_counts_from_the_start_rounded_down_to_two_seconds() {
        // vfat stamps 101.000 s a change made at 101.3 s, after a start at 101.2 s.
        let start = 101 * S + 200_000_000;
        assert!(changed_during_run(100 * S, start, start + S));
        assert!(changed_during_run(101 * S, start, start + S));
        assert!(!changed_during_run(98 * S, start, start + S));
        // A fine-grained stamp is not rounded.
        assert!(!changed_during_run(101 * S + 100_000_000, start, start + S));
    }

    #[test]
    fn a_clock_behind_a_stamp_of_an_earlier_run_gives_no_window() {
        assert_eq!(window_start(Some(10 * S), None), Some(10 * S));
        assert_eq!(window_start(Some(10 * S), Some(9 * S)), Some(10 * S));
        assert_eq!(window_start(Some(10 * S), Some(11 * S)), None);
        assert_eq!(window_start(None, Some(9 * S)), None);
    }

    #[test]
    fn a_stamp_from_the_future_or_a_clock_gone_back_is_not_changed_during_the_run() {
        // Written while the clock ran ahead (set back since): repaired.
        let start = 1_000 * S;
        assert!(!changed_during_run(5_000 * S + 7, start, start + S));
        // The clock went back during the run: no window at all.
        assert!(!changed_during_run(start - S / 2, start, start - S));
        assert!(!changed_during_run(start + 3, start, start - S));
    }
}
