//! Parity (issue 16): a `mode = "parity"` set (live + parity, no second copy) and
//! `parity = DIR` beside golden copies. Damage within and beyond the redundancy
//! (flipped bits in k blocks, zeroed ranges, a torn last page, truncation, a grown file,
//! a deleted file), repairs through `rebound boot`, what `verify` reports, parity kept in
//! step by `commit`, `update` and `write`, and damaged parity records.

use crate::util::Dir;

/// The data file of the tests: 256 KiB of varied bytes (64 blocks of 4 KiB; at 10%
/// redundancy its record holds 7 recovery blocks).
const SIZE: usize = 256 * 1024;
const BLOCK: usize = 4096;

fn content(seed: u32) -> Vec<u8> {
    // A small LCG: deterministic, not compressible, different per seed.
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..SIZE)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (x >> 24) as u8
        })
        .collect()
}

/// A parity set `data`: live `usr` with `db.bin` and `small.cfg`, parity in `par`,
/// booted once (the first run adopts the files and writes their records).
fn device(name: &str) -> Dir {
    let d = Dir::new(name);
    d.config(&format!(
        "[[set]]\nname = \"data\"\nmode = \"parity\"\nlive = \"{}\"\nparity = \"{}\"\ninclude = [\"**\"]\n",
        d.path("usr").display(),
        d.path("par").display()
    ));
    d.write("usr/db.bin", content(1));
    d.write("usr/small.cfg", "baud=115200\n");
    std::fs::create_dir_all(d.path("par")).unwrap();
    d.run(["boot"], 0).says(&["first run"]);
    assert_eq!(records(&d, "data").len(), 2, "one record per content");
    d.run(["verify"], 0);
    d.run(["status"], 0)
        .says(&["parity", "2 records (10% recovery blocks"]);
    d
}

/// Every record file of `set` in `par`.
fn records(d: &Dir, set: &str) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let base = d.path(&format!("par/.rebound/{set}/parity"));
    for fan in std::fs::read_dir(base).unwrap() {
        for r in std::fs::read_dir(fan.unwrap().path()).unwrap() {
            out.push(r.unwrap().path());
        }
    }
    out.sort();
    out
}

fn damage_blocks(d: &Dir, rel: &str, blocks: &[usize]) {
    let mut b = d.read_opt(rel).unwrap();
    for k in blocks {
        // One flipped bit per block, somewhere inside it.
        b[k * BLOCK + (k * 977) % BLOCK] ^= 0x10;
    }
    d.write(rel, b);
}

#[test]
fn a_parity_set_repairs_up_to_its_redundancy_of_damaged_blocks_through_boot() {
    let d = device("parity-within");
    // 10% of 64 blocks, spread over the file, first and last included.
    damage_blocks(&d, "usr/db.bin", &[0, 9, 20, 31, 47, 63]);
    d.run(["verify"], 1)
        .says(&["6 of 64 blocks damaged, repairable"]);
    d.run(["boot"], 0).says(&[
        "result: repaired",
        "rebuilt from its intact blocks and parity",
    ]);
    assert_eq!(d.read_opt("usr/db.bin").unwrap(), content(1));
    // All 7 recovery blocks are usable: 7 damaged blocks are still repaired.
    damage_blocks(&d, "usr/db.bin", &[1, 2, 3, 4, 5, 6, 7]);
    d.run(["boot"], 0).says(&["result: repaired"]);
    assert_eq!(d.read_opt("usr/db.bin").unwrap(), content(1));
    d.run(["verify"], 0);
    let st = d.run(["status", "--json"], 0).json();
    assert_eq!(st[0]["history"]["repairs"]["file_from_parity"], 2, "{st:#}");
}

