//! The configuration file: what it may say, and its validation into [`Config`].
//!
//! Parsing ([`RawConfig`], exactly the TOML a user writes, unknown keys refused) is
//! kept apart from the resolved form ([`Config`]) that the engine uses, which has
//! every rule checked: absolute, distinct, non-nested roots; relative globs; a valid
//! version tag path; a known hash algorithm.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::digest::HashAlgo;
use crate::error::{Error, Result};
use crate::glob::{Glob, GlobSet};
use crate::keys::{DeviceKey, KeySlot, Signers};
use crate::manifest::valid_set_name;
use crate::relpath::RelPath;

/// The configuration file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Threads for hashing (default: the CPUs available, at most 4).
    pub threads: Option<usize>,
    /// Where a run's messages for early boot go besides its report (`log_to`).
    pub log_to: Option<LogTo>,
    /// The node_exporter textfile the runs write their metrics to (absolute).
    pub metrics_file: Option<PathBuf>,
    /// How many events each set's event log keeps (default [`DEFAULT_EVENTS_KEPT`]).
    pub events_kept: Option<usize>,
    /// A file repaired this many times ...
    pub suspect_repairs: Option<u32>,
    /// ... within this many boots is reported as repeatedly damaged.
    pub suspect_boots: Option<u32>,
    /// The device key file (absolute) of every set that names none of its own.
    pub device_key: Option<PathBuf>,
    #[serde(default)]
    pub set: Vec<RawSet>,
}

/// Where `log_to` sends a run's messages (a boot's summary, each repair, each
/// repeatedly damaged file), besides the report on standard output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogTo {
    /// The kernel log (`/dev/kmsg`), readable with `dmesg` before any syslog runs.
    Kmsg,
    /// The system logger (`/dev/log`), facility daemon.
    Syslog,
    /// Standard error, each line with its `<N>` priority prefix (what systemd's
    /// journal reads from a unit's output).
    Stderr,
}

/// How a set's history is kept: its event log's length and when a file counts as
/// repeatedly damaged (the configuration's top-level keys, the same for every set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryConfig {
    /// Events kept in the event log (the oldest go first).
    pub events_kept: usize,
    /// Repairs of one file ...
    pub suspect_repairs: u32,
    /// ... within this many boots make it suspect.
    pub suspect_boots: u32,
}

/// Default of `events_kept`.
pub const DEFAULT_EVENTS_KEPT: usize = 256;
/// Largest `events_kept`.
pub const MAX_EVENTS_KEPT: usize = 10_000;
/// Default of `suspect_repairs`.
pub const DEFAULT_SUSPECT_REPAIRS: u32 = 3;
/// Default of `suspect_boots`.
pub const DEFAULT_SUSPECT_BOOTS: u32 = 10;
/// Largest `suspect_boots`.
pub const MAX_SUSPECT_BOOTS: u32 = 1000;
/// Largest `suspect_repairs`: the repair boots a file's history keeps.
pub const MAX_SUSPECT_REPAIRS: u32 = 32;

impl Default for HistoryConfig {
    fn default() -> HistoryConfig {
        HistoryConfig {
            events_kept: DEFAULT_EVENTS_KEPT,
            suspect_repairs: DEFAULT_SUSPECT_REPAIRS,
            suspect_boots: DEFAULT_SUSPECT_BOOTS,
        }
    }
}

/// One `[[set]]` table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSet {
    pub name: String,
    pub mode: Mode,
    pub live: Option<PathBuf>,
    pub golden: Option<PathBuf>,
    #[serde(default)]
    pub copies: Vec<PathBuf>,
    #[serde(default)]
    pub replicas: Vec<PathBuf>,
    pub include: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
    pub hash: Option<String>,
    pub version_file: Option<String>,
    /// Boot hashes only files whose size, mtime, ctime or inode changed since they
    /// last verified (see docs/performance.md for what this cannot see).
    #[serde(default)]
    pub changed_only: bool,
    /// With `changed_only`: every N-th boot hashes everything.
    pub full_check_every: Option<u32>,
    /// What `seal` does with symbolic links the patterns select (default: refuse).
    pub links: Option<Links>,
    /// Golden sets: the public key file (`rebound keygen`'s PREFIX.pub) the golden
    /// manifest's signature must verify with; without a valid signature the golden
    /// copy is damaged (never a source of truth).
    pub golden_public_key: Option<PathBuf>,
    /// This set's device key file (absolute), instead of the top-level one.
    pub device_key: Option<PathBuf>,
    /// The parity directory (absolute): per-block digests and Reed-Solomon recovery
    /// blocks of every protected file, a source beside the copies. Required in
    /// `mode = "parity"`.
    pub parity: Option<PathBuf>,
    /// Recovery blocks in percent of each file's data blocks (1-100, default 10).
    pub parity_redundancy: Option<u32>,
    /// Block size in bytes (a multiple of 64, 64 B to 16 MiB, default 4096).
    pub parity_block_size: Option<u32>,
}

/// What to do with symbolic links that the include patterns select.
///
/// rebound protects regular files only and never follows a link inside a protected
/// tree (docs/design.md §7).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Links {
    /// `seal` refuses the set and lists every link it selects (fix, exclude, or
    /// choose `skip`).
    #[default]
    Refuse,
    /// Links are left alone, unprotected, and listed once in the report.
    Skip,
}

/// How a set is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// A writable live copy (plus optional extra copies) and a read-only golden copy.
    Golden,
    /// Two or more writable copies; the newest wins.
    Mirror,
    /// One writable copy (`live`) and its parity (`parity`): no second full copy.
    Parity,
}

/// The role of a replica in its set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read and written by rebound.
    Writable,
    /// Written only by `seal`; the factory state and the last resort.
    Golden,
}

/// One directory root holding a copy of a set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Replica {
    pub root: PathBuf,
    pub role: Role,
}

