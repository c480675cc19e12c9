//! What a report says and how it gets out: issue items 15 (`boot --dry-run` exit
//! status), 19 (a closed pipe), 21 (control characters in names), 22 (wording that
//! misled) and 23 (the repair record's size: now the event log's, history.rs).

use std::io::Read;
use std::process::Stdio;

use crate::util::{Dir, TestCommand};

#[test]
fn boot_dry_run_exits_1_on_damage_like_verify_and_0_when_intact() {
    let d = Dir::golden_device("dry-exit", &[]);
    d.run(["seal"], 0);
    d.run(["boot", "--dry-run"], 0).says(&["result: intact"]);
    d.write("usr/app/main.py", "rot");
    d.run(["boot", "--dry-run"], 1)
        .says(&["result: damage found"]);
    d.run(["boot", "--dry-run", "--json"], 1).json();
    d.run(["verify"], 1);
    d.run(["boot"], 0);
    d.run(["boot", "--dry-run"], 0);
}

/// Runs `args` with its standard output (and, with `close_stderr`, its standard error)
/// a pipe whose read end is closed before the run starts: every write to it fails
/// with EPIPE, as under `| head -1` or a logger that exited.
fn into_closed_pipe(d: &Dir, args: &[&str], close_stderr: bool) -> (Option<i32>, String) {
    let closed = || -> Stdio {
        let (read, write) = rustix::pipe::pipe().unwrap();
        drop(read);
        Stdio::from(write)
    };
    let mut cmd = d.cmd(args).cmd;
    let mut child = cmd
        .stdout(closed())
        .stderr(if close_stderr {
            closed()
        } else {
            Stdio::piped()
        })
        .spawn()
        .unwrap();
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        e.read_to_string(&mut err).unwrap();
    }
    (child.wait().unwrap().code(), err)
}

#[test]
fn a_report_written_into_a_closed_pipe_keeps_the_real_exit_status_after_the_repairs() {
    let d = Dir::golden_device("epipe", &["copy"]);
    d.run(["seal"], 0);
    for close_stderr in [false, true] {
        d.remove("usr/apn_cfg.json");
        d.write("copy/app/main.py", "rot");
        // `rebound boot` under a logger that exited: the repairs are done, exit 0, no
        // panic (it used to abort with 134, or 101 in a debug build).
        let (code, err) = into_closed_pipe(&d, &["boot"], close_stderr);
        assert_eq!(code, Some(0), "close_stderr={close_stderr}: {err}");
        assert!(!err.contains("panicked"), "{err}");
        assert!(!err.contains("error"), "{err}");
        assert_eq!(d.read("usr/apn_cfg.json"), "{\"apn\": \"factory\"}\n");
        assert_eq!(d.read("copy/app/main.py"), "print('v1')\n");
    }
    // `rebound status | head -1`, JSON and text; and a report with a real status.
    for args in [&["status"][..], &["status", "--json"], &["boot", "--json"]] {
        let (code, err) = into_closed_pipe(&d, args, false);
        assert_eq!(code, Some(0), "{args:?}: {err}");
        assert!(err.is_empty(), "{args:?}: {err}");
    }
    d.write("usr/app/main.py", "rot");
    let (code, err) = into_closed_pipe(&d, &["verify"], false);
    assert_eq!(code, Some(1), "{err}");
}

