//! The planner against the case tables of docs/design.md section 3, without I/O: each
//! test builds the observed state by hand (what observe would have seen), plans, and
//! checks the authority, the findings and the ordered actions. One test per row.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::Path;

use super::*;
use crate::config::Config;
use crate::digest::HashAlgo;
use crate::manifest::Entry;
use crate::observe::{FileState, Observed, ReplicaState, SetState, SlotState, TagState};

pub(crate) const ALGO: HashAlgo = HashAlgo::Blake3;

pub(crate) fn p(s: &str) -> RelPath {
    RelPath::new(s).unwrap()
}

pub(crate) fn set(text: &str) -> SetConfig {
    let c = Config::parse(text, Path::new("/etc/rebound.toml")).unwrap();
    c.sets.into_iter().next().unwrap()
}

pub(crate) fn golden_set(copies: &[&str]) -> SetConfig {
    let copies: Vec<String> = copies.iter().map(|c| format!("'{c}'")).collect();
    set(&format!(
        "[[set]]\nname='s'\nmode='golden'\nlive='/live'\ngolden='/gold'\ncopies=[{}]\ninclude=['**']\nhash='blake3'\n",
        copies.join(",")
    ))
}

pub(crate) fn mirror_set() -> SetConfig {
    set("[[set]]\nname='s'\nmode='mirror'\nreplicas=['/a','/b']\ninclude=['apps/**']\nhash='blake3'\nversion_file='ver.txt'\n")
}

pub(crate) fn entry(content: &str, mode: u32) -> Entry {
    Entry {
        size: content.len() as u64,
        mode,
        owner: None,
        digest: ALGO.digest(content.as_bytes()),
    }
}

pub(crate) fn manifest(generation: u64, tag: Option<i64>, files: &[(&str, &str)]) -> Manifest {
    let mut m = Manifest::new("s", generation, ALGO, tag);
    for (path, content) in files {
        m.entries.insert(p(path), entry(content, 0o644));
    }
    m
}

pub(crate) fn file(content: &str) -> FileState {
    file_mode(content, 0o644)
}

pub(crate) fn file_mode(content: &str, mode: u32) -> FileState {
    FileState::File {
        size: content.len() as u64,
        mode,
        owner: Owner::default(),
        digest: Some(ALGO.digest(content.as_bytes())),
    }
}

pub(crate) fn files(list: &[(&str, FileState)]) -> BTreeMap<RelPath, FileState> {
    list.iter().map(|(k, v)| (p(k), v.clone())).collect()
}

/// A writable replica holding `m` in both slots (none if `None`), and `list`.
pub(crate) fn writable(
    root: &str,
    m: Option<Manifest>,
    list: &[(&str, FileState)],
) -> ReplicaState {
    let mut r = ReplicaState::blank(Path::new(root), Role::Writable, true, Observed::Full);
    match m {
        Some(m) => {
            let g = m.generation;
            r.slots = vec![SlotState::Intact(g), SlotState::Intact(g)];
            r.current_slot = Some(0);
            r.slot_current = vec![true, true];
            r.generation_floor = Some(g);
            r.manifest = Some(std::sync::Arc::new(m));
        }
        None => {
            r.slots = vec![SlotState::Missing, SlotState::Missing];
            r.slot_current = vec![false, false];
        }
    }
    r.files = files(list);
    r
}

/// A golden replica, fully observed (as `verify` sees it), sealed or not.
pub(crate) fn golden(
    m: Option<Manifest>,
    sealed: bool,
    list: &[(&str, FileState)],
) -> ReplicaState {
    let mut r = ReplicaState::blank(Path::new("/gold"), Role::Golden, true, Observed::Full);
    match m {
        Some(m) => {
            r.slots = vec![SlotState::Intact(m.generation)];
            r.current_slot = Some(0);
            r.manifest = Some(std::sync::Arc::new(m));
        }
        None => r.slots = vec![SlotState::Missing],
    }
    r.sealed = sealed;
    r.files = files(list);
    r
}

