//! Every on-disk name and format version rebound uses, in one place.
//!
//! A replica root holds the protected files at their relative paths and rebound's own
//! metadata under [`META_DIR`]. Nothing else is ever created by rebound, except
//! temporary files (exactly [`is_temp_name`]) that live for the length of one durable
//! write and are removed by the next run if a crash leaves them behind.

/// Directory inside every replica root that holds rebound's metadata, one
/// subdirectory per set (`.rebound/<set>/`), so several sets may share a root.
pub const META_DIR: &str = ".rebound";

/// The two manifest slots of a writable replica. Every generation is written to both,
/// in turn: first to a slot that does not hold the replica's current manifest (a
/// damaged, missing or older one), so that a cut during that write leaves the current
/// one intact; then to the other. Once both are written, one damaged slot (a flipped
/// bit, a torn page) always leaves the other at the newest generation. A cut between
/// the two writes leaves one slot behind; the next boot rewrites it, as it rewrites a
/// damaged slot (docs/design.md section 4.1). The intact slot with the highest
/// generation is current. (rebound before 2026-12 wrote generation `g` to slot `g % 2`
/// only; such a replica is read the same way, and its first boot writes the slot that
/// is behind.)
pub const MANIFEST_SLOTS: [&str; 2] = ["manifest.0", "manifest.1"];

/// The single manifest of a golden replica (written once, by `seal`).
pub const GOLDEN_MANIFEST: &str = "manifest";

/// The signature of the golden manifest (`seal --sign-key`), beside it in the golden
/// copy's metadata directory: one line, [`crate::sign`]'s format. Written after the
/// golden manifest and before [`SEALED_MARKER`], so a sealed golden copy carries it;
/// with the set's `golden_public_key` a golden manifest without a valid one is damaged.
pub const GOLDEN_SIGNATURE: &str = "manifest.sig";

/// Marker that `seal` completed on a golden replica (the vendor's
/// `backup_restore.json`: "the backup restoration capability is enabled").
/// IMPORTANT: written last by seal; a golden replica without it is not used.
pub const SEALED_MARKER: &str = "sealed";

/// Staging directory (inside the set's metadata directory) for content of an intentional change
/// (commit, update) that is made durable before the manifest naming it.
/// Staged files are named by the lowercase hex digest of their content.
pub const STAGE_DIR: &str = "stage";

/// Directory (inside the set's metadata directory of its parity directory) of the
/// parity records: `.rebound/<set>/parity/<xx>/<hex>`, named by the lowercase hex
/// digest of the content they protect, `<xx>` its first two digits (256 directories
/// at most: vfat's limit on entries per directory is never near). See
/// [`crate::parity`] and docs/design.md section 2.5.
pub const PARITY_DIR: &str = "parity";

/// The record of the last repair that rebound before 2026-12 kept (the event log,
/// [`crate::history`], replaced it): removed by the first event written.
pub const LEGACY_LAST_REPAIR: &str = "last-repair";

/// Stat cache of a `changed_only` set (per writable replica, in the set's metadata
/// directory): what each verified file's metadata was; see [`crate::statcache`].
/// Losing it costs one full check.
pub const STAT_CACHE: &str = "statcache";

/// Boots since the last full check of a `changed_only` set, beside [`STAT_CACHE`].
pub const STAT_CACHE_BOOTS: &str = "statcache.boots";

/// Prefix of temporary files created by the durable write protocol. The whole name
/// is `.rebound-tmp-<pid>-<n>` (both decimal); see [`is_temp_name`].
pub const TEMP_PREFIX: &str = ".rebound-tmp-";

/// Directory (inside the set's metadata directory) that receives whatever stood where
/// rebound must restore a protected file or the version tag (a directory at a file's
/// path, a file where a directory must be): `.rebound/<set>/displaced/<id>/<path>`.
/// Never removed by rebound: it is the user's data.
pub const DISPLACED_DIR: &str = "displaced";

/// Whether `name` is exactly a temporary file name of the write protocol:
/// [`TEMP_PREFIX`], decimal digits, `-`, decimal digits, nothing else. Only such names
/// are ever removed as leftovers (a user's `.rebound-tmp-notes` is not one).
pub fn is_temp_name(name: &str) -> bool {
    let Some(rest) = name.strip_prefix(TEMP_PREFIX) else {
        return false;
    };
    let Some((pid, n)) = rest.split_once('-') else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit());
    digits(pid) && digits(n)
}

/// First line of every manifest; the number is the format version.
pub const MANIFEST_MAGIC: &str = "rebound-manifest";

/// Current manifest format version: entries record the owner (uid, gid).
pub const MANIFEST_VERSION: u32 = 2;

/// The keyed manifest format: version 2's body, and a `mac` line per device key before
/// the `end` line (docs/design.md section 2.3). Written to writable copies when a
/// device key is configured (or `rebound rekey --key`); read with a key only if its
/// MAC holds, without a key by its `end` line as version 2.
pub const MANIFEST_VERSION_KEYED: u32 = 3;

/// The first manifest format (no owner), still read; never written.
pub const MANIFEST_VERSION_1: u32 = 1;

/// Largest manifest rebound will read, to bound memory on a corrupt file.
pub const MANIFEST_MAX_BYTES: u64 = 64 << 20;

/// Largest version tag file rebound will read.
pub const TAG_MAX_BYTES: u64 = 4096;

/// Default configuration file.
pub const DEFAULT_CONFIG: &str = "/etc/rebound.toml";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_temporary_name_format_is_a_temporary_name() {
        for ok in [
            ".rebound-tmp-1-0",
            ".rebound-tmp-4242-17",
            ".rebound-tmp-0-99999",
        ] {
            assert!(is_temp_name(ok), "{ok}");
        }
        for not in [
            ".rebound-tmp-",
            ".rebound-tmp-user-notes",
            ".rebound-tmp-12",
            ".rebound-tmp-12-",
            ".rebound-tmp--3",
            ".rebound-tmp-12-3-4",
            ".rebound-tmp-12-3.bak",
            ".rebound-tmp-12-3 ",
            ".rebound-tmp-+1-2",
            "x.rebound-tmp-1-2",
            ".rebound-tmp-1-2/x",
        ] {
            assert!(!is_temp_name(not), "{not}");
        }
    }
}
