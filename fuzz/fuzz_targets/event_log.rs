//! Fuzz target: the event log (`.rebound/<set>/events.0`, `events.1`) as it is read:
//! the checksum trailer (`record::open`), then `Log::parse` for the set its second
//! line names (`set <name>`, if a valid set name, else `cfg`; the seeds come from
//! several sets). Never a panic; a log is refused for another set; what parses
//! renders to a body that parses back the same, at most twice the input's length (a
//! date alone, 10 bytes, is rendered as a full 20-byte time), with its events numbered
//! in order below `next`. Tried as it is and resealed (see `statcache_decode`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rebound::testing::{log_parse, log_render, record_open, record_seal, reseal};

fn check(bytes: &[u8]) {
    let Ok(body) = record_open(bytes) else { return };
    let Ok(text) = std::str::from_utf8(body) else {
        return;
    };
    // A set name as the configuration allows them (a `\r` in one, which no set name
    // holds, made a false alarm: `str::lines` drops it).
    let set = text
        .split('\n')
        .nth(1)
        .and_then(|l| l.strip_prefix("set "))
        .filter(|s| {
            (1..=64).contains(&s.len())
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        })
        .unwrap_or("cfg");
    let Some(log) = log_parse(text, set) else {
        return;
    };
    assert_eq!(
        log_parse(text, &format!("{set}x")),
        None,
        "another set's log"
    );
    let again = log_render(&log, set);
    assert_eq!(log_parse(&again, set).as_ref(), Some(&log));
    assert!(again.len() <= 2 * text.len(), "rendering more than doubled");
    let sealed = record_seal(again);
    assert!(record_open(&sealed).is_ok());
    let mut prev = 0;
    for e in &log.events {
        assert!(e.seq > prev && e.seq < log.next);
        prev = e.seq;
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    if let Some(sealed) = reseal(data) {
        check(&sealed);
    }
});
