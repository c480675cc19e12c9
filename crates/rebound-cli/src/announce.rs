//! Messages where early boot can see them (`log_to`, `--log-to`): a run's summary per
//! set, its repairs, its lost files, its repeatedly damaged files and its failures, each
//! one line with a syslog severity, sent to the kernel log (`/dev/kmsg`), the system
//! logger (`/dev/log`) or standard error with `<N>` prefixes. The report on standard
//! output is unchanged; these lines are an extra, short record of what it says.
//!
//! Which runs send messages: a boot always (its summary even when every file is
//! intact: the kernel log then shows that the check ran); any other run (and a dry
//! run, and `verify`) only when it repaired something, a file is lost, a set or an
//! action failed (repeatedly damaged files are named by `boot` only, once per boot).
//! An intended change (`commit`,
//! `update`, `write`, `seal`) is the application's business, not the kernel log's.
//!
//! Bounded: a set's messages are at most [`SET_LINES`] lines, its summary first, then
//! the most severe details (lost files and failures, then suspects, then repairs),
//! the rest counted in one last line. `/dev/kmsg` drops a writer's lines past 10 in 5
//! seconds per open file (`printk.devkmsg=ratelimit`, the default), and a boot that
//! refills a whole copy must not flood the kernel log: each set's lines go through one
//! open of `/dev/kmsg`, so none of them is dropped. A line is at most [`MAX_TEXT`]
//! bytes (the kernel refuses a record over 1024).
//!
//! Sending never fails the run nor changes its exit status: a sink that is missing or
//! refuses is named once on standard error (`rebound: warning: ...`).

use std::fmt;
use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::Duration;

use rebound::{
    describe_action, escape, escape_controls, Action, Command, LogTo, Report, SetReport,
};

/// The kernel log device.
pub const KMSG: &str = "/dev/kmsg";
/// The system logger's socket (busybox syslogd, rsyslog, systemd-journald).
pub const DEV_LOG: &str = "/dev/log";

/// The most lines one set sends: the kernel's burst per open of `/dev/kmsg`.
pub const SET_LINES: usize = 10;
/// The most detail lines (repairs, lost files, failures, suspects) one set sends; the
/// rest are counted in one more line.
pub const DETAIL_LINES: usize = SET_LINES - 2;
/// The longest message text, in bytes (after escaping; longer ones are cut at a
/// character boundary and end with `...`). With its `<N>` or `<PRI>rebound[PID]: `
/// prefix it stays below the kernel's 992-byte record limit and RFC 3164's 1024 bytes.
pub const MAX_TEXT: usize = 900;

/// How long one datagram may wait for room in the system logger's queue: a busy logger
/// at boot gets a moment, a stuck one cannot hold the boot back.
const SYSLOG_WAIT: Duration = Duration::from_secs(1);

/// A syslog severity (RFC 5424): the kernel log's level, the low three bits of a
/// syslog priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// A file lost, an action or a set failed, the run failed.
    Err = 3,
    /// A repair, a repeatedly damaged file, a damaged golden copy.
    Warning = 4,
    /// The summary of a run that repaired something.
    Notice = 5,
    /// The summary of a set found intact.
    Info = 6,
}

impl Severity {
    /// Its number (the `N` of `<N>`).
    pub fn level(self) -> u8 {
        self as u8
    }
}

/// One message: its severity and its text, one line without control characters and
/// without the `rebound: ` prefix each sink adds in its own form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub severity: Severity,
    pub text: String,
}

impl Message {
    /// A message from text that holds file names: every control character and
    /// backslash is escaped ([`rebound::escape`]), so it stays one line.
    fn new(severity: Severity, args: fmt::Arguments<'_>) -> Message {
        Message {
            severity,
            text: bounded(escape(&args.to_string()).into_owned()),
        }
    }

    /// A message from text escaped in part already (names that are not UTF-8 as
    /// `\xNN`): its backslashes are kept, control characters escaped.
    fn escaped(severity: Severity, args: fmt::Arguments<'_>) -> Message {
        Message {
            severity,
            text: bounded(escape_controls(&args.to_string()).into_owned()),
        }
    }

    /// The line as standard error and `/dev/kmsg` take it: `<N>rebound: text`.
    pub fn prefixed(&self) -> String {
        format!("<{}>rebound: {}", self.severity.level(), self.text)
    }

