//! Confinement: a symlink planted inside a replica, or a manifest naming `..` or an
//! absolute path (with a valid checksum), never makes rebound read or write anything
//! outside its configured roots. Each test keeps a secret file in `<tmp>/outside` and
//! checks afterwards that it is unchanged and that neither its content nor its digest
//! reached any file under the replicas or any output.

use std::os::unix::fs::symlink;

use rebound::HashAlgo;

use crate::util::{Dir, Run, DATA, SYS};

const SECRET: &str = "{\"apn\": \"SECRET-OUTSIDE\"}\n";

fn with_outside(d: &Dir) {
    d.write("outside/secret.json", SECRET);
    d.write("outside/appdir/main.py", "print('SECRET-OUTSIDE')\n");
    d.write("outside/appdir/lib/util.py", "SECRET-OUTSIDE = 1\n");
}

/// The outside tree is unchanged, and nothing it holds leaked into the replicas or
/// into what the runs printed.
fn assert_confined(
    d: &Dir,
    before: &std::collections::BTreeMap<std::path::PathBuf, crate::util::Snap>,
    runs: &[&Run],
) {
    assert_eq!(
        before,
        &d.snapshot("outside"),
        "something outside the configured roots was written"
    );
    let secrets: Vec<String> = ["outside/secret.json", "outside/appdir/main.py"]
        .iter()
        .map(|f| HashAlgo::Blake3.digest(&d.read_opt(f).unwrap()).to_hex())
        .collect();
    for root in ["usr", "bak", "copy", SYS, DATA] {
        for (p, s) in d.snapshot(root) {
            if let crate::util::Snap::File(b, ..) = s {
                let t = String::from_utf8_lossy(&b);
                assert!(
                    !t.contains("SECRET-OUTSIDE") && !secrets.iter().any(|h| t.contains(h)),
                    "{root}/{}: outside content leaked in",
                    p.display()
                );
            }
        }
    }
    for r in runs {
        let t = r.text();
        assert!(
            !t.contains("SECRET-OUTSIDE") && !secrets.iter().any(|h| t.contains(h)),
            "outside content leaked into the output:\n{t}"
        );
    }
}

fn sealed(name: &str) -> Dir {
    let d = Dir::golden_device(name, &[]);
    with_outside(&d);
    d.run(["seal"], 0);
    d
}

#[test]
fn symlink_planted_at_a_protected_path_is_replaced_never_followed() {
    let d = sealed("symlink-file");
    let before = d.snapshot("outside");
    d.remove("usr/apn_cfg.json");
    symlink(d.path("outside/secret.json"), d.path("usr/apn_cfg.json")).unwrap();
    let v = d
        .run(["verify"], 1)
        .says(&["apn_cfg.json", "symbolic link"]);
    // Committing it would record outside content: refused.
    let c = d
        .run(["commit", "usr/apn_cfg.json"], 2)
        .says(&["apn_cfg.json", "not a regular file"]);
    let b = d
        .run(["boot"], 0)
        .says(&["apn_cfg.json", "result: repaired"]);
    let m = d.path("usr/apn_cfg.json").symlink_metadata().unwrap();
    assert!(m.file_type().is_file(), "the link is still there");
    assert_eq!(d.read("usr/apn_cfg.json"), "{\"apn\": \"factory\"}\n");
    assert_confined(&d, &before, &[&v, &c, &b]);
}

#[test]
fn symlinked_directory_inside_live_is_never_followed() {
    let d = sealed("symlink-dir");
    let before = d.snapshot("outside");
    d.remove("usr/app");
    symlink(d.path("outside/appdir"), d.path("usr/app")).unwrap();
    let v = d.run(["verify"], 1).says(&["app/main.py"]);
    let c = d.cmd(["commit", "usr/app/main.py"]).run().expect_code(2);
    // Boot cannot restore below a link without following or deleting it: it fails
    // clearly, naming the link, and writes nothing through it.
    let b = d.run(["boot"], 2).says(&["usr/app", "symbolic link"]);
    assert_confined(&d, &before, &[&v, &c, &b]);
    // Once the link is gone, boot restores the directory from golden.
    d.remove("usr/app");
    d.run(["boot"], 0).says(&["result: repaired"]);
    assert_eq!(d.read("usr/app/main.py"), "print('v1')\n");
    assert_confined(&d, &before, &[]);
}

