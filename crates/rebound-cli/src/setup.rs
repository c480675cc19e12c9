//! Commands for whoever installs rebound on a device: `check-config` (the resolved
//! configuration, what each root must be) and `systemd-mounts` (the drop-in that makes
//! `rebound-boot.service` wait for every root's mount). Both read the configuration
//! file only: no replica is opened, listed or even looked up, so they are safe before
//! the partitions are mounted (a systemd generator runs before any mount).

use std::fmt::Write;
use std::path::Path;

use rebound::{escape, Config, Links, Mode, Role, SetConfig};
use serde_json::{json, Value};

/// What a replica is called in the configuration (`live`, `copies`, `golden`,
/// `replicas`), by its place in the set.
fn label(set: &SetConfig, index: usize, role: Role) -> &'static str {
    match (set.mode, role, index) {
        (_, Role::Golden, _) => "golden",
        (Mode::Golden | Mode::Parity, Role::Writable, 0) => "live",
        (Mode::Golden | Mode::Parity, Role::Writable, _) => "copy",
        (Mode::Mirror, Role::Writable, _) => "replica",
    }
}

/// What the mount holding a replica root must allow.
fn must(role: Role) -> &'static str {
    match role {
        Role::Writable => {
            "mounted read-write before `rebound boot` (repairs and commits write here)"
        }
        Role::Golden => {
            "mounted before `rebound boot`; read-only is enough (only `rebound seal` writes it)"
        }
    }
}

fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Golden => "golden",
        Mode::Mirror => "mirror",
        Mode::Parity => "parity",
    }
}

fn links_name(links: Links) -> &'static str {
    match links {
        Links::Refuse => "refuse",
        Links::Skip => "skip",
    }
}

/// How `rebound boot` checks the set's files.
fn boot_check(set: &SetConfig) -> String {
    if set.changed_only {
        format!(
            "hashes only the files whose metadata changed (changed_only), every {}th boot all of them",
            set.full_check_every
        )
    } else {
        "hashes every file".to_string()
    }
}

/// Every replica root and parity directory of every set, each once, in configuration
/// order: what must be mounted before `rebound boot` runs.
pub fn mounts(config: &Config) -> Vec<&Path> {
    let mut out: Vec<&Path> = Vec::new();
    for s in &config.sets {
        let roots = s.replicas.iter().map(|r| r.root.as_path());
        for root in roots.chain(s.parity.iter().map(|p| p.root.as_path())) {
            if !out.contains(&root) {
                out.push(root);
            }
        }
    }
    out
}

/// `rebound check-config`: the resolved configuration as text.
pub fn check_config(config: &Config) -> String {
    let mut out = String::new();
    let mut line = |text: String| {
        out.push_str(&escape(&text));
        out.push('\n');
    };
    let n = config.sets.len();
    line(format!(
        "{}: valid ({n} set{}, {} hashing thread{}); no replica was read",
        config.path.display(),
        if n == 1 { "" } else { "s" },
        config.threads,
        if config.threads == 1 { "" } else { "s" },
    ));
    for set in &config.sets {
        line(String::new());
        line(format!(
            "set {} ({} mode, hash {}, links {})",
            set.name,
            mode_name(set.mode),
            set.hash.name(),
            links_name(set.links)
        ));
        for (i, r) in set.replicas.iter().enumerate() {
            line(format!(
                "  {:<8}{}: {}",
                label(set, i, r.role),
                r.root.display(),
                must(r.role)
            ));
        }
        if let Some(p) = &set.parity {
            line(format!(
                "  parity  {}: mounted read-write before `rebound boot` ({}% recovery blocks, blocks of at most {} bytes)",
                p.root.display(),
                p.redundancy,
                p.block
            ));
        }
        line(format!("  include {}", set.include.join(", ")));
        if !set.exclude.is_empty() {
            line(format!("  exclude {}", set.exclude.join(", ")));
        }
        if let Some(tag) = &set.version_file {
            line(format!("  version tag {tag} (in every writable copy)"));
        }
        if let Some(k) = &set.golden_public_key {
            line(format!(
                "  golden manifest signed: verified with {} (golden_public_key)",
                k.display()
            ));
        }
        line(format!("  boot    {}", boot_check(set)));
        if let (Some(p), Some(k)) = (&set.key.path, &set.key.key) {
            line(format!(
                "  key     {} (key id {}): writable manifests, stat cache and history carry its MAC (format 3)",
                p.display(),
                k.id()
            ));
        }
    }
    line(String::new());
    line("mounted before `rebound boot` (systemd: `rebound systemd-mounts`):".to_string());
    for m in mounts(config) {
        line(format!("  {}", m.display()));
    }
    out
}

