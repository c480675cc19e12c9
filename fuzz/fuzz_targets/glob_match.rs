//! Fuzz target: include/exclude patterns (`glob.rs`). Input: a pattern, a NUL, a
//! path. Never panics; accepts and refuses the same patterns as globset (the matcher
//! rebound used before) and, for ASCII text, matches the same paths (`?` and classes
//! read one character, globset one byte: the documented difference). libFuzzer's
//! `-timeout` catches a match that is not linear.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rebound::testing::glob_matches;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (pattern, path) = text.split_once('\0').unwrap_or((text, ""));
    if pattern.len() > 256 || path.len() > 4096 {
        return;
    }
    let ours = glob_matches(pattern, path);
    let theirs = globset::GlobBuilder::new(pattern)
        .literal_separator(true)
        .backslash_escape(true)
        .build();
    match (&ours, theirs) {
        (Ok(m), Ok(g)) => {
            if pattern.is_ascii() && path.is_ascii() {
                assert_eq!(*m, g.compile_matcher().is_match(path), "{pattern:?} {path:?}");
            }
        }
        (Err(_), Err(_)) => {}
        // globset refuses a pattern whose regular expression grows past its size
        // limit; rebound's automaton has no such limit (the configuration is at most
        // 1 MiB).
        (Ok(_), Err(e)) if matches!(e.kind(), globset::ErrorKind::Regex(_)) => {}
        (o, t) => panic!("{pattern:?}: ours {o:?}, globset {t:?}"),
    }
});
