//! Helpers for driving the real `rebound` binary: [`Dir`], a fresh temporary device
//! tree with the files and configuration a test builds in it; [`TestCommand`], one run
//! of the binary against that tree; [`Run`], its captured outcome; [`Mount`], a
//! mounted filesystem that is unmounted when dropped, for the tests that need root.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub use crate::bin::{bin_argv, bin_command};

/// A golden set on the QuecPython layout: `usr` (live) and `bak` (golden).
pub const GOLDEN_INCLUDE: &str = r#"["apn_cfg.json", "system_config.json", "app/**"]"#;

/// The vendor script's two roots, relative to the test directory.
pub const SYS: &str = "usrapp/apprun";
pub const DATA: &str = "usrdata/appbackup";

/// A fresh temporary directory standing for a device's filesystem tree.
#[derive(Debug)]
pub struct Dir {
    // Field order: mounts are undone before the directory is removed.
    pub mounts: Vec<Mount>,
    tmp: tempfile::TempDir,
}

impl Dir {
    pub fn new(name: &str) -> Dir {
        let tmp = tempfile::Builder::new()
            .prefix(&format!("rebound-it-{name}-"))
            .tempdir()
            .unwrap();
        Dir {
            mounts: Vec::new(),
            tmp,
        }
    }

    /// The root of the tree.
    pub fn root(&self) -> &Path {
        self.tmp.path()
    }

    /// An absolute path below the root.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    /// Writes a file, creating its parent directories.
    pub fn write(&self, rel: &str, content: impl AsRef<[u8]>) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        match std::fs::write(&p, content.as_ref()) {
            // Golden files are sealed read-only (0444): a test damaging one as a user
            // other than root replaces it instead.
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                std::fs::remove_file(&p).unwrap();
                std::fs::write(&p, content).unwrap();
            }
            r => r.unwrap(),
        }
    }

    /// A file's content as text; panics if it is missing.
    pub fn read(&self, rel: &str) -> String {
        let p = self.path(rel);
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
    }

    /// A file's content, or `None` if it is missing.
    pub fn read_opt(&self, rel: &str) -> Option<Vec<u8>> {
        std::fs::read(self.path(rel)).ok()
    }

    pub fn exists(&self, rel: &str) -> bool {
        self.path(rel).symlink_metadata().is_ok()
    }

    pub fn remove(&self, rel: &str) {
        let p = self.path(rel);
        match p.symlink_metadata() {
            Ok(m) if m.is_dir() => std::fs::remove_dir_all(&p).unwrap(),
            Ok(_) => std::fs::remove_file(&p).unwrap(),
            Err(_) => {}
        }
    }

    /// Empties a directory without removing it (a reformatted partition).
    pub fn wipe(&self, rel: &str) {
        for e in std::fs::read_dir(self.path(rel)).unwrap() {
            let p = e.unwrap().path();
            if p.symlink_metadata().unwrap().is_dir() {
                std::fs::remove_dir_all(&p).unwrap();
            } else {
                std::fs::remove_file(&p).unwrap();
            }
        }
    }

    /// Writes `rebound.toml` at the root.
    pub fn config(&self, text: &str) {
        self.write("rebound.toml", text);
    }

    /// A golden set `config` with live `usr`, golden `bak` and the given extra copies,
    /// holding three files.
    pub fn golden_device(name: &str, copies: &[&str]) -> Dir {
        let d = Dir::new(name);
        let copies: Vec<String> = copies
            .iter()
            .map(|c| format!("\"{}\"", d.path(c).display()))
            .collect();
        d.config(&format!(
            "[[set]]\nname = \"config\"\nmode = \"golden\"\nlive = \"{}\"\ngolden = \"{}\"\ncopies = [{}]\ninclude = {GOLDEN_INCLUDE}\n",
            d.path("usr").display(),
            d.path("bak").display(),
            copies.join(", ")
        ));
        d.write("usr/apn_cfg.json", "{\"apn\": \"factory\"}\n");
        d.write("usr/system_config.json", "{\"volume\": 5}\n");
        d.write("usr/app/main.py", "print('v1')\n");
        d.write("usr/app/lib/util.py", "def f(): return 1\n");
        d
    }

    /// A mirror set `apps` on the vendor layout (`apps/**` + `app_ver.txt`), with the
    /// given replica roots (relative), the first holding `apps/` at version 1.
    pub fn mirror_device(name: &str, roots: &[&str]) -> Dir {
        let d = Dir::new(name);
        let list: Vec<String> = roots
            .iter()
            .map(|r| format!("\"{}\"", d.path(r).display()))
            .collect();
        for r in roots {
            std::fs::create_dir_all(d.path(r).parent().unwrap()).unwrap();
        }
        d.config(&format!(
            "[[set]]\nname = \"apps\"\nmode = \"mirror\"\nreplicas = [{}]\ninclude = [\"apps/**\"]\nversion_file = \"app_ver.txt\"\n",
            list.join(", ")
        ));
        d.write(&format!("{}/apps/app.bin", roots[0]), "application v1\n");
        d.write(&format!("{}/apps/params.cfg", roots[0]), "baud=115200\n");
        d.write(&format!("{}/apps/lib/mod.py", roots[0]), "VERSION = 1\n");
        d.write(&format!("{}/app_ver.txt", roots[0]), "1\n");
        d
    }

    /// A run of the binary with `-c <root>/rebound.toml` and the given arguments.
    pub fn cmd<I, S>(&self, args: I) -> TestCommand
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut c = TestCommand::bare();
        c.cmd.current_dir(self.root());
        c.cmd.arg("-c").arg(self.path("rebound.toml"));
        c.cmd.args(args);
        c
    }

    /// Runs the binary and checks its exit status, printing its output if it differs.
    pub fn run<I, S>(&self, args: I, code: i32) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.cmd(args).run().expect_code(code)
    }

    /// Every file and symlink below `rel` (relative paths -> content, modification time
    /// and permission bits, or link target), directories listed too with their
    /// permission bits, for before/after comparisons.
    pub fn snapshot(&self, rel: &str) -> BTreeMap<PathBuf, Snap> {
        let mut out = BTreeMap::new();
        let base = self.path(rel);
        let mut stack = vec![base.clone()];
        while let Some(p) = stack.pop() {
            let Ok(m) = p.symlink_metadata() else {
                continue;
            };
            let key = p.strip_prefix(&base).unwrap().to_path_buf();
            if m.is_symlink() {
                out.insert(key, Snap::Link(std::fs::read_link(&p).unwrap()));
            } else if m.is_dir() {
                use std::os::unix::fs::PermissionsExt;
                out.insert(key, Snap::Dir(m.permissions().mode() & 0o7777));
                for e in std::fs::read_dir(&p).unwrap() {
                    stack.push(e.unwrap().path());
                }
            } else {
                use std::os::unix::fs::MetadataExt;
                out.insert(
                    key,
                    Snap::File(
                        std::fs::read(&p).unwrap(),
                        m.mtime(),
                        m.mtime_nsec(),
                        m.mode() & 0o7777,
                    ),
                );
            }
        }
        out
    }
}

