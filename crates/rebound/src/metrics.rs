//! The metrics file for node_exporter's textfile collector (docs/design.md section
//! 5.6): Prometheus text format 0.0.4, rewritten whole after each run (temporary file
//! in the same directory, renamed: the collector never reads half a file).
//!
//! Per set: what the last run that worked on it saw (protected, lost and golden-damaged
//! files, generation), and from the set's history (history.rs), which survives reboots
//! wherever the metrics file lives: repairs by kind, boots, repeatedly damaged files.
//! Per command: when it last ran, how long it took, its exit status. A run that works
//! on some sets only keeps the other sets' and commands' samples from the file as it
//! was (a missing or foreign file is started afresh).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use crate::config::Config;
use crate::durable::Durable;
use crate::engine::{Report, SetReport};
use crate::error::{Error, Result};
use crate::fs::{read_small, Fs};
use crate::history;
use crate::names::is_temp_name;
use crate::plan::{GoldenCheck, Problem};
use crate::relpath::RelPath;

/// Largest metrics file read back for its other samples.
const READ_MAX: u64 = 1 << 20;

/// Every repair kind, so that each counter exists from the first run (a counter
/// that appears only once it is 1 hides its first increase from `rate()`).
const KINDS: [&str; 11] = [
    "file_from_copy",
    "file_from_golden",
    "file_from_staged",
    "file_from_parity",
    "parity_record",
    "metadata",
    "moved_aside",
    "manifest",
    "version_tag",
    "stale_file",
    "interrupted_change",
];

/// The metric families, in the order written: name, type, help, label names.
const FAMILIES: [(&str, &str, &str); 11] = [
    ("rebound_info", "gauge", "rebound's version (always 1)."),
    (
        "rebound_protected_files",
        "gauge",
        "Files the set protects (at its current generation).",
    ),
    (
        "rebound_lost_files",
        "gauge",
        "Files with no intact copy left, as the last run on the set found them.",
    ),
    (
        "rebound_golden_damaged",
        "gauge",
        "Golden files found damaged by the last run on the set (boot reads golden only to restore from it; verify reads all).",
    ),
    (
        "rebound_generation",
        "gauge",
        "The set's manifest generation.",
    ),
    (
        "rebound_repairs_total",
        "counter",
        "Repairs since the set's history began, by kind.",
    ),
    (
        "rebound_boots_total",
        "counter",
        "Boots counted by rebound boot (the kernel boot id tells a new boot).",
    ),
    (
        "rebound_suspect_files",
        "gauge",
        "Files repaired in at least suspect_repairs of the last suspect_boots boots: suspect the storage or an application writing without commit.",
    ),
    (
        "rebound_last_run_timestamp_seconds",
        "gauge",
        "When the command last ran (end, seconds since the epoch).",
    ),
    (
        "rebound_last_run_duration_seconds",
        "gauge",
        "How long the command's last run took.",
    ),
    (
        "rebound_last_run_exit_status",
        "gauge",
        "The exit status of the command's last run (0 intact, 1 damage found, 2 error, 3 files lost).",
    ),
];

/// Metrics taken from what the last run on a set saw: kept from the old file for sets
/// this run did not work on.
const PER_RUN: [&str; 4] = [
    "rebound_protected_files",
    "rebound_lost_files",
    "rebound_golden_damaged",
    "rebound_generation",
];

/// The run the metrics are written after.
#[derive(Debug, Clone, Copy)]
pub struct Run<'a> {
    pub command: &'a str,
    /// Its end, seconds since the epoch.
    pub ended: f64,
    pub seconds: f64,
    pub exit: u8,
}

/// The commands whose last run the file keeps.
const COMMANDS: [&str; 6] = ["boot", "verify", "commit", "update", "write", "seal"];

/// One sample: metric name, labels (name, value), value.
pub type Sample = (String, Vec<(String, String)>, String);

