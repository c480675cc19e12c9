//! `rebound update` is all or nothing: the process is killed (SIGKILL) before each of
//! its filesystem mutations in turn, using the `fault-injection` build's
//! `REBOUND_FAULT_PAUSE_AT=k`, then `rebound boot` runs, and every replica must hold
//! every old file or every new one, never a mix. The recovering boot is itself killed
//! once at a varying point first (a crash during recovery). The loop goes on until
//! the update finishes without pausing.

use std::collections::BTreeMap;

use crate::util::Dir;

type Files = BTreeMap<&'static str, Option<&'static str>>;

struct Case {
    name: &'static str,
    make: fn(&str) -> Dir,
    set: &'static str,
    /// Writable roots (relative) that must all end all-old or all-new.
    roots: &'static [&'static str],
    /// Protected files before the update (`None`: absent).
    old: Files,
    /// The update's files, at their relative paths.
    update: &'static [(&'static str, &'static str)],
}

impl Case {
    fn new_files(&self) -> Files {
        let mut m = self.old.clone();
        for (p, c) in self.update {
            m.insert(p, Some(c));
        }
        m
    }

    fn device(&self, k: u64) -> Dir {
        let d = (self.make)(&format!("{}-{k}", self.name));
        for (p, c) in self.update {
            d.write(&format!("upd/{p}"), c);
        }
        d
    }

    /// "old" or "new" for one root, or a panic describing the mix found.
    fn which(&self, d: &Dir, root: &str, k: u64) -> &'static str {
        let now: BTreeMap<&str, Option<String>> = self
            .new_files()
            .keys()
            .map(|p| {
                let b = d.read_opt(&format!("{root}/{p}"));
                (*p, b.map(|b| String::from_utf8_lossy(&b).into_owned()))
            })
            .collect();
        let same = |want: &Files| want.iter().all(|(p, c)| now[p].as_deref() == c.as_deref());
        if same(&self.old) {
            "old"
        } else if same(&self.new_files()) {
            "new"
        } else {
            panic!(
                "{}: update killed before mutation {k}, then boot: {root} holds a mix: {now:#?}",
                self.name
            )
        }
    }
}

fn run_case(case: &Case) {
    let mut outcomes = Vec::new();
    let mut k = 1;
    loop {
        let d = case.device(k);
        let golden_before = d.exists("bak").then(|| d.snapshot("bak"));
        let paused = d
            .cmd(["update", case.set, "--from", "upd"])
            .kill_at_mutation(k);
        if !paused {
            // The update made fewer than k mutations: it completed.
            d.run(["verify"], 0);
            for r in case.roots {
                assert_eq!(
                    case.which(&d, r, k),
                    "new",
                    "{}: completed update",
                    case.name
                );
            }
            break;
        }
        // A crash during recovery too, at a point that varies with k.
        d.cmd(["boot"]).kill_at_mutation(1 + k % 7);
        d.run(["boot"], 0);
        let seen: Vec<&str> = case.roots.iter().map(|r| case.which(&d, r, k)).collect();
        assert!(
            seen.iter().all(|s| *s == seen[0]),
            "{}: killed before mutation {k}: replicas disagree: {seen:?}",
            case.name
        );
        outcomes.push(seen[0]);
        // Recovery is complete: a second boot has nothing to do, verify is clean.
        d.run(["boot"], 0).says(&["result: intact"]);
        d.run(["verify"], 0);
        if let Some(g) = golden_before {
            assert_eq!(g, d.snapshot("bak"), "the golden copy was written");
        }
        k += 1;
        assert!(k < 1000, "{}: the update never completes", case.name);
    }
    let old = outcomes.iter().filter(|o| **o == "old").count();
    eprintln!(
        "{}: killed at {} points; boot then left all old {old} times, then all new {} times",
        case.name,
        outcomes.len(),
        outcomes.len() - old
    );
    // The loop must have crossed the commit point: crashes before it roll back, after
    // it roll forward. Fewer points than this would mean the test saw nothing.
    assert!(
        outcomes.len() >= 10,
        "{}: only {} kill points",
        case.name,
        outcomes.len()
    );
    assert_eq!(
        outcomes.first(),
        Some(&"old"),
        "{}: {outcomes:?}",
        case.name
    );
    assert_eq!(outcomes.last(), Some(&"new"), "{}: {outcomes:?}", case.name);
    let flips = outcomes.windows(2).filter(|w| w[0] != w[1]).count();
    assert_eq!(
        flips, 1,
        "{}: old/new must switch once, at the commit point: {outcomes:?}",
        case.name
    );
}

