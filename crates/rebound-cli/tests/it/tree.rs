//! What a real protected tree holds besides rebound's files (issue items 7, 11, 12, 14):
//!
//! - user files whose names merely begin like rebound's temporary files, and real
//!   temporary names where rebound never writes (outside every pattern, inside an
//!   excluded directory), are never removed: only the exact `.rebound-tmp-<pid>-<n>`
//!   names in directories rebound writes into are leftovers;
//! - names rebound cannot hold (not UTF-8, a path over 4096 bytes) are reported by
//!   name, invalid bytes escaped, in every report (`seal`, `boot`, `verify`, `--json`),
//!   never skipped in silence;
//! - `seal` of a tree holding symbolic links names every one of them (not only the
//!   first), and `links = "skip"` leaves them alone and lists them once;
//! - a directory where a protected file or the version tag belongs, or a file where a
//!   protected directory was, is moved aside under `.rebound/<set>/displaced/` (never
//!   deleted) and the protected file restored, where every boot used to fail with
//!   exit 2 ("Is a directory").

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use crate::util::{Dir, DATA, SYS};

/// The golden device with an `exclude` pattern, and the given extra set lines.
fn golden_with(name: &str, extra: &str) -> Dir {
    let d = Dir::golden_device(name, &[]);
    d.config(&format!(
        "[[set]]\nname = \"config\"\nmode = \"golden\"\nlive = \"{}\"\ngolden = \"{}\"\ninclude = [\"apn_cfg.json\", \"system_config.json\", \"app/**\"]\nexclude = [\"app/cache/**\"]\n{extra}",
        d.path("usr").display(),
        d.path("bak").display(),
    ));
    d
}

/// Every file below `rel` whose path ends with `tail`, relative to the test root.
fn find_under(d: &Dir, rel: &str, tail: &str) -> Vec<PathBuf> {
    d.snapshot(rel)
        .into_keys()
        .filter(|p| p.to_string_lossy().ends_with(tail))
        .collect()
}

#[test]
fn user_files_named_like_temporaries_and_temporaries_where_rebound_never_writes_are_kept() {
    let d = golden_with("tmp-names", "");
    // A user's notes in a protected directory (not rebound's exact name format).
    d.write("usr/app/.rebound-tmp-user-notes", "my notes\n");
    // Exact temporary names, but where rebound never writes: outside every pattern,
    // and inside an excluded directory.
    d.write("usr/other/.rebound-tmp-12-3", "not rebound's\n");
    d.write("usr/app/cache/.rebound-tmp-4-5", "cache of the app\n");
    d.write("usr/app/cache/.rebound-tmp-x", "cache of the app\n");
    // A true leftover of a crash, beside a protected file: removed.
    d.write("usr/app/.rebound-tmp-77-0", "leftover");
    d.run(["seal"], 0);
    d.run(["boot"], 0);
    d.run(["verify"], 0);
    d.run(["boot"], 0);
    assert!(
        !d.exists("usr/app/.rebound-tmp-77-0"),
        "a real leftover stayed"
    );
    assert_eq!(d.read("usr/app/.rebound-tmp-user-notes"), "my notes\n");
    assert_eq!(d.read("usr/other/.rebound-tmp-12-3"), "not rebound's\n");
    assert_eq!(
        d.read("usr/app/cache/.rebound-tmp-4-5"),
        "cache of the app\n"
    );
    assert_eq!(d.read("usr/app/cache/.rebound-tmp-x"), "cache of the app\n");
    // The user's notes are a protected file like any other (selected by `app/**`).
    assert_eq!(d.read("bak/app/.rebound-tmp-user-notes"), "my notes\n");
}

#[test]
fn mirror_user_file_named_like_a_temporary_is_protected_not_removed() {
    let d = Dir::mirror_device("tmp-names-mirror", &[SYS, DATA]);
    d.write(&format!("{SYS}/apps/.rebound-tmp-user-notes"), "notes\n");
    d.write(
        &format!("{SYS}/.rebound-tmp-user-notes"),
        "outside every pattern\n",
    );
    d.run(["boot"], 0);
    d.run(["boot"], 0);
    assert_eq!(
        d.read(&format!("{SYS}/apps/.rebound-tmp-user-notes")),
        "notes\n"
    );
    assert_eq!(
        d.read(&format!("{DATA}/apps/.rebound-tmp-user-notes")),
        "notes\n"
    );
    assert_eq!(
        d.read(&format!("{SYS}/.rebound-tmp-user-notes")),
        "outside every pattern\n"
    );
}

