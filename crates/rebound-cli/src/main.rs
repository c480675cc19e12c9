//! The `rebound` command: parses what the user typed, loads the configuration, runs
//! one engine operation and prints its report. Exit statuses are documented below and
//! in README.md.

mod announce;
mod demo;
mod render;
mod setup;

use std::io::Write;
use std::path::{Path, PathBuf};

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use rebound::lock::{self, Holder, Locks};
use rebound::{escape_controls, exit, Config, Engine, Error, OsFs, SetConfig};
use rebound_cli::{Args, Command};

fn main() -> ExitCode {
    let args = Args::parse();
    let mut log = Log {
        to: args.log_to.map(Into::into),
        command: report_command(&args.command),
        sent: false,
    };
    match run(args, &mut log) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let text = format!("{e:#}");
            say(format_args!("rebound: error: {text}"));
            log.failure(&text);
            ExitCode::from(exit::ERROR)
        }
    }
}

/// Where this run's messages for early boot go (`--log-to`, else the configuration's
/// `log_to`; module announce) and whether they were sent.
struct Log {
    to: Option<rebound::LogTo>,
    /// The command, if it makes a report (status, check-config, systemd-mounts and demo
    /// send nothing).
    command: Option<rebound::Command>,
    sent: bool,
}

impl Log {
    /// Sends the messages of a finished run's report.
    fn report(&mut self, report: &rebound::Report) {
        if let Some(to) = self.to {
            announce::send(to, &announce::messages(report));
        }
        self.sent = true;
    }

    /// Sends the error that ended a run, unless its report's messages went already.
    fn failure(&mut self, text: &str) {
        if let (Some(to), Some(command), false) = (self.to, self.command, self.sent) {
            announce::send(to, &announce::failure(command, text));
        }
        self.sent = true;
    }
}