#[test]
fn damage_beyond_the_redundancy_is_reported_lost_and_left_as_it_is() {
    let d = device("parity-beyond");
    damage_blocks(&d, "usr/db.bin", &(0..8).map(|k| k * 8).collect::<Vec<_>>());
    let damaged = d.read_opt("usr/db.bin").unwrap();
    d.run(["verify"], 3)
        .says(&["8 of 64 blocks damaged, not repairable"]);
    d.run(["boot"], 3).says(&["lost"]);
    assert_eq!(
        d.read_opt("usr/db.bin").unwrap(),
        damaged,
        "a lost file is left as it is"
    );
}

#[test]
fn zeroed_ranges_a_torn_last_page_truncation_and_growth_are_rebuilt() {
    let d = device("parity-shapes");
    let good = content(1);
    // A zeroed range of 5 blocks (a torn erase block).
    let mut b = good.clone();
    b[10 * BLOCK + 100..15 * BLOCK - 100].fill(0);
    d.write("usr/db.bin", &b);
    d.run(["boot"], 0).says(&["result: repaired"]);
    assert_eq!(d.read_opt("usr/db.bin").unwrap(), good);
    // A torn last page: its bytes garbage.
    let mut b = good.clone();
    let n = b.len();
    b[n - BLOCK..].fill(0xA5);
    d.write("usr/db.bin", &b);
    d.run(["boot"], 0).says(&["result: repaired"]);
    assert_eq!(d.read_opt("usr/db.bin").unwrap(), good);
    // Truncated by 3 blocks and a half (the manifest has the size).
    d.write("usr/db.bin", &good[..good.len() - 3 * BLOCK - 2048]);
    d.run(["boot"], 0).says(&["result: repaired"]);
    assert_eq!(d.read_opt("usr/db.bin").unwrap(), good);
    // Grown: the bytes beyond the recorded size go, the blocks were intact.
    let mut b = good.clone();
    b.extend_from_slice(b"appended by a runaway logger\n");
    d.write("usr/db.bin", &b);
    d.run(["boot"], 0).says(&["result: repaired"]);
    assert_eq!(d.read_opt("usr/db.bin").unwrap(), good);
    // A small file is rebuilt too (its blocks are small: 64 bytes).
    d.write("usr/small.cfg", "baud=115201\n");
    d.run(["boot"], 0).says(&["result: repaired"]);
    assert_eq!(d.read("usr/small.cfg"), "baud=115200\n");
}

#[test]
fn a_deleted_file_is_not_repairable_from_parity_alone_and_is_reported_so() {
    let d = device("parity-deleted");
    d.remove("usr/db.bin");
    d.run(["verify"], 3)
        .says(&["64 of 64 blocks damaged, not repairable"]);
    d.run(["boot"], 3).says(&["lost"]);
    assert!(!d.exists("usr/db.bin"));
}

#[test]
fn commit_and_write_keep_parity_in_step_and_drop_the_old_records() {
    let d = device("parity-commit");
    d.write("usr/db.bin", content(2));
    d.run(["commit", "usr/db.bin"], 0);
    assert_eq!(
        records(&d, "data").len(),
        2,
        "the old content's record is removed"
    );
    damage_blocks(&d, "usr/db.bin", &[3, 30, 60]);
    d.run(["boot"], 0).says(&["result: repaired"]);
    assert_eq!(d.read_opt("usr/db.bin").unwrap(), content(2));
    // `write` replaces content and commits it: its record is there before its manifest.
    d.write("new.cfg", "baud=9600\n");
    d.run(["write", "usr/small.cfg", "--from", "new.cfg"], 0);
    d.write("usr/small.cfg", "baud=9601\n");
    d.run(["boot"], 0).says(&["result: repaired"]);
    assert_eq!(d.read("usr/small.cfg"), "baud=9600\n");
    assert_eq!(records(&d, "data").len(), 2);
}

