//! The crash explorer: every scenario is run once to count its filesystem mutations,
//! then run again with the power cut before each mutation `k`; every state the cut can
//! leave ([`SimFs::crash_states`]) is rebooted (`Engine::boot`), and at depth 2 the
//! power is cut again before every mutation of that recovery. After the final recovery
//! the invariant is checked:
//!
//! - every protected file in every writable replica holds exactly its old or its new
//!   content; for an all-or-nothing change, every file is on the same side;
//! - a change whose command returned success is never undone (a cut after it ends
//!   must leave the new content);
//! - `verify` finds nothing to repair and a second boot plans nothing;
//! - the golden copy is never written after seal;
//! - each set's history (event log and boot counter) is intact in every copy, and
//!   still holds every event it held before the operation.
//!
//! `cargo test -p rebound --release --test crash -- --nocapture` prints the table of
//! scenarios, crash points, states explored and violations; set
//! `REBOUND_CRASH_EXHAUSTIVE=1` for every crash point at depth 2 with more random
//! subsets (the figures in docs/design.md come from that run);
//! `REBOUND_CRASH_ONLY=<part of a scenario name>` explores only matching scenarios.
//! A scenario may also damage every crash state before it is rebooted (a media fault
//! on top of the power cut: `Scenario::damage`).

// Test code: a failed unwrap is a failed test, which is what we want.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rebound::testing::{Breakage, Manifest, SimFs};
use rebound::DeviceKey;
use rebound::{exit, Config, Engine, HashAlgo, Owner};

type Files = &'static [(&'static str, &'static str)];

/// One scenario: a device state, an operation, and what may be true afterwards.
struct Scenario {
    name: &'static str,
    config: String,
    /// Builds the state before the operation (every write durable).
    setup: fn(&SimFs, &Config),
    /// The operation whose every crash point is explored.
    run: fn(&Engine, &Config),
    /// What rebooting after a cut runs (normally `boot`).
    recover: fn(&Engine, &Config),
    /// Damage done to every crash state before it is rebooted (a media fault); told
    /// whether the operation completed before the cut.
    damage: Option<fn(&SimFs, bool)>,
    writable: Vec<PathBuf>,
    golden: Option<PathBuf>,
    /// Content before and after the operation, by relative path.
    old: Files,
    new: Files,
    /// All files change together (update, upgrade) or each on its own.
    atomic: bool,
    atomic_rename: bool,
    /// The user's data that must survive somewhere below a root, whatever is cut:
    /// (root, path suffix, content). Something moved aside is kept, never deleted.
    user: &'static [(&'static str, &'static str, &'static str)],
}

const PRISTINE: Files = &[
    ("apn_cfg.json", "apn v1\n"),
    ("system_config.json", "sys v1\n"),
    ("app/main.py", "main v1\n"),
];

fn golden_config(copies: bool) -> String {
    format!(
        "[[set]]\nname = \"config\"\nmode = \"golden\"\nlive = \"/dev0/usr\"\ngolden = \"/dev1/bak\"\n{}include = [\"apn_cfg.json\", \"system_config.json\", \"app/**\"]\n",
        if copies { "copies = [\"/dev2/copy\"]\n" } else { "" }
    )
}

fn mirror_config(n: usize, tags: bool) -> String {
    let roots = ["\"/dev0/apprun\"", "\"/dev1/appbackup\"", "\"/dev2/third\""];
    format!(
        "[[set]]\nname = \"apps\"\nmode = \"mirror\"\nreplicas = [{}]\ninclude = [\"apps/**\"]\n{}",
        roots[..n].join(", "),
        if tags {
            "version_file = \"app_ver.txt\"\n"
        } else {
            ""
        }
    )
}

/// A parity set (issue 16): live `/dev0/usr`, parity in `/dev1/par`, no second copy.
fn parity_config() -> String {
    "[[set]]\nname = \"config\"\nmode = \"parity\"\nlive = \"/dev0/usr\"\nparity = \"/dev1/par\"\ninclude = [\"apn_cfg.json\", \"system_config.json\", \"app/**\"]\n".into()
}

/// A golden set with a parity directory beside its copies.
fn golden_parity_config() -> String {
    format!("{}parity = \"/dev2/par\"\n", golden_config(false))
}

/// A media fault on top of the power cut: one byte of every protected file of the
/// live copy flipped. With a parity set (no other copy) only parity can repair it: the
/// record of whatever content the manifest names after the cut must be there, intact
/// (a record written after its manifest would lose the file here).
fn flip_live_files(fs: &SimFs, _completed: bool) {
    for (p, mut b) in fs.files_under(Path::new("/dev0/usr")) {
        if p.components().any(|c| c.as_os_str() == ".rebound") || b.is_empty() {
            continue;
        }
        b[0] ^= 0x20;
        fs.put(&p, &b);
    }
}

fn put_all(fs: &SimFs, root: &str, files: Files) {
    for (p, c) in files {
        fs.put(&Path::new(root).join(p), c.as_bytes());
    }
}

fn seal(e: &Engine, c: &Config) {
    let r = e.seal(c, &[], false, false).unwrap();
    assert_eq!(r.exit_code(), exit::OK, "setup seal: {r:#?}");
}

fn boot(e: &Engine, c: &Config) {
    e.boot(c, &[], false).unwrap();
}

fn engine(fs: &SimFs) -> Engine<'_> {
    Engine::new(fs)
}

fn scenarios() -> Vec<Scenario> {
    // `REBOUND_CRASH_ONLY=<part of a name>` explores only the matching scenarios.
    let only = std::env::var("REBOUND_CRASH_ONLY").ok();
    all_scenarios()
        .into_iter()
        .filter(|s| only.as_deref().is_none_or(|o| s.name.contains(o)))
        .collect()
}

