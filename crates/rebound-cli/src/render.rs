//! Human-readable rendering of reports and status. Every line is escaped as a whole
//! ([`rebound::escape`]): a file name holding a newline or a terminal escape stays on
//! its own line and cannot fake another one. Warnings and the repair record come
//! escaped in part already (names that are not UTF-8 as `\xNN`): their control
//! characters are escaped, their backslashes kept. JSON output is escaped by serde.

use std::collections::BTreeMap;
use std::fmt::{self, Write};
use std::path::{Path, PathBuf};

use rebound::{
    describe_action, escape, escape_controls, Action, Authority, Command, Event, EventAction,
    EventOutcome, GoldenCheck, HistoryStatus, Mode, Outcome, Problem, RelPath, Report, Role,
    SetLog, SetReport, SetStatus, SignatureState, SlotState, TagState,
};

/// The full path of `rel` under the replica root `root`, for messages.
fn full(root: &Path, rel: &RelPath) -> PathBuf {
    root.join(rel.as_str())
}

/// Text being rendered, one escaped line at a time.
#[derive(Debug, Default)]
struct Lines(String);

impl Lines {
    /// Appends one line; whatever its parts hold, it stays one line.
    fn line(&mut self, args: fmt::Arguments<'_>) {
        let mut l = String::new();
        let _ = l.write_fmt(args);
        self.0.push_str(&escape(&l));
        self.0.push('\n');
    }

    /// Appends one line of text the library escaped in part already (names that are
    /// not UTF-8, as `\xNN`): its backslashes are kept, control characters escaped.
    fn escaped_line(&mut self, args: fmt::Arguments<'_>) {
        let mut l = String::new();
        let _ = l.write_fmt(args);
        self.0.push_str(&escape_controls(&l));
        self.0.push('\n');
    }
}

/// Renders a command's report.
pub fn report(r: &Report) -> String {
    let mut out = Lines::default();
    for set in &r.sets {
        set_report(&mut out, r.command, set);
    }
    out.0
}

fn set_report(out: &mut Lines, command: Command, set: &SetReport) {
    out.line(format_args!(
        "set {} ({} mode)",
        set.set,
        mode_name(set.mode)
    ));
    for n in &set.notes {
        out.line(format_args!("  note: {n}"));
    }
    for s in &set.suspects {
        out.line(format_args!("  WARNING: {}", s.warning()));
    }
    if let Some(e) = &set.error {
        out.line(format_args!("  ERROR: {e}"));
        return;
    }
    let Some(p) = &set.plan else { return };
    let auth = match &p.authority {
        Authority::Manifest { root, generation } => {
            format!("manifest generation {generation} in {}", root.display())
        }
        Authority::Golden { root } => format!(
            "no intact manifest on the writable side: restored from the golden manifest in {}",
            root.display()
        ),
        Authority::Upgrade { root, tag } => {
            format!("version tag {tag} in {}: upgrade adopted", root.display())
        }
        Authority::Adopt { root } => {
            format!("first run: adopted the files of {}", root.display())
        }
        Authority::Empty => "nothing protected yet".to_string(),
        Authority::Change { generation } => {
            format!("intentional change, recorded as generation {generation}")
        }
    };
    out.line(format_args!("  authority: {auth}"));
    out.line(format_args!(
        "  {} protected files, generation {}{}",
        p.files,
        p.generation,
        p.tag
            .map(|t| format!(", version tag {t}"))
            .unwrap_or_default()
    ));
    if let Some(g) = golden_line(command, p.golden) {
        out.line(format_args!("  golden copy: {g}"));
    }
    for w in &p.warnings {
        out.escaped_line(format_args!("  warning: {w}"));
    }
    for f in &p.findings {
        out.line(format_args!(
            "  found: {}: {} ({})",
            full(&f.root, &f.path).display(),
            f.problem.as_str().replace('_', " "),
            f.detail
        ));
    }
    let executed = !set.outcomes.is_empty();
    let installed = |a: &Action| set.installed.iter().any(|i| i.is(a));
    // `seal` fills whole copies: one line per copy, where its first file was written,
    // not one per file.
    let mut filled: BTreeMap<&Path, usize> = BTreeMap::new();
    let fills = |o: &&Outcome| {
        command == Command::Seal
            && o.error.is_none()
            && (installed(&o.action) || matches!(o.action, Action::WriteGolden { .. }))
    };
    for o in set.outcomes.iter().filter(fills) {
        if let Action::Restore { root, .. } | Action::WriteGolden { root, .. } = &o.action {
            *filled.entry(root.as_path()).or_default() += 1;
        }
    }
    if executed {
        for o in &set.outcomes {
            match (&o.error, &o.action) {
                (None, Action::Restore { root, .. } | Action::WriteGolden { root, .. })
                    if fills(&o) =>
                {
                    let golden = matches!(o.action, Action::WriteGolden { .. });
                    if let Some(n) = filled.remove(root.as_path()) {
                        out.line(format_args!(
                            "  filled {}copy {}: {n} files",
                            if golden { "golden " } else { "" },
                            root.display()
                        ));
                    }
                }
                (None, Action::Restore { root, path, .. }) if installed(&o.action) => {
                    out.line(format_args!("  installed: {}", full(root, path).display()));
                }
                (None, a) => out.line(format_args!("  done: {}", describe_action(a))),
                (Some(e), a) => out.line(format_args!("  FAILED: {}: {e}", describe_action(a))),
            }
        }
    } else {
        for a in &p.actions {
            out.line(format_args!("  would: {}", describe_action(a)));
        }
    }
    for l in &p.lost {
        out.line(format_args!(
            "  LOST: {l}: no intact copy anywhere; left as it is"
        ));
    }
    // Repairs: restores of damaged files, and for a boot whatever else it had to
    // change; what seal, commit and update write on purpose is not one.
    let repaired = set.outcomes.iter().any(|o| match &o.action {
        Action::Restore { .. } => !installed(&o.action),
        a => command == Command::Boot && !a.is_cleanup(),
    });
    let done = match command {
        Command::Seal => Some("sealed"),
        Command::Commit => Some("committed"),
        Command::Update => Some("updated"),
        Command::Write => Some("written"),
        Command::Rekey => Some("rekeyed"),
        Command::Boot | Command::Verify => None,
    };
    let verdict = if !p.lost.is_empty() {
        "files lost".to_string()
    } else if set.any_failed() {
        "repairs failed".to_string()
    } else if let Some(d) = done {
        if repaired {
            format!("{d}; damage found on the way was repaired")
        } else {
            d.to_string()
        }
    } else if executed && repaired {
        "repaired".to_string()
    } else if !executed && p.repairs() {
        "damage found".to_string()
    } else if p
        .findings
        .iter()
        .any(|f| f.problem == Problem::GoldenDamaged)
    {
        // The writable copies are intact, but the factory fallback is not.
        "intact, but the golden copy is damaged".to_string()
    } else {
        "intact".to_string()
    };
    out.line(format_args!("  result: {verdict}"));
}