fn sealed_golden(name: &str) -> Dir {
    let d = Dir::golden_device(name, &[]);
    d.run(["seal"], 0);
    d
}

fn sealed_golden_with_copy(name: &str) -> Dir {
    let d = Dir::golden_device(name, &["copy"]);
    d.run(["seal"], 0);
    d
}

fn synced_mirror(name: &str) -> Dir {
    let d = Dir::mirror_device(name, &[crate::util::SYS, crate::util::DATA]);
    d.run(["boot"], 0);
    d
}

fn golden_old() -> Files {
    BTreeMap::from([
        ("apn_cfg.json", Some("{\"apn\": \"factory\"}\n")),
        ("system_config.json", Some("{\"volume\": 5}\n")),
        ("app/main.py", Some("print('v1')\n")),
        ("app/lib/util.py", Some("def f(): return 1\n")),
    ])
}

const GOLDEN_UPDATE: &[(&str, &str)] = &[
    ("apn_cfg.json", "{\"apn\": \"fota\"}\n"),
    ("app/main.py", "print('v2')\n"),
    ("app/lib/new.py", "NEW = 2\n"),
    ("app/extra/deep/file.bin", "deep\n"),
];

#[test]
fn golden_update_killed_at_every_mutation_leaves_all_old_or_all_new() {
    run_case(&Case {
        name: "upd-golden",
        make: sealed_golden,
        set: "config",
        roots: &["usr"],
        old: golden_old(),
        update: GOLDEN_UPDATE,
    });
}

#[test]
fn golden_with_copy_update_killed_at_every_mutation_leaves_all_old_or_all_new() {
    run_case(&Case {
        name: "upd-copy",
        make: sealed_golden_with_copy,
        set: "config",
        roots: &["usr", "copy"],
        old: golden_old(),
        update: GOLDEN_UPDATE,
    });
}

#[test]
fn mirror_update_killed_at_every_mutation_leaves_all_old_or_all_new() {
    run_case(&Case {
        name: "upd-mirror",
        make: synced_mirror,
        set: "apps",
        roots: &[crate::util::SYS, crate::util::DATA],
        old: BTreeMap::from([
            ("apps/app.bin", Some("application v1\n")),
            ("apps/params.cfg", Some("baud=115200\n")),
            ("apps/lib/mod.py", Some("VERSION = 1\n")),
        ]),
        update: &[
            ("apps/app.bin", "application v2\n"),
            ("apps/lib/mod.py", "VERSION = 2\n"),
            ("apps/plugins/p.so", "plugin\n"),
        ],
    });
}

#[test]
fn update_with_a_file_outside_the_set_is_refused_whole() {
    let d = sealed_golden("upd-refuse");
    d.write("upd/app/main.py", "print('v2')\n");
    d.write("upd/etc/shadow", "x\n");
    let before = d.contents("usr");
    d.run(["update", "config", "--from", "upd"], 2).says(&[
        "etc/shadow",
        "not selected",
        "refusing the whole update",
    ]);
    assert_eq!(before, d.contents("usr"));
    d.run(["update", "nosuchset", "--from", "upd"], 2)
        .says(&["nosuchset"]);
    d.run(["update", "config", "--from", "missing-dir"], 2)
        .says(&["missing-dir"]);
}

