//! The change planner without I/O: `commit`, `update` and `seal` over hand-built
//! states, each test checking the whole ordered action list: the change up to its
//! commit point, then the boot after it.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::Path;

use super::*;
use crate::fs::Kind;
use crate::observe::ReplicaState;
use crate::plan::tables::{
    actions, complete, factory, file, findings, golden, golden_set, manifest, mirror_set, p, state,
    writable, ALGO,
};

fn meta(content: &str) -> Meta {
    Meta {
        kind: Kind::File,
        size: content.len() as u64,
        mode: 0o644,
        uid: 0,
        gid: 0,
        mtime_ns: 1,
        ctime_ns: 1,
        ino: 7,
        dev: 1,
    }
}

fn new_file(
    root: &str,
    path: &str,
    content: &str,
    kind: SourceKind,
    origin: Option<usize>,
) -> NewFile {
    NewFile {
        path: p(path),
        from: Source {
            root: root.into(),
            rel: p(path),
            kind,
        },
        digest: ALGO.digest(content.as_bytes()),
        meta: meta(content),
        mode: ModeRule::Source,
        origin,
    }
}

fn stage(content: &str) -> String {
    format!(
        ".rebound/s/stage/{}",
        ALGO.digest(content.as_bytes()).to_hex()
    )
}

#[test]
fn commit_stages_in_the_other_copy_syncs_commits_then_installs() {
    let s = golden_set(&["/copy"]);
    let m = manifest(1, None, &[("x", "v1")]);
    let live = writable("/live", Some(m.clone()), &[("x", file("v2"))]);
    let copy = writable("/copy", Some(m.clone()), &[("x", file("v1"))]);
    let st = state(vec![live, factory("v1"), copy]);
    let c = complete(
        plan_commit(
            &s,
            &st,
            &[new_file("/live", "x", "v2", SourceKind::Writable, Some(0))],
        )
        .unwrap(),
    );
    assert_eq!(c.recorded.len(), 1);
    assert_eq!(c.plan.generation, 2);
    assert_eq!(
        c.plan.authority,
        plan::Authority::Manifest {
            root: "/live".into(),
            generation: 2
        }
    );
    let staged = stage("v2");
    assert_eq!(
        actions(&c.plan),
        [
            // The change: content into the other copy first, the file synced where it
            // is, then the commit point (the slot not holding generation 1 first).
            format!("stage /copy {staged}"),
            "sync_file /live x".into(),
            "commit_manifest /live slot 1 gen 2 checked 1".into(),
            "write_manifest /live slot 0 gen 2".into(),
            // The boot after it.
            "restore /copy x from /live (Writable)".into(),
            "write_manifest /copy slot 1 gen 2".into(),
            "write_manifest /copy slot 0 gen 2".into(),
            format!("remove_staged /copy {staged}"),
        ]
    );
    // The restore that installs it is the only finding (the engine reports it as
    // installed, not as damage).
    assert_eq!(findings(&c.plan), ["corrupt /copy x"]);
    assert_eq!(c.plan.committed.as_ref().unwrap().generation, 2);
}

#[test]
fn update_stages_in_every_copy_and_commits_to_the_first() {
    let s = mirror_set();
    let m = manifest(3, Some(1), &[("apps/x", "v1")]);
    let mut a = writable("/a", Some(m.clone()), &[("apps/x", file("v1"))]);
    a.tag = TagState::Value(1);
    let mut b = writable("/b", Some(m), &[("apps/x", file("v1"))]);
    b.tag = TagState::Value(1);
    let st = state(vec![a, b]);
    let c = complete(
        plan_commit(
            &s,
            &st,
            &[new_file("/upd", "apps/x", "v2", SourceKind::Incoming, None)],
        )
        .unwrap(),
    );
    let staged = stage("v2");
    assert_eq!(
        actions(&c.plan),
        [
            format!("stage /a {staged}"),
            format!("stage /b {staged}"),
            "commit_manifest /a slot 1 gen 4 checked 0".into(),
            "write_manifest /a slot 0 gen 4".into(),
            "restore /a apps/x from /a (Staged)".into(),
            "restore /b apps/x from /a (Staged)".into(),
            "write_manifest /b slot 1 gen 4".into(),
            "write_manifest /b slot 0 gen 4".into(),
            format!("remove_staged /a {staged}"),
            format!("remove_staged /b {staged}"),
        ]
    );
}

#[test]
fn content_the_manifest_records_already_is_only_a_boot() {
    let s = golden_set(&[]);
    let mut m = manifest(1, None, &[("x", "v1")]);
    for e in m.entries.values_mut() {
        e.owner = Some(crate::manifest::Owner::default());
    }
    let st = state(vec![
        writable("/live", Some(m), &[("x", file("v1"))]),
        factory("v1"),
    ]);
    let c = complete(
        plan_commit(
            &s,
            &st,
            &[new_file("/live", "x", "v1", SourceKind::Writable, Some(0))],
        )
        .unwrap(),
    );
    assert!(c.recorded.is_empty());
    assert!(actions(&c.plan).is_empty(), "{:?}", actions(&c.plan));
}