/// What the report says about the golden copy: only what this command did with it.
fn golden_line(command: Command, g: Option<GoldenCheck>) -> Option<&'static str> {
    match (g?, command) {
        // It has just written it, each file checked as it was copied.
        (_, Command::Seal) => None,
        // `verify` reads all of golden; it is left unread only when it is not there
        // (a finding says so).
        (GoldenCheck::Checked, Command::Verify) => {
            Some("checked: every file hashed and compared with the golden manifest")
        }
        (GoldenCheck::NotChecked, Command::Verify) => {
            Some("not checked: it could not be read (see the finding about it)")
        }
        (GoldenCheck::Listed, Command::Verify) => {
            Some("listed; some of its files could not be hashed (see the findings)")
        }
        (GoldenCheck::NotChecked, _) => {
            Some("not checked (boot reads it only to restore from it; `rebound verify` checks it)")
        }
        (GoldenCheck::SourcesOnly, _) => Some(
            "only the files looked at as restore sources were checked; `rebound verify` checks all",
        ),
        (GoldenCheck::Listed, _) => Some(
            "listed; content checked only where a restore needed it; `rebound verify` checks all",
        ),
        (GoldenCheck::Checked, _) => None,
    }
}

/// Renders `status`.
pub fn status(sets: &[SetStatus]) -> String {
    let mut out = Lines::default();
    for set in sets {
        out.line(format_args!(
            "set {} ({} mode, {}), include: {}",
            set.set,
            mode_name(set.mode),
            set.hash,
            set.include.join(", ")
        ));
        for r in &set.replicas {
            // Every generation is written to both slots of a writable replica: a slot
            // that does not hold it is flagged, and the next boot rewrites it.
            let lagging = |sl: &SlotState| {
                r.role == Role::Writable
                    && r.generation.is_some()
                    && !matches!(sl, SlotState::Intact(g) if Some(*g) == r.generation)
            };
            let slots: Vec<String> = r
                .slots
                .iter()
                .map(|sl| match sl {
                    SlotState::Missing if lagging(sl) => "missing (behind)".into(),
                    SlotState::Missing => "missing".into(),
                    SlotState::Damaged(_) => "damaged".into(),
                    SlotState::Intact(g) if lagging(sl) => format!("gen {g} (behind)"),
                    SlotState::Intact(g) => format!("gen {g}"),
                    SlotState::OtherHash { generation, hash } => {
                        format!("gen {generation} ({hash}: not the configured hash)")
                    }
                })
                .collect();
            let rewrite = r.slots.iter().any(lagging);
            // The golden manifest's signature, when the set checks one (`--json` also
            // says `not_checked`).
            let signature = match &r.signature {
                None | Some(SignatureState::NotChecked) => String::new(),
                Some(SignatureState::Verified) => {
                    ", signature verified (golden_public_key)".to_string()
                }
                Some(SignatureState::Refused(why)) => {
                    format!(", signature REFUSED: the golden copy is not used ({why})")
                }
            };
            out.line(format_args!(
                "  {} {}{}: manifest [{}], {} files{}{}{}{signature}",
                match r.role {
                    Role::Writable => "writable",
                    Role::Golden => "golden",
                },
                r.root.display(),
                if r.exists { "" } else { " (missing)" },
                slots.join(", "),
                r.files.map_or("?".into(), |n| n.to_string()),
                match &r.tag {
                    TagState::NotConfigured => String::new(),
                    TagState::Missing => ", version tag missing".into(),
                    TagState::Value(v) => format!(", version tag {v}"),
                    TagState::Invalid(w) => format!(", version tag invalid ({w})"),
                },
                match r.sealed {
                    Some(true) => ", sealed",
                    Some(false) => ", NOT sealed",
                    None => "",
                },
                if r.staged > 0 {
                    format!(", {} staged", r.staged)
                } else {
                    String::new()
                }
            ));
            if rewrite {
                out.line(format_args!(
                    "    manifest slot not at generation {}: `rebound boot` rewrites it (until then one more damaged slot could cost that generation)",
                    r.generation.unwrap_or(0)
                ));
            }
        }
        if let Some(p) = &set.parity {
            if p.exists {
                out.line(format_args!(
                    "  parity   {}: {} records ({}% recovery blocks, blocks of at most {} bytes)",
                    p.root.display(),
                    p.records,
                    p.redundancy,
                    p.block_size
                ));
            }
            for why in &p.problems {
                out.line(format_args!("  parity   {why}"));
            }
        }
        history(&mut out, &set.history);
    }
    out.0
}