fn all_scenarios() -> Vec<Scenario> {
    let golden2 = vec![PathBuf::from("/dev0/usr")];
    let golden3 = vec![PathBuf::from("/dev0/usr"), PathBuf::from("/dev2/copy")];
    let mirror2 = vec![
        PathBuf::from("/dev0/apprun"),
        PathBuf::from("/dev1/appbackup"),
    ];
    let mirror3 = vec![
        PathBuf::from("/dev0/apprun"),
        PathBuf::from("/dev1/appbackup"),
        PathBuf::from("/dev2/third"),
    ];
    const APPS_V1: Files = &[
        ("apps/app.bin", "app v1\n"),
        ("apps/params.cfg", "params v1\n"),
    ];
    const APPS_V2: Files = &[
        ("apps/app.bin", "app v2\n"),
        ("apps/params.cfg", "params v1\n"),
        ("apps/plugin.so", "plugin v2\n"),
    ];
    const UPDATED: Files = &[
        ("apn_cfg.json", "apn v1\n"),
        ("system_config.json", "sys v3\n"),
        ("app/main.py", "main v3\n"),
        ("app/new.py", "new v3\n"),
    ];
    let live = vec![PathBuf::from("/dev0/usr")];
    vec![
        Scenario {
            name: "parity: first boot adopts and writes records",
            config: parity_config(),
            setup: |fs, _| {
                put_all(fs, "/dev0/usr", PRISTINE);
                fs.mkdir_all(Path::new("/dev1/par"));
            },
            run: boot,
            recover: boot,
            damage: None,
            writable: live.clone(),
            golden: None,
            old: PRISTINE,
            new: PRISTINE,
            atomic: false,
            atomic_rename: true,
            user: &[],
        },
        Scenario {
            name: "parity: boot rebuilds damaged files",
            config: parity_config(),
            setup: |fs, c| {
                put_all(fs, "/dev0/usr", PRISTINE);
                fs.mkdir_all(Path::new("/dev1/par"));
                boot(&engine(fs), c);
                fs.put(Path::new("/dev0/usr/app/main.py"), b"main X1\n");
                fs.put(Path::new("/dev0/usr/apn_cfg.json"), b"apn");
            },
            run: boot,
            recover: boot,
            damage: Some(flip_live_files),
            writable: live.clone(),
            golden: None,
            old: PRISTINE,
            new: PRISTINE,
            atomic: false,
            atomic_rename: true,
            user: &[],
        },
        Scenario {
            name: "parity: commit, with a media fault after the cut",
            config: parity_config(),
            setup: |fs, c| {
                put_all(fs, "/dev0/usr", PRISTINE);
                fs.mkdir_all(Path::new("/dev1/par"));
                boot(&engine(fs), c);
                fs.put(Path::new("/dev0/usr/system_config.json"), b"sys v2\n");
            },
            run: |e, c| {
                let r = e
                    .commit(c, &[PathBuf::from("/dev0/usr/system_config.json")], false)
                    .unwrap();
                assert_eq!(r.exit_code(), exit::OK, "{r:#?}");
            },
            recover: boot,
            damage: Some(flip_live_files),
            writable: live.clone(),
            golden: None,
            old: PRISTINE,
            new: EDITED,
            atomic: true,
            atomic_rename: true,
            user: &[],
        },
        Scenario {
            name: "parity: update, vfat, media fault after the cut",
            config: parity_config(),
            setup: |fs, c| {
                put_all(fs, "/dev0/usr", PRISTINE);
                fs.mkdir_all(Path::new("/dev1/par"));
                boot(&engine(fs), c);
                put_all(fs, "/fota", &UPDATED[1..]);
            },
            run: |e, c| {
                let r = e.update(c, "config", Path::new("/fota"), false).unwrap();
                assert_eq!(r.exit_code(), exit::OK, "{r:#?}");
            },
            recover: boot,
            damage: Some(flip_live_files),
            writable: live.clone(),
            golden: None,
            old: PRISTINE,
            new: UPDATED,
            atomic: true,
            atomic_rename: false,
            user: &[],
        },
        Scenario {
            name: "parity beside golden: commit",
            config: golden_parity_config(),
            setup: |fs, c| {
                put_all(fs, "/dev0/usr", PRISTINE);
                fs.mkdir_all(Path::new("/dev1"));
                fs.mkdir_all(Path::new("/dev2/par"));
                seal(&engine(fs), c);
                fs.put(Path::new("/dev0/usr/system_config.json"), b"sys v2\n");
            },
            run: |e, c| {
                let r = e
                    .commit(c, &[PathBuf::from("/dev0/usr/system_config.json")], false)
                    .unwrap();
                assert_eq!(r.exit_code(), exit::OK, "{r:#?}");
            },
            recover: boot,
            damage: Some(flip_live_files),
            writable: live.clone(),
            golden: Some("/dev1/bak".into()),
            old: PRISTINE,
            new: EDITED,
            atomic: true,
            atomic_rename: true,
            user: &[],
        },
        Scenario {
            name: "seal",
            config: golden_config(false),
            setup: |fs, _| {
                put_all(fs, "/dev0/usr", PRISTINE);
                fs.mkdir_all(Path::new("/dev1"));
            },
            run: seal,
            recover: |e, c| {
                e.seal(c, &[], true, false).unwrap();
                boot(e, c);
            },
            damage: None,
            writable: golden2.clone(),
            golden: None,
            old: PRISTINE,
            new: PRISTINE,
            atomic: false,
            atomic_rename: true,
            user: &[],
        },
        Scenario {
            name: "boot repairs every kind of damage",
            config: golden_config(false),
            setup: |fs, c| {
                put_all(fs, "/dev0/usr", PRISTINE);
                fs.mkdir_all(Path::new("/dev1"));
                seal(&engine(fs), c);
                fs.remove(Path::new("/dev0/usr/apn_cfg.json"));
                fs.put(Path::new("/dev0/usr/app/main.py"), b"main X1\n");
                fs.put(Path::new("/dev0/usr/system_config.json"), b"hand edit\n");
                fs.remove(Path::new("/dev0/usr/.rebound"));
            },
            run: boot,
            recover: boot,
            damage: None,
            writable: golden2.clone(),
            golden: Some("/dev1/bak".into()),
            old: PRISTINE,
            new: PRISTINE,
            atomic: false,
            atomic_rename: true,
            user: &[],
        },
        Scenario {
            name: "boot restores modes and owners",
            config: golden_config(true),
            setup: |fs, c| {
                put_all(fs, "/dev0/usr", PRISTINE);
                let app = Owner {
                    uid: 1000,
                    gid: 1000,
                };
                fs.set_perm(Path::new("/dev0/usr/system_config.json"), 0o600, app);
                fs.set_perm(Path::new("/dev0/usr/app/main.py"), 0o4755, app);
                fs.mkdir_all(Path::new("/dev1"));
                fs.mkdir_all(Path::new("/dev2"));
                seal(&engine(fs), c);
                // A restore that must chown and chmod the temp file before its rename,
                // and intact files whose mode or owner changed.
                fs.remove(Path::new("/dev0/usr/system_config.json"));
                fs.set_perm(Path::new("/dev2/copy/app/main.py"), 0o777, Owner::default());
                fs.set_perm(Path::new("/dev0/usr/apn_cfg.json"), 0o000, app);
            },
            run: boot,
            recover: boot,
            damage: None,
            writable: golden3.clone(),
            golden: Some("/dev1/bak".into()),
            old: PRISTINE,
            new: PRISTINE,
            atomic: false,
            atomic_rename: true,
            user: &[],
        },
        Scenario {
            name: "boot repairs, vfat (rename not atomic)",
            config: golden_config(false),
            setup: |fs, c| {
                put_all(fs, "/dev0/usr", PRISTINE);
                fs.mkdir_all(Path::new("/dev1"));
                seal(&engine(fs), c);
                fs.remove(Path::new("/dev0/usr/apn_cfg.json"));
                fs.put(Path::new("/dev0/usr/app/main.py"), b"main X1\n");
            },
            run: boot,
            recover: boot,
            damage: None,
            writable: golden2.clone(),
            golden: Some("/dev1/bak".into()),
            old: PRISTINE,
            new: PRISTINE,
            atomic: false,
            atomic_rename: false,
            user: &[],
        },
        Scenario {
            name: "commit, golden set with a copy",
            config: golden_config(true),
            setup: |fs, c| {
                put_all(fs, "/dev0/usr", PRISTINE);
                fs.mkdir_all(Path::new("/dev1"));
                fs.mkdir_all(Path::new("/dev2"));
                seal(&engine(fs), c);
                fs.put(Path::new("/dev0/usr/system_config.json"), b"sys v2\n");
            },
            run: |e, c| {
                let r = e
                    .commit(c, &[PathBuf::from("/dev0/usr/system_config.json")], false)
                    .unwrap();
                assert_eq!(r.exit_code(), exit::OK, "{r:#?}");
            },
            recover: boot,
            damage: None,
            writable: golden3.clone(),
            golden: Some("/dev1/bak".into()),
            old: PRISTINE,
            new: EDITED,
            atomic: false,
            atomic_rename: true,
            user: &[],
        },
        Scenario {
            name: "update of many files, golden set with a copy",
            config: golden_config(true),
            setup: |fs, c| {
                put_all(fs, "/dev0/usr", PRISTINE);
                fs.mkdir_all(Path::new("/dev1"));
                fs.mkdir_all(Path::new("/dev2"));
                seal(&engine(fs), c);
                put_all(fs, "/fota", &UPDATED[1..]);
            },
            run: |e, c| {
                let r = e.update(c, "config", Path::new("/fota"), false).unwrap();
                assert_eq!(r.exit_code(), exit::OK, "{r:#?}");
            },
            recover: boot,
            damage: None,
            writable: golden3.clone(),
            golden: Some("/dev1/bak".into()),
            old: PRISTINE,
            new: UPDATED,
            atomic: true,
            atomic_rename: true,
            user: &[],
        },
        Scenario {
            // An earlier update failed before its commit point and left a stage that
            // rotted since (observed as junk, replaced by this update's stage, never
            // removed after the commit point); the extra copy holds a directory of the
            // user's where the update's new file goes (moved aside, kept).
            name: "update: rotten stage, a directory in the way",
            config: golden_config(true),
            setup: |fs, c| {
                put_all(fs, "/dev0/usr", PRISTINE);
                fs.mkdir_all(Path::new("/dev1"));
                fs.mkdir_all(Path::new("/dev2"));
                seal(&engine(fs), c);
                put_all(fs, "/fota", &UPDATED[1..]);
                let hex = HashAlgo::Blake3.digest(b"main v3\n").to_hex();
                let stage = format!("/dev0/usr/.rebound/config/stage/{hex}");
                fs.put(Path::new(&stage), b"main v3 rotten\n");
                fs.put(Path::new("/dev2/copy/app/new.py/keep.txt"), b"user data\n");
            },
            run: |e, c| {
                let r = e.update(c, "config", Path::new("/fota"), false).unwrap();
                assert_eq!(r.exit_code(), exit::OK, "{r:#?}");
            },
            recover: boot,
            damage: None,
            writable: golden3.clone(),
            golden: Some("/dev1/bak".into()),
            old: PRISTINE,
            new: UPDATED,
            atomic: true,
            atomic_rename: true,
            user: &[("/dev2/copy", "/app/new.py/keep.txt", "user data\n")],
        },
        Scenario {
            name: "update, vfat (rename not atomic)",
            config: golden_config(true),
            setup: |fs, c| {
                put_all(fs, "/dev0/usr", PRISTINE);
                fs.mkdir_all(Path::new("/dev1"));
                fs.mkdir_all(Path::new("/dev2"));
                seal(&engine(fs), c);
                put_all(fs, "/fota", &UPDATED[1..]);
            },
            run: |e, c| {
                e.update(c, "config", Path::new("/fota"), false).unwrap();
            },
            recover: boot,
            damage: None,
            writable: golden3.clone(),
            golden: Some("/dev1/bak".into()),
            old: PRISTINE,
            new: UPDATED,
            atomic: true,
            atomic_rename: false,
            user: &[],
        },
        Scenario {
            name: "mirror first sync (vendor scenario A)",
            config: mirror_config(2, true),
            setup: |fs, _| {
                put_all(fs, "/dev0/apprun", APPS_V1);
                fs.put(Path::new("/dev0/apprun/app_ver.txt"), b"1\n");
                fs.mkdir_all(Path::new("/dev1"));
            },
            run: boot,
            recover: boot,
            damage: None,
            writable: mirror2.clone(),
            golden: None,
            old: APPS_V1,
            new: APPS_V1,
            atomic: false,
            atomic_rename: true,
            user: &[],
        },
        Scenario {
            name: "mirror upgrade on system side, tag bumped",
            config: mirror_config(2, true),
            setup: |fs, c| {
                put_all(fs, "/dev0/apprun", APPS_V1);
                fs.put(Path::new("/dev0/apprun/app_ver.txt"), b"1\n");
                fs.mkdir_all(Path::new("/dev1"));
                boot(&engine(fs), c);
                put_all(fs, "/dev0/apprun", APPS_V2);
                fs.put(Path::new("/dev0/apprun/app_ver.txt"), b"2\n");
            },
            run: boot,
            recover: boot,
            damage: None,
            writable: mirror2.clone(),
            golden: None,
            old: APPS_V2,
            new: APPS_V2,
            atomic: false,
            atomic_rename: true,
            user: &[],
        },
        Scenario {
            name: "mirror upgrade on backup side, tag bumped",
            config: mirror_config(2, true),
            setup: |fs, c| {
                put_all(fs, "/dev0/apprun", APPS_V1);
                fs.put(Path::new("/dev0/apprun/app_ver.txt"), b"1\n");
                fs.mkdir_all(Path::new("/dev1"));
                boot(&engine(fs), c);
                put_all(fs, "/dev1/appbackup", APPS_V2);
                fs.put(Path::new("/dev1/appbackup/app_ver.txt"), b"2\n");
            },
            run: boot,
            recover: boot,
            damage: None,
            writable: mirror2.clone(),
            golden: None,
            old: APPS_V2,
            new: APPS_V2,
            atomic: false,
            atomic_rename: true,
            user: &[],
        },
        Scenario {
            name: "mirror first sync without tags",
            config: mirror_config(2, false),
            setup: |fs, _| {
                put_all(fs, "/dev0/apprun", APPS_V1);
                fs.mkdir_all(Path::new("/dev1"));
            },
            run: boot,
            recover: boot,
            damage: None,
            writable: mirror2.clone(),
            golden: None,
            old: APPS_V1,
            new: APPS_V1,
            atomic: false,
            atomic_rename: true,
            user: &[],
        },
        Scenario {
            name: "mirror sync without tags, system side erased",
            config: mirror_config(2, false),
            setup: |fs, c| {
                put_all(fs, "/dev0/apprun", APPS_V1);
                fs.mkdir_all(Path::new("/dev1"));
                boot(&engine(fs), c);
                // Vendor method 2 / 5 without tags: the system copy is gone, with its
                // manifests; the backup side is the only copy.
                fs.remove(Path::new("/dev0/apprun"));
            },
            run: boot,
            recover: boot,
            damage: None,
            writable: mirror2.clone(),
            golden: None,
            old: APPS_V1,
            new: APPS_V1,
            atomic: false,
            atomic_rename: true,
            user: &[],
        },
        Scenario {
            name: "commit in a 3-copy mirror set",
            config: mirror_config(3, false),
            setup: |fs, c| {
                put_all(fs, "/dev0/apprun", APPS_V1);
                fs.mkdir_all(Path::new("/dev1"));
                fs.mkdir_all(Path::new("/dev2"));
                boot(&engine(fs), c);
                fs.put(Path::new("/dev1/appbackup/apps/params.cfg"), b"params v2\n");
            },
            run: |e, c| {
                let r = e
                    .commit(
                        c,
                        &[PathBuf::from("/dev1/appbackup/apps/params.cfg")],
                        false,
                    )
                    .unwrap();
                assert_eq!(r.exit_code(), exit::OK, "{r:#?}");
            },
            recover: boot,
            damage: None,
            writable: mirror3.clone(),
            golden: None,
            old: APPS_V1,
            new: &[
                ("apps/app.bin", "app v1\n"),
                ("apps/params.cfg", "params v2\n"),
            ],
            atomic: false,
            atomic_rename: true,
            user: &[],
        },
        Scenario {
            name: "update in a mirror set with tags",
            config: mirror_config(2, true),
            setup: |fs, c| {
                put_all(fs, "/dev0/apprun", APPS_V1);
                fs.put(Path::new("/dev0/apprun/app_ver.txt"), b"1\n");
                fs.mkdir_all(Path::new("/dev1"));
                boot(&engine(fs), c);
                put_all(
                    fs,
                    "/fota",
                    &[("apps/app.bin", "app v3\n"), ("apps/x.so", "x v3\n")],
                );
            },
            run: |e, c| {
                e.update(c, "apps", Path::new("/fota"), false).unwrap();
            },
            recover: boot,
            damage: None,
            writable: mirror2.clone(),
            golden: None,
            old: APPS_V1,
            new: &[
                ("apps/app.bin", "app v3\n"),
                ("apps/params.cfg", "params v1\n"),
                ("apps/x.so", "x v3\n"),
            ],
            atomic: true,
            atomic_rename: true,
            user: &[],
        },
        Scenario {
            name: "commit --remove, golden set with a copy",
            config: golden_config(true),
            setup: |fs, c| {
                put_all(fs, "/dev0/usr", PRISTINE);
                fs.mkdir_all(Path::new("/dev1"));
                fs.mkdir_all(Path::new("/dev2"));
                seal(&engine(fs), c);
            },
            run: |e, c| {
                let r = e
                    .commit_remove(c, &[PathBuf::from("/dev0/usr/app/main.py")], false)
                    .unwrap();
                assert_eq!(r.exit_code(), exit::OK, "{r:#?}");
            },
            recover: boot,
            damage: None,
            writable: golden3.clone(),
            golden: Some("/dev1/bak".into()),
            old: PRISTINE,
            new: &PRISTINE[..2],
            atomic: false,
            atomic_rename: true,
            user: &[],
        },
        Scenario {
            name: "commit --remove, golden set without copies",
            config: golden_config(false),
            setup: |fs, c| {
                put_all(fs, "/dev0/usr", PRISTINE);
                fs.mkdir_all(Path::new("/dev1"));
                let e = engine(fs);
                seal(&e, c);
                // Committed after the seal: a rollback has no golden copy to fall
                // back on, only the stage.
                fs.put(Path::new("/dev0/usr/system_config.json"), b"sys v2\n");
                e.commit(c, &[PathBuf::from("/dev0/usr/system_config.json")], false)
                    .unwrap();
            },
            run: |e, c| {
                let r = e
                    .commit_remove(c, &[PathBuf::from("/dev0/usr/system_config.json")], false)
                    .unwrap();
                assert_eq!(r.exit_code(), exit::OK, "{r:#?}");
            },
            recover: boot,
            damage: None,
            writable: golden2.clone(),
            golden: Some("/dev1/bak".into()),
            old: EDITED,
            new: &[("apn_cfg.json", "apn v1\n"), ("app/main.py", "main v1\n")],
            atomic: false,
            atomic_rename: true,
            user: &[],
        },
        Scenario {
            name: "factory fallback of a corrupted commit",
            config: golden_config(false),
            setup: |fs, c| {
                put_all(fs, "/dev0/usr", PRISTINE);
                fs.mkdir_all(Path::new("/dev1"));
                let e = engine(fs);
                seal(&e, c);
                fs.put(Path::new("/dev0/usr/system_config.json"), b"sys v2\n");
                e.commit(c, &[PathBuf::from("/dev0/usr/system_config.json")], false)
                    .unwrap();
                fs.put(Path::new("/dev0/usr/system_config.json"), b"rot\n");
            },
            run: boot,
            recover: boot,
            damage: None,
            writable: golden2.clone(),
            golden: Some("/dev1/bak".into()),
            old: PRISTINE,
            new: PRISTINE,
            atomic: false,
            atomic_rename: true,
            user: &[],
        },
        Scenario {
            name: "boot moves aside what stands in the way",
            config: golden_config(true),
            setup: |fs, c| {
                put_all(fs, "/dev0/usr", PRISTINE);
                fs.mkdir_all(Path::new("/dev1"));
                fs.mkdir_all(Path::new("/dev2"));
                seal(&engine(fs), c);
                // A directory holding the user's data where a protected file belongs,
                // and a file where a protected directory was (in the copy).
                fs.remove(Path::new("/dev0/usr/apn_cfg.json"));
                fs.put(Path::new("/dev0/usr/apn_cfg.json/note.txt"), b"user note\n");
                fs.put(Path::new("/dev0/usr/apn_cfg.json/sub/more.txt"), b"more\n");
                fs.remove(Path::new("/dev2/copy/app"));
                fs.put(Path::new("/dev2/copy/app"), b"user file\n");
            },
            run: boot,
            recover: boot,
            damage: None,
            writable: golden3.clone(),
            golden: Some("/dev1/bak".into()),
            old: PRISTINE,
            new: PRISTINE,
            atomic: false,
            atomic_rename: true,
            user: &[
                ("/dev0/usr", "/apn_cfg.json/note.txt", "user note\n"),
                ("/dev0/usr", "/apn_cfg.json/sub/more.txt", "more\n"),
                ("/dev2/copy", "/app", "user file\n"),
            ],
        },
        Scenario {
            name: "commit, golden set without copies",
            config: golden_config(false),
            setup: setup_edit2,
            run: commit_edit2,
            recover: boot,
            damage: None,
            writable: golden2.clone(),
            golden: Some("/dev1/bak".into()),
            old: PRISTINE,
            new: EDITED2,
            atomic: false,
            atomic_rename: true,
            user: &[],
        },
        Scenario {
            name: "commit, no copies, a manifest slot damaged",
            config: golden_config(false),
            setup: setup_edit2,
            run: commit_edit2,
            recover: boot,
            damage: Some(damage_one_slot),
            writable: golden2.clone(),
            golden: Some("/dev1/bak".into()),
            old: PRISTINE,
            new: EDITED2,
            atomic: false,
            atomic_rename: true,
            user: &[],
        },
        Scenario {
            name: "boot rewrites a damaged manifest slot",
            config: golden_config(false),
            setup: |fs, c| {
                setup_edit2(fs, c);
                commit_edit2(&engine(fs), c);
                damage_one_slot(fs, true);
            },
            run: boot,
            recover: boot,
            damage: None,
            writable: golden2,
            golden: Some("/dev1/bak".into()),
            old: EDITED2,
            new: EDITED2,
            atomic: false,
            atomic_rename: true,
            user: &[],
        },
        Scenario {
            // `rebound write`: new content from outside the set (the command line's
            // copy of standard input) replaces a committed file: the old committed
            // content or the new, never the factory version, never torn.
            name: "write: replace a committed file, golden set with a copy",
            config: golden_config(true),
            setup: |fs, c| {
                put_all(fs, "/dev0/usr", PRISTINE);
                fs.mkdir_all(Path::new("/dev1"));
                fs.mkdir_all(Path::new("/dev2"));
                let e = engine(fs);
                seal(&e, c);
                fs.put(Path::new("/dev0/usr/system_config.json"), b"sys v2\n");
                let r = e
                    .commit(c, &[PathBuf::from("/dev0/usr/system_config.json")], false)
                    .unwrap();
                assert_eq!(r.exit_code(), exit::OK, "setup commit: {r:#?}");
                fs.put(Path::new("/spool/content"), b"sys v3\n");
            },
            run: |e, c| {
                let r = e
                    .write(
                        c,
                        Path::new("/dev0/usr/system_config.json"),
                        Path::new("/spool/content"),
                        None,
                        false,
                    )
                    .unwrap();
                assert_eq!(r.exit_code(), exit::OK, "{r:#?}");
            },
            recover: boot,
            damage: None,
            writable: golden3.clone(),
            golden: Some("/dev1/bak".into()),
            old: EDITED,
            new: EDITED2,
            atomic: true,
            atomic_rename: true,
            user: &[],
        },
        Scenario {
            name: "write: a new file, mirror set with tags",
            config: mirror_config(2, true),
            setup: |fs, c| {
                put_all(fs, "/dev0/apprun", APPS_V1);
                fs.put(Path::new("/dev0/apprun/app_ver.txt"), b"1\n");
                fs.mkdir_all(Path::new("/dev1"));
                boot(&engine(fs), c);
                fs.put(Path::new("/spool/content"), b"plugin v2\n");
            },
            run: |e, c| {
                let r = e
                    .write(
                        c,
                        Path::new("/dev1/appbackup/apps/plugin.so"),
                        Path::new("/spool/content"),
                        Some(0o640),
                        false,
                    )
                    .unwrap();
                assert_eq!(r.exit_code(), exit::OK, "{r:#?}");
            },
            recover: boot,
            damage: None,
            writable: mirror2.clone(),
            golden: None,
            old: APPS_V1,
            new: &[
                ("apps/app.bin", "app v1\n"),
                ("apps/params.cfg", "params v1\n"),
                ("apps/plugin.so", "plugin v2\n"),
            ],
            atomic: true,
            atomic_rename: true,
            user: &[],
        },
    ]
}