    /// The datagram the system logger takes (RFC 3164 without timestamp and host name,
    /// which the local logger adds, as for glibc's `syslog()`): facility daemon (3).
    pub fn syslog(&self, pid: u32) -> String {
        format!(
            "<{}>rebound[{pid}]: {}",
            3 * 8 + self.severity.level(),
            self.text
        )
    }
}

/// `text` cut to [`MAX_TEXT`] bytes at a character boundary.
fn bounded(mut text: String) -> String {
    if text.len() <= MAX_TEXT {
        return text;
    }
    let mut end = MAX_TEXT - 3;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push_str("...");
    text
}

/// The messages of a run's report, one batch per set (each at most [`SET_LINES`]);
/// empty when the run has nothing to say (see the module doc).
pub fn messages(report: &Report) -> Vec<Vec<Message>> {
    report
        .sets
        .iter()
        .filter_map(|s| set_messages(report.command, report.dry_run, s))
        .collect()
}

/// The message of a run that failed as a whole (a configuration error, the lock still
/// held after `--wait`, ...): one line, severity err. `error` is the text printed on
/// standard error (`{:#}`), escaped in part already.
pub fn failure(command: Command, error: &str) -> Vec<Vec<Message>> {
    vec![vec![Message::escaped(
        Severity::Err,
        format_args!("{}: error: {error}", command.as_str()),
    )]]
}

fn set_messages(command: Command, dry_run: bool, set: &SetReport) -> Option<Vec<Message>> {
    let head = format!("{}: set `{}`", command.as_str(), set.set);
    if let Some(e) = &set.error {
        return Some(vec![Message::new(
            Severity::Err,
            format_args!("{head}: error: {e}"),
        )]);
    }
    let plan = set.plan.as_ref()?;
    let installed = |a: &Action| set.installed.iter().any(|i| i.is(a));
    // Repairs, as the report counts them (render.rs): restores of damaged files, and
    // for a boot whatever else it had to change; what seal, commit and update write on
    // purpose is not one.
    let is_repair = |a: &Action| match a {
        Action::Restore { .. } => !installed(a),
        a => command == Command::Boot && !a.is_cleanup(),
    };
    let mut repairs = Vec::new();
    let mut failed = Vec::new();
    for o in &set.outcomes {
        match &o.error {
            None if is_repair(&o.action) => repairs.push(Message::new(
                Severity::Warning,
                format_args!("{head}: repaired: {}", describe_action(&o.action)),
            )),
            None => {}
            Some(e) => failed.push(Message::new(
                Severity::Err,
                format_args!("{head}: FAILED: {}: {e}", describe_action(&o.action)),
            )),
        }
    }
    let lost: Vec<Message> = plan
        .lost
        .iter()
        .map(|l| {
            Message::new(
                Severity::Err,
                format_args!("{head}: LOST: {l}: no intact copy anywhere; left as it is"),
            )
        })
        .collect();
    let boot = command == Command::Boot && !dry_run;
    // Repeatedly damaged files are a boot's news (once per boot), not every commit's:
    // an application that commits often must not repeat them into the kernel log.
    let suspects: Vec<Message> = set
        .suspects
        .iter()
        .filter(|_| boot)
        .map(|s| Message::new(Severity::Warning, format_args!("{head}: {}", s.warning())))
        .collect();
    let golden_damaged = plan
        .findings
        .iter()
        .any(|f| f.problem == rebound::Problem::GoldenDamaged);
    if !boot && repairs.is_empty() && failed.is_empty() && lost.is_empty() {
        return None;
    }
    let generation = format!(
        "generation {}{}",
        plan.generation,
        set.boot.map(|b| format!(", boot {b}")).unwrap_or_default()
    );
    let summary = if !lost.is_empty() || !failed.is_empty() || !repairs.is_empty() {
        let severity = if lost.is_empty() && failed.is_empty() {
            Severity::Notice
        } else {
            Severity::Err
        };
        Message::new(
            severity,
            format_args!(
                "{head}: {} repaired, {} lost{}, {generation}",
                repairs.len(),
                lost.len(),
                if failed.is_empty() {
                    String::new()
                } else {
                    format!(", {} failed", failed.len())
                },
            ),
        )
    } else if golden_damaged {
        // The writable copies are intact, but the factory fallback is not.
        Message::new(
            Severity::Warning,
            format_args!(
                "{head}: intact, {} files, {generation}; the golden copy is damaged (`rebound verify` names the files)",
                plan.files
            ),
        )
    } else {
        Message::new(
            Severity::Info,
            format_args!("{head}: intact, {} files, {generation}", plan.files),
        )
    };
    let mut details: Vec<Message> = lost.into_iter().chain(failed).chain(suspects).collect();
    details.extend(repairs);
    let mut out = vec![summary];
    if details.len() > DETAIL_LINES + 1 {
        let rest = details.split_off(DETAIL_LINES);
        let severity = rest
            .iter()
            .map(|m| m.severity)
            .min()
            .unwrap_or(Severity::Warning);
        out.extend(details);
        out.push(Message::new(
            severity,
            format_args!(
                "{head}: ... and {} more (see `rebound log`; the report lists them all)",
                rest.len()
            ),
        ));
    } else {
        out.extend(details);
    }
    Some(out)
}

