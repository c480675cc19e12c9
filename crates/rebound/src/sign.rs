//! Signed golden manifests: the ed25519 key files, the signature file beside the golden
//! manifest, signing (at the factory, by `seal --sign-key`) and strict verification (on
//! the device, with a set's `golden_public_key`).
//!
//! Three one-line text formats, each parsed exactly (docs/design.md section 2.4):
//!
//! ```text
//! rebound-ed25519-secret 1 <64 hex digits: the 32-byte seed>\n        (PREFIX, mode 0600)
//! rebound-ed25519-public 1 <64 hex digits: the public key>\n          (PREFIX.pub)
//! rebound-ed25519-signature 1 <64 hex: public key> <128 hex: signature>\n
//! ```
//!
//! The signature covers [`DOMAIN`], the set name (length first) and the golden manifest's
//! exact bytes ([`message`]), so a signature cannot be moved to another set's golden copy
//! or to another kind of file. The public key in the signature file only names who
//! signed, for the message when it is not the configured key; it is never trusted.
//!
//! Secret material (the key file's bytes, the seed, its hex text) is held in
//! [`Zeroizing`] buffers and the signing key itself is wiped when dropped
//! (ed25519-dalek's `zeroize` feature).

use std::fmt;
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::fs::{read_small, Fs, Kind};
use crate::manifest::Manifest;
use crate::relpath::RelPath;

/// First word of a secret key file.
pub const SECRET_MAGIC: &str = "rebound-ed25519-secret";
/// First word of a public key file.
pub const PUBLIC_MAGIC: &str = "rebound-ed25519-public";
/// First word of a signature file.
pub const SIGNATURE_MAGIC: &str = "rebound-ed25519-signature";
/// The version of all three formats.
pub const FORMAT_VERSION: u32 = 1;
/// What every signed message starts with: a signature over a golden manifest is never
/// one over anything else an ed25519 key of the same owner signs.
pub const DOMAIN: &[u8] = b"rebound golden manifest signature 1\0";
/// Largest key or signature file read (each is one line of under 250 bytes).
pub const KEY_FILE_MAX_BYTES: u64 = 1024;

/// A signing key (the factory's secret). Wiped from memory when dropped.
pub struct SignKey {
    key: SigningKey,
}

impl fmt::Debug for SignKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the secret.
        f.debug_struct("SignKey")
            .field("public", &self.public())
            .finish()
    }
}

/// A public key (`golden_public_key`): what the device verifies golden signatures with.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey {
    key: VerifyingKey,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_hex())
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

/// Lowercase hex into exactly `N` bytes (uppercase is refused: one spelling per value).
fn unhex<const N: usize>(s: &[u8], out: &mut [u8; N]) -> bool {
    if s.len() != 2 * N {
        return false;
    }
    for (o, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        match (hex_digit(pair[0]), hex_digit(pair[1])) {
            (Some(h), Some(l)) => *o = (h << 4) | l,
            _ => return false,
        }
    }
    true
}

fn to_hex(bytes: &[u8], out: &mut String) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
}

/// Splits `<magic> 1 <fields...>\n` into its fields, or says what is wrong.
fn fields<'b>(
    bytes: &'b [u8],
    magic: &str,
    what: &str,
    n: usize,
) -> std::result::Result<Vec<&'b [u8]>, String> {
    let Some(line) = bytes.strip_suffix(b"\n") else {
        return Err(format!(
            "not a {what} (one line `{magic} {FORMAT_VERSION} ...` ending in a newline)"
        ));
    };
    let mut words: Vec<&[u8]> = line.split(|b| *b == b' ').collect();
    if words.first() != Some(&magic.as_bytes()) {
        return Err(format!("not a {what} (it does not start with `{magic}`)"));
    }
    if words.get(1) != Some(&FORMAT_VERSION.to_string().as_bytes()) {
        return Err(format!(
            "a {what} of an unknown version (this rebound reads version {FORMAT_VERSION})"
        ));
    }
    if words.len() != 2 + n {
        return Err(format!(
            "a malformed {what} (expected {n} field(s) after the version)"
        ));
    }
    Ok(words.split_off(2))
}