/// The report a command makes, if any.
fn report_command(c: &Command) -> Option<rebound::Command> {
    match c {
        Command::Boot { .. } => Some(rebound::Command::Boot),
        Command::Verify { .. } => Some(rebound::Command::Verify),
        Command::Commit { .. } => Some(rebound::Command::Commit),
        Command::Update { .. } => Some(rebound::Command::Update),
        Command::Write { .. } => Some(rebound::Command::Write),
        Command::Seal { .. } => Some(rebound::Command::Seal),
        Command::Rekey { .. } => Some(rebound::Command::Rekey),
        Command::Status { .. }
        | Command::Log { .. }
        | Command::CheckConfig { .. }
        | Command::SystemdMounts
        | Command::Keygen { .. }
        | Command::Demo => None,
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

fn run(args: Args, log: &mut Log) -> anyhow::Result<u8> {
    let command = match args.command {
        Command::Demo => return run_demo(),
        Command::Keygen { out } => return run_keygen(&out),
        c => c,
    };
    let config_path = config_path(args.config)?;
    // `--threads` wins over the configuration's `threads`.
    let mut config = Config::load_with_threads(&config_path, args.threads.map(usize::from))?;
    // `--log-to` wins over the configuration's `log_to`.
    log.to = log.to.or(config.log_to);
    if let Some(m) = &args.metrics_file {
        config.set_metrics_file(m)?;
    }
    let wait = Duration::from_secs(args.wait);
    let started = std::time::Instant::now();
    let fs = OsFs::new();
    let engine = Engine::new(&fs);
    // Writers hold their locks until their work is done; readers take none.
    let (report, json, locks) = match command {
        Command::Seal {
            sets,
            force,
            dry_run,
            sign_key,
            json,
        } => {
            let key = match sign_key {
                Some(p) => {
                    let cwd = std::env::current_dir().context("current directory")?;
                    Some(rebound::SignKey::load(&fs, &cwd.join(p))?)
                }
                None => None,
            };
            let engine = match &key {
                Some(k) => Engine::new(&fs).with_sign_key(k),
                None => Engine::new(&fs),
            };
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
        Command::Write {
            path,
            from,
            mode,
            dry_run,
            json,
        } => {
            let cwd = std::env::current_dir().context("current directory")?;
            let path = cwd.join(path);
            let (si, _, _) = config.locate(&path)?;
            // The new content is read whole before any lock is taken: a writer that
            // is slow to send it must not hold back a boot.
            let spool = match from {
                Some(f) => Spool::File(cwd.join(f)),
                None => Spool::stdin(mode)?,
            };
            let sets: Vec<&SetConfig> = config.sets.get(si).into_iter().collect();
            let locks = writer_lock(&sets, wait, dry_run)?;
            (
                engine.write(&config, &path, spool.path(), mode, dry_run)?,
                json,
                locks,
            )
        }
        Command::Rekey {
            sets,
            key,
            dry_run,
            json,
        } => {
            if let Some(k) = key {
                let cwd = std::env::current_dir().context("current directory")?;
                config.add_next_key(&cwd.join(k))?;
            }
            let locks = writer_lock(&config.select(&sets)?, wait, dry_run)?;
            (engine.rekey(&config, &sets, dry_run)?, json, locks)
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
        Command::Log { sets, since, json } => {
            let since = match since.as_deref() {
                None => rebound::Since::All,
                Some(s) => parse_since(s)?,
            };
            let logs = engine.log(&config, &sets, since)?;
            if json {
                emit(&format!("{}\n", serde_json::to_string_pretty(&logs)?));
            } else {
                emit(&render::log(&logs));
            }
            return Ok(exit::OK);
        }
        Command::CheckConfig { json } => {
            // The one file besides the configuration that it reads: each
            // `golden_public_key` must be a public key (as every run will require).
            for s in &config.sets {
                if let Some(p) = &s.golden_public_key {
                    rebound::PublicKey::load(&fs, p).map_err(|e| match e {
                        Error::Config { path, what } => Error::Config {
                            path,
                            what: format!("golden_public_key of set `{}`: {what}", s.name),
                        },
                        other => other,
                    })?;
                }
            }
            if json {
                emit(&format!(
                    "{}\n",
                    serde_json::to_string_pretty(&setup::check_config_json(&config))?
                ));
            } else {
                emit(&setup::check_config(&config));
            }
            return Ok(exit::OK);
        }
        Command::SystemdMounts => {
            emit(&setup::systemd_mounts(&config)?);
            return Ok(exit::OK);
        }
        Command::Demo => return run_demo(),
        Command::Keygen { out } => return run_keygen(&out),
    };
    // Released before the report is written: a reader that pages through it (`| less`)
    // or a stalled logger must not hold back the next writer.
    drop(locks);
    // The messages go before the report: a stalled reader of standard output (a
    // logger's pipe that is full) must not keep them from the kernel log, and they
    // take a bounded time (module announce).
    log.report(&report);
    // Metrics after every run that made a report, except dry runs (previews).
    if let (Some(path), false) = (
        &config.metrics_file,
        report.dry_run && report.command != rebound::Command::Verify,
    ) {
        let ended = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let run = rebound::MetricsRun {
            command: report.command.as_str(),
            ended,
            seconds: started.elapsed().as_secs_f64(),
            exit: report.exit_code(),
        };
        if let Err(e) = engine.write_metrics(&config, path, Some(&report), run) {
            say(format_args!(
                "rebound: warning: the metrics file {} was not written: {e}",
                path.display()
            ));
        }
    }
    if json {
        emit(&format!("{}\n", serde_json::to_string_pretty(&report)?));
    } else {
        emit(&render::report(&report));
    }
    Ok(report.exit_code())
}

/// `--since`: a time (RFC 3339 or a date) or `boot:N`.
fn parse_since(s: &str) -> anyhow::Result<rebound::Since> {
    if let Some(n) = s.strip_prefix("boot:") {
        return n.parse().map(rebound::Since::Boot).map_err(|_| {
            anyhow::anyhow!("--since {s}: boot:N takes a boot number (as `rebound log` shows them)")
        });
    }
    rebound::parse_time(s).map(rebound::Since::Time).ok_or_else(|| {
        anyhow::anyhow!(
            "--since {s}: not a time of years 0000 to 9999; write RFC 3339 (2026-12-05T05:00:00Z), a date (2026-12-05, UTC) or boot:N"
        )
    })
}

/// Where `rebound write` reads the new content: a file named with --from, or a copy
/// of standard input in a private temporary directory (removed when dropped).
enum Spool {
    File(PathBuf),
    /// The directory lives as long as the spool: dropping it removes the copy.
    Stdin {
        _dir: tempfile::TempDir,
        path: PathBuf,
    },
}

impl Spool {
    /// Copies standard input to `$TMPDIR/rebound-write.XXXX/content`: mode 644 (what a
    /// new protected file gets) without `--mode`, else 600.
    fn stdin(mode: Option<u32>) -> anyhow::Result<Spool> {
        use std::os::unix::fs::OpenOptionsExt;
        let dir = tempfile::Builder::new()
            .prefix("rebound-write.")
            .tempdir()
            .context("a temporary directory for the new content (set TMPDIR to a writable directory, or use --from FILE)")?;
        let path = dir.path().join("content");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("{}", path.display()))?;
        std::io::copy(&mut std::io::stdin().lock(), &mut f).with_context(|| {
            format!(
                "reading the new content from standard input into {}",
                path.display()
            )
        })?;
        // Without --mode a new file takes the source's mode: 644, set after the write so
        // that the umask does not narrow it (the directory is 0700: nobody else reads
        // the copy). With --mode the engine records that mode and the copy stays 0600,
        // readable by this run whatever the mode (e.g. --mode 200).
        if mode.is_none() {
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644))
                .with_context(|| format!("{}", path.display()))?;
        }
        Ok(Spool::Stdin { _dir: dir, path })
    }

    fn path(&self) -> &Path {
        match self {
            Spool::File(path) | Spool::Stdin { path, .. } => path,
        }
    }
}

/// `rebound keygen --out PREFIX`: writes the key pair, prints where and the public key.
fn run_keygen(out: &Path) -> anyhow::Result<u8> {
    let cwd = std::env::current_dir().context("current directory")?;
    let (secret, public, key) = rebound::keygen(&OsFs::new(), &cwd.join(out))?;
    emit(&format!(
        "secret key: {} (mode 0600: keep it on the build machine, never on a device)\npublic key: {} (ship it in the image; name it in each golden set's golden_public_key)\npublic key value: {key}\n",
        secret.display(),
        public.display()
    ));
    Ok(exit::OK)
}

fn run_demo() -> anyhow::Result<u8> {
    let (text, code) = demo::run()?;
    emit(&text);
    Ok(code)
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
    lock::lock_roots(&lock::roots(sets), wait, &mut on_wait).map_err(|e| match e {
        Error::Locked { .. } => anyhow::anyhow!("{e}; --wait SECONDS sets how long to wait"),
        e => e.into(),
    })
}

/// A reader takes no lock; it says when a writer is running on the same roots, since
/// what it reports may then be a state between two of the writer's steps.
fn tell_writers(sets: &[&SetConfig]) {
    if let Some((root, holder)) = lock::busy(&lock::roots(sets)).first() {
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