impl Dir {
    /// As [`Dir::snapshot`], without modification times and permission bits: the
    /// names and bytes a reader would see.
    pub fn contents(&self, rel: &str) -> BTreeMap<PathBuf, Snap> {
        let mut s = self.snapshot(rel);
        for v in s.values_mut() {
            match v {
                Snap::File(_, t, n, m) => {
                    *t = 0;
                    *n = 0;
                    *m = 0;
                }
                Snap::Dir(m) => *m = 0,
                Snap::Link(_) => {}
            }
        }
        s
    }
}

/// One entry of a [`Dir::snapshot`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Snap {
    /// A directory and its permission bits.
    Dir(u32),
    Link(PathBuf),
    /// Content, modification time (seconds, nanoseconds) and permission bits.
    File(Vec<u8>, i64, i64, u32),
}

/// One run of the binary.
#[derive(Debug)]
pub struct TestCommand {
    pub cmd: Command,
}

impl TestCommand {
    /// The binary with no configuration argument and no `REBOUND_*` variables.
    pub fn bare() -> TestCommand {
        let mut cmd = bin_command();
        cmd.env_remove("REBOUND_CONFIG")
            .env_remove("REBOUND_FAULT_PAUSE_AT")
            .env_remove("REBOUND_FAULT_RESUME_FILE")
            .env_remove("REBOUND_FAULT_SKIP_SYNC");
        TestCommand { cmd }
    }

    pub fn arg(mut self, a: impl AsRef<OsStr>) -> TestCommand {
        self.cmd.arg(a);
        self
    }

    pub fn env(mut self, k: &str, v: impl AsRef<OsStr>) -> TestCommand {
        self.cmd.env(k, v);
        self
    }

    pub fn run(mut self) -> Run {
        Run {
            out: self.cmd.output().unwrap(),
        }
    }

    /// Runs with `REBOUND_FAULT_PAUSE_AT=k`: waits until the process says it paused
    /// before mutation `k`, then kills it with SIGKILL (a power cut as far as the
    /// process is concerned). Returns `true` if it paused and was killed, `false` if it
    /// finished first (it made fewer than `k` mutations).
    pub fn kill_at_mutation(mut self, k: u64) -> bool {
        let mut child = self
            .cmd
            .env("REBOUND_FAULT_PAUSE_AT", k.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let want = format!("rebound: fault-injection: paused before mutation {k}");
        let stderr = child.stderr.take().unwrap();
        let mut seen = Vec::new();
        for line in BufReader::new(stderr).lines() {
            let line = line.unwrap();
            if line == want {
                child.kill().unwrap();
                child.wait().unwrap();
                return true;
            }
            seen.push(line);
        }
        let status = child.wait().unwrap();
        assert!(
            !seen.iter().any(|l| l.contains("paused before")),
            "paused at the wrong point: {seen:?}"
        );
        assert!(
            status.code().is_some(),
            "ended by a signal without pausing: {seen:?}"
        );
        false
    }
}

impl TestCommand {
    /// Starts the run with `REBOUND_FAULT_PAUSE_AT=k` and waits until it has paused
    /// before its mutation `k`; [`Paused::resume`] lets it go on. Panics if the run
    /// ends without pausing.
    pub fn pause_at(self, k: u64, resume_file: &Path) -> Paused {
        let want = format!("rebound: fault-injection: paused before mutation {k}");
        self.pause("REBOUND_FAULT_PAUSE_AT", k, want, resume_file)
    }

