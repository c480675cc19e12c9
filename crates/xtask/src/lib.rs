//! Build-time tasks for rebound (`cargo xtask`, see `.cargo/config.toml`): the man pages
//! and the shell completions, rendered from the command line the binary parses
//! (`rebound_cli::command()`), so they cannot drift apart from it. The `rebound` binary
//! itself carries no code for them.
//!
//! - [`write_man_pages`]: `rebound.1` and one page per subcommand (`rebound-boot.1`, ...),
//!   with the exit statuses and notes of each command's `--help`, ENVIRONMENT, FILES
//!   and SEE ALSO sections.
//! - [`write_completions`]: `rebound.bash`, `_rebound` (zsh) and `rebound.fish`.

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use clap::Command;
use clap_complete::Shell;
use clap_mangen::roff::{bold, italic, roman, Roff};
use clap_mangen::Man;

/// The program's name: the binary, the man pages' prefix and the completions' command.
pub const BIN: &str = "rebound";

/// The configuration file every command but `demo` reads by default.
pub const CONFIG: &str = "/etc/rebound.toml";

/// Where the Debian package (and the docs) put the example configurations.
pub const EXAMPLES: &str = "/usr/share/doc/rebound/examples";

/// The workspace root (this crate lives in `crates/xtask`).
pub fn workspace_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent()
        .and_then(Path::parent)
        .map_or_else(|| here.to_path_buf(), Path::to_path_buf)
}

/// The command line, built (global options propagated, subcommands named
/// `rebound-boot` ...), without the `help` subcommand (it has no page).
fn built_command() -> Command {
    let mut cmd = rebound_cli::command().disable_help_subcommand(true);
    cmd.build();
    cmd
}

/// One man page: its file name (`rebound-boot.1`) and its roff source.
#[derive(Debug, Clone)]
pub struct Page {
    pub file_name: String,
    pub source: String,
}

/// Every man page: `rebound.1` first, then one per visible subcommand.
pub fn man_pages(date: &str) -> io::Result<Vec<Page>> {
    let root = built_command();
    let version = root.get_version().unwrap_or_default().to_owned();
    let subs: Vec<String> = root
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .map(page_name)
        .collect();
    let mut pages = vec![render_page(&root, None, &version, date, &subs)?];
    for sub in root.get_subcommands().filter(|s| !s.is_hide_set()) {
        pages.push(render_page(sub, Some(&root), &version, date, &subs)?);
    }
    Ok(pages)
}

/// `rebound` or `rebound-boot`: the page's name (clap names a built subcommand so).
fn page_name(cmd: &Command) -> String {
    cmd.get_display_name()
        .unwrap_or_else(|| cmd.get_name())
        .to_owned()
}

fn render_page(
    cmd: &Command,
    parent: Option<&Command>,
    version: &str,
    date: &str,
    all_subs: &[String],
) -> io::Result<Page> {
    let name = page_name(cmd);
    let after_help = cmd
        .get_after_long_help()
        .or_else(|| cmd.get_after_help())
        .map(ToString::to_string)
        .unwrap_or_default();
    // clap_mangen would print the after-help under "EXTRA" and the version before it:
    // both are rendered below as EXIT STATUS, NOTES and VERSION instead.
    let stripped = cmd
        .clone()
        .after_help(None::<&str>)
        .after_long_help(None::<&str>)
        .version(None::<&str>)
        .long_version(None::<&str>);
    let man = Man::new(stripped)
        .title(name.to_uppercase())
        .section("1")
        .date(date)
        .source(format!("{BIN} {version}"))
        .manual("rebound manual");
    let mut out = Vec::new();
    man.render(&mut out)?;
    let mut source = String::from_utf8(out).map_err(io::Error::other)?;

    let mut roff = Roff::new();
    exit_status_and_notes(&mut roff, &after_help);
    let reads_config = cmd.get_name() != "demo";
    if reads_config {
        roff.control("SH", ["ENVIRONMENT"]);
        roff.control("TP", []);
        roff.text([bold("REBOUND_CONFIG")]);
        roff.text([
            roman("The configuration file, when "),
            bold("-c"),
            roman(" is not given (an empty value is an error). Default: "),
            italic(CONFIG),
            roman("."),
        ]);
        roff.control("SH", ["FILES"]);
        roff.control("TP", []);
        roff.text([italic(CONFIG)]);
        roff.text([roman(
            "The configuration: the protected sets, their roots (live, golden, copies, parity) \
             and patterns. Check it with rebound check-config.",
        )]);
        roff.control("TP", []);
        roff.text([italic(format!("{EXAMPLES}/"))]);
        roff.text([roman(
            "Example configurations (device.toml, golden.toml, mirror.toml, parity.toml) to copy to ",
        )]);
        roff.text([italic(CONFIG), roman(".")]);
    }
    if parent.is_none() || matches!(cmd.get_name(), "boot" | "systemd-mounts") {
        roff.control("TP", []);
        roff.text([italic("/usr/lib/systemd/system/rebound-boot.service")]);
        roff.text([roman(
            "The systemd unit that runs rebound boot early at every boot (installed, \
             not enabled: systemctl enable rebound-boot.service).",
        )]);
    }
    roff.control("SH", ["SEE ALSO"]);
    let mut refs: Vec<String> = Vec::new();
    match parent {
        None => refs.extend(all_subs.iter().cloned()),
        Some(p) => {
            refs.push(page_name(p));
            for related in ["rebound-check-config", "rebound-status", "rebound-verify"] {
                if related != name && all_subs.iter().any(|s| s == related) {
                    refs.push(related.to_owned());
                }
            }
        }
    }
    let mut see_also = Vec::new();
    for (i, r) in refs.iter().enumerate() {
        if i > 0 {
            see_also.push(roman(", "));
        }
        see_also.push(bold(r.clone()));
        see_also.push(roman("(1)"));
    }
    roff.text(see_also);
    roff.control("PP", []);
    roff.text([
        roman("The integration guide (boot sequences, update flows, packaging): "),
        italic("/usr/share/doc/rebound/integration.md"),
        roman("."),
    ]);
    if !version.is_empty() {
        roff.control("SH", ["VERSION"]);
        roff.text([roman(format!("{BIN} {version}"))]);
    }
    // `to_roff`: the apostrophe preamble was written once, by `render` above.
    source.push_str(&roff.to_roff());
    Ok(Page {
        file_name: format!("{name}.1"),
        source,
    })
}

