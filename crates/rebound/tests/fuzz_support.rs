//! What the fuzz targets (fuzz/) rely on in `rebound::testing`: `reseal` puts a valid
//! checksum trailer on a mutated record, so that the parser behind the trailer check
//! is reached (a fuzzer cannot forge a BLAKE3 sum).

// Test code: a failed unwrap is a failed test, which is what we want.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use rebound::testing::{record_open, reseal, Broken, Manifest};

const V2: &[u8] = include_bytes!("fixtures/manifest-v2.txt");

fn replace(bytes: &[u8], from: &str, to: &str) -> Vec<u8> {
    let text = std::str::from_utf8(bytes).unwrap();
    assert!(text.contains(from), "{from}");
    text.replacen(from, to, 1).into_bytes()
}

#[test]
fn reseal_puts_a_valid_trailer_on_a_changed_body_and_keeps_a_valid_record() {
    // A valid record is left as it is.
    assert_eq!(reseal(V2).as_deref(), Some(V2));
    // A changed body fails the trailer check; resealed, it reaches the parser.
    let changed = replace(V2, "generation ", "generation 1");
    assert_eq!(record_open(&changed), Err(Broken::Checksum));
    assert!(Manifest::decode(&changed).is_err());
    let sealed = reseal(&changed).unwrap();
    let body = record_open(&sealed).expect("resealed record opens");
    assert!(body.len() < sealed.len() && changed.starts_with(body));
    let m = Manifest::decode(&sealed).expect("resealed manifest decodes");
    assert!(m.generation >= 10, "the changed generation is read");
    // Trailer cut off, or cut short: one is added after the body.
    let end = V2.windows(5).rposition(|w| w == b"\nend ").unwrap() + 1;
    assert_eq!(reseal(&V2[..end]).as_deref(), Some(V2));
    assert_eq!(reseal(&V2[..end + 10]).as_deref(), Some(V2));
    // A body without its last line feed gets one; text only.
    assert_eq!(reseal(&V2[..end - 1]).as_deref(), Some(V2));
    assert_eq!(reseal(b"\xff\n"), None);
    assert_eq!(record_open(&reseal(b"").unwrap()), Ok(&b""[..]));
}

/// The input the fuzz target event_log's round-trip check failed on (fuzz/README.md):
/// an event time whose offset took it past year 9999 read back as another time once
/// the log was rewritten. Such a log is now refused (`rfc3339::parse`), like any other
/// field out of its range.
#[test]
fn an_event_log_time_past_year_9999_is_refused() {
    use rebound::testing::{log_parse, log_render};
    let body = |time: &str| {
        format!("rebound-events 1\nset cfg\nnext 2\nevent 1 {time} 3 boot repaired\nnote x\n")
    };
    let log = log_parse(&body("9999-12-31T23:59:59+01:00"), "cfg").expect("in range");
    assert_eq!(log_parse(&log_render(&log, "cfg"), "cfg"), Some(log));
    assert_eq!(log_parse(&body("9999-12-31T23:59:59-01:00"), "cfg"), None);
    assert_eq!(log_parse(&body("0000-01-01T00:00:00+00:01"), "cfg"), None);
}
