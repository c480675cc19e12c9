//! Layer 2 of the crash tests (issue 4): the real `rebound` binary on real
//! filesystems, ext4 (mounted `noauto_da_alloc,data=ordered`), xfs and btrfs, each
//! partition of the simulated device on its own loop device.
//!
//! The binary is built with the `fault-injection` feature: `REBOUND_FAULT_PAUSE_AT=k`
//! makes it print `rebound: fault-injection: paused before mutation k` and sleep before
//! its k-th mutating filesystem operation (create, rename, remove, mkdir, fsync). At
//! that instant the test cuts the power of the whole device (every writable
//! partition at once), kills the paused process, unmounts, mounts again (journal
//! replay), runs `rebound boot` and checks the invariant:
//! - every protected file of every writable replica holds exactly its old or its new
//!   content (an `update` all of one or all of the other; a `boot` the authoritative
//!   content), and the new one if the command had completed before the cut;
//! - the golden copy (a read-only mount) is unchanged;
//! - the recovery boot exits 0, `rebound verify` exits 0, and a second
//!   `rebound boot --json` plans nothing.
//!
//! How the power is cut (see docs/realfs.md):
//! - ext4, xfs: the shutdown ioctl 0x8004587d (`EXT4_IOC_SHUTDOWN`,
//!   `XFS_IOC_GOINGDOWN`) with flag 2 (`NOLOGFLUSH`): the filesystem stops at once,
//!   nothing it had not yet written reaches the disk, the journal is not flushed.
//! - btrfs has no shutdown ioctl on the kernels we run (ENOTTY; the probe below
//!   detects it and uses the ioctl where a kernel has it): the cut copies the loop
//!   device's backing image while the filesystem is still mounted and the process
//!   paused, i.e. exactly what btrfs had sent to the "disk", and the copy is what
//!   mounts next.
//!
//! Each crash point is cut two ways: plainly, and after an unrelated file on the same
//! filesystem was fsynced (another program on the device doing its own fsync), which
//! commits the running journal transaction: every rename and create rebound made so
//! far becomes durable while its unsynced data does not. That second state is the one
//! that shows a missing fsync (a renamed file with no data).
//!
//! Needs root, loop devices and mkfs.ext4; xfs and btrfs are skipped with a message
//! when mkfs.xfs or mkfs.btrfs is missing, the whole test when loop devices or root
//! are unavailable. The default run cuts about ten points per scenario and
//! filesystem (a different subset on each filesystem); `REBOUND_REALFS_FULL=1` cuts
//! every point both ways. `REBOUND_REALFS_FS=ext4,xfs` restricts the filesystems.
//! Mounts and loop devices are released by a `Drop` guard, also when a test fails.

// Test code: a failed unwrap is a failed test, which is what we want.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Says why a test is skipped, past the test harness's output capture (which would
/// swallow a `println!` unless run with `--nocapture`), so that CI logs show it.
macro_rules! skip {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($t)*);
    }};
}

#[path = "common/bin.rs"]
mod bin;
use bin::bin_command;

/// Crash points cut per scenario and filesystem in the default (bounded) run.
const DEFAULT_POINTS: u64 = 10;

/// How long a command may take to reach its pause or finish before the test gives up
/// on it (a hang is a failure, not a timing assertion: the margin is huge).
const COMMAND_DEADLINE: Duration = Duration::from_secs(300);

// ---------------------------------------------------------------------------------
// Running external commands

/// Runs a command; `Err` carries its stderr (or why it could not start).
fn run(cmd: &str, args: &[&str]) -> Result<(), String> {
    match Command::new(cmd).args(args).stdin(Stdio::null()).output() {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!(
            "{cmd} {}: {}: {}",
            args.join(" "),
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Err(format!("{cmd}: {e}")),
    }
}

fn ok(cmd: &str, args: &[&str]) -> bool {
    run(cmd, args).is_ok()
}

fn have(cmd: &str) -> bool {
    ok("sh", &["-c", &format!("command -v {cmd} >/dev/null")])
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Whether a filesystem is mounted at `mnt` (per /proc/self/mounts; our paths have no
/// characters that the table escapes).
fn is_mounted(mnt: &Path) -> bool {
    std::fs::read_to_string("/proc/self/mounts")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split(' ').nth(1) == Some(s(mnt)))
}

// ---------------------------------------------------------------------------------
// Filesystems and how their power is cut

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FsType {
    Ext4,
    Xfs,
    Btrfs,
}

impl FsType {
    const ALL: [FsType; 3] = [FsType::Ext4, FsType::Xfs, FsType::Btrfs];

    fn name(self) -> &'static str {
        match self {
            FsType::Ext4 => "ext4",
            FsType::Xfs => "xfs",
            FsType::Btrfs => "btrfs",
        }
    }

    fn mkfs_tool(self) -> &'static str {
        match self {
            FsType::Ext4 => "mkfs.ext4",
            FsType::Xfs => "mkfs.xfs",
            FsType::Btrfs => "mkfs.btrfs",
        }
    }

    fn mkfs(self, img: &Path) -> Result<(), String> {
        match self {
            FsType::Ext4 => run("mkfs.ext4", &["-q", "-F", s(img)]),
            FsType::Xfs => run("mkfs.xfs", &["-q", "-f", s(img)]),
            FsType::Btrfs => run("mkfs.btrfs", &["-q", "-f", s(img)]),
        }
    }

    /// Image size: the smallest each mkfs accepts comfortably (images are sparse).
    fn size(self) -> &'static str {
        match self {
            FsType::Ext4 => "64M",
            FsType::Xfs => "320M",
            FsType::Btrfs => "160M",
        }
    }

    /// Mount options. ext4: `noauto_da_alloc` turns off the heuristic that flushes a
    /// file's data when it is renamed over another, which otherwise hides a missing
    /// fsync; `data=ordered` is the default, stated for clarity.
    fn options(self) -> &'static str {
        match self {
            FsType::Ext4 => "noauto_da_alloc,data=ordered",
            FsType::Xfs | FsType::Btrfs => "",
        }
    }

    /// The filesystems this run covers (`REBOUND_REALFS_FS=ext4,xfs` restricts them).
    fn selected() -> Vec<FsType> {
        let only = std::env::var("REBOUND_REALFS_FS").ok();
        FsType::ALL
            .into_iter()
            .filter(|f| {
                only.as_deref()
                    .is_none_or(|o| o.split(',').any(|n| n.trim() == f.name()))
            })
            .collect()
    }
}