/// Kills `args` before each of its mutations in turn on a fresh device from `make`,
/// then boots (itself killed once first) and calls `check`; stops when the command
/// completes without pausing, calling `done`. Returns the number of kill points.
pub(crate) fn kill_loop(
    name: &str,
    make: &dyn Fn(u64) -> Dir,
    args: &[&str],
    check: &dyn Fn(&Dir, u64),
    done: &dyn Fn(&Dir),
) -> u64 {
    let mut k = 1;
    loop {
        let d = make(k);
        if !d.cmd(args).kill_at_mutation(k) {
            done(&d);
            break;
        }
        d.cmd(["boot"]).kill_at_mutation(1 + k % 5);
        check(&d, k);
        k += 1;
        assert!(k < 1000, "{name}: never completes");
    }
    eprintln!("{name}: killed at {} points", k - 1);
    assert!(k > 10, "{name}: only {} kill points", k - 1);
    k - 1
}

#[test]
fn commit_killed_at_every_mutation_keeps_the_edit_whole_or_not_at_all() {
    // A mirror set: the commit stages the edit on the backup side, writes the manifest
    // (the commit point), then copies. After a kill and a boot, both sides hold the
    // edit, or both the previous content; never one file new and another old.
    let sys = crate::util::SYS;
    let data = crate::util::DATA;
    let make = |k: u64| {
        let d = synced_mirror(&format!("commit-kill-{k}"));
        d.write(&format!("{sys}/apps/app.bin"), "application edited\n");
        d.write(&format!("{sys}/apps/params.cfg"), "baud=1\n");
        d
    };
    let p1 = format!("{sys}/apps/app.bin");
    let p2 = format!("{sys}/apps/params.cfg");
    let which = |d: &Dir, k: u64| -> &'static str {
        let now: Vec<String> = [sys, data]
            .iter()
            .flat_map(|r| ["apps/app.bin", "apps/params.cfg"].map(|f| d.read(&format!("{r}/{f}"))))
            .collect();
        if now.iter().step_by(2).all(|c| c == "application v1\n")
            && now.iter().skip(1).step_by(2).all(|c| c == "baud=115200\n")
        {
            "old"
        } else if now.iter().step_by(2).all(|c| c == "application edited\n")
            && now.iter().skip(1).step_by(2).all(|c| c == "baud=1\n")
        {
            "new"
        } else {
            panic!("commit killed before mutation {k}: a mix after boot: {now:?}")
        }
    };
    let outcomes = std::cell::RefCell::new(Vec::new());
    kill_loop(
        "commit-kill",
        &make,
        &["commit", &p1, &p2],
        &|d, k| {
            d.run(["boot"], 0);
            outcomes.borrow_mut().push(which(d, k));
            d.run(["verify"], 0);
        },
        &|d| {
            d.run(["verify"], 0);
            assert_eq!(which(d, 0), "new");
        },
    );
    let o = outcomes.into_inner();
    assert_old_then_new(&o);
}

/// The outcomes of a kill loop, in kill order: all old first, all new last, switching
/// once (at the commit point).
pub(crate) fn assert_old_then_new(o: &[&str]) {
    assert_eq!(o.first(), Some(&"old"));
    assert_eq!(o.last(), Some(&"new"));
    assert_eq!(o.windows(2).filter(|w| w[0] != w[1]).count(), 1, "{o:?}");
}