/// A validated set.
#[derive(Debug, Clone)]
pub struct SetConfig {
    pub name: String,
    pub mode: Mode,
    /// Writable replicas first, in configuration order (the first is the primary:
    /// `live` in golden mode), then the golden replica if any.
    pub replicas: Vec<Replica>,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    include_set: GlobSet,
    exclude_set: GlobSet,
    /// The exclude patterns of the form `X/**`, as `X`: a directory matching one has
    /// everything below it excluded, so it is never walked.
    exclude_dirs: GlobSet,
    pub hash: HashAlgo,
    pub version_file: Option<RelPath>,
    /// Threads for hashing (the configuration's `threads`, or `--threads`).
    pub threads: usize,
    /// Boot skips hashing files whose metadata matches their last verified record.
    pub changed_only: bool,
    /// With `changed_only`: every N-th boot is a full check (N >= 1).
    pub full_check_every: u32,
    /// This run must hash everything (`boot --full`); not from the file.
    pub force_full: bool,
    /// What `seal` does with selected symbolic links.
    pub links: Links,
    /// The event log's length and the repeatedly-damaged rule (top-level keys).
    pub history: HistoryConfig,
    /// `golden_public_key` (absolute, outside every replica of the set): read when the
    /// golden copy is (crate::sign); `None`: golden signatures are not checked.
    pub golden_public_key: Option<PathBuf>,
    /// The device key (`device_key`): its path from the file, the key itself once
    /// [`Config::load_keys`] read it.
    pub key: KeySlot,
    /// The parity directory and its layout (`parity`), if the set has one.
    pub parity: Option<ParityConfig>,
}

/// A set's parity directory (docs/design.md section 2.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParityConfig {
    /// Absolute, outside every replica of every set's golden copy and of this set.
    pub root: PathBuf,
    /// Recovery blocks in percent of each file's data blocks (1-100).
    pub redundancy: u8,
    /// Largest block size in bytes (a multiple of 64); small files get smaller blocks.
    pub block: u32,
}

/// Largest configuration file read (1 MiB); a real one is a few kilobytes.
pub const CONFIG_MAX_BYTES: u64 = 1 << 20;

/// Default of `full_check_every`.
pub const DEFAULT_FULL_CHECK_EVERY: u32 = 10;

impl SetConfig {
    /// Whether a relative path is selected by the include and exclude patterns.
    pub fn selects(&self, rel: &RelPath) -> bool {
        !rel.is_meta()
            && self.version_file.as_ref() != Some(rel)
            && self.include_set.is_match(rel.as_str())
            && !self.exclude_set.is_match(rel.as_str())
    }

    /// Whether everything below directory `dir` is excluded (an exclude pattern
    /// `X/**` with `dir` matching `X`), so that nothing below it can be selected and
    /// the walk need not enter it.
    pub fn excludes_below(&self, dir: &RelPath) -> bool {
        self.exclude_dirs.is_match(dir.as_str())
    }

    /// Whether some include pattern could select a path below directory `dir` (a
    /// conservative answer: `true` unless no pattern can reach that deep there). Used
    /// to report directories that cannot be entered (a name that is not UTF-8) only
    /// where protected files could lie.
    pub fn may_select_below(&self, dir: &str) -> bool {
        if self.exclude_dirs.is_match(dir) {
            return false;
        }
        let depth = dir.split('/').count();
        self.include.iter().any(|p| {
            let comps: Vec<&str> = p.split('/').collect();
            let deep_enough = p.contains("**") || comps.len() > depth;
            // The pattern's literal leading components must agree with `dir`'s.
            let agrees = comps
                .iter()
                .zip(dir.split('/'))
                .take_while(|(c, _)| !c.contains(['*', '?', '[', ']', '{', '}', '\\']))
                .all(|(c, d)| c == &d);
            deep_enough && agrees
        })
    }

    /// The directories (or single files) below which the include patterns can match:
    /// the leading components of each pattern that hold no glob syntax. Walking only
    /// these keeps a set of three files in `/usr` from reading all of `/usr`.
    pub fn walk_roots(&self) -> Vec<Option<RelPath>> {
        let mut out: Vec<Option<RelPath>> = Vec::new();
        for p in &self.include {
            let lit: Vec<&str> = p
                .split('/')
                .take_while(|c| !c.contains(['*', '?', '[', ']', '{', '}', '\\']))
                .collect();
            let root = if lit.is_empty() {
                None
            } else {
                RelPath::new(&lit.join("/")).ok()
            };
            out.push(root);
        }
        // Drop any root below another one (None covers everything).
        out.sort();
        out.dedup();
        let all = out.clone();
        out.retain(|r| {
            !all.iter().any(|o| {
                o != r
                    && match (o, r) {
                        (None, _) => true,
                        (Some(o), Some(r)) => r.as_str().starts_with(&format!("{o}/")),
                        (Some(_), None) => false,
                    }
            })
        });
        out
    }

    /// The golden replica, if the set has one.
    pub fn golden(&self) -> Option<&Replica> {
        self.replicas.iter().find(|r| r.role == Role::Golden)
    }

    /// The device key this set's writable records are checked with, if it has one.
    ///
    /// # Errors
    /// [`Error::Set`] if `device_key` is configured but the key was not read (a
    /// configuration parsed without [`Config::load_keys`]): never a silent fallback
    /// to records without a MAC.
    pub fn device_key(&self) -> Result<Option<&DeviceKey>> {
        match (&self.key.path, &self.key.key) {
            (_, Some(k)) => Ok(Some(k)),
            (None, None) => Ok(None),
            (Some(p), None) => Err(Error::Set {
                set: self.name.clone(),
                what: format!(
                    "device_key `{}` was not read; nothing is done without it",
                    p.display()
                ),
            }),
        }
    }

    /// The keys this set's writable records are written with: the configured one and,
    /// during `rebound rekey --key`, the next one.
    pub fn signers(&self) -> Signers<'_> {
        Signers {
            keys: [self.key.key.as_deref(), self.key.next.as_deref()],
        }
    }

    /// The writable replicas, primary first.
    pub fn writable(&self) -> impl Iterator<Item = (usize, &Replica)> {
        self.replicas
            .iter()
            .enumerate()
            .filter(|(_, r)| r.role == Role::Writable)
    }
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it was read from (for messages).
    pub path: PathBuf,
    pub sets: Vec<SetConfig>,
    /// Threads for hashing, at least 1.
    pub threads: usize,
    /// `log_to`, if set.
    pub log_to: Option<LogTo>,
    /// `metrics_file`, if set (absolute).
    pub metrics_file: Option<PathBuf>,
}

impl Config {
    /// Reads and validates a configuration file.
    ///
    /// # Errors
    /// [`Error::Config`] naming the file and what is wrong.
    pub fn load(path: &Path) -> Result<Config> {
        Config::load_with_threads(path, None)
    }

