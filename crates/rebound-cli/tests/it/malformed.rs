//! Bad input never panics: a missing, unreadable or invalid configuration and
//! malformed or truncated manifests give exit status 2 and an error naming the file,
//! or (for one damaged manifest slot) a fall back to the other slot.

use crate::util::{Dir, TestCommand};

fn config_error(d: &Dir, text: &[u8], needles: &[&str]) {
    d.write("rebound.toml", text);
    for cmd in [&["boot"][..], &["verify"], &["status"], &["seal"]] {
        let r = d.run(cmd, 2);
        r.says(&[d.path("rebound.toml").to_str().unwrap()])
            .says(needles);
    }
}

#[test]
fn missing_config_is_exit_2_naming_the_file() {
    let d = Dir::new("cfg-missing");
    d.run(["boot"], 2)
        .says(&[d.path("rebound.toml").to_str().unwrap(), "not found"]);
    // The default path and the environment variable name their files too.
    TestCommand::bare()
        .env("REBOUND_CONFIG", d.path("from-env.toml"))
        .arg("verify")
        .run()
        .expect_code(2)
        .says(&["from-env.toml"]);
}

#[test]
fn config_that_is_a_directory_or_not_utf8_is_exit_2() {
    let d = Dir::new("cfg-dir");
    std::fs::create_dir(d.path("rebound.toml")).unwrap();
    d.run(["boot"], 2).says(&["rebound.toml", "cannot read"]);
    d.remove("rebound.toml");
    config_error(&d, b"[[set]]\nname = \"\xff\"\n", &["not UTF-8"]);
}

#[test]
fn malformed_configs_name_the_file_and_the_problem() {
    let d = Dir::new("cfg-bad");
    let live = d.path("usr");
    let bak = d.path("bak");
    let ok = |extra: &str| {
        format!(
            "[[set]]\nname = \"config\"\nmode = \"golden\"\nlive = \"{}\"\ngolden = \"{}\"\ninclude = [\"a.json\"]\n{extra}",
            live.display(),
            bak.display()
        )
    };
    let cases: Vec<(String, Vec<&str>)> = vec![
        ("".into(), vec!["no [[set]]"]),
        ("[[set]\nname=".into(), vec!["TOML parse error"]),
        ("[[set]]\nname = \"x\"\n".into(), vec!["missing field"]),
        (ok("typo = 1\n"), vec!["typo"]),
        (ok("hash = \"md5\"\n"), vec!["md5"]),
        (
            ok("").replace(live.to_str().unwrap(), "relative/usr"),
            vec!["absolute"],
        ),
        (
            ok("").replace(bak.to_str().unwrap(), &format!("{}/../etc", live.display())),
            vec!["absolute path without `..`"],
        ),
        (
            ok("").replace("\"a.json\"", "\"../etc/passwd\""),
            vec!["include pattern", "../etc/passwd"],
        ),
        (
            ok("").replace("\"a.json\"", "\"/etc/passwd\""),
            vec!["include pattern", "/etc/passwd"],
        ),
        (
            ok("").replace(bak.to_str().unwrap(), &format!("{}/bak", live.display())),
            vec!["overlap"],
        ),
        (ok("").replace("\"golden\"\n", "\"weird\"\n"), vec!["weird"]),
        (
            format!("{}{}", ok(""), ok("")),
            vec!["defined twice"],
        ),
        (
            "[[set]]\nname = \"apps\"\nmode = \"mirror\"\nreplicas = [\"/a\"]\ninclude = [\"apps/**\"]\n".into(),
            vec!["at least two"],
        ),
        (
            "[[set]]\nname = \"apps\"\nmode = \"mirror\"\nreplicas = [\"/a\", \"/b\"]\ninclude = [\"apps/**\"]\nversion_file = \"../v.txt\"\n".into(),
            vec!["version_file"],
        ),
        (
            "[[set]]\nname = \"apps\"\nmode = \"mirror\"\nreplicas = [\"/a\", \"/b\"]\ninclude = [\"apps/**\"]\nversion_file = \"apps/v.txt\"\n".into(),
            vec!["version_file", "outside the included files"],
        ),
    ];
    for (text, needles) in cases {
        config_error(&d, text.as_bytes(), &needles);
    }
}

