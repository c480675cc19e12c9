//! `commit`, `commit --remove`, `update` and `seal` with `--dry-run`: every action the
//! real run takes is printed, in its order, and nothing at all is written (the whole
//! test directory, every name, byte and modification time, is compared before and
//! after). The real run that follows carries out exactly the actions the dry run
//! listed.

use serde_json::Value;

use crate::util::{Dir, DATA, SYS};

/// Runs `args` with `--dry-run` (text, then JSON), checks that nothing changed, then
/// runs it for real and checks it took the actions the dry run printed. Returns the
/// dry run's text and the real run's JSON.
fn dry_then_real(d: &Dir, args: &[&str]) -> (String, Value) {
    let before = d.snapshot("");
    let mut dry: Vec<&str> = args.to_vec();
    dry.push("--dry-run");
    let text = d.run(&dry, 0).stdout();
    assert!(
        text.contains("would: ") && !text.contains("done: "),
        "{args:?}: {text}"
    );
    dry.push("--json");
    let planned = d.run(&dry, 0).json();
    assert_eq!(planned["dry_run"], true);
    assert!(planned["sets"][0]["outcomes"]
        .as_array()
        .unwrap()
        .is_empty());
    assert_eq!(before, d.snapshot(""), "{args:?} --dry-run wrote something");
    // Every planned action is printed, one `would:` line each.
    let actions = planned["sets"][0]["plan"]["actions"].as_array().unwrap();
    assert_eq!(
        text.lines().filter(|l| l.starts_with("  would: ")).count(),
        actions.len(),
        "{text}"
    );
    let mut real: Vec<&str> = args.to_vec();
    real.push("--json");
    let done = d.run(&real, 0).json();
    assert_eq!(
        done["sets"][0]["plan"]["actions"], planned["sets"][0]["plan"]["actions"],
        "{args:?}: the real run did not take the actions its dry run printed"
    );
    assert_eq!(
        done["sets"][0]["installed"],
        planned["sets"][0]["installed"]
    );
    for o in done["sets"][0]["outcomes"].as_array().unwrap() {
        assert!(o["error"].is_null(), "{o}");
    }
    (text, done)
}

