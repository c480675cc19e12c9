//! Fuzz target: the manifest parser never panics, whatever it accepts in format 2
//! without `mac` lines re-encodes to exactly the same bytes (one manifest, one
//! representation), and what it accepts in format 1 (no owners) or 3 (whose MAC only
//! `decode_keyed` checks: target manifest_keyed) re-encodes as format 2 to the same
//! manifest. The input is tried as it is and resealed (a valid checksum trailer in
//! place of its own): a fuzzer cannot forge the BLAKE3 trailer, so without the second
//! try every mutation stops at the trailer check and the parser behind it is never run.
//! The streaming boot's line-by-line reader (`manifest::Stream`) must read each input
//! exactly as `decode` does.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rebound::testing::{manifest_streamed, record_open, reseal, Manifest};

fn check(data: &[u8]) {
    // The streaming boot's reader (docs/design.md 3.2) reads exactly what decode
    // reads, and refuses exactly what it refuses.
    assert_eq!(manifest_streamed(data, None), Manifest::decode(data).ok());
    if let Ok(m) = Manifest::decode(data) {
        if data.starts_with(b"rebound-manifest 1\n") {
            assert!(m.entries.values().all(|e| e.owner.is_none()));
            assert_eq!(Manifest::decode(&m.encode()).as_ref(), Ok(&m));
        } else if data.starts_with(b"rebound-manifest 2\n")
            && record_open(data).is_ok_and(|b| b.len() + 69 == data.len())
        {
            // Format 2 without `mac` lines (read without a key, `open` drops them).
            assert_eq!(m.encode(), data, "accepted bytes must be canonical");
        } else {
            // Format 3 (its MAC is checked by `decode_keyed`: fuzz target
            // manifest_keyed), or with `mac` lines: the same manifest as format 2.
            assert_eq!(Manifest::decode(&m.encode()).as_ref(), Ok(&m));
        }
        for p in m.entries.keys() {
            assert!(!p.as_str().starts_with('/') && !p.components().any(|c| c == ".."));
        }
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    if let Some(sealed) = reseal(data) {
        check(&sealed);
    }
});