fn sealed(name: &str) -> Dir {
    let d = Dir::golden_device(name, &[]);
    d.run(["seal"], 0);
    d
}

const SLOTS: [&str; 2] = [
    "usr/.rebound/config/manifest.0",
    "usr/.rebound/config/manifest.1",
];

/// The generation line of a manifest slot, if it has one.
fn generation_of(d: &Dir, slot: &str) -> Option<u64> {
    let b = d.read_opt(slot)?;
    String::from_utf8_lossy(&b)
        .lines()
        .find_map(|l| l.strip_prefix("generation ")?.parse().ok())
}

/// Two faults: the newest generation reached only one slot (a cut between the two
/// slot writes, or a device written by a rebound that put each generation in one
/// slot), and then that slot was torn. The older generation rules, and the torn slot's
/// generation is never reused: the boot writes the older content as a newer
/// generation. (Before every generation went to both slots, a torn newest slot alone
/// did this; `slots::` covers that case now.)
#[test]
fn torn_newest_slot_beside_an_older_one_falls_back_and_its_generation_is_not_reused() {
    let d = sealed("slot-torn");
    let gen1 = SLOTS.map(|s| d.read_opt(s).unwrap());
    d.write("usr/apn_cfg.json", "{\"apn\": \"committed\"}\n");
    d.run(["commit", "usr/apn_cfg.json"], 0);
    assert_eq!(SLOTS.map(|s| generation_of(&d, s)), [Some(2), Some(2)]);
    // Generation 2 in slot 0 only, torn half way; generation 1 in slot 1.
    d.write(SLOTS[1], &gen1[1]);
    let b = d.read_opt(SLOTS[0]).unwrap();
    d.write(SLOTS[0], &b[..b.len() / 2]);
    // The last intact generation (1) rules: the edit committed in the torn generation
    // counts as not committed, and is put back to generation 1's content.
    d.run(["verify"], 1)
        .says(&["generation 1", "manifest damaged", "claims generation 2"]);
    d.run(["boot"], 0).says(&[
        "manifest generation 1",
        "apn_cfg.json",
        "claims generation 2",
        "result: repaired",
    ]);
    assert_eq!(d.read("usr/apn_cfg.json"), "{\"apn\": \"factory\"}\n");
    assert_eq!(SLOTS.map(|s| generation_of(&d, s)), [Some(3), Some(3)]);
    d.run(["verify"], 0);
    d.write("usr/apn_cfg.json", "{\"apn\": \"again\"}\n");
    d.run(["commit", "usr/apn_cfg.json"], 0);
    assert_eq!(SLOTS.map(|s| generation_of(&d, s)), [Some(4), Some(4)]);
    d.run(["boot"], 0).says(&["result: intact"]);
    assert_eq!(d.read("usr/apn_cfg.json"), "{\"apn\": \"again\"}\n");
}

#[test]
fn every_kind_of_damaged_slot_is_treated_as_absent_never_a_panic() {
    let d = sealed("slot-kinds");
    d.write("usr/apn_cfg.json", "{\"apn\": \"committed\"}\n");
    d.run(["commit", "usr/apn_cfg.json"], 0);
    let good = d.read_opt(SLOTS[1]).unwrap();
    assert_eq!(
        d.read_opt(SLOTS[0]).unwrap(),
        good,
        "both slots hold generation 2"
    );
    let flipped = {
        let mut b = good.clone();
        let i = b.len() / 3;
        b[i] ^= 1;
        b
    };
    let damaged: Vec<Vec<u8>> = vec![
        Vec::new(),
        good[..good.len() - 1].to_vec(), // last newline missing
        flipped,
        vec![0u8; good.len()],
        b"rebound-manifest 99\n".to_vec(),
        String::from_utf8_lossy(&good)
            .replace("generation 2", "generation 3")
            .into_bytes(),
        vec![0xff; 70_000],
    ];
    for (i, bytes) in damaged.into_iter().enumerate() {
        // Either slot: the other holds the same generation, nothing is lost.
        let slot = SLOTS[i % 2];
        d.write(slot, &bytes);
        d.run(["status"], 0)
            .says(&["damaged", "`rebound boot` rewrites it"]);
        d.run(["verify"], 1).says(&[slot, "manifest damaged"]);
        d.run(["boot"], 0).says(&[
            "manifest generation",
            "manifest damaged",
            "result: repaired",
        ]);
        assert_eq!(d.read("usr/apn_cfg.json"), "{\"apn\": \"committed\"}\n");
        d.run(["verify"], 0);
        d.run(["boot"], 0).says(&["result: intact"]);
        assert_eq!(d.read_opt(SLOTS[0]), d.read_opt(SLOTS[1]));
    }
}