/// A sealed golden copy whose manifest (generation 1) and file `x` hold `content`.
pub(crate) fn factory(content: &str) -> ReplicaState {
    golden(
        Some(manifest(1, None, &[("x", content)])),
        true,
        &[("x", file(content))],
    )
}

pub(crate) fn state(replicas: Vec<ReplicaState>) -> SetState {
    SetState {
        set: "s".into(),
        hash: ALGO,
        replicas,
        parity: None,
        threads: 1,
    }
}

/// The actions in order, each as `kind root path [from]`: what the tables name.
pub(crate) fn actions(plan: &Plan) -> Vec<String> {
    plan.actions
        .iter()
        .map(|a| match a {
            Action::RemoveJunk { root, rel } => format!("remove_junk {} {rel}", root.display()),
            Action::RemoveStaged { root, rel } => {
                format!("remove_staged {} {rel}", root.display())
            }
            Action::RemoveStale { root, path, .. } => {
                format!("remove_stale {} {path}", root.display())
            }
            Action::MoveAside { root, path, .. } => {
                format!("move_aside {} {path}", root.display())
            }
            Action::Restore {
                root, path, from, ..
            } => format!(
                "restore {} {path} from {} ({:?})",
                root.display(),
                from.root.display(),
                from.kind
            ),
            Action::Stage { root, rel, .. } => format!("stage {} {rel}", root.display()),
            Action::SetMeta { root, path, .. } => format!("set_meta {} {path}", root.display()),
            Action::WriteManifest {
                root,
                slot,
                generation,
            } => format!(
                "write_manifest {} slot {slot} gen {generation}",
                root.display()
            ),
            Action::WriteTag { root, value, .. } => {
                format!("write_tag {} {value}", root.display())
            }
            Action::SyncFile { root, path } => format!("sync_file {} {path}", root.display()),
            Action::CommitManifest {
                root,
                slot,
                generation,
                checked,
            } => format!(
                "commit_manifest {} slot {slot} gen {generation} checked {}",
                root.display(),
                checked.len()
            ),
            Action::Unseal { root, .. } => format!("unseal {}", root.display()),
            Action::WriteGolden { root, path, .. } => {
                format!("write_golden {} {path}", root.display())
            }
            Action::WriteGoldenManifest { root, generation } => {
                format!("write_golden_manifest {} gen {generation}", root.display())
            }
            Action::WriteGoldenSignature { root, .. } => {
                format!("write_golden_signature {}", root.display())
            }
            Action::WriteSealMarker { root, .. } => {
                format!("write_seal_marker {}", root.display())
            }
            Action::WriteParity { root, from, .. } => format!(
                "write_parity {} from {} ({:?})",
                root.display(),
                from.root.display(),
                from.kind
            ),
            Action::RemoveParity { root, rel } => format!("remove_parity {} {rel}", root.display()),
        })
        .collect()
}

pub(crate) fn findings(plan: &Plan) -> Vec<String> {
    plan.findings
        .iter()
        .map(|f| format!("{} {} {}", f.problem, f.root.display(), f.path))
        .collect()
}

pub(crate) fn planned(set: &SetConfig, st: &SetState) -> Plan {
    complete(plan(set, st).unwrap())
}

/// The complete plan; a request for more observation fails the test.
pub(crate) fn complete<T: std::fmt::Debug>(p: Planned<T>) -> T {
    match p {
        Planned::Complete(t) => t,
        Planned::Need(n) => panic!("the plan asks for more observation: {n:?}"),
    }
}

// ---------------------------------------------------------------------------------
// Choosing the authority (the first table of section 3)

