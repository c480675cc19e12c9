//! `cargo xtask man | completions | all [--out DIR]`: see the crate's documentation.

use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask man [--out DIR]          man pages (default: target/man)
       cargo xtask completions [--out DIR]  bash, zsh, fish (default: target/completions)
       cargo xtask all [--out DIR]          both, into DIR/man and DIR/completions
                                            (default DIR: target)";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let task = args.next();
    let mut out: Option<PathBuf> = None;
    while let Some(a) = args.next() {
        match (a.as_str(), args.next()) {
            ("--out", Some(dir)) => out = Some(PathBuf::from(dir)),
            _ => return usage(&format!("unexpected argument {a:?}")),
        }
    }
    let target = xtask::workspace_root().join("target");
    let result = match task.as_deref() {
        Some("man") => xtask::write_man_pages(&out.unwrap_or_else(|| target.join("man"))),
        Some("completions") => {
            xtask::write_completions(&out.unwrap_or_else(|| target.join("completions")))
        }
        Some("all") => {
            let base = out.unwrap_or(target);
            xtask::write_man_pages(&base.join("man")).and_then(|mut m| {
                m.extend(xtask::write_completions(&base.join("completions"))?);
                Ok(m)
            })
        }
        Some("-h" | "--help") => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Some(other) => return usage(&format!("unknown task {other:?}")),
        None => return usage("no task given"),
    };
    match result {
        Ok(files) => {
            for f in files {
                println!("{}", f.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("xtask: error: {e}");
            ExitCode::from(2)
        }
    }
}

fn usage(why: &str) -> ExitCode {
    eprintln!("xtask: {why}\n{USAGE}");
    ExitCode::from(2)
}
