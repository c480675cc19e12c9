//! Mirror mode on the vendor script's layout (issue 3, seed 002): the system side
//! `usrapp/apprun/{apps/,app_ver.txt}` and the backup side
//! `usrdata/appbackup/{apps/,app_ver.txt}`. The vendor's scenarios A-D and test
//! methods 1-4, invalid tags, content (not only version) verification, commit, a copy
//! cut off half way, sets of three copies, and a golden set with an extra writable copy.

use rebound::testing::{Entry, Manifest};
use rebound::{HashAlgo, RelPath};

use crate::util::{Dir, DATA, SYS};

fn sys(rel: &str) -> String {
    format!("{SYS}/{rel}")
}

fn data(rel: &str) -> String {
    format!("{DATA}/{rel}")
}

fn tag(d: &Dir, root: &str) -> String {
    d.read(&format!("{root}/app_ver.txt")).trim().to_string()
}

/// Both sides hold the same apps tree and the same tag, `want`.
fn assert_in_step(d: &Dir, roots: &[&str], want_tag: &str) {
    let first = d.contents(&format!("{}/apps", roots[0]));
    assert!(!first.is_empty());
    for r in roots {
        assert_eq!(
            first,
            d.contents(&format!("{r}/apps")),
            "{r}/apps differs from {}/apps",
            roots[0]
        );
        assert_eq!(tag(d, r), want_tag, "{r}/app_ver.txt");
    }
}

fn vendor(name: &str) -> Dir {
    Dir::mirror_device(name, &[SYS, DATA])
}

/// A device after its first boot: both sides in step at version 1.
fn synced(name: &str) -> Dir {
    let d = vendor(name);
    d.run(["boot"], 0);
    assert_in_step(&d, &[SYS, DATA], "1");
    d
}

#[test]
fn scenario_a_first_boot_copies_apps_and_then_the_tag_to_the_empty_backup() {
    let d = vendor("scenario-a");
    std::fs::create_dir_all(d.path(DATA)).unwrap(); // the empty backup partition
    d.run(["verify"], 1);
    assert!(!d.exists(&data("apps")), "verify wrote");
    let r = d.run(["boot"], 0).says(&["first run", "result: repaired"]);
    assert_in_step(&d, &[SYS, DATA], "1");
    assert_eq!(d.read(&data("apps/app.bin")), "application v1\n");
    assert_eq!(d.read(&data("apps/lib/mod.py")), "VERSION = 1\n");
    // The tag is written after the content it vouches for (vendor note 1).
    let out = r.stdout();
    let tag_at = out.find("write version tag 1").unwrap();
    let last_file = out
        .rfind(&format!("restore {}", d.path(&data("apps")).display()))
        .unwrap();
    assert!(last_file < tag_at, "{out}");
    d.run(["boot"], 0).says(&["result: intact"]);
}

#[test]
fn scenario_b_reformatted_backup_partition_is_rebuilt_with_its_tag() {
    let d = synced("scenario-b");
    d.wipe("usrdata"); // find_partitions.sh reformatted usr_data: everything gone
    d.run(["boot"], 0).says(&["result: repaired"]);
    assert_in_step(&d, &[SYS, DATA], "1");
    d.run(["verify"], 0);
}

#[test]
fn scenario_c_and_method_3_upgrade_on_the_system_side_reaches_the_backup() {
    let d = synced("scenario-c");
    d.write(&sys("apps/app.bin"), "application v2\n");
    d.write(&sys("apps/new_feature.py"), "FEATURE = True\n");
    let t: i64 = tag(&d, SYS).parse().unwrap();
    d.write(&sys("app_ver.txt"), format!("{}\n", t + 1));
    // The report names what the upgrade changed: an upgrade is trusted whole, so a
    // file that rotted in that copy would show up here too.
    d.run(["boot"], 0).says(&[
        "version tag 2",
        "upgrade adopted",
        "1 changed (apps/app.bin), 1 added (apps/new_feature.py), 0 removed",
    ]);
    assert_in_step(&d, &[SYS, DATA], "2");
    assert_eq!(d.read(&data("apps/app.bin")), "application v2\n");
    assert_eq!(d.read(&data("apps/new_feature.py")), "FEATURE = True\n");
    d.run(["boot"], 0).says(&["result: intact"]);
}