const EDITED: Files = &[
    ("apn_cfg.json", "apn v1\n"),
    ("system_config.json", "sys v2\n"),
    ("app/main.py", "main v1\n"),
];

const EDITED2: Files = &[
    ("apn_cfg.json", "apn v1\n"),
    ("system_config.json", "sys v3\n"),
    ("app/main.py", "main v1\n"),
];

/// Golden set without copies: sealed, `sys v2` committed, `sys v3` written in place.
/// The in-place edit overwrote the only copy of `sys v2`: until the commit point a boot
/// takes `sys v3` for damage and falls back to the factory version (old = PRISTINE).
fn setup_edit2(fs: &SimFs, c: &Config) {
    put_all(fs, "/dev0/usr", PRISTINE);
    fs.mkdir_all(Path::new("/dev1"));
    let e = engine(fs);
    seal(&e, c);
    fs.put(Path::new("/dev0/usr/system_config.json"), b"sys v2\n");
    let r = e
        .commit(c, &[PathBuf::from("/dev0/usr/system_config.json")], false)
        .unwrap();
    assert_eq!(r.exit_code(), exit::OK, "setup commit: {r:#?}");
    fs.put(Path::new("/dev0/usr/system_config.json"), b"sys v3\n");
}

fn commit_edit2(e: &Engine, c: &Config) {
    let r = e
        .commit(c, &[PathBuf::from("/dev0/usr/system_config.json")], false)
        .unwrap();
    assert_eq!(r.exit_code(), exit::OK, "{r:#?}");
}

