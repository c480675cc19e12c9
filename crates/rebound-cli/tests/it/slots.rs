//! Manifest slots through the binary (items 1 and 16 of the defects issue).
//!
//! Item 1: in a golden set without `copies`, two commits and then one flipped byte in
//! the newer slot made `boot` fall back to the older slot, restore the factory content
//! over the intact second commit, exit 0 saying "repaired", and reuse the damaged
//! slot's generation. Every generation now goes to both slots, so one damaged slot
//! always leaves the other at the newest generation.
//!
//! Item 16: a damaged slot that is not the current one was shown only by `status`:
//! `verify` said intact and `boot` never rewrote it. Now `verify` reports it (exit 1,
//! problem `manifest_damaged`) and `boot` rewrites it from the authority.

use crate::util::Dir;

const SLOTS: [&str; 2] = [
    "usr/.rebound/config/manifest.0",
    "usr/.rebound/config/manifest.1",
];

fn generation_of(d: &Dir, slot: &str) -> Option<u64> {
    let b = d.read_opt(slot)?;
    String::from_utf8_lossy(&b)
        .lines()
        .find_map(|l| l.strip_prefix("generation ")?.parse().ok())
}

/// A sealed golden set without copies, with two commits of `system_config.json`, and
/// a slot's bytes as the first commit left them.
fn two_commits(name: &str) -> (Dir, Vec<u8>) {
    let d = Dir::golden_device(name, &[]);
    d.run(["seal"], 0).says(&["result: sealed"]);
    let mut first = Vec::new();
    for edit in ["edit1", "edit2"] {
        d.write(
            "usr/system_config.json",
            format!("{{\"volume\": \"{edit}\"}}\n"),
        );
        d.run(["commit", "usr/system_config.json"], 0);
        assert_eq!(d.read_opt(SLOTS[0]), d.read_opt(SLOTS[1]));
        if first.is_empty() {
            first = d.read_opt(SLOTS[1]).unwrap();
        }
    }
    (d, first)
}

fn flip_one_byte(d: &Dir, slot: &str) {
    let mut b = d.read_opt(slot).unwrap();
    let i = b.len() / 2;
    b[i] ^= 0x10;
    d.write(slot, &b);
}

#[test]
fn one_flipped_byte_in_either_slot_never_costs_a_committed_edit() {
    let (d, _) = two_commits("slot-flip");
    let g = SLOTS
        .iter()
        .filter_map(|s| generation_of(&d, s))
        .max()
        .unwrap();
    // The newest slot first (the case), then the other one.
    let mut order = SLOTS;
    if generation_of(&d, SLOTS[1]) == Some(g) {
        order.reverse();
    }
    for slot in order {
        let good = d.read_opt(slot).unwrap();
        flip_one_byte(&d, slot);
        d.run(["verify"], 1)
            .says(&[slot, "manifest damaged", "result: damage found"]);
        let b = d.run(["boot"], 0).says(&[
            &format!("manifest generation {g}"),
            "manifest damaged",
            "done: write manifest",
            "result: repaired",
        ]);
        assert_eq!(
            d.read("usr/system_config.json"),
            "{\"volume\": \"edit2\"}\n",
            "the committed edit was lost:\n{}",
            b.text()
        );
        assert!(!b.text().contains("done: restore"), "{}", b.text());
        assert_eq!(d.read_opt(slot).unwrap(), good, "the slot is rewritten");
        assert_eq!(d.read_opt(SLOTS[0]), d.read_opt(SLOTS[1]));
        d.run(["verify"], 0).says(&["result: intact"]);
    }
    // Generations never repeat: the next commit takes a new one, in both slots.
    d.write("usr/system_config.json", "{\"volume\": \"edit3\"}\n");
    d.run(["commit", "usr/system_config.json"], 0);
    let after = SLOTS.map(|s| generation_of(&d, s));
    assert_eq!(after[0], after[1]);
    assert!(after[0] > Some(g), "{after:?} after generation {g}");
    d.run(["boot"], 0).says(&["result: intact"]);
}

#[test]
fn damaged_non_current_slot_is_reported_by_verify_and_rewritten_by_boot() {
    let (d, first) = two_commits("slot-noncurrent");
    let good = d.read_opt(SLOTS[0]).unwrap();
    // Both slots hold the same generation and slot 0 is read first: slot 1 is the
    // non-current one. Damaged in every way a slot can be.
    for bytes in [
        b"".to_vec(),
        good[..good.len() / 2].to_vec(),
        vec![0u8; good.len()],
        b"garbage\n".to_vec(),
    ] {
        d.write(SLOTS[1], &bytes);
        d.run(["status"], 0)
            .says(&["damaged", "`rebound boot` rewrites it"]);
        let v = d.run(["verify", "--json"], 1);
        let j = v.json();
        let findings = j["sets"][0]["plan"]["findings"].as_array().unwrap().clone();
        assert!(
            findings
                .iter()
                .any(|f| f["problem"] == "manifest_damaged"
                    && f["path"] == ".rebound/config/manifest.1"),
            "{findings:#?}"
        );
        d.run(["boot"], 0)
            .says(&["manifest damaged", "done: write manifest", "slot 1"]);
        assert_eq!(d.read_opt(SLOTS[1]).unwrap(), good);
        d.run(["verify"], 0);
        d.run(["status"], 0).says(&["[gen"]);
    }
    // A slot left behind, as a device written by an older rebound has it (one
    // generation a slot: the other holds the one before, or nothing after a seal), is
    // reported too, and brought to the current generation.
    let older = first
        .split(|&c| c == b'\n')
        .find_map(|l| std::str::from_utf8(l.strip_prefix(b"generation ")?).ok())
        .unwrap()
        .to_string();
    for behind in [Some(first), None] {
        match &behind {
            Some(b) => d.write(SLOTS[1], b),
            None => d.remove(SLOTS[1]),
        }
        let label = match &behind {
            Some(_) => format!("gen {older} (behind)"),
            None => "missing (behind)".to_string(),
        };
        d.run(["status"], 0)
            .says(&[&label, "`rebound boot` rewrites it"]);
        d.run(["verify"], 1)
            .says(&[SLOTS[1], "manifest outdated", "result: damage found"]);
        d.run(["boot"], 0)
            .says(&["done: write manifest", "slot 1", "result: repaired"]);
        assert_eq!(d.read_opt(SLOTS[1]).unwrap(), good);
        assert_eq!(
            d.read("usr/system_config.json"),
            "{\"volume\": \"edit2\"}\n"
        );
        d.run(["verify"], 0);
    }
}
