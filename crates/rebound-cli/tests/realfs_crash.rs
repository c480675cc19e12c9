//! Layer 2 of the crash tests: the real binary on real filesystems (ext4 mounted with
//! `noauto_da_alloc,data=ordered`, xfs, btrfs) on loop devices. The binary is built
//! with the `fault-injection` feature and `REBOUND_FAULT_PAUSE_AT=k` pauses it before
//! its k-th mutating filesystem operation; the test then cuts the "power" with the
//! shutdown ioctl without journal flush (`xfs_io -x -c shutdown`, the ioctl shared by
//! ext4 and xfs), kills the process, unmounts, mounts again (journal replay), runs
//! `rebound boot` and checks the invariant: every protected file holds exactly its old
//! or its new content (all-or-nothing for `update`), a change whose command had
//! completed is never undone, `verify` exits 0 and a second boot plans nothing.
//!
//! btrfs on this kernel has no shutdown ioctl: there the cut is a kill of the process
//! only (a crash of rebound, not of the kernel), and the report says so.
//!
//! Needs root, loop devices, mkfs.* and xfs_io (package xfsprogs); skips with a message
//! otherwise. Default: every 3rd crash point; `REBOUND_REALFS_FULL=1`: every one.

// Test code: a failed unwrap is a failed test, which is what we want.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_rebound");

fn sh(cmd: &str, args: &[&str]) -> bool {
    Command::new(cmd)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn have(cmd: &str) -> bool {
    sh("sh", &["-c", &format!("command -v {cmd}")])
}

/// Why this machine cannot run the tests, if it cannot.
fn unavailable() -> Option<String> {
    if !sh("sh", &["-c", "test \"$(id -u)\" = 0"]) {
        return Some("not root".into());
    }
    for c in ["losetup", "mount", "umount", "mkfs.ext4", "xfs_io"] {
        if !have(c) {
            return Some(format!("{c} not found (install e2fsprogs, xfsprogs)"));
        }
    }
    if !sh("losetup", &["-f"]) {
        return Some("no free loop device".into());
    }
    None
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FsType {
    Ext4,
    Xfs,
    Btrfs,
}

impl FsType {
    fn name(self) -> &'static str {
        match self {
            FsType::Ext4 => "ext4",
            FsType::Xfs => "xfs",
            FsType::Btrfs => "btrfs",
        }
    }
    fn mkfs(self, img: &Path) -> bool {
        let img = img.to_str().unwrap();
        match self {
            FsType::Ext4 => sh("mkfs.ext4", &["-q", "-F", img]),
            FsType::Xfs => sh("mkfs.xfs", &["-q", "-f", img]),
            FsType::Btrfs => sh("mkfs.btrfs", &["-q", "-f", img]),
        }
    }
    fn size(self) -> &'static str {
        match self {
            FsType::Ext4 => "64M",
            FsType::Xfs => "320M",
            FsType::Btrfs => "160M",
        }
    }
    fn options(self) -> &'static str {
        match self {
            FsType::Ext4 => "loop,noauto_da_alloc,data=ordered",
            FsType::Xfs | FsType::Btrfs => "loop",
        }
    }
}

/// Two loop-mounted filesystems (the two partitions of a device), unmounted on drop.
struct Device {
    fs: FsType,
    dir: tempfile::TempDir,
    /// Whether the shutdown ioctl works here (a real kernel-crash model).
    shutdown: bool,
}

