//! Who waits for whom (issue items 17 and 18). Writers (boot, commit, update, seal)
//! lock every replica root of their sets, so two configuration files naming the same
//! roots no longer run at once (the lock used to be on the configuration file); a
//! waiting writer says who holds the lock and gives up after `--wait` seconds with exit
//! status 2 (it used to wait forever, silently); readers (verify, status,
//! every --dry-run) take no lock and never wait.

use std::io::{BufRead, BufReader};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::{Child, ChildStderr, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::util::{Dir, Run, TestCommand, DATA, SYS};

/// A `rebound` run paused before its k-th filesystem mutation, holding its locks;
/// killed when dropped.
struct Paused {
    child: Child,
    _stderr: BufReader<ChildStderr>,
}

impl Paused {
    fn start(cmd: TestCommand, k: u64) -> Paused {
        let mut cmd = cmd.cmd;
        let mut child = cmd
            .env("REBOUND_FAULT_PAUSE_AT", k.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let want = format!("rebound: fault-injection: paused before mutation {k}");
        let mut seen = Vec::new();
        loop {
            let mut line = String::new();
            if stderr.read_line(&mut line).unwrap() == 0 {
                panic!("the run ended before pausing at mutation {k}: {seen:?}");
            }
            if line.trim_end() == want {
                break;
            }
            seen.push(line);
        }
        Paused {
            child,
            _stderr: stderr,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `cmd`, failing the test if it has not finished within `limit` (it is killed).
fn run_within(cmd: TestCommand, limit: Duration) -> (Run, Duration) {
    let mut cmd = cmd.cmd;
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let started = Instant::now();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => (Run { out: out.unwrap() }, started.elapsed()),
        Err(_) => {
            let _ = std::process::Command::new("kill")
                .arg("-9")
                .arg(pid.to_string())
                .status();
            panic!("`rebound` still running after {limit:?}: it waited for a lock");
        }
    }
}

/// A sealed golden device with one damaged file, so that a boot has repairs to make
/// (and can be paused before the first of them, holding its locks).
fn damaged(name: &str) -> Dir {
    let d = Dir::golden_device(name, &["copy"]);
    d.run(["seal"], 0);
    d.remove("usr/apn_cfg.json");
    d
}

const SOON: Duration = Duration::from_secs(20);

#[test]
fn readers_do_not_wait_behind_a_writer_and_say_that_it_is_running() {
    let d = damaged("lock-readers");
    let boot = Paused::start(d.cmd(["boot"]), 1);
    let holder = format!("pid {}", boot.pid());
    // Each finishes at once (they used to wait forever), with its real status, and says
    // on stderr that a writer is at work on those roots.
    let sys = d.path("usr/system_config.json");
    let sys = sys.to_str().unwrap();
    let fota = d.path("fota");
    d.write("fota/app/main.py", "print('v2')\n");
    for (args, code) in [
        (vec!["verify"], 1),
        (vec!["boot", "--dry-run"], 1),
        (vec!["status"], 0),
        (vec!["verify", "--json"], 1),
        // A dry run writes nothing: a reader too.
        (vec!["commit", "--dry-run", sys], 0),
        (
            vec![
                "update",
                "config",
                "--dry-run",
                "--from",
                fota.to_str().unwrap(),
            ],
            0,
        ),
        (vec!["seal", "--dry-run", "--force"], 0),
    ] {
        let (r, _) = run_within(d.cmd(&args), SOON);
        let r = r.expect_code(code);
        assert!(
            r.stderr().contains(&holder) && r.stderr().contains("is writing to"),
            "{args:?}: {}",
            r.stderr()
        );
    }
    // JSON stays JSON: the note is on stderr.
    run_within(d.cmd(["verify", "--json"]), SOON).0.json();
}

#[test]
fn a_writer_says_who_holds_the_lock_and_gives_up_after_wait_with_exit_2() {
    let d = damaged("lock-wait");
    let boot = Paused::start(d.cmd(["boot"]), 1);
    d.write("usr/system_config.json", "{\"volume\": 9}\n");
    let (r, took) = run_within(
        d.cmd(["commit", "--wait", "1", "usr/system_config.json"]),
        SOON,
    );
    let r = r.expect_code(2).says(&[
        "waiting for the lock on",
        &format!("held by pid {} (", boot.pid()),
        "boot",
        "nothing was done",
        "--wait",
    ]);
    assert_eq!(
        r.stderr().matches("waiting for the lock").count(),
        1,
        "said once: {}",
        r.stderr()
    );
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(10),
        "gave up after {took:?}"
    );
    // `--wait 0`: at once.
    let (r, took) = run_within(d.cmd(["--wait", "0", "boot"]), SOON);
    r.expect_code(2)
        .says(&[&format!("locked by pid {}", boot.pid())]);
    assert!(took < Duration::from_secs(5), "{took:?}");
    // Once the holder is gone, a waiting writer goes ahead.
    let waiting = std::thread::spawn({
        let cmd = d.cmd(["commit", "--wait", "30", "usr/system_config.json"]);
        move || run_within(cmd, Duration::from_secs(60))
    });
    std::thread::sleep(Duration::from_millis(500));
    drop(boot);
    let (r, _) = waiting.join().unwrap();
    r.expect_code(0).says(&["result: committed"]);
    assert_eq!(d.read("usr/apn_cfg.json"), "{\"apn\": \"factory\"}\n");
}

#[test]
fn two_configurations_naming_the_same_roots_are_serialized() {
    let d = damaged("lock-two-configs");
    // Another file, another name, the same roots (one of them through a link).
    std::os::unix::fs::symlink(d.path("usr"), d.path("usr-link")).unwrap();
    let other = d.read("rebound.toml").replace(
        d.path("usr").to_str().unwrap(),
        d.path("usr-link").to_str().unwrap(),
    );
    assert!(other.contains("usr-link"));
    d.write("other.toml", &other);
    let boot = Paused::start(d.cmd(["boot"]), 1);
    let (r, _) = run_within(
        TestCommand::bare()
            .arg("-c")
            .arg(d.path("other.toml"))
            .arg("--wait")
            .arg("1")
            .arg("boot"),
        SOON,
    );
    r.expect_code(2)
        .says(&[&format!("held by pid {}", boot.pid())]);
    drop(boot);
    TestCommand::bare()
        .arg("-c")
        .arg(d.path("other.toml"))
        .arg("boot")
        .run()
        .expect_code(0)
        .says(&["result: repaired"]);
}

#[test]
fn a_replica_root_being_created_is_locked_through_its_parent() {
    // The backup side of a mirror set does not exist yet: the first boot creates it.
    let d = Dir::mirror_device("lock-create", &[SYS, DATA]);
    assert!(!d.exists(DATA));
    let first = Paused::start(d.cmd(["boot"]), 1);
    let (r, _) = run_within(d.cmd(["--wait", "1", "boot"]), SOON);
    r.expect_code(2).says(&[
        d.path("usrdata").to_str().unwrap(),
        &format!("pid {}", first.pid()),
    ]);
    drop(first);
    // Paused once the root exists: a second run locks the root itself now (it holds
    // the parent only shared), and still waits.
    let second = (2..40)
        .map(|k| Paused::start(d.cmd(["boot"]), k))
        .find(|_| d.exists(DATA))
        .unwrap();
    let (r, _) = run_within(d.cmd(["--wait", "1", "boot"]), SOON);
    r.expect_code(2).says(&[&format!("pid {}", second.pid())]);
    drop(second);
    d.run(["boot"], 0);
    d.run(["verify"], 0);
}

/// Takes an exclusive `flock` on a directory, as a writing rebound does.
fn hold(dir: &Path) -> OwnedFd {
    let fd = rustix::fs::open(
        dir,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY,
        rustix::fs::Mode::empty(),
    )
    .unwrap();
    rustix::fs::flock(&fd, rustix::fs::FlockOperation::LockExclusive).unwrap();
    fd
}

#[test]
fn a_lock_on_the_golden_copy_alone_holds_back_seal_and_names_its_holder() {
    let d = Dir::golden_device("lock-golden", &[]);
    d.run(["seal"], 0);
    let held = hold(&d.path("bak"));
    let (r, _) = run_within(d.cmd(["--wait", "1", "seal", "--force"]), SOON);
    r.expect_code(2).says(&[
        d.path("bak").to_str().unwrap(),
        &format!("pid {}", std::process::id()),
    ]);
    // No lock file was created anywhere.
    assert!(!d
        .snapshot("")
        .keys()
        .any(|p| p.to_string_lossy().contains("lock")));
    drop(held);
    d.run(["seal", "--force"], 0);
}

#[test]
fn a_writer_whose_report_nobody_reads_yet_holds_back_no_other_writer() {
    // A report larger than a pipe's buffer (64 KiB): the boot blocks writing it until
    // someone reads, as under `rebound boot | less`.
    let d = Dir::golden_device("lock-report", &[]);
    for i in 0..400 {
        d.write(
            &format!("usr/app/many/file-{i:03}.py"),
            format!("n = {i}\n"),
        );
    }
    d.run(["seal"], 0);
    d.remove("usr/app/many");
    let mut cmd = d.cmd(["boot"]).cmd;
    let mut first = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Its repairs are done once everything verifies; its locks must be free by then.
    let started = Instant::now();
    while d.cmd(["verify"]).run().code() != Some(0) {
        assert!(
            started.elapsed() < SOON,
            "the boot did not finish its repairs"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (r, _) = run_within(d.cmd(["--wait", "10", "boot"]), SOON);
    r.expect_code(0).says(&["result: intact"]);
    let mut report = String::new();
    std::io::Read::read_to_string(&mut first.stdout.take().unwrap(), &mut report).unwrap();
    assert_eq!(first.wait().unwrap().code(), Some(0));
    assert!(report.len() > 64 * 1024, "{} bytes", report.len());
}
