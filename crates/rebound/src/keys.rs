//! The device key (docs/design.md section 2.3): a 32-byte secret in a file of its own
//! (`device_key = "PATH"`), read once at start, from which each record rebound writes
//! in a writable copy (manifests, stat cache, event log, boot counter) gets a keyed
//! BLAKE3 MAC bound to its set and its replica root.
//!
//! The file must be a regular file of exactly 32 bytes, owned by the user rebound runs
//! as, with no permission bit for group or others; anything else is refused with the
//! fix. The secret is kept only as the derived MAC key, in a [`Zeroizing`] buffer that
//! is wiped when the last [`Arc`] to it goes; the raw bytes read are wiped at once.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use zeroize::{Zeroize, Zeroizing};

/// Size of a device key file, in bytes.
pub const KEY_BYTES: usize = 32;

/// BLAKE3 `derive_key` context of the MAC key (per device key; the set and the
/// replica root are bound by the MAC's message, [`DeviceKey::mac`]).
const MAC_CONTEXT: &str = "rebound 2026-12 manifest MAC v1";
/// BLAKE3 `derive_key` context of the key id written beside each MAC.
const ID_CONTEXT: &str = "rebound 2026-12 key id v1";

/// A loaded device key: the MAC key derived from it and its public id.
pub struct DeviceKey {
    mac_key: Zeroizing<[u8; 32]>,
    id: String,
    path: PathBuf,
}

impl fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the secret.
        f.debug_struct("DeviceKey")
            .field("id", &self.id)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl DeviceKey {
    /// A key from its 32 bytes (`path` names it in messages). The caller's copy is
    /// its own to wipe; [`DeviceKey::load`] wipes what it read.
    pub fn from_bytes(secret: &[u8; KEY_BYTES], path: &Path) -> DeviceKey {
        let mac_key = Zeroizing::new(blake3::derive_key(MAC_CONTEXT, secret));
        let mut id_full = blake3::derive_key(ID_CONTEXT, secret);
        let id = hex(&id_full[..8]);
        id_full.zeroize();
        DeviceKey {
            mac_key,
            id,
            path: path.to_path_buf(),
        }
    }

    /// Reads a key file, checking what it is before reading it: opened without
    /// following a link and without blocking, a regular file, owned by the effective
    /// user, mode `& 0o077 == 0`, exactly [`KEY_BYTES`] bytes.
    ///
    /// # Errors
    /// What is wrong with the file and how to fix it (the caller names the file).
    pub fn load(path: &Path) -> Result<DeviceKey, String> {
        use rustix::fs::{Mode, OFlags};
        let create = format!(
            "create one with `head -c 32 /dev/urandom > {p} && chmod 600 {p}`",
            p = path.display()
        );
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOFOLLOW | OFlags::NOCTTY,
            Mode::empty(),
        )
        .map_err(|e| match e {
            rustix::io::Errno::NOENT => format!("not found; {create}"),
            rustix::io::Errno::LOOP => {
                "is a symbolic link; name the key file itself (a link could be pointed elsewhere)"
                    .to_string()
            }
            e => format!(
                "cannot read: {}",
                std::io::Error::from_raw_os_error(e.raw_os_error())
            ),
        })?;
        let st = rustix::fs::fstat(&fd).map_err(|e| {
            format!(
                "cannot read: {}",
                std::io::Error::from_raw_os_error(e.raw_os_error())
            )
        })?;
        if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
            return Err(format!("not a regular file; {create}"));
        }
        let euid = rustix::process::geteuid().as_raw();
        if st.st_uid != euid {
            return Err(format!(
                "owned by uid {}, not by the user rebound runs as (uid {euid}): a key another user owns could be replaced by them; `chown {euid} {}`",
                st.st_uid,
                path.display()
            ));
        }
        let mode = st.st_mode & 0o7777;
        if mode & 0o077 != 0 {
            return Err(format!(
                "mode {mode:04o} lets group or others access it: the key must be secret to its owner; `chmod 600 {}`",
                path.display()
            ));
        }
        if st.st_size != KEY_BYTES as i64 {
            return Err(format!(
                "{} bytes, a device key is exactly {KEY_BYTES}; {create}",
                st.st_size
            ));
        }
        let mut buf = Zeroizing::new([0u8; KEY_BYTES + 1]);
        let mut got = 0;
        let mut file = std::fs::File::from(fd);
        while let Some(rest) = buf.get_mut(got..).filter(|r| !r.is_empty()) {
            match std::io::Read::read(&mut file, rest) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("cannot read: {e}")),
            }
        }
        if got != KEY_BYTES {
            return Err(format!(
                "changed while read ({got} bytes, a device key is exactly {KEY_BYTES}); {create}"
            ));
        }
        let mut secret = Zeroizing::new([0u8; KEY_BYTES]);
        secret.copy_from_slice(&buf[..KEY_BYTES]);
        Ok(DeviceKey::from_bytes(&secret, path))
    }

    /// The key's public id: the first 8 bytes of `derive_key("rebound 2026-12 key id
    /// v1", key)`, in hex. Written beside each MAC so a reader finds its own.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The file it was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The MAC of a record body written in `root` for set `set`: BLAKE3 keyed with the
    /// derived MAC key over `len(set) set len(root) root body` (lengths as 8-byte
    /// little-endian), so a record moved to another set or another copy fails.
    pub fn mac(&self, set: &str, root: &Path, body: &[u8]) -> blake3::Hash {
        let mut h = self.mac_start(set, root);
        h.update(body);
        let mac = h.finalize();
        // The hasher's state holds the keyed chaining values: wiped too.
        h.zeroize();
        mac
    }

    /// The keyed hasher of [`DeviceKey::mac`] before the body: a reader that streams
    /// the body feeds it, then wipes it (`zeroize`) once finalized.
    pub(crate) fn mac_start(&self, set: &str, root: &Path) -> blake3::Hasher {
        let root = root.as_os_str().as_encoded_bytes();
        let mut h = blake3::Hasher::new_keyed(&self.mac_key);
        h.update(&(set.len() as u64).to_le_bytes());
        h.update(set.as_bytes());
        h.update(&(root.len() as u64).to_le_bytes());
        h.update(root);
        h
    }
}