impl Device {
    fn img(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("part{i}.img"))
    }
    fn base(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("base{i}.img"))
    }
    fn mnt(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("p{i}"))
    }
    fn config(&self) -> PathBuf {
        self.dir.path().join("rebound.toml")
    }

    fn new(fs: FsType) -> Option<Device> {
        let mkfs = match fs {
            FsType::Ext4 => "mkfs.ext4",
            FsType::Xfs => "mkfs.xfs",
            FsType::Btrfs => "mkfs.btrfs",
        };
        if !have(mkfs) {
            println!("SKIP {}: {mkfs} not found", fs.name());
            return None;
        }
        let d = Device {
            fs,
            dir: tempfile::tempdir().unwrap(),
            shutdown: false,
        };
        for i in 0..2 {
            std::fs::create_dir_all(d.mnt(i)).unwrap();
            assert!(sh(
                "truncate",
                &["-s", fs.size(), d.img(i).to_str().unwrap()]
            ));
            assert!(fs.mkfs(&d.img(i)), "mkfs.{} failed", fs.name());
        }
        Some(d)
    }

    fn mount(&self) {
        for i in 0..2 {
            let ok = sh(
                "mount",
                &[
                    "-o",
                    self.fs.options(),
                    self.img(i).to_str().unwrap(),
                    self.mnt(i).to_str().unwrap(),
                ],
            );
            assert!(ok, "mount {} failed", self.img(i).display());
        }
    }

    fn umount(&self) {
        for i in 0..2 {
            let m = self.mnt(i);
            // Not `mountpoint`: it stats the directory, which fails with EIO on a
            // filesystem that was shut down.
            let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
            let target = format!(" {} ", m.display());
            if mounts.lines().any(|l| l.contains(&target)) && !sh("umount", &[m.to_str().unwrap()])
            {
                sh("umount", &["-l", m.to_str().unwrap()]);
            }
        }
    }

    /// Cuts the power: both filesystems stop without flushing their journals.
    fn cut(&self) {
        if self.shutdown {
            for i in 0..2 {
                sh(
                    "xfs_io",
                    &["-x", "-c", "shutdown", self.mnt(i).to_str().unwrap()],
                );
            }
        }
    }

    fn save_base(&self) {
        self.umount();
        for i in 0..2 {
            std::fs::copy(self.img(i), self.base(i)).unwrap();
        }
    }

    fn restore_base(&self) {
        self.umount();
        for i in 0..2 {
            assert!(sh(
                "cp",
                &[
                    "--sparse=always",
                    self.base(i).to_str().unwrap(),
                    self.img(i).to_str().unwrap()
                ]
            ));
        }
        self.mount();
    }

    fn rebound(&self, args: &[&str]) -> std::process::Output {
        Command::new(BIN)
            .arg("-c")
            .arg(self.config())
            .args(args)
            .env_remove("REBOUND_FAULT_PAUSE_AT")
            .env_remove("REBOUND_FAULT_SKIP_SYNC")
            .output()
            .unwrap()
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        self.umount();
    }
}

/// One scenario: how to prepare the device, the command whose crash points are cut,
/// and the content allowed afterwards.
struct Scenario {
    name: &'static str,
    prepare: fn(&Device),
    args: fn(&Device) -> Vec<String>,
    old: BTreeMap<String, Vec<u8>>,
    new: BTreeMap<String, Vec<u8>>,
    atomic: bool,
}

fn content(i: usize, version: u32) -> Vec<u8> {
    let len = 1024 * (1 + (i * 7) % 48);
    (0..len)
        .map(|b| (b as u32 * 31 + i as u32 * 7 + version) as u8)
        .collect()
}

fn apps(version: u32, n: usize) -> BTreeMap<String, Vec<u8>> {
    (0..n)
        .map(|i| (format!("apps/f{i:02}.bin"), content(i, version)))
        .collect()
}

fn write_tree(root: &Path, files: &BTreeMap<String, Vec<u8>>) {
    for (p, c) in files {
        let p = root.join(p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, c).unwrap();
    }
}

fn mirror_config(d: &Device) {
    std::fs::write(
        d.config(),
        format!(
            "[[set]]\nname = \"apps\"\nmode = \"mirror\"\nreplicas = [\"{}\", \"{}\"]\ninclude = [\"apps/**\"]\nversion_file = \"app_ver.txt\"\n",
            d.mnt(0).join("apprun").display(),
            d.mnt(1).join("appbackup").display()
        ),
    )
    .unwrap();
}