#[test]
fn symlinked_metadata_directory_is_not_read_or_written_through() {
    let d = sealed("symlink-meta");
    // An attacker's metadata directory outside, holding a copy of a valid manifest
    // (which a follower would trust and write next to).
    std::fs::create_dir_all(d.path("outside/meta")).unwrap();
    std::fs::rename(d.path("usr/.rebound/config"), d.path("outside/meta/config")).unwrap();
    d.remove("usr/.rebound");
    symlink(d.path("outside/meta"), d.path("usr/.rebound")).unwrap();
    let before = d.snapshot("outside");
    d.write("usr/app/main.py", "tampered\n");
    let b = d.cmd(["boot"]).run().no_panic();
    assert_ne!(b.code(), Some(0), "{}", b.text());
    assert_confined(&d, &before, &[&b]);
}

#[test]
fn symlink_in_the_golden_copy_is_not_followed_even_with_identical_content() {
    let d = sealed("symlink-golden");
    // outside holds exactly the factory content; the golden file is a link to it.
    d.write("outside/secret.json", "{\"apn\": \"factory\"}\n");
    let before = d.snapshot("outside");
    d.remove("bak/apn_cfg.json");
    symlink(d.path("outside/secret.json"), d.path("bak/apn_cfg.json")).unwrap();
    d.run(["verify"], 1).says(&["apn_cfg.json", "golden"]);
    d.remove("usr/apn_cfg.json");
    d.run(["boot"], 3).says(&["LOST", "apn_cfg.json"]);
    assert!(!d.exists("usr/apn_cfg.json"));
    assert_eq!(before, d.snapshot("outside"));
}

/// A manifest with the given `file` lines and a valid checksum.
fn crafted_manifest(set: &str, generation: u64, tag: Option<i64>, files: &[String]) -> String {
    let mut body = format!("rebound-manifest 1\nset {set}\ngeneration {generation}\nhash blake3\n");
    if let Some(t) = tag {
        body.push_str(&format!("tag {t}\n"));
    }
    for f in files {
        body.push_str(f);
        body.push('\n');
    }
    let sum = HashAlgo::Blake3.digest(body.as_bytes()).to_hex();
    format!("{body}end {sum}\n")
}

fn file_line(content: &str, path: &str) -> String {
    format!(
        "file {} 644 {} {path}",
        content.len(),
        HashAlgo::Blake3.digest(content.as_bytes()).to_hex()
    )
}

fn hostile_paths(d: &Dir) -> Vec<String> {
    let abs = d.path("outside/secret.json");
    vec![
        "../outside/secret.json".into(),
        "app/../../outside/secret.json".into(),
        abs.display().to_string(),
        "%2E%2E/outside/secret.json".into(),
        "./apn_cfg.json".into(),
    ]
}

#[test]
fn manifest_slot_naming_dotdot_or_absolute_paths_is_refused_and_the_other_slot_used() {
    let d = sealed("dotdot-slot");
    let before = d.snapshot("outside");
    let slot0 = d.path("usr/.rebound/config/manifest.0");
    let slot1 = d.path("usr/.rebound/config/manifest.1");
    let (good, free) = if slot0.exists() {
        (slot0, slot1)
    } else {
        (slot1, slot0)
    };
    for p in hostile_paths(&d) {
        // Sorted, valid checksum, higher generation: only the path is wrong.
        let text = crafted_manifest("config", 50, None, &[file_line("evil\n", &p)]);
        std::fs::write(&free, &text).unwrap();
        d.write("usr/app/main.py", "tampered\n");
        // Refused as a whole, and rewritten; the generation it claims is never reused
        // (the intact slot's content is written again above it).
        let b = d
            .run(["boot"], 0)
            .says(&["manifest damaged", "line 5", "result: repaired"]);
        for slot in [&good, &free] {
            let text = std::fs::read_to_string(slot).unwrap();
            assert!(
                text.lines().any(|l| l
                    .strip_prefix("generation ")
                    .and_then(|g| g.parse::<u64>().ok())
                    > Some(50)),
                "{text}"
            );
        }
        assert_eq!(d.read("usr/app/main.py"), "print('v1')\n", "{p}");
        assert!(good.exists());
        let v = d.run(["verify"], 0);
        assert_confined(&d, &before, &[&b, &v]);
    }
}