/// Sends `batches` to `to`. Never fails: a sink that cannot take them is named once on
/// standard error.
pub fn send(to: LogTo, batches: &[Vec<Message>]) {
    if batches.iter().all(Vec::is_empty) {
        return;
    }
    let result = match to {
        LogTo::Kmsg => to_kmsg(Path::new(KMSG), batches),
        LogTo::Syslog => to_syslog(Path::new(DEV_LOG), std::process::id(), batches),
        LogTo::Stderr => {
            to_stderr(&mut std::io::stderr().lock(), batches);
            Ok(())
        }
    };
    if let Err(why) = result {
        let _ = writeln!(
            std::io::stderr(),
            "rebound: warning: {}",
            escape_controls(&why)
        );
    }
}

/// Writes every message to the kernel log device at `path` (`/dev/kmsg`), one write(2)
/// per line, one open per batch: the kernel rate-limits each open file to 10 lines per
/// 5 seconds, and a batch holds at most [`SET_LINES`].
///
/// # Errors
/// Why some messages were not sent (the device could not be opened or refused a
/// line), naming it; the others are sent all the same.
pub fn to_kmsg(path: &Path, batches: &[Vec<Message>]) -> Result<(), String> {
    let total: usize = batches.iter().map(Vec::len).sum();
    let mut unsent = 0;
    let mut first: Option<String> = None;
    for batch in batches.iter().filter(|b| !b.is_empty()) {
        let mut f = match std::fs::OpenOptions::new().write(true).open(path) {
            Ok(f) => f,
            Err(e) => {
                unsent += batch.len();
                first.get_or_insert_with(|| format!("cannot open {}: {e}", path.display()));
                continue;
            }
        };
        for m in batch {
            let line = format!("{}\n", m.prefixed());
            // One write(2) per line: each is one record of the kernel log. A short
            // write would be a cut record: it counts as not sent.
            match f.write(line.as_bytes()) {
                Ok(n) if n == line.len() => {}
                Ok(n) => {
                    unsent += 1;
                    first.get_or_insert_with(|| {
                        format!(
                            "{}: short write ({n} of {} bytes)",
                            path.display(),
                            line.len()
                        )
                    });
                }
                Err(e) => {
                    unsent += 1;
                    first.get_or_insert_with(|| format!("writing to {}: {e}", path.display()));
                }
            }
        }
    }
    match first {
        None => Ok(()),
        Some(why) => Err(format!(
            "{why}: {unsent} of {total} messages not sent to the kernel log (log_to = \"kmsg\"; the report above has everything; as root, or use log_to = \"syslog\" or \"stderr\")"
        )),
    }
}

/// Sends every message as one datagram to the system logger's socket at `path`
/// (`/dev/log`), facility daemon, tag `rebound[pid]`.
///
/// # Errors
/// Why some messages were not sent (no logger listening, its queue full for longer
/// than a second), naming the socket; it stops at the first refusal.
pub fn to_syslog(path: &Path, pid: u32, batches: &[Vec<Message>]) -> Result<(), String> {
    let total: usize = batches.iter().map(Vec::len).sum();
    let fail = |what: String, unsent: usize| {
        format!(
            "{what}: {unsent} of {total} messages not sent to the system logger (log_to = \"syslog\"; is syslogd running? the report above has everything)"
        )
    };
    let sock = UnixDatagram::unbound()
        .map_err(|e| fail(format!("a socket for {}: {e}", path.display()), total))?;
    sock.connect(path)
        .map_err(|e| fail(format!("connecting to {}: {e}", path.display()), total))?;
    sock.set_write_timeout(Some(SYSLOG_WAIT))
        .map_err(|e| fail(format!("{}: {e}", path.display()), total))?;
    for (sent, m) in batches.iter().flatten().enumerate() {
        if let Err(e) = sock.send(m.syslog(pid).as_bytes()) {
            return Err(fail(
                format!("sending to {}: {e}", path.display()),
                total - sent,
            ));
        }
    }
    Ok(())
}