/// Escapes a label value (text format: backslash, double quote, line feed).
pub fn label_value(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Parses one sample line as [`render`] writes them (`name{a="x",b="y"} value`);
/// `None` for anything else, which is then dropped.
pub fn parse_sample(line: &str) -> Option<Sample> {
    let (head, value) = line.rsplit_once(' ')?;
    let value: f64 = value.parse().ok()?;
    if !value.is_finite() {
        return None;
    }
    let (name, labels) = match head.split_once('{') {
        None => (head, Vec::new()),
        Some((name, rest)) => {
            let rest = rest.strip_suffix('}')?;
            let mut labels = Vec::new();
            for pair in rest.split(',').filter(|p| !p.is_empty()) {
                let (k, v) = pair.split_once('=')?;
                let v = v.strip_prefix('"')?.strip_suffix('"')?;
                // Only the labels rebound writes: `set` (a set name), `kind`, `command`,
                // `version`, with values of those characters.
                let plain = |c: char| c.is_ascii_alphanumeric() || "._-".contains(c);
                if !matches!(k, "set" | "kind" | "command" | "version") || !v.chars().all(plain) {
                    return None;
                }
                labels.push((k.to_string(), v.to_string()));
            }
            (name, labels)
        }
    };
    FAMILIES
        .iter()
        .any(|(n, ..)| *n == name)
        .then(|| (name.to_string(), labels, format_value(value)))
}

/// A number as the text format writes it (integers without a fraction).
fn format_value(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

/// The samples of this run's sets, from its report.
fn from_report(s: &SetReport, out: &mut Vec<Sample>) {
    let set = vec![("set".to_string(), s.set.clone())];
    let Some(p) = &s.plan else { return };
    let golden_damaged = p
        .findings
        .iter()
        .filter(|f| f.problem == Problem::GoldenDamaged)
        .count();
    for (name, v) in [
        ("rebound_protected_files", p.files as u64),
        ("rebound_lost_files", p.lost.len() as u64),
        ("rebound_generation", p.generation),
    ] {
        out.push((name.into(), set.clone(), v.to_string()));
    }
    // A boot reads golden only to restore from it: its count is the golden damage it
    // met, not all there is. Only a run that read all of golden (verify), or that met
    // damage, says how much; otherwise the last known value stays.
    if p.golden == Some(GoldenCheck::Checked) || golden_damaged > 0 {
        out.push((
            "rebound_golden_damaged".into(),
            set.clone(),
            golden_damaged.to_string(),
        ));
    }
}

/// The metrics text after `run`, given the old file's text (if any).
pub fn render(
    fs: &dyn Fs,
    config: &Config,
    report: Option<&Report>,
    run: Run<'_>,
    old: Option<&str>,
) -> String {
    let configured: BTreeSet<&str> = config.sets.iter().map(|s| s.name.as_str()).collect();
    let mut samples: Vec<Sample> = Vec::new();
    if let Some(r) = report {
        for s in &r.sets {
            from_report(s, &mut samples);
        }
    }
    // Kept from the old file: the samples of the other sets and commands (and a set's
    // golden damage that this run did not measure), exactly as rebound writes them:
    // `{set="<configured set>"}` or `{command="<command>"}` and a number, rewritten from
    // the number parsed. Anything else is dropped (a foreign line must not make the
    // collector refuse the whole file).
    let written: BTreeSet<(String, Vec<(String, String)>)> =
        samples.iter().map(|s| (s.0.clone(), s.1.clone())).collect();
    for line in old.unwrap_or("").lines().filter(|l| !l.starts_with('#')) {
        let Some((name, labels, value)) = parse_sample(line) else {
            continue;
        };
        let keep = match labels.as_slice() {
            [(k, v)] if k == "set" => {
                PER_RUN.contains(&name.as_str()) && configured.contains(v.as_str())
            }
            [(k, v)] if k == "command" => {
                name.starts_with("rebound_last_run_")
                    && COMMANDS.contains(&v.as_str())
                    && v != run.command
            }
            _ => false,
        };
        if keep && !written.contains(&(name.clone(), labels.clone())) {
            samples.push((name, labels, value));
        }
    }
    // A set never measured for golden damage yet reads 0 until a run that reads golden.
    for set in &config.sets {
        let l = vec![("set".to_string(), set.name.clone())];
        if !samples
            .iter()
            .any(|s| s.0 == "rebound_golden_damaged" && s.1 == l)
            && set.golden().is_some()
        {
            samples.push(("rebound_golden_damaged".into(), l, "0".into()));
        }
    }
    samples.push((
        "rebound_info".into(),
        vec![("version".into(), env!("CARGO_PKG_VERSION").into())],
        "1".into(),
    ));
    // From each set's history, whatever this run did.
    for set in &config.sets {
        let loaded = history::load(fs, set);
        let boots = loaded.current_boot();
        let log = loaded.log.unwrap_or_default();
        let l = |extra: Option<(&str, &str)>| {
            let mut v = vec![("set".to_string(), set.name.clone())];
            if let Some((k, x)) = extra {
                v.push((k.to_string(), x.to_string()));
            }
            v
        };
        let mut kinds: BTreeMap<&str, u64> = KINDS.iter().map(|k| (*k, 0)).collect();
        for (k, n) in &log.totals {
            kinds.insert(k.as_str(), *n);
        }
        for (k, n) in kinds {
            samples.push((
                "rebound_repairs_total".into(),
                l(Some(("kind", k))),
                n.to_string(),
            ));
        }
        samples.push(("rebound_boots_total".into(), l(None), boots.to_string()));
        samples.push((
            "rebound_suspect_files".into(),
            l(None),
            log.suspects(set, boots).len().to_string(),
        ));
    }
    let cmd = vec![("command".to_string(), run.command.to_string())];
    for (name, v) in [
        (
            "rebound_last_run_timestamp_seconds",
            format!("{:.3}", run.ended),
        ),
        (
            "rebound_last_run_duration_seconds",
            format!("{:.6}", run.seconds),
        ),
        ("rebound_last_run_exit_status", run.exit.to_string()),
    ] {
        samples.push((name.into(), cmd.clone(), v));
    }
    let mut out = String::new();
    for (name, kind, help) in FAMILIES {
        let mut family: Vec<&Sample> = samples.iter().filter(|s| s.0 == name).collect();
        if family.is_empty() {
            continue;
        }
        family.sort_by(|a, b| a.1.cmp(&b.1));
        family.dedup_by(|a, b| a.1 == b.1);
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (_, labels, value) in family {
            let labels: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", label_value(v)))
                .collect();
            if labels.is_empty() {
                let _ = writeln!(out, "{name} {value}");
            } else {
                let _ = writeln!(out, "{name}{{{}}} {value}", labels.join(","));
            }
        }
    }
    out
}

/// Writes the metrics after `run` to `path` (temporary file in its directory,
/// fsync, rename), keeping the old file's samples of other sets and commands.
///
/// # Errors
/// Why the file could not be written (the caller reports it; the run's own result
/// stands).
pub fn write(
    durable: &Durable<'_>,
    config: &Config,
    path: &Path,
    report: Option<&Report>,
    run: Run<'_>,
) -> Result<()> {
    let fs = durable.fs();
    let bad = || Error::Usage(format!("metrics_file {}: not a file path", path.display()));
    let dir = path.parent().ok_or_else(bad)?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| RelPath::new(n).ok())
        .ok_or_else(bad)?;
    let old = read_small(fs, dir, &name, READ_MAX)
        .ok()
        .flatten()
        .and_then(|b| String::from_utf8(b).ok());
    let text = render(fs, config, report, run, old.as_deref());
    remove_stale_temps(fs, dir);
    durable.write_bytes(dir, &name, 0o644, text.as_bytes())
}

/// A cut during a write leaves its temporary file (`.rebound-tmp-*`, which the
/// collector ignores): removed once it is a minute old (a running writer's lives for
/// milliseconds), so that cuts do not pile them up.
fn remove_stale_temps(fs: &dyn Fs, dir: &Path) {
    let now = crate::statcache::now_ns();
    let Ok(entries) = fs.read_dir(dir, None) else {
        return;
    };
    for e in entries {
        let Some(rel) = e
            .name
            .filter(|n| is_temp_name(n))
            .and_then(|n| RelPath::new(&n).ok())
        else {
            continue;
        };
        if let Ok(Some(m)) = fs.metadata(dir, &rel) {
            if m.kind == crate::fs::Kind::File && now - m.mtime_ns > 60_000_000_000 {
                let _ = fs.remove_file(dir, &rel);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_written_are_read_back_and_others_dropped() {
        let s = parse_sample("rebound_lost_files{set=\"cfg\"} 2");
        assert_eq!(
            s,
            Some((
                "rebound_lost_files".into(),
                vec![("set".into(), "cfg".into())],
                "2".into()
            ))
        );
        assert!(parse_sample("node_load1 0.5").is_none());
        assert!(parse_sample("rebound_lost_files{set=\"a\\\"b\"} 2").is_none());
        assert!(parse_sample("rebound_lost_files{set=\"cfg\"} two").is_none());
        assert!(parse_sample("rebound_lost_files{set=cfg} 2").is_none());
        assert_eq!(label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        // Only rebound's own label names, and numbers written back as numbers.
        assert!(
            parse_sample("rebound_last_run_exit_status{command=\"verify\",x-y=\"1\"} 0").is_none()
        );
        assert!(parse_sample("rebound_lost_files{set=\"cfg\"} NaN").is_none());
        assert_eq!(
            parse_sample("rebound_generation{set=\"cfg\"} 7.0").map(|s| s.2),
            Some("7".into())
        );
    }
}
