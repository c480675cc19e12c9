//! Fuzz target: the configuration parser never panics, and every set it accepts has
//! absolute, non-overlapping replica roots.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use rebound::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(c) = Config::parse(text, Path::new("/fuzz.toml")) {
        for s in &c.sets {
            for r in &s.replicas {
                assert!(r.root.is_absolute());
            }
        }
    }
});
