//! Fuzz target: the time parser (`rebound log --since`, the event log's times) never
//! panics; what it accepts lies in years 0-9999 and its RFC 3339 form parses back to
//! the same instant; and the formatter, for any i64 (the first 8 bytes), writes 20
//! bytes that parse back to it, clamped to years 0-9999.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rebound::{parse_time, rfc3339};

/// 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z.
const MIN: i64 = -62_167_219_200;
const MAX: i64 = 253_402_300_799;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Some(t) = parse_time(s) {
            assert!((MIN..=MAX).contains(&t), "{s:?} -> {t}");
            assert_eq!(parse_time(&rfc3339(t)), Some(t), "{s:?}");
        }
    }
    if let Some(b) = data.first_chunk::<8>() {
        let t = i64::from_le_bytes(*b);
        let f = rfc3339(t);
        assert_eq!(f.len(), 20, "{f}");
        assert_eq!(parse_time(&f), Some(t.clamp(MIN, MAX)), "{f}");
    }
});