/// The shutdown ioctl, `_IOR('X', 125, __u32)`, shared by ext4 and xfs.
const SHUTDOWN_IOCTL: &str = "0x8004587d";
/// Its flag `NOLOGFLUSH`: stop without writing the journal/log out.
const SHUTDOWN_NOLOGFLUSH: &str = "2";

/// A program that issues the shutdown ioctl for the test.
#[derive(Clone, Copy, Debug)]
enum IoctlTool {
    /// `xfs_io -x -c shutdown` (xfsprogs): without `-f` it passes flag 2.
    XfsIo,
    /// Python's `fcntl.ioctl`, with the number and flag spelled out.
    Python,
}

/// Issues the shutdown ioctl on the filesystem mounted at `mnt`.
///
/// The workspace forbids `unsafe` code in every target (`unsafe_code = "forbid"` in
/// the workspace lints cannot be relaxed by an `allow` in a test), and no safe Rust
/// wrapper for this ioctl exists; so the one ioctl call runs in a helper process:
/// `xfs_io` (fast), else python3 (slower to start, but on every machine of this kind).
fn shutdown(mnt: &Path) -> Result<(), String> {
    static TOOL: std::sync::OnceLock<Option<IoctlTool>> = std::sync::OnceLock::new();
    let tool = TOOL.get_or_init(|| {
        if have("xfs_io") {
            Some(IoctlTool::XfsIo)
        } else if have("python3") {
            Some(IoctlTool::Python)
        } else {
            None
        }
    });
    match tool {
        Some(IoctlTool::XfsIo) => run("xfs_io", &["-x", "-c", "shutdown", s(mnt)]),
        Some(IoctlTool::Python) => {
            let script = format!(
                "import fcntl, os, struct, sys\n\
                 fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)\n\
                 fcntl.ioctl(fd, {SHUTDOWN_IOCTL}, struct.pack('I', {SHUTDOWN_NOLOGFLUSH}))\n"
            );
            run("python3", &["-c", &script, s(mnt)])
        }
        None => Err("neither xfs_io nor python3 is available to issue the ioctl".into()),
    }
}

/// How a power cut is made on one filesystem type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CutModel {
    /// The shutdown ioctl with `NOLOGFLUSH`.
    Shutdown,
    /// A copy of the backing image taken while mounted (what reached the "disk").
    ImageCopy,
}

impl CutModel {
    fn describe(self) -> &'static str {
        match self {
            CutModel::Shutdown => "shutdown ioctl, no log flush",
            CutModel::ImageCopy => "copy of the device image while mounted",
        }
    }

    /// Probes a scratch filesystem of type `fs`: the ioctl where it works, else the
    /// image copy (saying why).
    fn detect(fs: FsType, scratch: &Path) -> Result<CutModel, String> {
        let img = scratch.join(format!("probe-{}.img", fs.name()));
        let mnt = scratch.join(format!("probe-{}", fs.name()));
        std::fs::create_dir_all(&mnt).unwrap();
        run("truncate", &["-s", fs.size(), s(&img)])?;
        fs.mkfs(&img)?;
        let mut part = Part {
            img: img.clone(),
            mnt: mnt.clone(),
            fs,
            read_only: false,
        };
        part.mount()?;
        let r = shutdown(&mnt);
        part.umount();
        let _ = std::fs::remove_file(&img);
        match r {
            Ok(()) => Ok(CutModel::Shutdown),
            Err(e) => {
                println!(
                    "NOTE {}: the shutdown ioctl is not available ({e}); power cuts are made by copying the device image while mounted instead",
                    fs.name()
                );
                Ok(CutModel::ImageCopy)
            }
        }
    }
}

/// The two ways each crash point is cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cut {
    /// Cut right at the pause.
    Plain,
    /// Another program fsyncs its own file on each filesystem first (committing the
    /// running journal transaction, with rebound's unsynced renames in it), then cut.
    AfterForeignFsync,
}

impl Cut {
    fn name(self) -> &'static str {
        match self {
            Cut::Plain => "plain cut",
            Cut::AfterForeignFsync => "cut after a foreign fsync",
        }
    }
}

// ---------------------------------------------------------------------------------
// The device: loop-mounted partitions, released on drop

/// One loop-mounted filesystem image.
#[derive(Debug)]
struct Part {
    img: PathBuf,
    mnt: PathBuf,
    fs: FsType,
    /// Mounted read-only after preparation (a golden partition).
    read_only: bool,
}

impl Part {
    fn mount(&mut self) -> Result<(), String> {
        let mut opts = vec!["loop"];
        if !self.fs.options().is_empty() {
            opts.push(self.fs.options());
        }
        if self.read_only {
            opts.push("ro");
        }
        run(
            "mount",
            &["-o", &opts.join(","), s(&self.img), s(&self.mnt)],
        )?;
        Ok(())
    }

    /// Unmounts (lazily if busy) and detaches any loop device still backed by the image.
    fn umount(&mut self) {
        // The kernel's mount table, not `mountpoint`: after a shutdown ioctl, stat on the
        // mount point fails with EIO and `mountpoint` would say "not mounted".
        if is_mounted(&self.mnt) && !ok("umount", &[s(&self.mnt)]) {
            let _ = run("umount", &["-l", s(&self.mnt)]);
        }
        // `mount -o loop` sets autoclear; a lazy unmount or a failed mount can still
        // leave a device behind.
        if let Ok(o) = Command::new("losetup").args(["-j", s(&self.img)]).output() {
            for line in String::from_utf8_lossy(&o.stdout).lines() {
                if let Some((dev, _)) = line.split_once(':') {
                    let _ = run("losetup", &["-d", dev]);
                }
            }
        }
    }

