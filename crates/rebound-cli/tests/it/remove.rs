//! `rebound commit --remove` (defects issue, item 13): an intended deletion. Before,
//! `commit` of a deleted file said "nothing to commit" and the file came back at every
//! boot. Now the file is dropped from its set at a new generation and removed from
//! every writable copy that still holds the recorded content (never a copy with other
//! content); the golden copy keeps it. Killed before each of its mutations, the
//! removal is all or nothing after the next boot.

use crate::util::{Dir, DATA, SYS};

const MAIN: &str = "print('v1')\n";

#[test]
fn commit_of_a_deleted_file_points_to_commit_remove() {
    let d = Dir::golden_device("rm-hint", &[]);
    d.run(["seal"], 0);
    d.remove("usr/app/main.py");
    d.run(["commit", "usr/app/main.py"], 2)
        .says(&["does not exist; nothing to commit", "commit --remove"]);
}

#[test]
fn commit_remove_drops_the_file_from_every_writable_copy_and_boot_keeps_it_gone() {
    let d = Dir::golden_device("rm-golden", &["data/copy"]);
    std::fs::create_dir_all(d.path("data")).unwrap();
    d.run(["seal"], 0);
    assert_eq!(d.read("data/copy/app/main.py"), MAIN);
    d.run(["commit", "--remove", "usr/app/main.py"], 0)
        .says(&["removed app/main.py from set `config`"]);
    assert!(!d.exists("usr/app/main.py"));
    assert!(!d.exists("data/copy/app/main.py"));
    // The other files, and the golden copy, are untouched.
    assert_eq!(d.read("usr/app/lib/util.py"), "def f(): return 1\n");
    assert_eq!(d.read("bak/app/main.py"), MAIN);
    d.run(["boot"], 0).says(&["result: intact"]);
    assert!(!d.exists("usr/app/main.py"));
    assert!(!d.exists("data/copy/app/main.py"));
    d.run(["verify"], 0);
    // Gone from the record: removing it again is an error that says so, and a file
    // created there later is not protected until committed.
    d.run(["commit", "--remove", "usr/app/main.py"], 2)
        .says(&["does not record it; nothing to remove"]);
    d.write("usr/app/main.py", "print('mine')\n");
    d.run(["boot"], 0);
    assert_eq!(d.read("usr/app/main.py"), "print('mine')\n");
    assert!(!d.exists("data/copy/app/main.py"));
}

#[test]
fn commit_remove_of_a_file_already_deleted_by_hand_stops_it_coming_back() {
    let d = Dir::golden_device("rm-deleted", &[]);
    d.run(["seal"], 0);
    d.remove("usr/app/main.py");
    d.run(["commit", "--remove", "usr/app/main.py"], 0);
    d.run(["boot"], 0).says(&["result: intact"]);
    assert!(!d.exists("usr/app/main.py"));
}

#[test]
fn commit_remove_never_removes_a_copy_with_other_content() {
    let d = Dir::mirror_device("rm-mirror", &[SYS, DATA]);
    d.run(["boot"], 0);
    assert_eq!(d.read(&format!("{DATA}/apps/params.cfg")), "baud=115200\n");
    d.write(&format!("{DATA}/apps/params.cfg"), "baud=9600\n");
    d.run(
        [
            "commit",
            "--remove",
            d.path(&format!("{SYS}/apps/params.cfg")).to_str().unwrap(),
        ],
        0,
    )
    .says(&["removed apps/params.cfg", "left as it is"]);
    assert!(!d.exists(&format!("{SYS}/apps/params.cfg")));
    assert_eq!(d.read(&format!("{DATA}/apps/params.cfg")), "baud=9600\n");
    d.run(["boot"], 0).says(&["result: intact"]);
    assert!(!d.exists(&format!("{SYS}/apps/params.cfg")));
    assert_eq!(d.read(&format!("{DATA}/apps/params.cfg")), "baud=9600\n");
}

/// Killed before each mutation in turn, then a boot (itself killed once first): the
/// file is in every writable copy with its content, or in none.
#[test]
fn commit_remove_killed_at_every_mutation_is_all_or_nothing_after_boot() {
    let mut k = 1;
    let mut outcomes = Vec::new();
    loop {
        let d = Dir::golden_device(&format!("rm-kill-{k}"), &["data/copy"]);
        std::fs::create_dir_all(d.path("data")).unwrap();
        d.run(["seal"], 0);
        let golden = d.snapshot("bak");
        let paused = d
            .cmd(["commit", "--remove", "usr/app/main.py"])
            .kill_at_mutation(k);
        if paused {
            // A crash during the recovery too, at a varying point.
            d.cmd(["boot"]).kill_at_mutation(1 + k % 3);
        }
        d.run(["boot"], 0);
        d.run(["verify"], 0);
        let here: Vec<Option<Vec<u8>>> = ["usr", "data/copy"]
            .iter()
            .map(|r| d.read_opt(&format!("{r}/app/main.py")))
            .collect();
        let side = if here.iter().all(|c| c.as_deref() == Some(MAIN.as_bytes())) {
            "old"
        } else if here.iter().all(Option::is_none) {
            "new"
        } else {
            panic!("killed before mutation {k}, then boot: a mix: {here:?}")
        };
        if !paused {
            assert_eq!(side, "new", "the completed removal was undone");
        }
        assert_eq!(d.snapshot("bak"), golden, "the golden copy was written");
        d.run(["boot", "--dry-run"], 0).says(&["result: intact"]);
        outcomes.push(side);
        if !paused {
            break;
        }
        k += 1;
    }
    assert!(
        outcomes.contains(&"old") && outcomes.contains(&"new"),
        "{outcomes:?}"
    );
}
