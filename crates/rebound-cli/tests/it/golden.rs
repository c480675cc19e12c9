//! Golden mode through the binary: seal, the seed's three triggers (manifest removed
//! or damaged, file deleted or corrupted, file edited without a commit), commit, and a
//! damaged golden copy.

use crate::util::Dir;

fn sealed(name: &str) -> Dir {
    let d = Dir::golden_device(name, &[]);
    d.run(["seal"], 0).says(&["sealed 4 files"]);
    d
}

#[test]
fn seal_copies_every_included_file_into_golden_and_writes_both_manifests() {
    let d = Dir::golden_device("seal", &[]);
    d.write("usr/not_included.txt", "private\n");
    let r = d.run(["seal"], 0);
    r.says(&["sealed 4 files", "result: intact"]);
    for f in [
        "apn_cfg.json",
        "system_config.json",
        "app/main.py",
        "app/lib/util.py",
    ] {
        assert_eq!(d.read(&format!("bak/{f}")), d.read(&format!("usr/{f}")));
    }
    assert!(!d.exists("bak/not_included.txt"));
    assert!(d.exists("bak/.rebound/config/manifest"));
    assert!(d.exists("bak/.rebound/config/sealed"));
    assert!(
        d.exists("usr/.rebound/config/manifest.0") || d.exists("usr/.rebound/config/manifest.1")
    );
    d.run(["verify"], 0).says(&["result: intact"]);
    d.run(["boot"], 0).says(&["result: intact"]);
    // A second seal would replace the factory state: refused without --force.
    d.run(["seal"], 2).says(&["already sealed", "--force"]);
}

#[test]
fn trigger1_live_manifest_deleted_is_restored_from_golden() {
    let d = sealed("trigger1");
    d.remove("usr/.rebound");
    d.run(["verify"], 1)
        .says(&["restored from the golden manifest", "would: write manifest"]);
    d.run(["boot"], 0).says(&[
        "golden manifest",
        "done: write manifest",
        "result: repaired",
    ]);
    assert!(
        d.exists("usr/.rebound/config/manifest.0") || d.exists("usr/.rebound/config/manifest.1")
    );
    d.run(["boot"], 0).says(&["result: intact"]);
}

#[test]
fn trigger1_both_manifest_slots_damaged_are_restored_from_golden() {
    let d = sealed("trigger1b");
    d.write(
        "usr/.rebound/config/manifest.0",
        "rebound-manifest 1\nset config\ngarbage",
    );
    d.write("usr/.rebound/config/manifest.1", [0u8; 300]);
    // The files themselves are fine; an edit made meanwhile is still caught.
    d.write("usr/app/main.py", "print('tampered')\n");
    d.run(["boot"], 0)
        .says(&["golden manifest", "app/main.py", "result: repaired"]);
    assert_eq!(d.read("usr/app/main.py"), "print('v1')\n");
    d.run(["verify"], 0);
}

#[test]
fn trigger2_deleted_file_is_restored_and_recorded() {
    let d = sealed("trigger2del");
    d.remove("usr/system_config.json");
    d.remove("usr/app"); // a whole directory of protected files
    d.run(["verify"], 1).says(&["system_config.json: missing"]);
    assert!(
        !d.exists("usr/system_config.json"),
        "verify wrote something"
    );
    d.run(["boot"], 0).says(&[
        "done: restore",
        "system_config.json",
        "app/lib/util.py",
        "result: repaired",
    ]);
    assert_eq!(d.read("usr/system_config.json"), "{\"volume\": 5}\n");
    assert_eq!(d.read("usr/app/lib/util.py"), "def f(): return 1\n");
    assert_eq!(d.read("usr/app/main.py"), "print('v1')\n");
    // Recorded: status shows the last repair.
    d.run(["status"], 0)
        .says(&["last repair", "restore", "system_config.json"]);
    d.run(["boot"], 0).says(&["result: intact"]);
}

#[test]
fn trigger2_corrupted_file_is_restored_from_golden() {
    let d = sealed("trigger2cor");
    // Flash corruption: same size, one byte flipped; and a truncated file.
    let mut b = d.read_opt("usr/apn_cfg.json").unwrap();
    b[3] ^= 0x20;
    d.write("usr/apn_cfg.json", &b);
    d.write("usr/app/main.py", "");
    d.run(["boot"], 0).says(&[
        "apn_cfg.json: corrupt",
        "main.py: corrupt",
        "(golden)",
        "result: repaired",
    ]);
    assert_eq!(d.read("usr/apn_cfg.json"), "{\"apn\": \"factory\"}\n");
    assert_eq!(d.read("usr/app/main.py"), "print('v1')\n");
    d.run(["verify"], 0);
}

#[test]
fn trigger3_edit_without_commit_is_treated_as_damage_and_restored() {
    let d = sealed("trigger3");
    d.write("usr/apn_cfg.json", "{\"apn\": \"hand-edited\"}\n");
    d.run(["boot"], 0)
        .says(&["apn_cfg.json: corrupt", "result: repaired"]);
    assert_eq!(d.read("usr/apn_cfg.json"), "{\"apn\": \"factory\"}\n");
}