/// Renders `rebound log`: per set, each event on a line, its actions, lost files and
/// notes indented below it.
pub fn log(sets: &[SetLog]) -> String {
    let mut out = Lines::default();
    for s in sets {
        out.line(format_args!(
            "set {}: {} event{}, {} boots counted",
            s.set,
            s.events.len(),
            if s.events.len() == 1 { "" } else { "s" },
            s.boots.unwrap_or(0)
        ));
        for p in &s.problems {
            out.line(format_args!("  note: {p}"));
        }
        for e in &s.events {
            out.line(format_args!("  {}", event_line(e)));
            for a in &e.actions {
                out.line(format_args!(
                    "    {}: {}",
                    if a.repair { "repair" } else { "change" },
                    event_action_line(a)
                ));
            }
            if e.more_actions > 0 {
                out.line(format_args!(
                    "    ... and {} more actions (listed in that run's report)",
                    e.more_actions
                ));
            }
            for l in &e.lost {
                out.line(format_args!("    LOST: {l}"));
            }
            for n in &e.notes {
                out.line(format_args!("    note: {n}"));
            }
        }
    }
    out.0
}

/// Most repairs of the last repairing event `status` lists (`rebound log` has them all).
const STATUS_REPAIRS_SHOWN: usize = 10;

/// A set's history in `status`: boots, repairs by kind, the last event and repair,
/// the files repeatedly damaged.
fn history(out: &mut Lines, h: &HistoryStatus) {
    let total: u64 = h.repairs.values().sum();
    let kinds: Vec<String> = h.repairs.iter().map(|(k, n)| format!("{k} {n}")).collect();
    out.line(format_args!(
        "  history: {} boots counted, {total} repairs{}, {} events kept (`rebound log` lists them)",
        h.boots.unwrap_or(0),
        if kinds.is_empty() {
            String::new()
        } else {
            format!(" ({})", kinds.join(", "))
        },
        h.events
    ));
    if let Some(e) = &h.last_event {
        out.line(format_args!("  last event: {}", event_line(e)));
    }
    if let Some(e) = &h.last_repair {
        let repairs: Vec<&EventAction> = e.actions.iter().filter(|a| a.repair).collect();
        for a in repairs.iter().take(STATUS_REPAIRS_SHOWN) {
            out.line(format_args!(
                "    last repair: {} boot {}: {}",
                rebound::rfc3339(e.time),
                e.boot,
                event_action_line(a)
            ));
        }
        let more = (repairs.len().saturating_sub(STATUS_REPAIRS_SHOWN)) as u64 + e.more_actions;
        if more > 0 {
            out.line(format_args!(
                "    last repair: ... and {more} more (`rebound log`)"
            ));
        }
    }
    for s in &h.suspects {
        out.line(format_args!("  WARNING: {}", s.warning()));
    }
    for p in &h.problems {
        out.line(format_args!("  note: {p}"));
    }
}

