//! rebound keeps an embedded device's critical files intact across accidental
//! deletion, accidental edits, flash corruption and sudden power loss.
//!
//! A *set* of protected files is kept in two or more *replicas* (directory roots on
//! different partitions). Golden mode keeps a writable live copy and a read-only
//! golden (factory) copy; mirror mode keeps two or more writable copies where the
//! newest wins. Both are one engine: `observe` reads every replica and writes nothing,
//! `plan` is a pure function from that state to a [`Plan`] of [`Action`]s, and `exec`
//! carries the plan out through `durable`, the only module that orders writes and
//! syncs, over the [`Fs`] trait.
//!
//! # The API
//!
//! The modules are private; the public API is the list of re-exports below (and the
//! [`exit`] and [`lock`] namespaces). A run goes:
//!
//! 1. [`Config::load`] (or [`Config::parse`]) reads a configuration, [`DEFAULT_CONFIG`]
//!    by default; [`Config::select`] picks sets by name;
//! 2. [`Engine::new`]`(&`[`OsFs::new`]`())` makes an engine over the real filesystem;
//! 3. [`Engine::boot`], [`Engine::verify`], [`Engine::commit`], [`Engine::commit_remove`],
//!    [`Engine::update`] and [`Engine::seal`] each return a [`Report`] (one
//!    [`SetReport`] per set: its [`Plan`], the [`Outcome`] of each action, notes);
//!    [`Engine::status`] returns a [`SetStatus`] per set;
//! 4. [`Report::exit_code`] sums a report up as one of the [`exit`] codes, and every
//!    report and status is `serde::Serialize` (the CLI's `--json` is
//!    `serde_json` of them).
//!
//! Writers (`boot`, `commit`, `update`, `seal`) of one set of roots are kept apart by
//! [`lock::lock_roots`]; [`describe_action`], [`escape()`] and [`escape_controls`] are
//! what the CLI renders text with.
//!
//! The hidden `testing` module gives the crash tests, the format tests and the fuzz
//! targets the simulated filesystem and the internals they check; it is not part of
//! the API.

#![deny(clippy::unwrap_used)]

mod change;
mod config;
mod digest;
mod durable;
mod engine;
mod error;
mod escape;
mod exec;
mod fs;
mod glob;
mod hashing;
mod history;
mod keys;
mod manifest;
mod metrics;
mod names;
mod observe;
mod parity;
mod parity_store;
mod plan;
mod record;
mod relpath;
mod rfc3339;
mod roots;
mod sign;
mod statcache;
mod stream;

// Public as a module because its whole content is API (the writers' locks every
// program that embeds the engine must take) and its names read best qualified:
// `lock::lock_roots`, `lock::busy`.
pub mod lock;

// Configuration.
pub use config::{Config, HistoryConfig, Links, LogTo, Mode, Replica, Role, SetConfig};
pub use keys::{DeviceKey, KeySlot, Signers};
pub use names::DEFAULT_CONFIG;

// Signed golden manifests: key files, `keygen`, the signing key `seal` signs with.
pub use sign::{keygen, PublicKey, SignKey};

// Running the engine, and what it reports.
pub use engine::{
    describe_action, exit, Command, Engine, HistoryStatus, Installed, ParityStatus, ReplicaStatus,
    Report, SetLog, SetReport, SetStatus, Since, Suspect,
};
pub use history::{Event, EventAction, EventOutcome};
pub use metrics::Run as MetricsRun;

/// Seconds since the epoch as RFC 3339 UTC text (`2026-12-05T05:18:19Z`): how every
/// time rebound reports and records is written.
pub fn rfc3339(secs: i64) -> String {
    rfc3339::format(secs)
}

/// Parses a point in time as a user types it: RFC 3339 (`2026-12-05T05:18:19Z`, a
/// numeric offset, a space for the `T`) or a date (`2026-12-05`, midnight UTC).
pub fn parse_time(s: &str) -> Option<i64> {
    rfc3339::parse(s)
}
pub use exec::Outcome;
pub use observe::{SignatureState, SlotState, TagState};
pub use plan::{
    Action, Authority, Checked, Finding, GoldenCheck, Plan, Prior, Problem, Source, SourceKind,
};

