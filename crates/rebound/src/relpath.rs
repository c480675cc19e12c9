//! [`RelPath`]: a validated path relative to a replica root.
//!
//! Every path rebound reads or writes inside a replica is a `RelPath`: `/`-separated,
//! non-empty components, none of them `.`, `..` or containing NUL, never absolute.
//! Together with the no-follow directory-relative access of [`crate::fs`], this is what
//! keeps every write inside the configured directories.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::names::META_DIR;

/// Why a string is not a valid [`RelPath`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RelPathError {
    #[error("empty path")]
    Empty,
    #[error("absolute path (must be relative to the replica root)")]
    Absolute,
    #[error("path component `{0}` is not allowed")]
    BadComponent(String),
    #[error("path contains a NUL byte")]
    Nul,
    #[error("path is longer than 4096 bytes")]
    TooLong,
}

/// A validated relative path inside a replica root.
///
/// The text is shared (`Arc<str>`): a clone is a reference count, not a copy, so the
/// many maps of one run (each replica's files, the manifests, the plan's target) hold
/// one allocation per path between them. Immutable once validated.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RelPath(Arc<str>);

impl RelPath {
    /// Validates `s` as a relative path.
    ///
    /// # Errors
    /// Returns why `s` is not acceptable: empty, absolute, `.`/`..`/empty component, NUL.
    pub fn new(s: &str) -> Result<Self, RelPathError> {
        Self::validate(s)?;
        Ok(RelPath(Arc::from(s)))
    }

    /// As [`RelPath::new`], taking an owned string.
    ///
    /// # Errors
    /// As [`RelPath::new`].
    pub fn from_string(s: String) -> Result<Self, RelPathError> {
        Self::validate(&s)?;
        Ok(RelPath(Arc::from(s)))
    }

    fn validate(s: &str) -> Result<(), RelPathError> {
        if s.is_empty() {
            return Err(RelPathError::Empty);
        }
        if s.len() > 4096 {
            return Err(RelPathError::TooLong);
        }
        if s.starts_with('/') {
            return Err(RelPathError::Absolute);
        }
        // By bytes: every path of a manifest and of a walk comes through here at every
        // boot (`/` and NUL are ASCII: never inside a multi-byte character).
        if s.bytes().any(|b| b == 0) {
            return Err(RelPathError::Nul);
        }
        for c in s.as_bytes().split(|b| *b == b'/') {
            if c.is_empty() || c == b"." || c == b".." {
                return Err(RelPathError::BadComponent(
                    String::from_utf8_lossy(c).into_owned(),
                ));
            }
        }
        Ok(())
    }

    /// Joins a validated single component onto this path.
    ///
    /// # Errors
    /// Returns an error if `name` is not a single valid component.
    pub fn join(&self, name: &str) -> Result<Self, RelPathError> {
        if name.bytes().any(|b| b == b'/') {
            return Err(RelPathError::BadComponent(name.to_string()));
        }
        let mut s = String::with_capacity(self.0.len() + 1 + name.len());
        s.push_str(&self.0);
        s.push('/');
        s.push_str(name);
        RelPath::from_string(s)
    }

    /// The path as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The components, first to last.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// The parent directory's path, without making a [`RelPath`] of it.
    pub fn parent_str(&self) -> Option<&str> {
        self.last_slash().and_then(|i| self.0.get(..i))
    }

    /// Where the last `/` is (a byte search: `/` is ASCII).
    fn last_slash(&self) -> Option<usize> {
        self.0.bytes().rposition(|b| b == b'/')
    }

    /// The parent directory, or `None` for a path with a single component.
    pub fn parent(&self) -> Option<RelPath> {
        self.parent_str().map(|p| RelPath(Arc::from(p)))
    }

    /// The last component.
    pub fn file_name(&self) -> &str {
        self.last_slash()
            .and_then(|i| self.0.get(i + 1..))
            .unwrap_or(&self.0)
    }

    /// Whether the path lies inside rebound's own metadata directory.
    pub fn is_meta(&self) -> bool {
        // The first component, by bytes (asked of every path at every boot).
        self.0
            .strip_prefix(META_DIR)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }

    /// Path inside a set's metadata directory: `.rebound/<set>/<name>`. Both must be
    /// single valid components (set names are validated by the configuration).
    pub fn meta(set: &str, name: &str) -> RelPath {
        RelPath(Arc::from(format!("{META_DIR}/{set}/{name}")))
    }

    /// A set's metadata directory: `.rebound/<set>`.
    pub fn meta_dir(set: &str) -> RelPath {
        RelPath(Arc::from(format!("{META_DIR}/{set}")))
    }
}

impl TryFrom<String> for RelPath {
    type Error = RelPathError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        RelPath::from_string(s)
    }
}

impl From<RelPath> for String {
    fn from(p: RelPath) -> String {
        p.0.to_string()
    }
}

impl fmt::Display for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_parents_and_names_by_bytes() {
        let p = |s: &str| RelPath::new(s).unwrap();
        for (path, meta) in [
            (".rebound", true),
            (".rebound/s/manifest.0", true),
            (".reboundx/a", false),
            (".reboun", false),
            ("a/.rebound", false),
        ] {
            assert_eq!(p(path).is_meta(), meta, "{path}");
        }
        assert_eq!(p("é/ü/x.conf").parent_str(), Some("é/ü"));
        assert_eq!(p("é/ü/x.conf").file_name(), "x.conf");
        assert_eq!(p("x.conf").parent_str(), None);
        assert_eq!(p("x.conf").file_name(), "x.conf");
        assert!(RelPath::new("a/\0").is_err());
        assert!(RelPath::new("é/../b").is_err());
    }

    #[test]
    fn accepts_plain_relative_paths() {
        for ok in ["a", "a/b", "apps/x.bin", ".hidden/x", "a..b"] {
            assert!(RelPath::new(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_escapes_and_oddities() {
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../b",
            "a//b",
            "a/./b",
            "a/",
            "a\0b",
        ] {
            assert!(RelPath::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn parent_and_name() {
        let p = RelPath::new("a/b/c").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.file_name(), "c");
        assert_eq!(p.parent().map(|p| p.to_string()), Some("a/b".to_string()));
        assert!(RelPath::new("c").is_ok_and(|p| p.parent().is_none()));
    }
}