#[test]
fn names_with_newlines_and_terminal_escapes_stay_on_one_report_line() {
    let d = Dir::golden_device("escape", &["copy"]);
    let evil = "app/x\n  result: intact\n  found: nothing";
    let esc = "app/\u{1b}[2Jclear\\.py";
    d.write(&format!("usr/{evil}"), "one");
    d.write(&format!("usr/{esc}"), "two");
    d.run(["seal"], 0);
    d.write(&format!("usr/{evil}"), "rot");
    d.write(&format!("copy/{esc}"), "rot");
    for (args, code) in [
        (&["verify"][..], 1),
        (&["boot", "--dry-run"], 1),
        (&["boot"], 0),
        (&["status"], 0),
    ] {
        let r = d.run(args, code);
        let out = r.stdout();
        assert!(!out.contains('\u{1b}'), "{args:?}: raw escape in:\n{out}");
        for l in out.lines() {
            assert!(
                l.starts_with("set ")
                    || l.starts_with("  ") && !l.starts_with("   ")
                    || l.starts_with("    last repair: ")
                    || l.starts_with("    repair: "),
                "{args:?}: a line that is no report line: {l:?}\n{out}"
            );
            assert!(
                !l.starts_with("  found: nothing") && l != "  result: intact",
                "{args:?}: a name faked a line: {l:?}\n{out}"
            );
        }
        if args != ["status"] {
            assert!(
                out.contains("x\\n  result: intact\\n  found: nothing")
                    && out.contains("\\x1b[2Jclear\\\\.py"),
                "{args:?}: names not shown escaped:\n{out}"
            );
        }
    }
    // The event log keeps one line per action too, in status and in `rebound log`.
    let st = d.run(["status"], 0).stdout();
    assert!(
        st.contains("x\\n  result: intact") && st.contains("\\x1b[2Jclear"),
        "{st}"
    );
    let log = d.run(["log"], 0).stdout();
    assert!(!log.contains('\u{1b}'), "raw escape in:\n{log}");
    for l in log.lines() {
        assert!(
            l.starts_with("set ")
                || l.starts_with("  #")
                || l.starts_with("    repair: ")
                || l.starts_with("    change: ")
                || l.starts_with("    ... and "),
            "a line that is no log line: {l:?}\n{log}"
        );
    }
    assert!(log.contains("x\\n  result: intact"), "{log}");
    // JSON keeps the names as they are (serde escapes them).
    let j = d.run(["status", "--json"], 0).json();
    let repairs = j[0]["history"]["last_repair"]["actions"]
        .as_array()
        .unwrap();
    assert!(repairs
        .iter()
        .any(|a| a["path"].as_str().unwrap().contains('\u{1b}')));
}

#[test]
fn seal_filling_extra_copies_says_filled_once_per_copy_and_records_no_repair() {
    let d = Dir::golden_device("seal-fill", &["copy", "copy2"]);
    let r = d.run(["seal"], 0);
    let out = r.stdout();
    r.says(&[
        &format!("filled copy {}: 4 files", d.path("copy").display()),
        &format!("filled copy {}: 4 files", d.path("copy2").display()),
        &format!("filled golden copy {}: 4 files", d.path("bak").display()),
        "result: sealed",
    ]);
    assert!(
        !out.contains("found:") && !out.contains("repaired") && !out.contains("done: restore"),
        "{out}"
    );
    // One line per copy, never one per file: no protected file is named, and the
    // report has a line per step of the seal itself (golden manifest, marker, the
    // commit point), not per file.
    for f in ["apn_cfg.json", "system_config.json", "main.py", "util.py"] {
        assert!(!out.contains(f), "{f} named: {out}");
    }
    assert!(out.lines().count() < 20, "{out}");
    // Not recorded as a repair: status shows none; the log has the seal as a change.
    let st = d.run(["status"], 0).stdout();
    assert!(!st.contains("last repair"), "{st}");
    assert!(
        st.contains("0 repairs") && st.contains("seal changed"),
        "{st}"
    );
    let j = d.run(["log", "--json"], 0).json();
    let actions = j[0]["events"][0]["actions"].as_array().unwrap();
    assert!(actions.iter().all(|a| a["repair"] == false), "{actions:?}");
    // JSON: no findings; the files are listed as installed, the actions as before.
    d.wipe("copy");
    let j = d.run(["seal", "--force", "--json"], 0).json();
    let s = &j["sets"][0];
    assert_eq!(s["plan"]["findings"].as_array().unwrap().len(), 0, "{s}");
    assert_eq!(s["installed"].as_array().unwrap().len(), 4, "{s}");
    assert!(s["outcomes"].as_array().unwrap().len() >= 5);
}