/// Creates a file `deep.txt` below `levels` directories of 250 characters under
/// `base`, where the absolute path is longer than the kernel's PATH_MAX (no single
/// system call can name it): two halves, each short enough, renamed together.
/// Returns the path's length relative to `base`.
fn deep_file(base: &Path, scratch: &Path, levels: usize) -> usize {
    let comp = "d".repeat(250);
    let half = levels / 2;
    let mut top = base.to_path_buf();
    for _ in 0..half {
        top.push(&comp);
    }
    std::fs::create_dir_all(&top).unwrap();
    let mut low = scratch.join(&comp);
    let first = low.clone();
    for _ in 1..levels - half {
        low.push(&comp);
    }
    std::fs::create_dir_all(&low).unwrap();
    std::fs::write(low.join("deep.txt"), "deep\n").unwrap();
    std::fs::rename(&first, top.join(&comp)).unwrap();
    levels * 251 + "deep.txt".len()
}

#[test]
fn names_that_cannot_be_protected_are_named_in_every_report() {
    let d = golden_with("odd-names", "");
    let bad = d.path("usr/app").join(OsStr::from_bytes(b"caf\xe9.json"));
    std::fs::write(&bad, "not UTF-8\n").unwrap();
    let bad_dir = d.path("usr/app").join(OsStr::from_bytes(b"lib\xff"));
    std::fs::create_dir(&bad_dir).unwrap();
    std::fs::write(bad_dir.join("x.py"), "below a bad name\n").unwrap();
    // Not reported: excluded, or matched by no pattern.
    std::fs::create_dir_all(d.path("usr/app/cache")).unwrap();
    std::fs::write(
        d.path("usr/app/cache").join(OsStr::from_bytes(b"c\xe9")),
        "",
    )
    .unwrap();
    std::fs::create_dir_all(d.path("usr/other")).unwrap();
    std::fs::write(d.path("usr/other").join(OsStr::from_bytes(b"o\xe9")), "").unwrap();
    std::fs::create_dir_all(d.path("scratch")).unwrap();
    let len = deep_file(&d.path("usr/app"), &d.path("scratch"), 17);
    assert!(len + 4 > 4096);
    let says = [
        "app/caf\\xe9.json: not protected: its name is not UTF-8",
        "app/lib\\xff: not protected: its name is not UTF-8; nothing below it is protected",
        "not protected: its path is longer than 4096 bytes",
    ];
    let check = |r: crate::util::Run| {
        let t = r.text();
        for s in says {
            assert!(t.contains(s), "report lacks {s:?}:\n{t}");
        }
        assert!(!t.contains("c\\xe9") && !t.contains("o\\xe9"), "{t}");
    };
    check(d.run(["seal"], 0));
    check(d.run(["boot"], 0));
    check(d.run(["verify"], 0));
    let j = d.run(["boot", "--json"], 0).json();
    let warnings = j["sets"][0]["plan"]["warnings"].to_string();
    for s in says {
        assert!(
            warnings.contains(&s.replace('\\', "\\\\")),
            "{s:?} not in {warnings}"
        );
    }
    let j = d.run(["verify", "--json"], 0).json();
    assert!(j["sets"][0]["plan"]["warnings"]
        .to_string()
        .contains("caf\\\\xe9.json"));
}

#[test]
fn seal_names_every_symbolic_link_and_skip_leaves_them_alone() {
    let d = golden_with("links", "");
    for i in 0..5 {
        symlink(
            format!("/lib/target{i}"),
            d.path(&format!("usr/app/lib/link{i}.so")),
        )
        .unwrap();
    }
    let r = d
        .run(["seal"], 2)
        .says(&["5 selected paths cannot be sealed", "links = \"skip\""]);
    for i in 0..5 {
        assert!(
            r.text()
                .contains(&format!("app/lib/link{i}.so: is a symbolic link")),
            "link{i} not named:\n{}",
            r.text()
        );
    }
    assert!(!d.exists("bak/.rebound/config/sealed"));
    // Skipped by configuration: sealed without them, listed once, left as they are.
    let d2 = golden_with("links-skip", "links = \"skip\"\n");
    for i in 0..5 {
        symlink(
            format!("/lib/target{i}"),
            d2.path(&format!("usr/app/lib/link{i}.so")),
        )
        .unwrap();
    }
    let r = d2.run(["seal"], 0).says(&[
        "5 symbolic links left unprotected (links = \"skip\")",
        "app/lib/link4.so",
    ]);
    assert_eq!(
        r.text().matches("app/lib/link3.so").count(),
        1,
        "{}",
        r.text()
    );
    d2.run(["boot"], 0);
    d2.run(["verify"], 0);
    for i in 0..5 {
        let p = d2.path(&format!("usr/app/lib/link{i}.so"));
        assert_eq!(
            std::fs::read_link(&p).unwrap(),
            Path::new(&format!("/lib/target{i}"))
        );
        assert!(!d2.exists(&format!("bak/app/lib/link{i}.so")));
    }
}

