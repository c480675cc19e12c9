//! The command line of `rebound`: every subcommand, option and help text. The binary
//! (`src/main.rs`) parses it; the xtask renders the man pages and shell completions from
//! the same definition (`rebound_cli::command()`), so they cannot drift apart.

use std::path::PathBuf;

use clap::{CommandFactory, Parser, Subcommand};

/// The whole command line as clap sees it (for man pages and completions).
pub fn command() -> clap::Command {
    Args::command()
}

pub const EXIT_HELP: &str = "\
Exit status:
  0  every protected file is intact (for boot: after its repairs)
  1  verify and boot --dry-run only: damage found that boot would repair (or a damaged
     golden copy)
  2  usage, configuration or I/O error, or the lock still held after --wait
  3  some file has no intact copy left (it is left as it is and named in the report)

Locking: boot, commit, update, write and seal lock every replica root of the sets they work on
(an flock on the directory itself: no lock file); another writer on the same roots waits
up to --wait seconds, saying who holds the lock. verify, status and every --dry-run take
no lock: every write is a rename of a complete file, so they see each file whole, old or
new, but may report a state between two steps of a writer that is running.

Dry runs: boot, commit, update, write and seal --dry-run print every action the real run
would take, in order (--json gives them), and write nothing at all. For commit, update,
write and seal the exit status says whether the change can be made (0), not whether
something is damaged.";

const STATUS_EXIT_HELP: &str = "\
Exit status:
  0  the status was printed (it hashes no protected file: verify checks them)
  2  usage, configuration or I/O error

status takes no lock: while a writer runs it may show a generation before or after it.";

const LOG_EXIT_HELP: &str = "\
Exit status:
  0  the log was printed (a damaged log is named in it; the next event replaces it)
  2  usage, configuration or I/O error

log takes no lock and writes nothing.";

const CHECK_CONFIG_EXIT_HELP: &str = "\
Exit status:
  0  the configuration is valid (printed)
  2  it is not (the error names the file and what is wrong), or it cannot be read";

const KEYGEN_EXIT_HELP: &str = "\
Exit status:
  0  the key pair was written (its public key is printed)
  2  either file exists already, or it could not be written";

const DEMO_EXIT_HELP: &str = "\
Exit status:
  0  the demo device ended intact, as it should
  2  the demo could not run (for example, no writable temporary directory)
  other: as for verify, if the demo device did not end intact";

/// How long a writer waits for another run's lock by default: a boot must not hang
/// behind a stuck process, yet should outlast a commit or a boot check that is running.
pub const DEFAULT_WAIT_SECS: u64 = 60;

/// Keeps critical files intact across deletion, corruption and power loss.
#[derive(Debug, Parser)]
#[command(name = "rebound", version, about, after_help = EXIT_HELP)]
pub struct Args {
    /// Configuration file [default: $REBOUND_CONFIG if set, else /etc/rebound.toml].
    #[arg(short, long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// How long boot, commit, update, write, seal and rekey wait for another run's lock on the same
    /// replica roots before giving up with exit status 2 (0: give up at once).
    #[arg(long, global = true, value_name = "SECONDS", default_value_t = DEFAULT_WAIT_SECS)]
    pub wait: u64,
    /// Threads for hashing (overrides the configuration's `threads`; default: the
    /// CPUs available, at most 4).
    #[arg(long, global = true, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,
    /// Also send a short record of the run, one line each: per set a summary, then each
    /// lost file, failure, repeatedly damaged file and repair (at most 10 lines per set,
    /// the rest counted), to the kernel log (kmsg: /dev/kmsg, readable with dmesg
    /// before any syslog runs), the system logger (syslog: /dev/log, facility daemon)
    /// or standard error with <N> prefixes (stderr: what systemd's journal reads from a
    /// unit). Priorities: 3 err (a file lost, a failure), 4 warning (a repair, a
    /// repeatedly damaged file), 5 notice (the summary of a set repaired), 6 info (a set
    /// intact). A boot always sends its summaries (and names repeatedly damaged files);
    /// other commands only when they repaired something, lost a file or failed. A sink that cannot be written is
    /// named on standard error; the exit status stays the run's. Overrides the
    /// configuration's `log_to`.
    #[arg(long, global = true, value_name = "WHERE", value_enum)]
    pub log_to: Option<LogToArg>,
    /// After the run, write its metrics to FILE for node_exporter's textfile collector
    /// (a name ending in .prom; written to a temporary file and renamed). Overrides the
    /// configuration's `metrics_file`.
    #[arg(long, global = true, value_name = "FILE")]
    pub metrics_file: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

/// Where `--log-to` sends messages (rebound::LogTo).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogToArg {
    Kmsg,
    Syslog,
    Stderr,
}

