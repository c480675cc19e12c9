//! Every released on-disk format stays readable: each fixture under tests/fixtures/ is a
//! file exactly as a released rebound wrote it, and must decode to the same content.

// Test code: a failed unwrap is a failed test, which is what we want.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use rebound::testing::Manifest;
use rebound::{HashAlgo, Owner, RelPath};

#[test]
fn manifest_format_1_fixture_decodes_without_owners_and_is_rewritten_as_format_2() {
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
    // Format 1 recorded no owner: unknown, so neither checked nor restored.
    assert!(m.entries.values().all(|e| e.owner.is_none()));
    // rebound writes format 2 only: the same entries, owners marked unknown, and
    // what it writes reads back as the same manifest.
    let again = m.encode();
    let text = String::from_utf8(again.clone()).unwrap();
    assert!(text.starts_with("rebound-manifest 2\n"), "{text}");
    assert!(
        text.contains(
            "file 15 755 - - 86048dd77b28fe1829b7b393afa2419ecd7b80da6598abb634619e2fe3b8b4ad apps/app.bin\n"
        ),
        "{text}"
    );
    assert_eq!(Manifest::decode(&again).unwrap(), m);
}

#[test]
fn manifest_format_2_fixture_decodes_with_owners_and_setuid_bits() {
    let bytes = include_bytes!("fixtures/manifest-v2.txt");
    let m = Manifest::decode(bytes).expect("format 2 fixture must stay readable");
    assert_eq!(m.set, "config");
    assert_eq!(m.generation, 5);
    assert_eq!(m.hash, HashAlgo::Sha256);
    assert_eq!(m.tag, None);
    let get = |p: &str| m.entries[&RelPath::new(p).unwrap()].clone();
    let daemon = get("bin/daemon");
    assert_eq!(daemon.mode, 0o4755);
    assert_eq!(daemon.owner, Some(Owner { uid: 0, gid: 0 }));
    assert_eq!(daemon.digest, HashAlgo::Sha256.digest(b"daemon v2\n"));
    let conf = get("etc/app.conf");
    assert_eq!(conf.mode, 0o600);
    assert_eq!(
        conf.owner,
        Some(Owner {
            uid: 1000,
            gid: 1000
        })
    );
    // An owner written as `- -`: not recorded (an entry carried over from format 1).
    assert_eq!(get("legacy.txt").owner, None);
    // Re-encoding gives the same bytes: one manifest, one representation.
    assert_eq!(m.encode(), bytes.to_vec());
}