/// One damaged manifest slot of the live copy (a byte flipped in the middle): the slot
/// holding the newest generation (the current one). Only if a cut left that generation
/// in that one slot alone (between the two slot writes, before the boot that writes
/// the other) is the other slot damaged instead: damage to the newest then is a second
/// fault on that generation, and the previous one rules (README, "what it does not
/// do"). After a completed operation the newest slot is damaged whatever: one damaged
/// slot must never cost a completed commit (issue item 1).
fn damage_one_slot(fs: &SimFs, completed: bool) {
    let slots = [0, 1].map(|i| PathBuf::from(format!("/dev0/usr/.rebound/config/manifest.{i}")));
    let gens = slots.clone().map(|p| {
        fs.get(&p)
            .and_then(|b| Manifest::decode(&b).ok())
            .map(|m| m.generation)
    });
    let Some(newest) = gens.iter().copied().flatten().max() else {
        return;
    };
    let holders: Vec<usize> = (0..2).filter(|i| gens[*i] == Some(newest)).collect();
    let victim = if holders.len() > 1 || completed {
        holders[0]
    } else {
        1 - holders[0]
    };
    if let Some(mut b) = fs.get(&slots[victim]) {
        if !b.is_empty() {
            let at = b.len() / 2;
            b[at] ^= 0x10;
            fs.put(&slots[victim], &b);
        }
    }
}