#[test]
fn method_4_upgrade_on_the_backup_side_reaches_the_system() {
    let d = synced("method-4");
    d.write(&data("apps/added.cfg"), "added=1\n");
    d.write(&data("apps/params.cfg"), "baud=9600\n");
    d.write(&data("app_ver.txt"), "2\n");
    d.run(["boot"], 0).says(&["upgrade adopted"]);
    assert_in_step(&d, &[SYS, DATA], "2");
    assert_eq!(d.read(&sys("apps/added.cfg")), "added=1\n");
    assert_eq!(d.read(&sys("apps/params.cfg")), "baud=9600\n");
}

fn scenario_d(name: &str, keep_factory_metadata: bool) {
    let d = vendor(name);
    d.run(["boot"], 0);
    // The factory image of the system partition, as flashed (with or without
    // rebound's metadata from the first boot).
    let factory_apps = d.contents(&sys("apps"));
    let factory_meta = d.contents(&sys(".rebound"));
    // Upgrade (scenario C), synchronised to the backup.
    d.write(&sys("apps/app.bin"), "application v2\n");
    d.write(&sys("apps/v2_only.bin"), "only in v2\n");
    d.write(&sys("app_ver.txt"), "2\n");
    d.run(["boot"], 0);
    assert_in_step(&d, &[SYS, DATA], "2");
    // The system partition is damaged and restored to its factory state.
    d.wipe(SYS);
    for (p, s) in &factory_apps {
        if let crate::util::Snap::File(b, ..) = s {
            d.write(&sys(&format!("apps/{}", p.display())), b);
        }
    }
    if keep_factory_metadata {
        for (p, s) in &factory_meta {
            if let crate::util::Snap::File(b, ..) = s {
                d.write(&sys(&format!(".rebound/{}", p.display())), b);
            }
        }
    }
    d.write(&sys("app_ver.txt"), "1\n");
    assert_eq!(d.read(&sys("apps/app.bin")), "application v1\n");
    // The backup side is newer: it is brought back to the system side.
    d.run(["boot"], 0).says(&["result: repaired"]);
    assert_in_step(&d, &[SYS, DATA], "2");
    assert_eq!(d.read(&sys("apps/app.bin")), "application v2\n");
    assert_eq!(d.read(&sys("apps/v2_only.bin")), "only in v2\n");
    d.run(["verify"], 0);
}

#[test]
fn scenario_d_system_side_restored_to_factory_takes_the_newer_backup() {
    scenario_d("scenario-d", false);
}

#[test]
fn scenario_d_with_factory_metadata_still_takes_the_newer_backup() {
    scenario_d("scenario-d-meta", true);
}

#[test]
fn method_1_deleted_apps_and_tag_on_the_backup_side_are_rebuilt() {
    let d = synced("method-1");
    d.remove(&data("apps"));
    d.remove(&data("app_ver.txt"));
    d.run(["boot"], 0).says(&["result: repaired"]);
    assert_in_step(&d, &[SYS, DATA], "1");
}

#[test]
fn method_2_deleted_apps_and_tag_on_the_system_side_are_rebuilt() {
    let d = synced("method-2");
    d.remove(&sys("apps"));
    d.remove(&sys("app_ver.txt"));
    d.run(["boot"], 0).says(&["result: repaired"]);
    assert_in_step(&d, &[SYS, DATA], "1");
    assert_eq!(d.read(&sys("apps/app.bin")), "application v1\n");
}

#[test]
fn tag_that_is_not_an_integer_is_reported_and_never_crashes() {
    let d = synced("bad-tag");
    let long = "9".repeat(5000);
    for bad in [
        "v2\n",
        "",
        "1.5\n",
        "99999999999999999999999\n",
        "\u{feff}2\n",
        long.as_str(),
    ] {
        d.write(&sys("app_ver.txt"), bad);
        let r = d
            .run(["boot"], 0)
            .says(&["version tag ignored", "app_ver.txt"]);
        assert!(!r.text().contains("upgrade adopted"), "{}", r.text());
        // Rewritten to the version the content has.
        assert_in_step(&d, &[SYS, DATA], "1");
        d.write(&data("app_ver.txt"), bad);
        d.cmd(["boot", "--json"]).run().expect_code(0).json();
        assert_in_step(&d, &[SYS, DATA], "1");
    }
    d.write(&sys("app_ver.txt"), "v2\n");
    d.run(["verify"], 1).says(&["`v2` is not an integer"]);
    d.run(["status"], 0).says(&["version tag invalid"]);
}

