//! The configuration against what the replicas hold (defects issue, items 4, 5, 6, 20):
//! a changed `hash` is refused in both modes, never re-adopted; one file selected by
//! two sets is refused, naming both; entries that a narrowed `include` no longer
//! selects are released once, never restored from golden; set names `.` and `..`, a
//! FIFO, a device and an oversized file as configuration are refused.

use std::time::{Duration, Instant};

use crate::util::{Dir, DATA, SYS};

/// Adds a line to the last `[[set]]` of the configuration.
fn add_to_last_set(d: &Dir, line: &str) {
    let cfg = d.read("rebound.toml");
    d.config(&format!("{cfg}{line}\n"));
}

/// Item 4 (mirror): before the fix, manifests of another algorithm were taken as
/// absent, the first replica was re-adopted and its corrupt file copied over the good
/// backup, exit 0.
#[test]
fn hash_changed_in_a_mirror_set_is_refused_and_never_re_adopts_the_first_replica() {
    let d = Dir::mirror_device("hash-mirror", &[SYS, DATA]);
    d.run(["boot"], 0);
    let good = d.read(&format!("{DATA}/apps/params.cfg"));
    d.write(&format!("{SYS}/apps/params.cfg"), "baud=CORRUPT\n");
    add_to_last_set(&d, "hash = \"sha256\"");
    let before = d.contents(".");
    for cmd in ["boot", "verify"] {
        d.run([cmd], 2).says(&[
            "/.rebound/apps/manifest.",
            "uses blake3",
            "configured for sha256",
            "hash = \"blake3\"",
            "rebound seal --force apps",
        ]);
    }
    d.run(["commit", &format!("{SYS}/apps/params.cfg")], 2)
        .says(&["uses blake3"]);
    assert_eq!(d.contents("."), before, "a refused set was written");
    assert_eq!(d.read(&format!("{DATA}/apps/params.cfg")), good);
    // Setting it back works as before: the corrupt copy is repaired.
    let cfg = d.read("rebound.toml").replace("hash = \"sha256\"\n", "");
    d.config(&cfg);
    d.run(["boot"], 0).says(&["result: repaired"]);
    assert_eq!(d.read(&format!("{SYS}/apps/params.cfg")), good);
}

/// Item 4: `seal --force` is the deliberate way to the new algorithm, in both modes,
/// and the older-algorithm slot it leaves behind is not taken for the newest.
#[test]
fn seal_force_moves_a_set_to_the_new_hash_deliberately_in_both_modes() {
    let m = Dir::mirror_device("hash-mirror-seal", &[SYS, DATA]);
    m.run(["boot"], 0);
    add_to_last_set(&m, "hash = \"sha256\"");
    m.run(["boot"], 2).says(&["uses blake3"]);
    m.run(["seal", "--force"], 0);
    m.run(["boot"], 0).says(&["result: intact"]);
    m.run(["verify"], 0);
    // The reseal writes both manifest slots: no slot of the old algorithm is left.
    let st = m.run(["status"], 0);
    assert!(
        !st.text().contains("not the configured hash"),
        "{}",
        st.text()
    );

    let g = Dir::golden_device("hash-golden-seal", &[]);
    g.run(["seal"], 0);
    g.write("usr/apn_cfg.json", "{\"apn\": \"edited\"}\n");
    add_to_last_set(&g, "hash = \"crc32\"");
    g.run(["boot"], 2).says(&[
        "usr/.rebound/config/manifest.",
        "uses blake3",
        "configured for crc32",
    ]);
    assert_eq!(g.read("usr/apn_cfg.json"), "{\"apn\": \"edited\"}\n");
    g.run(["seal", "--force"], 0);
    g.run(["boot"], 0).says(&["result: intact"]);
}

/// Item 5, at load: a literal path of one set that another set sharing the root also
/// selects (`**` in one, `a` in the other). Before the fix the two sets reverted each
/// other's commits.
#[test]
fn one_file_selected_by_two_sets_in_one_root_is_refused_at_load_naming_both() {
    let d = Dir::new("two-sets-literal");
    d.write("usr/a", "a\n");
    d.write("usr/b", "b\n");
    d.config(&format!(
        "[[set]]\nname = \"all\"\nmode = \"golden\"\nlive = \"{u}\"\ngolden = \"{b1}\"\ninclude = [\"**\"]\n\
         [[set]]\nname = \"one\"\nmode = \"golden\"\nlive = \"{u}\"\ngolden = \"{b2}\"\ninclude = [\"a\"]\n",
        u = d.path("usr").display(),
        b1 = d.path("bak1").display(),
        b2 = d.path("bak2").display(),
    ));
    d.run(["seal"], 2).says(&[
        &format!("{}", d.path("usr/a").display()),
        "set `all`",
        "set `one`",
        "one set only",
    ]);
    assert!(!d.exists("bak1") && !d.exists("bak2"));
}

