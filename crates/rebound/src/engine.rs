//! The operations a user runs (`boot`, `verify`, `commit`, `update`, `seal`,
//! `status`), each built from observe -> plan -> execute over one [`Fs`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::change::{self, ModeRule, NewFile};
use crate::config::{Config, Mode, Role, SetConfig};
use crate::durable::{Breakage, Durable};
use crate::error::{Error, Result};
use crate::exec::{change_failed, execute_signed, Outcome};
use crate::fs::{full, Fs, Kind};
use crate::hashing::{hash_reader, CHUNK};
use crate::history::{self, Event};
use crate::observe::{
    self, Depth, FileState, ReplicaState, SetState, SignatureState, SlotState, TagState,
};
use crate::parity_store;
use crate::plan::{self, Action, Plan, Planned, Source, SourceKind};
use crate::relpath::RelPath;
use crate::roots;
use crate::sign::{PublicKey, SignKey};
use crate::statcache;
use crate::stream;

/// Exit statuses, as documented in the README and `--help`.
pub mod exit {
    /// Every protected file is intact (after repairs, for `boot`).
    pub const OK: u8 = 0;
    /// `verify` found damage that `boot` would repair.
    pub const DAMAGE: u8 = 1;
    /// Usage, configuration or I/O error.
    pub const ERROR: u8 = 2;
    /// Some file has no intact copy left.
    pub const LOST: u8 = 3;
}

pub use crate::exec::CHANGED_WHILE_COMMITTING;

/// The report for one set.
#[derive(Debug, Clone, Serialize)]
pub struct SetReport {
    pub set: String,
    pub mode: Mode,
    /// What was (or, with `--dry-run` and `verify`, would be) done.
    pub plan: Option<Plan>,
    /// What happened to each action (empty when nothing was executed).
    pub outcomes: Vec<Outcome>,
    /// An error that stopped work on this set.
    pub error: Option<String>,
    /// Extra information (e.g. "already committed").
    pub notes: Vec<String>,
    /// Files this run wrote on purpose, not because they were damaged: `seal` filling
    /// the other copies, `commit` and `update` installing the new content. Their
    /// restores are among `outcomes`; they are not findings, and not repairs.
    pub installed: Vec<Installed>,
    /// The set's boot count (how many boots `rebound boot` has seen), when known.
    pub boot: Option<u64>,
    /// Files repaired again and again: suspect the storage, or an application that
    /// writes them without committing (docs/design.md section 5.6).
    pub suspects: Vec<Suspect>,
}

/// A protected file repaired in at least `suspect_repairs` of the last `suspect_boots`
/// boots (the configuration's [`crate::HistoryConfig`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Suspect {
    /// The copy where it was repaired.
    pub root: PathBuf,
    pub path: RelPath,
    /// The device holding `root` (from /proc/self/mountinfo), when known.
    pub partition: Option<String>,
    /// Boots of the window in which it was repaired.
    pub repairs: u32,
    /// The window, in boots.
    pub window: u32,
    /// Its repairs over the set's whole history.
    pub total: u64,
    /// When it was last repaired (RFC 3339, UTC).
    pub last: String,
}

impl Suspect {
    /// The warning, one line: names the file, its partition and what to suspect.
    pub fn warning(&self) -> String {
        format!(
            "{} repeatedly damaged: repaired in {} of the last {} boots{}: suspect the storage or an application writing without commit",
            full(&self.root, &self.path).display(),
            self.repairs,
            self.window,
            self.partition
                .as_deref()
                .map(|p| format!(" (partition {p})"))
                .unwrap_or_default()
        )
    }
}

/// A file a run wrote on purpose (see [`SetReport::installed`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Installed {
    pub root: PathBuf,
    pub path: RelPath,
}

impl Installed {
    /// Whether `a` is the restore that wrote this file.
    pub fn is(&self, a: &Action) -> bool {
        matches!(a, Action::Restore { root, path, .. } if *root == self.root && *path == self.path)
    }
}

/// Why a reconcile writes: a boot repairs damage; `seal`, `commit` and `update` bring
/// new content to the copies on purpose, which is neither damage nor a repair.
#[derive(Debug, Clone, Copy)]
enum Intent<'c> {
    Repair,
    /// Every restore fills a copy (`seal`).
    Fill,
    /// Restores of these paths install the change (`commit`, `update`).
    Install(&'c BTreeSet<RelPath>),
    /// The removal is intended (`commit --remove`); a restore on the way is a repair.
    Remove,
}

impl Intent<'_> {
    fn installs(&self, a: &Action) -> Option<Installed> {
        let Action::Restore { root, path, .. } = a else {
            return None;
        };
        match self {
            Intent::Repair | Intent::Remove => false,
            Intent::Fill => true,
            Intent::Install(paths) => paths.contains(path),
        }
        .then(|| Installed {
            root: root.clone(),
            path: path.clone(),
        })
    }
}

impl SetReport {
    fn new(set: &SetConfig) -> SetReport {
        SetReport {
            set: set.name.clone(),
            mode: set.mode,
            plan: None,
            outcomes: Vec::new(),
            error: None,
            notes: Vec::new(),
            installed: Vec::new(),
            boot: None,
            suspects: Vec::new(),
        }
    }

    fn failed(set: &SetConfig, e: impl ToString) -> SetReport {
        let mut r = SetReport::new(set);
        r.error = Some(e.to_string());
        r
    }

    /// Whether any action failed.
    pub fn any_failed(&self) -> bool {
        self.outcomes.iter().any(|o| o.error.is_some())
    }
}

/// The commands that make a [`Report`]. Its JSON value (and [`Command::as_str`]) is
/// the command's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    Boot,
    Verify,
    Commit,
    Update,
    Write,
    Seal,
    Rekey,
}

impl Command {
    /// The command's name, as typed.
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Boot => "boot",
            Command::Verify => "verify",
            Command::Commit => "commit",
            Command::Update => "update",
            Command::Write => "write",
            Command::Seal => "seal",
            Command::Rekey => "rekey",
        }
    }
}

/// The report of one command over one or more sets.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub command: Command,
    pub dry_run: bool,
    pub sets: Vec<SetReport>,
}

impl Report {
    /// The exit status this report calls for.
    pub fn exit_code(&self) -> u8 {
        let lost = self
            .sets
            .iter()
            .any(|s| s.plan.as_ref().is_some_and(|p| !p.lost.is_empty()));
        if lost {
            return exit::LOST;
        }
        if self
            .sets
            .iter()
            .any(|s| s.error.is_some() || s.any_failed())
        {
            return exit::ERROR;
        }
        let damage = self.sets.iter().any(|s| {
            s.plan.as_ref().is_some_and(|p| {
                p.repairs()
                    || p.findings
                        .iter()
                        .any(|f| f.problem == plan::Problem::GoldenDamaged)
            })
        });
        // `verify` and `boot --dry-run` change nothing: damage is their finding. (A
        // dry run of an intentional change says only whether it can be made.)
        if self.dry_run && damage && matches!(self.command, Command::Boot | Command::Verify) {
            return exit::DAMAGE;
        }
        exit::OK
    }
}

/// An event waiting to be written, with the repairs it counts.
type PendingEvent = (history::Event, Vec<history::Counted>);

/// Runs operations over one filesystem.
#[derive(Debug)]
pub struct Engine<'a> {
    durable: Durable<'a>,
    /// The history each set of the running command adds (set name, event), written
    /// after all of them ([`Engine::flush_history`]).
    pending: std::sync::Mutex<Vec<(String, Option<PendingEvent>)>>,
    /// The key `seal` signs golden manifests with ([`Engine::with_sign_key`]).
    sign_key: Option<&'a SignKey>,
}