    /// [`Config::load`] with a thread count that overrides the file's (`--threads`):
    /// then the CPUs available are not looked up (std reads the cgroup's CPU quota
    /// for that: about twenty system calls a small set's boot can do without).
    ///
    /// # Errors
    /// As [`Config::load`].
    pub fn load_with_threads(path: &Path, threads: Option<usize>) -> Result<Config> {
        let err = |what: String| Error::Config {
            path: path.to_path_buf(),
            what,
        };
        // IMPORTANT: opened without blocking and checked before reading: a FIFO would
        // block the boot forever, a device such as /dev/zero would read until memory
        // runs out. Only a regular file of at most CONFIG_MAX_BYTES is read.
        let fd = rustix::fs::open(
            path,
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::NONBLOCK | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| {
            err(if e == rustix::io::Errno::NOENT {
                "not found (write one, or point -c / REBOUND_CONFIG at it)".to_string()
            } else {
                format!(
                    "cannot read: {}",
                    std::io::Error::from_raw_os_error(e.raw_os_error())
                )
            })
        })?;
        let st = rustix::fs::fstat(&fd).map_err(|e| {
            err(format!(
                "cannot read: {}",
                std::io::Error::from_raw_os_error(e.raw_os_error())
            ))
        })?;
        if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
            return Err(err(
                "cannot read: not a regular file (a FIFO, device or directory is never read); point -c / REBOUND_CONFIG at the configuration file".into(),
            ));
        }
        let mut text = Vec::new();
        std::io::Read::read_to_end(
            &mut std::io::Read::take(std::fs::File::from(fd), CONFIG_MAX_BYTES + 1),
            &mut text,
        )
        .map_err(|e| err(format!("cannot read: {e}")))?;
        if text.len() as u64 > CONFIG_MAX_BYTES {
            return Err(err(format!(
                "larger than {CONFIG_MAX_BYTES} bytes; a configuration is a few kilobytes (is this the right file?)"
            )));
        }
        let text = String::from_utf8(text).map_err(|_| err("not UTF-8".into()))?;
        let mut config = Config::parse_with_threads(&text, path, threads)?;
        config.load_keys()?;
        Ok(config)
    }

    /// Validates configuration text; `path` is only used in messages.
    ///
    /// # Errors
    /// [`Error::Config`] naming `path` and what is wrong.
    pub fn parse(text: &str, path: &Path) -> Result<Config> {
        Config::parse_with_threads(text, path, None)
    }

    /// [`Config::parse`] with a thread count that overrides the file's, as
    /// [`Config::load_with_threads`].
    ///
    /// # Errors
    /// As [`Config::parse`].
    pub fn parse_with_threads(text: &str, path: &Path, threads: Option<usize>) -> Result<Config> {
        let err = |what: String| Error::Config {
            path: path.to_path_buf(),
            what,
        };
        let raw: RawConfig =
            toml::from_str(text).map_err(|e| err(e.to_string().trim_end().to_string()))?;
        if raw.set.is_empty() {
            return Err(err("no [[set]] defined: nothing to protect".into()));
        }
        let threads = match (raw.threads, threads) {
            (Some(0), _) => return Err(err("`threads` must be at least 1".into())),
            (_, Some(n)) => n.max(1),
            (Some(n), None) => n,
            (None, None) => crate::hashing::default_threads(),
        };
        let history = resolve_history(&raw).map_err(err)?;
        let metrics_file = match &raw.metrics_file {
            None => None,
            Some(p) => Some(metrics_path(p).map_err(err)?),
        };
        let mut names = BTreeSet::new();
        let mut sets = Vec::new();
        for s in raw.set {
            let name = s.name.clone();
            let key = s.device_key.clone().or_else(|| raw.device_key.clone());
            let mut set = resolve_set(s).map_err(|w| err(format!("set `{name}`: {w}")))?;
            set.threads = threads;
            set.history = history;
            set.key.path = match key {
                None => None,
                Some(k) => Some(key_path(&k).map_err(|w| err(format!("set `{name}`: {w}")))?),
            };
            if !names.insert(set.name.clone()) {
                return Err(err(format!("set `{}` is defined twice", set.name)));
            }
            sets.push(set);
        }
        golden_apart(&sets).map_err(err)?;
        parity_apart(&sets).map_err(err)?;
        no_file_in_two_sets(&sets).map_err(err)?;
        keys_outside_replicas(&sets).map_err(err)?;
        if let Some(m) = &metrics_file {
            metrics_outside_replicas(m, &sets).map_err(err)?;
        }
        Ok(Config {
            path: path.to_path_buf(),
            sets,
            threads,
            log_to: raw.log_to,
            metrics_file,
        })
    }

    /// Reads every set's device key file ([`DeviceKey::load`]), each file once.
    ///
    /// # Errors
    /// [`Error::Config`] naming the set, the key file, what is wrong and the fix: a
    /// set whose key cannot be read is never run without it.
    pub fn load_keys(&mut self) -> Result<()> {
        self.load_keys_with(&DeviceKey::load)
    }

    /// As [`Config::load_keys`], with `read` reading a key file (the tests' keys).
    ///
    /// # Errors
    /// As [`Config::load_keys`].
    pub fn load_keys_with(
        &mut self,
        read: &dyn Fn(&Path) -> std::result::Result<DeviceKey, String>,
    ) -> Result<()> {
        let mut read_once: BTreeMap<PathBuf, Arc<DeviceKey>> = BTreeMap::new();
        for s in &mut self.sets {
            let Some(p) = s.key.path.clone() else {
                continue;
            };
            let key = match read_once.get(&p) {
                Some(k) => k.clone(),
                None => {
                    let k = Arc::new(read(&p).map_err(|what| Error::Config {
                        path: self.path.clone(),
                        what: format!("set `{}`: device_key {}: {what}", s.name, p.display()),
                    })?);
                    read_once.insert(p, k.clone());
                    k
                }
            };
            s.key.key = Some(key);
        }
        Ok(())
    }

    /// `rebound rekey --key PATH`: every record the run writes also carries the MAC of
    /// this key.
    ///
    /// # Errors
    /// [`Error::Usage`] naming the file, what is wrong and the fix.
    pub fn add_next_key(&mut self, path: &Path) -> Result<()> {
        let k = Arc::new(
            DeviceKey::load(path)
                .map_err(|what| Error::Usage(format!("--key {}: {what}", path.display())))?,
        );
        for s in &mut self.sets {
            s.key.next = Some(k.clone());
        }
        Ok(())
    }

    /// Overrides `metrics_file` (`--metrics-file`).
    ///
    /// # Errors
    /// [`Error::Usage`] for a path that is not an absolute file path.
    pub fn set_metrics_file(&mut self, p: &Path) -> Result<()> {
        let m = metrics_path(p).map_err(Error::Usage)?;
        metrics_outside_replicas(&m, &self.sets).map_err(Error::Usage)?;
        self.metrics_file = Some(m);
        Ok(())
    }

    /// Overrides the thread count (`--threads`); 0 counts as 1.
    pub fn set_threads(&mut self, n: usize) {
        self.threads = n.max(1);
        for s in &mut self.sets {
            s.threads = self.threads;
        }
    }

    /// Makes this run hash every file, whatever `changed_only` says (`boot --full`).
    pub fn force_full_check(&mut self) {
        for s in &mut self.sets {
            s.force_full = true;
        }
    }

    /// The set called `name`.
    ///
    /// # Errors
    /// [`Error::Usage`] listing the sets there are.
    pub fn set(&self, name: &str) -> Result<&SetConfig> {
        self.sets.iter().find(|s| s.name == name).ok_or_else(|| {
            let known: Vec<_> = self.sets.iter().map(|s| s.name.as_str()).collect();
            Error::Usage(format!(
                "no set named `{name}` in {} (sets: {})",
                self.path.display(),
                known.join(", ")
            ))
        })
    }

    /// Sets selected by name, or all of them for an empty selection.
    ///
    /// # Errors
    /// [`Error::Usage`] for an unknown name.
    pub fn select(&self, names: &[String]) -> Result<Vec<&SetConfig>> {
        if names.is_empty() {
            return Ok(self.sets.iter().collect());
        }
        names.iter().map(|n| self.set(n)).collect()
    }

    /// Finds the set and writable replica that protect an absolute file path.
    ///
    /// # Errors
    /// [`Error::Usage`] naming the path when no set protects it.
    pub fn locate(&self, path: &Path) -> Result<(usize, usize, RelPath)> {
        let path = normalize(path).ok_or_else(|| {
            Error::Usage(format!(
                "{}: path must be absolute without `..`",
                path.display()
            ))
        })?;
        for (si, set) in self.sets.iter().enumerate() {
            for (ri, r) in set.replicas.iter().enumerate() {
                let Ok(rest) = path.strip_prefix(&r.root) else {
                    continue;
                };
                let Some(rest) = rest.to_str() else { continue };
                let Ok(rel) = RelPath::new(rest) else {
                    continue;
                };
                if r.role == Role::Golden {
                    return Err(Error::Usage(format!(
                        "{}: is inside the golden copy of set `{}`, which is read-only; name the live file instead",
                        path.display(),
                        set.name
                    )));
                }
                if set.selects(&rel) {
                    return Ok((si, ri, rel));
                }
            }
        }
        Err(Error::Usage(format!(
            "{}: not protected by any set in {} (check the set's roots and include patterns)",
            path.display(),
            self.path.display()
        )))
    }
}