/// A slot whose checksum holds but whose body is a header and then millions of blank
/// lines (rebound never writes one; anyone can compute the `end` line) is malformed at
/// its first blank line, like any other: the other slot rules. Its decoding must not
/// first reserve room for an entry per line (80 bytes each: gigabytes for these 24
/// MiB), which a device's memory cannot give: run with 1 GiB of address space, the
/// boot must repair the slot, not die of a failed allocation.
#[test]
fn checksummed_slot_of_blank_lines_is_malformed_without_gigabytes_reserved() {
    let test = "checksummed_slot_of_blank_lines_is_malformed_without_gigabytes_reserved";
    if std::env::var_os("REBOUND_TEST_RUNNER").is_some_and(|r| !r.is_empty()) {
        // An emulator's own reservation of the guest's address space exceeds the limit.
        return crate::util::skip(test, "the binary runs under REBOUND_TEST_RUNNER");
    }
    let d = sealed("slot-blank-lines");
    let mut body = String::from("rebound-manifest 2\nset config\ngeneration 9\nhash blake3\n");
    body.push_str(&"\n".repeat(24 << 20));
    d.write(SLOTS[0], rebound::testing::record_seal(body));
    let limited = |args: &[&str]| {
        let mut cmd = std::process::Command::new("sh");
        cmd.arg("-c")
            .arg("ulimit -v 1048576 && exec \"$@\"")
            .arg("sh")
            .args(crate::util::bin_argv())
            .args(["--threads", "1", "-c"])
            .arg(d.path("rebound.toml"))
            .args(args)
            .env_remove("REBOUND_CONFIG")
            .env_remove("REBOUND_FAULT_PAUSE_AT")
            .env_remove("REBOUND_FAULT_RESUME_FILE")
            .env_remove("REBOUND_FAULT_SKIP_SYNC");
        crate::util::TestCommand { cmd }.run()
    };
    limited(&["boot"])
        .expect_code(0)
        .says(&[SLOTS[0], "manifest damaged", "result: repaired"]);
    assert_eq!(d.read_opt(SLOTS[0]), d.read_opt(SLOTS[1]));
    assert_eq!(d.read("usr/apn_cfg.json"), "{\"apn\": \"factory\"}\n");
    d.run(["verify"], 0);
}

#[test]
fn damaged_golden_manifest_with_no_live_manifest_is_exit_2_naming_it() {
    let d = sealed("golden-manifest");
    d.remove("usr/.rebound");
    let gm = d.path("bak/.rebound/config/manifest");
    let good = std::fs::read(&gm).unwrap();
    for bytes in [&good[..good.len() / 2], b"", b"garbage\n"] {
        d.write("bak/.rebound/config/manifest", bytes);
        for cmd in ["boot", "verify"] {
            d.run([cmd], 2)
                .says(&[gm.to_str().unwrap(), "no intact manifest"]);
        }
        assert!(!d.exists("usr/.rebound/config/manifest.0"));
        assert!(!d.exists("usr/.rebound/config/manifest.1"));
    }
    d.write("bak/.rebound/config/manifest", &good);
    d.run(["boot"], 0).says(&["golden manifest"]);
}

#[test]
fn unsealed_or_unmounted_golden_is_exit_2_with_what_to_do() {
    let d = Dir::golden_device("unsealed", &[]);
    d.run(["boot"], 2)
        .says(&["bak", "does not exist", "mounted"]);
    std::fs::create_dir(d.path("bak")).unwrap();
    d.run(["boot"], 2)
        .says(&["not sealed", "rebound seal config"]);
}