#[test]
fn authority_upgrade_by_version_tag_adopts_the_upgraded_replicas_files() {
    let s = mirror_set();
    let m = manifest(2, Some(1), &[("apps/x", "v1")]);
    let mut a = writable("/a", Some(m.clone()), &[("apps/x", file("v1"))]);
    a.tag = TagState::Value(1);
    let mut b = writable("/b", Some(m), &[("apps/x", file("v2"))]);
    b.tag = TagState::Value(3);
    let plan = planned(&s, &state(vec![a, b]));
    assert_eq!(
        plan.authority,
        Authority::Upgrade {
            root: "/b".into(),
            tag: 3
        }
    );
    assert_eq!((plan.generation, plan.tag), (3, Some(3)));
    assert_eq!(findings(&plan), ["corrupt /a apps/x"]);
    assert_eq!(
        actions(&plan),
        [
            // The upgraded replica records the upgrade first (the commit point)...
            "write_manifest /b slot 1 gen 3",
            "write_manifest /b slot 0 gen 3",
            // ... then the other is brought to it: content, manifest, tag last.
            "restore /a apps/x from /b (Writable)",
            "write_manifest /a slot 1 gen 3",
            "write_manifest /a slot 0 gen 3",
            "write_tag /a 3",
        ]
    );
}

#[test]
fn authority_the_highest_manifest_wins_wherever_it_is() {
    let s = golden_set(&["/copy"]);
    // The copy holds the newer generation (a cut left live behind).
    let live = writable(
        "/live",
        Some(manifest(2, None, &[("x", "v1")])),
        &[("x", file("v1"))],
    );
    let copy = writable(
        "/copy",
        Some(manifest(3, None, &[("x", "v2")])),
        &[("x", file("v2"))],
    );
    let gold = factory("v0");
    let plan = planned(&s, &state(vec![live, gold, copy]));
    assert_eq!(
        plan.authority,
        Authority::Manifest {
            root: "/copy".into(),
            generation: 3
        }
    );
    assert_eq!(plan.generation, 3);
    assert_eq!(findings(&plan), ["corrupt /live x"]);
    assert_eq!(
        actions(&plan),
        [
            "restore /live x from /copy (Writable)",
            "write_manifest /live slot 1 gen 3",
            "write_manifest /live slot 0 gen 3",
        ]
    );
}

#[test]
fn authority_golden_when_no_writable_replica_has_a_manifest() {
    let s = golden_set(&[]);
    let live = writable("/live", None, &[("x", FileState::Missing)]);
    let gold = factory("v0");
    let plan = planned(&s, &state(vec![live, gold]));
    assert_eq!(
        plan.authority,
        Authority::Golden {
            root: "/gold".into()
        }
    );
    assert_eq!(findings(&plan), ["missing /live x"]);
    assert_eq!(
        actions(&plan),
        [
            "restore /live x from /gold (Golden)",
            "write_manifest /live slot 0 gen 1",
            "write_manifest /live slot 1 gen 1",
        ]
    );
}

#[test]
fn authority_none_when_golden_is_not_sealed_and_nothing_else_has_a_manifest() {
    let s = golden_set(&[]);
    let live = writable("/live", None, &[("x", file("v0"))]);
    let gold = golden(
        Some(manifest(1, None, &[("x", "v0")])),
        false,
        &[("x", file("v0"))],
    );
    let e = plan(&s, &state(vec![live, gold])).unwrap_err().0;
    assert!(e.contains("/gold") && e.contains("seal"), "{e}");
}

#[test]
fn authority_none_when_the_newest_manifest_uses_another_hash() {
    let s = golden_set(&[]);
    let mut live = writable(
        "/live",
        Some(manifest(3, None, &[("x", "v2")])),
        &[("x", file("v2"))],
    );
    live.slots[1] = SlotState::OtherHash {
        generation: 4,
        hash: HashAlgo::Sha256,
    };
    let gold = factory("v0");
    let e = plan(&s, &state(vec![live, gold])).unwrap_err().0;
    assert!(e.contains("sha256") && e.contains("blake3"), "{e}");
}

