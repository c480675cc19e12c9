//! The command line as a user meets it: help text, exit statuses, error messages that
//! name the file, JSON output, and the demo.

// Test code: a failed unwrap is a failed test, which is what we want.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Output;

#[path = "common/bin.rs"]
mod bin;
use bin::bin_command;

fn rebound(config: Option<&Path>, args: &[&str]) -> Output {
    let mut c = bin_command();
    c.env_remove("REBOUND_CONFIG");
    if let Some(cfg) = config {
        c.arg("-c").arg(cfg);
    }
    c.args(args).output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn help_documents_every_command_and_the_exit_statuses() {
    let o = rebound(None, &["--help"]);
    assert!(o.status.success());
    let t = text(&o);
    for cmd in [
        "seal", "boot", "verify", "commit", "update", "status", "demo",
    ] {
        assert!(t.contains(cmd), "{cmd} missing from --help");
    }
    assert!(
        t.contains("Exit status") && t.contains("no intact copy"),
        "{t}"
    );
    let o = rebound(None, &["boot", "--help"]);
    assert!(text(&o).contains("--dry-run") && text(&o).contains("Exit status"));
}

#[test]
fn missing_config_is_exit_2_and_names_the_file() {
    let o = rebound(Some(Path::new("/nonexistent/rebound.toml")), &["boot"]);
    assert_eq!(o.status.code(), Some(2));
    let t = text(&o);
    assert!(
        t.contains("/nonexistent/rebound.toml") && t.contains("not found"),
        "{t}"
    );
}

#[test]
fn malformed_config_is_exit_2_names_the_file_and_the_problem() {
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("r.toml");
    std::fs::write(&cfg, "[[set]]\nname = \"x\"\nmode = \"golden\"\nlive = \"relative\"\ngolden = \"/b\"\ninclude = [\"a\"]\n").unwrap();
    let o = rebound(Some(&cfg), &["verify"]);
    assert_eq!(o.status.code(), Some(2));
    let t = text(&o);
    assert!(t.contains("r.toml") && t.contains("absolute"), "{t}");
    assert!(!t.contains("panicked"), "{t}");
}

#[test]
fn config_from_environment_variable() {
    let o = bin_command()
        .env("REBOUND_CONFIG", "/nonexistent/from-env.toml")
        .arg("status")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("from-env.toml"));
}

#[test]
fn seal_verify_commit_and_json_through_the_binary() {
    let d = tempfile::tempdir().unwrap();
    let live = d.path().join("usr");
    std::fs::create_dir_all(live.join("app")).unwrap();
    std::fs::write(live.join("apn_cfg.json"), "a\n").unwrap();
    std::fs::write(live.join("app/x.py"), "x\n").unwrap();
    let cfg = d.path().join("r.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[set]]\nname = \"config\"\nmode = \"golden\"\nlive = \"{}\"\ngolden = \"{}\"\ninclude = [\"apn_cfg.json\", \"app/**\"]\n",
            live.display(),
            d.path().join("bak").display()
        ),
    )
    .unwrap();
    assert_eq!(rebound(Some(&cfg), &["seal"]).status.code(), Some(0));
    assert_eq!(
        rebound(Some(&cfg), &["seal"]).status.code(),
        Some(2),
        "resealing needs --force"
    );
    std::fs::write(live.join("app/x.py"), "edited\n").unwrap();
    let o = rebound(Some(&cfg), &["verify", "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["sets"][0]["plan"]["actions"][0]["action"], "restore");
    let x = live.join("app/x.py");
    let o = rebound(Some(&cfg), &["commit", x.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(rebound(Some(&cfg), &["verify"]).status.code(), Some(0));
    let o = rebound(Some(&cfg), &["commit", "/etc/hostname"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("/etc/hostname") && text(&o).contains("not protected"));
    let o = rebound(Some(&cfg), &["status", "--json"]);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j[0]["replicas"][0]["generation"], 2);
    std::fs::remove_file(live.join("apn_cfg.json")).unwrap();
    let o = rebound(Some(&cfg), &["boot"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(text(&o).contains("restore") && text(&o).contains("apn_cfg.json"));
    assert_eq!(
        std::fs::read_to_string(live.join("apn_cfg.json")).unwrap(),
        "a\n"
    );
}

#[test]
fn demo_runs_and_ends_intact() {
    let o = rebound(None, &["demo"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("restore")
            && t.contains("mirror mode")
            && t.contains("all protected files intact"),
        "{t}"
    );
}
