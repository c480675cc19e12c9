//! The `rebound` command: parses what the user typed, loads the configuration, runs
//! one engine operation and prints its report. Exit statuses are documented below and
//! in README.md.

mod demo;
mod render;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use rebound::engine::exit;
use rebound::fs::os::OsFs;
use rebound::{Config, Engine};

const EXIT_HELP: &str = "\
Exit status:
  0  every protected file is intact (for boot: after its repairs)
  1  verify only: damage found that boot would repair (or a damaged golden copy)
  2  usage, configuration or I/O error
  3  some file has no intact copy left (it is left as it is and named in the report)";

const STATUS_EXIT_HELP: &str = "\
Exit status:
  0  the status was printed (it hashes no protected file: verify checks them)
  2  usage, configuration or I/O error";

const DEMO_EXIT_HELP: &str = "\
Exit status:
  0  the demo device ended intact, as it should
  2  the demo could not run (for example, no writable temporary directory)
  other: as for verify, if the demo device did not end intact";

/// Keeps critical files intact across deletion, corruption and power loss.
#[derive(Debug, Parser)]
#[command(name = "rebound", version, about, after_help = EXIT_HELP)]
struct Args {
    /// Configuration file.
    #[arg(short, long, global = true, env = "REBOUND_CONFIG", default_value = rebound::names::DEFAULT_CONFIG)]
    config: PathBuf,
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
            eprintln!("rebound: error: {e:#}");
            ExitCode::from(exit::ERROR)
        }
    }
}

fn run(args: Args) -> anyhow::Result<u8> {
    let config_path = args.config;
    let threads = args.threads;
    // Held until the process exits: one rebound at a time per configuration.
    let mut _lock = None;
    let mut load = || -> anyhow::Result<Config> {
        let mut c = Config::load(&config_path)?;
        if let Some(n) = threads {
            c.set_threads(usize::from(n));
        }
        _lock = Some(lock(&config_path)?);
        Ok(c)
    };
    let fs = OsFs::new();
    let engine = Engine::new(&fs);
    let (report, json) = match args.command {
        Command::Seal { sets, force, json } => (engine.seal(&load()?, &sets, force)?, json),
        Command::Boot {
            sets,
            dry_run,
            full,
            json,
        } => {
            let mut config = load()?;
            if full {
                config.force_full_check();
            }
            (engine.boot(&config, &sets, dry_run)?, json)
        }
        Command::Verify { sets, json } => (engine.verify(&load()?, &sets)?, json),
        Command::Commit {
            paths,
            remove,
            json,
        } => {
            let cwd = std::env::current_dir().context("current directory")?;
            let paths: Vec<PathBuf> = paths.into_iter().map(|p| cwd.join(p)).collect();
            if remove {
                (engine.commit_remove(&load()?, &paths)?, json)
            } else {
                (engine.commit(&load()?, &paths)?, json)
            }
        }
        Command::Update { set, from, json } => {
            let cwd = std::env::current_dir().context("current directory")?;
            (engine.update(&load()?, &set, &cwd.join(from))?, json)
        }
        Command::Status { sets, json } => {
            let st = engine.status(&load()?, &sets)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&st)?);
            } else {
                print!("{}", render::status(&st));
            }
            return Ok(exit::OK);
        }
        Command::Demo => return demo::run(),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render::report(&report));
    }
    Ok(report.exit_code())
}

/// Serializes rebound runs that share a configuration (a boot and an application's
/// commit, say) with an exclusive `flock` on the configuration file. The file is
/// opened read-only: no lock file is created anywhere.
fn lock(path: &std::path::Path) -> anyhow::Result<std::fs::File> {
    let f = std::fs::File::open(path).with_context(|| format!("open {}", path.display()))?;
    rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive)
        .with_context(|| format!("lock {} (another rebound is running?)", path.display()))?;
    Ok(f)
}