#[test]
fn same_version_damage_on_either_side_is_repaired_from_the_copy_matching_the_manifest() {
    let d = synced("same-version");
    // Same tag on both sides (the vendor script would see nothing to do).
    d.write(&data("apps/params.cfg"), "baud=0000000\n"); // same size, wrong content
    d.write(&sys("apps/app.bin"), "applicatiXn v1\n");
    d.remove(&data("apps/lib/mod.py"));
    d.run(["verify"], 1)
        .says(&["params.cfg: corrupt", "app.bin: corrupt"]);
    d.run(["boot"], 0).says(&["result: repaired"]);
    assert_eq!(d.read(&data("apps/params.cfg")), "baud=115200\n");
    assert_eq!(d.read(&sys("apps/app.bin")), "application v1\n");
    assert_eq!(d.read(&data("apps/lib/mod.py")), "VERSION = 1\n");
    assert_in_step(&d, &[SYS, DATA], "1");
    // The same file damaged on both sides: no intact copy, left as it is, exit 3.
    d.write(&sys("apps/params.cfg"), "broken A\n");
    d.write(&data("apps/params.cfg"), "broken B\n");
    d.run(["boot"], 3).says(&["LOST", "apps/params.cfg"]);
    assert_eq!(d.read(&sys("apps/params.cfg")), "broken A\n");
    assert_eq!(d.read(&data("apps/params.cfg")), "broken B\n");
}

#[test]
fn commit_in_a_mirror_set_reaches_the_other_copy_at_once() {
    let d = synced("mirror-commit");
    d.write(&sys("apps/params.cfg"), "baud=57600\n");
    d.run(["commit", &sys("apps/params.cfg")], 0)
        .says(&["recorded apps/params.cfg"]);
    assert_eq!(d.read(&data("apps/params.cfg")), "baud=57600\n");
    // From the backup side too, a new file.
    d.write(&data("apps/extra.txt"), "extra\n");
    d.run(
        ["commit", d.path(&data("apps/extra.txt")).to_str().unwrap()],
        0,
    );
    assert_eq!(d.read(&sys("apps/extra.txt")), "extra\n");
    assert_in_step(&d, &[SYS, DATA], "1");
    d.run(["boot"], 0).says(&["result: intact"]);
    // The tag file is not a protected file: committing it is refused, naming it.
    d.run(["commit", &sys("app_ver.txt")], 2)
        .says(&["app_ver.txt", "not protected"]);
}

/// Writes a manifest (valid checksum) claiming `claims` into both slots of `root`.
fn claim(d: &Dir, root: &str, generation: u64, tag: i64, claims: &[(&str, &str)]) {
    let mut m = Manifest::new("apps", generation, HashAlgo::Blake3, Some(tag));
    for (p, c) in claims {
        m.entries.insert(
            RelPath::new(p).unwrap(),
            Entry {
                size: c.len() as u64,
                mode: 0o644,
                owner: None,
                digest: HashAlgo::Blake3.digest(c.as_bytes()),
            },
        );
    }
    for s in ["manifest.0", "manifest.1"] {
        d.write(&format!("{root}/.rebound/apps/{s}"), m.encode());
    }
}

#[test]
fn copy_cut_off_half_way_is_never_taken_for_complete_even_if_its_manifest_says_so() {
    let d = synced("cut-off");
    let v2 = "application v2 with a much longer body than v1\n";
    // The backup side claims a complete upgrade (manifest generation 100, tag 2) but
    // its app.bin was cut off half way.
    claim(
        &d,
        DATA,
        100,
        2,
        &[
            ("apps/app.bin", v2),
            ("apps/params.cfg", "baud=115200\n"),
            ("apps/lib/mod.py", "VERSION = 1\n"),
        ],
    );
    d.write(&data("app_ver.txt"), "2\n");
    d.write(&data("apps/app.bin"), &v2[..v2.len() / 2]);
    d.run(["verify"], 3).says(&["LOST", "apps/app.bin"]);
    d.run(["boot"], 3).says(&["LOST", "apps/app.bin"]);
    // The truncated content was not copied anywhere, the other side's intact copy is
    // untouched, and the truncated file is left as it is.
    assert_eq!(d.read(&sys("apps/app.bin")), "application v1\n");
    assert_eq!(d.read(&data("apps/app.bin")), &v2[..v2.len() / 2]);
}

