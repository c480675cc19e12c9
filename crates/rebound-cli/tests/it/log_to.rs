//! Messages where early boot can see them (`log_to`, `--log-to`; issue 14 item 4):
//! standard error with `<N>` prefixes, the kernel log and the system logger. The
//! kernel log and syslog tests run the binary in a private mount namespace (`unshare
//! --mount`, root) where a file stands in for `/dev/kmsg` and the real busybox
//! `syslogd` listens on `/dev/log`; where that is impossible they print `SKIPPED
//! <test>: <why>` and pass. The lab guest checks the real `/dev/kmsg` (tests/powercut).

use std::process::Command;

use crate::util::{bin_argv, skip, Dir, TestCommand};

fn sealed(name: &str) -> Dir {
    let d = Dir::golden_device(name, &[]);
    d.run(["seal"], 0);
    d
}

/// Two repairs for the next boot: a deleted file and an edited one.
fn damage(d: &Dir) {
    d.remove("usr/apn_cfg.json");
    d.write("usr/app/main.py", "print('tampered')\n");
}

/// The `<N>rebound: ` lines of a run's standard error.
fn prefixed(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter(|l| l.starts_with('<') && l.contains(">rebound: "))
        .map(String::from)
        .collect()
}

fn assert_repair_lines(lines: &[String]) {
    assert_eq!(
        lines.first().map(String::as_str),
        Some("<5>rebound: boot: set `config`: 2 repaired, 0 lost, generation 1, boot 1"),
        "{lines:#?}"
    );
    assert_eq!(lines.len(), 3, "{lines:#?}");
    for l in &lines[1..] {
        assert!(
            l.starts_with("<4>rebound: boot: set `config`: repaired: restore "),
            "{l}"
        );
    }
    assert!(lines.iter().any(|l| l.contains("/usr/apn_cfg.json from ")));
    assert!(lines.iter().any(|l| l.contains("/usr/app/main.py from ")));
}

#[test]
fn log_to_stderr_flag_gives_notice_summary_and_warning_per_repair() {
    let d = sealed("logto-flag");
    damage(&d);
    let r = d.run(["--log-to", "stderr", "boot"], 0);
    assert_repair_lines(&prefixed(&r.stderr()));
    // The report on standard output is the same as without the flag.
    assert!(r.stdout().contains("result: repaired"));
    assert!(!r.stdout().contains("<5>"));
}

#[test]
fn log_to_stderr_in_the_configuration_does_the_same_and_the_flag_overrides_it() {
    let d = sealed("logto-config");
    let cfg = d.read("rebound.toml");
    d.config(&format!("log_to = \"stderr\"\n{cfg}"));
    damage(&d);
    let r = d.run(["boot"], 0);
    assert_repair_lines(&prefixed(&r.stderr()));
    // The flag wins over the configuration (kmsg there, stderr on the command line;
    // not the other way round: a test must not write to the machine's kernel log).
    d.config(&format!("log_to = \"kmsg\"\n{cfg}"));
    damage(&d);
    let r = d.run(["--log-to", "stderr", "boot"], 0);
    assert_repair_lines(&prefixed(&r.stderr()));
}

#[test]
fn an_intact_boot_says_so_at_info() {
    let d = sealed("logto-intact");
    let r = d.run(["boot", "--log-to", "stderr"], 0);
    assert_eq!(
        prefixed(&r.stderr()),
        ["<6>rebound: boot: set `config`: intact, 4 files, generation 1, boot 1"]
    );
    // A dry run and verify repair nothing, and a commit is the application's
    // business: none of them sends anything when nothing is lost or failed.
    damage(&d);
    let r = d.run(["verify", "--log-to", "stderr"], 1);
    assert!(prefixed(&r.stderr()).is_empty(), "{}", r.stderr());
    let r = d.run(["boot", "--dry-run", "--log-to", "stderr"], 1);
    assert!(prefixed(&r.stderr()).is_empty(), "{}", r.stderr());
    d.run(["boot"], 0);
    d.write("usr/apn_cfg.json", "{\"apn\": \"new\"}\n");
    let r = d.run(["commit", "--log-to", "stderr", "usr/apn_cfg.json"], 0);
    assert!(prefixed(&r.stderr()).is_empty(), "{}", r.stderr());
}

