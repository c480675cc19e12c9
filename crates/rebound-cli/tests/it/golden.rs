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
    // Issue item 22: a seal says it sealed (it used to say "intact", or "repaired"
    // when it filled extra copies).
    r.says(&["sealed 4 files", "result: sealed"]);
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

/// The golden manifest itself damaged or deleted while every live file is intact:
/// the factory fallback is gone, and `verify` says so (exit 1) instead of "intact"
/// (found in review). Boot has nothing to repair and never writes golden.
#[test]
fn damaged_or_missing_golden_manifest_is_reported_by_verify() {
    let d = sealed("golden-manifest-damaged");
    let m = "bak/.rebound/config/manifest";
    let good = d.read(m);
    d.write(m, &good[..good.len() / 2]);
    d.run(["verify"], 1).says(&[
        ".rebound/config/manifest",
        "the golden manifest is damaged",
        "reflash the golden image",
        "the golden copy is damaged",
    ]);
    d.run(["boot"], 0);
    assert_eq!(d.read(m), good[..good.len() / 2]);
    d.remove(m);
    d.run(["verify"], 1)
        .says(&["the golden manifest is missing"]);
    let json = d.run(["verify", "--json"], 1).json();
    assert!(json.to_string().contains("golden_damaged"), "{json}");
}

#[test]
fn golden_file_missing_is_reported_by_verify() {
    let d = sealed("golden-missing");
    d.remove("bak/app/main.py");
    d.run(["verify"], 1)
        .says(&["main.py", "missing from the golden copy"]);
}

#[test]
fn every_hash_algorithm_detects_and_repairs_damage() {
    for algo in ["blake3", "sha256", "crc32"] {
        let d = Dir::golden_device(&format!("hash-{algo}"), &[]);
        let cfg = d.read("rebound.toml");
        d.config(&format!("{cfg}hash = \"{algo}\"\n"));
        d.run(["seal"], 0);
        assert!(d
            .read("bak/.rebound/config/manifest")
            .contains(&format!("hash {algo}\n")));
        d.write("usr/system_config.json", "{\"volume\": 9}\n"); // same size
        d.run(["verify"], 1).says(&["system_config.json: corrupt"]);
        d.run(["boot"], 0).says(&["result: repaired"]);
        assert_eq!(d.read("usr/system_config.json"), "{\"volume\": 5}\n");
        d.run(["status"], 0).says(&[algo]);
    }
}

#[test]
fn changing_the_hash_algorithm_after_seal_is_exit_2_asking_for_a_new_seal() {
    let d = sealed("hash-change");
    let cfg = d.read("rebound.toml");
    d.config(&format!("{cfg}hash = \"sha256\"\n"));
    d.run(["boot"], 2)
        .says(&["uses blake3", "configured for sha256", "seal"]);
    // Nothing was rewritten under the other algorithm.
    assert!(d
        .read("bak/.rebound/config/manifest")
        .contains("hash blake3\n"));
    d.run(["seal", "--force"], 0);
    d.run(["boot"], 0).says(&["result: intact"]);
    assert!(d
        .read("bak/.rebound/config/manifest")
        .contains("hash sha256\n"));
}

#[test]
fn directory_at_a_protected_path_is_reported_and_never_deleted() {
    let d = sealed("dir-at-file");
    d.remove("usr/apn_cfg.json");
    d.write("usr/apn_cfg.json/user-data", "keep me");
    d.remove("usr/system_config.json");
    d.run(["verify"], 1).says(&["apn_cfg.json", "directory"]);
    // The directory holds data, and rebound never deletes it: it is moved aside
    // under the set's metadata directory, whole, and the file restored (every boot
    // used to fail here with exit 2, "Is a directory").
    d.run(["boot"], 0).says(&["apn_cfg.json", "aside"]);
    assert_eq!(d.read("usr/system_config.json"), "{\"volume\": 5}\n");
    assert_eq!(d.read("usr/apn_cfg.json"), "{\"apn\": \"factory\"}\n");
    assert_eq!(
        d.read("usr/.rebound/config/displaced/1/apn_cfg.json/user-data"),
        "keep me"
    );
    d.run(["boot"], 0).says(&["result: intact"]);
    // No temporary file is left behind once the run succeeds.
    assert!(d
        .snapshot("usr")
        .keys()
        .all(|p| !p.to_string_lossy().contains(".rebound-tmp-")));
}

#[test]
fn sets_are_selected_by_name_and_each_keeps_its_own_metadata() {
    let d = Dir::golden_device("two-sets", &[]);
    let cfg = d.read("rebound.toml");
    // A second set sharing the live root, protecting other files, golden elsewhere.
    d.config(&format!(
        "{cfg}\n[[set]]\nname = \"certs\"\nmode = \"golden\"\nlive = \"{}\"\ngolden = \"{}\"\ninclude = [\"certs/*.pem\"]\n",
        d.path("usr").display(),
        d.path("bak2").display()
    ));
    d.write("usr/certs/ca.pem", "CA\n");
    d.run(["seal"], 0).says(&["set config", "set certs"]);
    assert!(d.exists("usr/.rebound/config") && d.exists("usr/.rebound/certs"));
    d.remove("usr/certs/ca.pem");
    d.remove("usr/apn_cfg.json");
    d.run(["boot", "certs"], 0).says(&["set certs"]);
    assert_eq!(d.read("usr/certs/ca.pem"), "CA\n");
    assert!(
        !d.exists("usr/apn_cfg.json"),
        "boot certs touched set config"
    );
    d.run(["boot", "nosuch"], 2)
        .says(&["nosuch", "config, certs"]);
    d.run(["boot"], 0);
    assert!(d.exists("usr/apn_cfg.json"));
}

#[test]
fn the_issue_example_configurations_load() {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    for (f, needles) in [
        (
            "issue2-golden.toml",
            ["set config (golden mode, blake3)", "/usr", "/bak"],
        ),
        (
            "issue3-mirror.toml",
            [
                "set apps (mirror mode, blake3)",
                "/usrapp/apprun",
                "/usrdata/appbackup",
            ],
        ),
    ] {
        crate::util::TestCommand::bare()
            .arg("-c")
            .arg(fixtures.join(f))
            .arg("status")
            .run()
            .expect_code(0)
            .says(&needles);
    }
}
