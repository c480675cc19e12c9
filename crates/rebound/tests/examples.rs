//! The example configurations shipped in the release tarballs (`examples/*.toml`,
//! packed by tools/dist.sh) are valid configurations.

// Test code: a failed unwrap is a failed test, which is what we want.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

#[test]
fn every_shipped_example_configuration_parses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut seen = Vec::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            let text = std::fs::read_to_string(&p).unwrap();
            let cfg = rebound::Config::parse(&text, &p)
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            assert!(
                cfg.set("config").is_ok() || cfg.set("apps").is_ok() || cfg.set("data").is_ok()
            );
            seen.push(p.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    seen.sort();
    assert_eq!(
        seen,
        ["device.toml", "golden.toml", "mirror.toml", "parity.toml"]
    );
}
