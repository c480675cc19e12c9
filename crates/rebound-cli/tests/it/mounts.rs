//! Real filesystems: a full live filesystem (ENOSPC, on a size-limited tmpfs) and a
//! truly read-only golden copy (a loop-mounted squashfs image, and a read-only bind
//! mount). These need root and `mount`; where mounting is impossible they print
//! `SKIPPED <test>: <why>` and pass. The squashfs test needs `mksquashfs`
//! (Debian package squashfs-tools).

use std::ffi::OsStr;
use std::io::{Seek, SeekFrom, Write};

use crate::util::{mount, sh, skip, Dir};

const BIG: usize = 96 * 1024;

fn big_content() -> Vec<u8> {
    (0..BIG).map(|i| (i * 7 % 251) as u8).collect()
}

/// Fills the filesystem holding `path` until a write fails with ENOSPC.
fn fill(path: &std::path::Path) {
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0x5au8; 4096];
    loop {
        match f.write_all(&chunk) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(28) => break,
            Err(e) => panic!("filling {}: {e}", path.display()),
        }
    }
    let _ = f.sync_all();
}

/// Files below `rel` whose name is one of rebound's temporary files.
fn temp_files(d: &Dir, rel: &str) -> Vec<std::path::PathBuf> {
    d.snapshot(rel)
        .into_keys()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(".rebound-tmp-"))
        })
        .collect()
}

#[test]
fn full_live_filesystem_fails_clearly_loses_nothing_and_recovers_after_freeing_space() {
    let test = "full_live_filesystem";
    let d = Dir::golden_device("enospc", &[]);
    // Move the live files onto a 512 KiB tmpfs mounted at usr.
    std::fs::rename(d.path("usr"), d.path("usr-src")).unwrap();
    std::fs::create_dir(d.path("usr")).unwrap();
    let m = match mount(
        &[
            OsStr::new("-t"),
            OsStr::new("tmpfs"),
            OsStr::new("-o"),
            OsStr::new("size=512k,mode=755"),
            OsStr::new("tmpfs"),
        ],
        &d.path("usr"),
    ) {
        Ok(m) => m,
        Err(why) => return skip(test, &format!("cannot mount a tmpfs (needs root): {why}")),
    };
    let mut d = d;
    d.mounts.push(m);
    sh(
        "cp",
        &[
            OsStr::new("-a"),
            d.path("usr-src/.").as_os_str(),
            d.path("usr").as_os_str(),
        ],
    )
    .unwrap();
    d.write("usr/app/big.bin", big_content());
    d.run(["seal"], 0).says(&["sealed 5 files"]);

    // Damage that needs space to repair: a flipped byte in the big file (same size,
    // frees nothing) and a deleted small file; then the filesystem fills up.
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(d.path("usr/app/big.bin"))
            .unwrap();
        f.seek(SeekFrom::Start(1000)).unwrap();
        f.write_all(b"\xff\xff").unwrap();
    }
    let corrupt_big = d.read_opt("usr/app/big.bin").unwrap();
    d.remove("usr/system_config.json");
    fill(&d.path("usr/filler"));
    let intact_before = (
        d.read("usr/apn_cfg.json"),
        d.read("usr/app/main.py"),
        d.read("usr/app/lib/util.py"),
    );
    let slots_before = d.contents("usr/.rebound");

    let r = d.run(["boot"], 2);
    r.says(&["big.bin", "filesystem is full", "free space"]);
    // Nothing intact was lost or changed; the damaged file is as it was, not worse;
    // no temporary file is left taking space; the manifests are untouched.
    assert_eq!(
        intact_before,
        (
            d.read("usr/apn_cfg.json"),
            d.read("usr/app/main.py"),
            d.read("usr/app/lib/util.py"),
        )
    );
    assert_eq!(d.read_opt("usr/app/big.bin").unwrap(), corrupt_big);
    assert_eq!(temp_files(&d, "usr"), Vec::<std::path::PathBuf>::new());
    assert_eq!(slots_before, d.contents("usr/.rebound"));
    // verify still works on a full filesystem (it writes nothing).
    d.run(["verify"], 1).says(&["big.bin"]);

    // A commit on the full filesystem fails clearly too, and records nothing.
    d.write("usr/apn_cfg.json", "{\"apn\": \"x\"}\n");
    d.run(["commit", "usr/apn_cfg.json"], 2)
        .says(&["filesystem is full"]);
    assert_eq!(slots_before, d.contents("usr/.rebound"));
    d.write("usr/apn_cfg.json", &intact_before.0);

    // Space freed: the next boot repairs everything.
    d.remove("usr/filler");
    d.run(["boot"], 0).says(&["big.bin", "result: repaired"]);
    assert_eq!(d.read_opt("usr/app/big.bin").unwrap(), big_content());
    assert_eq!(d.read("usr/system_config.json"), "{\"volume\": 5}\n");
    assert_eq!(temp_files(&d, "usr"), Vec::<std::path::PathBuf>::new());
    d.run(["verify"], 0);
}