#[test]
fn authority_adopt_on_a_mirror_sets_first_run_takes_the_highest_tag() {
    let s = mirror_set();
    let mut a = writable("/a", None, &[("apps/x", file("old"))]);
    a.tag = TagState::Missing;
    let mut b = writable("/b", None, &[("apps/x", file("new"))]);
    b.tag = TagState::Value(2);
    let plan = planned(&s, &state(vec![a, b]));
    assert_eq!(plan.authority, Authority::Adopt { root: "/b".into() });
    assert_eq!(plan.tag, Some(2));
    assert_eq!(plan.generation, 1);
    assert_eq!(
        actions(&plan),
        [
            "write_manifest /b slot 0 gen 1",
            "write_manifest /b slot 1 gen 1",
            "restore /a apps/x from /b (Writable)",
            "write_manifest /a slot 0 gen 1",
            "write_manifest /a slot 1 gen 1",
            "write_tag /a 2",
        ]
    );
}

#[test]
fn authority_adopt_without_tags_takes_the_first_replica_holding_a_file() {
    let s = set("[[set]]\nname='s'\nmode='mirror'\nreplicas=['/a','/b','/c']\ninclude=['apps/**']\nhash='blake3'\n");
    let a = writable("/a", None, &[("apps/x", FileState::Missing)]);
    let b = writable("/b", None, &[("apps/x", file("b"))]);
    let c = writable("/c", None, &[("apps/x", file("c"))]);
    let plan = planned(&s, &state(vec![a, b, c]));
    assert_eq!(plan.authority, Authority::Adopt { root: "/b".into() });
    assert_eq!(findings(&plan), ["missing /a apps/x", "corrupt /c apps/x"]);
    assert_eq!(
        actions(&plan),
        [
            "write_manifest /b slot 0 gen 1",
            "write_manifest /b slot 1 gen 1",
            "restore /a apps/x from /b (Writable)",
            "restore /c apps/x from /b (Writable)",
            "write_manifest /a slot 0 gen 1",
            "write_manifest /a slot 1 gen 1",
            "write_manifest /c slot 0 gen 1",
            "write_manifest /c slot 1 gen 1",
        ]
    );
}

#[test]
fn authority_none_when_the_golden_manifest_is_damaged_and_nothing_else_has_one() {
    let s = golden_set(&[]);
    let live = writable("/live", None, &[("x", file("v0"))]);
    let mut gold = golden(None, true, &[("x", file("v0"))]);
    gold.slots = vec![SlotState::Damaged("bad checksum".into())];
    let e = plan(&s, &state(vec![live, gold])).unwrap_err().0;
    assert!(
        e.contains("/gold") && e.contains("bad checksum") && e.contains("reseal"),
        "{e}"
    );
}

#[test]
fn authority_empty_when_there_is_nothing_anywhere() {
    let s = mirror_set();
    let mut a = writable("/a", None, &[]);
    a.tag = TagState::Missing;
    let mut b = writable("/b", None, &[]);
    b.tag = TagState::Missing;
    let plan = planned(&s, &state(vec![a, b]));
    assert_eq!(plan.authority, Authority::Empty);
    assert!(plan.findings.is_empty(), "{plan:?}");
    assert!(plan.actions.is_empty(), "{plan:?}");
}

#[test]
fn a_damaged_slot_claiming_a_higher_generation_is_a_floor_for_the_next() {
    let s = golden_set(&[]);
    let mut live = writable(
        "/live",
        Some(manifest(3, None, &[("x", "v2")])),
        &[("x", file("v2"))],
    );
    live.slots[1] = SlotState::Damaged("torn".into());
    live.slot_current = vec![true, false];
    live.generation_floor = Some(5);
    let gold = factory("v0");
    let plan = planned(&s, &state(vec![live, gold]));
    assert_eq!(plan.generation, 6, "{plan:?}");
    assert_eq!(
        plan.authority,
        Authority::Manifest {
            root: "/live".into(),
            generation: 3
        }
    );
    assert_eq!(
        actions(&plan),
        [
            "write_manifest /live slot 1 gen 6",
            "write_manifest /live slot 0 gen 6"
        ]
    );
    assert!(
        findings(&plan).contains(&"manifest_damaged /live .rebound/s/manifest.1".to_string()),
        "{:?}",
        findings(&plan)
    );
}

