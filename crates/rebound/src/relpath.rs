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
        if s.contains('\0') {
            return Err(RelPathError::Nul);
        }
        for c in s.split('/') {
            if c.is_empty() || c == "." || c == ".." {
                return Err(RelPathError::BadComponent(c.to_string()));
            }
        }
        Ok(())
    }

    /// Joins a validated single component onto this path.
    ///
    /// # Errors
    /// Returns an error if `name` is not a single valid component.
    pub fn join(&self, name: &str) -> Result<Self, RelPathError> {
        if name.contains('/') {
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
        self.0.rfind('/').map(|i| &self.0[..i])
    }

    /// The parent directory, or `None` for a path with a single component.
    pub fn parent(&self) -> Option<RelPath> {
        self.0.rfind('/').map(|i| RelPath(Arc::from(&self.0[..i])))
    }

    /// The last component.
    pub fn file_name(&self) -> &str {
        match self.0.rfind('/') {
            Some(i) => &self.0[i + 1..],
            None => &self.0,
        }
    }

    /// Whether the path lies inside rebound's own metadata directory.
    pub fn is_meta(&self) -> bool {
        self.components().next() == Some(META_DIR)
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