/// Damages live the seed's ways, boots from the read-only golden copy, and checks
/// verify, and that nothing can write the golden copy.
fn boot_from_read_only_golden(d: &Dir) {
    let golden = d.snapshot("bak");
    d.remove("usr/.rebound");
    d.remove("usr/app/main.py");
    d.write("usr/apn_cfg.json", "corrupted");
    d.run(["verify"], 1);
    d.run(["boot"], 0)
        .says(&["golden manifest", "(golden)", "result: repaired"]);
    assert_eq!(d.read("usr/app/main.py"), "print('v1')\n");
    assert_eq!(d.read("usr/apn_cfg.json"), "{\"apn\": \"factory\"}\n");
    d.run(["verify"], 0).says(&["result: intact"]);
    d.run(["status"], 0).says(&["sealed"]);
    // A reseal must fail cleanly on the read-only golden copy.
    d.run(["seal", "--force"], 2).says(&["read-only"]);
    assert_eq!(golden, d.snapshot("bak"));
    d.run(["boot"], 0).says(&["result: intact"]);
}

#[test]
fn golden_on_a_loop_mounted_squashfs_image_restores_and_verifies() {
    let test = "golden_on_squashfs";
    let d = Dir::golden_device("squashfs", &[]);
    d.run(["seal"], 0);
    let img = d.path("golden.squashfs");
    if let Err(why) = sh(
        "mksquashfs",
        &[
            d.path("bak").as_os_str(),
            img.as_os_str(),
            OsStr::new("-noappend"),
            OsStr::new("-quiet"),
        ],
    ) {
        return skip(test, &format!("{why} (install squashfs-tools)"));
    }
    std::fs::remove_dir_all(d.path("bak")).unwrap();
    std::fs::create_dir(d.path("bak")).unwrap();
    let m = match mount(
        &[OsStr::new("-o"), OsStr::new("loop,ro"), img.as_os_str()],
        &d.path("bak"),
    ) {
        Ok(m) => m,
        Err(why) => return skip(test, &format!("cannot loop-mount (needs root): {why}")),
    };
    let mut d = d;
    d.mounts.push(m);
    assert!(
        std::fs::write(d.path("bak/probe"), "x").is_err(),
        "squashfs is writable?"
    );
    boot_from_read_only_golden(&d);
}

#[test]
fn golden_on_a_read_only_bind_mount_restores_and_verifies() {
    let test = "golden_on_ro_bind_mount";
    let d = Dir::golden_device("robind", &[]);
    d.run(["seal"], 0);
    std::fs::rename(d.path("bak"), d.path("bak-src")).unwrap();
    std::fs::create_dir(d.path("bak")).unwrap();
    let m = match mount(
        &[OsStr::new("--bind"), d.path("bak-src").as_os_str()],
        &d.path("bak"),
    ) {
        Ok(m) => m,
        Err(why) => return skip(test, &format!("cannot bind-mount (needs root): {why}")),
    };
    let mut d = d;
    d.mounts.push(m);
    if let Err(why) = sh(
        "mount",
        &[
            OsStr::new("-o"),
            OsStr::new("remount,ro,bind"),
            d.path("bak").as_os_str(),
        ],
    ) {
        return skip(test, &format!("cannot remount read-only: {why}"));
    }
    assert!(
        std::fs::write(d.path("bak/probe"), "x").is_err(),
        "bind mount is writable?"
    );
    boot_from_read_only_golden(&d);
}