// ---------------------------------------------------------------------------------
// Deciding each path (the second table)

fn committed_v2() -> Manifest {
    manifest(3, None, &[("x", "v2")])
}

#[test]
fn path_a_writable_copy_is_the_source_before_golden() {
    let s = golden_set(&["/copy"]);
    let live = writable("/live", Some(committed_v2()), &[("x", file("torn"))]);
    let copy = writable("/copy", Some(committed_v2()), &[("x", file("v2"))]);
    let gold = factory("v2");
    let plan = planned(&s, &state(vec![live, gold, copy]));
    assert_eq!(findings(&plan), ["corrupt /live x"]);
    assert_eq!(actions(&plan), ["restore /live x from /copy (Writable)"]);
}

#[test]
fn path_intact_content_with_another_mode_gets_its_mode_back_not_its_content() {
    let s = golden_set(&[]);
    let live = writable(
        "/live",
        Some(committed_v2()),
        &[("x", file_mode("v2", 0o4755))],
    );
    let gold = factory("v0");
    let plan = planned(&s, &state(vec![live, gold]));
    assert_eq!(findings(&plan), ["wrong_mode /live x"]);
    assert_eq!(actions(&plan), ["set_meta /live x"]);
}

#[test]
fn path_staged_content_is_the_source_when_no_copy_holds_it() {
    let s = golden_set(&[]);
    let mut live = writable("/live", Some(committed_v2()), &[("x", FileState::Missing)]);
    live.staged.insert(ALGO.digest(b"v2"));
    // Golden holds the same content: the staged copy still comes first.
    let gold = factory("v2");
    let plan = planned(&s, &state(vec![live, gold]));
    assert_eq!(findings(&plan), ["missing /live x"]);
    let stage = format!(
        "remove_staged /live .rebound/s/stage/{}",
        ALGO.digest(b"v2")
    );
    assert_eq!(
        actions(&plan),
        ["restore /live x from /live (Staged)".to_string(), stage]
    );
}

#[test]
fn path_golden_is_the_source_when_it_holds_the_committed_content() {
    let s = golden_set(&[]);
    let live = writable("/live", Some(committed_v2()), &[("x", file("torn"))]);
    let gold = factory("v2");
    let plan = planned(&s, &state(vec![live, gold]));
    assert_eq!(findings(&plan), ["corrupt /live x"]);
    assert_eq!(actions(&plan), ["restore /live x from /gold (Golden)"]);
}

#[test]
fn path_factory_fallback_restores_the_golden_version_at_a_new_generation() {
    let s = golden_set(&[]);
    let live = writable("/live", Some(committed_v2()), &[("x", file("torn"))]);
    let gold = factory("v0");
    let plan = planned(&s, &state(vec![live, gold]));
    assert_eq!(plan.generation, 4);
    assert_eq!(
        findings(&plan),
        ["factory_fallback /gold x", "corrupt /live x"]
    );
    assert_eq!(
        actions(&plan),
        [
            "restore /live x from /gold (Golden)",
            "write_manifest /live slot 1 gen 4",
            "write_manifest /live slot 0 gen 4",
        ]
    );
}

#[test]
fn path_lost_when_nothing_verifies_anywhere_and_the_file_is_left() {
    let s = golden_set(&[]);
    let live = writable("/live", Some(committed_v2()), &[("x", file("torn"))]);
    let gold = golden(
        Some(manifest(1, None, &[("x", "v0")])),
        true,
        &[("x", file("bitrot"))],
    );
    let plan = planned(&s, &state(vec![live, gold]));
    assert_eq!(plan.lost, [p("x")]);
    assert_eq!(
        findings(&plan),
        ["corrupt /live x", "golden_damaged /gold x", "lost /live x"]
    );
    // The file is left exactly as it is; the manifest already says what it should be.
    assert!(plan.actions.is_empty(), "{plan:?}");
}