impl PublicKey {
    /// Parses a public key file.
    ///
    /// # Errors
    /// What is wrong with it, for a message.
    pub fn parse(bytes: &[u8]) -> std::result::Result<PublicKey, String> {
        let f = fields(bytes, PUBLIC_MAGIC, "public key file", 1)?;
        let mut raw = [0u8; 32];
        if !unhex(f[0], &mut raw) {
            return Err(
                "a malformed public key file (the key is not 64 lowercase hex digits)".into(),
            );
        }
        PublicKey::from_bytes(&raw)
    }

    fn from_bytes(raw: &[u8; 32]) -> std::result::Result<PublicKey, String> {
        let key = VerifyingKey::from_bytes(raw)
            .map_err(|_| "not a valid ed25519 public key (not a point on the curve)".to_string())?;
        // One encoding per key: a non-canonical one (a y coordinate of p or more) is
        // refused, so that one key is never two different files or key ids.
        if key.to_edwards().compress().to_bytes() != *raw {
            return Err("not a valid ed25519 public key (a non-canonical encoding)".into());
        }
        // A small-order key would verify signatures anyone can make.
        if key.is_weak() {
            return Err("a weak ed25519 public key (of small order): refused".into());
        }
        Ok(PublicKey { key })
    }

    /// The public key file's text.
    pub fn encode(&self) -> String {
        let mut s = format!("{PUBLIC_MAGIC} {FORMAT_VERSION} ");
        to_hex(self.key.as_bytes(), &mut s);
        s.push('\n');
        s
    }

    fn to_hex(self) -> String {
        let mut s = String::with_capacity(64);
        to_hex(self.key.as_bytes(), &mut s);
        s
    }

    /// Reads and parses the public key file at `path` (`golden_public_key`).
    ///
    /// # Errors
    /// [`Error::Config`] naming the file and what is wrong with it.
    pub fn load(fs: &dyn Fs, path: &Path) -> Result<PublicKey> {
        let bytes = read_key_file(fs, path, "public key")?;
        PublicKey::parse(&bytes).map_err(|what| Error::Config {
            path: path.to_path_buf(),
            what: format!("{what}: `golden_public_key` must name a file written by `rebound keygen` (PREFIX.pub)"),
        })
    }

    /// Strictly verifies the signature file `sig` of set `set`'s golden manifest
    /// `manifest` (its exact bytes).
    ///
    /// # Errors
    /// Why it does not verify, for a finding.
    pub fn verify_golden(
        &self,
        set: &str,
        manifest: &[u8],
        sig: &[u8],
    ) -> std::result::Result<(), String> {
        let (signer, signature) = parse_signature(sig)?;
        if signer != *self.key.as_bytes() {
            let mut named = String::new();
            to_hex(&signer, &mut named);
            return Err(format!(
                "signed by another key ({named}), not the configured golden_public_key ({self})"
            ));
        }
        self.key
            .verify_strict(&message(set, manifest), &signature)
            .map_err(|_| "the signature does not verify: the golden manifest or its signature was changed after signing".to_string())
    }
}

/// Parses a signature file into the signer's public key bytes and the signature.
///
/// # Errors
/// What is wrong with it, for a finding.
pub fn parse_signature(bytes: &[u8]) -> std::result::Result<([u8; 32], Signature), String> {
    let f = fields(bytes, SIGNATURE_MAGIC, "signature file", 2)?;
    let mut signer = [0u8; 32];
    let mut sig = [0u8; 64];
    if !unhex(f[0], &mut signer) || !unhex(f[1], &mut sig) {
        return Err("a malformed signature file (a key of 64 and a signature of 128 lowercase hex digits expected)".into());
    }
    Ok((signer, Signature::from_bytes(&sig)))
}

/// What is signed: [`DOMAIN`], the set name's length (4 bytes, big-endian) and bytes,
/// then the golden manifest's exact bytes.
pub fn message(set: &str, manifest: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(DOMAIN.len() + 4 + set.len() + manifest.len());
    m.extend_from_slice(DOMAIN);
    m.extend_from_slice(&u32::try_from(set.len()).unwrap_or(u32::MAX).to_be_bytes());
    m.extend_from_slice(set.as_bytes());
    m.extend_from_slice(manifest);
    m
}