/// The keys a record is written with: the configured one (it is also the one a reader
/// checks) and, during `rebound rekey --key PATH`, the next one.
#[derive(Debug, Clone, Copy, Default)]
pub struct Signers<'a> {
    pub keys: [Option<&'a DeviceKey>; 2],
}

impl<'a> Signers<'a> {
    /// No key: records are written with the plain checksum only.
    pub const NONE: Signers<'static> = Signers { keys: [None, None] };

    /// The keys, configured first.
    pub fn iter(&self) -> impl Iterator<Item = &'a DeviceKey> + '_ {
        let mut seen: Vec<&str> = Vec::new();
        self.keys.iter().flatten().copied().filter(move |k| {
            let fresh = !seen.contains(&k.id());
            seen.push(k.id());
            fresh
        })
    }

    /// Whether any key signs.
    pub fn any(&self) -> bool {
        self.keys.iter().any(Option::is_some)
    }
}

/// A set's device key as configured: where it is, and the key once loaded.
#[derive(Debug, Clone, Default)]
pub struct KeySlot {
    /// `device_key` (the set's own, else the top-level one).
    pub path: Option<PathBuf>,
    /// The key, once [`crate::Config::load_keys`] read it.
    pub key: Option<Arc<DeviceKey>>,
    /// `rebound rekey --key PATH`: a second key every record is also MAC'd with.
    pub next: Option<Arc<DeviceKey>>,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn key_id_is_the_derived_prefix_and_differs_per_key() {
        let a = DeviceKey::from_bytes(&[7; 32], Path::new("/k"));
        let want = blake3::derive_key("rebound 2026-12 key id v1", &[7; 32]);
        assert_eq!(a.id(), hex(&want[..8]));
        assert_eq!(a.id().len(), 16);
        let b = DeviceKey::from_bytes(&[8; 32], Path::new("/k"));
        assert_ne!(a.id(), b.id());
        assert!(!format!("{a:?}").contains("mac_key"));
    }

    #[test]
    fn mac_binds_key_set_root_and_body() {
        let a = DeviceKey::from_bytes(&[7; 32], Path::new("/k"));
        let b = DeviceKey::from_bytes(&[8; 32], Path::new("/k"));
        let m = a.mac("s", Path::new("/data"), b"body\n");
        assert_eq!(m, a.mac("s", Path::new("/data"), b"body\n"));
        assert_ne!(m, b.mac("s", Path::new("/data"), b"body\n"));
        assert_ne!(m, a.mac("t", Path::new("/data"), b"body\n"));
        assert_ne!(m, a.mac("s", Path::new("/backup"), b"body\n"));
        assert_ne!(m, a.mac("s", Path::new("/data"), b"body!\n"));
        // Length prefixes: moving bytes between the set name and the root changes it.
        assert_ne!(
            a.mac("ab", Path::new("/c"), b""),
            a.mac("a", Path::new("b/c"), b"")
        );
    }

    #[test]
    fn load_refuses_wrong_size_mode_links_and_missing_files() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("k");
        std::fs::write(&p, [1u8; 32]).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        let k = DeviceKey::load(&p).unwrap();
        assert_eq!(k.id(), DeviceKey::from_bytes(&[1; 32], &p).id());
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(DeviceKey::load(&p).unwrap_err().contains("chmod 600"));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o400)).unwrap();
        assert!(DeviceKey::load(&p).is_ok());
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&p, [1u8; 31]).unwrap();
        assert!(DeviceKey::load(&p).unwrap_err().contains("31 bytes"));
        std::fs::write(&p, [1u8; 33]).unwrap();
        assert!(DeviceKey::load(&p).unwrap_err().contains("33 bytes"));
        let l = d.path().join("link");
        std::fs::write(&p, [1u8; 32]).unwrap();
        std::os::unix::fs::symlink(&p, &l).unwrap();
        assert!(DeviceKey::load(&l).unwrap_err().contains("symbolic link"));
        assert!(DeviceKey::load(&d.path().join("none"))
            .unwrap_err()
            .contains("head -c 32 /dev/urandom"));
        assert!(DeviceKey::load(d.path()).is_err());
    }
}