#[test]
fn mirror_links_skip_lists_links_once_at_adoption() {
    let d = Dir::mirror_device("links-mirror", &[SYS, DATA]);
    let cfg = d.read("rebound.toml");
    d.config(&format!("{cfg}links = \"skip\"\n"));
    for i in 0..3 {
        symlink("/nowhere", d.path(&format!("{SYS}/apps/l{i}"))).unwrap();
    }
    let r = d.run(["boot"], 0).says(&[
        "3 symbolic links in",
        "left unprotected (links = \"skip\"): apps/l0, apps/l1, apps/l2",
    ]);
    assert!(!r.text().contains("not adopted"), "{}", r.text());
}

#[test]
fn a_directory_at_a_protected_file_is_moved_aside_and_the_file_restored() {
    let d = Dir::golden_device("dir-at-file", &[]);
    d.run(["seal"], 0);
    d.remove("usr/apn_cfg.json");
    d.write("usr/apn_cfg.json/note.txt", "the user's note\n");
    d.run(["verify"], 1).says(&["apn_cfg.json", "would: move"]);
    d.run(["boot"], 0)
        .says(&["aside", "apn_cfg.json", "result: repaired"]);
    assert_eq!(d.read("usr/apn_cfg.json"), "{\"apn\": \"factory\"}\n");
    let kept = find_under(&d, "usr/.rebound/config/displaced", "apn_cfg.json/note.txt");
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(
        std::fs::read_to_string(d.path("usr/.rebound/config/displaced").join(&kept[0])).unwrap(),
        "the user's note\n"
    );
    d.run(["boot"], 0);
    d.run(["verify"], 0);
    // Again: the first one moved aside is kept, the second goes to a new place.
    d.remove("usr/apn_cfg.json");
    d.write("usr/apn_cfg.json/note.txt", "second note\n");
    d.run(["boot"], 0).says(&["aside"]);
    let kept = find_under(&d, "usr/.rebound/config/displaced", "apn_cfg.json/note.txt");
    assert_eq!(kept.len(), 2, "{kept:?}");
    d.run(["verify"], 0);
}

#[test]
fn a_file_where_a_protected_directory_was_is_moved_aside_and_the_tree_restored() {
    let d = Dir::golden_device("file-at-dir", &["copy"]);
    d.run(["seal"], 0);
    d.remove("usr/app");
    d.write("usr/app", "a file where the app directory was\n");
    d.remove("copy/app/lib");
    d.write("copy/app/lib", "and one in the copy\n");
    d.run(["boot"], 0).says(&["aside", "result: repaired"]);
    assert_eq!(d.read("usr/app/main.py"), "print('v1')\n");
    assert_eq!(d.read("usr/app/lib/util.py"), "def f(): return 1\n");
    assert_eq!(d.read("copy/app/lib/util.py"), "def f(): return 1\n");
    assert_eq!(
        find_under(&d, "usr/.rebound/config/displaced", "/app").len(),
        1
    );
    assert_eq!(
        find_under(&d, "copy/.rebound/config/displaced", "app/lib").len(),
        1
    );
    d.run(["verify"], 0);
}

#[test]
fn a_directory_at_the_version_tag_is_moved_aside_and_the_tag_written() {
    let d = Dir::mirror_device("dir-at-tag", &[SYS, DATA]);
    d.run(["boot"], 0);
    d.remove(&format!("{DATA}/app_ver.txt"));
    d.write(&format!("{DATA}/app_ver.txt/mine"), "user data\n");
    d.run(["boot"], 0).says(&["aside", "app_ver.txt"]);
    assert_eq!(d.read(&format!("{DATA}/app_ver.txt")).trim(), "1");
    let kept = find_under(
        &d,
        &format!("{DATA}/.rebound/apps/displaced"),
        "app_ver.txt/mine",
    );
    assert_eq!(kept.len(), 1, "{kept:?}");
    d.run(["boot"], 0);
    d.run(["verify"], 0);
}