/// One event in one line: `#12 2026-12-05T05:18:19Z boot 41: boot repaired (3 actions)`.
pub fn event_line(e: &Event) -> String {
    let n = e.actions.len() as u64 + e.more_actions;
    format!(
        "#{} {} boot {}: {} {}{}",
        e.seq,
        rebound::rfc3339(e.time),
        e.boot,
        e.command,
        outcome_word(e.outcome),
        match n {
            0 => String::new(),
            1 => " (1 action)".into(),
            n => format!(" ({n} actions)"),
        }
    )
}

fn outcome_word(o: EventOutcome) -> &'static str {
    match o {
        EventOutcome::Failed => "failed",
        EventOutcome::Lost => "lost files",
        EventOutcome::Damaged => "found damage it does not repair",
        EventOutcome::Repaired => "repaired",
        EventOutcome::Changed => "changed",
    }
}

/// One action of an event: what, where, from where, old and new content, result.
pub fn event_action_line(a: &EventAction) -> String {
    let mut l = format!("{} {}/{}", a.kind, a.root.trim_end_matches('/'), a.path);
    if let Some(s) = &a.source {
        l.push_str(&format!(" from {s}"));
    }
    match (&a.old, &a.new) {
        (Some(o), Some(n)) => l.push_str(&format!(" ({} -> {})", short(o), short(n))),
        (None, Some(n)) => l.push_str(&format!(" (-> {})", short(n))),
        (Some(o), None) => l.push_str(&format!(" ({} ->)", short(o))),
        (None, None) => {}
    }
    if let Some(e) = &a.error {
        l.push_str(&format!(" FAILED: {e}"));
    }
    l
}

/// A digest cut to 16 hex digits for a line a person reads (JSON has it whole).
fn short(d: &str) -> &str {
    if d.len() > 16 && d.bytes().all(|b| b.is_ascii_hexdigit()) {
        &d[..16]
    } else {
        d
    }
}

fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::Golden => "golden",
        Mode::Mirror => "mirror",
        Mode::Parity => "parity",
    }
}

#[cfg(test)]
mod tests {
    use rebound::{Problem, RelPath, Source, SourceKind};

    /// Each report's `command` keeps its JSON value, the command's name.
    #[test]
    fn each_command_keeps_its_json_name() {
        use rebound::Command;
        for (c, name) in [
            (Command::Boot, "boot"),
            (Command::Verify, "verify"),
            (Command::Commit, "commit"),
            (Command::Update, "update"),
            (Command::Write, "write"),
            (Command::Seal, "seal"),
        ] {
            assert_eq!(serde_json::to_value(c).ok(), Some(serde_json::json!(name)));
            assert_eq!(c.as_str(), name);
        }
    }

    /// A restore's source keeps its JSON form: `root`, `rel` and the flags `staged`
    /// and `golden`, whatever its kind is called inside; `parity` since issue 16.
    #[test]
    fn a_source_keeps_its_json_fields() {
        for (kind, staged, golden, parity) in [
            (SourceKind::Writable, false, false, false),
            (SourceKind::Staged, true, false, false),
            (SourceKind::Golden, false, true, false),
            (SourceKind::Parity, false, false, true),
        ] {
            let Ok(rel) = RelPath::new("a/b") else {
                panic!("a relative path")
            };
            let src = Source {
                root: "/data".into(),
                rel,
                kind,
            };
            assert_eq!(
                serde_json::to_value(&src).ok(),
                Some(serde_json::json!({
                    "root": "/data", "rel": "a/b", "staged": staged, "golden": golden,
                    "parity": parity
                }))
            );
        }
    }

    /// The JSON value of each finding is part of the interface (scripts match on it):
    /// pinned here, as it was when findings were strings.
    #[test]
    fn each_problem_keeps_its_json_name() {
        for (p, name) in [
            (Problem::Missing, "missing"),
            (Problem::Corrupt, "corrupt"),
            (Problem::NotAFile, "not_a_file"),
            (Problem::Unreadable, "unreadable"),
            (Problem::WrongMode, "wrong_mode"),
            (Problem::WrongOwner, "wrong_owner"),
            (Problem::GoldenDamaged, "golden_damaged"),
            (Problem::Lost, "lost"),
            (Problem::FactoryFallback, "factory_fallback"),
            (Problem::ManifestDamaged, "manifest_damaged"),
            (Problem::ManifestOutdated, "manifest_outdated"),
            (Problem::ParityDamaged, "parity_damaged"),
        ] {
            assert_eq!(serde_json::to_value(p).ok(), Some(serde_json::json!(name)));
            assert_eq!(p.as_str(), name);
        }
    }
}
