//! Signed golden manifests through the binary (issue 15, item 2): `rebound keygen`,
//! `seal --sign-key`, a set's `golden_public_key`, and the attacks a signature stops.
//!
//! The attacker of docs/design.md's threat table can write the golden partition (the
//! flash read out and rewritten offline): they replace a golden file and rewrite its
//! golden manifest entry with a recomputed plain checksum. Without a key the next boot
//! that needs the factory version installs their content; with `golden_public_key` the
//! golden manifest is `golden_damaged`, never the fallback and never the authority.

use std::os::unix::fs::PermissionsExt;

use rebound::testing::Manifest;
use rebound::{HashAlgo, SignKey};

use crate::util::Dir;

const SIG: &str = "bak/.rebound/config/manifest.sig";
const GOLDEN_MANIFEST: &str = "bak/.rebound/config/manifest";
const EVIL: &str = "{\"apn\": \"attacker\"}\n";

fn mode(d: &Dir, rel: &str) -> u32 {
    std::fs::symlink_metadata(d.path(rel))
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}

/// `rebound keygen --out factory/<name>` in `d` (no configuration needed).
fn keygen(d: &Dir, name: &str) {
    std::fs::create_dir_all(d.path("factory")).unwrap();
    d.run(["keygen", "--out", &format!("factory/{name}")], 0)
        .says(&["secret key:", "public key:"]);
}

/// Adds `golden_public_key = <d>/factory/<name>.pub` to the (only) set.
fn configure_key(d: &Dir, name: &str) {
    let mut c = d.read("rebound.toml");
    c.push_str(&format!(
        "golden_public_key = \"{}\"\n",
        d.path(&format!("factory/{name}.pub")).display()
    ));
    d.config(&c);
}

/// A golden device sealed with `factory/golden`, whose set names `factory/golden.pub`.
fn signed(name: &str, copies: &[&str]) -> Dir {
    let d = Dir::golden_device(name, copies);
    keygen(&d, "golden");
    configure_key(&d, "golden");
    d.run(["seal", "--sign-key", "factory/golden"], 0)
        .says(&["sealed 4 files"]);
    d
}

/// The attack: golden's `apn_cfg.json` replaced and its golden manifest entry
/// rewritten to match, with a valid plain checksum.
fn forge_golden(d: &Dir) -> Vec<u8> {
    let mut m = Manifest::decode(&d.read_opt(GOLDEN_MANIFEST).unwrap()).unwrap();
    let e = m
        .entries
        .get_mut(&rebound::RelPath::new("apn_cfg.json").unwrap())
        .unwrap();
    e.size = EVIL.len() as u64;
    e.digest = HashAlgo::Blake3.digest(EVIL.as_bytes());
    let bytes = m.encode();
    d.write("bak/apn_cfg.json", EVIL);
    d.write(GOLDEN_MANIFEST, &bytes);
    bytes
}

#[test]
fn keygen_writes_a_private_secret_and_a_public_key_and_never_overwrites() {
    let d = Dir::new("keygen");
    keygen(&d, "k");
    let secret = d.read("factory/k");
    let public = d.read("factory/k.pub");
    assert!(secret.starts_with("rebound-ed25519-secret 1 "), "{secret}");
    assert!(public.starts_with("rebound-ed25519-public 1 "), "{public}");
    assert_eq!(secret.len(), "rebound-ed25519-secret 1 ".len() + 65);
    assert_eq!(mode(&d, "factory/k"), 0o600);
    assert_eq!(mode(&d, "factory/k.pub"), 0o644);
    // The printed public key is the file's.
    let r = d.run(["keygen", "--out", "factory/other"], 0);
    let other = d.read("factory/other.pub");
    assert!(r.stdout().contains(other.split(' ').nth(2).unwrap().trim()));
    assert_ne!(other, public, "two keygens gave the same key");
    // Never over an existing secret or public key; nothing is changed.
    d.run(["keygen", "--out", "factory/k"], 2)
        .says(&["factory/k: exists", "never overwrites"]);
    d.remove("factory/k");
    d.run(["keygen", "--out", "factory/k"], 2)
        .says(&["factory/k.pub: exists"]);
    assert!(
        !d.exists("factory/k"),
        "a secret was written beside an old public key"
    );
    assert_eq!(d.read("factory/k.pub"), public);
}

