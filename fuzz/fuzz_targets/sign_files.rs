//! Fuzz target: the three ed25519 file formats of signed golden manifests (the public
//! key file `golden_public_key`, the secret key file `seal --sign-key`, the signature
//! file beside the golden manifest). Never a panic; each accepts exactly one spelling
//! (what parses re-encodes to the same bytes); verifying the input as a signature file
//! of any manifest never panics; and a signature made over the input as a golden
//! manifest verifies for its set and key only, and not once a byte of it is changed.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rebound::testing::parse_signature;
use rebound::{PublicKey, SignKey};

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

fn keys() -> &'static (SignKey, PublicKey, PublicKey) {
    static K: OnceLock<(SignKey, PublicKey, PublicKey)> = OnceLock::new();
    K.get_or_init(|| {
        let parse = |seed: u8| {
            let text = format!("rebound-ed25519-secret 1 {}\n", hex(&[seed; 32]));
            match SignKey::parse(text.as_bytes()) {
                Ok(k) => k,
                Err(e) => panic!("fuzz key: {e}"),
            }
        };
        let (k, other) = (parse(9), parse(10));
        let (p, o) = (k.public(), other.public());
        (k, p, o)
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = PublicKey::parse(data) {
        assert_eq!(p.encode().as_bytes(), data);
    }
    if let Ok(k) = SignKey::parse(data) {
        assert_eq!(k.encode().as_bytes(), data);
        assert_eq!(
            PublicKey::parse(k.public().encode().as_bytes()),
            Ok(k.public())
        );
    }
    if let Ok((signer, sig)) = parse_signature(data) {
        let again = format!(
            "rebound-ed25519-signature 1 {} {}\n",
            hex(&signer),
            hex(&sig.to_bytes())
        );
        assert_eq!(again.as_bytes(), data);
    }
    let (k, public, other) = keys();
    // The input as a signature file, of a golden manifest that is its own first half.
    let _ = public.verify_golden("cfg", &data[..data.len() / 2], data);
    // The input as a golden manifest.
    let sig = k.sign_golden("cfg", data);
    assert_eq!(public.verify_golden("cfg", data, sig.as_bytes()), Ok(()));
    assert!(public.verify_golden("cfh", data, sig.as_bytes()).is_err());
    assert!(other.verify_golden("cfg", data, sig.as_bytes()).is_err());
    if let Some((&first, rest)) = data.split_first() {
        let mut changed = vec![first ^ 1];
        changed.extend_from_slice(rest);
        assert!(public
            .verify_golden("cfg", &changed, sig.as_bytes())
            .is_err());
    }
});