impl<'a> Engine<'a> {
    /// An engine over `fs`.
    pub fn new(fs: &'a dyn Fs) -> Engine<'a> {
        Engine {
            durable: Durable::new(fs),
            pending: std::sync::Mutex::new(Vec::new()),
            sign_key: None,
        }
    }

    /// `seal --sign-key`: `seal` signs every golden manifest it writes with `key`
    /// (docs/design.md section 2.4). A set with `golden_public_key` is sealed only with
    /// a key whose public half is that one.
    pub fn with_sign_key(self, key: &'a SignKey) -> Engine<'a> {
        Engine {
            sign_key: Some(key),
            ..self
        }
    }

    /// Breaks the write protocol on purpose (crash-explorer self-tests only).
    #[doc(hidden)]
    pub fn with_breakage(self, b: Breakage) -> Engine<'a> {
        Engine {
            durable: self.durable.with_breakage(b),
            ..self
        }
    }

    fn fs(&self) -> &'a dyn Fs {
        self.durable.fs()
    }

    /// Observes a set and plans for it, hashing golden files on demand.
    ///
    /// # Errors
    /// Errors that make the set unreadable, or why no plan can be made.
    #[doc(hidden)]
    pub fn plan_set(&self, set: &SetConfig, depth: Depth) -> Result<(SetState, Plan)> {
        let mut state = observe::observe(self.fs(), set, depth)?;
        let p = self.settle(set, &mut state, &|st| {
            plan::plan(set, st).map_err(|e| set_error(set, e))
        })?;
        Ok((state, p))
    }

    /// Plans with `make` until the plan is complete, reading what it asks for.
    fn settle<T>(
        &self,
        set: &SetConfig,
        state: &mut SetState,
        make: &dyn Fn(&SetState) -> Result<Planned<T>>,
    ) -> Result<T> {
        // Each round reads only what the plan asked for and the plan asks only for
        // what is not read yet, so this settles: at most a round of golden sources,
        // one for the golden manifest (a lazy golden replica, at boot), one for the
        // fallback's golden files. The bound is a guard, never reached.
        for _ in 0..8 {
            match make(state)? {
                Planned::Complete(t) => return Ok(t),
                Planned::Need(n) if n.golden => observe::observe_golden(self.fs(), set, state)?,
                Planned::Need(n) => {
                    observe::hash_on_demand(self.fs(), state, &n.hash);
                    parity_store::check_fits(self.fs(), state, &n.parity);
                }
            }
        }
        Err(Error::Internal(
            "the plan did not settle after the observation it asked for; nothing was done",
        ))
    }

    fn reconcile(&self, set: &SetConfig, dry_run: bool, intent: Intent<'_>) -> SetReport {
        let started = statcache::now_ns();
        match self.plan_set(set, Depth::Boot) {
            // Nothing is written for a set that cannot be planned (its configuration
            // may not match what is on disk): not even its history.
            Err(e) => SetReport::failed(set, e),
            Ok((state, p)) => {
                self.carry_out(set, &state, p, dry_run, intent, Command::Boot, started)
            }
        }
    }

    /// A set's boot: streamed when it is intact ([`crate::stream`]: nothing to do,
    /// proved in memory that does not grow with the set), else observed and planned
    /// in full.
    fn boot_set(&self, set: &SetConfig, dry_run: bool) -> SetReport {
        let started = statcache::now_ns();
        match stream::intact(self.fs(), set, true) {
            Some((state, p)) => self.carry_out(
                set,
                &state,
                p,
                dry_run,
                Intent::Repair,
                Command::Boot,
                started,
            ),
            None => self.reconcile(set, dry_run, Intent::Repair),
        }
    }

    /// Carries out a settled plan (unless `dry_run`) and reports it: what it writes on
    /// purpose (`intent`) is not damage; repairs go to the repair record; a
    /// `changed_only` set's stat cache is saved. An intentional change that failed
    /// before its commit point is the set's error: nothing of it was made.
    #[allow(clippy::too_many_arguments)]
    fn carry_out(
        &self,
        set: &SetConfig,
        state: &SetState,
        mut p: Plan,
        dry_run: bool,
        intent: Intent<'_>,
        command: Command,
        started: i128,
    ) -> SetReport {
        let mut rep = SetReport::new(set);
        // What the run writes on purpose is reported as such, not as damage.
        rep.installed = p
            .actions
            .iter()
            .filter_map(|a| intent.installs(a))
            .collect();
        let installed: BTreeSet<(PathBuf, RelPath)> = rep
            .installed
            .iter()
            .map(|i| (i.root.clone(), i.path.clone()))
            .collect();
        let is_installed =
            |root: &Path, path: &RelPath| installed.contains(&(root.to_path_buf(), path.clone()));
        p.findings.retain(|f| !is_installed(&f.root, &f.path));
        let is_repair = |a: &Action| match a {
            Action::Restore { root, path, .. } => !is_installed(root, path),
            _ => matches!(intent, Intent::Repair) && !a.is_cleanup(),
        };
        if !dry_run && !p.actions.is_empty() {
            rep.outcomes = execute_signed(&self.durable, &p, set.signers());
            rep.error = change_failed(&p, &rep.outcomes);
        }
        // Changed-only sets: the stat cache only decides what is hashed; written after
        // the plan is carried out, when it changed.
        if set.changed_only {
            let seen = cache_seen(state, &p);
            rep.notes.extend(statcache::describe(set, &seen));
            if let (false, None, Some(target)) = (dry_run, &rep.error, p.manifest.as_ref()) {
                statcache::save(&self.durable, set, &seen, target, started);
            }
        }
        rep.plan = Some(p);
        // Nothing protected yet (an empty set, an unmounted copy's mount point): no
        // history either.
        let empty = rep
            .plan
            .as_ref()
            .is_none_or(|p| matches!(p.authority, plan::Authority::Empty));
        if !dry_run && !empty {
            let event = self.history_event(set, command, state, &rep, &is_repair);
            self.pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((set.name.clone(), event));
        }
        rep
    }