#[test]
fn update_and_commit_say_installed_and_updated_not_corrupt_and_repaired() {
    let d = Dir::golden_device("update-words", &["copy"]);
    d.run(["seal"], 0);
    d.write("new/app/main.py", "print('v2')\n");
    d.write("new/app/extra.py", "x = 1\n");
    let r = d.run(["update", "config", "--from", "new"], 0);
    let out = r.stdout();
    r.says(&[
        &format!("installed: {}", d.path("usr/app/main.py").display()),
        &format!("installed: {}", d.path("copy/app/extra.py").display()),
        "result: updated",
    ]);
    assert!(
        !out.contains("corrupt") && !out.contains("repaired") && !out.contains("found:"),
        "{out}"
    );
    assert!(!d.run(["status"], 0).stdout().contains("last repair"));
    // A commit brings the edit to the copy: installed, committed.
    d.write("usr/apn_cfg.json", "{\"apn\": \"customer\"}\n");
    let r = d.run(["commit", "usr/apn_cfg.json"], 0);
    let r = r.says(&[
        &format!("installed: {}", d.path("copy/apn_cfg.json").display()),
        "result: committed",
    ]);
    assert!(!r.stdout().contains("corrupt"), "{}", r.stdout());
    // Damage found on the way is still damage, repaired and recorded.
    d.write("copy/app/main.py", "rot");
    d.write("usr/apn_cfg.json", "{\"apn\": \"again\"}\n");
    d.run(["commit", "usr/apn_cfg.json"], 0).says(&[
        "copy/app/main.py: corrupt",
        "result: committed; damage found on the way was repaired",
    ]);
    let j = d.run(["status", "--json"], 0).json();
    let repairs: Vec<String> = j[0]["history"]["last_repair"]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["repair"] == true)
        .map(|a| {
            format!(
                "{}/{}",
                a["root"].as_str().unwrap(),
                a["path"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(repairs, [d.path("copy/app/main.py").display().to_string()]);
    assert_eq!(j[0]["history"]["repairs"]["file_from_copy"], 1, "{j}");
}

#[test]
fn verify_says_it_checked_the_golden_copy() {
    let d = Dir::golden_device("verify-golden", &[]);
    d.run(["seal"], 0);
    let r = d.run(["verify"], 0);
    assert!(!r.stdout().contains("not checked"), "{}", r.stdout());
    r.says(&["golden copy: checked"]);
    // Boot, which reads golden only to restore from it, still says it did not check it.
    d.run(["boot"], 0).says(&["golden copy: not checked"]);
}

#[test]
fn an_empty_rebound_config_says_what_to_do() {
    let r = TestCommand::bare()
        .env("REBOUND_CONFIG", "")
        .arg("status")
        .run()
        .expect_code(2);
    let r = r.says(&["REBOUND_CONFIG is set but empty", "unset it"]);
    assert!(!r.text().contains("a value is required"), "{}", r.text());
    // -c wins over it; demo needs no configuration.
    let d = Dir::golden_device("empty-env", &[]);
    d.cmd(["seal"])
        .env("REBOUND_CONFIG", "")
        .run()
        .expect_code(0);
}

#[test]
fn the_event_log_is_bounded() {
    let d = Dir::golden_device("record-bound", &[]);
    for i in 0..300 {
        d.write(
            &format!("usr/app/many/file-{i:03}.py"),
            format!("n = {i}\n"),
        );
    }
    d.run(["seal"], 0);
    d.remove("usr/app/many");
    d.run(["boot"], 0).says(&["result: repaired"]);
    // One event lists at most 50 actions (and 16 KiB of them), counting the rest.
    let j = d.run(["log", "--json"], 0).json();
    let e = &j[0]["events"][1];
    assert_eq!(e["command"], "boot");
    let listed = e["actions"].as_array().unwrap().len();
    assert!((20..=50).contains(&listed), "{listed}: {e}");
    assert_eq!(listed as u64 + e["more_actions"].as_u64().unwrap(), 300);
    d.run(["status"], 0)
        .says(&["last repair: ... and 290 more"]);
    // The whole log stays within its bound however many events come.
    let cfg = d.read("rebound.toml");
    d.write("rebound.toml", format!("events_kept = 5\n{cfg}"));
    for _ in 0..8 {
        d.remove("usr/app/many");
        d.run(["boot"], 0).says(&["result: repaired"]);
        for slot in ["events.0", "events.1"] {
            let log = d.read(&format!("usr/.rebound/config/{slot}"));
            assert!(log.len() <= 256 * 1024, "{} bytes", log.len());
        }
    }
    let j = d.run(["log", "--json"], 0).json();
    let events = j[0]["events"].as_array().unwrap();
    assert_eq!(events.len(), 5);
    // The newest kept, numbered on; the counters count every repair ever made.
    assert_eq!(events[4]["seq"], 10);
    let st = d.run(["status", "--json"], 0).json();
    assert_eq!(st[0]["history"]["repairs"]["file_from_golden"], 9 * 300);
}

#[test]
fn an_event_log_that_cannot_be_written_is_reported_not_skipped() {
    let d = Dir::golden_device("record-fail", &[]);
    d.run(["seal"], 0);
    // Something in the record's place that a file cannot replace: what a full disk
    // does to it too, without needing one.
    // The seal wrote event 1 to slot 1; the boot's event 2 goes to slot 0.
    std::fs::create_dir_all(d.path("usr/.rebound/config/events.0/x")).unwrap();
    d.remove("usr/apn_cfg.json");
    d.run(["boot"], 0).says(&[
        "note: the event log",
        "events.0 was not updated",
        "the protected files are not affected",
        "result: repaired",
    ]);
    assert_eq!(d.read("usr/apn_cfg.json"), "{\"apn\": \"factory\"}\n");
}