/// How deep and wide to explore.
#[derive(Clone, Copy)]
struct Budget {
    /// Random subsets of pending operations per crash point.
    random: usize,
    /// Cut again during recovery (depth 2).
    depth2: bool,
    /// Explore depth 2 only at every n-th first-level state (1 = all).
    depth2_stride: usize,
}

#[derive(Default)]
struct Tally {
    ops: u64,
    points: u64,
    states: u64,
    violations: Vec<String>,
}

fn fresh(s: &Scenario, config: &Config) -> SimFs {
    let fs = SimFs::new();
    // A device whose clock starts in 1970 at every boot: the setup's events are the
    // same in every fresh state (history_kept compares them).
    fs.set_clock(Some(0));
    (s.setup)(&fs, config);
    fs.sync_everything();
    fs.set_atomic_rename(s.atomic_rename);
    fs.reset_counters();
    fs
}

/// Which side each file is on: old, new, or both when old and new agree.
fn check(s: &Scenario, fs: &SimFs, config: &Config, must_be_new: bool) -> Result<(), String> {
    let old: BTreeMap<&str, &str> = s.old.iter().copied().collect();
    let new: BTreeMap<&str, &str> = s.new.iter().copied().collect();
    let mut paths: Vec<&str> = old.keys().chain(new.keys()).copied().collect();
    paths.sort();
    paths.dedup();
    let (mut can_old, mut can_new) = (true, true);
    for root in &s.writable {
        for p in &paths {
            let got = fs.get(&root.join(p));
            let got = got
                .as_deref()
                .map(|b| String::from_utf8_lossy(b).into_owned());
            let is_old = got.as_deref() == old.get(p).copied();
            let is_new = got.as_deref() == new.get(p).copied();
            if !is_old && !is_new {
                return Err(format!(
                    "{}/{p} holds {got:?}: neither old {:?} nor new {:?}",
                    root.display(),
                    old.get(p),
                    new.get(p)
                ));
            }
            can_old &= is_old;
            can_new &= is_new;
            if !s.atomic && must_be_new && !is_new {
                return Err(format!(
                    "{}/{p}: a completed change was undone",
                    root.display()
                ));
            }
        }
    }
    if s.atomic && !can_old && !can_new {
        return Err("an all-or-nothing change left a mix of old and new files".into());
    }
    if s.atomic && must_be_new && !can_new {
        return Err("a completed update was undone".into());
    }
    history_kept(s, fs, config)?;
    for (root, tail, content) in s.user {
        let kept = fs
            .files_under(Path::new(root))
            .into_iter()
            .any(|(p, c)| p.to_string_lossy().ends_with(tail) && c == content.as_bytes());
        if !kept {
            return Err(format!("the user's {root}/...{tail} is gone"));
        }
    }
    let e = Engine::new(fs);
    let v = e.verify(config, &[]).unwrap();
    if v.exit_code() != exit::OK {
        return Err(format!(
            "verify after recovery exits {}: {v:#?}",
            v.exit_code()
        ));
    }
    let again = e.boot(config, &[], true).unwrap();
    for set in &again.sets {
        if let Some(p) = &set.plan {
            if !p.actions.is_empty() {
                return Err(format!("a second boot still plans {:#?}", p.actions));
            }
        }
    }
    Ok(())
}