// The values reports hold.
pub use digest::{Digest, HashAlgo};
pub use manifest::Owner;
pub use relpath::{RelPath, RelPathError};

// The filesystem: the engine runs over `&dyn Fs`; `OsFs` is the real one. `Meta` and
// `Kind` are what `lstat` said (`Checked::meta`).
pub use fs::{os::OsFs, Fs, Kind, Meta};

// Errors, and the text helpers the CLI renders with.
pub use error::{Error, Result};
pub use escape::{escape, escape_controls};

/// For rebound's own tests only (the crash explorer, the format tests, the fuzz
/// targets): the power-cut simulating filesystem, fault injection and internals. Not
/// part of the API; anything here may change or go at any time.
#[doc(hidden)]
pub mod testing {
    pub use crate::durable::{Breakage, Durable};
    pub use crate::exec::{execute, execute_signed};
    pub use crate::fs::sim::{CrashState, SimFs};
    pub use crate::manifest::{read_streamed as manifest_streamed, Entry, Manifest};
    pub use crate::observe::{parse_tag, Depth, SetState};
    /// The signature file's parser (`PublicKey::parse` and `SignKey::parse` are API).
    pub use crate::sign::parse_signature;

    // The record parsers the fuzz targets drive (fuzz/README.md).
    pub use crate::history::{load as history_load, Boots, Loaded, Log};
    pub use crate::metrics::{label_value, parse_sample, render as metrics_render, Sample};
    pub use crate::record::{
        open as record_open, open_keyed as record_open_keyed, seal as record_seal,
        seal_keyed as record_seal_keyed, Broken,
    };
    pub use crate::statcache::{load as statcache_load, Record as StatRecord, StatCache, Usage};
    // Parity records (section 2.5 of docs/design.md): the codec the `parity_record`
    // fuzz target drives.
    pub use crate::parity::{
        analyze as parity_analyze, check_record as parity_check_record, Encoder as ParityEncoder,
        Layout as ParityLayout, Rebuild as ParityRebuild,
    };

    /// Whether the include/exclude pattern `pattern` matches `path` (`glob.rs`),
    /// or why the pattern is refused.
    pub fn glob_matches(pattern: &str, path: &str) -> std::result::Result<bool, String> {
        crate::glob::Glob::new(pattern)
            .map(|g| g.is_match(path))
            .map_err(|e| e.to_string())
    }

    /// `Boots::parse` of a boot counter record (`boots.0`, `boots.1`) whose trailer holds.
    pub fn boots_parse(bytes: &[u8]) -> Option<Boots> {
        Boots::parse(record_open(bytes).ok()?)
    }

    /// `Boots::render`, sealed: the record [`boots_parse`] reads.
    pub fn boots_render(b: &Boots) -> Vec<u8> {
        record_seal(b.render())
    }

    /// `Log::parse`: the body of an event log record (`events.0`, `events.1`) of
    /// the set `set`, its trailer already checked.
    pub fn log_parse(body: &str, set: &str) -> Option<Log> {
        Log::parse(body, set)
    }

    /// `Log::render`: the body [`log_parse`] reads.
    pub fn log_render(log: &Log, set: &str) -> String {
        log.render(set)
    }

    /// `bytes` with a valid checksum trailer in place of theirs (or added, if there
    /// is none), `None` if what comes before it is not text. A fuzzer cannot forge a
    /// BLAKE3 sum: without this every mutated record stops at [`record_open`], and
    /// the parser behind it is never reached.
    pub fn reseal(bytes: &[u8]) -> Option<Vec<u8>> {
        let body = match record_open(bytes) {
            Ok(body) => body,
            Err(_) => {
                // Drop a last line that is a (broken) trailer.
                let start = bytes
                    .strip_suffix(b"\n")
                    .unwrap_or(bytes)
                    .iter()
                    .rposition(|&c| c == b'\n')
                    .map_or(0, |i| i + 1);
                if bytes[start..].starts_with(b"end ") {
                    &bytes[..start]
                } else {
                    bytes
                }
            }
        };
        let mut body = std::str::from_utf8(body).ok()?.to_string();
        if !body.is_empty() && !body.ends_with('\n') {
            body.push('\n');
        }
        Some(record_seal(body))
    }
}
