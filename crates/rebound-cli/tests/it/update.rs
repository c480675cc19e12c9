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