    /// The event a run on `set` adds to its history (history.rs), if any: a run that
    /// found damage, executed an action or failed while carrying out its plan. Pure
    /// but for the clock; written later, after every set of the command
    /// ([`Engine::flush_history`]).
    fn history_event(
        &self,
        set: &SetConfig,
        command: Command,
        state: &SetState,
        rep: &SetReport,
        is_repair: &dyn Fn(&Action) -> bool,
    ) -> Option<PendingEvent> {
        let p = rep.plan.as_ref()?;
        let golden_damaged = p
            .findings
            .iter()
            .any(|f| f.problem == plan::Problem::GoldenDamaged);
        if rep.outcomes.is_empty() && p.lost.is_empty() && !golden_damaged && rep.error.is_none() {
            return None;
        }
        let outcome = if rep.error.is_some() || rep.any_failed() {
            history::EventOutcome::Failed
        } else if !p.lost.is_empty() {
            history::EventOutcome::Lost
        } else if golden_damaged {
            history::EventOutcome::Damaged
        } else if rep.outcomes.iter().any(|o| is_repair(&o.action)) {
            history::EventOutcome::Repaired
        } else {
            history::EventOutcome::Changed
        };
        let mut e = history::Event {
            seq: 0,
            time: unix_secs(self.fs().now()),
            boot: 0,
            command: command.as_str().into(),
            outcome,
            actions: Vec::new(),
            more_actions: 0,
            lost: Vec::new(),
            notes: Vec::new(),
        };
        history::add_actions(
            &mut e,
            rep.outcomes
                .iter()
                .map(|o| event_action(Some(state), o, is_repair(&o.action))),
        );
        history::add_lost(&mut e, p.lost.iter().map(|l| l.as_str()));
        if let Some(err) = &rep.error {
            history::add_note(&mut e, err);
        }
        // Counted: what repaired damage, and the completion of a change a power cut
        // interrupted (never a file's repair: the suspect rule does not count it). A
        // file is damaged when it does not hold what its own copy's manifest records
        // (missing, other content, mode or owner); a copy that is only behind (a vendor
        // upgrade, a commit brought to the other copies, an adoption) holds what its
        // manifest says and is not. Without its own manifest, a finding decides.
        let finding = |root: &Path, path: &RelPath, slot: bool| {
            p.findings.iter().any(|f| {
                f.root == root
                    && f.path == *path
                    && if slot {
                        f.problem == plan::Problem::ManifestDamaged
                    } else {
                        matches!(
                            f.problem,
                            plan::Problem::Missing
                                | plan::Problem::Corrupt
                                | plan::Problem::NotAFile
                                | plan::Problem::Unreadable
                                | plan::Problem::WrongMode
                                | plan::Problem::WrongOwner
                                | plan::Problem::ParityDamaged
                        )
                    }
            })
        };
        let adopting = matches!(p.authority, plan::Authority::Adopt { .. });
        let damaged = |root: &Path, path: &RelPath| {
            if adopting {
                return false; // the first run fills the other copies: nothing was there
            }
            let Some(r) = state.replicas.iter().find(|r| r.root == root) else {
                return finding(root, path, false);
            };
            let Some(m) = &r.manifest else {
                return finding(root, path, false);
            };
            let Some(e) = m.entries.get(path) else {
                return false; // new in this generation: brought, not repaired
            };
            match r.files.get(path) {
                Some(FileState::File {
                    digest,
                    mode,
                    owner,
                    ..
                }) => {
                    digest.is_some_and(|d| d != e.digest)
                        || *mode != e.mode
                        || e.owner.is_some_and(|o| o != *owner)
                }
                _ => true,
            }
        };
        let counted = rep
            .outcomes
            .iter()
            .filter(|o| o.error.is_none() && is_repair(&o.action))
            .filter_map(|o| {
                let a = &o.action;
                let (kind, file) = history::counter_kind(a)?;
                let (_, root, path, _) = history::describe(a);
                let count = match a {
                    Action::Restore { from, .. } if from.kind == SourceKind::Staged => true,
                    Action::Restore { root, path, .. } | Action::SetMeta { root, path, .. } => {
                        damaged(root, path)
                    }
                    Action::MoveAside { root, path, .. } => finding(root, path, false),
                    Action::WriteManifest { root, slot, .. } => crate::names::MANIFEST_SLOTS
                        .get(*slot)
                        .is_some_and(|n| finding(root, &RelPath::meta(&set.name, n), true)),
                    Action::WriteTag { root, rel, .. } => finding(root, rel, false),
                    // A damaged record rewritten (a missing one is only written).
                    Action::WriteParity { root, rel, .. } => finding(root, rel, false),
                    _ => kind == "interrupted_change" || kind == "stale_file",
                };
                count.then(|| history::Counted {
                    kind,
                    root: root.to_string_lossy().into_owned(),
                    path: file.then_some(path),
                })
            })
            .collect();
        Some((e, counted))
    }

    /// Writes the history of every set a command worked on, after all of them: a
    /// boot is counted, the events are appended, the files repeatedly damaged named in
    /// the reports. A writer of its own (its failed fsync stops no protected write,
    /// and the protected writes are all done). Losing any of it loses nothing
    /// protected: a failure is a note, never the run's error.
    fn flush_history(&self, config: &Config, report: &mut Report) {
        let pending = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        let durable = self.durable.separate();
        for (name, event) in pending {
            let (Ok(set), Some(rep)) = (
                config.set(&name),
                report.sets.iter_mut().find(|r| r.set == name),
            ) else {
                continue;
            };
            let fs = self.fs();
            let loaded = history::load(fs, set);
            rep.notes.extend(loaded.problems.iter().cloned());
            let boot = if report.command == Command::Boot {
                let (n, notes) = history::count_boot(&durable, set, &loaded);
                rep.notes.extend(notes);
                n
            } else {
                loaded.current_boot()
            };
            rep.boot = (boot > 0).then_some(boot);
            let log = match event {
                Some((mut e, counted)) => {
                    e.boot = boot;
                    let (log, notes) = history::append(&durable, set, loaded, e, &counted);
                    rep.notes.extend(notes);
                    Some(log)
                }
                None => loaded.log,
            };
            if let Some(log) = &log {
                rep.suspects = suspects(fs, set, log, boot);
            }
        }
    }

    /// Sets that must not be worked on in this run (roots that are one directory, a
    /// golden copy inside another set's writable one, a file claimed by two sets):
    /// see [`roots`]. Checked before any set is planned.
    fn refused(&self, config: &Config) -> BTreeMap<String, String> {
        roots::refused(self.fs(), config)
    }

    /// The report of a set that [`Engine::refused`] holds back, if it is one.
    fn held_back(refused: &BTreeMap<String, String>, set: &SetConfig) -> Option<SetReport> {
        refused.get(&set.name).map(|why| {
            SetReport::failed(
                set,
                Error::Set {
                    set: set.name.clone(),
                    what: why.clone(),
                },
            )
        })
    }

    /// The boot-time run: verify every set and repair what can be repaired.
    pub fn boot(&self, config: &Config, names: &[String], dry_run: bool) -> Result<Report> {
        let sets = config.select(names)?;
        let refused = self.refused(config);
        // The change journal starts before any set is observed (docs/design.md
        // section 3.1): a file an application changes from here on is left as it is,
        // not taken for damage. The first set's live copy is watched by its own walk,
        // directory by directory, before anything is hashed; the live copies of the
        // sets after it are watched now. It ends with the boot.
        let _journal = (!dry_run).then(|| JournalRun::start(self.fs()));
        if !dry_run {
            for s in sets
                .iter()
                .filter(|s| !refused.contains_key(&s.name))
                .skip(1)
            {
                if let Some((_, live)) = s.writable().next() {
                    observe::watch(self.fs(), s, &live.root);
                }
            }
        }
        let mut sets: Vec<SetReport> = sets
            .into_iter()
            .map(|s| Self::held_back(&refused, s).unwrap_or_else(|| self.boot_set(s, dry_run)))
            .collect();
        if !dry_run && self.fs().journal_blind() {
            for r in &mut sets {
                r.notes.push(
                    "change journal incomplete (inotify unavailable in this kernel, the watch limit fs.inotify.max_user_watches reached, or its event queue overflowed): a file changed during this run before it was hashed may have been taken for damage (docs/design.md section 3.1)".into(),
                );
            }
        }
        let mut report = Report {
            command: Command::Boot,
            dry_run,
            sets,
        };
        self.flush_history(config, &mut report);
        Ok(report)
    }

    /// `rebound rekey` (docs/design.md section 2.3): for each set, verifies every
    /// protected file of every writable copy against the current manifests (read as
    /// the configuration says: plain, or with the device key), refuses if anything is
    /// damaged, lost or left to tidy (run `rebound boot` first), then rewrites every
    /// writable manifest (both slots, in a boot's slot order, through the durable
    /// protocol), the stat cache and the history with the MAC of the configured key
    /// and of the key given to [`Config::add_next_key`]. With `dry_run`, says what it
    /// would write.
    ///
    /// # Errors
    /// [`Error::Usage`] for an unknown set; a set that cannot be rekeyed is its
    /// report's error.
    pub fn rekey(&self, config: &Config, names: &[String], dry_run: bool) -> Result<Report> {
        let sets = config.select(names)?;
        let refused = self.refused(config);
        let sets = sets
            .into_iter()
            .map(|s| Self::held_back(&refused, s).unwrap_or_else(|| self.rekey_set(s, dry_run)))
            .collect();
        let mut report = Report {
            command: Command::Rekey,
            dry_run,
            sets,
        };
        self.flush_history(config, &mut report);
        Ok(report)
    }