#[test]
fn a_lost_file_is_an_error_line() {
    let d = sealed("logto-lost");
    d.remove("bak/apn_cfg.json");
    d.remove("usr/apn_cfg.json");
    let r = d.run(["boot", "--log-to", "stderr"], 3);
    let lines = prefixed(&r.stderr());
    assert_eq!(
        lines,
        [
            "<3>rebound: boot: set `config`: 0 repaired, 1 lost, generation 1, boot 1",
            "<3>rebound: boot: set `config`: LOST: apn_cfg.json: no intact copy anywhere; left as it is",
        ]
    );
    // verify sends the loss too (exit 3 is no business of the application alone).
    let r = d.run(["verify", "--log-to", "stderr"], 3);
    assert_eq!(prefixed(&r.stderr()).len(), 2, "{}", r.stderr());
}

#[test]
fn a_run_that_fails_as_a_whole_sends_its_error() {
    let d = Dir::new("logto-fail");
    let r = d.run(["boot", "--log-to", "stderr"], 2);
    let lines = prefixed(&r.stderr());
    assert_eq!(lines.len(), 1, "{}", r.stderr());
    assert!(
        lines[0].starts_with("<3>rebound: boot: error: configuration "),
        "{}",
        lines[0]
    );
    // Commands without a report (status, check-config) send nothing.
    let r = d.run(["status", "--log-to", "stderr"], 2);
    assert!(prefixed(&r.stderr()).is_empty(), "{}", r.stderr());
}

/// A run of the binary under `unshare --mount` (private propagation): `script` runs
/// first with `$1` = a scratch directory, then `"$@"` holds the binary and its
/// arguments (`-c <root>/rebound.toml ARGS`). `None` (after printing why) when mount
/// namespaces cannot be made here.
fn namespaced(test: &str, d: &Dir, script: &str, args: &[&str]) -> Option<TestCommand> {
    match Command::new("unshare")
        .args(["--mount", "--propagation", "private", "true"])
        .output()
    {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            skip(
                test,
                &format!(
                    "`unshare --mount` failed (needs root): {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                ),
            );
            return None;
        }
        Err(e) => {
            skip(test, &format!("`unshare` cannot run (util-linux): {e}"));
            return None;
        }
    }
    let scratch = d.path("ns");
    std::fs::create_dir_all(&scratch).unwrap();
    let mut cmd = Command::new("unshare");
    cmd.args([
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        script,
        "sh",
    ])
    .arg(&scratch)
    .args(bin_argv())
    .arg("-c")
    .arg(d.path("rebound.toml"))
    .args(args)
    .current_dir(d.root())
    .env_remove("REBOUND_CONFIG")
    .env_remove("REBOUND_FAULT_PAUSE_AT")
    .env_remove("REBOUND_FAULT_RESUME_FILE")
    .env_remove("REBOUND_FAULT_SKIP_SYNC");
    Some(TestCommand { cmd })
}

/// Stands a regular file in for /dev/kmsg (read-only with `ro`).
const FAKE_KMSG: &str = r#"set -e
T=$1; shift
: > "$T/kmsg"
mount --bind "$T/kmsg" /dev/kmsg
[ "${RO:-}" = 1 ] && mount -o remount,bind,ro /dev/kmsg
exec "$@"
"#;

#[test]
fn kmsg_gets_one_record_per_line_with_its_priority() {
    let test = "kmsg_gets_one_record_per_line_with_its_priority";
    let d = sealed("logto-kmsg");
    damage(&d);
    let Some(c) = namespaced(test, &d, FAKE_KMSG, &["--log-to", "kmsg", "boot"]) else {
        return;
    };
    let r = c.run().expect_code(0);
    let text = std::fs::read_to_string(d.path("ns/kmsg")).unwrap();
    let lines: Vec<String> = text.lines().map(String::from).collect();
    assert_repair_lines(&lines);
    // Nothing on standard error: it all went to the kernel log.
    assert!(prefixed(&r.stderr()).is_empty(), "{}", r.stderr());
}