#[test]
fn seal_killed_at_every_mutation_never_touches_live_and_can_be_finished() {
    let make = |k: u64| Dir::golden_device(&format!("seal-kill-{k}"), &[]);
    let live = |d: &Dir| {
        let mut c = d.contents("usr");
        c.retain(|p, _| !p.starts_with(".rebound"));
        c
    };
    let reference = live(&make(0));
    kill_loop(
        "seal-kill",
        &make,
        &["seal"],
        &|d, k| {
            assert_eq!(
                reference,
                live(d),
                "seal killed before mutation {k} changed live"
            );
            // Either the seal completed its golden copy (boot works) or it did not (boot
            // refuses, saying to seal); finishing the seal then works.
            let b = d.cmd(["boot"]).run().no_panic();
            match b.code() {
                Some(0) => {}
                Some(2) => {
                    let t = b.text();
                    assert!(
                        t.contains("not sealed") || t.contains("does not exist"),
                        "k={k}: {t}"
                    );
                    d.run(["seal"], 0);
                }
                c => panic!("k={k}: boot exit {c:?}: {}", b.text()),
            }
            d.run(["verify"], 0);
            assert_eq!(reference, live(d));
        },
        &|d| {
            d.run(["verify"], 0);
        },
    );
}

#[test]
fn boot_killed_at_every_mutation_is_finished_by_the_next_boot() {
    let make = |k: u64| {
        let d = sealed_golden_with_copy(&format!("boot-kill-{k}"));
        d.remove("usr/.rebound");
        d.remove("usr/app");
        d.write("usr/apn_cfg.json", "corrupt");
        d.write("copy/system_config.json", "corrupt");
        d
    };
    let intact = |d: &Dir| {
        for r in ["usr", "copy"] {
            for (f, c) in golden_old() {
                assert_eq!(d.read(&format!("{r}/{f}")), c.unwrap(), "{r}/{f}");
            }
        }
    };
    kill_loop(
        "boot-kill",
        &make,
        &["boot"],
        &|d, _| {
            d.run(["boot"], 0);
            intact(d);
            d.run(["boot"], 0).says(&["result: intact"]);
        },
        &|d| intact(d),
    );
}

/// An update that adds a file where an extra copy has a directory: the directory is
/// moved aside (kept, under `.rebound/config/displaced/`) and the file installed in
/// the same run, as a boot would; the copy was looked up at the new path before the
/// update was planned.
#[test]
fn an_update_adding_a_path_moves_aside_what_stands_there_in_a_copy() {
    let d = Dir::golden_device("update-blocked", &["copy"]);
    d.run(["seal"], 0);
    std::fs::create_dir_all(d.path("copy/app/new.py/sub")).unwrap();
    d.write("copy/app/new.py/sub/keep.txt", "someone's data");
    d.write("fota/app/new.py", "print('new')\n");
    let from = d.path("fota");
    d.run(["update", "config", "--from", from.to_str().unwrap()], 0)
        .says(&["move ", "installed: "]);
    assert_eq!(d.read("copy/app/new.py"), "print('new')\n");
    let kept = walk_files(&d.path("copy/.rebound/config/displaced"));
    assert!(
        kept.iter().any(|p| p.ends_with("app/new.py/sub/keep.txt")),
        "{kept:?}"
    );
    d.run(["verify"], 0);
}

/// A damaged stage file at the new content's name (an earlier update failed before
/// its commit point, then bit rot): the update replaces it and installs from it; the
/// committed version is never rolled back to the factory one.
#[test]
fn an_update_over_a_damaged_stage_file_installs_and_keeps_it() {
    let d = Dir::golden_device("update-bad-stage", &[]);
    d.run(["seal"], 0);
    d.write("usr/app/main.py", "print('v1.5')\n");
    let f = d.path("usr/app/main.py");
    d.run(["commit", f.to_str().unwrap()], 0);
    let hex = rebound::HashAlgo::Blake3.digest(b"print('v2')\n").to_hex();
    d.write(&format!("usr/.rebound/config/stage/{hex}"), "print('v2'\n");
    d.write("fota/app/main.py", "print('v2')\n");
    let from = d.path("fota");
    d.run(["update", "config", "--from", from.to_str().unwrap()], 0);
    assert_eq!(d.read("usr/app/main.py"), "print('v2')\n");
    d.wipe("fota");
    d.run(["boot"], 0).says(&["result: intact"]);
    assert_eq!(d.read("usr/app/main.py"), "print('v2')\n");
}

fn walk_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&p) else {
            continue;
        };
        for e in rd {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out
}