    fn rekey_set(&self, set: &SetConfig, dry_run: bool) -> SetReport {
        let fail = |what: String| {
            SetReport::failed(
                set,
                Error::Set {
                    set: set.name.clone(),
                    what,
                },
            )
        };
        if !set.signers().any() {
            return fail(
                "no device key: name one with `device_key` in the configuration, or give the new one with --key PATH".into(),
            );
        }
        // Every file hashed: the stat cache is not trusted to vouch for what is rekeyed.
        let mut full = set.clone();
        full.force_full = true;
        let (state, mut p) = match self.plan_set(&full, Depth::Boot) {
            Ok(x) => x,
            Err(e) => return SetReport::failed(set, e),
        };
        if let Some(why) = rekey_refusal(set, &state, &p) {
            let mut rep = fail(why);
            rep.plan = Some(p);
            return rep;
        }
        p.actions = state
            .replicas
            .iter()
            .filter(|r| r.role == Role::Writable)
            .flat_map(|r| {
                r.slot_order()
                    .into_iter()
                    .map(|slot| Action::WriteManifest {
                        root: r.root.clone(),
                        slot,
                        generation: p.generation,
                    })
            })
            .collect();
        let mut rep = SetReport::new(set);
        if !dry_run {
            rep.outcomes = execute_signed(&self.durable, &p, set.signers());
            if rep.any_failed() {
                rep.error = Some(format!(
                    "set `{}`: a manifest could not be rewritten (see the failed action); every copy still holds a manifest that boots, rerun `rebound rekey` once the cause is fixed",
                    set.name
                ));
            } else {
                rep.notes.extend(statcache::reseal(&self.durable, set));
                rep.notes.extend(history::reseal(&self.durable, set));
            }
        }
        rep.plan = Some(p);
        if !dry_run {
            let event = self.history_event(set, Command::Rekey, &state, &rep, &|_| false);
            self.pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((set.name.clone(), event));
        }
        rep
    }

    /// Read-only check of every replica, golden included. Writes nothing.
    pub fn verify(&self, config: &Config, names: &[String]) -> Result<Report> {
        let sets = config.select(names)?;
        let refused = self.refused(config);
        let mut out = Vec::new();
        for s in sets {
            if let Some(r) = Self::held_back(&refused, s) {
                out.push(r);
                continue;
            }
            let mut rep = SetReport::new(s);
            match self.plan_set(s, Depth::Deep) {
                Ok((_, p)) => rep.plan = Some(p),
                Err(e) => rep.error = Some(e.to_string()),
            }
            out.push(rep);
        }
        let mut report = Report {
            command: Command::Verify,
            dry_run: true,
            sets: out,
        };
        self.flush_history(config, &mut report);
        Ok(report)
    }

    /// Accepts the current content of protected files (the vendor's
    /// `file_crc32.calc`), and brings it to the set's other writable copies. With
    /// `dry_run`, plans it and writes nothing.
    ///
    /// # Errors
    /// [`Error::Usage`] for a path no set protects, or a file that is not there.
    pub fn commit(&self, config: &Config, paths: &[PathBuf], dry_run: bool) -> Result<Report> {
        let mut by_set: BTreeMap<usize, Vec<(usize, RelPath)>> = BTreeMap::new();
        for p in paths {
            let (si, ri, rel) = config.locate(p)?;
            match self
                .fs()
                .metadata(&config.sets[si].replicas[ri].root, &rel)?
            {
                Some(m) if m.kind == Kind::File => {}
                Some(_) => {
                    return Err(Error::Usage(format!(
                        "{}: not a regular file; only regular files can be committed",
                        p.display()
                    )))
                }
                None => {
                    return Err(Error::Usage(format!(
                        "{}: does not exist; nothing to commit (to drop it from its set, run `rebound commit --remove {}`)",
                        p.display(),
                        p.display()
                    )))
                }
            }
            by_set.entry(si).or_default().push((ri, rel));
        }
        let refused = self.refused(config);
        let mut reports = Vec::new();
        for (si, files) in by_set {
            let set = &config.sets[si];
            if let Some(r) = Self::held_back(&refused, set) {
                reports.push(r);
                continue;
            }
            let changes = files
                .into_iter()
                .map(|(ri, rel)| Incoming {
                    from: Source {
                        root: set.replicas[ri].root.clone(),
                        rel: rel.clone(),
                        kind: SourceKind::Writable,
                    },
                    path: rel,
                    origin: Some(ri),
                    mode: ModeRule::Source,
                })
                .collect();
            reports.push(
                self.change(set, changes, dry_run, Command::Commit)
                    .unwrap_or_else(|e| SetReport::failed(set, e)),
            );
        }
        let mut report = Report {
            command: Command::Commit,
            dry_run,
            sets: reports,
        };
        self.flush_history(config, &mut report);
        Ok(report)
    }

    /// Drops protected files from their sets (`commit --remove`): a new generation
    /// without them, and each removed from every writable copy where it still holds
    /// the recorded content (a copy with other content is left as it is, no longer
    /// protected). The golden manifest keeps naming them: only a boot that falls back
    /// to it (every writable manifest lost) brings them back. With `dry_run`, plans it
    /// and writes nothing.
    ///
    /// # Errors
    /// [`Error::Usage`] for a path no set protects, or one its set does not record.
    pub fn commit_remove(
        &self,
        config: &Config,
        paths: &[PathBuf],
        dry_run: bool,
    ) -> Result<Report> {
        let mut by_set: BTreeMap<usize, Vec<(PathBuf, RelPath)>> = BTreeMap::new();
        for p in paths {
            let (si, _, rel) = config.locate(p)?;
            let files = by_set.entry(si).or_default();
            if !files.iter().any(|(_, r)| *r == rel) {
                files.push((p.clone(), rel));
            }
        }
        let refused = self.refused(config);
        let mut reports = Vec::new();
        for (si, files) in by_set {
            let set = &config.sets[si];
            reports.push(Self::held_back(&refused, set).unwrap_or_else(|| {
                self.drop_files(set, &files, dry_run)
                    .unwrap_or_else(|e| SetReport::failed(set, e))
            }));
        }
        let mut report = Report {
            command: Command::Commit,
            dry_run,
            sets: reports,
        };
        self.flush_history(config, &mut report);
        Ok(report)
    }

    /// The removal as one plan ([`plan::plan_change`]): files are removed and
    /// manifests written in the order a boot uses, with the commit point where
    /// docs/design.md section 5.3 puts it.
    fn drop_files(
        &self,
        set: &SetConfig,
        files: &[(PathBuf, RelPath)],
        dry_run: bool,
    ) -> Result<SetReport> {
        let started = statcache::now_ns();
        let (mut state, p) = self.plan_set(set, Depth::Boot)?;
        let base = p.manifest.clone().ok_or_else(|| {
            Error::Usage(format!(
                "set `{}` records no file yet; nothing to remove",
                set.name
            ))
        })?;
        for (shown, rel) in files {
            if !base.entries.contains_key(rel) {
                return Err(Error::Usage(format!(
                    "{}: set `{}` does not record it; nothing to remove",
                    shown.display(),
                    set.name
                )));
            }
        }
        // IMPORTANT: generations never repeat, golden's included (see `change`).
        observe::observe_golden(self.fs(), set, &mut state)?;
        let mut next = crate::manifest::Manifest::clone(&base);
        for (_, rel) in files {
            next.entries.remove(rel);
        }
        next.generation = plan::next_generation(&state)
            .map_err(|e| set_error(set, e))?
            .max(base.generation.saturating_add(1));
        let generation = next.generation;
        let p = self.settle(set, &mut state, &|st| {
            plan::plan_change(set, st, next.clone()).map_err(|e| set_error(set, e))
        })?;
        // The removal is intended, not a repair; a file restored on the way is one.
        let removed: BTreeSet<(PathBuf, RelPath)> = p
            .actions
            .iter()
            .filter_map(|a| match a {
                Action::RemoveStale { root, path, .. } => Some((root.clone(), path.clone())),
                _ => None,
            })
            .collect();
        let mut rep = self.carry_out(
            set,
            &state,
            p,
            dry_run,
            Intent::Remove,
            Command::Commit,
            started,
        );
        if rep.error.is_some() {
            return Ok(rep);
        }
        let (did, left) = if dry_run {
            ("would remove", "would be left as it is")
        } else {
            ("removed", "left as it is")
        };
        for (_, rel) in files {
            let Some(e) = base.entries.get(rel) else {
                continue;
            };
            rep.notes.push(format!(
                "{did} {rel} from set `{}` at generation {generation}",
                set.name
            ));
            for r in state.replicas.iter().filter(|r| r.role == Role::Writable) {
                let here = r.files.get(rel);
                let planned = removed.contains(&(r.root.clone(), rel.clone()));
                if planned || matches!(here, None | Some(FileState::Missing)) {
                    continue;
                }
                let why = if here.and_then(FileState::digest) == Some(e.digest) {
                    "this copy's own manifest does not record it"
                } else {
                    "it does not hold the recorded content"
                };
                rep.notes.push(format!(
                    "{}: {left}: {why} (no longer protected; delete it by hand if it is not wanted)",
                    full(&r.root, rel).display()
                ));
            }
        }
        Ok(rep)
    }