    fn base(&self) -> PathBuf {
        self.img.with_extension("base")
    }

    fn crash_copy(&self) -> PathBuf {
        self.img.with_extension("crash")
    }
}

/// A simulated device: a temporary directory holding the partition images, their
/// mount points, the configuration and the update source (on the host filesystem,
/// never cut).
struct Device {
    cut_model: CutModel,
    parts: Vec<Part>,
    dir: tempfile::TempDir,
}

impl Device {
    /// Creates, formats and mounts `n` partitions of type `fs`.
    fn new(fs: FsType, cut_model: CutModel, n: usize) -> Device {
        let dir = tempfile::Builder::new()
            .prefix("rebound-realfs-")
            .tempdir()
            .unwrap();
        let mut d = Device {
            cut_model,
            parts: Vec::new(),
            dir,
        };
        for i in 0..n {
            let part = Part {
                img: d.dir.path().join(format!("part{i}.img")),
                mnt: d.dir.path().join(format!("p{i}")),
                fs,
                read_only: false,
            };
            std::fs::create_dir_all(&part.mnt).unwrap();
            run("truncate", &["-s", fs.size(), s(&part.img)]).unwrap();
            fs.mkfs(&part.img).unwrap();
            d.parts.push(part);
        }
        d.mount();
        d
    }

    fn mnt(&self, i: usize) -> PathBuf {
        self.parts[i].mnt.clone()
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("rebound.toml")
    }