#[test]
fn tag_bumped_on_a_copy_holding_no_files_never_wipes_the_other_copy() {
    // The vendor script's failure (its note 1): `rm -rf apps; mkdir apps; cp ...; cp
    // app_ver.txt`, power cut, the tag reached the flash but none of the files did.
    // Adopting that copy as an upgrade would delete every file of the other side, the
    // last intact copies. It is not adopted: it is refilled, and its tag put back.
    let d = synced("tag-no-files");
    d.remove(&data("apps"));
    std::fs::create_dir(d.path(&data("apps"))).unwrap();
    d.write(&data("app_ver.txt"), "2\n");
    d.run(["boot"], 0).says(&["not adopted", "app_ver.txt"]);
    assert_eq!(d.read(&sys("apps/app.bin")), "application v1\n");
    assert_in_step(&d, &[SYS, DATA], "1");
    // Same with the apps directory gone altogether.
    d.remove(&data("apps"));
    d.write(&data("app_ver.txt"), "7\n");
    d.run(["boot"], 0).says(&["not adopted"]);
    assert_in_step(&d, &[SYS, DATA], "1");
    d.run(["verify"], 0);
}

#[test]
fn upgrade_never_drops_a_file_the_upgraded_copy_holds_but_cannot_offer() {
    // The upgraded (tag-bumped) copy holds params.cfg as a symbolic link and
    // lib/mod.py as a directory: unusable, but not removed by the upgrade. The other
    // side's intact copies are the last ones: kept, and brought back.
    let d = synced("upgrade-unusable");
    d.remove(&data("apps/params.cfg"));
    std::os::unix::fs::symlink("/etc/hostname", d.path(&data("apps/params.cfg"))).unwrap();
    d.remove(&data("apps/lib/mod.py"));
    d.write(&data("apps/lib/mod.py/inner"), "x");
    d.write(&data("apps/app.bin"), "application v2\n");
    d.write(&data("app_ver.txt"), "2\n");
    // The directory holding data is moved aside (never deleted) and the file restored.
    // What lies inside the directory is not adopted either: no copy could hold both
    // `mod.py` as a file and `mod.py/inner` (found in review: every boot failed on it).
    d.run(["boot"], 0).says(&[
        "upgrade adopted",
        "params.cfg",
        "aside",
        "mod.py/inner: not adopted: it lies inside apps/lib/mod.py",
    ]);
    assert!(!d
        .read(&sys(".rebound/apps/manifest.0"))
        .contains("mod.py/inner"));
    assert_eq!(d.read(&sys("apps/params.cfg")), "baud=115200\n");
    assert_eq!(d.read(&sys("apps/lib/mod.py")), "VERSION = 1\n");
    assert_eq!(d.read(&sys("apps/app.bin")), "application v2\n");
    // The link was replaced by the real file; the directory holding data was moved
    // aside under the set's metadata directory, whole.
    assert!(d
        .path(&data("apps/params.cfg"))
        .symlink_metadata()
        .unwrap()
        .is_file());
    assert_eq!(d.read(&data("apps/params.cfg")), "baud=115200\n");
    assert_eq!(d.read(&data("apps/lib/mod.py")), "VERSION = 1\n");
    assert_eq!(
        d.read(&data(".rebound/apps/displaced/2/apps/lib/mod.py/inner")),
        "x"
    );
    assert_eq!(tag(&d, SYS), "2");
    d.run(["verify"], 0);
}

#[test]
fn upgrade_by_tag_adopts_exactly_the_content_of_that_copy() {
    // A tag higher than the manifest's is the vendor's upgrade signal: that copy's
    // files are the new version, recorded by their hashes, and brought to the other
    // side file by file; the recorded content is exactly what the copy holds.
    let d = synced("tag-upgrade-exact");
    d.write(&data("apps/app.bin"), "applic"); // whatever the upgrade wrote
    d.write(&data("app_ver.txt"), "2\n");
    d.run(["boot"], 0).says(&["upgrade adopted"]);
    assert_in_step(&d, &[SYS, DATA], "2");
    assert_eq!(d.read(&sys("apps/app.bin")), "applic");
    d.run(["verify"], 0);
}