/// Item 5, at run time: two glob patterns that select the same existing file. The
/// affected sets are refused (exit 2), naming both and the path; a set elsewhere is
/// still protected in the same run.
#[test]
fn one_file_selected_by_two_glob_sets_is_refused_at_run_time_and_other_sets_still_run() {
    let d = Dir::new("two-sets-glob");
    d.write("usr/app/main.py", "v1\n");
    d.write("usr/app/x.cfg", "x\n");
    d.write("other/keep.txt", "keep\n");
    d.config(&format!(
        "[[set]]\nname = \"app\"\nmode = \"golden\"\nlive = \"{u}\"\ngolden = \"{b1}\"\ninclude = [\"app/**\"]\n\
         [[set]]\nname = \"py\"\nmode = \"golden\"\nlive = \"{u}\"\ngolden = \"{b2}\"\ninclude = [\"app/*.py\"]\n\
         [[set]]\nname = \"other\"\nmode = \"golden\"\nlive = \"{o}\"\ngolden = \"{b3}\"\ninclude = [\"*.txt\"]\n",
        u = d.path("usr").display(),
        o = d.path("other").display(),
        b1 = d.path("bak1").display(),
        b2 = d.path("bak2").display(),
        b3 = d.path("bak3").display(),
    ));
    let path = format!("{}", d.path("usr/app/main.py").display());
    let r = d
        .run(["seal"], 2)
        .says(&[&path, "set `app`", "set `py`", "one set only"]);
    let text = r.stdout();
    assert!(
        text.contains("sealed 1 files"),
        "set `other` not sealed:\n{text}"
    );
    assert!(!d.exists("bak1/app") && !d.exists("bak2/app"));
    assert_eq!(d.read("bak3/keep.txt"), "keep\n");
    // A boot protects `other` all the same.
    d.remove("other/keep.txt");
    d.run(["boot"], 2).says(&[&path]);
    assert_eq!(d.read("other/keep.txt"), "keep\n");
}

/// Item 6: `include` narrowed after seal. Before the fix every boot restored the
/// released file from golden although `commit` said it was not protected.
#[test]
fn entries_no_longer_selected_are_released_once_and_never_restored_from_golden() {
    let d = Dir::golden_device("narrowed", &[]);
    d.run(["seal"], 0);
    let cfg = d.read("rebound.toml").replace(
        "include = [\"apn_cfg.json\", \"system_config.json\", \"app/**\"]",
        "include = [\"apn_cfg.json\", \"app/**\"]",
    );
    d.config(&cfg);
    d.write(
        "usr/system_config.json",
        "{\"volume\": 9, \"mine\": true}\n",
    );
    d.run(["verify"], 1)
        .says(&["released 1 file(s)", "system_config.json"]);
    d.run(["boot"], 0).says(&[
        "released 1 file(s)",
        "system_config.json",
        "no longer protected",
    ]);
    let edited = "{\"volume\": 9, \"mine\": true}\n";
    assert_eq!(d.read("usr/system_config.json"), edited);
    // Reported once: the new generation no longer names it.
    let r = d.run(["boot"], 0);
    assert!(!r.text().contains("released"), "{}", r.text());
    assert_eq!(d.read("usr/system_config.json"), edited);
    d.run(["commit", "usr/system_config.json"], 2)
        .says(&["not protected by any set"]);
    // With both live manifests lost, the golden manifest (which still names it) is
    // the authority: the released path is not restored from golden either.
    d.remove("usr/.rebound");
    d.run(["boot"], 0)
        .says(&["golden manifest", "released 1 file(s)"]);
    assert_eq!(d.read("usr/system_config.json"), edited);
    // Nor is a released file ever removed.
    d.remove("usr/.rebound");
    d.remove("usr/app/main.py");
    d.run(["boot"], 0).says(&["result: repaired"]);
    assert_eq!(d.read("usr/system_config.json"), edited);
    assert_eq!(d.read("usr/app/main.py"), "print('v1')\n");
}

/// Item 20: set names `.` and `..` were accepted, then every boot failed.
#[test]
fn set_named_dot_or_dot_dot_is_refused_when_the_configuration_is_read() {
    for name in [".", ".."] {
        let d = Dir::mirror_device("dot-name", &[SYS, DATA]);
        let cfg = d
            .read("rebound.toml")
            .replace("name = \"apps\"", &format!("name = \"{name}\""));
        d.config(&cfg);
        for cmd in ["seal", "boot", "status"] {
            d.run([cmd], 2)
                .says(&[d.path("rebound.toml").to_str().unwrap(), "not `.` or `..`"]);
        }
        assert!(!d.exists(&format!("{SYS}/.rebound")));
    }
}

/// Runs the binary with a deadline: a FIFO as configuration used to block forever.
fn run_within(d: &Dir, config: &std::path::Path, secs: u64) -> (Option<i32>, String) {
    let mut child = crate::util::TestCommand::bare()
        .cmd
        .current_dir(d.root())
        .arg("-c")
        .arg(config)
        .arg("boot")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
            return (status.code(), err);
        }
        if start.elapsed() > Duration::from_secs(secs) {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!(
                "`rebound -c {}` still running after {secs} s",
                config.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn configuration_that_is_a_fifo_or_a_device_is_refused_without_reading_it() {
    let d = Dir::new("cfg-fifo");
    let fifo = d.path("rebound.toml");
    crate::util::sh("mkfifo", &[fifo.as_os_str()]).unwrap();
    for path in [fifo.as_path(), std::path::Path::new("/dev/zero")] {
        let (code, err) = run_within(&d, path, 20);
        assert_eq!(code, Some(2), "{err}");
        assert!(err.contains(path.to_str().unwrap()), "{err}");
        assert!(err.contains("not a regular file"), "{err}");
    }
}

#[test]
fn configuration_larger_than_one_mebibyte_is_refused_naming_the_file() {
    let d = Dir::mirror_device("cfg-big", &[SYS, DATA]);
    let cfg = d.read("rebound.toml");
    // Valid TOML: a set followed by 1.1 MiB of comments.
    let pad = "# padding padding padding padding padding padding padding padding\n".repeat(17_000);
    d.config(&format!("{cfg}{pad}"));
    d.run(["boot"], 2).says(&[
        d.path("rebound.toml").to_str().unwrap(),
        "larger than 1048576 bytes",
    ]);
    assert!(!d.exists(&format!("{DATA}/apps")));
}
