//! An application writing a protected file while rebound works on it (defects
//! issue, items 2 and 3). The binary is paused before a chosen filesystem mutation
//! (`REBOUND_FAULT_PAUSE_AT`), the test changes the file, then lets it go on
//! (`REBOUND_FAULT_RESUME_FILE`): deterministic, no timing.
//!
//! - Item 2: `commit` of a file that changes while it is committed recorded a digest of
//!   content that never existed whole and exited 0; a later boot reset the file to
//!   factory. Now the file must be unchanged (size, mtime, ctime, inode) from before
//!   its hash until the commit point, else "changed while committing; retry", exit 2,
//!   nothing recorded, the file left alone.
//! - Item 3: a boot restored the old content over a file edited during the boot, and
//!   the commit that followed said "already committed": the edit was reverted while
//!   the application was told it was kept. Now a restore re-checks its target right
//!   before the rename; a file changed since observe is left as it is and reported.
//!   An edit that lands after the boot started but before it hashed the file (so
//!   observe takes it for damage) is caught by the boot's change journal: the boot is
//!   paused once it watches the directory (`REBOUND_FAULT_PAUSE_AFTER_WATCH`).

use crate::util::{Dir, Paused};

const SEALED_APN: &str = "{\"apn\": \"factory\"}\n";

fn sealed(name: &str, copies: &[&str]) -> Dir {
    let d = Dir::golden_device(name, copies);
    std::fs::create_dir_all(d.path("data")).unwrap();
    d.run(["seal"], 0);
    d
}

/// Item 2, golden set without copies: the first mutation of the commit is the fsync
/// of the committed file, before the commit point.
#[test]
fn commit_of_a_file_appended_to_while_committing_fails_and_records_nothing() {
    let d = sealed("race-commit", &[]);
    d.write("usr/system_config.json", "{\"volume\": 6}\n");
    let paused = d
        .cmd(["commit", "usr/system_config.json"])
        .pause_at(1, &d.path("resume"));
    // The application is still writing.
    let appended = "{\"volume\": 6}\n{\"bass\": 2}\n";
    d.write("usr/system_config.json", appended);
    paused
        .resume()
        .expect_code(2)
        .says(&["system_config.json: changed while committing; retry"]);
    // Left alone, and nothing recorded: the manifest still has the sealed version, so
    // verify sees an uncommitted edit.
    assert_eq!(d.read("usr/system_config.json"), appended);
    d.run(["verify"], 1).says(&["system_config.json: corrupt"]);
    // The retry records what is there now, and the boot keeps it.
    d.run(["commit", "usr/system_config.json"], 0)
        .says(&["recorded system_config.json"]);
    d.run(["boot"], 0).says(&["result: intact"]);
    assert_eq!(d.read("usr/system_config.json"), appended);
}

/// Item 2 with an extra copy: the change lands before the file is staged there.
#[test]
fn commit_of_a_file_changed_before_it_is_staged_fails_and_records_nothing() {
    let d = sealed("race-commit-copy", &["data/copy"]);
    d.write("usr/apn_cfg.json", "{\"apn\": \"mine\"}\n");
    let paused = d
        .cmd(["commit", "usr/apn_cfg.json"])
        .pause_at(1, &d.path("resume"));
    let appended = "{\"apn\": \"mine\"}\n{\"mtu\": 1400}\n";
    d.write("usr/apn_cfg.json", appended);
    paused
        .resume()
        .expect_code(2)
        .says(&["apn_cfg.json: changed while committing; retry"]);
    assert_eq!(d.read("usr/apn_cfg.json"), appended);
    assert_eq!(d.read("data/copy/apn_cfg.json"), SEALED_APN);
    d.run(["commit", "usr/apn_cfg.json"], 0);
    d.run(["boot"], 0).says(&["result: intact"]);
    assert_eq!(d.read("usr/apn_cfg.json"), appended);
    assert_eq!(d.read("data/copy/apn_cfg.json"), appended);
}

/// The application's side of item 3 while `paused` (a boot) waits: it writes `edit`
/// into apn_cfg.json and runs `commit`, which waits for the boot. The boot must leave
/// the edit, the commit record it, and the next boot find everything intact.
fn edit_and_commit_during(d: &Dir, paused: Paused, edit: &str) {
    d.write("usr/apn_cfg.json", edit);
    let commit = d.cmd(["commit", "usr/apn_cfg.json"]).spawn();
    paused
        .resume()
        .expect_code(2)
        .says(&["apn_cfg.json: changed during this run: left as it is, checked at the next run"]);
    let out = commit.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("recorded apn_cfg.json"), "{text}");
    assert_eq!(d.read("usr/apn_cfg.json"), edit);
    d.run(["boot"], 0).says(&["result: intact"]);
    assert_eq!(d.read("usr/apn_cfg.json"), edit);
}

/// Item 3, the sequence: a boot is about to restore a damaged file; the
/// application writes it and runs `commit`, which waits for the boot; the boot leaves
/// the new content alone, and the commit records it.
#[test]
fn boot_leaves_a_file_edited_during_the_run_and_the_waiting_commit_records_it() {
    let d = sealed("race-boot", &[]);
    d.write("usr/apn_cfg.json", "garbage");
    // Mutation 1 of this boot: the temporary file of the restore of apn_cfg.json.
    let paused = d.cmd(["boot"]).pause_at(1, &d.path("resume"));
    edit_and_commit_during(&d, paused, "{\"apn\": \"customer\"}\n");
}