#[test]
fn golden_manifest_naming_dotdot_is_refused_with_an_error_naming_it() {
    let d = sealed("dotdot-golden");
    let before = d.snapshot("outside");
    d.remove("usr/.rebound");
    for p in hostile_paths(&d) {
        let text = crafted_manifest("config", 1, None, &[file_line("evil\n", &p)]);
        d.write("bak/.rebound/config/manifest", &text);
        let b = d
            .run(["boot"], 2)
            .says(&["bak/.rebound/config/manifest", "line 5"]);
        let v = d.run(["verify"], 2);
        assert_confined(&d, &before, &[&b, &v]);
        assert!(!d.exists("usr/.rebound/config/manifest.0"));
    }
}

#[test]
fn update_from_a_tree_holding_a_symlink_is_refused() {
    let d = sealed("upd-symlink");
    let before = d.snapshot("outside");
    d.write("upd/app/main.py", "print('v2')\n");
    symlink(d.path("outside/secret.json"), d.path("upd/apn_cfg.json")).unwrap();
    let u = d
        .run(["update", "config", "--from", "upd"], 2)
        .says(&["apn_cfg.json", "symbolic link"]);
    assert_eq!(d.read("usr/app/main.py"), "print('v1')\n");
    assert_confined(&d, &before, &[&u]);
}

#[test]
fn mirror_symlinks_in_one_replica_never_leak_outside_content() {
    let d = Dir::mirror_device("symlink-mirror", &[SYS, DATA]);
    with_outside(&d);
    d.run(["boot"], 0);
    // A link instead of a file on the backup side, and a tag that is a link to a file
    // saying "99" (a follower would take the backup side for a newer upgrade).
    d.write("outside/ver.txt", "99\n");
    let before = d.snapshot("outside");
    d.remove(&format!("{DATA}/apps/app.bin"));
    symlink(
        d.path("outside/secret.json"),
        d.path(&format!("{DATA}/apps/app.bin")),
    )
    .unwrap();
    d.remove(&format!("{DATA}/app_ver.txt"));
    symlink(
        d.path("outside/ver.txt"),
        d.path(&format!("{DATA}/app_ver.txt")),
    )
    .unwrap();
    // And a directory of the system side replaced by a link to an outside tree.
    d.remove(&format!("{SYS}/apps/lib"));
    symlink(
        d.path("outside/appdir/lib"),
        d.path(&format!("{SYS}/apps/lib")),
    )
    .unwrap();
    let b = d
        .run(["boot"], 2)
        .says(&["version tag ignored", "apps/lib", "symbolic link"]);
    assert!(!b.text().contains("upgrade adopted"), "{}", b.text());
    assert_eq!(before, d.snapshot("outside"));
    // The backup side's file and tag are real files again, with the committed content.
    assert_eq!(d.read(&format!("{DATA}/apps/app.bin")), "application v1\n");
    let tag = d.path(&format!("{DATA}/app_ver.txt"));
    assert!(tag.symlink_metadata().unwrap().is_file());
    assert_eq!(d.read(&format!("{DATA}/app_ver.txt")).trim(), "1");
    // After the directory link is removed, everything heals.
    d.remove(&format!("{SYS}/apps/lib"));
    d.run(["boot"], 0);
    assert_eq!(d.read(&format!("{SYS}/apps/lib/mod.py")), "VERSION = 1\n");
    d.run(["verify"], 0);
    assert_confined(&d, &before, &[&b]);
}