/// Lexically normalizes an absolute path; `None` if relative or it has `..`.
fn normalize(p: &Path) -> Option<PathBuf> {
    if !p.is_absolute() {
        return None;
    }
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => out.push(n),
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

fn root_path(what: &str, p: &Path) -> std::result::Result<PathBuf, String> {
    match normalize(p) {
        Some(n) if n != Path::new("/") => Ok(n),
        Some(_) => Err(format!(
            "{what} `{}`: the filesystem root cannot be a replica",
            p.display()
        )),
        None => Err(format!(
            "{what} `{}`: must be an absolute path without `..`",
            p.display()
        )),
    }
}

fn globs(what: &str, pats: &[String]) -> std::result::Result<GlobSet, String> {
    let mut set = Vec::with_capacity(pats.len());
    for p in pats {
        if p.starts_with('/') || p.split('/').any(|c| c == ".." || c == ".") || p.is_empty() {
            return Err(format!(
                "{what} pattern `{p}`: must be relative to the replica root, without `.` or `..`"
            ));
        }
        set.push(Glob::new(p).map_err(|e| format!("{what} pattern `{p}`: {e}"))?);
    }
    Ok(GlobSet::from(set))
}

/// A golden copy is written only by `seal`: no set may name a directory inside
/// another set's golden copy, or one that contains it, as a writable replica (that
/// set's boot would then write into golden). Within one set the overlap rule of
/// [`resolve_set`] already holds; this checks across sets. Writable roots may be
/// shared between sets: each set keeps its own manifests and selects its own files.
fn golden_apart(sets: &[SetConfig]) -> std::result::Result<(), String> {
    for g in sets {
        let Some(golden) = g.golden() else { continue };
        for w in sets.iter().filter(|w| w.name != g.name) {
            for (_, r) in w.writable() {
                if r.root.starts_with(&golden.root) || golden.root.starts_with(&r.root) {
                    return Err(format!(
                        "set `{}`: writable copy `{}` overlaps the golden copy `{}` of set `{}`; \
                         a golden copy is written only by `seal`, so no set may write inside it",
                        w.name,
                        r.root.display(),
                        golden.root.display(),
                        g.name
                    ));
                }
            }
        }
    }
    Ok(())
}

/// A parity directory lies apart from every replica of every set: inside a golden copy
/// it would be written outside `seal`; inside (or around) a writable copy its records
/// would be walked as that set's files. Sets may share one parity directory (each
/// keeps its records under `.rebound/<set>/`).
fn parity_apart(sets: &[SetConfig]) -> std::result::Result<(), String> {
    for p in sets {
        let Some(pc) = &p.parity else { continue };
        for o in sets {
            for r in &o.replicas {
                if r.root.starts_with(&pc.root) || pc.root.starts_with(&r.root) {
                    return Err(format!(
                        "set `{}`: parity `{}` overlaps the replica `{}` of set `{}`; keep the parity directory apart from every copy",
                        p.name,
                        pc.root.display(),
                        r.root.display(),
                        o.name
                    ));
                }
            }
        }
    }
    Ok(())
}

/// A file belongs to one set only: a literal include pattern (a plain path, no glob
/// syntax) of one set that another set sharing a writable root (as written) also
/// selects is refused here, naming both sets and the path. Two glob patterns cannot
/// be intersected statically: [`crate::roots`] checks the files at run time, and
/// compares roots by identity rather than by spelling.
fn no_file_in_two_sets(sets: &[SetConfig]) -> std::result::Result<(), String> {
    for a in sets {
        for b in sets.iter().filter(|b| b.name != a.name) {
            let Some(root) = a
                .writable()
                .map(|(_, r)| &r.root)
                .find(|ra| b.writable().any(|(_, rb)| rb.root == **ra))
            else {
                continue;
            };
            for p in &a.include {
                if p.contains(['*', '?', '[', ']', '{', '}', '\\']) {
                    continue;
                }
                let Ok(rel) = RelPath::new(p) else { continue };
                if a.selects(&rel) && b.selects(&rel) {
                    return Err(format!(
                        "`{}` is selected by both set `{}` and set `{}` (both keep it in `{}`): a file may belong to one set only; change the include or exclude patterns so that only one set selects it",
                        root.join(rel.as_str()).display(),
                        a.name,
                        b.name,
                        root.display()
                    ));
                }
            }
        }
    }
    Ok(())
}

fn resolve_set(s: RawSet) -> std::result::Result<SetConfig, String> {
    if !valid_set_name(&s.name) {
        return Err(
            "name must be 1-64 characters of A-Z a-z 0-9 . _ - (and not `.` or `..`)".into(),
        );
    }
    let replicas = resolve_replicas(&s)?;
    if s.include.is_empty() {
        return Err("`include` is empty: nothing to protect".into());
    }
    let include_set = globs("include", &s.include)?;
    let exclude_set = globs("exclude", &s.exclude)?;
    let dir_patterns: Vec<String> = s
        .exclude
        .iter()
        .filter_map(|p| p.strip_suffix("/**"))
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect();
    let exclude_dirs = globs("exclude", &dir_patterns)?;
    let hash = match &s.hash {
        Some(h) => h.parse()?,
        None => HashAlgo::default(),
    };
    let version_file = match &s.version_file {
        None => None,
        Some(v) => {
            if s.mode == Mode::Golden {
                return Err("`version_file` is for mirror and parity sets".into());
            }
            let rel = RelPath::new(v).map_err(|e| format!("version_file `{v}`: {e}"))?;
            if rel.is_meta() || include_set.is_match(rel.as_str()) {
                return Err(format!(
                    "version_file `{v}` must lie outside the included files and rebound's .rebound directory"
                ));
            }
            Some(rel)
        }
    };
    let full_check_every = resolve_full_check_every(&s)?;
    let golden_public_key = resolve_golden_public_key(&s, &replicas)?;
    let parity = resolve_parity(&s, &replicas)?;
    Ok(SetConfig {
        name: s.name,
        mode: s.mode,
        replicas,
        include: s.include,
        exclude: s.exclude,
        include_set,
        exclude_set,
        exclude_dirs,
        hash,
        version_file,
        threads: 1,
        changed_only: s.changed_only,
        full_check_every,
        force_full: false,
        links: s.links.unwrap_or_default(),
        history: HistoryConfig::default(),
        golden_public_key,
        key: KeySlot::default(),
        parity,
    })
}

/// `parity`, `parity_redundancy`, `parity_block_size`: an absolute directory apart from
/// every replica of the set (a parity record inside a copy would be walked, and lost
/// with it), a redundancy of 1-100 percent, a block size that is a multiple of 64.
fn resolve_parity(
    s: &RawSet,
    replicas: &[Replica],
) -> std::result::Result<Option<ParityConfig>, String> {
    let Some(p) = &s.parity else {
        if s.mode == Mode::Parity {
            return Err(
                "a parity set needs `parity` (the directory for its parity records)".into(),
            );
        }
        if s.parity_redundancy.is_some() || s.parity_block_size.is_some() {
            return Err("`parity_redundancy` and `parity_block_size` need `parity`".into());
        }
        return Ok(None);
    };
    let root = root_path("parity", p)?;
    if let Some(r) = replicas
        .iter()
        .find(|r| root.starts_with(&r.root) || r.root.starts_with(&root))
    {
        return Err(format!(
            "parity `{}` overlaps the replica `{}`: keep the parity directory apart from every copy (ideally on another partition)",
            root.display(),
            r.root.display()
        ));
    }
    let redundancy = match s.parity_redundancy {
        None => crate::parity::DEFAULT_REDUNDANCY,
        Some(n @ 1..=100) => n as u8,
        Some(n) => {
            return Err(format!(
                "`parity_redundancy = {n}`: must be 1 to 100 (percent of each file's blocks)"
            ))
        }
    };
    let block = match s.parity_block_size {
        None => crate::parity::DEFAULT_BLOCK,
        Some(b)
            if b % crate::parity::MIN_BLOCK == 0
                && (crate::parity::MIN_BLOCK..=crate::parity::MAX_BLOCK).contains(&b) =>
        {
            b
        }
        Some(b) => {
            return Err(format!(
                "`parity_block_size = {b}`: must be a multiple of 64 from 64 to 16777216 bytes"
            ))
        }
    };
    Ok(Some(ParityConfig {
        root,
        redundancy,
        block,
    }))
}

/// `golden_public_key`: golden sets only; an absolute path outside every replica of
/// the set (a key a writable copy holds could be replaced together with the golden
/// manifest it vouches for; one in the golden copy would vouch for itself).
fn resolve_golden_public_key(
    s: &RawSet,
    replicas: &[Replica],
) -> std::result::Result<Option<PathBuf>, String> {
    let Some(p) = &s.golden_public_key else {
        return Ok(None);
    };
    if s.mode != Mode::Golden {
        return Err(
            "`golden_public_key` is for golden sets (a mirror set has no golden copy to sign)"
                .into(),
        );
    }
    let shown = p.display();
    let n = normalize(p).ok_or_else(|| {
        format!("golden_public_key `{shown}`: must be an absolute path without `..`")
    })?;
    if let Some(r) = replicas.iter().find(|r| n.starts_with(&r.root)) {
        return Err(format!(
            "golden_public_key `{shown}` lies inside the replica {}: keep it outside every copy of the set (on the read-only root filesystem, for example), or it could be replaced together with what it vouches for",
            r.root.display()
        ));
    }
    Ok(Some(n))
}

/// A `device_key` path: absolute, lexically normal.
fn key_path(p: &Path) -> std::result::Result<PathBuf, String> {
    normalize(p).filter(|n| n != Path::new("/")).ok_or_else(|| {
        format!(
            "device_key `{}`: must be an absolute file path without `..`",
            p.display()
        )
    })
}

/// A device key inside a replica would lie in the data it authenticates (read with
/// it, copied by `seal`, walked by a boot): refused.
fn keys_outside_replicas(sets: &[SetConfig]) -> std::result::Result<(), String> {
    for s in sets {
        let Some(k) = &s.key.path else { continue };
        for o in sets {
            for r in &o.replicas {
                if k.starts_with(&r.root) {
                    return Err(format!(
                        "set `{}`: device_key `{}` lies inside set `{}`'s replica {}; keep the key outside every replica (for example /etc/rebound/device.key, or a partition of its own)",
                        s.name,
                        k.display(),
                        o.name,
                        r.root.display()
                    ));
                }
            }
        }
    }
    Ok(())
}

/// The top-level history keys, checked.
fn resolve_history(raw: &RawConfig) -> std::result::Result<HistoryConfig, String> {
    let d = HistoryConfig::default();
    let h = HistoryConfig {
        events_kept: raw.events_kept.unwrap_or(d.events_kept),
        suspect_repairs: raw.suspect_repairs.unwrap_or(d.suspect_repairs),
        suspect_boots: raw.suspect_boots.unwrap_or(d.suspect_boots),
    };
    if !(1..=MAX_EVENTS_KEPT).contains(&h.events_kept) {
        return Err(format!(
            "`events_kept = {}`: must be 1 to {MAX_EVENTS_KEPT}",
            h.events_kept
        ));
    }
    if !(1..=MAX_SUSPECT_BOOTS).contains(&h.suspect_boots) {
        return Err(format!(
            "`suspect_boots = {}`: must be 1 to {MAX_SUSPECT_BOOTS}",
            h.suspect_boots
        ));
    }
    let most = h.suspect_boots.min(MAX_SUSPECT_REPAIRS);
    if h.suspect_repairs < 2 || h.suspect_repairs > most {
        return Err(format!(
            "`suspect_repairs = {}`: must be 2 to {most} (and at most `suspect_boots`): a file repaired in that many of the last `suspect_boots` boots is reported as repeatedly damaged",
            h.suspect_repairs
        ));
    }
    Ok(h)
}

/// The metrics file is rewritten after every run: inside a replica it would be
/// taken for a protected file (or junk) of that copy.
fn metrics_outside_replicas(m: &Path, sets: &[SetConfig]) -> std::result::Result<(), String> {
    for s in sets {
        for r in &s.replicas {
            if m.starts_with(&r.root) {
                return Err(format!(
                    "metrics_file `{}` lies inside set `{}`'s replica {}; put it in node_exporter's textfile directory, outside every replica",
                    m.display(),
                    s.name,
                    r.root.display()
                ));
            }
        }
    }
    Ok(())
}

/// `metrics_file`: an absolute path to a file whose name ends in `.prom` (what
/// node_exporter's textfile collector reads).
fn metrics_path(p: &Path) -> std::result::Result<PathBuf, String> {
    let shown = p.display();
    let p = normalize(p)
        .ok_or_else(|| format!("metrics_file `{shown}`: must be an absolute path without `..`"))?;
    match p.file_name().and_then(|n| n.to_str()) {
        Some(n) if n.ends_with(".prom") && n.len() > ".prom".len() => Ok(p),
        _ => Err(format!(
            "metrics_file `{shown}`: the name must end in `.prom` (node_exporter's textfile collector reads only those)"
        )),
    }
}

/// A set's replica roots, in order: golden mode's live copy, its extra copies, then
/// golden; mirror mode's replicas. Refuses the other mode's keys and roots that
/// overlap.
fn resolve_replicas(s: &RawSet) -> std::result::Result<Vec<Replica>, String> {
    let mut replicas = Vec::new();
    match s.mode {
        Mode::Golden => {
            if !s.replicas.is_empty() {
                return Err("`replicas` is for mirror sets; a golden set uses `live`, `golden` and optional `copies`".into());
            }
            let live = s.live.as_deref().ok_or("a golden set needs `live`")?;
            let golden = s.golden.as_deref().ok_or("a golden set needs `golden`")?;
            replicas.push(Replica {
                root: root_path("live", live)?,
                role: Role::Writable,
            });
            for c in &s.copies {
                replicas.push(Replica {
                    root: root_path("copy", c)?,
                    role: Role::Writable,
                });
            }
            replicas.push(Replica {
                root: root_path("golden", golden)?,
                role: Role::Golden,
            });
        }
        Mode::Parity => {
            if s.golden.is_some() || !s.copies.is_empty() || !s.replicas.is_empty() {
                return Err(
                    "a parity set uses `live` and `parity`, not `golden`, `copies` or `replicas` (for a second copy, use a golden or mirror set with `parity`)"
                        .into(),
                );
            }
            let live = s.live.as_deref().ok_or("a parity set needs `live`")?;
            replicas.push(Replica {
                root: root_path("live", live)?,
                role: Role::Writable,
            });
        }
        Mode::Mirror => {
            if s.live.is_some() || s.golden.is_some() || !s.copies.is_empty() {
                return Err(
                    "a mirror set uses `replicas` (two or more), not `live`, `golden` or `copies`"
                        .into(),
                );
            }
            if s.replicas.len() < 2 {
                return Err("a mirror set needs at least two `replicas`".into());
            }
            for r in &s.replicas {
                replicas.push(Replica {
                    root: root_path("replica", r)?,
                    role: Role::Writable,
                });
            }
        }
    }
    for (i, a) in replicas.iter().enumerate() {
        for b in &replicas[i + 1..] {
            if a.root.starts_with(&b.root) || b.root.starts_with(&a.root) {
                return Err(format!(
                    "replica roots `{}` and `{}` overlap; each copy needs its own directory (ideally its own partition)",
                    a.root.display(),
                    b.root.display()
                ));
            }
        }
    }
    Ok(replicas)
}

fn resolve_full_check_every(s: &RawSet) -> std::result::Result<u32, String> {
    Ok(match s.full_check_every {
        None => DEFAULT_FULL_CHECK_EVERY,
        Some(0) => {
            return Err(
                "`full_check_every` must be at least 1 (1: every boot is a full check)".into(),
            )
        }
        Some(n) if !s.changed_only => {
            return Err(format!(
                "`full_check_every = {n}` needs `changed_only = true`"
            ))
        }
        Some(n) => n,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(t: &str) -> Result<Config> {
        Config::parse(t, Path::new("/etc/rebound.toml"))
    }

    #[test]
    fn device_key_is_top_level_overridable_per_set_and_read_once() {
        let set = |name: &str, root: &str, own: &str| {
            format!("[[set]]\nname = \"{name}\"\nmode = \"mirror\"\nreplicas = [\"/{root}/a\", \"/{root}/b\"]\ninclude = [\"x\"]\n{own}")
        };
        let text = format!(
            "device_key = \"/etc/rebound/device.key\"\n{}{}",
            set("one", "p", ""),
            set("two", "q", "device_key = \"/etc/rebound/two.key\"\n")
        );
        let mut c = parse(&text).unwrap();
        let paths: Vec<_> = c.sets.iter().map(|s| s.key.path.clone().unwrap()).collect();
        assert_eq!(
            paths,
            [
                PathBuf::from("/etc/rebound/device.key"),
                PathBuf::from("/etc/rebound/two.key")
            ]
        );
        // Parsed but not read: the set refuses to run rather than go without.
        let e = c.sets[0].device_key().unwrap_err().to_string();
        assert!(
            e.contains("device_key `/etc/rebound/device.key` was not read"),
            "{e}"
        );
        let reads = std::cell::Cell::new(0);
        c.load_keys_with(&|p| {
            reads.set(reads.get() + 1);
            Ok(DeviceKey::from_bytes(&[p.as_os_str().len() as u8; 32], p))
        })
        .unwrap();
        assert_eq!(reads.get(), 2);
        let ids: Vec<String> = c
            .sets
            .iter()
            .map(|s| s.device_key().unwrap().unwrap().id().to_string())
            .collect();
        assert_ne!(ids[0], ids[1]);
        assert!(c.sets[0].signers().any());
        // A key that cannot be read names the set, the file and why.
        let mut c = parse(&text).unwrap();
        let e = c
            .load_keys_with(&|_| Err("mode 0644 lets group or others access it".into()))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("set `one`: device_key /etc/rebound/device.key: mode 0644"),
            "{e}"
        );
        // No key anywhere: nothing to read, records stay plain.
        let c = parse(&set("one", "p", "")).unwrap();
        assert!(c.sets[0].device_key().unwrap().is_none() && !c.sets[0].signers().any());
        // Relative, or inside a replica: refused.
        for (k, why) in [
            ("keys/device.key", "absolute"),
            ("/p/a/.rebound/device.key", "inside"),
            ("/q/b/k", "inside"),
        ] {
            let t = format!(
                "device_key = \"{k}\"\n{}{}",
                set("one", "p", ""),
                set("two", "q", "")
            );
            let e = parse(&t).unwrap_err().to_string();
            assert!(e.contains(why), "{k}: {e}");
        }
    }

    #[test]
    fn excluded_directories_are_known_without_walking_them() {
        let c = parse(
            r#"
[[set]]
name = "s"
mode = "golden"
live = "/usr"
golden = "/bak"
include = ["apps/**", "etc/*.conf"]
exclude = ["apps/cache/**", "apps/*/tmp/**", "apps/*.log"]
"#,
        )
        .unwrap();
        let s = &c.sets[0];
        let p = |x: &str| RelPath::new(x).unwrap();
        assert!(s.excludes_below(&p("apps/cache")));
        assert!(s.excludes_below(&p("apps/x/tmp")));
        assert!(!s.excludes_below(&p("apps")));
        assert!(!s.excludes_below(&p("apps/cachex")));
        assert!(!s.excludes_below(&p("apps/x")));
        assert!(s.may_select_below("apps/x/y"));
        assert!(s.may_select_below("etc"));
        assert!(!s.may_select_below("etc/sub"));
        assert!(!s.may_select_below("usr"));
        assert!(!s.may_select_below("apps/cache"));
        assert_eq!(s.links, Links::Refuse);
    }

    #[test]
    fn golden_public_key_is_an_absolute_path_outside_the_replicas_of_a_golden_set() {
        let base = "[[set]]\nname = \"s\"\nmode = \"golden\"\nlive = \"/usr\"\ngolden = \"/bak\"\ninclude = [\"a/**\"]\n";
        let c = parse(base).unwrap();
        assert_eq!(c.sets[0].golden_public_key, None);
        let c = parse(&format!(
            "{base}golden_public_key = \"/etc/rebound/./golden.pub\"\n"
        ))
        .unwrap();
        assert_eq!(
            c.sets[0].golden_public_key.as_deref(),
            Some(Path::new("/etc/rebound/golden.pub"))
        );
        for (bad, says) in [
            ("golden.pub", "absolute"),
            ("/etc/../golden.pub", "absolute"),
            ("/usr/golden.pub", "inside the replica /usr"),
            ("/bak/.rebound/s/golden.pub", "inside the replica /bak"),
        ] {
            let e = parse(&format!("{base}golden_public_key = \"{bad}\"\n")).unwrap_err();
            assert!(e.to_string().contains(says), "{bad}: {e}");
        }
        let mirror = "[[set]]\nname = \"m\"\nmode = \"mirror\"\nreplicas = [\"/a\", \"/b\"]\ninclude = [\"x\"]\ngolden_public_key = \"/etc/k.pub\"\n";
        let e = parse(mirror).unwrap_err();
        assert!(e.to_string().contains("for golden sets"), "{e}");
        // Not a top-level key.
        let e = parse(&format!("golden_public_key = \"/etc/k.pub\"\n{base}")).unwrap_err();
        assert!(e.to_string().contains("golden_public_key"), "{e}");
    }

    #[test]
    fn links_option_parses_and_refuses_unknown_values() {
        let base = "[[set]]\nname = \"s\"\nmode = \"golden\"\nlive = \"/usr\"\ngolden = \"/bak\"\ninclude = [\"a/**\"]\n";
        let c = parse(&format!("{base}links = \"skip\"\n")).unwrap();
        assert_eq!(c.sets[0].links, Links::Skip);
        let c = parse(&format!("{base}links = \"refuse\"\n")).unwrap();
        assert_eq!(c.sets[0].links, Links::Refuse);
        let e = parse(&format!("{base}links = \"follow\"\n")).unwrap_err();
        assert!(e.to_string().contains("follow"), "{e}");
    }

    #[test]
    fn the_issue_examples_parse() {
        let c = parse(
            r#"
[[set]]
name = "config"
mode = "golden"
live = "/usr"
golden = "/bak"
include = ["apn_cfg.json", "system_config.json", "app/**"]
hash = "blake3"

[[set]]
name = "apps"
mode = "mirror"
replicas = ["/usrapp/apprun", "/usrdata/appbackup"]
include = ["apps/**"]
version_file = "app_ver.txt"
"#,
        )
        .unwrap();
        let g = &c.sets[0];
        assert_eq!(g.replicas.len(), 2);
        assert_eq!(g.golden().unwrap().root, Path::new("/bak"));
        let sel = |s: &SetConfig, p: &str| s.selects(&RelPath::new(p).unwrap());
        assert!(sel(g, "apn_cfg.json"));
        assert!(sel(g, "app/a/b.py"));
        assert!(!sel(g, "other.json"));
        assert!(!sel(g, "x/apn_cfg.json"));
        let m = &c.sets[1];
        assert!(sel(m, "apps/x"));
        assert!(!sel(m, "app_ver.txt"));
    }

    #[test]
    fn threads_and_changed_only_parse_with_defaults() {
        let base = "[[set]]\nname='a'\nmode='mirror'\nreplicas=['/a','/b']\ninclude=['x']\n";
        let c = parse(base).unwrap();
        assert_eq!(c.threads, crate::hashing::default_threads());
        assert!((1..=crate::hashing::MAX_DEFAULT_THREADS).contains(&c.threads));
        assert!(!c.sets[0].changed_only);
        let mut c = parse(&format!(
            "threads = 3\n{base}changed_only = true\nfull_check_every = 5\n"
        ))
        .unwrap();
        assert_eq!((c.threads, c.sets[0].threads), (3, 3));
        assert!(c.sets[0].changed_only);
        assert_eq!(c.sets[0].full_check_every, 5);
        c.set_threads(0);
        assert_eq!((c.threads, c.sets[0].threads), (1, 1));
        // `--threads` overrides the file's value and the default; a 0 in the file
        // is still an error.
        let p = Path::new("/etc/rebound.toml");
        let d = Config::parse_with_threads(&format!("threads = 3\n{base}"), p, Some(2)).unwrap();
        assert_eq!((d.threads, d.sets[0].threads), (2, 2));
        let d = Config::parse_with_threads(base, p, Some(7)).unwrap();
        assert_eq!((d.threads, d.sets[0].threads), (7, 7));
        assert!(Config::parse_with_threads(&format!("threads = 0\n{base}"), p, Some(2)).is_err());
        c.force_full_check();
        assert!(c.sets[0].force_full);
        for (text, needle) in [
            (format!("threads = 0\n{base}"), "threads"),
            (
                format!("{base}changed_only = true\nfull_check_every = 0\n"),
                "at least 1",
            ),
            (
                format!("{base}full_check_every = 3\n"),
                "needs `changed_only",
            ),
        ] {
            let e = parse(&text).unwrap_err().to_string();
            assert!(e.contains(needle), "{needle:?} not in {e}");
        }
    }

    #[test]
    fn sets_may_share_a_writable_root_but_not_a_golden_one() {
        let ok = "[[set]]\nname='a'\nmode='golden'\nlive='/usr'\ngolden='/bak'\ninclude=['a/**']\n\
                  [[set]]\nname='b'\nmode='golden'\nlive='/usr'\ngolden='/bak2'\ninclude=['b/**']";
        assert!(parse(ok).is_ok());
        // A literal path one set excludes may be another set's.
        let ok = "[[set]]\nname='a'\nmode='golden'\nlive='/usr'\ngolden='/bak'\ninclude=['**']\nexclude=['b']\n\
                  [[set]]\nname='b'\nmode='golden'\nlive='/usr'\ngolden='/bak2'\ninclude=['b']";
        assert!(parse(ok).is_ok());
        let bad =
            "[[set]]\nname='a'\nmode='golden'\nlive='/usr'\ngolden='/bak'\ninclude=['a/**']\n\
                   [[set]]\nname='b'\nmode='golden'\nlive='/bak'\ngolden='/bak2'\ninclude=['b/**']";
        assert!(parse(bad).is_err());
    }

    #[test]
    fn bad_configs_name_the_problem() {
        let cases = [
            ("", "no [[set]]"),
            ("[[set]]\nname='a'\nmode='golden'\nlive='usr'\ngolden='/b'\ninclude=['x']", "absolute"),
            ("[[set]]\nname='a'\nmode='golden'\nlive='/usr'\ngolden='/usr/b'\ninclude=['x']", "overlap"),
            ("[[set]]\nname='a'\nmode='golden'\nlive='/u'\ngolden='/b'\ninclude=['../x']", "relative"),
            // Patterns are checked in order, each whole before the next.
            ("[[set]]\nname='a'\nmode='golden'\nlive='/u'\ngolden='/b'\ninclude=['[x', '/etc']", "include pattern `[x`: unclosed character class"),
            ("[[set]]\nname='a'\nmode='golden'\nlive='/u'\ngolden='/b'\ninclude=['x']\nexclude=['{a,b']", "exclude pattern `{a,b`: unclosed alternatives"),
            ("[[set]]\nname='a'\nmode='golden'\nlive='/u'\ngolden='/b'\ninclude=['x']\nhash='md5'", "md5"),
            ("[[set]]\nname='a'\nmode='mirror'\nreplicas=['/a']\ninclude=['x']", "at least two"),
            ("[[set]]\nname='a'\nmode='mirror'\nreplicas=['/a','/b']\ninclude=['x']\nversion_file='../v'", "version_file"),
            ("[[set]]\nname='a b'\nmode='mirror'\nreplicas=['/a','/b']\ninclude=['x']", "name"),
            ("[[set]]\nname='.'\nmode='mirror'\nreplicas=['/a','/b']\ninclude=['x']", "not `.` or `..`"),
            ("[[set]]\nname='..'\nmode='mirror'\nreplicas=['/a','/b']\ninclude=['x']", "not `.` or `..`"),
            ("[[set]]\nname='a'\nmode='mirror'\nreplicas=['/a','/b']\ninclude=['x']\ntypo=1", "typo"),
            ("[[set]]\nname='a'\nmode='mirror'\nreplicas=['/a','/b']\ninclude=['x']\n[[set]]\nname='a'\nmode='mirror'\nreplicas=['/c','/d']\ninclude=['x']", "twice"),
            // Another set's writable copy at, inside, or around a golden copy.
            ("[[set]]\nname='g'\nmode='golden'\nlive='/usr'\ngolden='/bak'\ninclude=['x']\n[[set]]\nname='m'\nmode='mirror'\nreplicas=['/d','/bak']\ninclude=['x']", "golden copy `/bak` of set `g`"),
            ("[[set]]\nname='g'\nmode='golden'\nlive='/usr'\ngolden='/bak'\ninclude=['x']\n[[set]]\nname='m'\nmode='golden'\nlive='/bak/sub'\ngolden='/b2'\ninclude=['x']", "overlaps the golden copy"),
            ("[[set]]\nname='m'\nmode='mirror'\nreplicas=['/d','/e']\ninclude=['x']\n[[set]]\nname='g'\nmode='golden'\nlive='/usr'\ngolden='/d/bak'\ninclude=['x']", "set `m`: writable copy `/d`"),
            // One file in two sets sharing a writable root.
            ("[[set]]\nname='all'\nmode='golden'\nlive='/usr'\ngolden='/b1'\ninclude=['**']\n[[set]]\nname='one'\nmode='golden'\nlive='/usr'\ngolden='/b2'\ninclude=['a']", "`/usr/a` is selected by both set `one` and set `all`"),
            ("[[set]]\nname='p'\nmode='mirror'\nreplicas=['/a','/b']\ninclude=['x']\n[[set]]\nname='q'\nmode='mirror'\nreplicas=['/c','/b']\ninclude=['x']", "set `p` and set `q`"),
        ];
        for (text, needle) in cases {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains("/etc/rebound.toml"), "{e}");
            assert!(e.contains(needle), "{needle:?} not in {e}");
        }
    }
}