/// `rebound check-config --json`.
pub fn check_config_json(config: &Config) -> Value {
    let sets: Vec<Value> = config
        .sets
        .iter()
        .map(|set| {
            let replicas: Vec<Value> = set
                .replicas
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    json!({
                        "root": r.root,
                        "role": r.role,
                        "as": label(set, i, r.role),
                        "mount": match r.role {
                            Role::Writable => "read-write",
                            Role::Golden => "read-only",
                        },
                    })
                })
                .collect();
            json!({
                "name": set.name,
                "mode": set.mode,
                "hash": set.hash.name(),
                "links": set.links,
                "replicas": replicas,
                "include": set.include,
                "exclude": set.exclude,
                "version_file": set.version_file.as_ref().map(|t| t.as_str()),
                "golden_public_key": set.golden_public_key,
                "changed_only": set.changed_only,
                "full_check_every": set.full_check_every,
                "device_key": set.key.path,
                "device_key_id": set.key.key.as_ref().map(|k| k.id()),
                "parity": set.parity.as_ref().map(|p| json!({
                    "root": p.root,
                    "redundancy": p.redundancy,
                    "block_size": p.block,
                })),
            })
        })
        .collect();
    json!({
        "config": config.path,
        "valid": true,
        "threads": config.threads,
        "sets": sets,
        "mounts": mounts(config),
    })
}

/// One path as a word of a systemd unit setting that takes paths
/// (`RequiresMountsFor=`): `%` doubled (a specifier otherwise), and in double quotes
/// with `"` and `\` escaped when it holds white space, a quote or a backslash (systemd
/// splits the value into words with quotes removed). A control character cannot be
/// written in a unit file at all: `None`.
fn unit_word(path: &Path) -> Option<String> {
    let s = path.to_str()?;
    if s.chars().any(char::is_control) {
        return None;
    }
    let s = s.replace('%', "%%");
    if !s
        .chars()
        .any(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '\\'))
    {
        return Some(s);
    }
    let mut q = String::from("\"");
    for c in s.chars() {
        if matches!(c, '"' | '\\') {
            q.push('\\');
        }
        q.push(c);
    }
    q.push('"');
    Some(q)
}

/// `rebound systemd-mounts`: the drop-in for `rebound-boot.service` that makes it wait
/// for every replica root's mount (and fail if one cannot be mounted), or why a root
/// cannot be named in a unit file.
pub fn systemd_mounts(config: &Config) -> anyhow::Result<String> {
    let mut words = Vec::new();
    for m in mounts(config) {
        let Some(w) = unit_word(m) else {
            anyhow::bail!(
                "{}: the root {} cannot be written in a systemd unit (not UTF-8, or a control character in it); rename the directory or write the drop-in by hand",
                config.path.display(),
                escape(&m.display().to_string())
            );
        };
        words.push(w);
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Generated by `rebound systemd-mounts` from {}: rebound-boot.service",
        escape(&config.path.display().to_string())
    );
    let _ = writeln!(
        out,
        "# runs once every replica root is mounted (RequiresMountsFor=, systemd.unit(5))."
    );
    let _ = writeln!(out, "[Unit]");
    let _ = writeln!(out, "RequiresMountsFor={}", words.join(" "));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_words_are_quoted_and_escaped_as_systemd_reads_them() {
        assert_eq!(
            unit_word(Path::new("/data/cfg")).as_deref(),
            Some("/data/cfg")
        );
        assert_eq!(
            unit_word(Path::new("/data/50%")).as_deref(),
            Some("/data/50%%")
        );
        assert_eq!(
            unit_word(Path::new("/data/my cfg")).as_deref(),
            Some("\"/data/my cfg\"")
        );
        assert_eq!(
            unit_word(Path::new("/data/a\"b\\c")).as_deref(),
            Some("\"/data/a\\\"b\\\\c\"")
        );
        assert_eq!(unit_word(Path::new("/data/a\nb")), None);
    }
}