impl From<LogToArg> for rebound::LogTo {
    fn from(a: LogToArg) -> rebound::LogTo {
        match a {
            LogToArg::Kmsg => rebound::LogTo::Kmsg,
            LogToArg::Syslog => rebound::LogTo::Syslog,
            LogToArg::Stderr => rebound::LogTo::Stderr,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
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
        /// Sign each golden manifest with this secret key (`rebound keygen`'s PREFIX; it
        /// must not be readable by group or others): the signature file
        /// .rebound/SET/manifest.sig is written before the seal marker. Required for a
        /// set with `golden_public_key`, and must be its key.
        #[arg(long, value_name = "PATH")]
        sign_key: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Factory step, on a build machine: write a new ed25519 key pair for signing
    /// golden manifests: PREFIX, the secret key (mode 0600; keep it off the device),
    /// and PREFIX.pub, the public key to ship in the image and name in each golden
    /// set's `golden_public_key`. Never overwrites a file. Reads no configuration.
    #[command(after_help = KEYGEN_EXIT_HELP)]
    Keygen {
        /// Path of the secret key; the public key goes to PREFIX.pub.
        #[arg(long, value_name = "PREFIX")]
        out: PathBuf,
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
    /// Read-only check of every copy, golden included, and of the parity records the
    /// manifests name; a damaged file of a set with parity is compared with its record
    /// ("parity: N of M blocks damaged, repairable"). Writes nothing in any copy (only
    /// the metrics file, if one is configured).
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
    /// Replace a protected file with new content and commit it, as one power-fail
    /// safe change: the content comes from standard input (or --from FILE), is made
    /// durable in every writable copy first, then recorded. After a power cut at any
    /// point the next boot keeps the old content or the new, never a torn file.
    #[command(after_help = EXIT_HELP)]
    Write {
        /// Absolute path (or relative to the current directory) of the protected file;
        /// it may be new if its set's patterns select it.
        path: PathBuf,
        /// Read the new content from FILE instead of standard input.
        #[arg(long, value_name = "FILE")]
        from: Option<PathBuf>,
        /// Permission bits to record, in octal (default: keep the file's recorded
        /// mode; a new file gets 644, or FILE's with --from).
        #[arg(long, value_name = "OCTAL", value_parser = parse_mode)]
        mode: Option<u32>,
        /// Print every action the write would take, in order; write nothing (the new
        /// content is still read).
        #[arg(long)]
        dry_run: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Rewrite every writable manifest, stat cache and history record with the MAC of
    /// the configured device key (and of --key PATH): to turn keys on for a device in
    /// the field, or rotate them. Verifies every protected file first and refuses if
    /// anything is damaged or lost (run `rebound boot` first). A set with a key
    /// configured is rekeyed only from manifests that carry its MAC.
    #[command(after_help = EXIT_HELP)]
    Rekey {
        /// Sets to rekey (default: all).
        sets: Vec<String>,
        /// A second key every record also carries the MAC of: the key the next
        /// configuration names (a 32-byte file, mode 600, owned by this user).
        #[arg(long, value_name = "PATH")]
        key: Option<PathBuf>,
        /// Print every manifest the rekey would write; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// What is protected, where, at which generation, the repair counters, the files
    /// repeatedly damaged and the last repairs.
    #[command(after_help = STATUS_EXIT_HELP)]
    Status {
        /// Sets to show (default: all).
        sets: Vec<String>,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The event log: every run that found damage, changed something or failed, oldest
    /// first, with each action (path, source, old and new digest, result). Kept in
    /// every writable copy (.rebound/SET/events), the last `events_kept` events.
    #[command(after_help = LOG_EXIT_HELP)]
    Log {
        /// Sets to show (default: all).
        sets: Vec<String>,
        /// Only events from this time on (RFC 3339 such as 2026-12-05T05:00:00Z, or a
        /// date such as 2026-12-05, UTC), or from this boot on (boot:N; for devices
        /// whose clock starts in 1970 at every boot).
        #[arg(long, value_name = "TIME|boot:N")]
        since: Option<String>,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Validate the configuration and print the resolved sets: roots, patterns, modes
    /// and how each root must be mounted. Reads the configuration file (and each
    /// golden set's `golden_public_key`, which must be a public key file), never a
    /// replica: safe before the partitions are mounted.
    #[command(after_help = CHECK_CONFIG_EXIT_HELP)]
    CheckConfig {
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print a systemd drop-in for rebound-boot.service that orders it after the
    /// mount of every replica root (RequiresMountsFor=). The generator
    /// /usr/lib/systemd/system-generators/rebound-generator writes it at every boot and
    /// `systemctl daemon-reload`; reads the configuration file only.
    #[command(after_help = CHECK_CONFIG_EXIT_HELP)]
    SystemdMounts,
    /// Build a throwaway device in a temporary directory, damage it the ways the
    /// vendor documents list, and show what the boot check finds and does.
    #[command(after_help = DEMO_EXIT_HELP)]
    Demo,
}

/// `--mode`: permission bits in octal, at most 7777.
fn parse_mode(s: &str) -> Result<u32, String> {
    match u32::from_str_radix(s, 8) {
        Ok(m) if m <= 0o7777 => Ok(m),
        _ => Err(format!(
            "`{s}` is not a mode: give permission bits in octal, e.g. 644 or 0600"
        )),
    }
}
