//! The `rebound` command: parses what the user typed, loads the configuration, runs
//! one engine operation and prints its report. Exit statuses are documented below and
//! in README.md.

mod demo;
mod render;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use rebound::lock::{self, Holder, Locks};
use rebound::{escape_controls, exit, Config, Engine, Error, OsFs, SetConfig};

const EXIT_HELP: &str = "\
Exit status:
  0  every protected file is intact (for boot: after its repairs)
  1  verify and boot --dry-run only: damage found that boot would repair (or a damaged
     golden copy)
  2  usage, configuration or I/O error, or the lock still held after --wait
  3  some file has no intact copy left (it is left as it is and named in the report)

Locking: boot, commit, update and seal lock every replica root of the sets they work on
(an flock on the directory itself: no lock file); another writer on the same roots waits
up to --wait seconds, saying who holds the lock. verify, status and every --dry-run take
no lock: every write is a rename of a complete file, so they see each file whole, old or
new, but may report a state between two steps of a writer that is running.

Dry runs: boot, commit, update and seal --dry-run print every action the real run
would take, in order (--json gives them), and write nothing at all. For commit, update
and seal the exit status says whether the change can be made (0), not whether
something is damaged.";

const STATUS_EXIT_HELP: &str = "\
Exit status:
  0  the status was printed (it hashes no protected file: verify checks them)
  2  usage, configuration or I/O error

status takes no lock: while a writer runs it may show a generation before or after it.";

const DEMO_EXIT_HELP: &str = "\
Exit status:
  0  the demo device ended intact, as it should
  2  the demo could not run (for example, no writable temporary directory)
  other: as for verify, if the demo device did not end intact";

/// How long a writer waits for another run's lock by default: a boot must not hang
/// behind a stuck process, yet should outlast a commit or a boot check that is running.
const DEFAULT_WAIT_SECS: u64 = 60;