/// Writes every message to `w` as `<N>rebound: text` lines (sd-daemon(3): the journal
/// takes the priority from the prefix of a unit's standard error). Errors are ignored:
/// standard error is where they would be told.
pub fn to_stderr(w: &mut impl Write, batches: &[Vec<Message>]) {
    for m in batches.iter().flatten() {
        let _ = w.write_all(format!("{}\n", m.prefixed()).as_bytes());
    }
    let _ = w.flush();
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use rebound::{
        Authority, Finding, HashAlgo, Mode, Outcome, Plan, Prior, Problem, RelPath, Source,
        SourceKind, Suspect,
    };
    use std::path::PathBuf;

    fn rel(s: &str) -> RelPath {
        RelPath::new(s).unwrap()
    }

    fn restore(path: &str) -> Action {
        Action::Restore {
            root: "/usr".into(),
            path: rel(path),
            from: Source {
                root: "/bak".into(),
                rel: rel(path),
                kind: SourceKind::Golden,
            },
            digest: HashAlgo::Blake3.digest(b"x"),
            size: 1,
            mode: 0o644,
            prior: Prior::Missing,
            owner: None,
        }
    }

    fn plan(actions: Vec<Action>) -> Plan {
        Plan {
            set: "config".into(),
            authority: Authority::Manifest {
                root: "/usr".into(),
                generation: 5,
            },
            generation: 5,
            tag: None,
            files: 4,
            findings: Vec::new(),
            lost: Vec::new(),
            warnings: Vec::new(),
            actions,
            golden: None,
            manifest: None,
            committed: None,
        }
    }

    /// A set whose run did `done` (all succeeded).
    fn set(done: Vec<Action>) -> SetReport {
        SetReport {
            set: "config".into(),
            mode: Mode::Golden,
            plan: Some(plan(done.clone())),
            outcomes: done
                .into_iter()
                .map(|action| Outcome {
                    action,
                    error: None,
                })
                .collect(),
            error: None,
            notes: Vec::new(),
            installed: Vec::new(),
            boot: None,
            suspects: Vec::new(),
        }
    }

    fn report(command: Command, sets: Vec<SetReport>) -> Report {
        Report {
            command,
            dry_run: false,
            sets,
        }
    }

    fn levels(batch: &[Message]) -> Vec<u8> {
        batch.iter().map(|m| m.severity.level()).collect()
    }

    #[test]
    fn an_intact_boot_sends_its_summary_at_info() {
        let m = messages(&report(Command::Boot, vec![set(Vec::new())]));
        assert_eq!(m.len(), 1);
        assert_eq!(levels(&m[0]), [6]);
        assert_eq!(
            m[0][0].prefixed(),
            "<6>rebound: boot: set `config`: intact, 4 files, generation 5"
        );
    }

    #[test]
    fn a_repairing_boot_sends_a_notice_summary_then_a_warning_per_repair() {
        let mut s = set(vec![restore("apn_cfg.json"), restore("app/main.py")]);
        s.boot = Some(17);
        let m = messages(&report(Command::Boot, vec![s]));
        assert_eq!(levels(&m[0]), [5, 4, 4]);
        assert_eq!(
            m[0][0].text,
            "boot: set `config`: 2 repaired, 0 lost, generation 5, boot 17"
        );
        assert_eq!(
            m[0][1].text,
            "boot: set `config`: repaired: restore /usr/apn_cfg.json from /bak/apn_cfg.json (golden)"
        );
    }

    #[test]
    fn lost_files_and_failed_actions_are_errors_and_make_the_summary_one() {
        let mut s = set(vec![restore("a")]);
        s.outcomes.push(Outcome {
            action: restore("b"),
            error: Some("I/O error".into()),
        });
        if let Some(p) = s.plan.as_mut() {
            p.lost.push(rel("c"));
        }
        let m = messages(&report(Command::Boot, vec![s]));
        // Summary, then the most severe first: lost, failed, then the repair.
        assert_eq!(levels(&m[0]), [3, 3, 3, 4]);
        assert_eq!(
            m[0][0].text,
            "boot: set `config`: 1 repaired, 1 lost, 1 failed, generation 5"
        );
        assert_eq!(
            m[0][1].text,
            "boot: set `config`: LOST: c: no intact copy anywhere; left as it is"
        );
        assert!(m[0][2]
            .text
            .ends_with("FAILED: restore /usr/b from /bak/b (golden): I/O error"));
    }

    #[test]
    fn a_set_error_is_one_error_line() {
        let mut s = set(Vec::new());
        s.plan = None;
        s.error = Some("/usr: not a directory".into());
        let m = messages(&report(Command::Commit, vec![s]));
        assert_eq!(levels(&m[0]), [3]);
        assert_eq!(
            m[0][0].text,
            "commit: set `config`: error: /usr: not a directory"
        );
    }

    #[test]
    fn each_suspect_is_a_warning() {
        let mut s = set(Vec::new());
        s.suspects.push(Suspect {
            root: "/usr".into(),
            path: rel("apn_cfg.json"),
            partition: Some("/dev/mmcblk0p5".into()),
            repairs: 3,
            window: 10,
            total: 7,
            last: "2026-12-05T05:00:00Z".into(),
        });
        let want = s.suspects[0].warning();
        let m = messages(&report(Command::Boot, vec![s]));
        assert_eq!(levels(&m[0]), [6, 4]);
        assert_eq!(m[0][1].text, format!("boot: set `config`: {want}"));
        assert!(m[0][1]
            .text
            .contains("/usr/apn_cfg.json repeatedly damaged"));
    }

    #[test]
    fn a_refilled_copy_sends_at_most_ten_lines_per_set() {
        let many: Vec<Action> = (0..50).map(|i| restore(&format!("f{i}"))).collect();
        let m = messages(&report(Command::Boot, vec![set(many.clone()), set(many)]));
        assert_eq!(m.len(), 2);
        for batch in &m {
            assert_eq!(batch.len(), SET_LINES);
            assert_eq!(
                batch[0].text,
                "boot: set `config`: 50 repaired, 0 lost, generation 5"
            );
            assert_eq!(
                batch[SET_LINES - 1].text,
                "boot: set `config`: ... and 42 more (see `rebound log`; the report lists them all)"
            );
            assert_eq!(batch[SET_LINES - 1].severity, Severity::Warning);
        }
        // Nine details fit without a count line.
        let nine: Vec<Action> = (0..9).map(|i| restore(&format!("f{i}"))).collect();
        let m = messages(&report(Command::Boot, vec![set(nine)]));
        assert_eq!(m[0].len(), SET_LINES);
        assert!(m[0].iter().all(|l| !l.text.contains("more")));
    }

    #[test]
    fn names_cannot_split_a_line_or_forge_a_priority() {
        let m = messages(&report(
            Command::Boot,
            vec![set(vec![restore(
                "evil\n<3>rebound: boot: set `config`: intact\x1b[2J",
            )])],
        ));
        for l in &m[0] {
            assert!(!l.text.chars().any(char::is_control), "{:?}", l.text);
        }
        assert!(m[0][1].text.contains("evil\\n<3>rebound"));
        assert!(m[0][1].text.contains("\\x1b[2J"));
        // The run-level error keeps `\xNN` as the library wrote it.
        let f = failure(Command::Boot, "/usr/a\\xff: gone\nsecond line");
        assert_eq!(f[0][0].text, "boot: error: /usr/a\\xff: gone\\nsecond line");
        assert_eq!(f[0][0].severity, Severity::Err);
    }

    #[test]
    fn long_lines_are_cut_at_a_character_boundary() {
        let long = "é".repeat(2000);
        let m = messages(&report(Command::Boot, vec![set(vec![restore(&long)])]));
        let t = &m[0][1].text;
        assert!(t.len() <= MAX_TEXT, "{}", t.len());
        assert!(t.ends_with("..."));
        assert!(m[0][1].syslog(4_194_304).len() < 1024);
        assert!(m[0][1].prefixed().len() < 992);
    }

    #[test]
    fn other_commands_speak_only_of_repairs_losses_and_failures() {
        // An intact commit says nothing: the change is the application's business.
        let mut s = set(vec![restore("a")]);
        s.installed.push(rebound::Installed {
            root: "/usr".into(),
            path: rel("a"),
        });
        s.outcomes.push(Outcome {
            action: Action::WriteManifest {
                root: "/usr".into(),
                slot: 0,
                generation: 6,
            },
            error: None,
        });
        assert!(messages(&report(Command::Commit, vec![s.clone()])).is_empty());
        // Damage repaired on the way is told.
        s.outcomes.push(Outcome {
            action: restore("b"),
            error: None,
        });
        let m = messages(&report(Command::Commit, vec![s]));
        assert_eq!(levels(&m[0]), [5, 4]);
        assert!(m[0][1]
            .text
            .starts_with("commit: set `config`: repaired: restore /usr/b"));
        // verify and dry runs find damage but repair nothing: silent unless lost.
        let mut v = set(Vec::new());
        if let Some(p) = v.plan.as_mut() {
            p.actions.push(restore("a"));
        }
        assert!(messages(&report(Command::Verify, vec![v.clone()])).is_empty());
        let mut dry = report(Command::Boot, vec![v.clone()]);
        dry.dry_run = true;
        assert!(messages(&dry).is_empty());
        if let Some(p) = v.plan.as_mut() {
            p.lost.push(rel("z"));
        }
        assert_eq!(
            levels(&messages(&report(Command::Verify, vec![v]))[0]),
            [3, 3]
        );
    }

    #[test]
    fn a_damaged_golden_copy_makes_an_intact_summary_a_warning() {
        let mut s = set(Vec::new());
        if let Some(p) = s.plan.as_mut() {
            p.findings.push(Finding {
                root: "/bak".into(),
                path: rel("a"),
                problem: Problem::GoldenDamaged,
                detail: "corrupt".into(),
            });
        }
        let m = messages(&report(Command::Boot, vec![s]));
        assert_eq!(levels(&m[0]), [4]);
        assert!(m[0][0].text.contains("golden copy is damaged"));
    }

    #[test]
    fn kmsg_gets_one_prefixed_record_per_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kmsg");
        std::fs::write(&path, b"").unwrap();
        let m = messages(&report(Command::Boot, vec![set(vec![restore("a")])]));
        to_kmsg(&path, &m).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "<5>rebound: boot: set `config`: 1 repaired, 0 lost, generation 5\n\
             <4>rebound: boot: set `config`: repaired: restore /usr/a from /bak/a (golden)\n"
        );
        let missing = dir.path().join("none").join("kmsg");
        let e = to_kmsg(&missing, &m).unwrap_err();
        assert!(
            e.contains("cannot open") && e.contains("2 of 2 messages not sent"),
            "{e}"
        );
    }

    #[test]
    fn syslog_gets_one_rfc3164_datagram_per_line_facility_daemon() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let rx = UnixDatagram::bind(&path).unwrap();
        let mut s = set(vec![restore("a")]);
        if let Some(p) = s.plan.as_mut() {
            p.lost.push(rel("b"));
        }
        let m = messages(&report(Command::Boot, vec![s]));
        to_syslog(&path, 42, &m).unwrap();
        let mut got = Vec::new();
        rx.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 2048];
        while let Ok(n) = rx.recv(&mut buf) {
            got.push(String::from_utf8(buf[..n].to_vec()).unwrap());
        }
        assert_eq!(
            got,
            [
                "<27>rebound[42]: boot: set `config`: 1 repaired, 1 lost, generation 5",
                "<27>rebound[42]: boot: set `config`: LOST: b: no intact copy anywhere; left as it is",
                "<28>rebound[42]: boot: set `config`: repaired: restore /usr/a from /bak/a (golden)",
            ]
        );
        drop(rx);
        let e = to_syslog(&path, 42, &m).unwrap_err();
        assert!(e.contains("connecting to") && e.contains("3 of 3"), "{e}");
        let e = to_syslog(&PathBuf::from("/nonexistent/log"), 42, &m).unwrap_err();
        assert!(e.contains("/nonexistent/log"), "{e}");
    }

    #[test]
    fn stderr_lines_carry_the_sd_daemon_prefix() {
        let mut out = Vec::new();
        to_stderr(
            &mut out,
            &messages(&report(Command::Boot, vec![set(Vec::new())])),
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "<6>rebound: boot: set `config`: intact, 4 files, generation 5\n"
        );
    }
}