#[test]
fn seal_with_a_sign_key_signs_before_the_marker_and_boot_verify_and_status_accept_it() {
    let d = Dir::golden_device("sign-seal", &[]);
    keygen(&d, "golden");
    configure_key(&d, "golden");
    // The order of the writes: golden manifest, its signature, then the marker.
    let plan = d
        .run(["seal", "--dry-run", "--sign-key", "factory/golden"], 0)
        .stdout();
    let at = |needle: &str| {
        plan.find(needle)
            .unwrap_or_else(|| panic!("{needle:?} not in:\n{plan}"))
    };
    assert!(at("write golden manifest") < at("sign the golden manifest"));
    assert!(at("sign the golden manifest") < at("seal the golden copy"));
    assert!(!d.exists(SIG), "a dry run wrote the signature");
    d.run(["seal", "--sign-key", "factory/golden"], 0)
        .says(&["sealed 4 files"]);
    assert!(d.read(SIG).starts_with("rebound-ed25519-signature 1 "));
    d.run(["verify"], 0).says(&["result: intact"]);
    d.run(["boot"], 0).says(&["result: intact"]);
    d.run(["status"], 0)
        .says(&["signature: verified with the set's golden_public_key"]);
    let st = d.run(["status", "--json"], 0).json();
    assert!(
        st.to_string()
            .contains("\"signature\":{\"state\":\"verified\"}"),
        "{st}"
    );
    // The signed golden copy is a working fallback: every live manifest gone.
    d.remove("usr/.rebound");
    d.remove("usr/apn_cfg.json");
    d.run(["boot"], 0)
        .says(&["golden manifest", "result: repaired"]);
    assert_eq!(d.read("usr/apn_cfg.json"), "{\"apn\": \"factory\"}\n");
}

#[test]
fn without_a_public_key_a_forged_golden_manifest_is_installed_the_attack_signing_stops() {
    // The control for the next test: the same attack where no key is configured.
    let d = Dir::golden_device("sign-control", &[]);
    d.run(["seal"], 0);
    forge_golden(&d);
    d.remove("usr/apn_cfg.json");
    d.remove("usr/.rebound");
    d.run(["boot"], 0).says(&["result: repaired"]);
    assert_eq!(d.read("usr/apn_cfg.json"), EVIL);
}

#[test]
fn a_forged_golden_manifest_is_golden_damaged_and_never_a_source_or_the_authority() {
    let d = signed("sign-forged", &[]);
    forge_golden(&d);
    d.run(["verify"], 1).says(&[
        "golden damaged",
        "the signature does not verify",
        "reflash the golden image",
    ]);
    d.run(["status"], 0)
        .says(&["signature: REFUSED", "does not verify"]);
    // The live file damaged too: no verified copy is left, so it is LOST (exit 3),
    // never filled with the forged factory version.
    d.write("usr/apn_cfg.json", "{\"apn\": \"flipped\"}\n");
    d.run(["boot"], 3).says(&["LOST", "apn_cfg.json"]);
    assert_eq!(d.read("usr/apn_cfg.json"), "{\"apn\": \"flipped\"}\n");
    // And with every live manifest gone, the forged golden manifest is not the
    // authority: the set is refused (exit 2), nothing is written.
    d.remove("usr/.rebound");
    let before = d.contents("usr");
    d.run(["boot"], 2)
        .says(&["no intact manifest in any replica", "does not verify"]);
    assert_eq!(d.contents("usr"), before);
}

#[test]
fn a_forged_golden_copy_is_bypassed_for_an_intact_writable_copy() {
    let d = signed("sign-forged-copy", &["copy"]);
    forge_golden(&d);
    d.remove("usr/apn_cfg.json");
    d.run(["boot"], 0)
        .says(&["result: repaired", "copy/apn_cfg.json"]);
    assert_eq!(d.read("usr/apn_cfg.json"), "{\"apn\": \"factory\"}\n");
}

#[test]
fn a_missing_truncated_or_flipped_signature_makes_the_golden_copy_damaged() {
    let d = signed("sign-broken", &[]);
    let good = d.read(SIG);
    let damage: Vec<(&str, String, &str)> = vec![
        ("missing", String::new(), "not signed"),
        (
            "truncated",
            good[..good.len() / 2].to_string(),
            "not a signature file",
        ),
        (
            "a short line",
            format!("{}\n", &good[..good.len() - 3]),
            "malformed signature file",
        ),
        (
            "newline cut",
            good.trim_end().to_string(),
            "not a signature file",
        ),
        (
            "flipped",
            {
                // One hex digit of the signature itself, still a well-formed file.
                let mut b = good.clone().into_bytes();
                let i = b.len() - 10;
                b[i] = if b[i] == b'0' { b'1' } else { b'0' };
                String::from_utf8(b).unwrap()
            },
            "does not verify",
        ),
    ];
    for (what, content, says) in damage {
        if what == "missing" {
            d.remove(SIG);
        } else {
            d.write(SIG, &content);
        }
        let r = d.run(["verify"], 1).says(&["golden damaged", says]);
        assert!(
            r.stdout().contains("manifest.sig"),
            "{what}: {}",
            r.stdout()
        );
        d.run(["status"], 0).says(&["signature: REFUSED"]);
        // The golden copy is never the fallback.
        let live = d.contents("usr");
        std::fs::rename(d.path("usr/.rebound"), d.path("usr-meta")).unwrap();
        d.run(["boot"], 2)
            .says(&["no intact manifest in any replica"]);
        std::fs::rename(d.path("usr-meta"), d.path("usr/.rebound")).unwrap();
        assert_eq!(d.contents("usr"), live, "{what}");
    }
    d.write(SIG, &good);
    d.run(["verify"], 0).says(&["result: intact"]);
}

