//! Run-time checks of the configured roots, by identity rather than by spelling.
//!
//! The configuration compares roots as they are written ([`crate::config`]); a link
//! can make two spellings one directory (a golden root that is a link to the live
//! root: `seal` would write the factory copy into the live one). Before any set is
//! planned, every root is resolved (a link for the root itself is followed, as
//! everywhere) and compared by `(device, inode)` ([`crate::fs::Fs::root_identity`]):
//!
//! - two replicas of one set that are one directory, or one inside the other, refuse
//!   that set;
//! - a writable replica of one set that is, lies inside or contains another set's
//!   golden copy refuses both sets (a golden copy is written only by `seal`);
//! - writable replicas of two sets, one inside the other where the outer set's
//!   patterns reach the inner root, refuse both sets;
//! - sets whose writable replicas are one directory may share it, but no file: a path
//!   that one set selects there (a file found, or a path its manifest records) and
//!   another set also selects refuses both sets, naming the path (one set's commit
//!   would be reverted by the other's boot). Glob patterns cannot be intersected
//!   statically, so this looks at the files there and the manifests (only for sets
//!   that do share a directory). A recorded path its set no longer selects is being
//!   released, not claimed: moving a file from one set to another works.
//!
//! - a set's parity directory that is, lies inside or contains a replica of any set
//!   refuses both sets.
//!
//! Only the affected sets are refused; a boot still protects every other set.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::config::{Config, Role, SetConfig};
use crate::fs::{DirId, Fs};
use crate::observe;
use crate::relpath::RelPath;

/// One existing root and who it is.
struct Root<'c> {
    set: &'c SetConfig,
    root: &'c Path,
    role: Role,
    /// The root's identity, then those of the directories above it.
    ids: Vec<DirId>,
}

/// How the first root relates to the second, by identity.
fn relation(a: &Root<'_>, b: &Root<'_>) -> Option<&'static str> {
    let (Some(ia), Some(ib)) = (a.ids.first(), b.ids.first()) else {
        return None;
    };
    if ia == ib {
        Some("is the same directory as")
    } else if a.ids[1..].contains(ib) {
        Some("lies inside")
    } else if b.ids[1..].contains(ia) {
        Some("contains")
    } else {
        None
    }
}

/// For two nested roots (one inside the other, by identity): whether the outer one's
/// set may select a path at or below the inner root. Where the inner root's path
/// below the outer one is not known as written (a link), it may.
fn outer_reaches_inner(a: &Root<'_>, b: &Root<'_>) -> bool {
    let a_inside_b = match (a.ids.split_first(), b.ids.first()) {
        (Some((_, above)), Some(ib)) => above.contains(ib),
        _ => false,
    };
    let (outer, inner) = if a_inside_b { (b, a) } else { (a, b) };
    match inner.root.strip_prefix(outer.root) {
        Ok(rel) => match rel.to_str() {
            Some(rel) if !rel.is_empty() => outer.set.may_select_below(rel),
            _ => true,
        },
        Err(_) => true,
    }
}

