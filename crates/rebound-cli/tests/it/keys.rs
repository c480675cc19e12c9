//! Keyed live manifests (issue 15; docs/design.md section 2.3), attacked through the
//! real binary as someone with write access to the data partition would: a protected
//! file and both manifest slots rewritten with a recomputed plain checksum, manifests
//! moved between sets and copies, an older authenticated manifest put back, a version
//! 2 manifest after keys were turned on; key files that must be refused; and the
//! migration and rotation sequences with a cut between their steps.

use std::os::unix::fs::PermissionsExt;

use rebound::HashAlgo;

use crate::util::{Dir, GOLDEN_INCLUDE};

const SLOTS: [&str; 2] = ["manifest.0", "manifest.1"];

/// Writes a key file of `bytes` with `mode`.
fn key_file(d: &Dir, rel: &str, bytes: &[u8], mode: u32) {
    d.write(rel, bytes);
    std::fs::set_permissions(d.path(rel), std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The golden device of `util`, with (or without) `device_key` at the top of the
/// configuration.
fn golden_config(d: &Dir, key: Option<&str>, copies: &[&str]) -> String {
    let copies: Vec<String> = copies
        .iter()
        .map(|c| format!("\"{}\"", d.path(c).display()))
        .collect();
    format!(
        "{}[[set]]\nname = \"config\"\nmode = \"golden\"\nlive = \"{}\"\ngolden = \"{}\"\ncopies = [{}]\ninclude = {GOLDEN_INCLUDE}\n",
        key.map_or(String::new(), |k| format!(
            "device_key = \"{}\"\n",
            d.path(k).display()
        )),
        d.path("usr").display(),
        d.path("bak").display(),
        copies.join(", ")
    )
}

/// A sealed golden device whose configuration names `keys/device.key` (written, 0600).
fn keyed_device(name: &str, copies: &[&str]) -> Dir {
    let d = Dir::golden_device(name, copies);
    key_file(&d, "keys/device.key", &[7u8; 32], 0o600);
    d.config(&golden_config(&d, Some("keys/device.key"), copies));
    d.run(["seal"], 0);
    d.run(["boot"], 0);
    d
}

/// The attack of issue 15 on one slot: `path`'s line given `content`'s size and
/// BLAKE3 digest, the `mac` lines kept (`keep_mac`) or dropped with the version set to
/// 2, and the `end` checksum recomputed.
fn forge_slot(d: &Dir, slot: &str, path: &str, content: &str, keep_mac: bool) {
    let text = d.read(slot);
    let mut out = String::new();
    for line in text.lines() {
        if line.starts_with("end ") || (!keep_mac && line.starts_with("mac ")) {
            continue;
        }
        if !keep_mac && line == "rebound-manifest 3" {
            out.push_str("rebound-manifest 2\n");
            continue;
        }
        let f: Vec<&str> = line.split(' ').collect();
        if f.len() == 7 && f[0] == "file" && f[6] == path {
            out.push_str(&format!(
                "file {} {} {} {} {} {path}\n",
                content.len(),
                f[2],
                f[3],
                f[4],
                HashAlgo::Blake3.digest(content.as_bytes()).to_hex()
            ));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    let end = HashAlgo::Blake3.digest(out.as_bytes()).to_hex();
    out.push_str(&format!("end {end}\n"));
    d.write(slot, out);
}

fn forge_both(d: &Dir, root: &str, path: &str, content: &str, keep_mac: bool) {
    for s in SLOTS {
        forge_slot(
            d,
            &format!("{root}/.rebound/config/{s}"),
            path,
            content,
            keep_mac,
        );
    }
}

const EVIL: &str = "print('owned')\n";

/// Control: without a key, the attack of the issue works (the tampered file is taken
/// as committed). This is what the keyed tests below must refuse.
#[test]
fn without_a_key_the_forged_checksum_is_accepted() {
    let d = Dir::golden_device("keys-control", &[]);
    d.run(["seal"], 0);
    d.write("usr/app/main.py", EVIL);
    forge_both(&d, "usr", "app/main.py", EVIL, false);
    d.run(["boot"], 0);
    assert_eq!(d.read("usr/app/main.py"), EVIL);
}

#[test]
fn forged_file_and_both_slots_are_repaired_from_golden_with_a_key() {
    for keep_mac in [true, false] {
        let d = keyed_device(&format!("keys-forged-{keep_mac}"), &[]);
        assert!(d
            .read("usr/.rebound/config/manifest.0")
            .starts_with("rebound-manifest 3\n"));
        d.write("usr/app/main.py", EVIL);
        forge_both(&d, "usr", "app/main.py", EVIL, keep_mac);
        d.run(["verify"], 1)
            .says(&["not authenticated by the device key", "manifest.0"]);
        d.run(["boot"], 0)
            .says(&["not authenticated by the device key", "app/main.py"]);
        assert_eq!(d.read("usr/app/main.py"), "print('v1')\n");
        // Both slots rewritten, authenticated again: the next boot is clean.
        d.run(["verify"], 0);
        assert!(d.read("usr/.rebound/config/manifest.1").contains("\nmac "));
    }
}

/// The same attack on every writable copy of a mirror set (no golden copy): no
/// authenticated manifest is left, so nothing is trusted and nothing adopted; the run
/// fails (exit 2) and the tampered file is not taken as committed.
#[test]
fn forged_mirror_without_an_intact_source_is_refused() {
    let d = Dir::mirror_device("keys-mirror-forged", &["a", "b"]);
    key_file(&d, "keys/device.key", &[7u8; 32], 0o600);
    let text = d.read("rebound.toml");
    d.config(&format!(
        "device_key = \"{}\"\n{text}",
        d.path("keys/device.key").display()
    ));
    d.run(["boot"], 0);
    assert!(d.read("b/.rebound/apps/manifest.0").contains("\nmac "));
    for r in ["a", "b"] {
        d.write(&format!("{r}/apps/app.bin"), EVIL);
        let p = "apps/app.bin";
        for s in SLOTS {
            forge_slot(&d, &format!("{r}/.rebound/apps/{s}"), p, EVIL, false);
        }
    }
    d.run(["boot"], 2)
        .says(&["authenticated by the device key", "not adopted"]);
    assert_eq!(
        d.read("a/apps/app.bin"),
        EVIL,
        "left as it is, not committed"
    );
    assert!(!d.read("a/.rebound/apps/manifest.0").contains("\nmac "));
    // Bumping the (unauthenticated) version tag does not get them adopted either.
    d.write("a/app_ver.txt", "9\n");
    d.run(["boot"], 2).says(&["not adopted"]);
    // The forged copy in `a` alone: `b` is the intact source.
    let d = Dir::mirror_device("keys-mirror-one", &["a", "b"]);
    key_file(&d, "keys/device.key", &[7u8; 32], 0o600);
    let text = d.read("rebound.toml");
    d.config(&format!(
        "device_key = \"{}\"\n{text}",
        d.path("keys/device.key").display()
    ));
    d.run(["boot"], 0);
    d.write("a/apps/app.bin", EVIL);
    for s in SLOTS {
        forge_slot(
            &d,
            &format!("a/.rebound/apps/{s}"),
            "apps/app.bin",
            EVIL,
            true,
        );
    }
    d.write("a/app_ver.txt", "9\n");
    d.run(["boot"], 0)
        .says(&["not authenticated", "version tag 9"]);
    assert_eq!(d.read("a/apps/app.bin"), "application v1\n");
    assert_eq!(d.read("a/app_ver.txt"), "1\n");
}

/// A manifest of another set (same key, same root) fails its MAC: set bound.
#[test]
fn a_manifest_copied_from_another_set_is_not_authenticated() {
    let d = Dir::golden_device("keys-other-set", &[]);
    key_file(&d, "keys/device.key", &[7u8; 32], 0o600);
    let cfg = golden_config(&d, Some("keys/device.key"), &[]);
    // A second set on the same roots, its own files.
    d.write("usr/other.conf", "other v1\n");
    d.config(&format!(
        "{cfg}\n[[set]]\nname = \"other\"\nmode = \"golden\"\nlive = \"{}\"\ngolden = \"{}\"\ninclude = [\"other.conf\"]\n",
        d.path("usr").display(),
        d.path("bak").display()
    ));
    d.run(["seal"], 0);
    // The attacker puts set `other`'s authenticated manifest, renamed, in `config`'s
    // slots (`set other` rewritten to `set config`, `end` recomputed): the body
    // now says `config`, but its MAC was made for `other`.
    for s in SLOTS {
        let t = d.read(&format!("usr/.rebound/other/{s}"));
        let body: String = t
            .lines()
            .filter(|l| !l.starts_with("end "))
            .map(|l| {
                if l == "set other" {
                    "set config\n".to_string()
                } else {
                    format!("{l}\n")
                }
            })
            .collect();
        let end = HashAlgo::Blake3.digest(body.as_bytes()).to_hex();
        d.write(
            &format!("usr/.rebound/config/{s}"),
            format!("{body}end {end}\n"),
        );
    }
    d.remove("usr/app/main.py");
    d.run(["boot", "config"], 0)
        .says(&["not authenticated by the device key", "app/main.py"]);
    assert_eq!(d.read("usr/app/main.py"), "print('v1')\n");
    d.run(["verify"], 0);
}

/// A manifest copied from another copy of the same set (an extra copy's, with its
/// valid MAC for that root) fails in live: root bound. Newer there or not, it is
/// judged as absent, and live is repaired from the authenticated copy.
#[test]
fn a_manifest_copied_from_another_replica_is_not_authenticated() {
    let d = keyed_device("keys-other-replica", &["copy"]);
    // Change the copy's content and commit it there... simpler: the attacker takes
    // the copy's slots into live, after editing live's file.
    d.write("usr/app/main.py", EVIL);
    for s in SLOTS {
        let t = d.read(&format!("copy/.rebound/config/{s}"));
        d.write(&format!("usr/.rebound/config/{s}"), t);
    }
    forge_both(&d, "usr", "app/main.py", EVIL, true);
    d.run(["boot"], 0)
        .says(&["not authenticated by the device key"]);
    assert_eq!(d.read("usr/app/main.py"), "print('v1')\n");
    // Unforged, byte for byte: the copy's slots in live are still refused.
    for s in SLOTS {
        let t = d.read(&format!("copy/.rebound/config/{s}"));
        d.write(&format!("usr/.rebound/config/{s}"), t);
    }
    d.run(["verify"], 1)
        .says(&["not authenticated by the device key"]);
    d.run(["boot"], 0);
    d.run(["verify"], 0);
}

/// Replay: an older manifest with a valid MAC (saved before a commit) put back in one
/// slot, its old file content with it, while the other slot holds the newer one: the
/// newer generation wins, the old content is repaired away.
#[test]
fn an_older_authenticated_manifest_loses_to_the_newer_one() {
    let d = keyed_device("keys-replay", &["copy"]);
    let old: Vec<String> = SLOTS
        .iter()
        .map(|s| d.read(&format!("usr/.rebound/config/{s}")))
        .collect();
    d.write("usr/app/main.py", "print('v2')\n");
    d.run(["commit", "usr/app/main.py"], 0);
    // Put the old generation back in slot 0, and the old content.
    d.write("usr/.rebound/config/manifest.0", &old[0]);
    d.write("usr/app/main.py", "print('v1')\n");
    d.run(["boot"], 0).says(&["app/main.py"]);
    assert_eq!(d.read("usr/app/main.py"), "print('v2')\n");
    d.run(["verify"], 0);
}

/// Downgrade: once the key is on, a version 2 manifest (as an old rebound or a
/// configuration without the key writes it, even one of the real content) is never
/// accepted back, and `rekey` does not launder it.
#[test]
fn a_version_2_manifest_after_keys_were_turned_on_is_refused() {
    let d = Dir::golden_device("keys-downgrade", &[]);
    d.run(["seal"], 0);
    d.run(["boot"], 0);
    assert!(d
        .read("usr/.rebound/config/manifest.0")
        .starts_with("rebound-manifest 2\n"));
    // Keys turned on without rekey: the version 2 slots are not authenticated, so the
    // files are judged against golden (here intact: nothing to repair but the slots).
    key_file(&d, "keys/device.key", &[7u8; 32], 0o600);
    d.config(&golden_config(&d, Some("keys/device.key"), &[]));
    d.run(["rekey"], 2).says(&[
        "authenticated by the configured device key",
        "nothing was written",
    ]);
    d.write("usr/app/main.py", EVIL);
    forge_both(&d, "usr", "app/main.py", EVIL, false);
    d.run(["boot"], 0)
        .says(&["not authenticated by the device key"]);
    assert_eq!(d.read("usr/app/main.py"), "print('v1')\n");
    assert!(d
        .read("usr/.rebound/config/manifest.0")
        .starts_with("rebound-manifest 3\n"));
    // A version 2 copy of the current manifest put back: refused, rewritten.
    let cur = d.read("usr/.rebound/config/manifest.1");
    let v2: String = cur
        .lines()
        .filter(|l| !l.starts_with("end ") && !l.starts_with("mac "))
        .map(|l| {
            if l == "rebound-manifest 3" {
                "rebound-manifest 2\n".to_string()
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    let end = HashAlgo::Blake3.digest(v2.as_bytes()).to_hex();
    d.write("usr/.rebound/config/manifest.1", format!("{v2}end {end}\n"));
    d.run(["verify"], 1)
        .says(&["manifest.1", "not authenticated by the device key"]);
    d.run(["boot"], 0);
    assert!(d
        .read("usr/.rebound/config/manifest.1")
        .starts_with("rebound-manifest 3\n"));
}

/// Key files that are not a secret of 32 bytes: every command refuses, naming the file
/// and the fix, and nothing is written.
#[test]
fn bad_key_files_are_refused_by_every_command() {
    let d = Dir::golden_device("keys-bad-file", &[]);
    d.config(&golden_config(&d, Some("keys/device.key"), &[]));
    // (what, the key file's bytes and mode or none, the fix the message gives)
    type Case<'a> = (&'a str, Option<(&'a [u8], u32)>, &'a str);
    let cases: [Case; 4] = [
        ("mode 644", Some((&[7u8; 32], 0o644)), "chmod 600"),
        ("31 bytes", Some((&[7u8; 31], 0o600)), "31 bytes"),
        ("33 bytes", Some((&[7u8; 33], 0o600)), "33 bytes"),
        ("missing", None, "head -c 32 /dev/urandom"),
    ];
    for (what, file, fix) in cases {
        d.remove("keys/device.key");
        if let Some((b, mode)) = file {
            key_file(&d, "keys/device.key", b, mode);
        }
        let before = d.snapshot("usr");
        for cmd in [
            &["seal"][..],
            &["boot"],
            &["verify"],
            &["status"],
            &["rekey"],
            &["check-config"],
        ] {
            d.cmd(cmd)
                .run()
                .expect_code(2)
                .says(&["device_key", "keys/device.key", fix]);
        }
        assert_eq!(before, d.snapshot("usr"), "{what}: something was written");
        assert!(!d.exists("usr/.rebound"), "{what}");
    }
    // A symbolic link to a good key is refused too (O_NOFOLLOW).
    key_file(&d, "keys/real.key", &[7u8; 32], 0o600);
    std::os::unix::fs::symlink(d.path("keys/real.key"), d.path("keys/device.key")).unwrap();
    d.run(["boot"], 2).says(&["symbolic link"]);
}

/// Turning keys on in the field: key installed, `rekey --key` under the old
/// configuration, then the new configuration. A cut between any two steps boots
/// (with the configuration of that point), and once keyed, forged manifests are
/// refused.
#[test]
fn migration_with_a_cut_between_every_step_boots() {
    let d = Dir::golden_device("keys-migrate", &["copy"]);
    let plain = golden_config(&d, None, &["copy"]);
    let keyed = golden_config(&d, Some("keys/device.key"), &["copy"]);
    d.run(["seal"], 0);
    d.write("usr/app/main.py", "print('v2')\n");
    d.run(["commit", "usr/app/main.py"], 0);
    // Cut after step 1 (key installed, nothing else): the old configuration boots.
    key_file(&d, "keys/device.key", &[9u8; 32], 0o600);
    d.run(["boot"], 0);
    // Step 2, dry run first: writes nothing.
    let before = d.snapshot("usr");
    d.run(["rekey", "--key", "keys/device.key", "--dry-run"], 0)
        .says(&["manifest"]);
    assert_eq!(before, d.snapshot("usr"));
    d.run(["rekey", "--key", "keys/device.key"], 0)
        .says(&["rekeyed"]);
    for r in ["usr", "copy"] {
        for s in SLOTS {
            let t = d.read(&format!("{r}/.rebound/config/{s}"));
            assert!(
                t.starts_with("rebound-manifest 3\n") && t.contains("\nmac "),
                "{r}/{s}"
            );
        }
    }
    // Cut after step 2: the old configuration reads version 3 by its checksum.
    d.run(["boot"], 0);
    d.run(["verify"], 0);
    assert_eq!(d.read("usr/app/main.py"), "print('v2')\n");
    // Step 3: the configuration names the key; the committed content is kept.
    d.config(&keyed);
    d.run(["check-config"], 0)
        .says(&["keys/device.key (key id "]);
    d.run(["verify"], 0);
    // The history was rekeyed too: nothing of it is taken for damaged.
    let b = d.run(["boot"], 0);
    assert!(!b.text().contains("damaged"), "{}", b.text());
    assert_eq!(d.read("usr/app/main.py"), "print('v2')\n");
    d.run(["log"], 0).says(&["rekey"]);
    // Keyed now: the attack is refused, from the extra copy (not golden: v2 is kept).
    d.write("usr/app/main.py", EVIL);
    forge_both(&d, "usr", "app/main.py", EVIL, true);
    d.run(["boot"], 0)
        .says(&["not authenticated by the device key"]);
    assert_eq!(d.read("usr/app/main.py"), "print('v2')\n");
    // The old configuration put back (a rolled-back update) still boots.
    d.config(&plain);
    d.run(["boot"], 0);
    d.run(["verify"], 0);
}

/// Rotation: old key configured, `rekey --key NEW`, then the configuration names NEW.
/// A cut before the switch boots with the old key, after it with the new; the next
/// write drops the old MAC.
#[test]
fn rotation_with_a_cut_between_every_step_boots() {
    let d = keyed_device("keys-rotate", &["copy"]);
    key_file(&d, "keys/new.key", &[8u8; 32], 0o600);
    let new_cfg = golden_config(&d, Some("keys/new.key"), &["copy"]);
    // Before rekey, the new key does not read the manifests: nothing is trusted.
    d.config(&new_cfg);
    d.run(["rekey"], 2)
        .says(&["authenticated by the configured device key"]);
    d.config(&golden_config(&d, Some("keys/device.key"), &["copy"]));
    d.run(["rekey", "--key", "keys/new.key"], 0);
    let t = d.read("usr/.rebound/config/manifest.0");
    assert_eq!(t.matches("\nmac ").count(), 2, "{t}");
    // Cut before the switch: the old key boots.
    d.run(["boot"], 0);
    d.run(["verify"], 0);
    // Switched.
    d.config(&new_cfg);
    d.run(["verify"], 0);
    d.run(["boot"], 0);
    // The next write carries only the new MAC.
    d.write("usr/app/main.py", "print('v3')\n");
    d.run(["commit", "usr/app/main.py"], 0);
    for r in ["usr", "copy"] {
        for s in SLOTS {
            let t = d.read(&format!("{r}/.rebound/config/{s}"));
            assert_eq!(t.matches("\nmac ").count(), 1, "{r}/{s}: {t}");
        }
    }
    // The old key no longer reads them.
    d.config(&golden_config(&d, Some("keys/device.key"), &["copy"]));
    d.run(["verify"], 1)
        .says(&["not authenticated by the device key"]);
}

/// `rekey` refuses while anything is damaged or lost, and writes nothing.
#[test]
fn rekey_refuses_damage_and_writes_nothing() {
    let d = keyed_device("keys-rekey-damage", &[]);
    key_file(&d, "keys/new.key", &[8u8; 32], 0o600);
    d.write("usr/system_config.json", "garbage\n");
    let before = d.snapshot("usr");
    d.run(["rekey", "--key", "keys/new.key"], 2)
        .says(&["run `rebound boot` first", "system_config.json"]);
    assert_eq!(before, d.snapshot("usr"));
    d.run(["boot"], 0);
    d.run(["rekey", "--key", "keys/new.key"], 0);
}

/// The stat cache and the history under the key: a cache without a valid MAC is no
/// cache (a full check finds the tampered file), a history record without one is
/// reported damaged and replaced.
#[test]
fn stat_cache_and_history_without_a_valid_mac_are_not_trusted() {
    let d = Dir::golden_device("keys-cache", &[]);
    key_file(&d, "keys/device.key", &[7u8; 32], 0o600);
    let cfg = golden_config(&d, Some("keys/device.key"), &[]).replace(
        "include =",
        "changed_only = true\nfull_check_every = 100\ninclude =",
    );
    d.config(&cfg);
    d.run(["seal"], 0);
    // Files changed in the last 3 seconds are not cached (statcache.rs, racy).
    std::thread::sleep(std::time::Duration::from_millis(3500));
    d.run(["boot"], 0);
    // The next boot uses the cache (its keyed counter reads): not a full check.
    let b = d.run(["boot"], 0);
    assert!(b.text().contains("4 of 4 files unchanged"), "{}", b.text());
    let cache = d.read("usr/.rebound/config/statcache");
    assert!(cache.contains("\nmac "), "{cache}");
    assert!(cache.contains(" app/main.py\n"), "{cache}");
    // The attacker rewrites a file and the cache line that vouches for it (size,
    // times, inode as they are now; the old digest), `end` recomputed.
    let m = std::fs::symlink_metadata(d.path("usr/app/main.py")).unwrap();
    d.write("usr/app/main.py", "print('v!')\n");
    let m2 = std::fs::symlink_metadata(d.path("usr/app/main.py")).unwrap();
    use std::os::unix::fs::MetadataExt;
    let ns = |s: i64, n: i64| (s as i128) * 1_000_000_000 + n as i128;
    let body: String = cache
        .lines()
        .filter(|l| !l.starts_with("end ") && !l.starts_with("mac "))
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            if f.len() == 6 && f[5] == "app/main.py" {
                assert_eq!(f[3], m.ino().to_string());
                format!(
                    "{} {} {} {} {} app/main.py\n",
                    m2.size(),
                    ns(m2.mtime(), m2.mtime_nsec()),
                    ns(m2.ctime(), m2.ctime_nsec()),
                    m2.ino(),
                    f[4]
                )
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    let end = HashAlgo::Blake3.digest(body.as_bytes()).to_hex();
    d.write(
        "usr/.rebound/config/statcache",
        format!("{body}end {end}\n"),
    );
    // The boot counter's slots too: plain records, count 1000.
    for s in ["boots.0", "boots.1"] {
        let b = "rebound-boots 1\ncount 1000\nboot-id -\n";
        d.write(
            &format!("usr/.rebound/config/{s}"),
            format!(
                "{b}end {}\n",
                HashAlgo::Blake3.digest(b.as_bytes()).to_hex()
            ),
        );
    }
    d.run(["boot"], 0).says(&[
        "app/main.py",
        "corrupt",
        "boot counter damaged",
        "not authenticated",
    ]);
    assert_eq!(d.read("usr/app/main.py"), "print('v1')\n");
    // The forged count (1000) was not continued: counting started again at 1.
    assert!(
        d.read("usr/.rebound/config/boots.1")
            .starts_with("rebound-boots 1\ncount 1\n"),
        "{}",
        d.read("usr/.rebound/config/boots.1")
    );
}

/// `rekey --key` killed before each of its writes (a power cut as far as the process
/// is concerned): the old configuration boots clean at every point, and a rerun of
/// the rekey, then the new configuration, keeps the committed content.
#[test]
fn rekey_killed_at_every_mutation_boots_and_a_rerun_completes_it() {
    let mut k = 1;
    loop {
        let d = Dir::golden_device(&format!("keys-rekey-kill-{k}"), &["copy"]);
        d.run(["seal"], 0);
        d.write("usr/app/main.py", "print('v2')\n");
        d.run(["commit", "usr/app/main.py"], 0);
        key_file(&d, "keys/device.key", &[9u8; 32], 0o600);
        if !d
            .cmd(["rekey", "--key", "keys/device.key"])
            .kill_at_mutation(k)
        {
            assert!(k > 4, "rekey made only {} writes", k - 1);
            break;
        }
        // The old configuration, with the rekey cut short.
        d.run(["boot"], 0);
        d.run(["verify"], 0);
        assert_eq!(d.read("usr/app/main.py"), "print('v2')\n", "cut at {k}");
        // Resumed: rekey again, then the configuration names the key.
        d.run(["rekey", "--key", "keys/device.key"], 0);
        d.config(&golden_config(&d, Some("keys/device.key"), &["copy"]));
        d.run(["verify"], 0);
        d.run(["boot"], 0);
        assert_eq!(d.read("usr/app/main.py"), "print('v2')\n", "cut at {k}");
        k += 1;
    }
}

/// The attack of the issue where no intact source is left (the golden copy of the
/// file damaged too): the file is lost (exit 3), left as it is, and never recorded as
/// committed.
#[test]
fn forged_with_no_intact_source_is_lost_not_accepted() {
    let d = keyed_device("keys-forged-lost", &[]);
    d.write("usr/app/main.py", EVIL);
    forge_both(&d, "usr", "app/main.py", EVIL, false);
    d.write("bak/app/main.py", "print('rotten')\n");
    d.run(["boot"], 3)
        .says(&["not authenticated by the device key", "LOST", "app/main.py"]);
    assert_eq!(d.read("usr/app/main.py"), EVIL, "left as it is");
    for s in SLOTS {
        let t = d.read(&format!("usr/.rebound/config/{s}"));
        assert!(
            !t.contains(
                &HashAlgo::Blake3
                    .digest(EVIL.as_bytes())
                    .to_hex()
                    .to_string()
            ) || !t.contains("\nmac "),
            "the forged digest was recorded under the key:\n{t}"
        );
    }
    d.run(["verify"], 3);
}