#[test]
fn update_writes_the_parity_of_new_files_before_its_manifest() {
    let d = device("parity-update");
    d.write("upd/db.bin", content(3));
    d.write("upd/new/extra.bin", content(4));
    d.run(["update", "data", "--from", "upd"], 0);
    assert_eq!(d.read_opt("usr/db.bin").unwrap(), content(3));
    assert_eq!(records(&d, "data").len(), 3);
    damage_blocks(&d, "usr/new/extra.bin", &[5, 6]);
    damage_blocks(&d, "usr/db.bin", &[50]);
    d.run(["boot"], 0).says(&["result: repaired"]);
    assert_eq!(d.read_opt("usr/new/extra.bin").unwrap(), content(4));
    assert_eq!(d.read_opt("usr/db.bin").unwrap(), content(3));
}

#[test]
fn a_damaged_parity_record_is_reported_never_used_and_rewritten() {
    let d = device("parity-record");
    for r in records(&d, "data") {
        let mut b = std::fs::read(&r).unwrap();
        let mid = b.len() / 2;
        b[mid] ^= 1;
        std::fs::write(&r, b).unwrap();
    }
    d.run(["verify"], 1).says(&["parity damaged"]);
    d.run(["boot"], 0)
        .says(&["parity damaged", "write the parity record"]);
    d.run(["verify"], 0);
    let st = d.run(["status", "--json"], 0).json();
    assert_eq!(st[0]["history"]["repairs"]["parity_record"], 2, "{st:#}");
    // The rewritten records repair.
    damage_blocks(&d, "usr/db.bin", &[1, 2]);
    d.run(["boot"], 0).says(&["result: repaired"]);
    assert_eq!(d.read_opt("usr/db.bin").unwrap(), content(1));
    // A record missing (deleted) is written again from the intact file.
    for r in records(&d, "data") {
        std::fs::remove_file(r).unwrap();
    }
    d.run(["boot"], 0).says(&["write the parity record"]);
    assert_eq!(records(&d, "data").len(), 2);
    let st = d.run(["status", "--json"], 0).json();
    assert_eq!(
        st[0]["history"]["repairs"]["parity_record"], 2,
        "written, not repaired"
    );
}

#[test]
fn damaged_file_and_damaged_record_is_lost_not_rebuilt_from_bad_parity() {
    let d = device("parity-both");
    for r in records(&d, "data") {
        let mut b = std::fs::read(&r).unwrap();
        let n = b.len();
        b[n - 40] ^= 0xff;
        std::fs::write(&r, b).unwrap();
    }
    damage_blocks(&d, "usr/db.bin", &[1]);
    let damaged = d.read_opt("usr/db.bin").unwrap();
    d.run(["boot"], 3).says(&["lost", "parity damaged"]);
    assert_eq!(d.read_opt("usr/db.bin").unwrap(), damaged);
}

#[test]
fn a_golden_set_with_parity_rebuilds_before_reading_golden() {
    let d = Dir::golden_device("parity-golden", &[]);
    let cfg = d.read("rebound.toml");
    d.config(&format!("{cfg}parity = \"{}\"\n", d.path("par").display()));
    std::fs::create_dir_all(d.path("par")).unwrap();
    d.write("usr/app/data.bin", content(5));
    d.run(["seal", "config"], 0);
    assert!(
        records(&d, "config").len() >= 5,
        "a record per sealed content"
    );
    damage_blocks(&d, "usr/app/data.bin", &[4, 40]);
    // Golden is damaged too: parity alone repairs.
    d.write("bak/app/data.bin", b"not the data");
    d.run(["boot"], 0)
        .says(&["rebuilt from its intact blocks and parity"]);
    assert_eq!(d.read_opt("usr/app/data.bin").unwrap(), content(5));
    // Damage beyond parity falls back to golden, when golden is intact.
    d.write("usr/apn_cfg.json", "{}");
    d.remove("bak/app/data.bin");
    d.run(["seal", "--force", "config"], 0);
    d.remove("usr/app/data.bin");
    d.run(["boot"], 0).says(&["(golden)"]);
    assert_eq!(d.read_opt("usr/app/data.bin").unwrap(), content(5));
}