/// The sets of `config` that must not be worked on in this run, with why. Roots that
/// do not exist or cannot be examined are left to the observation of their set,
/// which reports them.
pub fn refused(fs: &dyn Fs, config: &Config) -> BTreeMap<String, String> {
    let mut roots = Vec::new();
    for set in &config.sets {
        for r in &set.replicas {
            if let Ok(Some(ids)) = fs.root_identity(&r.root) {
                roots.push(Root {
                    set,
                    root: &r.root,
                    role: r.role,
                    ids,
                });
            }
        }
    }
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    let mut refuse = |set: &SetConfig, why: String| {
        out.entry(set.name.clone()).or_insert(why);
    };
    let mut shared = Vec::new();
    for (i, a) in roots.iter().enumerate() {
        for b in &roots[i + 1..] {
            let Some(rel) = relation(a, b) else { continue };
            let (da, ib) = (a.root.display(), b.root.display());
            if a.set.name == b.set.name {
                refuse(
                    a.set,
                    format!(
                        "replica root `{da}` {rel} `{ib}` (compared after following links): each copy needs its own directory (ideally its own partition); nothing was done"
                    ),
                );
            } else if a.role != b.role {
                let (w, g) = if a.role == Role::Golden {
                    (b, a)
                } else {
                    (a, b)
                };
                let rel = relation(w, g).unwrap_or(rel);
                let why = format!(
                    "writable copy `{}` of set `{}` {rel} the golden copy `{}` of set `{}` (compared after following links): a golden copy is written only by `seal`, so no set may write inside it; nothing was done",
                    w.root.display(),
                    w.set.name,
                    g.root.display(),
                    g.set.name
                );
                refuse(w.set, why.clone());
                refuse(g.set, why);
            } else if a.ids.first() == b.ids.first() {
                if a.role == Role::Writable {
                    shared.push((a, b));
                }
            } else if a.role == Role::Writable && outer_reaches_inner(a, b) {
                // Writable copies of two sets, one inside the other, where the outer
                // set's patterns reach the inner root: its walk would claim the inner
                // set's files and its `.rebound/`.
                let why = format!(
                    "writable copy `{da}` of set `{}` {rel} writable copy `{ib}` of set `{}` (compared after following links): two sets may share one directory but not nest; use the same root with other include patterns, or directories apart; nothing was done",
                    a.set.name, b.set.name
                );
                refuse(a.set, why.clone());
                refuse(b.set, why);
            }
        }
    }
    // A parity directory lies apart from every replica of every set, by identity too
    // (the configuration compared spellings): through a link it could be a golden copy
    // (written outside `seal`) or a copy whose walk would take its records for files.
    for set in &config.sets {
        let Some(pc) = &set.parity else { continue };
        let Ok(Some(ids)) = fs.root_identity(&pc.root) else {
            continue;
        };
        let p = Root {
            set,
            root: &pc.root,
            role: Role::Writable,
            ids,
        };
        for r in &roots {
            let Some(rel) = relation(&p, r) else { continue };
            let why = format!(
                "parity directory `{}` of set `{}` {rel} the {} `{}` of set `{}` (compared after following links): keep the parity directory apart from every copy; nothing was done",
                p.root.display(),
                set.name,
                if r.role == Role::Golden { "golden copy" } else { "copy" },
                r.root.display(),
                r.set.name
            );
            refuse(set, why.clone());
            if r.set.name != set.name {
                refuse(r.set, why);
            }
        }
    }
    // Sets sharing a writable directory: no path may be claimed by both.
    let mut claims: BTreeMap<(&str, &Path), Option<BTreeSet<RelPath>>> = BTreeMap::new();
    for (a, b) in shared {
        for r in [a, b] {
            claims
                .entry((r.set.name.as_str(), r.root))
                .or_insert_with(|| observe::claims(fs, r.set, r.root).ok());
        }
        let (Some(Some(ca)), Some(Some(cb))) = (
            claims.get(&(a.set.name.as_str(), a.root)),
            claims.get(&(b.set.name.as_str(), b.root)),
        ) else {
            continue;
        };
        // Claims are selected paths: a path claimed by one set and selected by the
        // other is claimed by both, once the other set's walk or restore reaches it.
        let both: BTreeSet<&RelPath> = ca
            .iter()
            .filter(|p| b.set.selects(p))
            .chain(cb.iter().filter(|p| a.set.selects(p)))
            .collect();
        let Some(first) = both.first() else { continue };
        let more = match both.len() - 1 {
            0 => String::new(),
            n => format!(" (and {n} more)"),
        };
        let why = format!(
            "`{}`{more} is selected by (or recorded in the manifest of) both set `{}` and set `{}`, whose writable copies `{}` and `{}` are one directory: a file may belong to one set only (one set's commit would be reverted by the other's boot); change the include or exclude patterns so that only one set selects it; nothing was done",
            a.root.join(first.as_str()).display(),
            a.set.name,
            b.set.name,
            a.root.display(),
            b.root.display()
        );
        refuse(a.set, why.clone());
        refuse(b.set, why);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::sim::SimFs;

    fn config(a: &str, b: &str) -> Config {
        let text = format!(
            "[[set]]\nname='a'\nmode='golden'\nlive='/usr'\ngolden='/b1'\n{a}\n\
             [[set]]\nname='b'\nmode='golden'\nlive='/usr'\ngolden='/b2'\n{b}\n\
             [[set]]\nname='c'\nmode='golden'\nlive='/other'\ngolden='/b3'\ninclude=['**']\n"
        );
        match Config::parse(&text, Path::new("/etc/rebound.toml")) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        }
    }

    fn device() -> SimFs {
        let fs = SimFs::new();
        for d in ["/usr", "/other", "/b1", "/b2", "/b3"] {
            fs.mkdir_all(Path::new(d));
        }
        fs.put(Path::new("/usr/app/main.py"), b"v1");
        fs.put(Path::new("/usr/app/x.cfg"), b"x");
        fs.put(Path::new("/other/keep"), b"k");
        fs
    }

    #[test]
    fn globs_selecting_one_existing_file_refuse_both_sets_and_only_them() {
        let fs = device();
        let r = refused(&fs, &config("include=['app/**']", "include=['app/*.py']"));
        assert_eq!(r.keys().collect::<Vec<_>>(), ["a", "b"]);
        assert!(r["a"].contains("/usr/app/main.py"), "{}", r["a"]);
        assert!(r["b"].contains("set `a` and set `b`"), "{}", r["b"]);
    }

    #[test]
    fn disjoint_globs_in_one_root_are_fine() {
        let fs = device();
        let r = refused(
            &fs,
            &config("include=['app/*.cfg']", "include=['app/*.py']"),
        );
        assert!(r.is_empty(), "{r:?}");
    }

    #[test]
    fn a_selected_path_only_a_manifest_names_is_claimed_too() {
        let fs = device();
        fs.remove(Path::new("/usr/app/main.py"));
        let mut m = crate::manifest::Manifest::new("a", 1, crate::digest::HashAlgo::Blake3, None);
        if let Ok(p) = RelPath::new("app/main.py") {
            m.entries.insert(
                p,
                crate::manifest::Entry {
                    size: 2,
                    mode: 0o644,
                    owner: None,
                    digest: crate::digest::HashAlgo::Blake3.digest(b"v1"),
                },
            );
        }
        fs.put(Path::new("/usr/.rebound/a/manifest.1"), &m.encode());
        let r = refused(&fs, &config("include=['app/*.py']", "include=['app/m*']"));
        assert_eq!(r.keys().collect::<Vec<_>>(), ["a", "b"], "{r:?}");
        // Set `a` no longer selects it (narrowed): released, not claimed.
        let r = refused(&fs, &config("include=['app/*.cfg']", "include=['app/m*']"));
        assert!(r.is_empty(), "{r:?}");
    }

    /// Writable roots of two sets, one inside the other: refused when the outer set's
    /// patterns reach the inner root (its walk would claim the inner set's files),
    /// allowed when they cannot (a configuration nobody needs to change).
    #[test]
    fn nested_writable_roots_are_refused_only_where_the_outer_set_reaches_in() {
        let fs = device();
        fs.mkdir_all(Path::new("/b4"));
        let cfg = |outer: &str| {
            let text = format!(
                "[[set]]\nname='outer'\nmode='golden'\nlive='/usr'\ngolden='/b1'\n{outer}\n\
                 [[set]]\nname='inner'\nmode='golden'\nlive='/usr/app'\ngolden='/b2'\ninclude=['*.py']\n\
                 [[set]]\nname='c'\nmode='golden'\nlive='/other'\ngolden='/b3'\ninclude=['**']\n"
            );
            match Config::parse(&text, Path::new("/etc/rebound.toml")) {
                Ok(c) => c,
                Err(e) => panic!("{e}"),
            }
        };
        for reaching in [
            "include=['**']",
            "include=['app/**']",
            "include=['*/main.py']",
        ] {
            let r = refused(&fs, &cfg(reaching));
            assert_eq!(
                r.keys().collect::<Vec<_>>(),
                ["inner", "outer"],
                "{reaching}: {r:?}"
            );
            assert!(r["inner"].contains("not nest"), "{}", r["inner"]);
        }
        for apart in [
            "include=['etc/**']",
            "include=['*.conf']",
            "include=['**']\nexclude=['app/**']",
        ] {
            let r = refused(&fs, &cfg(apart));
            assert!(r.is_empty(), "{apart}: {r:?}");
        }
    }
}