/// Item 3, the gap the content re-check alone leaves: the edit lands after the boot
/// started, before it hashed the file, so observe sees the edit itself and plans to
/// restore the committed content over it. The change journal tells the edit from
/// damage: the boot leaves it, and the commit waiting for the boot records it.
#[test]
fn boot_leaves_a_file_edited_before_it_was_hashed_and_the_waiting_commit_records_it() {
    let d = sealed("race-boot-early", &["data"]);
    // Watch 1: the live root, before anything is hashed.
    let paused = d.cmd(["boot"]).pause_after_watch(1, &d.path("resume"));
    let edit = "{\"apn\": \"early\"}\n";
    edit_and_commit_during(&d, paused, edit);
    assert_eq!(
        d.read("data/apn_cfg.json"),
        edit,
        "the copy holds the commit"
    );
}

/// An application that replaces a whole directory during the boot (moves it away,
/// writes a new one in its place): the new directory was never watched, but its
/// files are below a name someone changed, so they are left too.
#[test]
fn boot_leaves_files_of_a_directory_replaced_during_the_run() {
    let d = sealed("race-boot-dir", &[]);
    // Watches 1-3: the root, app/, app/lib/.
    let paused = d.cmd(["boot"]).pause_after_watch(3, &d.path("resume"));
    std::fs::rename(d.path("usr/app"), d.path("usr/app.old")).unwrap();
    d.write("usr/app/main.py", "print('v2')\n");
    paused
        .resume()
        .expect_code(2)
        .says(&["app/main.py: changed during this run"]);
    assert_eq!(d.read("usr/app/main.py"), "print('v2')\n");
}

/// A set the boot comes to later: its live copy is watched when the boot starts, so
/// an edit made while the boot repairs the set before it is left too (the later set's
/// own walk, which would watch it otherwise, comes after the edit).
#[test]
fn boot_leaves_an_edit_in_a_later_set_made_while_an_earlier_set_is_repaired() {
    let d = sealed("race-boot-later-set", &[]);
    let cfg = d.read("rebound.toml");
    d.write("m1/x.conf", "v1\n");
    std::fs::create_dir_all(d.path("m2")).unwrap();
    d.config(&format!(
        "{cfg}[[set]]\nname = \"m\"\nmode = \"mirror\"\nreplicas = [\"{}\", \"{}\"]\ninclude = [\"*.conf\"]\n",
        d.path("m1").display(),
        d.path("m2").display(),
    ));
    d.run(["boot"], 0);
    assert_eq!(d.read("m2/x.conf"), "v1\n");
    d.write("usr/apn_cfg.json", "garbage");
    // Mutation 1: the restore of apn_cfg.json in the first set.
    let paused = d.cmd(["boot"]).pause_at(1, &d.path("resume"));
    d.write("m1/x.conf", "v2\n");
    paused
        .resume()
        .expect_code(2)
        .says(&["x.conf: changed during this run"]);
    assert_eq!(d.read("m1/x.conf"), "v2\n");
    assert_eq!(d.read("usr/apn_cfg.json"), SEALED_APN);
}

/// The journal leaves alone only what changed during the run: damage done before the
/// boot started (a torn write of an earlier power cut, a bit flip) is repaired, in a
/// boot that watched the file's directory all along.
#[test]
fn boot_repairs_damage_done_before_it_started() {
    let d = sealed("race-boot-before", &["data"]);
    d.write("usr/apn_cfg.json", "torn");
    let paused = d.cmd(["boot"]).pause_after_watch(1, &d.path("resume"));
    paused.resume().expect_code(0).says(&["result: repaired"]);
    assert_eq!(d.read("usr/apn_cfg.json"), SEALED_APN);
}

/// Item 3 for a missing file: a file that appears while the boot is about to restore
/// it is left alone too; without a commit, the next boot restores it as usual.
#[test]
fn boot_leaves_a_file_created_during_the_run_and_the_next_boot_checks_it() {
    let d = sealed("race-boot-missing", &[]);
    d.remove("usr/apn_cfg.json");
    let paused = d.cmd(["boot"]).pause_at(1, &d.path("resume"));
    d.write("usr/apn_cfg.json", "{\"apn\": \"new\"}\n");
    paused
        .resume()
        .expect_code(2)
        .says(&["apn_cfg.json: changed during this run"]);
    assert_eq!(d.read("usr/apn_cfg.json"), "{\"apn\": \"new\"}\n");
    // Not committed: the next run treats it as any uncommitted edit.
    d.run(["boot"], 0).says(&["result: repaired"]);
    assert_eq!(d.read("usr/apn_cfg.json"), SEALED_APN);
}

/// Item 3 for the factory fallback: the committed version has no intact copy, so the
/// boot would restore the golden one; an edit landing meanwhile is kept, and the
/// commit that follows records it.
#[test]
fn boot_factory_fallback_leaves_a_file_edited_during_the_run() {
    let d = sealed("race-fallback", &[]);
    d.write("usr/apn_cfg.json", "{\"apn\": \"committed\"}\n");
    d.run(["commit", "usr/apn_cfg.json"], 0);
    d.write("usr/apn_cfg.json", "rot");
    let paused = d.cmd(["boot"]).pause_at(1, &d.path("resume"));
    let edit = "{\"apn\": \"customer\"}\n";
    d.write("usr/apn_cfg.json", edit);
    paused
        .resume()
        .expect_code(2)
        .says(&["factory", "apn_cfg.json: changed during this run"]);
    assert_eq!(d.read("usr/apn_cfg.json"), edit);
    d.run(["commit", "usr/apn_cfg.json"], 0)
        .says(&["recorded apn_cfg.json"]);
    d.run(["boot"], 0).says(&["result: intact"]);
    assert_eq!(d.read("usr/apn_cfg.json"), edit);
}