    /// Starts the run (a boot) and waits until it has watched its k-th directory (the
    /// change journal), before it hashes anything; it goes on once `resume_file`
    /// exists.
    pub fn pause_after_watch(self, k: u64, resume_file: &Path) -> Paused {
        let want = format!("rebound: fault-injection: paused after watch {k}");
        self.pause("REBOUND_FAULT_PAUSE_AFTER_WATCH", k, want, resume_file)
    }

    fn pause(mut self, var: &str, k: u64, want: String, resume_file: &Path) -> Paused {
        let mut child = self
            .cmd
            .env(var, k.to_string())
            .env("REBOUND_FAULT_RESUME_FILE", resume_file)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut seen = Vec::new();
        loop {
            let mut line = String::new();
            if stderr.read_line(&mut line).unwrap() == 0 {
                let out = child.wait_with_output().unwrap();
                panic!(
                    "ended without printing {want:?}: {}\n{}{}",
                    out.status,
                    String::from_utf8_lossy(&out.stdout),
                    seen.concat()
                );
            }
            if line.trim_end() == want {
                break;
            }
            seen.push(line);
        }
        Paused {
            child,
            stderr,
            resume_file: resume_file.to_path_buf(),
        }
    }

    /// Starts the run in the background.
    pub fn spawn(mut self) -> std::process::Child {
        self.cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }
}

/// A run paused before one of its mutations ([`TestCommand::pause_at`]).
#[derive(Debug)]
pub struct Paused {
    child: std::process::Child,
    stderr: BufReader<std::process::ChildStderr>,
    resume_file: PathBuf,
}

impl Paused {
    /// Lets the run go on and waits for its end.
    pub fn resume(mut self) -> Run {
        std::fs::write(&self.resume_file, b"go\n").unwrap();
        let mut err = Vec::new();
        std::io::Read::read_to_end(&mut self.stderr, &mut err).unwrap();
        let mut out = self.child.wait_with_output().unwrap();
        out.stderr = err;
        Run { out }
    }
}

/// The outcome of a run.
#[derive(Debug)]
pub struct Run {
    pub out: Output,
}

impl Run {
    pub fn code(&self) -> Option<i32> {
        self.out.status.code()
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }

    /// Standard output and error together.
    pub fn text(&self) -> String {
        format!("{}{}", self.stdout(), self.stderr())
    }

    /// Asserts the exit status (and that nothing panicked), showing the output if not.
    pub fn expect_code(self, code: i32) -> Run {
        assert_eq!(
            self.code(),
            Some(code),
            "unexpected exit status\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout(),
            self.stderr()
        );
        self.no_panic()
    }

    pub fn no_panic(self) -> Run {
        assert!(
            !self.stderr().contains("panicked"),
            "the binary panicked:\n{}",
            self.stderr()
        );
        self
    }

    /// Asserts the combined output contains every needle.
    pub fn says(self, needles: &[&str]) -> Run {
        let t = self.text();
        for n in needles {
            assert!(t.contains(n), "output lacks {n:?}:\n{t}");
        }
        self
    }

    /// Standard output parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.out.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout()))
    }
}

/// A mounted filesystem, unmounted (lazily, so a failed test cannot leave it busy)
/// when dropped.
#[derive(Debug)]
pub struct Mount {
    pub target: PathBuf,
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.target).status();
    }
}

/// Runs a setup command; `Err` with a message saying why if it fails or is missing.
pub fn sh(prog: &str, args: &[&OsStr]) -> Result<(), String> {
    match Command::new(prog).args(args).output() {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!(
            "`{prog} {}` failed: {}",
            args.iter()
                .map(|a| a.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" "),
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Err(format!("`{prog}` cannot run: {e}")),
    }
}

/// Mounts (`mount <args> <target>`), returning a guard, or why it is impossible.
pub fn mount(args: &[&OsStr], target: &Path) -> Result<Mount, String> {
    let mut all: Vec<&OsStr> = args.to_vec();
    all.push(target.as_os_str());
    sh("mount", &all)?;
    Ok(Mount {
        target: target.to_path_buf(),
    })
}

/// Prints why a test is skipped (it needs root and mounts), in a form a CI log shows.
/// Written straight to the process's standard error, past the test harness's output
/// capture, so that the CI log shows every skip.
pub fn skip(test: &str, why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
}
