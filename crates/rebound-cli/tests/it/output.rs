//! What the user reads: `--dry-run` writes nothing and shows what boot would do;
//! `--json` parses and names the actions; `status`; and `rebound demo`.

use crate::util::{Dir, TestCommand, DATA, SYS};

fn damaged_golden(name: &str) -> Dir {
    let d = Dir::golden_device(name, &[]);
    d.run(["seal"], 0);
    d.remove("usr/.rebound/config/manifest.0");
    d.remove("usr/.rebound/config/manifest.1");
    d.remove("usr/app/main.py");
    d.write("usr/apn_cfg.json", "corrupt");
    d.write("usr/app/.rebound-tmp-1-1", "leftover of a crash");
    d
}

#[test]
fn dry_run_writes_nothing_and_prints_what_boot_would_do() {
    let d = damaged_golden("dry-run");
    let before = d.snapshot("");
    // Damage found: exit 1, as `verify` (issue item 15; it used to exit 0).
    let r = d.run(["boot", "--dry-run"], 1).says(&[
        "would: restore",
        "app/main.py",
        "apn_cfg.json",
        "would: write manifest",
        "would: remove leftover",
    ]);
    assert!(!r.stdout().contains("done:"), "{}", r.stdout());
    let j = d.run(["boot", "--dry-run", "--json"], 1).json();
    assert_eq!(j["dry_run"], true);
    assert!(j["sets"][0]["outcomes"].as_array().unwrap().is_empty());
    d.run(["verify"], 1);
    d.run(["verify", "--json"], 1).json();
    d.run(["status"], 0);
    assert_eq!(
        before,
        d.snapshot(""),
        "dry run, verify or status wrote something"
    );
    // And the real boot does what the dry run said.
    let planned = j["sets"][0]["plan"]["actions"].clone();
    let done = d.run(["boot", "--json"], 0).json();
    assert_eq!(done["sets"][0]["plan"]["actions"], planned);
    assert_eq!(d.read("usr/app/main.py"), "print('v1')\n");
}

#[test]
fn dry_run_on_a_mirror_set_writes_nothing() {
    let d = Dir::mirror_device("dry-mirror", &[SYS, DATA]);
    let before = d.snapshot("");
    d.run(["boot", "--dry-run"], 1)
        .says(&["would: restore", "would: write version tag 1"]);
    assert_eq!(before, d.snapshot(""));
    d.run(["boot"], 0);
    d.write(&format!("{SYS}/apps/app.bin"), "v2");
    d.write(&format!("{SYS}/app_ver.txt"), "2");
    let before = d.snapshot("");
    d.run(["boot", "--dry-run"], 1)
        .says(&["upgrade adopted", "would: write version tag 2"]);
    assert_eq!(before, d.snapshot(""));
}

fn actions_named(j: &serde_json::Value) -> Vec<(String, String)> {
    j["sets"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["plan"]["actions"].as_array().unwrap().clone())
        .map(|a| {
            let target = a
                .get("path")
                .or_else(|| a.get("rel"))
                .and_then(|p| p.as_str())
                .map(String::from)
                .unwrap_or_else(|| a["root"].as_str().unwrap().to_string());
            (a["action"].as_str().unwrap().to_string(), target)
        })
        .collect()
}

#[test]
fn json_reports_parse_and_name_every_action() {
    let d = damaged_golden("json");
    let j = d.run(["boot", "--json"], 0).json();
    assert_eq!(j["command"], "boot");
    let s = &j["sets"][0];
    assert_eq!(s["set"], "config");
    assert_eq!(s["mode"], "golden");
    assert_eq!(s["plan"]["authority"]["kind"], "golden");
    let acts = actions_named(&j);
    for want in [
        ("restore", "apn_cfg.json"),
        ("restore", "app/main.py"),
        ("remove_junk", "app/.rebound-tmp-1-1"),
    ] {
        assert!(
            acts.iter().any(|(a, t)| a == want.0 && t == want.1),
            "{want:?} not in {acts:?}"
        );
    }
    assert!(acts.iter().any(|(a, _)| a == "write_manifest"), "{acts:?}");
    let outcomes = s["outcomes"].as_array().unwrap();
    assert_eq!(outcomes.len(), acts.len());
    assert!(outcomes.iter().all(|o| o["error"].is_null()));
    let findings: Vec<&str> = s["plan"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["problem"].as_str().unwrap())
        .collect();
    assert!(
        findings.contains(&"missing") && findings.contains(&"corrupt"),
        "{findings:?}"
    );

    // A mirror set: adoption, restores and version tags are named too.
    let m = Dir::mirror_device("json-mirror", &[SYS, DATA]);
    let j = m.run(["boot", "--json"], 0).json();
    assert_eq!(j["sets"][0]["plan"]["authority"]["kind"], "adopt");
    let acts = actions_named(&j);
    assert!(
        acts.contains(&("restore".into(), "apps/app.bin".into())),
        "{acts:?}"
    );
    assert!(
        acts.contains(&("write_tag".into(), "app_ver.txt".into())),
        "{acts:?}"
    );
    // Status, commit and lost-file reports are JSON too.
    let st = m.run(["status", "--json"], 0).json();
    assert_eq!(st[0]["version_file"], "app_ver.txt");
    assert_eq!(st[0]["replicas"].as_array().unwrap().len(), 2);
    assert_eq!(st[0]["replicas"][1]["tag"]["value"], 1);
    m.write(&format!("{SYS}/apps/params.cfg"), "x=1\n");
    let c = m
        .run(["commit", "--json", &format!("{SYS}/apps/params.cfg")], 0)
        .json();
    assert_eq!(c["command"], "commit");
    m.write(&format!("{SYS}/apps/params.cfg"), "bad\n");
    m.write(&format!("{DATA}/apps/params.cfg"), "bad\n");
    let l = m.run(["boot", "--json"], 3).json();
    assert_eq!(l["sets"][0]["plan"]["lost"][0], "apps/params.cfg");
}

#[test]
fn status_shows_roots_generations_and_seal() {
    let d = Dir::golden_device("status", &[]);
    d.run(["seal"], 0);
    d.run(["status"], 0).says(&[
        "set config (golden mode",
        d.path("usr").to_str().unwrap(),
        d.path("bak").to_str().unwrap(),
        "gen 1",
        "sealed",
    ]);
}

#[test]
fn demo_exits_0_and_shows_its_repairs() {
    let r = TestCommand::bare().arg("demo").run().expect_code(0).says(&[
        "seal",
        "restore",
        "(golden)",
        "result: repaired",
        "mirror mode",
        "version tag",
    ]);
    // It names the damage the seed lists.
    let t = r.text().to_lowercase();
    for w in ["manifest", "deleted", "corrupt", "commit"] {
        assert!(t.contains(w), "demo output lacks {w:?}:\n{t}");
    }
    // The committed edit survives the next boot (the "commit then boot keeps it").
    assert!(
        r.text()
            .contains("holds {\"volume\": 7, \"server\": \"10.0.0.2\"} (the committed edit)"),
        "{}",
        r.text()
    );
}