fn scenarios() -> Vec<Scenario> {
    let n = 8;
    let mut updated = apps(1, n);
    for i in [1, 4] {
        updated.insert(format!("apps/f{i:02}.bin"), content(i, 3));
    }
    updated.insert("apps/new.bin".into(), content(99, 3));
    let mut committed = apps(1, n);
    committed.insert("apps/f02.bin".into(), content(2, 2));
    vec![
        Scenario {
            name: "boot: first sync to an empty backup partition",
            prepare: |d| {
                mirror_config(d);
                write_tree(&d.mnt(0).join("apprun"), &apps(1, 8));
                std::fs::write(d.mnt(0).join("apprun/app_ver.txt"), "1\n").unwrap();
            },
            args: |_| vec!["boot".into()],
            old: apps(1, n),
            new: apps(1, n),
            atomic: false,
        },
        Scenario {
            name: "update of three files",
            prepare: |d| {
                mirror_config(d);
                write_tree(&d.mnt(0).join("apprun"), &apps(1, 8));
                std::fs::write(d.mnt(0).join("apprun/app_ver.txt"), "1\n").unwrap();
                assert!(d.rebound(&["boot"]).status.success());
                let mut fota = BTreeMap::new();
                for i in [1, 4] {
                    fota.insert(format!("apps/f{i:02}.bin"), content(i, 3));
                }
                fota.insert("apps/new.bin".into(), content(99, 3));
                write_tree(&d.dir.path().join("fota"), &fota);
            },
            args: |d| {
                vec![
                    "update".into(),
                    "apps".into(),
                    "--from".into(),
                    d.dir.path().join("fota").display().to_string(),
                ]
            },
            old: apps(1, n),
            new: updated,
            atomic: true,
        },
        Scenario {
            name: "commit of an edited file",
            prepare: |d| {
                mirror_config(d);
                write_tree(&d.mnt(0).join("apprun"), &apps(1, 8));
                std::fs::write(d.mnt(0).join("apprun/app_ver.txt"), "1\n").unwrap();
                assert!(d.rebound(&["boot"]).status.success());
                std::fs::write(d.mnt(0).join("apprun/apps/f02.bin"), content(2, 2)).unwrap();
                sh("sync", &[]);
            },
            args: |d| {
                vec![
                    "commit".into(),
                    d.mnt(0).join("apprun/apps/f02.bin").display().to_string(),
                ]
            },
            old: apps(1, n),
            new: committed,
            atomic: false,
        },
    ]
}

/// Checks the invariant after recovery; `Err` describes the violation.
fn check(d: &Device, s: &Scenario, completed: bool) -> Result<(), String> {
    let mut paths: Vec<&String> = s.old.keys().chain(s.new.keys()).collect();
    paths.sort();
    paths.dedup();
    let (mut all_old, mut all_new) = (true, true);
    for root in [d.mnt(0).join("apprun"), d.mnt(1).join("appbackup")] {
        for p in &paths {
            let got = std::fs::read(root.join(p)).ok();
            let is_old = got.as_ref() == s.old.get(*p);
            let is_new = got.as_ref() == s.new.get(*p);
            if !is_old && !is_new {
                return Err(format!(
                    "{}/{p}: neither old nor new content ({} bytes)",
                    root.display(),
                    got.map_or(-1, |g| g.len() as i64)
                ));
            }
            all_old &= is_old;
            all_new &= is_new;
            if completed && !is_new {
                return Err(format!(
                    "{}/{p}: a completed change was undone",
                    root.display()
                ));
            }
        }
    }
    if s.atomic && !all_old && !all_new {
        return Err("update left a mix of old and new files".into());
    }
    let v = d.rebound(&["verify"]);
    if v.status.code() != Some(0) {
        return Err(format!(
            "verify exits {:?}: {}",
            v.status.code(),
            String::from_utf8_lossy(&v.stdout)
        ));
    }
    let b = d.rebound(&["boot", "--json"]);
    let j: serde_json::Value = serde_json::from_slice(&b.stdout).map_err(|e| e.to_string())?;
    for set in j["sets"].as_array().into_iter().flatten() {
        if set["plan"]["actions"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
        {
            return Err(format!(
                "a second boot still acts: {}",
                set["plan"]["actions"]
            ));
        }
    }
    Ok(())
}

/// Runs the scenario's command paused before mutation `k`; returns whether it completed
/// without reaching `k` (and its exit status if so).
fn run_until(d: &Device, s: &Scenario, k: u64, skip_sync: bool) -> Option<i32> {
    let mut c = Command::new(BIN);
    c.arg("-c").arg(d.config()).args((s.args)(d));
    c.env("REBOUND_FAULT_PAUSE_AT", k.to_string());
    if skip_sync {
        c.env("REBOUND_FAULT_SKIP_SYNC", "1");
    }
    let mut child = c
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("fault-injection: paused") {
                let _ = tx.send(());
            }
        }
    });
    let paused = rx.recv_timeout(Duration::from_secs(60)).is_ok();
    if paused {
        d.cut();
        let _ = child.kill();
        let _ = child.wait();
        None
    } else {
        let st = child.wait().unwrap();
        // Completed: cut right away, so only what it made durable survives.
        d.cut();
        Some(st.code().unwrap_or(-1))
    }
}