#[test]
fn kmsg_refusing_is_one_warning_and_changes_no_exit_status() {
    let test = "kmsg_refusing_is_one_warning_and_changes_no_exit_status";
    let d = sealed("logto-kmsg-ro");
    damage(&d);
    let Some(c) = namespaced(test, &d, FAKE_KMSG, &["--log-to", "kmsg", "boot"]) else {
        return;
    };
    let r = c.env("RO", "1").run().expect_code(0);
    let warnings: Vec<String> = r
        .stderr()
        .lines()
        .filter(|l| l.starts_with("rebound: warning:"))
        .map(String::from)
        .collect();
    assert_eq!(warnings.len(), 1, "{}", r.stderr());
    assert!(
        warnings[0].contains("/dev/kmsg") && warnings[0].contains("3 of 3 messages not sent"),
        "{}",
        warnings[0]
    );
    assert!(r.stdout().contains("result: repaired"));
    assert_eq!(d.read("usr/app/main.py"), "print('v1')\n");
}

/// A private /dev (a directory holding only null, zero, random and urandom, bound from
/// the real one) where the real busybox syslogd makes its /dev/log socket and logs to
/// `$1/messages`; the run's exit status is the script's. It waits (at most 5 s) for
/// `$EXPECT` lines from rebound in the log before it stops syslogd.
const BUSYBOX_SYSLOGD: &str = r#"set -e
T=$1; shift
mkdir -p "$T/dev"
for n in null zero random urandom; do
    : > "$T/dev/$n"
    mount --bind "/dev/$n" "$T/dev/$n"
done
mount --bind "$T/dev" /dev
busybox syslogd -n -O "$T/messages" &
pid=$!
i=0
while [ ! -S /dev/log ]; do
    i=$((i + 1)); [ $i -lt 100 ] || { echo "syslogd made no /dev/log" >&2; exit 97; }
    sleep 0.05
done
rc=0
"$@" || rc=$?
i=0
while [ "$(grep -c 'rebound\[' "$T/messages" 2>/dev/null || true)" -lt "$EXPECT" ] && [ $i -lt 100 ]; do
    i=$((i + 1)); sleep 0.05
done
kill "$pid"
wait "$pid" 2>/dev/null || :
exit "$rc"
"#;

#[test]
fn syslog_reaches_the_real_busybox_syslogd_as_facility_daemon() {
    let test = "syslog_reaches_the_real_busybox_syslogd_as_facility_daemon";
    match Command::new("busybox")
        .arg("syslogd")
        .arg("--help")
        .output()
    {
        Ok(o) if String::from_utf8_lossy(&o.stderr).contains("syslogd") => {}
        _ => {
            return skip(
                test,
                "no busybox with syslogd (Debian package busybox or busybox-static)",
            )
        }
    }
    let d = sealed("logto-syslog");
    damage(&d);
    // A lost file too: the err lines.
    d.remove("bak/system_config.json");
    d.remove("usr/system_config.json");
    let Some(c) = namespaced(test, &d, BUSYBOX_SYSLOGD, &["--log-to", "syslog", "boot"]) else {
        return;
    };
    let r = c.env("EXPECT", "4").run().expect_code(3);
    assert!(!r.stderr().contains("rebound: warning"), "{}", r.stderr());
    let log = std::fs::read_to_string(d.path("ns/messages")).unwrap();
    // busybox syslogd writes `<date> <host> <facility>.<priority> <tag>: <text>`.
    let ours: Vec<&str> = log.lines().filter(|l| l.contains(" rebound[")).collect();
    let want = [
        "daemon.err rebound[",
        "daemon.err rebound[",
        "daemon.warn rebound[",
        "daemon.warn rebound[",
    ];
    assert_eq!(ours.len(), 4, "{log}");
    for (l, w) in ours.iter().zip(want) {
        assert!(l.contains(w), "{l} lacks {w}\n{log}");
    }
    assert!(
        ours[0].ends_with("]: boot: set `config`: 2 repaired, 1 lost, generation 1, boot 1"),
        "{log}"
    );
    assert!(
        ours[1].ends_with("]: boot: set `config`: LOST: system_config.json: no intact copy anywhere; left as it is"),
        "{log}"
    );
    assert!(
        ours[2].contains("]: boot: set `config`: repaired: restore "),
        "{log}"
    );
}
