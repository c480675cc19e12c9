//! The man pages and completions `cargo xtask all` writes: every subcommand of the real
//! command line (rebound_cli::command()) has a page that names each of its options and
//! its exit statuses, groff renders every page without a warning, and bash accepts the
//! bash completion and completes the subcommands and options with it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

/// The roff source as text: `\-` is a plain hyphen there.
fn unroff(source: &str) -> String {
    source
        .replace("\\-", "-")
        .replace("\\fB", "")
        .replace("\\fR", "")
        .replace("\\fI", "")
}

fn has_tool(name: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {name} >/dev/null 2>&1")])
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn every_subcommand_has_a_page_naming_its_options() {
    let dir = tempfile::tempdir().unwrap();
    let written = xtask::write_man_pages(dir.path()).unwrap();
    let cmd = rebound_cli::command();
    let subs: Vec<_> = cmd.get_subcommands().filter(|s| !s.is_hide_set()).collect();
    assert!(
        subs.len() >= 9,
        "expected the nine subcommands, got {}",
        subs.len()
    );
    assert_eq!(written.len(), subs.len() + 1, "{written:?}");

    let root = unroff(&std::fs::read_to_string(dir.path().join("rebound.1")).unwrap());
    assert!(
        root.starts_with(".ie") || root.contains(".TH REBOUND 1"),
        "{root}"
    );
    for section in [
        "NAME",
        "SYNOPSIS",
        "OPTIONS",
        "SUBCOMMANDS",
        "EXIT STATUS",
        "FILES",
        "SEE ALSO",
    ] {
        assert!(
            root.contains(&format!(".SH {section}"))
                || root.contains(&format!(".SH \"{section}\"")),
            "rebound.1 has no {section} section"
        );
    }
    assert!(
        root.contains("/etc/rebound.toml"),
        "rebound.1 does not name /etc/rebound.toml"
    );
    assert!(root.contains("REBOUND_CONFIG"));
    assert!(
        !root.contains(".SH EXTRA"),
        "the after-help belongs under EXIT STATUS/NOTES"
    );

    for sub in subs {
        let name = sub.get_name();
        let file = dir.path().join(format!("rebound-{name}.1"));
        let page =
            unroff(&std::fs::read_to_string(&file).unwrap_or_else(|e| {
                panic!("no page for subcommand {name}: {}: {e}", file.display())
            }));
        assert!(
            page.contains(&format!(".TH REBOUND-{} 1", name.to_uppercase())),
            "{page}"
        );
        assert!(
            root.contains(&format!("rebound-{name}(1)")),
            "rebound.1 does not list rebound-{name}(1)"
        );
        // Its own options, and the global ones (-c, --wait, --threads) too.
        for arg in sub
            .get_arguments()
            .chain(cmd.get_arguments().filter(|a| a.is_global_set()))
        {
            if arg.is_hide_set() {
                continue;
            }
            if let Some(long) = arg.get_long() {
                assert!(
                    page.contains(&format!("--{long}")),
                    "rebound-{name}.1 does not name --{long}"
                );
            }
            if let Some(short) = arg.get_short() {
                assert!(
                    page.contains(&format!("-{short}")),
                    "rebound-{name}.1 does not name -{short}"
                );
            }
            if arg.is_positional() {
                let id = arg.get_id().as_str().to_uppercase();
                assert!(
                    page.contains(&id),
                    "rebound-{name}.1 does not name the argument {id}"
                );
            }
        }
        assert!(
            page.contains("EXIT STATUS"),
            "rebound-{name}.1 has no EXIT STATUS"
        );
        for code in ["0", "2"] {
            assert!(
                page.contains(&format!(".TP\n\\fB{code}"))
                    || page.contains(&format!(".TP\n{code}\n")),
                "rebound-{name}.1 does not list exit status {code}"
            );
        }
        if name != "demo" {
            assert!(
                page.contains("/etc/rebound.toml"),
                "rebound-{name}.1 does not name /etc/rebound.toml"
            );
        }
        assert!(
            page.contains("rebound(1)"),
            "rebound-{name}.1 does not refer to rebound(1)"
        );
    }
}

#[test]
fn the_exit_status_codes_are_sections_not_running_text() {
    let dir = tempfile::tempdir().unwrap();
    xtask::write_man_pages(dir.path()).unwrap();
    let src = std::fs::read_to_string(dir.path().join("rebound-verify.1")).unwrap();
    // The raw source: each code is a .TP tag in bold, its text on the next line.
    for code in ["0", "1", "2", "3"] {
        assert!(
            src.contains(&format!(".TP\n\\fB{code}\\fR\n")),
            "no .TP item for {code}:\n{src}"
        );
    }
    assert!(
        src.contains(".SH NOTES"),
        "the Locking/Dry runs paragraphs belong under NOTES"
    );
}

#[test]
fn groff_renders_every_page_without_a_warning() {
    if !has_tool("groff") {
        eprintln!("SKIP: groff is not installed (apt-get install groff-base): pages not rendered");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pages = xtask::write_man_pages(dir.path()).unwrap();
    for page in pages {
        let out = Command::new("groff")
            .args(["-man", "-Tutf8", "-ww", "-z"])
            .arg(&page)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stderr.trim().is_empty(),
            "{}: {stderr}",
            page.display()
        );
        // And the rendered text carries the options (no escaping gone wrong): plain
        // ASCII, without bold or underlining by overstrike.
        let text = Command::new("groff")
            .args(["-man", "-Tascii", "-P-cbou"])
            .arg(&page)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&text.stdout);
        assert!(
            text.contains("--config"),
            "{}: rendered without --config:\n{text}",
            page.display()
        );
    }
}

