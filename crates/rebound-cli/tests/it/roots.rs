//! Replica roots compared by identity and used through one handle per run (defects
//! issue, item 8): a root that is a link to another root of the same set, or to
//! another set's golden copy, is refused; a live root renamed and replaced by a link
//! while a boot runs does not send the boot's remaining writes into the link's target.

use crate::util::{Dir, DATA, SYS};

/// Before the fix, `seal` wrote the factory copy into the live root itself.
#[test]
fn golden_root_that_is_a_link_to_the_live_root_is_refused() {
    let d = Dir::golden_device("golden-link", &[]);
    std::os::unix::fs::symlink(d.path("usr"), d.path("bak")).unwrap();
    let before = d.contents("usr");
    for cmd in ["seal", "boot", "verify"] {
        d.run([cmd], 2).says(&[
            &format!("`{}`", d.path("usr").display()),
            &format!("`{}`", d.path("bak").display()),
            "is the same directory as",
            "its own directory",
        ]);
    }
    assert_eq!(d.contents("usr"), before, "a refused set was written");
}

#[test]
fn mirror_replica_that_is_a_link_into_another_replica_is_refused() {
    let d = Dir::mirror_device("replica-inside", &[SYS, DATA]);
    std::fs::create_dir_all(d.path(&format!("{SYS}/inner"))).unwrap();
    std::os::unix::fs::symlink(d.path(&format!("{SYS}/inner")), d.path(DATA)).unwrap();
    d.run(["boot"], 2).says(&["contains", "its own directory"]);
    assert!(!d.exists(&format!("{SYS}/inner/apps")));
    assert!(!d.exists(&format!("{SYS}/.rebound")));
}

/// A writable copy of one set that is, through a link, another set's golden copy:
/// both sets are refused, and a third set still runs.
#[test]
fn writable_copy_that_is_a_link_to_another_sets_golden_copy_is_refused() {
    let d = Dir::golden_device("cross-golden", &[]);
    let cfg = d.read("rebound.toml");
    d.run(["seal"], 0);
    std::fs::create_dir_all(d.path("m1")).unwrap();
    std::os::unix::fs::symlink(d.path("bak"), d.path("m2")).unwrap();
    d.write("m1/apps/x", "x\n");
    d.write("o1/keep.txt", "keep\n");
    std::fs::create_dir_all(d.path("o2")).unwrap();
    d.config(&format!(
        "{cfg}[[set]]\nname = \"m\"\nmode = \"mirror\"\nreplicas = [\"{}\", \"{}\"]\ninclude = [\"apps/**\"]\n\
         [[set]]\nname = \"o\"\nmode = \"mirror\"\nreplicas = [\"{}\", \"{}\"]\ninclude = [\"*.txt\"]\n",
        d.path("m1").display(),
        d.path("m2").display(),
        d.path("o1").display(),
        d.path("o2").display(),
    ));
    let golden = d.contents("bak");
    d.run(["boot"], 2).says(&[
        "set `config`",
        "set `m`",
        "is the same directory as the golden copy",
    ]);
    assert_eq!(d.contents("bak"), golden, "the golden copy was written");
    assert_eq!(d.read("o2/keep.txt"), "keep\n");
}

/// Before the fix each operation opened the root by its name: after the swap, the
/// remaining restores and `.rebound` went into the link's target.
#[test]
fn live_root_replaced_by_a_link_during_a_boot_gets_no_write_in_the_links_target() {
    let d = Dir::golden_device("swap-root", &[]);
    d.run(["seal"], 0);
    d.remove("usr/apn_cfg.json");
    d.remove("usr/app");
    d.write("usr/system_config.json", "{\"volume\": 0}\n");
    std::fs::create_dir_all(d.path("elsewhere")).unwrap();
    let paused = d.cmd(["boot"]).pause_at(1, &d.path("resume"));
    std::fs::rename(d.path("usr"), d.path("usr.old")).unwrap();
    std::os::unix::fs::symlink(d.path("elsewhere"), d.path("usr")).unwrap();
    let r = paused.resume().expect_code(0);
    r.says(&["result: repaired"]);
    assert!(
        d.contents("elsewhere").len() == 1,
        "written into the link's target: {:?}",
        d.contents("elsewhere").keys().collect::<Vec<_>>()
    );
    // Every repair landed in the directory the run started with.
    assert_eq!(d.read("usr.old/apn_cfg.json"), "{\"apn\": \"factory\"}\n");
    assert_eq!(d.read("usr.old/system_config.json"), "{\"volume\": 5}\n");
    assert_eq!(d.read("usr.old/app/main.py"), "print('v1')\n");
    assert_eq!(d.read("usr.old/app/lib/util.py"), "def f(): return 1\n");
}

/// Writable copies of two sets, one inside the other through a link: the outer set's
/// walk would claim the inner set's files and `.rebound/`, so both sets are refused
/// and neither is written; a third set still runs.
#[test]
fn writable_copies_of_two_sets_nested_in_each_other_are_refused() {
    let d = Dir::golden_device("nested-writable", &[]);
    let cfg = d.read("rebound.toml");
    d.run(["seal"], 0);
    d.write("m1/apps/x", "x\n");
    d.write("m2/apps/x", "x\n");
    std::fs::create_dir_all(d.path("m1/inner")).unwrap();
    std::os::unix::fs::symlink(d.path("m1/inner"), d.path("n1")).unwrap();
    d.write("n2/apps/y", "y\n");
    d.config(&format!(
        "{cfg}[[set]]\nname = \"m\"\nmode = \"mirror\"\nreplicas = [\"{}\", \"{}\"]\ninclude = [\"**\"]\n\
         [[set]]\nname = \"n\"\nmode = \"mirror\"\nreplicas = [\"{}\", \"{}\"]\ninclude = [\"apps/**\"]\n",
        d.path("m1").display(),
        d.path("m2").display(),
        d.path("n1").display(),
        d.path("n2").display(),
    ));
    let (m1, n2) = (d.contents("m1"), d.contents("n2"));
    d.run(["boot"], 2).says(&[
        "set `m`",
        "set `n`",
        "not nest",
        &format!("`{}`", d.path("n1").display()),
    ]);
    assert_eq!(d.contents("m1"), m1, "a refused set was written");
    assert_eq!(d.contents("n2"), n2, "a refused set was written");
    assert!(!d.exists("m1/.rebound") && !d.exists("m1/inner/.rebound"));
    d.remove("usr/apn_cfg.json");
    d.run(["boot"], 2).says(&["set config", "result: repaired"]);
    assert!(
        d.exists("usr/apn_cfg.json"),
        "the third set was not repaired"
    );
}