/// The after-help of a command (see `rebound_cli::EXIT_HELP`) as man sections: the
/// paragraph "Exit status:" with its "  CODE  text" items (continued on more deeply
/// indented lines) becomes EXIT STATUS; every other paragraph goes to NOTES.
fn exit_status_and_notes(roff: &mut Roff, text: &str) {
    let mut notes: Vec<String> = Vec::new();
    for para in text.split("\n\n") {
        let mut lines = para.lines();
        let Some(first) = lines.next() else { continue };
        if first.trim() == "Exit status:" {
            roff.control("SH", ["EXIT STATUS"]);
            let mut items: Vec<(String, String)> = Vec::new();
            for line in lines {
                let indent = line.len() - line.trim_start().len();
                let body = line.trim();
                match items.last_mut() {
                    Some((_, t)) if indent > 2 => {
                        t.push(' ');
                        t.push_str(body);
                    }
                    _ => {
                        let (code, rest) =
                            body.split_once(char::is_whitespace).unwrap_or((body, ""));
                        items.push((code.to_owned(), rest.trim().to_owned()));
                    }
                }
            }
            for (code, t) in items {
                roff.control("TP", []);
                roff.text([bold(code)]);
                roff.text([roman(t)]);
            }
        } else if !para.trim().is_empty() {
            notes.push(para.lines().map(str::trim).collect::<Vec<_>>().join(" "));
        }
    }
    if !notes.is_empty() {
        roff.control("SH", ["NOTES"]);
        for (i, n) in notes.iter().enumerate() {
            if i > 0 {
                roff.control("PP", []);
            }
            roff.text([roman(n.clone())]);
        }
    }
}

/// The date printed in the pages' footer: `SOURCE_DATE_EPOCH` (reproducible builds),
/// else the last commit's date (`git log`), else none.
pub fn page_date() -> String {
    if let Some(days) = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .map(|secs| secs.div_euclid(86_400))
    {
        let (y, m, d) = civil_from_days(days);
        return format!("{y:04}-{m:02}-{d:02}");
    }
    std::process::Command::new("git")
        .args(["log", "-1", "--format=%cs"])
        .current_dir(workspace_root())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's
/// algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        u32::try_from(m).unwrap_or(1),
        u32::try_from(d).unwrap_or(1),
    )
}

/// Writes every man page into `out` (created if missing); returns their paths.
pub fn write_man_pages(out: &Path) -> io::Result<Vec<PathBuf>> {
    fs::create_dir_all(out).map_err(|e| annotate(e, out))?;
    let mut written = Vec::new();
    for page in man_pages(&page_date())? {
        let path = out.join(&page.file_name);
        fs::write(&path, page.source).map_err(|e| annotate(e, &path))?;
        written.push(path);
    }
    Ok(written)
}

/// The shells completions are written for, and the file each gets.
pub const SHELLS: [(Shell, &str); 3] = [
    (Shell::Bash, "rebound.bash"),
    (Shell::Zsh, "_rebound"),
    (Shell::Fish, "rebound.fish"),
];

/// Writes the bash, zsh and fish completions into `out` (created if missing).
pub fn write_completions(out: &Path) -> io::Result<Vec<PathBuf>> {
    fs::create_dir_all(out).map_err(|e| annotate(e, out))?;
    let mut cmd = rebound_cli::command();
    let mut written = Vec::new();
    for (shell, file) in SHELLS {
        let path =
            clap_complete::generate_to(shell, &mut cmd, BIN, out).map_err(|e| annotate(e, out))?;
        if path.file_name().and_then(|f| f.to_str()) != Some(file) {
            return Err(io::Error::other(format!(
                "clap_complete wrote {} for {shell}, expected {file}",
                path.display()
            )));
        }
        written.push(path);
    }
    Ok(written)
}

fn annotate(e: io::Error, path: &Path) -> io::Error {
    let mut msg = String::new();
    let _ = write!(msg, "{}: {e}", path.display());
    io::Error::new(e.kind(), msg)
}

#[cfg(test)]
mod tests {
    use super::civil_from_days;

    #[test]
    fn days_to_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_792), (2026, 12, 5));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }
}