#[test]
fn commit_then_boot_keeps_the_edit_and_a_later_corruption_heals_to_it() {
    let d = sealed("commit");
    d.write("usr/apn_cfg.json", "{\"apn\": \"customer\"}\n");
    d.write("usr/app/new_module.py", "NEW = True\n");
    d.run(
        [
            "commit",
            d.path("usr/apn_cfg.json").to_str().unwrap(),
            "usr/app/new_module.py", // relative to the current directory
        ],
        0,
    )
    .says(&["recorded apn_cfg.json", "recorded app/new_module.py"]);
    d.run(["boot"], 0).says(&["result: intact"]);
    assert_eq!(d.read("usr/apn_cfg.json"), "{\"apn\": \"customer\"}\n");
    assert_eq!(d.read("usr/app/new_module.py"), "NEW = True\n");
    // The golden copy is the factory state: untouched by commit.
    assert_eq!(d.read("bak/apn_cfg.json"), "{\"apn\": \"factory\"}\n");
    assert!(!d.exists("bak/app/new_module.py"));
    // Committing the same content again changes nothing.
    d.run(["commit", "usr/apn_cfg.json"], 0)
        .says(&["already committed"]);
    // With no other copy of the committed version, a corrupted committed file falls
    // back to the factory version, and says so.
    d.write("usr/apn_cfg.json", "garbage");
    d.run(["boot"], 0).says(&["factory", "result: repaired"]);
    assert_eq!(d.read("usr/apn_cfg.json"), "{\"apn\": \"factory\"}\n");
    d.run(["verify"], 0);
}

#[test]
fn commit_of_a_path_outside_every_set_is_an_error_naming_it() {
    let d = sealed("commit-outside");
    d.write("usr/unprotected.txt", "x\n");
    let before = d.contents("usr");
    let p = d.path("usr/unprotected.txt");
    d.run(["commit", p.to_str().unwrap()], 2)
        .says(&[p.to_str().unwrap(), "not protected"]);
    let outside = d.path("elsewhere.txt");
    d.write("elsewhere.txt", "y");
    d.run(["commit", outside.to_str().unwrap()], 2)
        .says(&[outside.to_str().unwrap(), "not protected"]);
    // A golden file is not committable either: golden is read-only.
    d.run(["commit", "bak/apn_cfg.json"], 2)
        .says(&["golden", "read-only"]);
    // A protected path that does not exist.
    d.remove("usr/app/main.py");
    d.run(["commit", "usr/app/main.py"], 2)
        .says(&["main.py", "does not exist"]);
    d.write("usr/app/main.py", "print('v1')\n");
    // One bad path refuses the whole command: nothing was recorded.
    d.write("usr/apn_cfg.json", "{\"apn\": \"edited\"}\n");
    d.run(["commit", "usr/apn_cfg.json", p.to_str().unwrap()], 2);
    d.write("usr/apn_cfg.json", "{\"apn\": \"factory\"}\n");
    let after = d.contents("usr");
    assert_eq!(before, after, "a refused commit changed the live tree");
}

#[test]
fn damaged_golden_copy_is_reported_and_never_copied() {
    let d = sealed("golden-damaged");
    // The golden copy of apn_cfg.json rots; live is fine: verify reports it (exit 1),
    // boot leaves live alone.
    d.write("bak/apn_cfg.json", "{\"apn\": \"rotten\"}\n");
    d.run(["verify"], 1).says(&["apn_cfg.json", "golden"]);
    d.run(["boot"], 0);
    assert_eq!(d.read("usr/apn_cfg.json"), "{\"apn\": \"factory\"}\n");
    // Now the live copy is lost too: no intact copy anywhere. Exit 3, the file is
    // named, and the rotten golden content is not copied into live.
    d.write("usr/apn_cfg.json", "{\"apn\": \"also broken\"}\n");
    d.run(["boot"], 3)
        .says(&["LOST", "apn_cfg.json", "files lost"]);
    assert_eq!(d.read("usr/apn_cfg.json"), "{\"apn\": \"also broken\"}\n");
    d.remove("usr/apn_cfg.json");
    d.run(["boot"], 3).says(&["LOST", "apn_cfg.json"]);
    assert!(
        !d.exists("usr/apn_cfg.json"),
        "unverified golden content was copied"
    );
    // Other damage is still repaired in the same run.
    d.remove("usr/system_config.json");
    d.run(["boot"], 3)
        .says(&["done: restore", "system_config.json"]);
    assert_eq!(d.read("usr/system_config.json"), "{\"volume\": 5}\n");
    // The golden copy was never written.
    assert_eq!(d.read("bak/apn_cfg.json"), "{\"apn\": \"rotten\"}\n");
}

#[test]
fn golden_file_missing_is_reported_by_verify() {
    let d = sealed("golden-missing");
    d.remove("bak/app/main.py");
    d.run(["verify"], 1)
        .says(&["main.py", "missing from the golden copy"]);
}
