//! Fuzz target: the stat cache parser (`.rebound/<set>/statcache`) never panics, and
//! whatever it accepts re-encodes to a cache it reads back the same, no longer than the
//! input (the encoding is the shortest spelling), with relative paths only.
//! The input is tried as it is and resealed (a valid checksum trailer in place of its
//! own), so that mutations of the body reach the parser behind the trailer check.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rebound::testing::{reseal, StatCache};
use rebound::HashAlgo;

fn check(bytes: &[u8]) {
    for algo in [HashAlgo::Blake3, HashAlgo::Sha256, HashAlgo::Crc32] {
        if let Some(c) = StatCache::decode(bytes, algo) {
            let again = c.encode(algo);
            assert_eq!(StatCache::decode(&again, algo).as_ref(), Some(&c));
            assert!(again.len() <= bytes.len(), "encoding grew");
            for p in c.records.keys() {
                assert!(!p.as_str().starts_with('/') && !p.components().any(|c| c == ".."));
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    if let Some(sealed) = reseal(data) {
        check(&sealed);
    }
});
