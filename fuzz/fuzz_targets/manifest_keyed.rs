//! Fuzz target: keyed records (docs/design.md 2.3) and format 3 manifests, as a
//! writable copy's manifest is read with a device key (`Manifest::decode_keyed`, set
//! `cfg`, root `/a`). Never a panic. What is accepted re-encodes (`encode_for`) to a
//! manifest read back the same, is read the same without the key, and is refused with
//! another key, set or root. The body is also sealed with the key (a fuzzer cannot
//! forge a MAC): then a format 3 body is accepted exactly when it parses without the
//! key, a format 1 or 2 body never (no downgrade), `record::open_keyed` gives the body
//! back, and the same body without its `mac` line is refused. The streaming boot's
//! reader (`manifest::Stream`) reads each input with the key exactly as
//! `decode_keyed` does.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rebound::testing::{
    manifest_streamed, record_open, record_open_keyed, record_seal, record_seal_keyed, reseal,
    Manifest,
};
use rebound::{DeviceKey, Signers};

fn keys() -> &'static (DeviceKey, DeviceKey) {
    static K: OnceLock<(DeviceKey, DeviceKey)> = OnceLock::new();
    K.get_or_init(|| {
        let p = Path::new("/fuzz.key");
        (
            DeviceKey::from_bytes(&[7; 32], p),
            DeviceKey::from_bytes(&[8; 32], p),
        )
    })
}

fuzz_target!(|data: &[u8]| {
    let (k, other) = keys();
    let (a, b) = (Path::new("/a"), Path::new("/b"));
    let signers = Signers {
        keys: [Some(k), None],
    };
    // The streaming boot's reader checks the MAC as decode_keyed does.
    assert_eq!(
        manifest_streamed(data, Some((k, "cfg", a))),
        Manifest::decode_keyed(data, k, "cfg", a).ok()
    );
    if let Ok(m) = Manifest::decode_keyed(data, k, "cfg", a) {
        let again = m.encode_for(signers, a);
        assert_eq!(Manifest::decode_keyed(&again, k, "cfg", a).as_ref(), Ok(&m));
        assert_eq!(Manifest::decode(data).as_ref(), Ok(&m));
        assert!(Manifest::decode_keyed(data, k, "cfg", b).is_err());
        assert!(Manifest::decode_keyed(data, k, "cfh", a).is_err());
        assert!(Manifest::decode_keyed(data, other, "cfg", a).is_err());
    }
    let Some(sealed) = reseal(data) else { return };
    let Ok(body) = record_open(&sealed) else {
        panic!("a resealed record must open")
    };
    let Ok(text) = std::str::from_utf8(body) else {
        return;
    };
    let keyed = record_seal_keyed(text.to_string(), signers, "cfg", a);
    assert_eq!(record_open_keyed(&keyed, k, "cfg", a), Ok(body));
    assert_eq!(record_open(&keyed), Ok(body));
    let got = Manifest::decode_keyed(&keyed, k, "cfg", a);
    assert_eq!(manifest_streamed(&keyed, Some((k, "cfg", a))), got.clone().ok());
    let plain = record_seal(text.to_string());
    if body.starts_with(b"rebound-manifest 3\n") {
        assert_eq!(got.as_ref().ok(), Manifest::decode(&plain).as_ref().ok());
    } else {
        assert!(got.is_err(), "format 1 or 2 accepted with a key");
    }
    assert!(Manifest::decode_keyed(&plain, k, "cfg", a).is_err());
    if got.is_ok() {
        assert!(Manifest::decode_keyed(&keyed, k, "cfg", b).is_err());
        assert!(Manifest::decode_keyed(&keyed, other, "cfg", a).is_err());
    }
});
