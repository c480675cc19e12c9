//! Content digests: the hash algorithms a set can use and a streaming hasher.
//!
//! Files are always hashed while streamed through a caller-supplied buffer, so memory
//! use does not depend on file size.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Hash algorithm of a set's entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum HashAlgo {
    /// BLAKE3, 256-bit. The default: fast and cryptographically strong.
    #[default]
    Blake3,
    /// SHA-256: for users whose tooling already speaks it.
    Sha256,
    /// CRC-32 (IEEE): detects media corruption only, not deliberate changes; the
    /// vendor's `file_crc32` compatibility choice.
    Crc32,
    /// XXH3, 128-bit (seed 0, default secret): as fast as CRC-32 and far stronger
    /// against accidental collisions, but not against deliberate changes.
    Xxh3,
}

impl HashAlgo {
    /// Name used in configuration and manifests.
    pub fn name(self) -> &'static str {
        match self {
            HashAlgo::Blake3 => "blake3",
            HashAlgo::Sha256 => "sha256",
            HashAlgo::Crc32 => "crc32",
            HashAlgo::Xxh3 => "xxh3",
        }
    }

    /// Every algorithm, in the order they are documented.
    pub const ALL: [HashAlgo; 4] = [
        HashAlgo::Blake3,
        HashAlgo::Sha256,
        HashAlgo::Crc32,
        HashAlgo::Xxh3,
    ];

    /// Digest length in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            HashAlgo::Blake3 | HashAlgo::Sha256 => 32,
            HashAlgo::Xxh3 => 16,
            HashAlgo::Crc32 => 4,
        }
    }

    /// A fresh streaming hasher.
    pub fn hasher(self) -> Hasher {
        match self {
            HashAlgo::Blake3 => Hasher::Blake3(Box::new(blake3::Hasher::new())),
            HashAlgo::Sha256 => Hasher::Sha256(Box::default()),
            HashAlgo::Crc32 => Hasher::Crc32(crc32fast::Hasher::new()),
            HashAlgo::Xxh3 => Hasher::Xxh3(Box::default()),
        }
    }

    /// Digest of a byte slice.
    pub fn digest(self, data: &[u8]) -> Digest {
        let mut h = self.hasher();
        h.update(data);
        h.finish()
    }
}

impl FromStr for HashAlgo {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "blake3" => Ok(HashAlgo::Blake3),
            "sha256" => Ok(HashAlgo::Sha256),
            "crc32" => Ok(HashAlgo::Crc32),
            "xxh3" => Ok(HashAlgo::Xxh3),
            other => Err(format!(
                "unknown hash algorithm `{other}` (expected blake3, sha256, crc32 or xxh3)"
            )),
        }
    }
}

impl fmt::Display for HashAlgo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A streaming hasher for one of the [`HashAlgo`]s.
pub enum Hasher {
    Blake3(Box<blake3::Hasher>),
    Sha256(Box<sha2::Sha256>),
    Crc32(crc32fast::Hasher),
    /// Boxed: the streaming state carries a buffer of several hundred bytes.
    Xxh3(Box<xxhash_rust::xxh3::Xxh3Default>),
}

impl fmt::Debug for Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Hasher")
    }
}

impl Hasher {
    /// Feeds bytes.
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Blake3(h) => {
                h.update(data);
            }
            Hasher::Sha256(h) => sha2::Digest::update(h.as_mut(), data),
            Hasher::Crc32(h) => h.update(data),
            Hasher::Xxh3(h) => h.update(data),
        }
    }

    /// The digest of everything fed so far.
    pub fn finish(self) -> Digest {
        match self {
            Hasher::Blake3(h) => Digest::from_slice(h.finalize().as_bytes()),
            Hasher::Sha256(h) => Digest::from_slice(&sha2::Digest::finalize(*h)),
            Hasher::Crc32(h) => Digest::from_slice(&h.finalize().to_be_bytes()),
            // Big-endian: XXH3's canonical form, as `xxhsum -H2` prints it.
            Hasher::Xxh3(h) => Digest::from_slice(&h.digest128().to_be_bytes()),
        }
    }
}