/// Kills `rebound boot` while it brings an upgrade from `from` to `to`, before each
/// of its mutations in turn: at every point the source side is intact and new, the
/// target's tag and manifest never claim the new version before its content is
/// complete, and the next boot completes the sync.
fn sync_killed_at_every_mutation(name: &str, from: &str, to: &str) {
    let big: String = (0..20_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let mut k = 1;
    let mut killed = 0;
    loop {
        let d = synced(&format!("{name}-{k}"));
        d.write(&format!("{from}/apps/app.bin"), &big);
        d.write(&format!("{from}/apps/new/deep.bin"), "deep\n");
        d.write(&format!("{from}/app_ver.txt"), "2\n");
        let new = d.contents(&format!("{from}/apps"));
        if !d.cmd(["boot"]).kill_at_mutation(k) {
            assert_in_step(&d, &[SYS, DATA], "2");
            break;
        }
        killed += 1;
        assert_eq!(
            new,
            d.contents(&format!("{from}/apps")),
            "k={k}: source changed"
        );
        if tag(&d, to) == "2" {
            assert_eq!(
                new,
                d.contents(&format!("{to}/apps")),
                "k={k}: {to} says version 2 before its content is complete"
            );
        }
        let st = d.run(["status", "--json"], 0).json();
        let to_idx = usize::from(to == DATA);
        let to_gen = st[0]["replicas"][to_idx]["generation"].as_u64();
        let from_gen = st[0]["replicas"][1 - to_idx]["generation"].as_u64();
        if to_gen.is_some() && to_gen == from_gen && to_gen > Some(1) {
            assert_eq!(
                new,
                d.contents(&format!("{to}/apps")),
                "k={k}: {to}'s manifest names the new generation before its content is complete"
            );
        }
        d.run(["boot"], 0);
        assert_in_step(&d, &[SYS, DATA], "2");
        d.run(["boot"], 0).says(&["result: intact"]);
        k += 1;
        assert!(k < 500);
    }
    eprintln!("{name}: killed at {killed} points; each next boot completed the sync");
    assert!(killed >= 10, "only {killed} kill points");
}

#[test]
fn sync_to_the_backup_side_killed_at_every_mutation_completes_at_next_boot() {
    sync_killed_at_every_mutation("kill-sync-c", SYS, DATA);
}

#[test]
fn sync_to_the_system_side_killed_at_every_mutation_completes_at_next_boot() {
    sync_killed_at_every_mutation("kill-sync-d", DATA, SYS);
}

const THIRD: &str = "extra/copy";

#[test]
fn three_replicas_heal_each_other_and_follow_upgrades_and_commits() {
    let d = Dir::mirror_device("three", &[SYS, DATA, THIRD]);
    d.run(["boot"], 0);
    let all = [SYS, DATA, THIRD];
    assert_in_step(&d, &all, "1");
    // Damage in two copies at once, different files; a lost tag in the third.
    d.write(&sys("apps/app.bin"), "bad");
    d.remove(&data("apps/params.cfg"));
    d.remove(&format!("{THIRD}/app_ver.txt"));
    d.run(["boot"], 0).says(&["result: repaired"]);
    assert_in_step(&d, &all, "1");
    // Two copies wiped entirely: rebuilt from the third.
    d.wipe("usrapp");
    d.wipe("usrdata");
    d.run(["boot"], 0);
    assert_in_step(&d, &all, "1");
    // An upgrade in the third copy reaches the other two.
    d.write(&format!("{THIRD}/apps/app.bin"), "application v3\n");
    d.write(&format!("{THIRD}/app_ver.txt"), "3\n");
    d.run(["boot"], 0).says(&["upgrade adopted"]);
    assert_in_step(&d, &all, "3");
    assert_eq!(d.read(&sys("apps/app.bin")), "application v3\n");
    // A commit in the middle copy reaches both others at once.
    d.write(&data("apps/params.cfg"), "baud=1\n");
    d.run(["commit", &data("apps/params.cfg")], 0);
    assert_eq!(d.read(&sys("apps/params.cfg")), "baud=1\n");
    assert_eq!(d.read(&format!("{THIRD}/apps/params.cfg")), "baud=1\n");
    d.run(["verify"], 0);
}

#[test]
fn golden_set_with_a_writable_copy_heals_to_the_latest_commit_not_the_factory() {
    let d = Dir::golden_device("golden-copy", &["copy"]);
    d.run(["seal"], 0);
    assert_eq!(d.read("copy/apn_cfg.json"), "{\"apn\": \"factory\"}\n");
    d.write("usr/apn_cfg.json", "{\"apn\": \"updated in the field\"}\n");
    d.run(["commit", "usr/apn_cfg.json"], 0);
    assert_eq!(
        d.read("copy/apn_cfg.json"),
        "{\"apn\": \"updated in the field\"}\n"
    );
    // Live damaged: healed from the copy to the committed version.
    d.write("usr/apn_cfg.json", "corrupt");
    d.run(["boot"], 0)
        .says(&["copy/apn_cfg.json", "result: repaired"]);
    assert_eq!(
        d.read("usr/apn_cfg.json"),
        "{\"apn\": \"updated in the field\"}\n"
    );
    // Live manifest gone as well: the copy's manifest still knows the commit.
    d.remove("usr/.rebound");
    d.remove("usr/apn_cfg.json");
    d.run(["boot"], 0);
    assert_eq!(
        d.read("usr/apn_cfg.json"),
        "{\"apn\": \"updated in the field\"}\n"
    );
    // The copy damaged: healed from live.
    d.write("copy/apn_cfg.json", "rot");
    d.run(["boot"], 0);
    assert_eq!(
        d.read("copy/apn_cfg.json"),
        "{\"apn\": \"updated in the field\"}\n"
    );
    // Both writable copies lost: the golden copy is the last resort, and says so.
    d.write("usr/apn_cfg.json", "rot 1");
    d.write("copy/apn_cfg.json", "rot 2");
    d.run(["boot"], 0).says(&["factory", "(golden)"]);
    assert_eq!(d.read("usr/apn_cfg.json"), "{\"apn\": \"factory\"}\n");
    assert_eq!(d.read("copy/apn_cfg.json"), "{\"apn\": \"factory\"}\n");
    d.run(["verify"], 0);
}

#[test]
fn replica_on_an_unmounted_partition_is_not_created_there_and_is_exit_2() {
    // `usrdata` itself is missing (its partition failed to mount and no mount point
    // exists): rebound creates at most the replica's own directory, never its parents,
    // so nothing is written onto the wrong filesystem. The system side is untouched.
    let d = vendor("unmounted");
    d.remove("usrdata");
    let before = d.contents(SYS);
    d.run(["boot"], 2)
        .says(&[DATA, "No such file or directory"]);
    assert!(!d.exists("usrdata"));
    let mut after = d.contents(SYS);
    after.retain(|p, _| !p.starts_with(".rebound"));
    assert_eq!(before, after);
    // Once the partition is there, the first run completes.
    std::fs::create_dir(d.path("usrdata")).unwrap();
    d.run(["boot"], 0);
    assert_in_step(&d, &[SYS, DATA], "1");
}

/// A copy into which one file cannot be restored (a directory holding data sits at
/// its path) is reported with exit 2, every other file of the upgrade reaches it, its
/// obstacle is left alone, and it is never taken for complete: the next boot, once the
/// obstacle is gone, finishes it (vendor note 1 is met by verification, not by the tag;
/// see exec.rs for why the tag is written anyway).
#[test]
fn copy_whose_restore_failed_is_reported_and_finished_by_the_next_boot() {
    let d = synced("restore-failed");
    d.write(&sys("apps/app.bin"), "application v2\n");
    d.write(&sys("app_ver.txt"), "2\n");
    // A link where a directory belongs: never followed nor moved, so the restore
    // below it fails (a directory or file there would be moved aside: tree.rs).
    d.remove(&data("apps/lib"));
    std::os::unix::fs::symlink("/nowhere", d.path(&data("apps/lib"))).unwrap();
    d.run(["boot"], 2).says(&["apps/lib", "symbolic link"]);
    assert_eq!(d.read(&data("apps/app.bin")), "application v2\n");
    assert!(d
        .path(&data("apps/lib"))
        .symlink_metadata()
        .unwrap()
        .is_symlink());
    // The incomplete copy is never taken for complete: verify still sees the damage.
    d.run(["verify"], 1).says(&["mod.py"]);
    d.remove(&data("apps/lib"));
    d.run(["boot"], 0);
    assert_in_step(&d, &[SYS, DATA], "2");
    d.run(["verify"], 0);
}

/// A configured root may be reached through a link (a device's `/usrdata` pointing at
/// its mount point is common): it is the administrator's choice and is followed, as
/// the directory handle that every access goes through already did. Found in review:
/// the existence check did not follow it, so the copy was reported as missing.
#[test]
fn replica_root_reached_through_a_link_is_used() {
    let d = vendor("root-link");
    std::fs::create_dir_all(d.path("mnt/backup")).unwrap();
    // `usrdata/appbackup` is a link to the partition's real directory.
    std::fs::create_dir_all(d.path("usrdata")).unwrap();
    std::os::unix::fs::symlink(d.path("mnt/backup"), d.path(DATA)).unwrap();
    d.run(["boot"], 0).says(&["result: repaired"]);
    assert_eq!(d.read("mnt/backup/apps/app.bin"), "application v1\n");
    assert_eq!(d.read("mnt/backup/app_ver.txt").trim(), "1");
    d.run(["verify"], 0);
    d.run(["boot"], 0).says(&["result: intact"]);
}