    /// The firmware-update step: the files under `from` replace or join the set's
    /// files, all or nothing. With `dry_run`, plans it and writes nothing.
    ///
    /// # Errors
    /// [`Error::Usage`] for an unknown set, an empty or unreadable `from`, or a file in
    /// it that the set's patterns do not select.
    pub fn update(
        &self,
        config: &Config,
        set_name: &str,
        from: &Path,
        dry_run: bool,
    ) -> Result<Report> {
        let set = config.set(set_name)?;
        let files = list_tree(self.fs(), from)?;
        if files.is_empty() {
            return Err(Error::Usage(format!(
                "{}: contains no files; nothing to update",
                from.display()
            )));
        }
        for f in &files {
            if !set.selects(f) {
                return Err(Error::Usage(format!(
                    "{}: not selected by set `{}`'s include patterns ({}); refusing the whole update",
                    full(from, f).display(),
                    set.name,
                    set.include.join(", ")
                )));
            }
        }
        let changes = files
            .into_iter()
            .map(|f| Incoming {
                from: Source {
                    root: from.to_path_buf(),
                    rel: f.clone(),
                    kind: SourceKind::Incoming,
                },
                path: f,
                origin: None,
                mode: ModeRule::Source,
            })
            .collect();
        let rep = Self::held_back(&self.refused(config), set).unwrap_or_else(|| {
            self.change(set, changes, dry_run, Command::Update)
                .unwrap_or_else(|e| SetReport::failed(set, e))
        });
        let mut report = Report {
            command: Command::Update,
            dry_run,
            sets: vec![rep],
        };
        self.flush_history(config, &mut report);
        Ok(report)
    }

    /// Replaces the protected file `path` with the content of the file `from` and
    /// commits it, as one change (`rebound write`): the content is staged in every
    /// writable copy and made durable before the manifest that records it, so a
    /// power cut at any point leaves the old committed content or the new one, never a
    /// torn file. The path may be new (its set must select it). `mode`: the mode to
    /// record, or `None` to keep the recorded one (a new path takes `from`'s). With
    /// `dry_run`, plans it and writes nothing.
    ///
    /// # Errors
    /// [`Error::Usage`] for a path no set protects, a golden path, or a `from` that is
    /// not a readable regular file.
    pub fn write(
        &self,
        config: &Config,
        path: &Path,
        from: &Path,
        mode: Option<u32>,
        dry_run: bool,
    ) -> Result<Report> {
        let (si, _, rel) = config.locate(path)?;
        let set = &config.sets[si];
        let (Some(dir), Some(name)) = (from.parent(), from.file_name()) else {
            return Err(Error::Usage(format!(
                "{}: not a file to read the new content from",
                from.display()
            )));
        };
        let name = name
            .to_str()
            .and_then(|n| RelPath::new(n).ok())
            .ok_or_else(|| {
                Error::Usage(format!(
                    "{}: the name of the file with the new content must be UTF-8 and plain",
                    from.display()
                ))
            })?;
        let change = Incoming {
            from: Source {
                root: dir.to_path_buf(),
                rel: name,
                kind: SourceKind::Incoming,
            },
            path: rel,
            origin: None,
            mode: mode.map_or(ModeRule::Kept, ModeRule::Given),
        };
        let rep = Self::held_back(&self.refused(config), set).unwrap_or_else(|| {
            self.change(set, vec![change], dry_run, Command::Write)
                .unwrap_or_else(|e| SetReport::failed(set, e))
        });
        let mut report = Report {
            command: Command::Write,
            dry_run,
            sets: vec![rep],
        };
        self.flush_history(config, &mut report);
        Ok(report)
    }

    /// An intentional change (`commit`, `update`, `write`): observe the set and the new files,
    /// plan the change and the boot after it ([`change::plan_commit`]), carry it out.
    fn change(
        &self,
        set: &SetConfig,
        changes: Vec<Incoming>,
        dry_run: bool,
        command: Command,
    ) -> Result<SetReport> {
        let started = statcache::now_ns();
        let mut state = observe::observe(self.fs(), set, Depth::Boot)?;
        let paths: Vec<RelPath> = changes.iter().map(|c| c.path.clone()).collect();
        observe::observe_paths(self.fs(), set, &mut state, &paths);
        let files = self.observe_new(set, changes)?;
        let ch = self.settle(set, &mut state, &|st| change::plan_commit(set, st, &files))?;
        let installs = ch.installs();
        let generation = ch.plan.committed.as_ref().map(|m| m.generation);
        let intent = if ch.recorded.is_empty() {
            Intent::Repair
        } else {
            Intent::Install(&installs)
        };
        let mut rep = self.carry_out(set, &state, ch.plan, dry_run, intent, command, started);
        if rep.error.is_some() {
            return Ok(rep);
        }
        if ch.recorded.is_empty() {
            rep.notes
                .push("already committed: the manifest records this content".into());
        }
        let did = if dry_run { "would record" } else { "recorded" };
        for (path, e) in &ch.recorded {
            rep.notes.push(format!(
                "{did} {path} ({} bytes, {} {}) at generation {}",
                e.size,
                set.hash,
                e.digest,
                generation.unwrap_or_default()
            ));
        }
        Ok(rep)
    }

    /// Reads the new content of a change: `lstat`, then hash, each file. A file
    /// committed where an application writes it must still have that `lstat` once all
    /// are hashed (and again at the commit point), or the digest could be of content
    /// that never existed whole (an application still appending).
    fn observe_new(&self, set: &SetConfig, changes: Vec<Incoming>) -> Result<Vec<NewFile>> {
        let mut buf = vec![0u8; CHUNK];
        let mut out = Vec::new();
        for c in changes {
            let (root, rel) = (&c.from.root, &c.from.rel);
            let meta = match self.fs().metadata(root, rel)? {
                Some(m) if m.kind == Kind::File => m,
                Some(_) => {
                    return Err(Error::Usage(format!(
                        "{}: not a regular file; the new content must be one",
                        full(root, rel).display()
                    )))
                }
                None => {
                    return Err(Error::Usage(format!(
                        "{}: does not exist; name the file that holds the new content",
                        full(root, rel).display()
                    )))
                }
            };
            let mut r = self.fs().open_read(root, rel)?;
            let digest = hash_reader(&mut *r, &full(root, rel), set.hash, &mut buf)?;
            drop(r);
            out.push(NewFile {
                path: c.path,
                from: c.from,
                digest,
                meta,
                origin: c.origin,
                mode: c.mode,
            });
        }
        for f in out.iter().filter(|f| f.origin.is_some()) {
            if self.fs().metadata(&f.from.root, &f.from.rel)? != Some(f.meta) {
                return Err(Error::Changed {
                    path: full(&f.from.root, &f.from.rel),
                    what: CHANGED_WHILE_COMMITTING,
                });
            }
        }
        Ok(out)
    }

