//! Every released on-disk format stays readable: each fixture under tests/fixtures/ is a
//! file exactly as a released rebound wrote it, and must decode to the same content.

// Test code: a failed unwrap is a failed test, which is what we want.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use rebound::digest::HashAlgo;
use rebound::manifest::Manifest;
use rebound::relpath::RelPath;

#[test]
fn manifest_format_1_fixture_decodes() {
    let bytes = include_bytes!("fixtures/manifest-v1.txt");
    let m = Manifest::decode(bytes).expect("format 1 fixture must stay readable");
    assert_eq!(m.set, "apps");
    assert_eq!(m.generation, 42);
    assert_eq!(m.hash, HashAlgo::Blake3);
    assert_eq!(m.tag, Some(7));
    assert_eq!(m.entries.len(), 3);
    let e = &m.entries[&RelPath::new("apps/app.bin").unwrap()];
    assert_eq!(e.size, 15);
    assert_eq!(e.mode, 0o755);
    assert_eq!(e.digest, HashAlgo::Blake3.digest(b"application v1\n"));
    assert!(m
        .entries
        .contains_key(&RelPath::new("apps/with space%.cfg").unwrap()));
    // Re-encoding gives the same bytes: one manifest, one representation.
    assert_eq!(m.encode(), bytes.to_vec());
}