    fn host(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn mount(&mut self) {
        for p in &mut self.parts {
            if let Err(e) = p.mount() {
                panic!("{}: {e}", p.img.display());
            }
        }
    }

    fn umount(&mut self) {
        for p in &mut self.parts {
            p.umount();
        }
    }

    /// Freezes the prepared state: unmounts cleanly, keeps a copy of every image.
    fn save_base(&mut self) {
        self.umount();
        for p in &self.parts {
            std::fs::copy(&p.img, p.base()).unwrap();
        }
    }

    /// Back to the prepared state, mounted.
    fn restore_base(&mut self) {
        self.umount();
        for p in &self.parts {
            run("cp", &["--sparse=always", s(&p.base()), s(&p.img)]).unwrap();
        }
        self.mount();
    }

    /// Cuts the power of every writable partition at once (`cut` says whether another
    /// program's fsync comes first). The process writing is still paused.
    fn cut(&self, cut: Cut) -> Result<(), String> {
        let writable = self.parts.iter().filter(|p| !p.read_only);
        if cut == Cut::AfterForeignFsync {
            for p in writable.clone() {
                let f = p.mnt.join("foreign.log");
                std::fs::write(&f, b"another program's record\n").map_err(|e| e.to_string())?;
                std::fs::File::open(&f)
                    .and_then(|f| f.sync_all())
                    .map_err(|e| format!("foreign fsync: {e}"))?;
            }
        }
        for p in writable {
            match self.cut_model {
                CutModel::Shutdown => shutdown(&p.mnt)?,
                CutModel::ImageCopy => {
                    run("cp", &["--sparse=always", s(&p.img), s(&p.crash_copy())])?
                }
            }
        }
        Ok(())
    }

    /// Power back on: unmount what the cut left, put the crash images in place, mount
    /// (journal replay).
    fn power_on(&mut self) {
        self.umount();
        if self.cut_model == CutModel::ImageCopy {
            for p in &self.parts {
                if p.crash_copy().exists() {
                    std::fs::rename(p.crash_copy(), &p.img).unwrap();
                }
            }
        }
        self.mount();
    }

    /// Runs rebound to completion, without fault injection.
    fn rebound(&self, args: &[&str]) -> Output {
        bin_command()
            .arg("-c")
            .arg(self.config())
            .args(args)
            .env_remove("REBOUND_FAULT_PAUSE_AT")
            .env_remove("REBOUND_FAULT_SKIP_SYNC")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// Runs rebound to completion and requires exit status 0 (preparation steps).
    fn rebound_ok(&self, args: &[&str]) {
        let o = self.rebound(args);
        assert!(
            o.status.success(),
            "rebound {args:?}: {}\n{}{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }

    /// Every regular file below `root` (relative path -> content), for comparisons.
    fn tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
        let mut out = BTreeMap::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            let Ok(rd) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in rd {
                let p = e.unwrap().path();
                let m = p.symlink_metadata().unwrap();
                if m.is_dir() {
                    stack.push(p);
                } else if m.is_file() {
                    let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                    out.insert(rel, std::fs::read(&p).unwrap());
                }
            }
        }
        out
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        // Runs on panic too: no mount or loop device outlives the test.
        self.umount();
    }
}

// ---------------------------------------------------------------------------------
// Scenarios

type Files = BTreeMap<String, Vec<u8>>;

/// Deterministic content of file `i` at `version`: 1 to 48 KiB, so that files span
/// several blocks and pages.
fn content(i: usize, version: u32) -> Vec<u8> {
    let len = 1024 * (1 + (i * 7) % 48) + i * 13;
    (0..len)
        .map(|b| {
            (b as u32)
                .wrapping_mul(31)
                .wrapping_add(i as u32 * 7 + version * 101) as u8
        })
        .collect()
}

const FILES: usize = 8;

fn files(dir: &str, version: u32) -> Files {
    (0..FILES)
        .map(|i| (format!("{dir}/f{i:02}.bin"), content(i, version)))
        .collect()
}

fn write_tree(root: &Path, files: &Files) {
    for (p, c) in files {
        let p = root.join(p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, c).unwrap();
    }
}

/// The update used by the `update` scenarios: two files replaced, one added.
fn update_files(dir: &str) -> Files {
    let mut u = Files::new();
    for i in [1, 4] {
        u.insert(format!("{dir}/f{i:02}.bin"), content(i, 3));
    }
    u.insert(format!("{dir}/sub/new.bin"), content(20, 3));
    u
}

fn with(base: Files, changes: Files) -> Files {
    let mut m = base;
    m.extend(changes);
    m
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Layout {
    /// Partition 0: live (`usr`), partition 1: golden (`bak`, mounted read-only).
    Golden,
    /// Partition 0: `apprun`, partition 1: `appbackup`, both writable (vendor layout).
    Mirror,
}

impl Layout {
    /// The writable replica roots.
    fn writable(self, d: &Device) -> Vec<PathBuf> {
        match self {
            Layout::Golden => vec![d.mnt(0).join("usr")],
            Layout::Mirror => vec![d.mnt(0).join("apprun"), d.mnt(1).join("appbackup")],
        }
    }

    fn golden(self, d: &Device) -> Option<PathBuf> {
        match self {
            Layout::Golden => Some(d.mnt(1).join("bak")),
            Layout::Mirror => None,
        }
    }

    fn dir(self) -> &'static str {
        match self {
            Layout::Golden => "app",
            Layout::Mirror => "apps",
        }
    }

    /// Writes the configuration and the version-1 files, and brings the set to a
    /// committed state (seal, or a first boot).
    fn setup(self, d: &Device) {
        match self {
            Layout::Golden => {
                std::fs::write(
                    d.config(),
                    format!(
                        "[[set]]\nname = \"config\"\nmode = \"golden\"\nlive = \"{}\"\ngolden = \"{}\"\ninclude = [\"app/**\"]\n",
                        d.mnt(0).join("usr").display(),
                        d.mnt(1).join("bak").display()
                    ),
                )
                .unwrap();
                write_tree(&d.mnt(0).join("usr"), &files("app", 1));
                d.rebound_ok(&["seal"]);
            }
            Layout::Mirror => {
                std::fs::write(
                    d.config(),
                    format!(
                        "[[set]]\nname = \"apps\"\nmode = \"mirror\"\nreplicas = [\"{}\", \"{}\"]\ninclude = [\"apps/**\"]\nversion_file = \"app_ver.txt\"\n",
                        d.mnt(0).join("apprun").display(),
                        d.mnt(1).join("appbackup").display()
                    ),
                )
                .unwrap();
                write_tree(&d.mnt(0).join("apprun"), &files("apps", 1));
                std::fs::write(d.mnt(0).join("apprun/app_ver.txt"), "1\n").unwrap();
                std::fs::create_dir_all(d.mnt(1).join("appbackup")).unwrap();
                d.rebound_ok(&["boot"]);
            }
        }
    }

    fn set(self) -> &'static str {
        match self {
            Layout::Golden => "config",
            Layout::Mirror => "apps",
        }
    }
}

/// One scenario: a device prepared in some state, the command whose crash points are
/// cut, and the content each writable replica may hold after recovery.
struct Scenario {
    name: &'static str,
    layout: Layout,
    /// Brings the device (already set up) to the state before the command.
    prepare: fn(&Device, Layout),
    command: fn(&Device, Layout) -> Vec<String>,
    /// Content before the command (for a `boot`: the authoritative content, which
    /// recovery must reach whatever happened).
    old: Files,
    /// Content after the command.
    new: Files,
    /// All files old or all new (an `update`), rather than each file old or new.
    atomic: bool,
}

/// The scenarios of this run (`REBOUND_REALFS_SCENARIO=text` keeps those whose name
/// contains the text).
fn scenarios() -> Vec<Scenario> {
    let only = std::env::var("REBOUND_REALFS_SCENARIO").ok();
    all_scenarios()
        .into_iter()
        .filter(|s| only.as_deref().is_none_or(|o| s.name.contains(o)))
        .collect()
}

fn all_scenarios() -> Vec<Scenario> {
    let g1 = files("app", 1);
    let m1 = files("apps", 1);
    let m_upgraded = with(
        m1.clone(),
        [(2usize, 5u32), (6, 5)]
            .into_iter()
            .map(|(i, v)| (format!("apps/f{i:02}.bin"), content(i, v)))
            .collect(),
    );
    vec![
        Scenario {
            name: "golden boot: live manifest lost, files deleted and corrupted",
            layout: Layout::Golden,
            prepare: |d, _| {
                let live = d.mnt(0).join("usr");
                for slot in ["manifest.0", "manifest.1"] {
                    let _ = std::fs::remove_file(live.join(".rebound/config").join(slot));
                }
                std::fs::remove_file(live.join("app/f01.bin")).unwrap();
                std::fs::remove_file(live.join("app/f05.bin")).unwrap();
                std::fs::write(live.join("app/f03.bin"), b"flash corruption").unwrap();
                std::fs::write(live.join("app/f06.bin"), vec![0u8; 4096]).unwrap();
            },
            command: |_, _| vec!["boot".into()],
            old: g1.clone(),
            new: g1.clone(),
            atomic: false,
        },
        Scenario {
            name: "golden commit of two edited files",
            layout: Layout::Golden,
            prepare: |d, _| {
                let live = d.mnt(0).join("usr");
                std::fs::write(live.join("app/f02.bin"), content(2, 2)).unwrap();
                std::fs::write(live.join("app/f07.bin"), content(7, 2)).unwrap();
            },
            command: |d, _| {
                let live = d.mnt(0).join("usr");
                vec![
                    "commit".into(),
                    live.join("app/f02.bin").display().to_string(),
                    live.join("app/f07.bin").display().to_string(),
                ]
            },
            old: g1.clone(),
            new: with(
                g1.clone(),
                [2usize, 7]
                    .into_iter()
                    .map(|i| (format!("app/f{i:02}.bin"), content(i, 2)))
                    .collect(),
            ),
            atomic: false,
        },
        Scenario {
            name: "golden update: two files replaced, one added",
            layout: Layout::Golden,
            prepare: |d, l| write_tree(&d.host("fota"), &update_files(l.dir())),
            command: |d, l| {
                vec![
                    "update".into(),
                    l.set().into(),
                    "--from".into(),
                    d.host("fota").display().to_string(),
                ]
            },
            old: g1.clone(),
            new: with(g1.clone(), update_files("app")),
            atomic: true,
        },
        Scenario {
            name: "mirror boot: first sync to a reformatted backup partition",
            layout: Layout::Mirror,
            prepare: |d, _| {
                // Scenario B of the vendor script: the backup side is empty.
                std::fs::remove_dir_all(d.mnt(1).join("appbackup")).unwrap();
                std::fs::create_dir_all(d.mnt(1).join("appbackup")).unwrap();
            },
            command: |_, _| vec!["boot".into()],
            old: m1.clone(),
            new: m1.clone(),
            atomic: false,
        },
        Scenario {
            name: "mirror boot: app upgraded and tag bumped on the system side",
            layout: Layout::Mirror,
            prepare: |d, _| {
                // Scenario C: the vendor's upgrade flow replaced files and bumped the tag.
                let sys = d.mnt(0).join("apprun");
                std::fs::write(sys.join("apps/f02.bin"), content(2, 5)).unwrap();
                std::fs::write(sys.join("apps/f06.bin"), content(6, 5)).unwrap();
                std::fs::write(sys.join("app_ver.txt"), "2\n").unwrap();
            },
            command: |_, _| vec!["boot".into()],
            old: m_upgraded.clone(),
            new: m_upgraded,
            atomic: false,
        },
        Scenario {
            name: "mirror commit of an edited file",
            layout: Layout::Mirror,
            prepare: |d, _| {
                std::fs::write(d.mnt(0).join("apprun/apps/f03.bin"), content(3, 2)).unwrap();
            },
            command: |d, _| {
                vec![
                    "commit".into(),
                    d.mnt(0).join("apprun/apps/f03.bin").display().to_string(),
                ]
            },
            old: m1.clone(),
            new: with(
                m1.clone(),
                [("apps/f03.bin".to_string(), content(3, 2))].into(),
            ),
            atomic: false,
        },
        Scenario {
            name: "mirror update: two files replaced, one added",
            layout: Layout::Mirror,
            prepare: |d, l| write_tree(&d.host("fota"), &update_files(l.dir())),
            command: |d, l| {
                vec![
                    "update".into(),
                    l.set().into(),
                    "--from".into(),
                    d.host("fota").display().to_string(),
                ]
            },
            old: m1.clone(),
            new: with(m1, update_files("apps")),
            atomic: true,
        },
    ]
}

// ---------------------------------------------------------------------------------
// One crash cycle and the invariant

/// How a run of the command under test ended.
#[derive(Debug)]
enum Ran {
    /// Paused before mutation k; the power was cut there.
    Paused,
    /// Finished (exit status) before reaching the pause; the power was cut after it.
    Completed(Option<i32>),
}

/// Runs the scenario's command with `REBOUND_FAULT_PAUSE_AT=k`; when it pauses, calls
/// `at_pause` (the cut) while it is still paused, then kills it.
fn run_paused(
    d: &Device,
    sc: &Scenario,
    k: u64,
    skip_sync: bool,
    at_pause: impl FnOnce(),
) -> Result<Ran, String> {
    let mut c = bin_command();
    c.arg("-c").arg(d.config()).args((sc.command)(d, sc.layout));
    c.env("REBOUND_FAULT_PAUSE_AT", k.to_string());
    if skip_sync {
        c.env("REBOUND_FAULT_SKIP_SYNC", "1");
    } else {
        c.env_remove("REBOUND_FAULT_SKIP_SYNC");
    }
    let mut child = c
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut tail = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("rebound: fault-injection: paused before mutation") {
                let _ = tx.send(Ok(()));
            } else {
                tail.push(line);
            }
        }
        // End of stderr: the process exited without pausing.
        let _ = tx.send(Err(tail.join("\n")));
    });
    match rx.recv_timeout(COMMAND_DEADLINE) {
        Ok(Ok(())) => {
            at_pause();
            let _ = child.kill();
            let _ = child.wait();
            Ok(Ran::Paused)
        }
        Ok(Err(_stderr)) => Ok(Ran::Completed(child.wait().unwrap().code())),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(format!(
                "`rebound {:?}` neither paused nor finished",
                (sc.command)(d, sc.layout)
            ))
        }
    }
}

