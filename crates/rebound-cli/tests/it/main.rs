//! Integration tests of the `rebound` binary, one module per concern. Every test runs
//! the real binary (built with the `fault-injection` feature) in a fresh temporary
//! directory and checks what it left on disk, its exit status and what it printed.
//!
//! - `golden`: golden mode, the seed's triggers (issue 2), commit, damaged golden copy.
//! - `update`: `rebound update` all or nothing, killed at every mutation.
//! - `attacks`: symlinks and `..`/absolute paths never take rebound outside its roots.
//! - `malformed`: broken configuration and manifests give clear errors, never panics.
//! - `mounts`: ENOSPC and a truly read-only golden copy (root and mounts; else skipped).
//! - `mirror`: mirror mode on the vendor layout (issue 3), N copies, golden + copies.
//! - `output`: `--dry-run`, `--json`, `status` and `demo`.
//! - `dry_run`: `commit`, `update` and `seal --dry-run` write nothing and list what
//!   the real run does.
//! - `locking`: writers lock the replica roots, wait a bounded time and name the
//!   holder; readers never wait.
//! - `reports`: exit status of `boot --dry-run`, closed pipes, escaped names, wording,
//!   the bounded repair record.
//! - `tree`: what a real tree holds besides protected files: look-alike temporary
//!   names, names that cannot be protected, symbolic links, things in the way.
//! - `perms`: permission bits and owners are checked and restored; format 1 manifests.
//! - `races`: a file changed while `commit` or `boot` works on it.
//! - `remove`: `commit --remove`, an intended deletion.
//! - `config`: the configuration against the replicas: changed hash, one file in two
//!   sets, narrowed include, bad set names, FIFO/device/oversized configuration.
//! - `roots`: roots compared by identity, one handle per root for the whole run.
//! - `write`: `rebound write`, new content replaced and committed as one change,
//!   killed at every mutation.
//! - `slots`: one damaged manifest slot never costs a commit; verify reports it, boot
//!   rewrites it.
//! - `signing`: `keygen`, `seal --sign-key`, `golden_public_key`: forged, unsigned,
//!   truncated, flipped and foreign signatures make the golden copy damaged.
//! - `keys`: keyed live manifests (device_key): the attacks of issue 15 refused, bad
//!   key files, migration and rotation with `rekey`, a cut between every step.
//! - `parity`: parity sets and `parity = DIR` (issue 16): damage within and beyond the
//!   redundancy repaired or reported through `boot` and `verify`, parity kept in step by
//!   `commit`, `write` and `update`, damaged and missing records, bad configuration.
//! - `log_to`: messages for early boot (`--log-to`, `log_to`): `<N>` lines on standard
//!   error, a stand-in /dev/kmsg and the real busybox syslogd (root; else skipped).

// Test code: a failed unwrap is a failed test, which is what we want.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../common/bin.rs"]
mod bin;

mod attacks;
mod config;
mod dry_run;
mod golden;
mod history;
mod keys;
mod locking;
mod log_to;
mod malformed;
mod mirror;
mod mounts;
mod output;
mod parity;
mod perms;
mod races;
mod remove;
mod reports;
mod roots;
mod signing;
mod slots;
mod tree;
mod update;
mod util;
mod write;
