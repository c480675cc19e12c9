//! Human-readable rendering of reports and status.

use std::fmt::Write;

use rebound::config::{Mode, Role};
use rebound::engine::{describe_action, SetStatus};
use rebound::observe::{SlotState, TagState};
use rebound::plan::{Authority, GoldenCheck};
use rebound::Report;

/// Renders a command's report.
pub fn report(r: &Report) -> String {
    let mut s = String::new();
    for set in &r.sets {
        let _ = writeln!(s, "set {} ({} mode)", set.set, mode_name(set.mode));
        for n in &set.notes {
            let _ = writeln!(s, "  note: {n}");
        }
        if let Some(e) = &set.error {
            let _ = writeln!(s, "  ERROR: {e}");
            continue;
        }
        let Some(p) = &set.plan else { continue };
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
        let _ = writeln!(s, "  authority: {auth}");
        let _ = writeln!(
            s,
            "  {} protected files, generation {}{}",
            p.files,
            p.generation,
            p.tag
                .map(|t| format!(", version tag {t}"))
                .unwrap_or_default()
        );
        let golden = match p.golden {
            Some(GoldenCheck::NotChecked) => Some(
                "not checked (boot reads it only to restore from it; `rebound verify` checks it)",
            ),
            Some(GoldenCheck::SourcesOnly) => Some(
                "only the files looked at as restore sources were checked; `rebound verify` checks all",
            ),
            Some(GoldenCheck::Listed) => Some(
                "listed; content checked only where a restore needed it; `rebound verify` checks all",
            ),
            Some(GoldenCheck::Checked) | None => None,
        };
        if let Some(g) = golden {
            let _ = writeln!(s, "  golden copy: {g}");
        }
        for w in &p.warnings {
            let _ = writeln!(s, "  warning: {w}");
        }
        for f in &p.findings {
            let _ = writeln!(
                s,
                "  found: {}: {} ({})",
                f.root.join(f.path.as_str()).display(),
                f.problem.replace('_', " "),
                f.detail
            );
        }
        let executed = !set.outcomes.is_empty();
        if executed {
            for o in &set.outcomes {
                match &o.error {
                    None => {
                        let _ = writeln!(s, "  done: {}", describe_action(&o.action));
                    }
                    Some(e) => {
                        let _ = writeln!(s, "  FAILED: {}: {e}", describe_action(&o.action));
                    }
                }
            }
        } else {
            for a in &p.actions {
                let _ = writeln!(s, "  would: {}", describe_action(a));
            }
        }
        for l in &p.lost {
            let _ = writeln!(s, "  LOST: {l}: no intact copy anywhere; left as it is");
        }
        let verdict = if !p.lost.is_empty() {
            "files lost"
        } else if set.any_failed() {
            "repairs failed"
        } else if executed && p.repairs() {
            "repaired"
        } else if !executed && p.repairs() {
            "damage found"
        } else if p.findings.iter().any(|f| f.problem == "golden_damaged") {
            // The writable copies are intact, but the factory fallback is not.
            "intact, but the golden copy is damaged"
        } else {
            "intact"
        };
        let _ = writeln!(s, "  result: {verdict}");
    }
    s
}

/// Renders `status`.
pub fn status(sets: &[SetStatus]) -> String {
    let mut s = String::new();
    for set in sets {
        let _ = writeln!(
            s,
            "set {} ({} mode, {}), include: {}",
            set.set,
            mode_name(set.mode),
            set.hash,
            set.include.join(", ")
        );
        for r in &set.replicas {
            let slots: Vec<String> = r
                .slots
                .iter()
                .map(|sl| match sl {
                    SlotState::Missing => "missing".into(),
                    SlotState::Damaged(_) => "damaged".into(),
                    SlotState::Intact(g) => format!("gen {g}"),
                    SlotState::OtherHash { generation, hash } => {
                        format!("gen {generation} ({hash}: not the configured hash)")
                    }
                })
                .collect();
            let _ = writeln!(
                s,
                "  {} {}{}: manifest [{}], {} files{}{}{}",
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
            );
            if let Some(l) = &r.last_repair {
                for line in l.lines() {
                    let _ = writeln!(s, "    last repair: {line}");
                }
            }
        }
    }
    s
}

fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::Golden => "golden",
        Mode::Mirror => "mirror",
    }
}
