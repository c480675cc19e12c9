//! The streaming boot (docs/design.md section 3.2): the boot of an intact set in
//! memory that does not grow with its manifest.
//!
//! A boot of an intact set decides nothing per file: every protected file holds what
//! the manifest records in every writable copy, so the plan has no action. This module
//! proves that case without materialising the set: each writable copy is walked first
//! ([`observe::walk_selected`], watching for the change journal as a full boot does)
//! for what the full observation would report beyond its files (an unreadable
//! directory, a name that cannot be protected, leftovers); then the current manifest
//! is read line by line ([`crate::manifest::Stream`]), in batches whose files are
//! opened, hashed in parallel and compared entry by entry. Nothing is kept per file
//! (per directory: its path),
//! where the full observation holds a decoded manifest and a map of file states (about
//! 200 bytes a file).
//!
//! It only ever concludes "intact". At the first thing that is not (a file that does
//! not verify, a slot that differs, a leftover, a set with parity or a
//! stat cache, an error), it gives up and the boot observes and plans the set in full
//! ([`crate::engine`]), which reads everything again: the files hashed before the
//! first damaged one are read twice. Everything but the entries is decided by the
//! planner itself ([`plan::plan`]), on the set's state with each manifest's entries
//! left out: the authority, the tags, the slots, the golden copy, junk and staged
//! content are what a full boot would decide, and the result stands only if that plan
//! is empty. Per path, "intact everywhere" is exactly the case in which the planner's
//! per-path decision has nothing to do (`plan::decide_path`).

use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;

use crate::config::{Role, SetConfig};
use crate::fs::Fs;
use crate::hashing;
use crate::keys::DeviceKey;
use crate::manifest::{Entry, Header, Manifest, Stream, Trailer};
use crate::names::MANIFEST_SLOTS;
use crate::observe::{self, Dirs, SetState, SlotState, Walked};
use crate::plan::{self, Authority, Plan, Planned};
use crate::relpath::RelPath;

/// Entries compared per batch: their paths and results (about 200 bytes an entry)
/// exist for one batch at a time (two, with more than one thread: the next one is
/// read while one is hashed). The tests' sets are a few files: batches of two there,
/// so that every test goes through several.
const BATCH: usize = if cfg!(test) { 2 } else { 4096 };