#[test]
fn path_what_stands_in_the_way_is_moved_aside_before_the_restore() {
    let s = golden_set(&[]);
    let mut live = writable(
        "/live",
        Some(committed_v2()),
        &[(
            "x",
            FileState::NotFile {
                kind: "directory".into(),
            },
        )],
    );
    live.blocked.insert(p("x"), p("x"));
    let gold = factory("v2");
    let plan = planned(&s, &state(vec![live, gold]));
    assert_eq!(findings(&plan), ["not_a_file /live x"]);
    assert_eq!(
        actions(&plan),
        ["move_aside /live x", "restore /live x from /gold (Golden)"]
    );
}

// ---------------------------------------------------------------------------------
// Manifest slots (the third table)

#[test]
fn slots_a_replica_without_the_target_gets_it_in_both_slots() {
    let s = golden_set(&["/copy"]);
    let live = writable("/live", Some(committed_v2()), &[("x", file("v2"))]);
    // The copy's current manifest (generation 2) is in slot 0 only: the new one goes
    // to slot 1 first, so that a cut between the two writes leaves generation 2 whole.
    let mut copy = writable(
        "/copy",
        Some(manifest(2, None, &[("x", "v2")])),
        &[("x", file("v2"))],
    );
    copy.slots[1] = SlotState::Missing;
    copy.slot_current = vec![true, false];
    let gold = factory("v2");
    let plan = planned(&s, &state(vec![live, gold, copy]));
    assert!(plan.findings.is_empty(), "{plan:?}");
    assert_eq!(
        actions(&plan),
        [
            "write_manifest /copy slot 1 gen 3",
            "write_manifest /copy slot 0 gen 3",
        ]
    );
}

#[test]
fn slots_a_damaged_slot_is_reported_and_rewritten() {
    let s = golden_set(&[]);
    let mut live = writable("/live", Some(committed_v2()), &[("x", file("v2"))]);
    live.slots[1] = SlotState::Damaged("bad checksum".into());
    live.slot_current = vec![true, false];
    let gold = factory("v2");
    let plan = planned(&s, &state(vec![live, gold]));
    assert_eq!(
        findings(&plan),
        ["manifest_damaged /live .rebound/s/manifest.1"]
    );
    assert_eq!(actions(&plan), ["write_manifest /live slot 1 gen 3"]);
}

#[test]
fn slots_a_slot_left_behind_is_reported_and_rewritten() {
    let s = golden_set(&[]);
    let mut live = writable("/live", Some(committed_v2()), &[("x", file("v2"))]);
    live.slots[1] = SlotState::Intact(2);
    live.slot_current = vec![true, false];
    let gold = factory("v2");
    let plan = planned(&s, &state(vec![live, gold]));
    assert_eq!(
        findings(&plan),
        ["manifest_outdated /live .rebound/s/manifest.1"]
    );
    assert_eq!(actions(&plan), ["write_manifest /live slot 1 gen 3"]);
}

// ---------------------------------------------------------------------------------
// Parity as a source (docs/design.md section 2.5): a full copy first, then parity,
// then golden; records written before the manifests that name them, stale ones after.

fn parity_set() -> SetConfig {
    set("[[set]]\nname='s'\nmode='parity'\nlive='/live'\nparity='/par'\ninclude=['**']\nhash='blake3'\n")
}

fn parity_state(
    records: &[(&str, crate::parity_store::RecordState)],
) -> crate::parity_store::ParityState {
    crate::parity_store::ParityState {
        root: "/par".into(),
        root_exists: true,
        records: records
            .iter()
            .map(|(c, s)| (ALGO.digest(c.as_bytes()), s.clone()))
            .collect(),
        junk: Vec::new(),
        problems: Vec::new(),
        fits: BTreeMap::new(),
        analyze_all: false,
    }
}

