//! An application writing a protected file while rebound works on it (defects
//! issue, item 2). The binary is paused before a chosen filesystem mutation
//! (`REBOUND_FAULT_PAUSE_AT`), the test changes the file, then lets it go on
//! (`REBOUND_FAULT_RESUME_FILE`): deterministic, no timing.
//!
//! - Item 2: `commit` of a file that changes while it is committed recorded a digest of
//!   content that never existed whole and exited 0; a later boot reset the file to
//!   factory. Now the file must be unchanged (size, mtime, ctime, inode) from before
//!   its hash until the commit point, else "changed while committing; retry", exit 2,
//!   nothing recorded, the file left alone.

use crate::util::Dir;

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