#[test]
fn a_forged_manifest_signed_with_another_key_is_refused_whatever_key_it_names() {
    let d = signed("sign-other", &[]);
    let bytes = forge_golden(&d);
    let attacker = SignKey::generate().unwrap();
    let sig = attacker.sign_golden("config", &bytes);
    d.write(SIG, &sig);
    d.run(["verify"], 1)
        .says(&["golden damaged", "signed by another key"]);
    // The same signature claiming to be by the configured key: it does not verify.
    let configured = d.read("factory/golden.pub");
    let configured = configured.split(' ').nth(2).unwrap().trim();
    let mut words: Vec<&str> = sig.trim_end().split(' ').collect();
    words[2] = configured;
    d.write(SIG, format!("{}\n", words.join(" ")));
    d.run(["verify"], 1)
        .says(&["golden damaged", "does not verify"]);
    d.remove("usr/apn_cfg.json");
    d.run(["boot"], 3).says(&["LOST", "apn_cfg.json"]);
    assert!(!d.exists("usr/apn_cfg.json"));
}

#[test]
fn the_wrong_public_key_configured_refuses_the_golden_copy_and_the_seal() {
    let d = signed("sign-wrong-pub", &[]);
    keygen(&d, "other");
    let c = d.read("rebound.toml").replace("golden.pub", "other.pub");
    d.config(&c);
    d.run(["verify"], 1)
        .says(&["golden damaged", "signed by another key"]);
    // A seal that the device would refuse is never written.
    let golden = d.contents("bak");
    d.run(["seal", "--force", "--sign-key", "factory/golden"], 2)
        .says(&["is not the one golden_public_key", "other.pub"]);
    d.run(["seal", "--force"], 2)
        .says(&["seal it with --sign-key"]);
    assert_eq!(d.contents("bak"), golden);
    // Sealing again with the configured key makes it whole.
    d.run(["seal", "--force", "--sign-key", "factory/other"], 0);
    d.run(["verify"], 0).says(&["result: intact"]);
}

#[test]
fn a_public_key_file_that_is_not_one_is_a_configuration_error() {
    let d = signed("sign-bad-pub", &[]);
    let good = d.read("factory/golden.pub");
    for (content, says) in [
        (Some("hello\n".to_string()), "not a public key file"),
        (Some(d.read("factory/golden")), "not a public key file"),
        (Some(good.trim_end().to_string()), "not a public key file"),
        (Some(good.replace(" 1 ", " 9 ")), "unknown version"),
        (
            // The identity point: a key of small order.
            Some(format!("rebound-ed25519-public 1 01{}\n", "0".repeat(62))),
            "weak",
        ),
        (None, "no such public key file"),
    ] {
        match &content {
            Some(c) => d.write("factory/golden.pub", c),
            None => d.remove("factory/golden.pub"),
        }
        for cmd in ["boot", "verify", "status"] {
            d.run([cmd], 2).says(&[
                "golden_public_key of set `config`",
                "factory/golden.pub",
                says,
            ]);
        }
    }
    // Nothing was written by the boots that failed.
    d.write("factory/golden.pub", &good);
    d.run(["verify"], 0).says(&["result: intact"]);
}

#[test]
fn seal_refuses_a_sign_key_others_may_read_or_that_is_not_a_key() {
    let d = Dir::golden_device("sign-key-perms", &[]);
    keygen(&d, "golden");
    std::fs::set_permissions(
        d.path("factory/golden"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    d.run(["seal", "--sign-key", "factory/golden"], 2)
        .says(&["may be read or written by others", "chmod 600"]);
    assert!(!d.exists("bak/.rebound/config/sealed"));
    // The public key is not a secret key.
    std::fs::set_permissions(
        d.path("factory/golden.pub"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    d.run(["seal", "--sign-key", "factory/golden.pub"], 2)
        .says(&["not a secret key file"]);
    d.run(["seal", "--sign-key", "factory/none"], 2)
        .says(&["no such signing key"]);
    assert!(!d.exists("bak/.rebound"));
}

#[test]
fn reseal_without_a_key_removes_the_old_signature() {
    // No golden_public_key: signing is optional, and a signature left from the last
    // seal would vouch for nothing.
    let d = Dir::golden_device("sign-reseal", &[]);
    keygen(&d, "golden");
    d.run(["seal", "--sign-key", "factory/golden"], 0);
    assert!(d.exists(SIG));
    d.run(["status"], 0).says(&["signature: not checked"]);
    d.run(["seal", "--force"], 0);
    assert!(!d.exists(SIG));
    // Signed again, then configured: accepted.
    d.run(["seal", "--force", "--sign-key", "factory/golden"], 0);
    configure_key(&d, "golden");
    d.run(["verify"], 0).says(&["result: intact"]);
}
