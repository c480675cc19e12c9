//! The library's one error type. I/O errors carry the operation and the full path,
//! attached once, at the filesystem boundary ([`crate::fs`]).

use std::io;
use std::path::PathBuf;

/// Result alias used throughout the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in rebound.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A filesystem operation failed.
    #[error("{op} {}: {source}{}", path.display(), hint(source))]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A path component inside a replica is a symlink (or not a directory): rebound
    /// never follows links inside a protected tree.
    #[error("{}: a path component is a symbolic link or not a directory; rebound does not follow links inside a protected tree (remove it, then rerun)", path.display())]
    Symlink { path: PathBuf },
    /// The configuration is missing or invalid.
    #[error("configuration {}: {what}", path.display())]
    Config { path: PathBuf, what: String },
    /// A command was used wrongly (bad argument, unknown set, unprotected path).
    #[error("{0}")]
    Usage(String),
    /// Something that cannot happen did: a bug in rebound. Nothing more is done for
    /// the set concerned; the message says what, for a bug report.
    #[error("internal error: {0} (a bug in rebound: please report it with this message)")]
    Internal(&'static str),
    /// A set cannot be worked on (not sealed, no manifest anywhere, ...).
    #[error("set `{set}`: {what}")]
    Set { set: String, what: String },
    /// A source file did not hash to the digest it was expected to have.
    #[error("{}: content does not match its manifest (expected {expected}, found {found})", path.display())]
    Mismatch {
        path: PathBuf,
        expected: String,
        found: String,
    },
    /// A file changed while rebound was working on it (an application writing it at
    /// the same time): it is left as it is. `what` says when and what to do.
    #[error("{}: changed {what}", path.display())]
    Changed { path: PathBuf, what: &'static str },
    /// A file's content was made intact, but the owner its manifest records could not
    /// be given to it (most often: rebound is not running as root).
    #[error("{}: content is intact, but its owner could not be set to {owner} (uid:gid): {source}; only root can give a file another owner: run rebound as root, or `chown {owner}` the file", path.display())]
    Owner {
        path: PathBuf,
        owner: crate::manifest::Owner,
        #[source]
        source: io::Error,
    },
    /// An fsync failed earlier in this run: data may have been lost, so nothing more
    /// is written (an fsync is never retried).
    #[error("an earlier fsync failed; refusing further writes in this run (check the storage, then rerun)")]
    Poisoned,
    /// Another run holds the lock on a replica root (or on the parent of a missing
    /// one), and went on holding it for as long as this run was allowed to wait.
    #[error("{}: locked by {holder}, still after {waited_secs} s; nothing was done (rerun when it has finished)", path.display())]
    Locked {
        path: PathBuf,
        holder: String,
        waited_secs: u64,
    },
}

fn hint(e: &io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(28) => " (the filesystem is full: free space, then rerun)",
        Some(30) => " (the filesystem is mounted read-only: remount it read-write, then rerun)",
        Some(13) | Some(1) => " (permission denied: run as a user that may write there)",
        Some(5) => " (I/O error from the storage device)",
        _ => "",
    }
}

impl Error {
    /// Builds an [`Error::Owner`] from the error of a failed chown of `path`.
    pub fn owner(path: impl Into<PathBuf>, owner: crate::manifest::Owner, e: Error) -> Error {
        let source = match e {
            Error::Io { source, .. } => source,
            other => io::Error::other(other.to_string()),
        };
        Error::Owner {
            path: path.into(),
            owner,
            source,
        }
    }

    /// Builds an [`Error::Io`].
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Error {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