thread_local! {
    /// Each scenario's events before its operation, by scenario name.
    static EVENTS_BEFORE: std::cell::RefCell<BTreeMap<&'static str, Vec<rebound::Event>>> =
        const { std::cell::RefCell::new(BTreeMap::new()) };
}

/// The history survives every cut: no copy's event log or boot counter is torn or
/// damaged, and every event written before the operation is still there.
fn history_kept(s: &Scenario, fs: &SimFs, config: &Config) -> Result<(), String> {
    let before = EVENTS_BEFORE.with(|b| {
        b.borrow_mut()
            .entry(s.name)
            .or_insert_with(|| {
                let fs = fresh(s, config);
                let logs = Engine::new(&fs)
                    .log(config, &[], rebound::Since::All)
                    .unwrap();
                logs.into_iter().flat_map(|l| l.events).collect()
            })
            .clone()
    });
    let logs = Engine::new(fs)
        .log(config, &[], rebound::Since::All)
        .unwrap();
    for l in &logs {
        if let Some(p) = l.problems.first() {
            return Err(format!("set `{}`: history damaged: {p}", l.set));
        }
    }
    let after: Vec<&rebound::Event> = logs.iter().flat_map(|l| &l.events).collect();
    for e in &before {
        if !after.contains(&e) {
            return Err(format!(
                "event #{} ({} {:?}) was lost",
                e.seq, e.command, e.outcome
            ));
        }
    }
    Ok(())
}

fn golden_untouched(s: &Scenario, fs: &SimFs) -> Result<(), String> {
    if let Some(g) = &s.golden {
        if let Some(p) = fs.touched().iter().find(|p| p.starts_with(g)) {
            return Err(format!("the golden copy was written: {}", p.display()));
        }
    }
    Ok(())
}

/// The device key of the keyed pass (docs/design.md section 2.3): the configuration
/// names `KEY_PATH`, and the key is given to it as `Config::load` would read it.
const KEY_PATH: &str = "/etc/rebound/device.key";

/// A scenario's configuration, with `device_key` when `keyed`, its key loaded.
fn scenario_config(s: &Scenario, keyed: bool) -> Config {
    let text = if keyed {
        format!("device_key = \"{KEY_PATH}\"\n{}", s.config)
    } else {
        s.config.clone()
    };
    let mut config = Config::parse(&text, Path::new("/etc/rebound.toml")).unwrap();
    if keyed {
        config
            .load_keys_with(&|p| Ok(DeviceKey::from_bytes(&[0x5a; 32], p)))
            .unwrap();
        assert!(config.sets.iter().all(|s| s.key.key.is_some()));
    }
    config
}

fn explore(s: &Scenario, budget: Budget, breakage: Breakage) -> Tally {
    explore_config(s, &scenario_config(s, false), budget, breakage)
}