#[test]
fn read_only_live_filesystem_is_exit_2_saying_so_and_verify_still_works() {
    let test = "read_only_live";
    let d = Dir::golden_device("rolive", &[]);
    d.run(["seal"], 0);
    d.remove("usr/app/main.py");
    std::fs::rename(d.path("usr"), d.path("usr-src")).unwrap();
    std::fs::create_dir(d.path("usr")).unwrap();
    let m = match mount(
        &[OsStr::new("--bind"), d.path("usr-src").as_os_str()],
        &d.path("usr"),
    ) {
        Ok(m) => m,
        Err(why) => return skip(test, &format!("cannot bind-mount (needs root): {why}")),
    };
    let mut d = d;
    d.mounts.push(m);
    if let Err(why) = sh(
        "mount",
        &[
            OsStr::new("-o"),
            OsStr::new("remount,ro,bind"),
            d.path("usr").as_os_str(),
        ],
    ) {
        return skip(test, &format!("cannot remount read-only: {why}"));
    }
    d.run(["verify"], 1).says(&["main.py: missing"]);
    d.run(["boot"], 2)
        .says(&["main.py", "read-only", "remount it read-write"]);
    assert!(!d.exists("usr/app/main.py"));
    // Remounted read-write, the next boot repairs.
    sh(
        "mount",
        &[
            OsStr::new("-o"),
            OsStr::new("remount,rw,bind"),
            d.path("usr").as_os_str(),
        ],
    )
    .unwrap();
    d.run(["boot"], 0).says(&["result: repaired"]);
    assert_eq!(d.read("usr/app/main.py"), "print('v1')\n");
}

#[test]
fn full_backup_partition_during_a_mirror_sync_loses_nothing_and_completes_later() {
    let test = "full_backup_partition";
    let d = Dir::mirror_device("enospc-mirror", &[crate::util::SYS, crate::util::DATA]);
    std::fs::create_dir_all(d.path("usrdata")).unwrap();
    let m = match mount(
        &[
            OsStr::new("-t"),
            OsStr::new("tmpfs"),
            OsStr::new("-o"),
            OsStr::new("size=256k"),
            OsStr::new("tmpfs"),
        ],
        &d.path("usrdata"),
    ) {
        Ok(m) => m,
        Err(why) => return skip(test, &format!("cannot mount a tmpfs (needs root): {why}")),
    };
    let mut d = d;
    d.mounts.push(m);
    d.run(["boot"], 0);
    // An upgrade on the system side, too big for what is left on the backup side.
    let sys = crate::util::SYS;
    let data = crate::util::DATA;
    d.write(&format!("{sys}/apps/app.bin"), big_content());
    d.write(&format!("{sys}/app_ver.txt"), "2\n");
    fill(&d.path("usrdata/filler"));
    let backup_before = d.contents(data);
    d.run(["boot"], 2).says(&["app.bin", "filesystem is full"]);
    // The system side (the source) is untouched; the backup side still holds its
    // complete old version and its old tag: it never claims version 2.
    assert_eq!(
        d.read_opt(&format!("{sys}/apps/app.bin")).unwrap(),
        big_content()
    );
    let backup_after = d.contents(data);
    assert_eq!(
        backup_before.get(std::path::Path::new("apps/app.bin")),
        backup_after.get(std::path::Path::new("apps/app.bin"))
    );
    assert_eq!(d.read(&format!("{data}/app_ver.txt")).trim(), "1");
    assert_eq!(temp_files(&d, data), Vec::<std::path::PathBuf>::new());
    d.remove("usrdata/filler");
    d.run(["boot"], 0).says(&["result: repaired"]);
    assert_eq!(
        d.read_opt(&format!("{data}/apps/app.bin")).unwrap(),
        big_content()
    );
    assert_eq!(d.read(&format!("{data}/app_ver.txt")).trim(), "2");
    d.run(["verify"], 0);
}