    /// The factory step: copy the live files into the golden replica and write the
    /// manifests (golden mode); adopt the first replica (mirror mode). With `dry_run`,
    /// plans it and writes nothing.
    ///
    /// # Errors
    /// [`Error::Usage`] for unknown sets; per-set problems are in the report.
    pub fn seal(
        &self,
        config: &Config,
        names: &[String],
        force: bool,
        dry_run: bool,
    ) -> Result<Report> {
        let sets = config.select(names)?;
        let refused = self.refused(config);
        let mut out = Vec::new();
        for s in sets {
            out.push(Self::held_back(&refused, s).unwrap_or_else(|| {
                self.seal_set(s, force, dry_run)
                    .unwrap_or_else(|e| SetReport::failed(s, e))
            }));
        }
        let mut report = Report {
            command: Command::Seal,
            dry_run,
            sets: out,
        };
        self.flush_history(config, &mut report);
        Ok(report)
    }

    /// The key this seal signs `set`'s golden manifest with, if any. A set with
    /// `golden_public_key` must be signed, with the matching key: a golden copy its own
    /// device would refuse is never written.
    ///
    /// # Errors
    /// [`Error::Usage`] for a missing or mismatched signing key; [`Error::Config`] for
    /// a `golden_public_key` that is not a public key file.
    fn seal_key(&self, set: &SetConfig) -> Result<Option<&'a SignKey>> {
        if set.golden().is_none() {
            return Ok(None);
        }
        match (&set.golden_public_key, self.sign_key) {
            (None, k) => Ok(k),
            (Some(p), None) => Err(Error::Usage(format!(
                "set `{}` has golden_public_key = \"{}\": seal it with --sign-key and the matching secret key (a golden copy without a signature would be refused as damaged)",
                set.name,
                p.display()
            ))),
            (Some(p), Some(k)) => {
                let want = PublicKey::load(self.fs(), p)?;
                if k.public() != want {
                    return Err(Error::Usage(format!(
                        "set `{}`: the signing key (public key {}) is not the one golden_public_key = \"{}\" names ({want}); seal with the matching key, or configure its .pub",
                        set.name,
                        k.public(),
                        p.display()
                    )));
                }
                Ok(Some(k))
            }
        }
    }

    fn seal_set(&self, set: &SetConfig, force: bool, dry_run: bool) -> Result<SetReport> {
        let started = statcache::now_ns();
        let sign = self.seal_key(set)?;
        let mut state = observe::observe(self.fs(), set, Depth::Boot)?;
        // Seal writes golden: its leftovers, marker and generation must be known.
        observe::observe_golden(self.fs(), set, &mut state)?;
        // The other copies are filled at every path the seal records: what they hold
        // there (a directory in the way) must be known before it is planned.
        let recorded: Vec<RelPath> = state
            .replicas
            .first()
            .map(|r| r.files.keys().filter(|p| set.selects(p)).cloned().collect())
            .unwrap_or_default();
        observe::observe_paths(self.fs(), set, &mut state, &recorded);
        let sealing = self.settle(set, &mut state, &|st| {
            change::plan_seal(set, st, force, sign)
        })?;
        let (files, generation) = sealing
            .plan
            .committed
            .as_ref()
            .map_or((0, 0), |m| (m.entries.len(), m.generation));
        let mut rep = self.carry_out(
            set,
            &state,
            sealing.plan,
            dry_run,
            Intent::Fill,
            Command::Seal,
            started,
        );
        if rep.error.is_some() {
            return Ok(rep);
        }
        if !sealing.skipped.is_empty() {
            let names: Vec<&str> = sealing.skipped.iter().map(|p| p.as_str()).collect();
            rep.notes.push(format!(
                "{} symbolic link{} left unprotected (links = \"skip\"): {}",
                names.len(),
                if names.len() == 1 { "" } else { "s" },
                names.join(", ")
            ));
        }
        let (primary, golden) = (&state.replicas[0].root, set.golden());
        rep.notes.push(match (golden, dry_run) {
            (Some(g), false) => format!(
                "sealed {files} files into {} at generation {generation}",
                g.root.display()
            ),
            (Some(g), true) => format!(
                "would seal {files} files into {} at generation {generation}",
                g.root.display()
            ),
            (None, false) => format!(
                "adopted {files} files from {} at generation {generation}",
                primary.display()
            ),
            (None, true) => format!(
                "would adopt {files} files from {} at generation {generation}",
                primary.display()
            ),
        });
        Ok(rep)
    }

    /// Writes the metrics file for node_exporter after a run (metrics.rs): `report`
    /// is the run's (`None` for a run that made none), `run` its command, end, length
    /// and exit status.
    ///
    /// # Errors
    /// Why the file could not be written; the run's own result stands.
    pub fn write_metrics(
        &self,
        config: &Config,
        path: &Path,
        report: Option<&Report>,
        run: crate::metrics::Run<'_>,
    ) -> Result<()> {
        // A writer of its own: an fsync that failed in the run (whose metrics matter
        // most) must not keep them from being written.
        crate::metrics::write(&self.durable.separate(), config, path, report, run)
    }

    /// The event log of each set, oldest event first. Reads the history records of
    /// the writable copies only; writes nothing.
    ///
    /// # Errors
    /// [`Error::Usage`] for unknown sets.
    pub fn log(&self, config: &Config, names: &[String], since: Since) -> Result<Vec<SetLog>> {
        Ok(config
            .select(names)?
            .into_iter()
            .map(|s| {
                let loaded = history::load(self.fs(), s);
                let events = loaded
                    .log
                    .map(|l| l.events)
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|e| match since {
                        Since::All => true,
                        Since::Time(t) => e.time >= t,
                        Since::Boot(b) => e.boot >= b,
                    })
                    .collect();
                SetLog {
                    set: s.name.clone(),
                    boots: loaded.boots.map(|b| b.count),
                    events,
                    problems: loaded.problems,
                }
            })
            .collect())
    }

    /// What is protected, where, at which generation, and the last repairs. Reads
    /// the manifests and version tags, and hashes only staged content of an
    /// interrupted change (to tell whether it is usable); no protected file is read.
    ///
    /// # Errors
    /// [`Error::Usage`] for unknown sets.
    pub fn status(&self, config: &Config, names: &[String]) -> Result<Vec<SetStatus>> {
        let mut out = Vec::new();
        for s in config.select(names)? {
            let mut replicas = Vec::new();
            for r in &s.replicas {
                // A `golden_public_key` that is not one is the configuration's error,
                // not a golden copy that is missing.
                let rs = match observe::observe_meta(self.fs(), s, &r.root, r.role) {
                    Err(e @ Error::Config { .. }) => return Err(e),
                    r => r.ok(),
                };
                replicas.push(ReplicaStatus::from_state(r.role, &r.root, rs));
            }
            out.push(SetStatus {
                set: s.name.clone(),
                mode: s.mode,
                hash: s.hash.name(),
                include: s.include.clone(),
                version_file: s.version_file.clone(),
                replicas,
                parity: parity_store::observe_parity(self.fs(), s, None, false).map(|p| {
                    ParityStatus {
                        root: p.root,
                        exists: p.root_exists,
                        records: p.records.len(),
                        redundancy: s.parity.as_ref().map_or(0, |c| c.redundancy),
                        block_size: s.parity.as_ref().map_or(0, |c| c.block),
                        problems: p.problems,
                    }
                }),
                history: HistoryStatus::of(self.fs(), s),
            });
        }
        Ok(out)
    }
}

/// A set's event log (`rebound log`).
#[derive(Debug, Clone, Serialize)]
pub struct SetLog {
    pub set: String,
    /// Boots counted.
    pub boots: Option<u64>,
    /// Oldest first.
    pub events: Vec<Event>,
    /// Damaged or unreadable history records (replaced by the next event).
    pub problems: Vec<String>,
}

