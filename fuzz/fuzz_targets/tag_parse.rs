//! Fuzz target: the vendor version tag parser never panics, and agrees with a plain
//! trimmed integer parse.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rebound::testing::parse_tag;

fuzz_target!(|data: &[u8]| {
    let got = parse_tag(data);
    if let Ok(s) = std::str::from_utf8(data) {
        assert_eq!(got.ok(), s.trim().parse::<i64>().ok());
    }
});