/// The state and plan of `set` if it is intact (the plan then has no action, finding
/// or warning); `None` if anything is not, or cannot be shown to be: then observe and
/// plan it in full. `watch`: the walk watches the first writable copy's directories
/// for the change journal, as [`observe::observe`] does at boot.
pub(crate) fn intact(fs: &dyn Fs, set: &SetConfig, watch: bool) -> Option<(SetState, Plan)> {
    // Parity records and the stat cache are per file: those sets are planned in full.
    if set.parity.is_some() || set.changed_only {
        return None;
    }
    let key = set.device_key().ok()?;
    let mut replicas = Vec::with_capacity(set.replicas.len());
    for r in &set.replicas {
        replicas.push(match r.role {
            Role::Golden => observe::observe_lazy(fs, set, &r.root).ok()?,
            Role::Writable => {
                let st =
                    observe::observe_meta_with(fs, set, &r.root, Role::Writable, false).ok()?;
                if !st.root_exists {
                    return None;
                }
                st
            }
        });
    }
    let roots: Vec<&Path> = set.writable().map(|(_, r)| r.root.as_path()).collect();
    let first = *roots.first()?;
    let slot = |i: usize| RelPath::meta(&set.name, MANIFEST_SLOTS[i]);
    // The first copy's first slot, entry by entry against every copy's files.
    let mut stream = open(fs, set, key, first, &slot(0), true)?;
    let header = stream.header.clone();
    if header.set != set.name || header.hash != set.hash {
        return None;
    }
    // What needs no file first, so that a set the planner would act on anyway (a
    // slot behind after a cut, a tag to write, staged content) is not hashed twice.
    // Every other slot of every copy: intact, with the same header; its body is
    // compared with the first slot's once that one is read.
    let mut others: Vec<(usize, Trailer)> = Vec::with_capacity(roots.len() * MANIFEST_SLOTS.len());
    for (r, root) in roots.iter().enumerate() {
        for i in 0..MANIFEST_SLOTS.len() {
            if r > 0 || i > 0 {
                others.push((r, check(fs, set, key, root, &slot(i), &header)?));
            }
        }
    }
    // The rest is the planner's: each copy's state with its manifest's entries left out.
    for st in replicas.iter_mut().filter(|r| r.role == Role::Writable) {
        st.slots = vec![SlotState::Intact(header.generation); MANIFEST_SLOTS.len()];
        st.current_slot = Some(0);
        st.slot_current = vec![true; MANIFEST_SLOTS.len()];
        st.generation_floor = Some(header.generation);
        st.manifest = Some(Arc::new(Manifest::new(
            &set.name,
            header.generation,
            header.hash,
            header.tag,
        )));
    }
    let state = SetState {
        set: set.name.clone(),
        hash: set.hash,
        replicas,
        parity: None,
        threads: set.threads,
    };
    let Ok(Planned::Complete(mut p)) = plan::plan(set, &state) else {
        return None;
    };
    let empty = p.actions.is_empty()
        && p.findings.is_empty()
        && p.warnings.is_empty()
        && p.lost.is_empty()
        && matches!(p.authority, Authority::Manifest { .. });
    if !empty {
        return None;
    }
    // The walks, watching the first copy's directories for the change journal before
    // any file is hashed (docs/design.md section 3.1), as a full boot does.
    let walks: Vec<Walked> = roots
        .iter()
        .enumerate()
        .map(|(i, root)| observe::walk_selected(fs, set, root, watch && i == 0))
        .collect::<Option<_>>()?;
    let (files, protected) = compare(fs, set, &roots, &mut stream)?;
    let reference = stream.finish().ok()?;
    // The same body everywhere, and within a copy the same bytes (a keyed manifest's
    // MAC differs from copy to copy).
    others.push((0, reference));
    let same = others.iter().all(|(r, t)| {
        t.body == reference.body
            && others
                .iter()
                .filter(|(o, _)| o == r)
                .all(|(_, u)| u.sum == t.sum)
    });
    if !same || Walked::leftovers(fs, set, &roots, &walks, &protected) {
        return None;
    }
    p.files = files;
    // The target is the manifest on disk, unchanged; it was not kept (a boot with
    // nothing to write does not need it).
    p.manifest = None;
    Some((state, p))
}

/// Compares every entry of `stream` with the file at its path in each copy: every path
/// is selected, and each file, opened without following a link (nor a link in a
/// parent directory), is a regular file that hashes to its entry with its size, mode
/// and owner (an owner not recorded, format 1, is not checked: nor does the planner).
/// The copies' other selected files are named by no manifest: not protected, and the
/// planner leaves them alone too. With more than one hashing thread, the next batch is
/// read while this one is hashed. Returns the number of entries and their directories
/// (where leftovers are looked for).
fn compare(
    fs: &dyn Fs,
    set: &SetConfig,
    roots: &[&Path],
    stream: &mut Stream<'_, impl std::io::BufRead>,
) -> Option<(usize, Dirs)> {
    let mut dirs = Dirs::default();
    let mut done = 0usize;
    let mut batch = read_batch(set, stream, &mut dirs)?;
    while !batch.is_empty() {
        let next = if set.threads > 1 {
            std::thread::scope(|sc| {
                // A thread that cannot be started is no failure: the batch is then
                // hashed here, before the next one is read.
                let hashing = std::thread::Builder::new()
                    .name("rebound-batch".into())
                    .spawn_scoped(sc, || intact_in(fs, set, roots, &batch));
                match hashing {
                    Ok(h) => {
                        let next = read_batch(set, stream, &mut dirs);
                        h.join().unwrap_or(false).then_some(next).flatten()
                    }
                    Err(_) => intact_in(fs, set, roots, &batch)
                        .then(|| read_batch(set, stream, &mut dirs))
                        .flatten(),
                }
            })
        } else if intact_in(fs, set, roots, &batch) {
            read_batch(set, stream, &mut dirs)
        } else {
            None
        };
        done += batch.len();
        batch = next?;
    }
    Some((done, dirs))
}