fn completion_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let written = xtask::write_completions(dir.path()).unwrap();
    let names: Vec<_> = written
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["rebound.bash", "_rebound", "rebound.fish"]);
    dir
}

/// Runs the bash completion function for the words typed so far; returns COMPREPLY.
fn bash_complete(file: &Path, words: &[&str]) -> Vec<String> {
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let script = format!(
        "set -e; source '{}'; COMP_WORDS=({}); COMP_CWORD={}; COMP_LINE='{}'; COMP_POINT=${{#COMP_LINE}}; \
         _rebound rebound '{}' '{}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        file.display(),
        quoted.join(" "),
        words.len() - 1,
        words.join(" "),
        words[words.len() - 1],
        words[words.len().saturating_sub(2)],
    );
    let out = Command::new("bash")
        .args(["--norc", "-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "bash completion failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn bash_accepts_the_completion_and_completes_subcommands_and_options() {
    let dir = completion_dir();
    let bash = dir.path().join("rebound.bash");
    let st = Command::new("bash").arg("-n").arg(&bash).status().unwrap();
    assert!(st.success(), "bash -n rejects {}", bash.display());

    let subs = bash_complete(&bash, &["rebound", ""]);
    for sub in rebound_cli::command()
        .get_subcommands()
        .map(|s| s.get_name().to_owned())
    {
        assert!(
            subs.contains(&sub),
            "rebound <TAB> does not offer {sub}: {subs:?}"
        );
    }
    let boot = bash_complete(&bash, &["rebound", "boot", "--"]);
    for opt in ["--dry-run", "--full", "--json", "--config", "--wait"] {
        assert!(
            boot.iter().any(|o| o == opt),
            "rebound boot --<TAB> does not offer {opt}: {boot:?}"
        );
    }
    let update = bash_complete(&bash, &["rebound", "update", "--"]);
    assert!(update.iter().any(|o| o == "--from"), "{update:?}");
}

#[test]
fn zsh_and_fish_completions_name_every_subcommand() {
    let dir = completion_dir();
    let zsh = std::fs::read_to_string(dir.path().join("_rebound")).unwrap();
    let fish = std::fs::read_to_string(dir.path().join("rebound.fish")).unwrap();
    assert!(zsh.starts_with("#compdef rebound"), "{zsh}");
    for sub in rebound_cli::command()
        .get_subcommands()
        .map(|s| s.get_name().to_owned())
    {
        assert!(
            zsh.contains(&format!("'{sub}:")),
            "_rebound does not name {sub}"
        );
        assert!(
            fish.contains(&format!("-a \"{sub}\"")),
            "rebound.fish does not name {sub}"
        );
    }
    for (shell, file) in [("zsh", "_rebound"), ("fish", "rebound.fish")] {
        if has_tool(shell) {
            let st = Command::new(shell)
                .arg("-n")
                .arg(dir.path().join(file))
                .status()
                .unwrap();
            assert!(st.success(), "{shell} -n rejects {file}");
        } else {
            eprintln!("SKIP: {shell} is not installed: {file} not syntax-checked");
        }
    }
}
