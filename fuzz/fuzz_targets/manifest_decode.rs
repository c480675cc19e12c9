//! Fuzz target: the manifest parser never panics, and whatever it accepts re-encodes to
//! exactly the same bytes (one manifest, one representation).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rebound::manifest::Manifest;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Manifest::decode(data) {
        assert_eq!(m.encode(), data, "accepted bytes must be canonical");
        for p in m.entries.keys() {
            assert!(!p.as_str().starts_with('/') && !p.components().any(|c| c == ".."));
        }
    }
});
