//! `rebound write PATH`: new content for a protected file, from standard input or
//! `--from FILE`, replaced and committed as one change. Killed before each of its
//! mutations and booted, every copy holds the old committed content or the new one,
//! whole; never a torn file, never the factory version.

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;

use crate::update::{assert_old_then_new, kill_loop};
use crate::util::Dir;

/// A sealed golden device with an extra copy (`copy`), and `apn_cfg.json` committed
/// with its own content and mode 600, so neither the factory content nor the factory
/// mode is what a write must keep. `tmp/` is the runs' TMPDIR, where the standard-input
/// spool goes.
fn device(name: &str) -> Dir {
    let d = Dir::golden_device(name, &["copy"]);
    std::fs::create_dir(d.path("tmp")).unwrap();
    d.run(["seal"], 0);
    d.write("usr/apn_cfg.json", "{\"apn\": \"committed\"}\n");
    std::fs::set_permissions(d.path("usr/apn_cfg.json"), PermissionsExt::from_mode(0o600)).unwrap();
    d.run(["commit", "usr/apn_cfg.json"], 0);
    d
}

fn mode(d: &Dir, rel: &str) -> u32 {
    std::fs::metadata(d.path(rel)).unwrap().permissions().mode() & 0o7777
}

/// Runs `rebound write ARGS` with `input` on standard input, TMPDIR the device's `tmp/`.
fn write_stdin(d: &Dir, args: &[&str], input: &[u8]) -> std::process::Output {
    let mut c = d.cmd(["write"]).env("TMPDIR", d.path("tmp")).cmd;
    c.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    // A refused write exits before reading its input: a closed pipe is expected then.
    match child.stdin.take().unwrap().write_all(input) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        r => r.unwrap(),
    }
    child.wait_with_output().unwrap()
}

#[test]
fn write_from_stdin_replaces_and_commits_keeping_the_recorded_mode() {
    let d = device("write-stdin");
    let o = write_stdin(&d, &["usr/apn_cfg.json"], b"{\"apn\": \"written\"}\n");
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("result: written"));
    for r in ["usr", "copy"] {
        assert_eq!(
            d.read(&format!("{r}/apn_cfg.json")),
            "{\"apn\": \"written\"}\n"
        );
        assert_eq!(mode(&d, &format!("{r}/apn_cfg.json")), 0o600, "{r}");
    }
    d.run(["verify"], 0);
    // The next boot keeps it: it is what the manifest records.
    d.run(["boot"], 0);
    assert_eq!(d.read("usr/apn_cfg.json"), "{\"apn\": \"written\"}\n");
    // No spool is left behind: not in TMPDIR, where it was, nor in the staging area.
    assert_eq!(
        std::fs::read_dir(d.path("tmp")).unwrap().count(),
        0,
        "the standard-input spool was left in TMPDIR"
    );
    assert!(d
        .snapshot("usr/.rebound")
        .keys()
        .all(|p| !p.to_string_lossy().contains("/stage/")));
}

#[test]
fn write_a_new_file_gets_644_or_the_given_mode_and_from_file_works() {
    let d = device("write-new");
    let o = write_stdin(&d, &["usr/app/new.cfg"], b"new\n");
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(mode(&d, "usr/app/new.cfg"), 0o644);
    assert_eq!(d.read("copy/app/new.cfg"), "new\n");
    let o = write_stdin(&d, &["usr/app/secret.cfg", "--mode", "0640"], b"s\n");
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(mode(&d, "usr/app/secret.cfg"), 0o640);
    assert_eq!(mode(&d, "copy/app/secret.cfg"), 0o640);
    // --mode changes the recorded mode of an existing file too.
    let o = write_stdin(&d, &["usr/apn_cfg.json", "--mode", "644"], b"m\n");
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(mode(&d, "copy/apn_cfg.json"), 0o644);
    // --from FILE: its content; the file is left where it is.
    d.write("incoming.json", "{\"apn\": \"from file\"}\n");
    d.run(["write", "usr/apn_cfg.json", "--from", "incoming.json"], 0);
    assert_eq!(d.read("copy/apn_cfg.json"), "{\"apn\": \"from file\"}\n");
    assert_eq!(d.read("incoming.json"), "{\"apn\": \"from file\"}\n");
    d.run(["verify"], 0);
}

#[test]
fn write_refuses_what_it_must_not_touch_and_writes_nothing() {
    let d = device("write-refused");
    let before = d.snapshot(".");
    for (path, says) in [
        ("usr/not-selected.txt", "not protected by any set"),
        ("bak/apn_cfg.json", "golden copy"),
        ("elsewhere/apn_cfg.json", "not protected by any set"),
        // A file where protected files have their directory, or below a protected
        // file: no copy could hold that manifest, so every later boot would fail.
        ("usr/app/lib", "is a directory of protected files"),
        ("usr/app/main.py/x", "cannot also be a directory"),
    ] {
        let o = write_stdin(&d, &[path], b"x\n");
        assert_eq!(o.status.code(), Some(2), "{path}");
        // A usage error goes to standard error, a set's refusal to its report.
        let err =
            String::from_utf8_lossy(&o.stderr).to_string() + &String::from_utf8_lossy(&o.stdout);
        assert!(
            err.contains(says) && !err.contains("panicked"),
            "{path}: {err}"
        );
    }
    d.run(["write", "usr/apn_cfg.json", "--from", "missing.json"], 2)
        .says(&["missing.json: does not exist"]);
    d.run(["write", "usr/apn_cfg.json", "--mode", "8"], 2)
        .says(&["octal"]);
    let o = write_stdin(&d, &["usr/apn_cfg.json", "--dry-run"], b"dry\n");
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("would: stage") && out.contains("would: commit"),
        "{out}"
    );
    assert_eq!(
        d.snapshot("."),
        before,
        "a refused or dry-run write changed something"
    );
}

#[test]
fn write_killed_at_every_mutation_keeps_the_old_content_or_the_new_never_torn() {
    let old = "{\"apn\": \"committed\"}\n";
    let new =
        "{\"apn\": \"written at last\", \"pad\": \"".to_string() + &"x".repeat(9000) + "\"}\n";
    let make = |k: u64| {
        let d = device(&format!("write-kill-{k}"));
        d.write("incoming.json", &new);
        d
    };
    let outcomes = std::cell::RefCell::new(Vec::new());
    let which = |d: &Dir, k: u64| -> &'static str {
        let now: Vec<String> = ["usr", "copy"]
            .iter()
            .map(|r| d.read(&format!("{r}/apn_cfg.json")))
            .collect();
        if now.iter().all(|c| c == old) {
            "old"
        } else if now.iter().all(|c| *c == new) {
            "new"
        } else {
            panic!("write killed before mutation {k}: after boot the copies hold {now:?}")
        }
    };
    kill_loop(
        "write-kill",
        &make,
        &["write", "usr/apn_cfg.json", "--from", "incoming.json"],
        &|d, k| {
            d.run(["boot"], 0);
            outcomes.borrow_mut().push(which(d, k));
            assert_eq!(
                mode(d, "usr/apn_cfg.json"),
                0o600,
                "killed before mutation {k}"
            );
            d.run(["verify"], 0);
        },
        &|d| {
            d.run(["verify"], 0);
            assert_eq!(which(d, 0), "new");
        },
    );
    let o = outcomes.into_inner();
    assert_old_then_new(&o);
}