/// The golden manifest's bytes as `seal` writes them and as they are signed: one
/// function, so the two can never differ.
pub fn golden_manifest_bytes(m: &Manifest) -> Vec<u8> {
    m.encode()
}

impl SignKey {
    /// A new key from the operating system's random number generator.
    ///
    /// # Errors
    /// [`Error::Usage`] if the system has no random numbers to give.
    pub fn generate() -> Result<SignKey> {
        let mut seed = Zeroizing::new([0u8; 32]);
        getrandom::fill(&mut *seed).map_err(|e| {
            Error::Usage(format!(
                "cannot get random numbers from the operating system: {e}"
            ))
        })?;
        Ok(SignKey {
            key: SigningKey::from_bytes(&seed),
        })
    }

    /// Parses a secret key file.
    ///
    /// # Errors
    /// What is wrong with it, for a message (never any of its content).
    pub fn parse(bytes: &[u8]) -> std::result::Result<SignKey, String> {
        let f = fields(bytes, SECRET_MAGIC, "secret key file", 1)?;
        let mut seed = Zeroizing::new([0u8; 32]);
        if !unhex(f[0], &mut seed) {
            return Err(
                "a malformed secret key file (the key is not 64 lowercase hex digits)".into(),
            );
        }
        Ok(SignKey {
            key: SigningKey::from_bytes(&seed),
        })
    }

    /// The secret key file's text (wiped when dropped).
    pub fn encode(&self) -> Zeroizing<String> {
        let mut s = Zeroizing::new(String::with_capacity(SECRET_MAGIC.len() + 70));
        s.push_str(SECRET_MAGIC);
        s.push_str(&format!(" {FORMAT_VERSION} "));
        let seed = Zeroizing::new(self.key.to_bytes());
        to_hex(&*seed, &mut s);
        s.push('\n');
        s
    }

    /// Its public half.
    pub fn public(&self) -> PublicKey {
        PublicKey {
            key: self.key.verifying_key(),
        }
    }

    /// The signature file for set `set`'s golden manifest of exactly these bytes.
    pub fn sign_golden(&self, set: &str, manifest: &[u8]) -> String {
        let sig = self.key.sign(&message(set, manifest));
        let mut s = format!("{SIGNATURE_MAGIC} {FORMAT_VERSION} ");
        to_hex(self.key.verifying_key().as_bytes(), &mut s);
        s.push(' ');
        to_hex(&sig.to_bytes(), &mut s);
        s.push('\n');
        s
    }

    /// Reads the secret key file at `path` (`seal --sign-key`). It must be a regular
    /// file that neither group nor others may read or write.
    ///
    /// # Errors
    /// [`Error::Usage`] naming the file and what is wrong (never its content).
    pub fn load(fs: &dyn Fs, path: &Path) -> Result<SignKey> {
        let (root, rel) = split(path)?;
        let usage = |what: String| Error::Usage(format!("{}: {what}", path.display()));
        match fs.metadata(&root, &rel)? {
            None => return Err(usage("no such signing key (make one with `rebound keygen --out PREFIX`)".into())),
            Some(m) if m.kind != Kind::File => {
                return Err(usage("not a regular file (a signing key is never read through a link)".into()))
            }
            Some(m) if m.mode & 0o077 != 0 => {
                return Err(usage(format!(
                    "the signing key may be read or written by others (mode {:04o}); refused: `chmod 600 {}`, and consider it exposed",
                    m.mode & 0o7777,
                    path.display()
                )))
            }
            Some(_) => {}
        }
        let bytes = Zeroizing::new(read_key_file(fs, path, "signing key")?);
        SignKey::parse(&bytes).map_err(|w| {
            usage(format!(
                "{w} (write one with `rebound keygen --out PREFIX`)"
            ))
        })
    }
}