fn fit(recoverable: bool) -> crate::parity::Fit {
    crate::parity::Fit {
        blocks: 10,
        damaged: if recoverable { 1 } else { 5 },
        recoverable,
        worst: (!recoverable).then_some((5, 1)),
    }
}

#[test]
fn parity_a_damaged_file_is_compared_with_its_record_then_rebuilt_from_it() {
    use crate::parity_store::RecordState;
    let s = parity_set();
    let m = manifest(3, None, &[("x", "v1"), ("y", "w")]);
    let live = writable(
        "/live",
        Some(m),
        &[("x", file("v1-damaged")), ("y", file("w"))],
    );
    let mut st = state(vec![live]);
    st.parity = Some(parity_state(&[
        ("v1", RecordState::Listed),
        ("w", RecordState::Listed),
    ]));
    // First the damaged copy is compared with the record: nothing is planned yet.
    match plan(&s, &st).unwrap() {
        Planned::Need(n) => assert_eq!(n.parity, vec![(0, p("x"), ALGO.digest(b"v1"), 2)]),
        Planned::Complete(p) => panic!("planned before the comparison: {:?}", actions(&p)),
    }
    st.parity
        .as_mut()
        .unwrap()
        .fits
        .insert((0, p("x")), Ok(fit(true)));
    let pl = planned(&s, &st);
    assert_eq!(actions(&pl), vec!["restore /live x from /par (Parity)"]);
    assert!(pl.lost.is_empty());
    // Beyond the record's recovery blocks: lost, left as it is.
    st.parity
        .as_mut()
        .unwrap()
        .fits
        .insert((0, p("x")), Ok(fit(false)));
    let pl = planned(&s, &st);
    assert_eq!(pl.lost, vec![p("x")]);
    assert!(actions(&pl).is_empty(), "{:?}", actions(&pl));
}

#[test]
fn parity_comes_before_golden_and_golden_after_parity_fails() {
    use crate::parity_store::RecordState;
    let mut s = golden_set(&[]);
    s.parity = parity_set().parity;
    let m = manifest(3, None, &[("x", "v1")]);
    let live = writable("/live", Some(m.clone()), &[("x", file("bad"))]);
    let g = golden(Some(m), true, &[("x", file("v1"))]);
    let mut st = state(vec![live, g]);
    st.parity = Some(parity_state(&[("v1", RecordState::Listed)]));
    st.parity
        .as_mut()
        .unwrap()
        .fits
        .insert((0, p("x")), Ok(fit(true)));
    assert_eq!(
        actions(&planned(&s, &st)),
        vec!["restore /live x from /par (Parity)"]
    );
    st.parity
        .as_mut()
        .unwrap()
        .fits
        .insert((0, p("x")), Ok(fit(false)));
    assert_eq!(
        actions(&planned(&s, &st)),
        vec!["restore /live x from /gold (Golden)"]
    );
    // A damaged record is never used: golden, and the record is rewritten from the
    // verified golden file (an intact copy as observed: before anything else).
    st.parity = Some(parity_state(&[(
        "v1",
        RecordState::Damaged("checksum".into()),
    )]));
    let pl = planned(&s, &st);
    assert_eq!(
        actions(&pl),
        vec![
            "write_parity /par from /gold (Golden)",
            "restore /live x from /gold (Golden)"
        ]
    );
    assert!(
        findings(&pl)
            .iter()
            .any(|f| f.starts_with("parity_damaged /par .rebound/s/parity/")),
        "{:?}",
        findings(&pl)
    );
}