/// Which version a replica's protected files hold, for one scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    Old,
    New,
    /// Old and new are equal (a `boot` scenario) or the files are a per-file mix.
    Either,
}

/// Checks the invariant after the recovery boot. `completed`: the command had
/// finished with status 0 before the cut, so its change must have survived.
fn check(
    d: &Device,
    sc: &Scenario,
    completed: bool,
    golden_before: &Option<Files>,
) -> Result<(), String> {
    let mut paths: Vec<&String> = sc.old.keys().chain(sc.new.keys()).collect();
    paths.sort();
    paths.dedup();
    let mut versions = Vec::new();
    for root in sc.layout.writable(d) {
        let (mut all_old, mut all_new) = (true, true);
        for p in &paths {
            let got = std::fs::read(root.join(p)).ok();
            let is_old = got.as_ref() == sc.old.get(*p);
            let is_new = got.as_ref() == sc.new.get(*p);
            if !is_old && !is_new {
                let what = match &got {
                    None => "missing".to_string(),
                    Some(g) if g.is_empty() => "0 bytes".to_string(),
                    Some(g) if g.iter().all(|b| *b == 0) => format!("{} zero bytes", g.len()),
                    Some(g) => format!("{} bytes of other content", g.len()),
                };
                return Err(format!(
                    "{}/{p}: neither its old nor its new content ({what})",
                    root.display()
                ));
            }
            if completed && !is_new {
                return Err(format!(
                    "{}/{p}: holds its old content although the command had completed (a lost change)",
                    root.display()
                ));
            }
            all_old &= is_old;
            all_new &= is_new;
        }
        versions.push(match (all_old, all_new) {
            (true, false) => Version::Old,
            (false, true) => Version::New,
            _ => Version::Either,
        });
        if sc.atomic && !all_old && !all_new {
            return Err(format!(
                "{}: the update left a mix of old and new files",
                root.display()
            ));
        }
    }
    if sc.atomic && versions.contains(&Version::Old) && versions.contains(&Version::New) {
        return Err(format!("replicas disagree after recovery: {versions:?}"));
    }
    if let (Some(before), Some(g)) = (golden_before, sc.layout.golden(d)) {
        if &Device::tree(&g) != before {
            return Err("the golden copy changed".into());
        }
    }
    let v = d.rebound(&["verify"]);
    if v.status.code() != Some(0) {
        return Err(format!(
            "verify exits {:?} after recovery: {}",
            v.status.code(),
            String::from_utf8_lossy(&v.stdout).trim()
        ));
    }
    let b = d.rebound(&["boot", "--json"]);
    let j: serde_json::Value = serde_json::from_slice(&b.stdout).map_err(|e| {
        format!(
            "second boot --json: {e}: {}",
            String::from_utf8_lossy(&b.stderr)
        )
    })?;
    if b.status.code() != Some(0) {
        return Err(format!("second boot exits {:?}", b.status.code()));
    }
    for set in j["sets"].as_array().into_iter().flatten() {
        if set["plan"]["actions"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
        {
            return Err(format!(
                "a second boot still plans actions: {}",
                set["plan"]["actions"]
            ));
        }
    }
    Ok(())
}

/// Figures of one (filesystem, scenario) exploration.
#[derive(Debug, Default)]
struct Tally {
    /// Mutations the command makes (crash points 1..=ops, plus after completion).
    ops: u64,
    /// Crash points cut (distinct k, the after-completion point included).
    points: u64,
    /// Crash states checked (points x cut kinds).
    states: u64,
    violations: Vec<String>,
}

/// What to explore.
#[derive(Debug, Clone, Copy)]
struct Plan {
    full: bool,
    skip_sync: bool,
    /// Varies the subset of points cut in a bounded run from one filesystem to the next.
    offset: u64,
}

/// A prepared device for one scenario, with its base images saved.
struct Bench {
    d: Device,
    golden_before: Option<Files>,
}

impl Bench {
    fn new(fs: FsType, model: CutModel, sc: &Scenario) -> Bench {
        let mut d = Device::new(fs, model, 2);
        sc.layout.setup(&d);
        (sc.prepare)(&d, sc.layout);
        let golden_before = sc.layout.golden(&d).map(|g| Device::tree(&g));
        d.save_base();
        if sc.layout == Layout::Golden {
            // From here on the golden partition is read-only, as on a device.
            d.parts[1].read_only = true;
        }
        Bench { d, golden_before }
    }

    /// Whether the command pauses at `k` (it makes at least k mutations).
    fn pauses_at(&mut self, sc: &Scenario, k: u64, skip_sync: bool) -> bool {
        self.d.restore_base();
        let r = run_paused(&self.d, sc, k, skip_sync, || {}).unwrap();
        matches!(r, Ran::Paused)
    }

    /// The number of mutations the command makes: the largest k at which it pauses.
    /// `hint`, the count found on another filesystem (the plan, hence the count, does
    /// not depend on the filesystem), is checked with two runs; otherwise, or if it is
    /// wrong, an exponential search and a bisection find it.
    fn count_ops(&mut self, sc: &Scenario, skip_sync: bool, hint: Option<u64>) -> u64 {
        if let Some(n) = hint {
            if (n == 0 || self.pauses_at(sc, n, skip_sync)) && !self.pauses_at(sc, n + 1, skip_sync)
            {
                return n;
            }
        }
        if !self.pauses_at(sc, 1, skip_sync) {
            return 0;
        }
        let mut lo = 1; // pauses
        let mut hi = 2;
        while self.pauses_at(sc, hi, skip_sync) {
            lo = hi;
            hi *= 2;
        }
        // Pauses at lo, not at hi.
        while hi - lo > 1 {
            let mid = (lo + hi) / 2;
            if self.pauses_at(sc, mid, skip_sync) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// One crash state: run to pause k, cut, power on, recover, check.
    fn cycle(&mut self, sc: &Scenario, k: u64, cut: Cut, skip_sync: bool) -> Result<(), String> {
        self.d.restore_base();
        let mut cut_err = Ok(());
        let ran = run_paused(&self.d, sc, k, skip_sync, || cut_err = self.d.cut(cut))?;
        if let Ran::Completed(code) = ran {
            // The command finished: cut right after it, so that only what it made
            // durable survives. It must have succeeded.
            if code != Some(0) {
                return Err(format!("the command exits {code:?} without a crash"));
            }
            cut_err = self.d.cut(cut);
        }
        cut_err.map_err(|e| format!("the cut failed: {e}"))?;
        self.d.power_on();
        let rec = self.d.rebound(&["boot"]);
        if rec.status.code() != Some(0) {
            return Err(format!(
                "the recovery boot exits {:?}: {}{}",
                rec.status.code(),
                String::from_utf8_lossy(&rec.stdout).trim(),
                String::from_utf8_lossy(&rec.stderr).trim()
            ));
        }
        check(
            &self.d,
            sc,
            matches!(ran, Ran::Completed(_)),
            &self.golden_before,
        )
    }
}

/// The crash points of a run: every one, or about `DEFAULT_POINTS` spread evenly
/// (shifted by `offset`), always with the last mutation and the point after
/// completion (`ops + 1`).
fn points(ops: u64, plan: Plan) -> Vec<u64> {
    if plan.full || ops <= DEFAULT_POINTS {
        return (1..=ops + 1).collect();
    }
    let stride = ops.div_ceil(DEFAULT_POINTS);
    let mut v: Vec<u64> = (1 + plan.offset % stride..=ops)
        .step_by(stride as usize)
        .collect();
    for k in [ops, ops + 1] {
        if v.last() != Some(&k) {
            v.push(k);
        }
    }
    v
}

/// Cuts every chosen crash point of one scenario on one filesystem. `hints`: the
/// mutation counts found so far, by scenario (see [`Bench::count_ops`]).
fn explore(
    fs: FsType,
    model: CutModel,
    sc: &Scenario,
    plan: Plan,
    hints: &mut BTreeMap<&'static str, u64>,
) -> Tally {
    let mut b = Bench::new(fs, model, sc);
    let mut t = Tally {
        ops: b.count_ops(sc, plan.skip_sync, hints.get(sc.name).copied()),
        ..Tally::default()
    };
    hints.insert(sc.name, t.ops);
    let pts = points(t.ops, plan);
    for (i, &k) in pts.iter().enumerate() {
        // Every point both ways in a full run and after completion; else alternating.
        let cuts: &[Cut] = if plan.full || k > t.ops {
            &[Cut::Plain, Cut::AfterForeignFsync]
        } else if i % 2 == 0 {
            &[Cut::Plain]
        } else {
            &[Cut::AfterForeignFsync]
        };
        t.points += 1;
        for &cut in cuts {
            t.states += 1;
            if let Err(v) = b.cycle(sc, k, cut, plan.skip_sync) {
                let at = if k > t.ops {
                    "after the command completed".to_string()
                } else {
                    format!("before mutation {k} of {}", t.ops)
                };
                t.violations.push(format!(
                    "{} / {} / {at} / {}: {v}",
                    fs.name(),
                    sc.name,
                    cut.name()
                ));
            }
        }
    }
    t
}

// ---------------------------------------------------------------------------------
// Environment checks

/// Why this machine cannot run these tests, if it cannot; else a scratch directory
/// for probes.
fn environment() -> Result<tempfile::TempDir, String> {
    if !ok("sh", &["-c", "test \"$(id -u)\" = 0"]) {
        return Err("not root (loop mounts need root)".into());
    }
    for c in ["losetup", "mount", "umount", "truncate", "cp", "mkfs.ext4"] {
        if !have(c) {
            return Err(format!(
                "{c} not found (packages util-linux, coreutils, e2fsprogs)"
            ));
        }
    }
    run("losetup", &["-f"]).map_err(|e| format!("no free loop device: {e}"))?;
    let scratch = tempfile::Builder::new()
        .prefix("rebound-realfs-probe-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    // A real loop mount, since a container can have /dev/loop* and still refuse it.
    let img = scratch.path().join("loop-probe.img");
    let mnt = scratch.path().join("loop-probe");
    std::fs::create_dir_all(&mnt).unwrap();
    run("truncate", &["-s", "16M", s(&img)])?;
    FsType::Ext4.mkfs(&img)?;
    let mut p = Part {
        img,
        mnt,
        fs: FsType::Ext4,
        read_only: false,
    };
    let r = p.mount();
    p.umount();
    r.map_err(|e| format!("cannot loop-mount: {e}"))?;
    Ok(scratch)
}

/// The filesystems to test with their cut model; prints why any is skipped.
fn filesystems(scratch: &Path) -> Vec<(FsType, CutModel)> {
    let mut out = Vec::new();
    for fs in FsType::selected() {
        if !have(fs.mkfs_tool()) {
            skip!(
                "SKIP {}: {} not found (apt-get install xfsprogs btrfs-progs)",
                fs.name(),
                fs.mkfs_tool()
            );
            continue;
        }
        match CutModel::detect(fs, scratch) {
            Ok(m) => out.push((fs, m)),
            Err(e) => skip!("SKIP {}: cannot make a scratch filesystem: {e}", fs.name()),
        }
    }
    out
}

fn full_run() -> bool {
    std::env::var_os("REBOUND_REALFS_FULL").is_some_and(|v| v == "1")
}

// ---------------------------------------------------------------------------------
// Tests

#[test]
fn power_cuts_during_boot_commit_and_update_on_ext4_xfs_btrfs_keep_old_or_new() {
    let scratch = match environment() {
        Ok(s) => s,
        Err(why) => {
            skip!("SKIP real-filesystem crash tests: {why}");
            return;
        }
    };
    let full = full_run();
    let mut hints = BTreeMap::new();
    let mut all = Vec::new();
    let mut rows = Vec::new();
    for (fi, (fs, model)) in filesystems(scratch.path()).into_iter().enumerate() {
        for sc in scenarios() {
            let plan = Plan {
                full,
                skip_sync: false,
                offset: fi as u64,
            };
            let t = explore(fs, model, &sc, plan, &mut hints);
            let row = format!(
                "| {} | {} | {} | {} | {} | {} | {} |",
                fs.name(),
                model.describe(),
                sc.name,
                t.ops,
                t.points,
                t.states,
                t.violations.len()
            );
            println!("{row}");
            rows.push(row);
            all.extend(t.violations);
        }
    }
    println!(
        "\n{} run{}:\n| filesystem | power cut | scenario | mutations | crash points | crash states | violations |\n|---|---|---|---|---|---|---|",
        if full { "Full" } else { "Bounded" },
        if full { "" } else { " (set REBOUND_REALFS_FULL=1 for every point)" }
    );
    for r in &rows {
        println!("{r}");
    }
    assert!(
        all.is_empty(),
        "{} violations:\n{}",
        all.len(),
        all.join("\n")
    );
}

/// The kind of a violation, for the summary of the broken-build test.
fn kind(violation: &str) -> &'static str {
    if violation.contains("although the command had completed") {
        "completed change lost"
    } else if violation.contains("(0 bytes)") || violation.contains("zero bytes") {
        "file with no data"
    } else if violation.contains("exits Some(3)") {
        "no intact copy left (exit 3)"
    } else {
        "other"
    }
}

/// Shows the harness can fail: with every fsync skipped (`REBOUND_FAULT_SKIP_SYNC=1`),
/// some crash point of `commit` or `update` must leave a violation (a file with no
/// data where the manifest names new content, or a completed change lost), and the
/// checks must see it, on every filesystem and cut model (ext4 mounted
/// `noauto_da_alloc` first). Where none shows, the test fails and says so rather than
/// pass on nothing. The bounded run cuts `update`; the full run `commit` too.
#[test]
fn skipping_every_fsync_loses_data_and_the_harness_detects_it() {
    let scratch = match environment() {
        Ok(s) => s,
        Err(why) => {
            skip!("SKIP real-filesystem crash tests: {why}");
            return;
        }
    };
    let mut rows = Vec::new();
    let mut per_fs = Vec::new();
    let mut hints = BTreeMap::new();
    for (fs, model) in filesystems(scratch.path()) {
        let mut found: Vec<String> = Vec::new();
        let mut states = 0;
        for sc in scenarios()
            .into_iter()
            .filter(|s| s.name.contains("update") || (full_run() && s.name.contains("commit")))
        {
            let plan = Plan {
                full: full_run(),
                skip_sync: true,
                offset: 0,
            };
            let t = explore(fs, model, &sc, plan, &mut hints);
            println!(
                "{}, REBOUND_FAULT_SKIP_SYNC=1, {}: {} mutations, {} crash states, {} violations",
                fs.name(),
                sc.name,
                t.ops,
                t.states,
                t.violations.len()
            );
            for v in t.violations.iter().take(2) {
                println!("  {}", v.lines().next().unwrap_or_default());
            }
            states += t.states;
            found.extend(t.violations);
        }
        let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
        for v in &found {
            *kinds.entry(kind(v)).or_default() += 1;
        }
        rows.push(format!(
            "| {} | {} | {states} | {} | {kinds:?} |",
            fs.name(),
            model.describe(),
            found.len()
        ));
        per_fs.push((fs, states, found.len()));
    }
    println!("\nBroken build (every fsync skipped):\n| filesystem | power cut | crash states | violations | kinds |\n|---|---|---|---|---|");
    for r in &rows {
        println!("{r}");
    }
    if !per_fs.iter().any(|(fs, _, _)| *fs == FsType::Ext4) {
        skip!("SKIP the broken-build check on ext4: not selected");
    }
    let missed: Vec<String> = per_fs
        .iter()
        .filter(|(_, states, n)| *states > 0 && *n == 0)
        .map(|(fs, states, _)| format!("{} ({states} crash states)", fs.name()))
        .collect();
    assert!(
        missed.is_empty(),
        "NOT REPRODUCED: a build that skips every fsync showed no violation on {}; the harness did not demonstrate that it can fail there",
        missed.join(", ")
    );
}

/// A limitation of `changed_only` sets that only a real power cut shows. Another
/// program overwrites a protected file in place and calls `fdatasync`: the data reaches
/// the disk, but the new mtime and ctime wait in the running journal transaction, and
/// the cut (shutdown ioctl, no log flush) throws them away. After the reboot the file
/// holds new content under exactly the size, mtime, ctime and inode that the stat cache
/// recorded, so a changed-only `boot` takes the recorded digest without reading it.
///
/// Asserted: the damage is real and `verify` (which never uses the cache) reports it,
/// and `boot --full` repairs it. Printed, not asserted (it is the documented limitation,
/// and a future mitigation should not break this test): whether the changed-only boot
/// missed it. Where the kernel keeps the new metadata, the case does not arise and the
/// test says so.
#[test]
fn changed_only_boot_after_a_cut_during_an_in_place_write_verify_and_full_boot_find_it() {
    let scratch = match environment() {
        Ok(s) => s,
        Err(why) => {
            skip!("SKIP real-filesystem crash tests: {why}");
            return;
        }
    };
    let model = CutModel::detect(FsType::Ext4, scratch.path()).unwrap();
    if model != CutModel::Shutdown {
        skip!("SKIP: this case needs the shutdown ioctl on ext4");
        return;
    }
    let mut d = Device::new(FsType::Ext4, model, 2);
    Layout::Golden.setup(&d);
    let mut cfg = std::fs::read_to_string(d.config()).unwrap();
    cfg.push_str("changed_only = true\n");
    std::fs::write(d.config(), cfg).unwrap();
    // The stat cache never records a file changed within 3 s of the pass ("racily
    // clean"): let the files age first. A wait for a precondition, not a timing check.
    std::thread::sleep(Duration::from_secs(4));
    d.rebound_ok(&["boot"]);
    let live = d.mnt(0).join("usr");
    assert!(
        live.join(".rebound/config/statcache").exists(),
        "the changed-only boot wrote no stat cache"
    );
    let target = live.join("app/f03.bin");
    // Everything on disk, blocks allocated, as for a file written long ago (an
    // overwrite of delayed-allocation blocks would commit the metadata too).
    run("sync", &[]).unwrap();
    let before = std::fs::symlink_metadata(&target).unwrap();
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&target)
            .unwrap();
        f.write_all_at(&[b'X'; 4096], 0).unwrap();
        f.sync_data().unwrap();
    }
    d.cut(Cut::Plain).unwrap();
    d.power_on();
    let after = std::fs::symlink_metadata(&target).unwrap();
    let data = std::fs::read(&target).unwrap();
    use std::os::unix::fs::MetadataExt;
    let same_meta = (
        before.size(),
        before.mtime(),
        before.mtime_nsec(),
        before.ctime(),
        before.ctime_nsec(),
        before.ino(),
    ) == (
        after.size(),
        after.mtime(),
        after.mtime_nsec(),
        after.ctime(),
        after.ctime_nsec(),
        after.ino(),
    );
    if !data.starts_with(&[b'X'; 4096]) || !same_meta {
        println!(
            "NOT REPRODUCED on this kernel: after the cut the file has {} data and {} metadata; the case does not arise",
            if data.starts_with(&[b'X'; 4096]) { "the new" } else { "its old" },
            if same_meta { "its old" } else { "new" }
        );
        return;
    }
    let boot = d.rebound(&["boot"]);
    let missed = std::fs::read(&target).unwrap().starts_with(&[b'X'; 4096]);
    println!(
        "changed-only boot after the cut: exit {:?}, {}",
        boot.status.code(),
        if missed {
            "LIMITATION REPRODUCED: the file holds new data under its recorded metadata and the boot took it as unchanged, without reading it"
        } else {
            "the boot found and repaired the file"
        }
    );
    let v = d.rebound(&["verify"]);
    if missed {
        assert_eq!(
            v.status.code(),
            Some(1),
            "verify must report the damage the changed-only boot did not read: {}",
            String::from_utf8_lossy(&v.stdout)
        );
    }
    d.rebound_ok(&["boot", "--full"]);
    assert_eq!(
        std::fs::read(&target).unwrap(),
        content(3, 1),
        "boot --full must restore the file"
    );
    d.rebound_ok(&["verify"]);
}
