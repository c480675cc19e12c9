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
        "seal",
        "boot",
        "verify",
        "commit",
        "update",
        "status",
        "check-config",
        "systemd-mounts",
        "demo",
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

/// A configuration whose roots are FIFOs: opening, listing or locking one would block
/// (or fail), so a command that returns at once with exit 0 touched no replica.
fn config_with_fifo_roots(d: &Path) -> std::path::PathBuf {
    for name in ["live", "golden", "copy", "my apps 100%", "backup"] {
        let p = d.join(name);
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &p,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
    }
    let cfg = d.join("r.toml");
    let r = |n: &str| d.join(n).display().to_string();
    std::fs::write(
        &cfg,
        format!(
            "threads = 1\n\
             [[set]]\nname = \"cfg\"\nmode = \"golden\"\nlive = \"{}\"\ngolden = \"{}\"\n\
             copies = [\"{}\"]\ninclude = [\"*.json\"]\nexclude = [\"tmp/**\"]\n\
             [[set]]\nname = \"apps\"\nmode = \"mirror\"\nreplicas = [\"{}\", \"{}\"]\n\
             include = [\"apps/**\"]\nversion_file = \"ver.txt\"\nchanged_only = true\n",
            r("live"),
            r("golden"),
            r("copy"),
            r("my apps 100%"),
            r("backup"),
        ),
    )
    .unwrap();
    cfg
}

/// Runs the binary, killing it after 20 s (a FIFO root opened by mistake blocks).
fn rebound_bounded(config: &Path, args: &[&str]) -> Output {
    let mut c = bin_command();
    c.env_remove("REBOUND_CONFIG")
        .arg("-c")
        .arg(config)
        .args(args);
    c.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > std::time::Duration::from_secs(20) {
            child.kill().unwrap();
            panic!("rebound {args:?} did not return: it opened a replica root");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn check_config_prints_the_resolved_sets_and_touches_no_replica() {
    let d = tempfile::tempdir().unwrap();
    let cfg = config_with_fifo_roots(d.path());
    let o = rebound_bounded(&cfg, &["check-config"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let t = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(t.contains("valid (2 sets, 1 hashing thread)"), "{t}");
    assert!(t.contains("set cfg (golden mode, hash blake3"), "{t}");
    assert!(t.contains("set apps (mirror mode"), "{t}");
    let live = d.path().join("live").display().to_string();
    let golden = d.path().join("golden").display().to_string();
    assert!(
        t.lines()
            .any(|l| l.contains(&format!("live    {live}: mounted read-write"))),
        "{t}"
    );
    assert!(
        t.lines()
            .any(|l| l.contains(&format!("golden  {golden}: mounted before"))
                && l.contains("read-only is enough")),
        "{t}"
    );
    assert!(
        t.contains("exclude tmp/**") && t.contains("version tag ver.txt"),
        "{t}"
    );
    assert!(t.contains("changed_only"), "{t}");
    // Every root once, in the mounts list at the end.
    let tail = t.split("rebound systemd-mounts`):").nth(1).unwrap();
    assert_eq!(
        tail.lines().filter(|l| !l.trim().is_empty()).count(),
        5,
        "{t}"
    );

    let o = rebound_bounded(&cfg, &["check-config", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["valid"], true);
    assert_eq!(j["sets"][0]["replicas"][0]["as"], "live");
    assert_eq!(j["sets"][0]["replicas"][2]["mount"], "read-only");
    assert_eq!(j["sets"][1]["version_file"], "ver.txt");
    assert_eq!(j["mounts"].as_array().unwrap().len(), 5);
}

#[test]
fn check_config_refuses_a_bad_configuration_with_exit_2_naming_it() {
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("bad.toml");
    std::fs::write(
        &cfg,
        "[[set]]\nname = \"x\"\nmode = \"golden\"\nlive = \"/a\"\ngolden = \"/a/g\"\ninclude = [\"*\"]\n",
    )
    .unwrap();
    for cmd in ["check-config", "systemd-mounts"] {
        let o = rebound(Some(&cfg), &[cmd]);
        assert_eq!(o.status.code(), Some(2), "{cmd}: {}", text(&o));
        assert!(o.stdout.is_empty(), "{cmd} printed a result for a bad file");
        let t = text(&o);
        assert!(
            t.contains("bad.toml") && !t.contains("panicked"),
            "{cmd}: {t}"
        );
    }
}

#[test]
fn systemd_mounts_is_a_drop_in_naming_every_root_as_systemd_reads_it() {
    let d = tempfile::tempdir().unwrap();
    let cfg = config_with_fifo_roots(d.path());
    let o = rebound_bounded(&cfg, &["systemd-mounts"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let t = String::from_utf8(o.stdout).unwrap();
    let lines: Vec<&str> = t.lines().filter(|l| !l.starts_with('#')).collect();
    let r = |n: &str| d.path().join(n).display().to_string();
    // `%` is a specifier in unit files, and a path with a space is quoted.
    let spaced = format!("\"{}\"", r("my apps 100%").replace('%', "%%"));
    assert_eq!(
        lines,
        [
            "[Unit]".to_string(),
            format!(
                "RequiresMountsFor={} {} {} {spaced} {}",
                r("live"),
                r("copy"),
                r("golden"),
                r("backup")
            )
        ]
    );
}