/// The directory and name of a key file, for the [`Fs`] calls.
fn split(path: &Path) -> Result<(PathBuf, RelPath)> {
    let bad = || {
        Error::Usage(format!(
            "{}: not a file path (give the key file's path)",
            path.display()
        ))
    };
    let name = path.file_name().and_then(|n| n.to_str()).ok_or_else(bad)?;
    let rel = RelPath::new(name).map_err(|_| bad())?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((dir, rel))
}

fn read_key_file(fs: &dyn Fs, path: &Path, what: &str) -> Result<Vec<u8>> {
    let (root, rel) = split(path)?;
    match read_small(fs, &root, &rel, KEY_FILE_MAX_BYTES) {
        Ok(Some(b)) => Ok(b),
        Ok(None) => Err(Error::Config {
            path: path.to_path_buf(),
            what: format!("no such {what} file"),
        }),
        Err(e) => Err(Error::Config {
            path: path.to_path_buf(),
            what: format!("cannot read the {what} file: {e}"),
        }),
    }
}

/// `rebound keygen --out PREFIX`: a new key pair, the secret in `PREFIX` (mode 0600)
/// and the public key in `PREFIX.pub` (mode 0644), each created new (never over an
/// existing file) and made durable. Returns the two paths and the public key.
///
/// # Errors
/// [`Error::Usage`] if either file exists; I/O errors. A secret written before the
/// public file failed is removed again.
pub fn keygen(fs: &dyn Fs, prefix: &Path) -> Result<(PathBuf, PathBuf, PublicKey)> {
    let mut pub_path = prefix.as_os_str().to_owned();
    pub_path.push(".pub");
    let pub_path = PathBuf::from(pub_path);
    let (sdir, srel) = split(prefix)?;
    let (pdir, prel) = split(&pub_path)?;
    for (d, r, p) in [(&sdir, &srel, prefix), (&pdir, &prel, pub_path.as_path())] {
        if fs.metadata(d, r)?.is_some() {
            return Err(Error::Usage(format!(
                "{}: exists; keygen never overwrites a key (choose another --out, or remove it if it is really unused)",
                p.display()
            )));
        }
    }
    let key = SignKey::generate()?;
    let write = |dir: &Path, rel: &RelPath, mode: u32, text: &[u8]| -> Result<()> {
        let mut f = fs.create_new(dir, rel, mode)?;
        f.write_all(text)?;
        f.set_mode(mode)?;
        f.sync_all()
    };
    write(&sdir, &srel, 0o600, key.encode().as_bytes())?;
    let public = key.public();
    if let Err(e) = write(&pdir, &prel, 0o644, public.encode().as_bytes()) {
        let _ = fs.remove_file(&sdir, &srel);
        let _ = fs.remove_file(&pdir, &prel);
        return Err(e);
    }
    fs.sync_dir(&sdir, None)?;
    if pdir != sdir {
        fs.sync_dir(&pdir, None)?;
    }
    Ok((prefix.to_path_buf(), pub_path, public))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SignKey {
        SignKey {
            key: SigningKey::from_bytes(&[seed; 32]),
        }
    }

    #[test]
    fn key_files_round_trip_and_are_one_exact_line() {
        let k = key(7);
        let text = k.encode();
        assert!(text.starts_with("rebound-ed25519-secret 1 "));
        assert_eq!(text.len(), SECRET_MAGIC.len() + 3 + 64 + 1);
        let back = SignKey::parse(text.as_bytes()).unwrap();
        assert_eq!(back.public(), k.public());
        let p = k.public().encode();
        assert!(p.starts_with("rebound-ed25519-public 1 "));
        assert_eq!(PublicKey::parse(p.as_bytes()).unwrap(), k.public());
        // Debug never shows the secret.
        let seed_hex = &text[SECRET_MAGIC.len() + 3..SECRET_MAGIC.len() + 3 + 64];
        assert!(!format!("{k:?}").contains(seed_hex));
    }

    #[test]
    fn key_files_that_are_not_exactly_the_format_are_refused() {
        let good = key(7).public().encode();
        let hexpart = &good[PUBLIC_MAGIC.len() + 3..good.len() - 1];
        for bad in [
            String::new(),
            good.trim_end().to_string(),
            format!("{good}\n"),
            good.replace("public", "secret"),
            good.replace(" 1 ", " 2 "),
            good.replace(' ', "  "),
            format!("{PUBLIC_MAGIC} 1 {}\n", hexpart.to_uppercase()),
            format!("{PUBLIC_MAGIC} 1 {}\n", &hexpart[2..]),
            format!("{PUBLIC_MAGIC} 1 {hexpart}00\n"),
            format!("{PUBLIC_MAGIC} 1 {hexpart} x\n"),
            format!("{PUBLIC_MAGIC} 1 {}\n", "0".repeat(64)),
            // The identity point: a weak key.
            format!("{PUBLIC_MAGIC} 1 01{}\n", "0".repeat(62)),
            // A non-canonical encoding (y = 2^255 - 1, reduced to 18 by a lenient
            // decoder).
            format!("{PUBLIC_MAGIC} 1 {}\n", "ff".repeat(32)),
            // y = 2: no point of the curve has it.
            format!("{PUBLIC_MAGIC} 1 02{}\n", "0".repeat(62)),
        ] {
            assert!(PublicKey::parse(bad.as_bytes()).is_err(), "{bad:?}");
        }
        assert!(SignKey::parse(good.as_bytes()).is_err());
        assert!(PublicKey::parse(key(7).encode().as_bytes()).is_err());
    }

    #[test]
    fn a_signature_verifies_only_for_its_key_set_and_exact_bytes() {
        let k = key(1);
        let m = b"rebound-manifest 2\nset cfg\n".as_slice();
        let sig = k.sign_golden("cfg", m);
        assert!(sig.starts_with("rebound-ed25519-signature 1 "));
        assert_eq!(k.public().verify_golden("cfg", m, sig.as_bytes()), Ok(()));
        // Another set, other bytes, another key.
        assert!(k.public().verify_golden("cfg2", m, sig.as_bytes()).is_err());
        let mut other = m.to_vec();
        other[0] ^= 1;
        assert!(k
            .public()
            .verify_golden("cfg", &other, sig.as_bytes())
            .is_err());
        let e = key(2)
            .public()
            .verify_golden("cfg", m, sig.as_bytes())
            .unwrap_err();
        assert!(e.contains("another key"), "{e}");
        // Every single flipped bit of the signature file is refused.
        for i in 0..sig.len() {
            for bit in 0..8 {
                let mut b = sig.clone().into_bytes();
                b[i] ^= 1 << bit;
                assert!(
                    k.public().verify_golden("cfg", m, &b).is_err(),
                    "byte {i} bit {bit}"
                );
            }
        }
        // Every truncation too.
        for n in 0..sig.len() {
            assert!(k
                .public()
                .verify_golden("cfg", m, &sig.as_bytes()[..n])
                .is_err());
        }
    }

    #[test]
    fn the_message_separates_the_set_name_from_the_manifest() {
        assert_ne!(message("ab", b"c"), message("a", b"bc"));
        assert!(message("a", b"").starts_with(DOMAIN));
    }

    #[test]
    fn a_non_canonical_signature_is_refused_by_strict_verification() {
        // s + l (the group order) is the same scalar for a lenient verifier; strict
        // verification refuses any s >= l.
        let k = key(3);
        let m = b"x";
        let sig = k.sign_golden("s", m);
        let (signer, s) = parse_signature(sig.as_bytes()).unwrap();
        let mut raw = s.to_bytes();
        const L: [u8; 32] = [
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9,
            0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        let mut carry = 0u16;
        for i in 0..32 {
            let v = u16::from(raw[32 + i]) + u16::from(L[i]) + carry;
            raw[32 + i] = (v & 0xff) as u8;
            carry = v >> 8;
        }
        let mut text = format!("{SIGNATURE_MAGIC} 1 ");
        to_hex(&signer, &mut text);
        text.push(' ');
        to_hex(&raw, &mut text);
        text.push('\n');
        assert!(k.public().verify_golden("s", m, text.as_bytes()).is_err());
    }
}