/// Up to [`BATCH`] entries of `stream` (none after the last), each selected; their
/// directories recorded in `dirs`.
fn read_batch(
    set: &SetConfig,
    stream: &mut Stream<'_, impl std::io::BufRead>,
    dirs: &mut Dirs,
) -> Option<Vec<(RelPath, Entry)>> {
    let mut batch = Vec::with_capacity(BATCH);
    while batch.len() < BATCH {
        let Some(e) = stream.next_entry().ok()? else {
            break;
        };
        let (path, entry) = e?;
        if !set.selects(&path) {
            return None;
        }
        dirs.add_dir_of(&path);
        batch.push((path, entry));
    }
    Some(batch)
}

/// Whether every file of `batch` hashes to its entry, with its size, mode and owner,
/// in every copy.
fn intact_in(fs: &dyn Fs, set: &SetConfig, roots: &[&Path], batch: &[(RelPath, Entry)]) -> bool {
    roots.iter().all(|root| {
        let jobs: Vec<(&Path, &RelPath)> = batch.iter().map(|(p, _)| (*root, p)).collect();
        let results = hashing::hash_files(fs, &jobs, set.hash, set.threads);
        results.iter().zip(batch).all(|(r, (_, e))| {
            r.as_ref().is_ok_and(|h| {
                h.digest == e.digest
                    && h.size == e.size
                    && h.mode == e.mode
                    && e.owner.is_none_or(|o| o == h.owner)
            })
        })
    })
}

/// A slot opened for streaming, with the set's device key bound to its copy.
fn open<'k, 'f>(
    fs: &'f dyn Fs,
    set: &SetConfig,
    key: Option<&'k DeviceKey>,
    root: &Path,
    rel: &RelPath,
    parse: bool,
) -> Option<Stream<'k, BufReader<Box<dyn std::io::Read + Send + 'f>>>> {
    let input = BufReader::with_capacity(hashing::CHUNK / 4, fs.open_read(root, rel).ok()?);
    Stream::open(input, key.map(|k| (k, set.name.as_str(), root)), parse).ok()
}