/// Which events `rebound log` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    All,
    /// At or after this time (seconds since the epoch).
    Time(i64),
    /// In this boot or a later one.
    Boot(u64),
}

/// One file of an intentional change before it is read: the content at `from` becomes
/// `path` ([`change::NewFile`] once hashed).
#[derive(Debug, Clone)]
struct Incoming {
    from: Source,
    path: RelPath,
    /// The writable replica the content already sits in (commit), if any.
    origin: Option<usize>,
    /// Which mode the new generation records.
    mode: ModeRule,
}

/// Why a set's manifests cannot be rekeyed now, if they cannot: the authority must be
/// an intact writable manifest (read with the configured key, if any: a set whose
/// manifests lack its MAC is never rekeyed, so no downgrade is laundered), and the
/// plan a boot would make must have nothing to do.
fn rekey_refusal(set: &SetConfig, state: &SetState, p: &Plan) -> Option<String> {
    let keyed = set.key.key.is_some();
    if !matches!(p.authority, plan::Authority::Manifest { .. }) || p.manifest.is_none() {
        return Some(if keyed {
            "no writable copy has a manifest authenticated by the configured device key: rekey needs manifests that carry its MAC (a set turned on without `rebound rekey --key` first, or manifests tampered with); nothing was written. Run `rebound boot` to restore the files from golden or another copy".into()
        } else {
            "no writable copy has an intact manifest: run `rebound boot` (or `seal`) first; nothing was written".into()
        });
    }
    if let Some(r) = state
        .replicas
        .iter()
        .find(|r| r.role == Role::Writable && !r.root_exists)
    {
        return Some(format!(
            "writable copy {} does not exist (not mounted?): every copy is rekeyed at once; nothing was written",
            r.root.display()
        ));
    }
    if !p.lost.is_empty() || !p.findings.is_empty() || !p.actions.is_empty() {
        let first: Vec<String> = p
            .findings
            .iter()
            .take(3)
            .map(|f| {
                format!(
                    "{}: {}",
                    f.root.join(f.path.as_str()).display(),
                    f.problem.as_str()
                )
            })
            .collect();
        return Some(format!(
            "not every copy is intact ({} findings, {} lost, {} actions to repair or tidy{}{}): run `rebound boot` first, then rekey; nothing was written",
            p.findings.len(),
            p.lost.len(),
            p.actions.len(),
            if first.is_empty() { "" } else { ": " },
            first.join(", ")
        ));
    }
    None
}

fn set_error(set: &SetConfig, e: plan::PlanError) -> Error {
    Error::Set {
        set: set.name.clone(),
        what: e.0,
    }
}

/// Every regular file below `root`, refusing links and non-UTF-8 names.
fn list_tree(fs: &dyn Fs, root: &Path) -> Result<Vec<RelPath>> {
    match fs.dir_metadata(root, None)? {
        Some(m) if m.kind == Kind::Dir => {}
        _ => return Err(Error::Usage(format!("{}: not a directory", root.display()))),
    }
    let mut out = Vec::new();
    let mut stack: Vec<Option<RelPath>> = vec![None];
    while let Some(dir) = stack.pop() {
        for e in fs.read_dir(root, dir.as_ref())? {
            let Some(name) = &e.name else {
                return Err(Error::Usage(format!(
                    "{}/{}: file name is not UTF-8",
                    crate::fs::full_dir(root, dir.as_ref()).display(),
                    e.display()
                )));
            };
            let rel = match &dir {
                None => RelPath::new(name),
                Some(d) => d.join(name),
            }
            .map_err(|e| Error::Usage(e.to_string()))?;
            match e.kind {
                Kind::Dir => stack.push(Some(rel)),
                Kind::File => out.push(rel),
                Kind::Symlink => {
                    return Err(Error::Usage(format!(
                        "{}: is a symbolic link; an update must contain regular files only",
                        full(root, &rel).display()
                    )))
                }
                Kind::Other => {
                    return Err(Error::Usage(format!(
                        "{}: is not a regular file",
                        full(root, &rel).display()
                    )))
                }
            }
        }
    }
    out.sort();
    Ok(out)
}

/// A one-line description of an action, for reports.
pub fn describe_action(a: &Action) -> String {
    match a {
        Action::RemoveJunk { root, rel } => {
            format!("remove leftover {}", full(root, rel).display())
        }
        Action::Restore {
            root, path, from, ..
        } => format!(
            "restore {} from {}{}",
            full(root, path).display(),
            full(&from.root, &from.rel).display(),
            match from.kind {
                plan::SourceKind::Golden => " (golden)",
                plan::SourceKind::Staged => " (staged)",
                plan::SourceKind::Writable => "",
                plan::SourceKind::Incoming => " (update)",
                plan::SourceKind::Parity => " (rebuilt from its intact blocks and parity)",
            }
        ),
        Action::SyncFile { root, path } => {
            format!("sync {} to its storage", full(root, path).display())
        }
        Action::CommitManifest {
            root,
            slot,
            generation,
            checked,
        } => format!(
            "commit: write manifest generation {generation} to {} slot {slot}{}",
            root.display(),
            if checked.is_empty() {
                String::new()
            } else {
                format!(
                    " once {} committed file{} checked unchanged",
                    checked.len(),
                    if checked.len() == 1 { " is" } else { "s are" }
                )
            }
        ),
        Action::Unseal { root, rel } => format!(
            "unseal the golden copy: remove {} before replacing its files",
            full(root, rel).display()
        ),
        Action::WriteGolden {
            root, path, from, ..
        } => format!(
            "copy {} into the golden copy as {}",
            full(&from.root, &from.rel).display(),
            full(root, path).display()
        ),
        Action::WriteGoldenManifest { root, generation } => format!(
            "write golden manifest generation {generation} to {}",
            root.display()
        ),
        Action::WriteGoldenSignature { root, rel, .. } => format!(
            "sign the golden manifest: write {}",
            full(root, rel).display()
        ),
        Action::WriteSealMarker { root, rel, .. } => {
            format!("seal the golden copy: write {}", full(root, rel).display())
        }
        Action::WriteParity {
            root, rel, from, ..
        } => format!(
            "write the parity record {} of {}",
            full(root, rel).display(),
            full(&from.root, &from.rel).display()
        ),
        Action::RemoveParity { root, rel } => format!(
            "remove the parity record {} (no longer named)",
            full(root, rel).display()
        ),
        Action::SetMeta {
            root,
            path,
            mode,
            owner,
        } => format!(
            "set {} to mode {mode:04o}{}",
            full(root, path).display(),
            owner
                .map(|o| format!(" and owner {o} (uid:gid)"))
                .unwrap_or_default()
        ),
        Action::WriteManifest {
            root,
            slot,
            generation,
        } => format!(
            "write manifest generation {generation} to {} slot {slot}",
            root.display()
        ),
        Action::RemoveStale { root, path, .. } => format!(
            "remove {} (dropped by the new generation)",
            full(root, path).display()
        ),
        Action::Stage {
            root, rel, from, ..
        } => format!(
            "stage {} as {} ({})",
            full(&from.root, &from.rel).display(),
            full(root, rel).display(),
            // Staged in its own copy: a file `commit --remove` removes; in another
            // copy: the new content of a change.
            if *root == from.root {
                "kept until the removal is committed"
            } else {
                "the new content, kept until this copy holds it"
            }
        ),
        Action::WriteTag { root, rel, value } => {
            format!("write version tag {value} to {}", full(root, rel).display())
        }
        Action::RemoveStaged { root, rel } => {
            format!("remove staged {}", full(root, rel).display())
        }
        Action::MoveAside { root, path, to } => format!(
            "move {} aside to {} (it stood where a protected file must be written; kept, never deleted)",
            full(root, path).display(),
            full(root, to).display()
        ),
    }
}