fn explore_config(s: &Scenario, config: &Config, budget: Budget, breakage: Breakage) -> Tally {
    let config = config.clone();
    let mut t = Tally::default();
    // Pass 1: count the operations of an uninterrupted run.
    let fs = fresh(s, &config);
    (s.run)(&Engine::new(&fs).with_breakage(breakage), &config);
    let n = fs.ops();
    t.ops = n;
    let full_log = fs.log();
    // Pass 2: cut before every operation k; k = n + 1 cuts right after the run ended.
    for k in 1..=n + 1 {
        t.points += 1;
        let fs = fresh(s, &config);
        fs.set_crash_at(Some(k));
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            (s.run)(&Engine::new(&fs).with_breakage(breakage), &config)
        }));
        let completed = k == n + 1 && run.is_ok();
        if let Err(v) = golden_untouched(s, &fs) {
            t.violations.push(format!("{}: cut at {k}: {v}", s.name));
        }
        for (i, cs) in fs.crash_states(budget.random, k).into_iter().enumerate() {
            t.states += 1;
            if let Some(damage) = s.damage {
                damage(&cs.fs, completed);
            }
            let repro = |what: &str, extra: &str| {
                let when = if k > n {
                    format!("power cut after the run completed ({n} operations)")
                } else {
                    format!("power cut before operation {k} of {n}")
                };
                format!(
                    "scenario `{}`: {when}; crash state: {}{extra}\n  invariant: {what}\n  operations:\n    {}",
                    s.name,
                    cs.how,
                    full_log.join("\n    ")
                )
            };
            // Depth 2: cut again before every operation of the recovery.
            if budget.depth2 && i % budget.depth2_stride == 0 {
                let probe = cs.fs.fork();
                (s.recover)(&Engine::new(&probe), &config);
                for j in 1..=probe.ops() {
                    let again = cs.fs.fork();
                    again.set_crash_at(Some(j));
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        (s.recover)(&Engine::new(&again), &config)
                    }));
                    for cs2 in again.crash_states(0, j) {
                        t.states += 1;
                        let fin = cs2.fs.fork();
                        (s.recover)(&Engine::new(&fin), &config);
                        if let Err(v) = check(s, &fin, &config, completed)
                            .and(golden_untouched(s, &again))
                            .and(golden_untouched(s, &fin))
                        {
                            t.violations.push(repro(
                                &v,
                                &format!(
                                    "; recovery cut before its operation {j}; then: {}",
                                    cs2.how
                                ),
                            ));
                        }
                    }
                }
            }
            let rec = cs.fs.fork();
            (s.recover)(&Engine::new(&rec), &config);
            if let Err(v) = check(s, &rec, &config, completed).and(golden_untouched(s, &rec)) {
                t.violations.push(repro(&v, ""));
            }
        }
    }
    t
}

fn budget() -> Budget {
    if std::env::var_os("REBOUND_CRASH_EXHAUSTIVE").is_some() {
        Budget {
            random: 8,
            depth2: true,
            depth2_stride: 1,
        }
    } else {
        Budget {
            random: 2,
            depth2: true,
            depth2_stride: 7,
        }
    }
}

/// One row of the explorer's table: scenario, operations, cuts, states, violations.
fn table_row(s: &Scenario, t: &Tally) -> String {
    format!(
        "| {:<45} | {:>5} | {:>6} | {:>8} | {:>10} |",
        s.name,
        t.ops,
        t.points,
        t.states,
        t.violations.len()
    )
}

/// Prints the explorer's table: its header and `rows`.
fn print_table(rows: &[String]) {
    println!(
        "| {:<45} | {:>5} | {:>6} | {:>8} | {:>10} |",
        "scenario", "ops", "cuts", "states", "violations"
    );
    println!(
        "|{}|{}|{}|{}|{}|",
        "-".repeat(47),
        "-".repeat(7),
        "-".repeat(8),
        "-".repeat(10),
        "-".repeat(12)
    );
    for r in rows {
        println!("{r}");
    }
}

#[test]
fn every_crash_point_of_every_scenario_keeps_the_invariant() {
    let b = budget();
    let mut rows = Vec::new();
    let mut all = Vec::new();
    for s in scenarios() {
        let t = explore(&s, b, Breakage::default());
        rows.push(table_row(&s, &t));
        all.extend(t.violations);
    }
    print_table(&rows);
    if let Some(first) = all.first() {
        panic!("{} violations; first:\n{first}", all.len());
    }
}

/// The same scenarios with a device key configured (issue 15): every manifest, stat
/// cache and history record is written keyed (format 3) and read only if its MAC
/// holds, and the invariant is the same. Also checks that every writable manifest slot
/// left after the final recovery carries the MAC (is read with the key).
#[test]
fn every_crash_point_of_every_scenario_keeps_the_invariant_with_a_device_key() {
    let b = budget();
    let mut rows = Vec::new();
    let mut all = Vec::new();
    // With a key a version tag carries no MAC, so an upgrade made behind rebound's back
    // (files written and the tag bumped in one copy) is not adopted: every copy is
    // brought back to the authenticated manifest (docs/design.md 2.3). Those two
    // scenarios expect the pre-upgrade content, in every copy, at every cut.
    const NOT_ADOPTED: Files = &[
        ("apps/app.bin", "app v1\n"),
        ("apps/params.cfg", "params v1\n"),
    ];
    for mut s in scenarios() {
        if s.name.contains("tag bumped") {
            s.old = NOT_ADOPTED;
            s.new = NOT_ADOPTED;
        }
        let config = scenario_config(&s, true);
        let t = explore_config(&s, &config, b, Breakage::default());
        rows.push(table_row(&s, &t));
        all.extend(t.violations);
        // After an uninterrupted run and a boot, every slot present is keyed.
        let fs = fresh(&s, &config);
        (s.run)(&Engine::new(&fs), &config);
        (s.recover)(&Engine::new(&fs), &config);
        for root in &s.writable {
            for (p, b) in fs.files_under(root) {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                if name.starts_with("manifest.") {
                    let t = String::from_utf8_lossy(&b);
                    assert!(
                        t.starts_with("rebound-manifest 3\n") && t.contains("\nmac "),
                        "{}: {} is not keyed:\n{t}",
                        s.name,
                        p.display()
                    );
                }
            }
        }
    }
    println!("keyed (device_key):");
    print_table(&rows);
    if let Some(first) = all.first() {
        panic!(
            "{} violations with a device key; first:\n{first}",
            all.len()
        );
    }
}