/// A content digest (up to 32 bytes). Printed and stored as lowercase hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    len: u8,
    bytes: [u8; 32],
}

impl Digest {
    pub(crate) fn from_slice(s: &[u8]) -> Digest {
        let mut bytes = [0u8; 32];
        let n = s.len().min(32);
        bytes[..n].copy_from_slice(&s[..n]);
        Digest {
            len: n as u8,
            bytes,
        }
    }

    /// The digest bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(self.len as usize * 2);
        for b in self.as_bytes() {
            s.push(char::from(HEX[(b >> 4) as usize]));
            s.push(char::from(HEX[(b & 15) as usize]));
        }
        s
    }

    /// Parses lowercase hex of exactly `algo.digest_len()` bytes.
    pub fn from_hex(algo: HashAlgo, s: &str) -> Option<Digest> {
        let b = s.as_bytes();
        if b.len() != algo.digest_len() * 2 {
            return None;
        }
        let mut bytes = [0u8; 32];
        // A table lookup per digit; any byte outside `0-9a-f` maps to 0xff, and one
        // such digit (caught by or-ing every digit together) refuses the whole string.
        let mut bad = 0u8;
        for (out, pair) in bytes.iter_mut().zip(b.chunks_exact(2)) {
            let hi = UNHEX[usize::from(pair[0])];
            let lo = UNHEX[usize::from(pair[1])];
            bad |= hi | lo;
            *out = (hi << 4) | (lo & 15);
        }
        (bad & 0xf0 == 0).then_some(Digest {
            len: algo.digest_len() as u8,
            bytes,
        })
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Value of each lowercase hex digit; 0xff for every other byte.
const UNHEX: [u8; 256] = {
    let mut t = [0xffu8; 256];
    let mut i = 0;
    while i < 16 {
        t[HEX[i] as usize] = i as u8;
        i += 1;
    }
    t
};

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.to_hex())
    }
}

impl Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        assert_eq!(
            HashAlgo::Sha256.digest(b"abc").to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(HashAlgo::Crc32.digest(b"123456789").to_hex(), "cbf43926");
        // `xxhsum -H2` (Debian package xxhash) of the same inputs.
        assert_eq!(
            HashAlgo::Xxh3.digest(b"").to_hex(),
            "99aa06d3014798d86001c324468d497f"
        );
        assert_eq!(
            HashAlgo::Xxh3.digest(b"abc").to_hex(),
            "06b05ab6733a618578af5f94892f3950"
        );
        let long: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        assert_eq!(
            HashAlgo::Xxh3.digest(&long).to_hex(),
            "54182c58bbb1337c42c23aeead96750d"
        );
        assert_eq!(
            HashAlgo::Blake3.digest(b"").to_hex(),
            "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
    }

    #[test]
    fn hex_round_trip_and_rejects() {
        for algo in HashAlgo::ALL {
            let d = algo.digest(b"hello");
            assert_eq!(Digest::from_hex(algo, &d.to_hex()), Some(d));
            assert_eq!(Digest::from_hex(algo, &d.to_hex()[1..]), None);
            assert_eq!(Digest::from_hex(algo, &d.to_hex().to_uppercase()), None);
        }
    }

    #[test]
    fn names_parse_back_and_lengths_match_digests() {
        for algo in HashAlgo::ALL {
            assert_eq!(algo.name().parse::<HashAlgo>(), Ok(algo));
            assert_eq!(algo.digest(b"x").as_bytes().len(), algo.digest_len());
        }
        let e = "md5".parse::<HashAlgo>().unwrap_err();
        assert!(e.contains("xxh3"), "{e}");
    }

    #[test]
    fn streaming_equals_one_shot() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        for algo in HashAlgo::ALL {
            let mut h = algo.hasher();
            for chunk in data.chunks(4093) {
                h.update(chunk);
            }
            assert_eq!(h.finish(), algo.digest(&data));
        }
    }
}