/// A slot checked without decoding its entries: intact (and authenticated, with a
/// key), with the header of the reference.
fn check(
    fs: &dyn Fs,
    set: &SetConfig,
    key: Option<&DeviceKey>,
    root: &Path,
    rel: &RelPath,
    header: &Header,
) -> Option<Trailer> {
    let s = open(fs, set, key, root, rel, false)?;
    if s.header != *header {
        return None;
    }
    s.finish().ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::config::Config;
    use crate::engine::Engine;
    use crate::fs::os::OsFs;
    use crate::observe::Depth;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    /// A sealed set in a temporary directory: `golden` mode (live + golden), or
    /// `mirror` (two copies, a version tag); `extra` is added to the set's table.
    struct Dev {
        dir: tempfile::TempDir,
        config: Config,
    }

    impl Dev {
        fn new(mirror: bool, extra: &str) -> Dev {
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path();
            let text = if mirror {
                format!(
                    "[[set]]\nname = \"s\"\nmode = \"mirror\"\nreplicas = [\"{0}/a\", \"{0}/b\"]\ninclude = [\"etc/**\", \"app.bin\"]\nexclude = [\"etc/skip/**\"]\nversion_file = \"ver\"\n{extra}",
                    p.display()
                )
            } else {
                format!(
                    "[[set]]\nname = \"s\"\nmode = \"golden\"\nlive = \"{0}/a\"\ngolden = \"{0}/g\"\ninclude = [\"etc/**\", \"app.bin\"]\nexclude = [\"etc/skip/**\"]\n{extra}",
                    p.display()
                )
            };
            for (rel, body) in [
                ("a/app.bin", "app"),
                ("a/etc/a.conf", "a"),
                ("a/etc/a-b", "ab"),
                ("a/etc/a/x.conf", "ax"),
                ("a/etc/a0", "a0"),
                ("a/etc/skip/ignored", "i"),
                ("a/other", "not selected"),
            ] {
                let f = p.join(rel);
                fs::create_dir_all(f.parent().unwrap()).unwrap();
                fs::write(f, body).unwrap();
            }
            if mirror {
                fs::write(p.join("a/ver"), "1\n").unwrap();
                fs::create_dir_all(p.join("b")).unwrap();
            } else {
                fs::create_dir_all(p.join("g")).unwrap();
            }
            let path = p.join("rebound.toml");
            fs::write(&path, &text).unwrap();
            let config = Config::load(&path).unwrap();
            let d = Dev { dir, config };
            let os = OsFs::new();
            let e = Engine::new(&os);
            if mirror {
                e.boot(&d.config, &[], false).unwrap();
            } else {
                e.seal(&d.config, &[], false, false).unwrap();
            }
            d
        }

        fn p(&self, rel: &str) -> std::path::PathBuf {
            self.dir.path().join(rel)
        }

        /// The streamed result, checked against the full observation and plan: when
        /// the stream says intact, the full plan is empty and says the same.
        fn streamed(&self) -> bool {
            let fs = OsFs::new();
            let set = &self.config.sets[0];
            let fast = intact(&fs, set, false);
            // One hashing thread (read and hash one after the other) and several
            // (the next batch read beside the hashing) agree.
            for threads in [1, 3] {
                let mut other = set.clone();
                other.threads = threads;
                assert_eq!(
                    intact(&fs, &other, false).is_some(),
                    fast.is_some(),
                    "{threads} threads"
                );
            }
            let (_, full) = Engine::new(&fs).plan_set(set, Depth::Boot).unwrap();
            let Some((_, p)) = fast else { return false };
            assert!(full.actions.is_empty(), "{:?}", full.actions);
            assert!(full.findings.is_empty(), "{:?}", full.findings);
            assert!(full.warnings.is_empty(), "{:?}", full.warnings);
            assert!(full.lost.is_empty());
            assert_eq!(
                (p.authority, p.generation, p.tag, p.files, p.golden),
                (
                    full.authority,
                    full.generation,
                    full.tag,
                    full.files,
                    full.golden
                )
            );
            true
        }
    }

    fn meta(d: &Dev, root: &str, name: &str) -> std::path::PathBuf {
        d.p(&format!("{root}/.rebound/s/{name}"))
    }

    #[test]
    fn an_intact_set_is_streamed_and_planned_as_the_full_boot_plans_it() {
        for mirror in [false, true] {
            let d = Dev::new(mirror, "");
            assert!(d.streamed(), "mirror {mirror}");
            // A file outside the patterns changes nothing.
            fs::write(d.p("a/other"), "changed").unwrap();
            fs::write(d.p("a/etc/skip/ignored"), "changed").unwrap();
            assert!(d.streamed(), "mirror {mirror}");
            // A temporary file where rebound never writes (a directory without a
            // protected file) is left there by the full boot too.
            fs::create_dir_all(d.p("a/etc/empty")).unwrap();
            fs::write(d.p("a/etc/empty/.rebound-tmp-1-2"), "t").unwrap();
            assert!(d.streamed(), "mirror {mirror}");
            // Nor does a selected file no manifest names: not protected until it
            // is committed, and left alone.
            for new in ["a/etc/0", "a/etc/a/new", "a/etc/zz", "a/etc/a.d"] {
                fs::write(d.p(new), "n").unwrap();
            }
            assert!(d.streamed(), "mirror {mirror}");
            // Nor a link or a special file no manifest names (/etc/localtime, say).
            std::os::unix::fs::symlink("a.conf", d.p("a/etc/zone")).unwrap();
            rustix::fs::mknodat(
                rustix::fs::CWD,
                d.p("a/etc/fifo"),
                rustix::fs::FileType::Fifo,
                rustix::fs::Mode::from_raw_mode(0o600),
                0,
            )
            .unwrap();
            assert!(d.streamed(), "mirror {mirror}");
        }
        let d = Dev::new(false, "hash = \"crc32\"\n");
        assert!(d.streamed());
    }

    /// Each kind of damage or leftover the full boot acts on or reports: never
    /// streamed.
    #[test]
    fn anything_not_intact_falls_back_to_the_full_boot() {
        type Harm = fn(&Dev);
        let harms: Vec<(&str, Harm)> = vec![
            ("content", |d| fs::write(d.p("a/etc/a0"), "b0").unwrap()),
            ("missing", |d| {
                fs::remove_file(d.p("a/etc/a/x.conf")).unwrap()
            }),
            ("mode", |d| {
                fs::set_permissions(d.p("a/app.bin"), fs::Permissions::from_mode(0o600)).unwrap()
            }),
            ("link", |d| {
                fs::remove_file(d.p("a/etc/a.conf")).unwrap();
                std::os::unix::fs::symlink("a-b", d.p("a/etc/a.conf")).unwrap();
            }),
            ("parent link", |d| {
                fs::rename(d.p("a/etc/a"), d.p("a/etc/real")).unwrap();
                std::os::unix::fs::symlink("real", d.p("a/etc/a")).unwrap();
            }),
            ("slot missing", |d| {
                fs::remove_file(meta(d, "a", "manifest.1")).unwrap()
            }),
            ("slot damaged", |d| {
                let p = meta(d, "a", "manifest.0");
                let mut b = fs::read(&p).unwrap();
                b[30] ^= 1;
                fs::write(p, b).unwrap();
            }),
            ("temp file", |d| {
                fs::write(d.p("a/etc/.rebound-tmp-1-2"), "t").unwrap()
            }),
            ("temp at the root", |d| {
                fs::write(d.p("a/.rebound-tmp-1-2"), "t").unwrap()
            }),
            ("staged", |d| {
                fs::create_dir_all(meta(d, "a", "stage")).unwrap();
                fs::write(meta(d, "a", "stage/00"), "x").unwrap();
            }),
        ];
        for mirror in [false, true] {
            for (what, harm) in &harms {
                let d = Dev::new(mirror, "");
                harm(&d);
                assert!(!d.streamed(), "{what} (mirror {mirror})");
            }
        }
        // Mirror mode: a temporary file in the second copy, in a directory that holds
        // selected files only in the first (the full boot removes it from both).
        let d = Dev::new(true, "");
        fs::create_dir_all(d.p("a/etc/new")).unwrap();
        fs::write(d.p("a/etc/new/x.conf"), "x").unwrap();
        fs::create_dir_all(d.p("b/etc/new")).unwrap();
        fs::write(d.p("b/etc/new/.rebound-tmp-1-2"), "t").unwrap();
        assert!(!d.streamed());
        // Golden mode: the golden copy unsealed matters only where the live copy has
        // no manifest (its fallback); the planner says so, on the streamed state too.
        let d = Dev::new(false, "");
        fs::remove_file(meta(&d, "g", "sealed")).unwrap();
        assert!(d.streamed());
        fs::remove_dir_all(d.p("g")).unwrap();
        assert!(!d.streamed(), "golden copy missing: reported");
        // Mirror mode: the second copy damaged, or a tag behind or ahead.
        for harm in [
            |d: &Dev| fs::write(d.p("b/app.bin"), "bad").unwrap(),
            |d: &Dev| fs::write(d.p("b/ver"), "0\n").unwrap(),
            |d: &Dev| fs::write(d.p("a/ver"), "2\n").unwrap(),
            |d: &Dev| fs::remove_file(meta(d, "b", "manifest.0")).unwrap(),
        ] {
            let d = Dev::new(true, "");
            harm(&d);
            assert!(!d.streamed());
        }
    }

    /// Both slots of every copy rewritten in format 1 (no owners): a boot reads them
    /// as they are (nothing to write), and so does the stream.
    #[test]
    fn a_format_1_manifest_is_streamed_without_owners() {
        for mirror in [false, true] {
            let d = Dev::new(mirror, "");
            for root in if mirror { vec!["a", "b"] } else { vec!["a"] } {
                for slot in ["manifest.0", "manifest.1"] {
                    let p = meta(&d, root, slot);
                    let m = Manifest::decode(&fs::read(&p).unwrap()).unwrap();
                    let mut body = format!(
                        "rebound-manifest 1\nset {}\ngeneration {}\nhash {}\n",
                        m.set, m.generation, m.hash
                    );
                    if let Some(t) = m.tag {
                        body.push_str(&format!("tag {t}\n"));
                    }
                    for (path, e) in &m.entries {
                        body.push_str(&format!(
                            "file {} {:o} {} {path}\n",
                            e.size, e.mode, e.digest
                        ));
                    }
                    fs::write(&p, crate::record::seal(body)).unwrap();
                }
            }
            assert!(d.streamed(), "mirror {mirror}");
            assert!(fs::read_to_string(meta(&d, "a", "manifest.0"))
                .unwrap()
                .starts_with("rebound-manifest 1\n"));
        }
    }

    #[test]
    fn a_path_no_longer_selected_a_changed_only_or_a_parity_set_is_not_streamed() {
        let d = Dev::new(false, "");
        let text = fs::read_to_string(d.p("rebound.toml"))
            .unwrap()
            .replace("\"etc/skip/**\"", "\"etc/skip/**\", \"etc/a0\"");
        fs::write(d.p("rebound.toml"), text).unwrap();
        let c = Config::load(&d.p("rebound.toml")).unwrap();
        assert!(intact(&OsFs::new(), &c.sets[0], false).is_none());
        let d = Dev::new(false, "changed_only = true\n");
        assert!(intact(&OsFs::new(), &d.config.sets[0], false).is_none());
        // An intact parity set (its records are per file): planned in full, and
        // that plan is empty.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        fs::create_dir_all(p.join("live/etc")).unwrap();
        fs::write(p.join("live/etc/a.conf"), "a").unwrap();
        let path = p.join("rebound.toml");
        fs::write(
            &path,
            format!(
                "[[set]]\nname = \"s\"\nmode = \"parity\"\nlive = \"{0}/live\"\nparity = \"{0}/par\"\ninclude = [\"etc/**\"]\n",
                p.display()
            ),
        )
        .unwrap();
        let c = Config::load(&path).unwrap();
        let os = OsFs::new();
        Engine::new(&os).boot(&c, &[], false).unwrap();
        let (_, full) = Engine::new(&os).plan_set(&c.sets[0], Depth::Boot).unwrap();
        assert!(
            full.actions.is_empty() && full.findings.is_empty(),
            "{full:?}"
        );
        assert!(intact(&os, &c.sets[0], false).is_none());
    }

    #[test]
    fn keyed_manifests_are_streamed_with_their_key_only() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("device.key");
        fs::write(&key, [7u8; 32]).unwrap();
        fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
        for mirror in [false, true] {
            let d = Dev::new(mirror, &format!("device_key = \"{}\"\n", key.display()));
            assert!(d.streamed(), "mirror {mirror}");
            // The same manifest with its `mac` lines taken out and its checksum
            // made again (what anyone can write): not trusted.
            let slot = meta(&d, "a", "manifest.1");
            let bytes = fs::read(&slot).unwrap();
            let text = String::from_utf8(bytes).unwrap();
            let body: String = text
                .lines()
                .filter(|l| !l.starts_with("mac ") && !l.starts_with("end "))
                .map(|l| format!("{l}\n"))
                .collect();
            fs::write(&slot, crate::record::seal(body)).unwrap();
            assert!(!d.streamed(), "mirror {mirror}");
        }
    }
}