/// A failed fsync (EIO: the storage may have dropped what it was given) at every sync
/// of every scenario. The run must stop writing and report it; then, with the power
/// either staying on or cut in any of the states the unsynced writes allow, a boot on
/// healthy storage must restore the invariant (each file old or new, all-or-nothing
/// changes on one side, verify clean, nothing left to plan, golden untouched). A run
/// that failed may leave the old content (`must_be_new` is false).
#[test]
fn a_failed_fsync_at_any_sync_of_any_scenario_loses_nothing() {
    let mut rows = Vec::new();
    let mut all = Vec::new();
    for s in scenarios() {
        let config = Config::parse(&s.config, Path::new("/etc/rebound.toml")).unwrap();
        let fs = fresh(&s, &config);
        (s.run)(&Engine::new(&fs), &config);
        let n = fs.syncs();
        let mut states = 0;
        let mut violations = 0;
        for k in 1..=n {
            let fs = fresh(&s, &config);
            fs.set_fail_sync_at(Some(k));
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                (s.run)(&Engine::new(&fs), &config)
            }));
            fs.set_fail_sync_at(None);
            let mut after: Vec<(String, SimFs)> = vec![("power stays on".into(), fs.fork())];
            after.extend(
                fs.crash_states(1, k)
                    .into_iter()
                    .map(|cs| (format!("power cut; crash state: {}", cs.how), cs.fs)),
            );
            for (how, st) in after {
                states += 1;
                if let Some(damage) = s.damage {
                    damage(&st, false);
                }
                let rec = st.fork();
                (s.recover)(&Engine::new(&rec), &config);
                if let Err(v) = check(&s, &rec, &config, false)
                    .and(golden_untouched(&s, &fs))
                    .and(golden_untouched(&s, &rec))
                {
                    violations += 1;
                    all.push(format!(
                        "scenario `{}`: sync {k} of {n} failed (EIO), then {how}\n  invariant: {v}\n  operations:\n    {}",
                        s.name,
                        fs.log().join("\n    ")
                    ));
                }
            }
        }
        rows.push(format!(
            "| {:<45} | {:>5} | {:>8} | {:>10} |",
            s.name, n, states, violations
        ));
    }
    println!(
        "| {:<45} | {:>5} | {:>8} | {:>10} |",
        "scenario (a failed fsync)", "syncs", "states", "violations"
    );
    for r in rows {
        println!("{r}");
    }
    if let Some(first) = all.first() {
        panic!("{} violations; first:\n{first}", all.len());
    }
}

#[test]
fn explorer_catches_a_protocol_that_skips_file_fsync() {
    let s = all_scenarios()
        .into_iter()
        .find(|s| s.name.starts_with("update of many"))
        .unwrap();
    let b = Budget {
        random: 0,
        depth2: false,
        depth2_stride: 1,
    };
    let t = explore(
        &s,
        b,
        Breakage {
            skip_file_sync: true,
            ..Breakage::default()
        },
    );
    assert!(
        !t.violations.is_empty(),
        "skipping file fsync must be caught"
    );
    println!("counterexample (skip file fsync):\n{}", t.violations[0]);
}

#[test]
fn explorer_catches_a_protocol_that_skips_directory_fsync() {
    let s = all_scenarios()
        .into_iter()
        .find(|s| s.name.starts_with("commit, golden"))
        .unwrap();
    let b = Budget {
        random: 0,
        depth2: false,
        depth2_stride: 1,
    };
    let t = explore(
        &s,
        b,
        Breakage {
            skip_dir_sync: true,
            ..Breakage::default()
        },
    );
    assert!(
        !t.violations.is_empty(),
        "skipping directory fsync must be caught"
    );
    println!(
        "counterexample (skip directory fsync):\n{}",
        t.violations[0]
    );
}

#[test]
fn explorer_catches_a_vfat_rename_made_durable_by_the_directory_fsync_alone() {
    // On vfat the renamed name is written with the moved file's inode: a protocol
    // that only fsyncs the directory after the rename loses completed writes.
    let s = all_scenarios()
        .into_iter()
        .find(|s| s.name.starts_with("update, vfat"))
        .unwrap();
    let b = Budget {
        random: 0,
        depth2: false,
        depth2_stride: 1,
    };
    let t = explore(
        &s,
        b,
        Breakage {
            skip_renamed_sync: true,
            ..Breakage::default()
        },
    );
    assert!(
        !t.violations.is_empty(),
        "skipping the fsync of the renamed file must be caught on vfat"
    );
    println!(
        "counterexample (vfat, no fsync of the renamed file):\n{}",
        t.violations[0]
    );
}

/// `seal --sign-key` on a set with `golden_public_key` (docs/design.md section 5.2):
/// at every cut, in every crash state, the golden copy is either unsealed (no marker:
/// never used) or sealed *and* carrying a signature that verifies; a reseal with the
/// key and a boot then leave a device that verifies, signature included. Fails if the
/// signature is written after the marker, or over other bytes than the manifest's.
#[test]
fn every_crash_point_of_a_signed_seal_leaves_golden_unsealed_or_signed() {
    let key = rebound::SignKey::parse(
        format!("rebound-ed25519-secret 1 {}\n", "2a".repeat(32)).as_bytes(),
    )
    .unwrap();
    let text = format!(
        "{}golden_public_key = \"/etc/rebound/golden.pub\"\n",
        golden_config(false)
    );
    let config = Config::parse(&text, Path::new("/etc/rebound.toml")).unwrap();
    let fresh_signed = || {
        let fs = SimFs::new();
        fs.set_clock(Some(0));
        put_all(&fs, "/dev0/usr", PRISTINE);
        fs.mkdir_all(Path::new("/dev1"));
        fs.put(
            Path::new("/etc/rebound/golden.pub"),
            key.public().encode().as_bytes(),
        );
        fs.sync_everything();
        fs.reset_counters();
        fs
    };
    let signed_seal = |fs: &SimFs, force: bool| {
        Engine::new(fs)
            .with_sign_key(&key)
            .seal(&config, &[], force, false)
            .unwrap()
    };
    let fs = fresh_signed();
    assert_eq!(signed_seal(&fs, false).exit_code(), exit::OK);
    let n = fs.ops();
    let (mut states, mut sealed_states) = (0, 0);
    for k in 1..=n + 1 {
        let fs = fresh_signed();
        fs.set_crash_at(Some(k));
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| signed_seal(&fs, false)));
        for cs in fs.crash_states(2, k) {
            states += 1;
            let st = Engine::new(&cs.fs).status(&config, &[]).unwrap();
            let g = st[0]
                .replicas
                .iter()
                .find(|r| r.role == rebound::Role::Golden)
                .unwrap();
            if g.sealed == Some(true) {
                sealed_states += 1;
                assert_eq!(
                    g.signature,
                    Some(rebound::SignatureState::Verified),
                    "cut before op {k} of {n} ({}): sealed but not signed",
                    cs.how
                );
            }
            let rec = cs.fs.fork();
            let r = signed_seal(&rec, true);
            assert_eq!(r.exit_code(), exit::OK, "reseal after cut {k}: {r:#?}");
            Engine::new(&rec).boot(&config, &[], false).unwrap();
            let v = Engine::new(&rec).verify(&config, &[]).unwrap();
            assert_eq!(v.exit_code(), exit::OK, "verify after cut {k}: {v:#?}");
        }
    }
    // The loop saw both sides of the marker.
    assert!(
        sealed_states > 0 && sealed_states < states,
        "{sealed_states} of {states}"
    );
    println!("signed seal: {n} operations, {states} crash states, {sealed_states} sealed");
}