fn kinds(v: &Value) -> Vec<String> {
    v["sets"][0]["plan"]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn seal_dry_run_writes_nothing_and_lists_the_golden_copy_then_the_commit_point() {
    let d = Dir::golden_device("dry-seal", &["copy"]);
    let (text, done) = dry_then_real(&d, &["seal"]);
    assert!(
        text.contains("would seal 4 files") && text.contains("would: seal the golden copy"),
        "{text}"
    );
    let k = kinds(&done);
    // Golden files, golden manifest, marker, then the commit point, then the copy.
    let pos = |name: &str| k.iter().position(|a| a == name).unwrap();
    assert_eq!(
        k.iter().filter(|a| *a == "write_golden").count(),
        4,
        "{k:?}"
    );
    assert!(pos("write_golden") < pos("write_golden_manifest"), "{k:?}");
    assert!(
        pos("write_golden_manifest") < pos("write_seal_marker"),
        "{k:?}"
    );
    assert!(pos("write_seal_marker") < pos("commit_manifest"), "{k:?}");
    assert!(pos("commit_manifest") < pos("restore"), "{k:?}");
    d.run(["verify"], 0);
    // A reseal unseals first.
    d.write("usr/apn_cfg.json", "{\"apn\": \"new factory\"}\n");
    let (_, done) = dry_then_real(&d, &["seal", "--force"]);
    assert_eq!(kinds(&done)[0], "unseal", "{done}");
    assert_eq!(d.read("bak/apn_cfg.json"), "{\"apn\": \"new factory\"}\n");
    d.run(["verify"], 0);
}

#[test]
fn commit_dry_run_writes_nothing_and_the_commit_does_what_it_said() {
    let d = Dir::golden_device("dry-commit", &["copy"]);
    d.run(["seal"], 0);
    d.write("usr/system_config.json", "{\"volume\": 7}\n");
    let f = d.path("usr/system_config.json");
    let (text, done) = dry_then_real(&d, &["commit", f.to_str().unwrap()]);
    assert!(text.contains("would record system_config.json"), "{text}");
    // Staged in the copy, synced where it is, committed, then installed in the copy.
    let k = kinds(&done);
    assert_eq!(k[..3], ["stage", "sync_file", "commit_manifest"], "{k:?}");
    assert!(k.contains(&"restore".to_string()), "{k:?}");
    assert_eq!(d.read("copy/system_config.json"), "{\"volume\": 7}\n");
    d.run(["verify"], 0);
    // Nothing to commit: the dry run says so, and writes nothing either.
    let before = d.snapshot("");
    d.run(["commit", "--dry-run", f.to_str().unwrap()], 0)
        .says(&["already committed"]);
    assert_eq!(before, d.snapshot(""));
}

#[test]
fn commit_remove_dry_run_writes_nothing() {
    let d = Dir::golden_device("dry-remove", &["copy"]);
    d.run(["seal"], 0);
    let f = d.path("usr/app/main.py");
    let (text, _) = dry_then_real(&d, &["commit", "--remove", f.to_str().unwrap()]);
    assert!(text.contains("would remove app/main.py from set"), "{text}");
    assert!(!d.exists("usr/app/main.py") && !d.exists("copy/app/main.py"));
}

#[test]
fn update_dry_run_writes_nothing_and_the_update_does_what_it_said() {
    let d = Dir::golden_device("dry-update", &["copy"]);
    d.run(["seal"], 0);
    d.write("fota/app/main.py", "print('v2')\n");
    d.write("fota/app/new.py", "print('new')\n");
    let from = d.path("fota");
    let (text, done) = dry_then_real(&d, &["update", "config", "--from", from.to_str().unwrap()]);
    let staged = format!("would: stage {}/app/main.py as ", from.display());
    assert!(
        text.contains("would record app/main.py") && text.contains(&staged),
        "{text}"
    );
    let k = kinds(&done);
    let commit = k.iter().position(|a| a == "commit_manifest").unwrap();
    assert!(k[..commit].iter().all(|a| a == "stage"), "{k:?}");
    assert_eq!(d.read("usr/app/main.py"), "print('v2')\n");
    assert_eq!(d.read("copy/app/new.py"), "print('new')\n");
    d.run(["verify"], 0);
}

#[test]
fn mirror_seal_and_commit_dry_runs_write_nothing() {
    let d = Dir::mirror_device("dry-mirror-change", &[SYS, DATA]);
    let (text, _) = dry_then_real(&d, &["seal"]);
    assert!(text.contains("would adopt"), "{text}");
    d.write(&format!("{SYS}/apps/params.cfg"), "rate=9\n");
    let f = d.path(&format!("{SYS}/apps/params.cfg"));
    dry_then_real(&d, &["commit", f.to_str().unwrap()]);
    assert_eq!(d.read(&format!("{DATA}/apps/params.cfg")), "rate=9\n");
    d.run(["verify"], 0);
}

#[test]
fn a_change_refused_at_planning_is_refused_by_its_dry_run_too() {
    let d = Dir::golden_device("dry-refused", &[]);
    d.run(["seal"], 0);
    let before = d.snapshot("");
    d.run(["seal", "--dry-run"], 2).says(&["already sealed"]);
    d.write("upd/other/x.txt", "x");
    let from = d.path("upd");
    d.run(
        [
            "update",
            "config",
            "--dry-run",
            "--from",
            from.to_str().unwrap(),
        ],
        2,
    )
    .says(&["not selected by set `config`"]);
    assert_eq!(before.len() + 3, d.snapshot("").len());
}

/// Seal fills an extra copy where a directory stands at a protected file's path: the
/// copy was looked up at every path the seal records before the seal was planned, so
/// the directory is moved aside (kept) and the file written in the same run.
#[test]
fn seal_moves_aside_what_stands_in_an_extra_copy() {
    let d = Dir::golden_device("seal-blocked", &["copy"]);
    std::fs::create_dir_all(d.path("copy/app/main.py")).unwrap();
    d.write("copy/app/main.py/notes.txt", "someone's data");
    let (text, _) = dry_then_real(&d, &["seal"]);
    assert!(text.contains("would: move "), "{text}");
    assert_eq!(d.read("copy/app/main.py"), "print('v1')\n");
    d.run(["verify"], 0);
}