#[test]
fn parity_mirror_copies_not_fitting_are_copied_from_the_rebuilt_one_after_it() {
    use crate::parity_store::RecordState;
    let mut s = mirror_set();
    s.parity = parity_set().parity;
    let m = manifest(3, Some(1), &[("apps/x", "v1")]);
    let a = writable("/a", Some(m.clone()), &[("apps/x", FileState::Missing)]);
    let b = writable("/b", Some(m), &[("apps/x", file("v1-bitrot"))]);
    let mut a = a;
    let mut b = b;
    a.tag = TagState::Value(1);
    b.tag = TagState::Value(1);
    let mut st = state(vec![a, b]);
    st.parity = Some(parity_state(&[("v1", RecordState::Listed)]));
    let f = &mut st.parity.as_mut().unwrap().fits;
    f.insert((0, p("apps/x")), Ok(fit(false)));
    f.insert((1, p("apps/x")), Ok(fit(true)));
    assert_eq!(
        actions(&planned(&s, &st)),
        vec![
            "restore /b apps/x from /par (Parity)",
            "restore /a apps/x from /b (Writable)"
        ]
    );
}

#[test]
fn parity_records_of_new_content_come_before_the_manifest_and_stale_ones_after() {
    use crate::parity_store::RecordState;
    let s = parity_set();
    // First run: the files are adopted; their records go before the first manifest.
    let live = writable("/live", None, &[("x", file("v1"))]);
    let mut st = state(vec![live]);
    st.parity = Some(parity_state(&[("old", RecordState::Listed)]));
    let acts = actions(&planned(&s, &st));
    let rec = acts
        .iter()
        .position(|a| a.starts_with("write_parity /par from /live"))
        .unwrap();
    let man = acts
        .iter()
        .position(|a| a.starts_with("write_manifest"))
        .unwrap();
    let stale = acts
        .iter()
        .position(|a| a.starts_with("remove_parity"))
        .unwrap();
    assert!(rec < man && man < stale, "{acts:?}");
    // No parity directory (unmounted): nothing about parity is planned.
    st.parity.as_mut().unwrap().root_exists = false;
    let acts = actions(&planned(&s, &st));
    assert!(acts.iter().all(|a| !a.contains("parity")), "{acts:?}");
}

/// Review of issue 16: golden is read lazily at boot, and only if parity cannot help:
/// while the damaged copy is being compared with its record nothing of golden is asked
/// for, and a copy that fits is rebuilt without golden ever being read.
#[test]
fn review_parity_a_lazy_golden_copy_is_not_read_while_parity_can_help() {
    use crate::parity_store::RecordState;
    let mut s = golden_set(&[]);
    s.parity = parity_set().parity;
    let m = manifest(3, None, &[("x", "v1")]);
    let live = writable("/live", Some(m), &[("x", file("bad"))]);
    let mut g = golden(None, true, &[]);
    g.observed = Observed::Lazy;
    g.slots = Vec::new();
    let mut st = state(vec![live, g]);
    st.parity = Some(parity_state(&[("v1", RecordState::Listed)]));
    match plan(&s, &st).unwrap() {
        Planned::Need(n) => {
            assert_eq!(n.parity, vec![(0, p("x"), ALGO.digest(b"v1"), 2)]);
            assert!(n.hash.is_empty() && !n.golden, "golden asked for: {n:?}");
        }
        Planned::Complete(p) => panic!("planned before the comparison: {:?}", actions(&p)),
    }
    st.parity
        .as_mut()
        .unwrap()
        .fits
        .insert((0, p("x")), Ok(fit(true)));
    assert_eq!(
        actions(&planned(&s, &st)),
        vec!["restore /live x from /par (Parity)"]
    );
    // Parity cannot help: now golden's file is asked for.
    st.parity
        .as_mut()
        .unwrap()
        .fits
        .insert((0, p("x")), Ok(fit(false)));
    match plan(&s, &st).unwrap() {
        Planned::Need(n) => assert!(n.golden || n.hash == vec![(1, p("x"))], "{n:?}"),
        Planned::Complete(p) => panic!("golden never asked for: {:?}", actions(&p)),
    }
}