#[test]
fn a_missing_parity_directory_is_reported_and_nothing_is_written_there() {
    let d = device("parity-unmounted");
    std::fs::remove_dir_all(d.path("par")).unwrap();
    d.run(["boot"], 0)
        .says(&["parity directory", "does not exist"]);
    assert!(
        !d.exists("par"),
        "rebound wrote into a missing parity directory"
    );
}

#[test]
fn bad_parity_configuration_is_refused_naming_the_key() {
    let d = Dir::new("parity-config");
    let live = d.path("usr");
    let par = d.path("par");
    let cases = [
        (
            format!("mode = \"parity\"\nlive = \"{}\"\n", live.display()),
            "needs `parity`",
        ),
        (
            format!(
                "mode = \"parity\"\nlive = \"{}\"\nparity = \"{}/p\"\n",
                live.display(),
                live.display()
            ),
            "overlaps",
        ),
        (
            format!(
                "mode = \"parity\"\nlive = \"{}\"\nparity = \"{}\"\nparity_redundancy = 0\n",
                live.display(),
                par.display()
            ),
            "parity_redundancy",
        ),
        (
            format!(
                "mode = \"parity\"\nlive = \"{}\"\nparity = \"{}\"\nparity_block_size = 100\n",
                live.display(),
                par.display()
            ),
            "parity_block_size",
        ),
        (
            format!(
                "mode = \"parity\"\nlive = \"{}\"\nparity = \"{}\"\ngolden = \"/g\"\n",
                live.display(),
                par.display()
            ),
            "a parity set uses `live` and `parity`",
        ),
    ];
    for (body, needle) in cases {
        d.config(&format!("[[set]]\nname = \"s\"\ninclude = [\"x\"]\n{body}"));
        d.run(["check-config"], 2).says(&[needle]);
    }
    d.config(&format!(
        "[[set]]\nname = \"s\"\ninclude = [\"x\"]\nmode = \"parity\"\nlive = \"{}\"\nparity = \"{}\"\nparity_redundancy = 25\n",
        live.display(),
        par.display()
    ));
    d.run(["check-config"], 0)
        .says(&["parity mode", "25% recovery blocks"]);
    // The parity directory's mount is waited for like every copy's.
    let units = d.run(["systemd-mounts"], 0).stdout();
    assert!(units.contains(&par.display().to_string()), "{units}");
    let j = d.run(["check-config", "--json"], 0).json();
    assert_eq!(j["sets"][0]["parity"]["redundancy"], 25, "{j:#}");
}

#[test]
fn leftovers_in_the_parity_directory_are_removed_and_nothing_else_is_touched() {
    let d = device("parity-leftovers");
    let base = "par/.rebound/data/parity";
    d.write(&format!("{base}/ab/.rebound-tmp-77-1"), "torn record");
    d.write(&format!("{base}/ab/not-a-digest"), "stray");
    d.write("par/notes.txt", "the user's, outside rebound's directory");
    d.run(["boot"], 0);
    assert!(!d.exists(&format!("{base}/ab/.rebound-tmp-77-1")));
    assert!(!d.exists(&format!("{base}/ab/not-a-digest")));
    assert_eq!(
        d.read("par/notes.txt"),
        "the user's, outside rebound's directory"
    );
    assert_eq!(records(&d, "data").len(), 2);
}

/// The manifests of a parity set live in its one copy (the lab's finding 4,
/// docs/powercut.md): a copy that lost them looks like a first run. The adoption says
/// that the parity directory knew earlier content.
#[test]
fn a_parity_set_that_lost_its_manifests_says_so_when_it_adopts() {
    let d = device("parity-lost-manifests");
    d.remove("usr/.rebound");
    d.run(["boot"], 0).says(&[
        "first run",
        "the parity directory holds 2 records of earlier content",
    ]);
}

// ---------------------------------------------------------------------------------
// Review of issue 16 (fresh eyes): reproductions.