/// Keeps critical files intact across deletion, corruption and power loss.
#[derive(Debug, Parser)]
#[command(name = "rebound", version, about, after_help = EXIT_HELP)]
struct Args {
    /// Configuration file [default: $REBOUND_CONFIG if set, else /etc/rebound.toml].
    #[arg(short, long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// How long boot, commit, update and seal wait for another run's lock on the same
    /// replica roots before giving up with exit status 2 (0: give up at once).
    #[arg(long, global = true, value_name = "SECONDS", default_value_t = DEFAULT_WAIT_SECS)]
    wait: u64,
    /// Threads for hashing (overrides the configuration's `threads`; default: the
    /// CPUs available, at most 4).
    #[arg(long, global = true, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    threads: Option<u16>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Factory step: copy the live files into the golden copy and write the manifests
    /// (golden sets); adopt the first replica (mirror sets).
    #[command(after_help = EXIT_HELP)]
    Seal {
        /// Sets to seal (default: all).
        sets: Vec<String>,
        /// Replace an existing seal (new factory state).
        #[arg(long)]
        force: bool,
        /// Print every action the seal would take, in order; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Boot-time run: verify every protected file and repair what is damaged. Safe to
    /// run at every boot and to rerun after a crash at any point.
    #[command(after_help = EXIT_HELP)]
    Boot {
        /// Sets to check (default: all).
        sets: Vec<String>,
        /// Print what would be done, change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Hash every file, even in `changed_only` sets.
        #[arg(long)]
        full: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Read-only check of every copy, golden included. Writes nothing anywhere.
    #[command(after_help = EXIT_HELP)]
    Verify {
        /// Sets to check (default: all).
        sets: Vec<String>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Accept the current content of protected files (an intentional change), so the
    /// next boot keeps it; in sets with several writable copies it is brought to all.
    /// With --remove, drop the files from their sets instead (an intended deletion).
    #[command(after_help = EXIT_HELP)]
    Commit {
        /// Absolute paths (or relative to the current directory) of protected files.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Drop these files from their sets at a new generation: each is removed from
        /// every writable copy that still holds the recorded content (a copy with
        /// other content is left as it is) and is not restored at the next boot. The
        /// golden manifest keeps naming them: a boot that has lost every writable
        /// manifest falls back to it and restores them.
        #[arg(long)]
        remove: bool,
        /// Print every action the commit would take, in order; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Firmware-update step: the files under DIR replace or join the set's files, all
    /// or nothing, and their hashes are recorded.
    #[command(after_help = EXIT_HELP)]
    Update {
        /// The set to update.
        set: String,
        /// Directory with the new files, at the same relative paths.
        #[arg(long, value_name = "DIR")]
        from: PathBuf,
        /// Print every action the update would take, in order; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// What is protected, where, at which generation, and the last repairs.
    #[command(after_help = STATUS_EXIT_HELP)]
    Status {
        /// Sets to show (default: all).
        sets: Vec<String>,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Build a throwaway device in a temporary directory, damage it the ways the
    /// vendor documents list, and show what the boot check finds and does.
    #[command(after_help = DEMO_EXIT_HELP)]
    Demo,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            say(format_args!("rebound: error: {e:#}"));
            ExitCode::from(exit::ERROR)
        }
    }
}

/// The configuration file: `-c`, else `REBOUND_CONFIG`, else the default.
fn config_path(arg: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(p) = arg {
        return Ok(p);
    }
    match std::env::var_os("REBOUND_CONFIG") {
        Some(v) if v.is_empty() => anyhow::bail!(
            "REBOUND_CONFIG is set but empty; unset it or name the configuration file (or use -c FILE)"
        ),
        Some(v) => Ok(PathBuf::from(v)),
        None => Ok(PathBuf::from(rebound::DEFAULT_CONFIG)),
    }
}

fn run(args: Args) -> anyhow::Result<u8> {
    let command = match args.command {
        Command::Demo => return run_demo(),
        c => c,
    };
    let config_path = config_path(args.config)?;
    let mut config = Config::load(&config_path)?;
    if let Some(n) = args.threads {
        config.set_threads(usize::from(n));
    }
    let wait = Duration::from_secs(args.wait);
    let fs = OsFs::new();
    let engine = Engine::new(&fs);
    // Writers hold their locks until their work is done; readers take none.
    let (report, json, locks) = match command {
        Command::Seal {
            sets,
            force,
            dry_run,
            json,
        } => {
            let locks = writer_lock(&config.select(&sets)?, wait, dry_run)?;
            (engine.seal(&config, &sets, force, dry_run)?, json, locks)
        }
        Command::Boot {
            sets,
            dry_run,
            full,
            json,
        } => {
            if full {
                config.force_full_check();
            }
            let locks = writer_lock(&config.select(&sets)?, wait, dry_run)?;
            (engine.boot(&config, &sets, dry_run)?, json, locks)
        }
        Command::Verify { sets, json } => {
            tell_writers(&config.select(&sets)?);
            (engine.verify(&config, &sets)?, json, None)
        }
        Command::Commit {
            paths,
            remove,
            dry_run,
            json,
        } => {
            let cwd = std::env::current_dir().context("current directory")?;
            let paths: Vec<PathBuf> = paths.into_iter().map(|p| cwd.join(p)).collect();
            let mut sets: Vec<&SetConfig> = Vec::new();
            for p in &paths {
                let (si, _, _) = config.locate(p)?;
                if let Some(s) = config.sets.get(si) {
                    sets.push(s);
                }
            }
            let locks = writer_lock(&sets, wait, dry_run)?;
            let report = if remove {
                engine.commit_remove(&config, &paths, dry_run)?
            } else {
                engine.commit(&config, &paths, dry_run)?
            };
            (report, json, locks)
        }
        Command::Update {
            set,
            from,
            dry_run,
            json,
        } => {
            let cwd = std::env::current_dir().context("current directory")?;
            let locks = writer_lock(&[config.set(&set)?], wait, dry_run)?;
            (
                engine.update(&config, &set, &cwd.join(from), dry_run)?,
                json,
                locks,
            )
        }
        Command::Status { sets, json } => {
            tell_writers(&config.select(&sets)?);
            let st = engine.status(&config, &sets)?;
            if json {
                emit(&format!("{}\n", serde_json::to_string_pretty(&st)?));
            } else {
                emit(&render::status(&st));
            }
            return Ok(exit::OK);
        }
        Command::Demo => return run_demo(),
    };
    // Released before the report is written: a reader that pages through it (`| less`)
    // or a stalled logger must not hold back the next writer.
    drop(locks);
    if json {
        emit(&format!("{}\n", serde_json::to_string_pretty(&report)?));
    } else {
        emit(&render::report(&report));
    }
    Ok(report.exit_code())
}

fn run_demo() -> anyhow::Result<u8> {
    let (text, code) = demo::run()?;
    emit(&text);
    Ok(code)
}

/// Every replica root of `sets`, golden ones included.
fn roots<'c>(sets: &[&'c SetConfig]) -> Vec<&'c Path> {
    sets.iter()
        .flat_map(|s| s.replicas.iter().map(|r| r.root.as_path()))
        .collect()
}

/// A writer's locks ([`lock()`]), or none for a dry run, which writes nothing: like a
/// reader, it only says when a writer is running on the same roots.
fn writer_lock(
    sets: &[&SetConfig],
    wait: Duration,
    dry_run: bool,
) -> anyhow::Result<Option<Locks>> {
    if dry_run {
        tell_writers(sets);
        return Ok(None);
    }
    lock(sets, wait).map(Some)
}

/// Takes a writer's locks on every replica root of `sets` (rebound::lock), waiting
/// up to `wait` for another run that holds one, and saying once who that is.
fn lock(sets: &[&SetConfig], wait: Duration) -> anyhow::Result<Locks> {
    let mut on_wait = |root: &Path, holder: &Holder| {
        say(format_args!(
            "rebound: waiting for the lock on {} held by {holder} (giving up after {} s: --wait)",
            root.display(),
            wait.as_secs()
        ));
    };
    lock::lock_roots(&roots(sets), wait, &mut on_wait).map_err(|e| match e {
        Error::Locked { .. } => anyhow::anyhow!("{e}; --wait SECONDS sets how long to wait"),
        e => e.into(),
    })
}

/// A reader takes no lock; it says when a writer is running on the same roots, since
/// what it reports may then be a state between two of the writer's steps.
fn tell_writers(sets: &[&SetConfig]) {
    if let Some((root, holder)) = lock::busy(&roots(sets)).first() {
        say(format_args!(
            "rebound: note: {holder} is writing to {} right now; this report may show a state between two of its steps (every file whole, old or new): run again once it has finished to be sure",
            root.display()
        ));
    }
}

/// Writes a report to standard output. A reader that went away (`rebound status |
/// head -1`, a logger that exited) is no error: the run's work is done and its exit
/// status is the real one, so the rest of the report is dropped quietly.
fn emit(text: &str) {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        Err(e) => say(format_args!(
            "rebound: warning: the report could not be written to standard output: {e}"
        )),
    }
}

/// A message on standard error, never panicking: a closed standard error must not turn
/// a finished run into a crash. Control characters are escaped (it may name files),
/// except the line breaks of a message listing several (seal's refusals); backslashes
/// are kept (names that are not UTF-8 come as `\xNN`).
fn say(args: std::fmt::Arguments<'_>) {
    let text = args.to_string();
    let lines: Vec<_> = text.split('\n').map(escape_controls).collect();
    let _ = writeln!(std::io::stderr(), "{}", lines.join("\n"));
}