#[test]
fn a_commit_asks_for_the_golden_manifest_before_choosing_its_generation() {
    let s = golden_set(&[]);
    let m = manifest(1, None, &[("x", "v1")]);
    let lazy = ReplicaState::blank(Path::new("/gold"), Role::Golden, true, Observed::Lazy);
    let live = writable("/live", Some(m), &[("x", file("v1")), ("y", file("new"))]);
    let st = state(vec![live, lazy]);
    let c = plan_commit(
        &s,
        &st,
        &[new_file("/live", "y", "new", SourceKind::Writable, Some(0))],
    )
    .unwrap();
    assert!(
        matches!(&c, Planned::Need(n) if n.golden && n.hash.is_empty()),
        "{c:?}"
    );
}

#[test]
fn seal_writes_golden_then_the_marker_then_the_commit_point_then_fills_the_copy() {
    let s = golden_set(&["/copy"]);
    let live = writable("/live", None, &[("x", file("v1")), ("y", file("w1"))]);
    let copy = writable("/copy", None, &[]);
    let st = state(vec![live, golden(None, false, &[]), copy]);
    let sealing = complete(plan_seal(&s, &st, false, None).unwrap());
    assert_eq!(
        actions(&sealing.plan),
        [
            "write_golden /gold x",
            "write_golden /gold y",
            "write_golden_manifest /gold gen 1",
            "write_seal_marker /gold",
            "commit_manifest /live slot 0 gen 1 checked 0",
            "write_manifest /live slot 1 gen 1",
            "restore /copy x from /live (Writable)",
            "restore /copy y from /live (Writable)",
            "write_manifest /copy slot 0 gen 1",
            "write_manifest /copy slot 1 gen 1",
        ]
    );
}

#[test]
fn a_sealed_golden_copy_is_resealed_only_with_force_and_unsealed_first() {
    let s = golden_set(&[]);
    let m = manifest(1, None, &[("x", "v1")]);
    let st = state(vec![
        writable("/live", Some(m), &[("x", file("v2"))]),
        factory("v1"),
    ]);
    let err = plan_seal(&s, &st, false, None).unwrap_err();
    assert!(err.to_string().contains("already sealed"), "{err}");
    let sealing = complete(plan_seal(&s, &st, true, None).unwrap());
    assert_eq!(
        actions(&sealing.plan),
        [
            "unseal /gold",
            "write_golden /gold x",
            "write_golden_manifest /gold gen 2",
            "write_seal_marker /gold",
            "commit_manifest /live slot 1 gen 2 checked 0",
            "write_manifest /live slot 0 gen 2",
        ]
    );
}

#[test]
fn a_mirror_seal_adopts_the_first_replica_at_the_highest_tag() {
    let s = mirror_set();
    let mut a = writable("/a", None, &[("apps/x", file("v1"))]);
    a.tag = TagState::Value(2);
    let mut b = writable("/b", None, &[]);
    b.tag = TagState::Value(5);
    let sealing = complete(plan_seal(&s, &state(vec![a, b]), false, None).unwrap());
    assert_eq!(sealing.plan.tag, Some(5));
    assert_eq!(
        actions(&sealing.plan),
        [
            "commit_manifest /a slot 0 gen 1 checked 0",
            "write_manifest /a slot 1 gen 1",
            "restore /b apps/x from /a (Writable)",
            "write_manifest /b slot 0 gen 1",
            "write_manifest /b slot 1 gen 1",
            "write_tag /a 5",
        ]
    );
}

#[test]
fn a_damaged_file_at_the_stage_name_is_replaced_by_the_stage_never_removed_after_it() {
    // Bit rot in a stage an earlier update left (it failed before its commit point):
    // observe lists it as junk. The new stage replaces it; removing it after the
    // commit point would take the only source of the restore (the file would then be
    // rolled back to the factory version by the next boot).
    let s = golden_set(&[]);
    let m = manifest(1, None, &[("x", "v1")]);
    let mut live = writable("/live", Some(m), &[("x", file("v1"))]);
    let staged = stage("v2");
    live.junk.push(p(&staged));
    let st = state(vec![live, factory("v1")]);
    let c = complete(
        plan_commit(
            &s,
            &st,
            &[new_file("/upd", "x", "v2", SourceKind::Incoming, None)],
        )
        .unwrap(),
    );
    assert_eq!(
        actions(&c.plan),
        [
            format!("stage /live {staged}"),
            "commit_manifest /live slot 1 gen 2 checked 0".into(),
            "write_manifest /live slot 0 gen 2".into(),
            "restore /live x from /live (Staged)".into(),
            format!("remove_staged /live {staged}"),
        ]
    );
}