/// A parity set keeps its manifests only in the live copy (both slots on the data's
/// partition). A media fault that damages both slots and a file's blocks makes the
/// boot re-adopt the files as they are; the record of the committed content must not
/// be removed by that adoption: it is the only thing left that can repair the file.
#[test]
fn review_readoption_after_both_slots_are_damaged_keeps_the_committed_record() {
    let d = device("parity-review-slots");
    let before = records(&d, "data");
    damage_blocks(&d, "usr/db.bin", &[1]);
    for slot in ["manifest.0", "manifest.1"] {
        let rel = format!("usr/.rebound/data/{slot}");
        let mut b = d.read_opt(&rel).unwrap();
        let mid = b.len() / 2;
        b[mid] ^= 0x01;
        d.write(&rel, b);
    }
    d.run(["boot"], 2)
        .says(&["its slots are damaged", "not adopted", "rebound seal data"]);
    let after = records(&d, "data");
    for r in &before {
        assert!(
            after.contains(r),
            "the record {} of the committed content was removed by the re-adoption; db.bin now: {}",
            r.display(),
            if d.read_opt("usr/db.bin").unwrap() == content(1) {
                "intact"
            } else {
                "damaged, adopted as the truth"
            }
        );
    }
}

/// The parity directory is checked against the copies only as written. A link makes
/// two spellings one directory: a parity directory that is a link to the golden copy
/// passes `check-config`, and every boot then writes records into the golden copy,
/// which only `seal` may write (docs/design.md 2.5: "inside a golden copy it would be
/// written outside `seal`"). Replicas are compared by identity at run time
/// (`roots.rs`); the parity directory is not.
#[test]
fn review_a_parity_directory_linked_to_the_golden_copy_is_refused() {
    let d = Dir::golden_device("parity-review-link", &[]);
    d.run(["seal", "config"], 0);
    std::os::unix::fs::symlink(d.path("bak"), d.path("par")).unwrap();
    let cfg = d.read("rebound.toml");
    d.config(&format!("{cfg}parity = \"{}\"\n", d.path("par").display()));
    let out = d.cmd(["boot"]).run();
    eprintln!("{}", out.text());
    assert!(
        !d.exists("bak/.rebound/config/parity"),
        "records were written into the golden copy through a linked parity directory"
    );
}

/// A commit writes, before its commit point, only its new content's record: a record
/// of an unrelated, unchanged file that cannot be written (here a directory stands
/// where it goes; a full parity partition or an unreadable source do the same) does not
/// make every commit of any other file fail, all or nothing (it did, before the review).
#[test]
fn review_an_unrelated_record_that_cannot_be_written_does_not_block_a_commit() {
    let d = device("parity-review-unrelated");
    // small.cfg's record: the smaller of the two files.
    let small = records(&d, "data")
        .into_iter()
        .min_by_key(|r| std::fs::metadata(r).unwrap().len())
        .unwrap();
    std::fs::remove_file(&small).unwrap();
    std::fs::create_dir(&small).unwrap();
    std::fs::write(small.join("x"), "in the way").unwrap();
    d.write("usr/db.bin", content(2));
    // The commit is made (its own record first); the boot after its commit point
    // fails to write the unrelated record, best effort: exit 2 says so.
    d.run(["commit", "usr/db.bin"], 2)
        .says(&["recorded db.bin", "generation 2"]);
    damage_blocks(&d, "usr/db.bin", &[7]);
    d.run(["boot"], 2)
        .says(&["rebuilt from its intact blocks and parity"]);
    assert_eq!(d.read_opt("usr/db.bin").unwrap(), content(2));
}

/// A parity set whose copy is gone whole (files and manifests: a reformatted or
/// unmounted partition) while its parity directory knew its files is a loss, said so
/// (exit 2), not a set with nothing to protect yet; the records are kept.
#[test]
fn a_parity_set_whose_copy_is_gone_is_an_error_not_nothing_to_protect() {
    let d = device("parity-copy-gone");
    d.wipe("usr");
    d.run(["boot"], 2).says(&[
        "the parity directory holds 2 records of earlier content",
        "cannot be rebuilt from parity alone",
    ]);
    assert_eq!(records(&d, "data").len(), 2);
}