#[derive(Default)]
struct Tally {
    cuts: u64,
    violations: Vec<String>,
}

fn explore(fs: FsType, s: &Scenario, stride: u64, skip_sync: bool) -> Option<Tally> {
    let mut d = Device::new(fs)?;
    d.mount();
    d.shutdown = sh(
        "xfs_io",
        &["-x", "-c", "shutdown -f", d.mnt(0).to_str().unwrap()],
    );
    // The probe shut the filesystem down (with a flush): start again from a fresh one.
    d.umount();
    for i in 0..2 {
        assert!(fs.mkfs(&d.img(i)));
    }
    d.mount();
    (s.prepare)(&d);
    d.save_base();
    let mut t = Tally::default();
    let mut k = 1;
    loop {
        d.restore_base();
        let done = run_until(&d, s, k, skip_sync);
        t.cuts += 1;
        d.umount();
        d.mount();
        let rec = d.rebound(&["boot"]);
        let completed = matches!(done, Some(0));
        let outcome = if rec.status.code() != Some(0) {
            Err(format!(
                "recovery boot exits {:?}: {}{}",
                rec.status.code(),
                String::from_utf8_lossy(&rec.stdout),
                String::from_utf8_lossy(&rec.stderr)
            ))
        } else {
            check(&d, s, completed)
        };
        if let Err(v) = outcome {
            t.violations.push(format!(
                "{} / {}: {}: {v}",
                fs.name(),
                s.name,
                if done.is_some() {
                    "cut after the command completed".to_string()
                } else {
                    format!("cut before mutation {k}")
                }
            ));
        }
        if done.is_some() {
            break;
        }
        k += stride;
    }
    Some(t)
}

fn stride() -> u64 {
    if std::env::var_os("REBOUND_REALFS_FULL").is_some() {
        1
    } else {
        3
    }
}

#[test]
fn power_cuts_on_real_filesystems_keep_the_invariant() {
    if let Some(why) = unavailable() {
        println!("SKIP real-filesystem crash tests: {why}");
        return;
    }
    let mut all = Vec::new();
    println!("| filesystem | scenario | cut model | cuts | violations |");
    println!("|---|---|---|---|---|");
    for fs in [FsType::Ext4, FsType::Xfs, FsType::Btrfs] {
        for s in scenarios() {
            let Some(t) = explore(fs, &s, stride(), false) else {
                continue;
            };
            let model = if fs == FsType::Btrfs {
                "process kill only"
            } else {
                "shutdown ioctl, no log flush"
            };
            println!(
                "| {} | {} | {model} | {} | {} |",
                fs.name(),
                s.name,
                t.cuts,
                t.violations.len()
            );
            all.extend(t.violations);
        }
    }
    assert!(
        all.is_empty(),
        "{} violations:\n{}",
        all.len(),
        all.join("\n")
    );
}

#[test]
fn skipping_fsync_loses_data_and_the_harness_sees_it() {
    if let Some(why) = unavailable() {
        println!("SKIP real-filesystem crash tests: {why}");
        return;
    }
    let s = scenarios()
        .into_iter()
        .find(|s| s.name.starts_with("update"))
        .unwrap();
    let t = explore(FsType::Ext4, &s, 1, true).unwrap();
    println!(
        "ext4 with REBOUND_FAULT_SKIP_SYNC=1: {} cuts, {} violations",
        t.cuts,
        t.violations.len()
    );
    if let Some(v) = t.violations.first() {
        println!("first: {v}");
    }
    assert!(
        !t.violations.is_empty(),
        "a build that skips every fsync must lose data under a cut"
    );
}
