//! Fuzz target: the boot counter parser (`.rebound/<set>/boots.0`, `boots.1`) never
//! panics, and what it accepts renders to a record it reads back the same, no longer
//! than the input. Tried as it is and resealed (see `statcache_decode`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rebound::testing::{boots_parse, boots_render, reseal};

fn check(bytes: &[u8]) {
    if let Some(b) = boots_parse(bytes) {
        let again = boots_render(&b);
        assert_eq!(boots_parse(&again).as_ref(), Some(&b));
        assert!(again.len() <= bytes.len(), "rendering grew");
        if let Some(id) = &b.boot_id {
            assert!(!id.is_empty() && id != "-" && !id.contains([' ', '\n']));
        }
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    if let Some(sealed) = reseal(data) {
        check(&sealed);
    }
});