/// Status of one replica.
#[derive(Debug, Clone, Serialize)]
pub struct ReplicaStatus {
    pub root: PathBuf,
    pub role: Role,
    pub exists: bool,
    pub slots: Vec<SlotState>,
    pub generation: Option<u64>,
    pub files: Option<usize>,
    pub sealed: Option<bool>,
    /// Golden only: what the golden manifest's signature said (`None`: no manifest).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<SignatureState>,
    pub tag: TagState,
    pub staged: usize,
}

impl ReplicaStatus {
    fn from_state(role: Role, root: &Path, st: Option<ReplicaState>) -> ReplicaStatus {
        match st {
            Some(st) => ReplicaStatus {
                root: root.to_path_buf(),
                role,
                exists: st.root_exists,
                generation: st.generation(),
                files: st.manifest.as_ref().map(|m| m.entries.len()),
                sealed: (role == Role::Golden).then_some(st.sealed),
                signature: st.signature,
                slots: st.slots,
                tag: st.tag,
                staged: st.staged.len(),
            },
            None => ReplicaStatus {
                root: root.to_path_buf(),
                role,
                exists: false,
                slots: Vec::new(),
                generation: None,
                files: None,
                sealed: None,
                signature: None,
                tag: TagState::NotConfigured,
                staged: 0,
            },
        }
    }
}

/// Status of one set.
#[derive(Debug, Clone, Serialize)]
pub struct SetStatus {
    pub set: String,
    pub mode: Mode,
    pub hash: &'static str,
    pub include: Vec<String>,
    pub version_file: Option<RelPath>,
    pub replicas: Vec<ReplicaStatus>,
    /// The parity directory, if the set has one.
    pub parity: Option<ParityStatus>,
    pub history: HistoryStatus,
}

/// A set's parity directory as `status` lists it (records are not read).
#[derive(Debug, Clone, Serialize)]
pub struct ParityStatus {
    pub root: PathBuf,
    pub exists: bool,
    /// Records listed (one per content).
    pub records: usize,
    pub redundancy: u8,
    pub block_size: u32,
    /// Why the directory could not be listed, if it could not.
    pub problems: Vec<String>,
}

/// What a set's history says (`status`): its boot count, repairs by kind, files
/// repeatedly damaged, and its last events.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryStatus {
    /// Boots counted (`None`: no boot recorded yet).
    pub boots: Option<u64>,
    /// Repairs since the history began, by kind (the `rebound_repairs_total` counters).
    pub repairs: BTreeMap<String, u64>,
    /// Files repaired in at least `suspect_repairs` of the last `suspect_boots` boots.
    pub suspects: Vec<Suspect>,
    /// Events in the log.
    pub events: usize,
    /// The newest event.
    pub last_event: Option<Event>,
    /// The newest event that repaired something.
    pub last_repair: Option<Event>,
    /// Damaged or unreadable history records (replaced by the next event).
    pub problems: Vec<String>,
}

impl HistoryStatus {
    fn of(fs: &dyn Fs, set: &SetConfig) -> HistoryStatus {
        let loaded = history::load(fs, set);
        let boots = loaded.boots.as_ref().map(|b| b.count);
        let log = loaded.log.unwrap_or_default();
        HistoryStatus {
            boots,
            suspects: suspects(fs, set, &log, boots.unwrap_or(0)),
            events: log.events.len(),
            last_event: log.events.back().cloned(),
            last_repair: log
                .events
                .iter()
                .rev()
                .find(|e| e.actions.iter().any(|a| a.repair))
                .cloned(),
            repairs: log.totals,
            problems: loaded.problems,
        }
    }
}

/// A boot's change journal: started when made, stopped when dropped, also on a
/// panic, so that no later run of the same `Fs` (a library caller's) reads it.
struct JournalRun<'f>(&'f dyn Fs);

impl<'f> JournalRun<'f> {
    fn start(fs: &'f dyn Fs) -> JournalRun<'f> {
        fs.start_journal();
        JournalRun(fs)
    }
}

impl Drop for JournalRun<'_> {
    fn drop(&mut self) {
        self.0.stop_journal();
    }
}

/// What the stat cache of a `changed_only` set needs of this boot, per writable
/// replica that exists: the files hashed this run with the metadata they had, and the
/// paths the plan wrote or removed there (never recorded: their stat is stale).
pub(crate) fn cache_seen<'s>(state: &'s SetState, plan: &'s Plan) -> Vec<statcache::Seen<'s>> {
    state
        .replicas
        .iter()
        .filter(|r| r.role == Role::Writable && r.root_exists)
        .filter_map(|r| {
            let usage = r.stat_cache.as_ref()?;
            // A set, not a list: a boot that restores a whole reformatted copy
            // touches every file, and a list made the save loop quadratic.
            let touched = plan
                .actions
                .iter()
                .filter_map(|a| match a {
                    Action::Restore { root, path, .. }
                    | Action::SetMeta { root, path, .. }
                    | Action::RemoveStale { root, path, .. }
                        if *root == r.root =>
                    {
                        Some(path)
                    }
                    _ => None,
                })
                .collect();
            let files = r
                .files
                .iter()
                .filter_map(|(p, f)| match (f, r.stats.get(p)) {
                    (
                        FileState::File {
                            digest: Some(d), ..
                        },
                        Some(m),
                    ) => Some((p, *d, m)),
                    _ => None,
                })
                .collect();
            Some(statcache::Seen {
                root: &r.root,
                usage,
                looked_at: r.stats.len(),
                files,
                touched,
            })
        })
        .collect()
}

/// Seconds since the epoch (negative before it: a clock set wrong).
fn unix_secs(t: std::time::SystemTime) -> i64 {
    match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_secs()).map_or(i64::MIN, |s| -s),
    }
}

/// What a file held before an action changed it, as the event log records it.
fn held_before(state: Option<&SetState>, root: &Path, path: &RelPath) -> Option<String> {
    let r = state?.replicas.iter().find(|r| r.root == root)?;
    Some(match r.files.get(path)? {
        FileState::Missing => "missing".into(),
        FileState::File {
            digest: Some(d), ..
        } => d.to_hex(),
        FileState::File { digest: None, .. } => return None,
        FileState::NotFile { .. } => "not-a-file".into(),
        FileState::Unreadable { .. } => "unreadable".into(),
    })
}

/// One outcome as the event log keeps it.
fn event_action(state: Option<&SetState>, o: &Outcome, repair: bool) -> history::EventAction {
    let (kind, root, path, source) = history::describe(&o.action);
    let (old, new) = match &o.action {
        Action::Restore {
            root, path, digest, ..
        } => (held_before(state, root, path), Some(digest.to_hex())),
        Action::Stage { digest, .. } | Action::WriteGolden { digest, .. } => {
            (None, Some(digest.to_hex()))
        }
        Action::RemoveStale { digest, .. } => (Some(digest.to_hex()), Some("missing".into())),
        Action::SetMeta {
            root, path, mode, ..
        } => (
            held_before(state, root, path),
            Some(format!("mode {mode:04o}")),
        ),
        _ => (None, None),
    };
    history::EventAction {
        kind: kind.into(),
        repair,
        root: root.to_string_lossy().into_owned(),
        path,
        source,
        old,
        new,
        error: o.error.clone(),
    }
}

/// The files of `log` repaired again and again, at boot `boot`, as reported.
fn suspects(fs: &dyn Fs, set: &SetConfig, log: &history::Log, boot: u64) -> Vec<Suspect> {
    let mut partitions: BTreeMap<String, Option<String>> = BTreeMap::new();
    log.suspects(set, boot)
        .into_iter()
        .map(|(root, path, repairs, total, last)| {
            let partition = partitions
                .entry(root.clone())
                .or_insert_with(|| fs.mount_source(Path::new(&root)))
                .clone();
            Suspect {
                root: PathBuf::from(root),
                path,
                partition,
                repairs,
                window: set.history.suspect_boots,
                total,
                last: crate::rfc3339::format(last),
            }
        })
        .collect()
}
