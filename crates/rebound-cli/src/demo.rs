//! `rebound demo`: a throwaway device in a temporary directory, damaged the ways the
//! vendor documents list, and the boot check that heals it.

use std::fmt::Write;
use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use rebound::{exit, Config, Engine, OsFs};

use crate::render;

fn write(p: &Path, content: &str) -> Result<()> {
    if let Some(d) = p.parent() {
        fs::create_dir_all(d).with_context(|| format!("create {}", d.display()))?;
    }
    fs::write(p, content).with_context(|| format!("write {}", p.display()))
}

fn step(out: &mut String, title: &str) -> Result<()> {
    Ok(writeln!(out, "\n=== {title}")?)
}

/// Runs the demo; returns what it prints and the exit status of the final
/// verification.
pub fn run() -> Result<(String, u8)> {
    let mut out = String::new();
    let tmp = tempfile::Builder::new()
        .prefix("rebound-demo-")
        .tempdir()
        .context("create a temporary directory")?;
    let dev = tmp.path();
    let usr = dev.join("usr");
    let bak = dev.join("bak");
    let sys = dev.join("usrapp/apprun");
    let data = dev.join("usrdata/appbackup");
    fs::create_dir_all(&usr)?;
    fs::create_dir_all(dev.join("usrdata"))?;
    let config_text = format!(
        r#"# A golden set: the QuecPython-style user partition and its read-only backup.
[[set]]
name = "config"
mode = "golden"
live = "{usr}"
golden = "{bak}"
include = ["apn_cfg.json", "system_config.json", "app/**"]

# A mirror set on the EC2x QuecOpen vendor script's layout.
[[set]]
name = "apps"
mode = "mirror"
replicas = ["{sys}", "{data}"]
include = ["apps/**"]
version_file = "app_ver.txt"
"#,
        usr = usr.display(),
        bak = bak.display(),
        sys = sys.display(),
        data = data.display()
    );
    let config_path = dev.join("rebound.toml");
    write(&config_path, &config_text)?;
    writeln!(out, "rebound demo: a throwaway device in {}", dev.display())?;
    writeln!(
        out,
        "configuration ({}):\n{config_text}",
        config_path.display()
    )?;

    write(&usr.join("apn_cfg.json"), "{\"apn\": \"iot.example\"}\n")?;
    write(
        &usr.join("system_config.json"),
        "{\"volume\": 5, \"server\": \"10.0.0.1\"}\n",
    )?;
    write(&usr.join("app/main.py"), "print('hello from the device')\n")?;
    write(&usr.join("app/lib/util.py"), "def f():\n    return 42\n")?;
    write(&sys.join("apps/app.bin"), "application v1\n")?;
    write(&sys.join("apps/params.cfg"), "baud=115200\n")?;
    write(&sys.join("app_ver.txt"), "1\n")?;

    let config = Config::load(&config_path)?;
    let fs_ = OsFs::new();
    let engine = Engine::new(&fs_);

    step(
        &mut out,
        "factory: `rebound seal config` copies the live files into the golden copy",
    )?;
    write!(
        out,
        "{}",
        render::report(&engine.seal(&config, &["config".into()], false, false)?)
    )?;

    step(
        &mut out,
        "first boot: the mirror set's backup side is empty (vendor scenario A)",
    )?;
    write!(
        out,
        "{}",
        render::report(&engine.boot(&config, &[], false)?)
    )?;

    step(&mut out, "damage, as the seeds list it")?;
    for slot in ["manifest.0", "manifest.1"] {
        let _ = fs::remove_file(usr.join(".rebound/config").join(slot));
    }
    writeln!(
        out,
        "- trigger 1: the live manifest (checksum.json) deleted"
    )?;
    fs::remove_file(usr.join("apn_cfg.json"))?;
    writeln!(
        out,
        "- trigger 2: apn_cfg.json deleted (power cut, file system error)"
    )?;
    let mut b = fs::read(usr.join("app/main.py"))?;
    b[3] ^= 0x20;
    fs::write(usr.join("app/main.py"), b)?;
    writeln!(
        out,
        "- trigger 2: one bit flipped in app/main.py (flash corruption)"
    )?;
    write(
        &usr.join("app/lib/util.py"),
        "def f():\n    return 0  # edited by hand\n",
    )?;
    writeln!(out, "- trigger 3: app/lib/util.py edited without commit")?;
    write(&sys.join("apps/app.bin"), "application v2\n")?;
    write(&sys.join("apps/new_module.bin"), "added in v2\n")?;
    write(&sys.join("app_ver.txt"), "2\n")?;
    writeln!(
        out,
        "- vendor scenario C: the app upgraded on the system side and app_ver.txt bumped to 2"
    )?;
    write(&data.join("apps/params.cfg"), "baud=9600 (bit rot)\n")?;
    writeln!(
        out,
        "- the backup copy of apps/params.cfg silently corrupted (the vendor script never notices)"
    )?;

    step(&mut out, "`rebound verify` (read-only) sees it all")?;
    let v = engine.verify(&config, &[])?;
    write!(out, "{}", render::report(&v))?;
    writeln!(out, "verify exit status: {}", v.exit_code())?;

    step(&mut out, "`rebound boot` heals it")?;
    write!(
        out,
        "{}",
        render::report(&engine.boot(&config, &[], false)?)
    )?;

    step(
        &mut out,
        "an intentional edit, accepted with `rebound commit` (the vendor's file_crc32.calc)",
    )?;
    let edited = "{\"volume\": 7, \"server\": \"10.0.0.2\"}\n";
    write(&usr.join("system_config.json"), edited)?;
    write!(
        out,
        "{}",
        render::report(&engine.commit(&config, &[usr.join("system_config.json")], false)?)
    )?;

    step(
        &mut out,
        "next boot: the committed edit is kept, not restored",
    )?;
    write!(
        out,
        "{}",
        render::report(&engine.boot(&config, &[], false)?)
    )?;
    let kept = fs::read_to_string(usr.join("system_config.json"))?;
    writeln!(
        out,
        "system_config.json now holds {} ({})",
        kept.trim_end(),
        if kept == edited {
            "the committed edit"
        } else {
            "NOT the committed edit"
        }
    )?;

    step(&mut out, "second boot: nothing left to do")?;
    let again = engine.boot(&config, &[], false)?;
    write!(out, "{}", render::report(&again))?;

    step(&mut out, "`rebound status`")?;
    write!(out, "{}", render::status(&engine.status(&config, &[])?))?;

    let v = engine.verify(&config, &[])?;
    let code = v.exit_code();
    writeln!(
        out,
        "\nfinal verify: exit status {code} ({})",
        if code == exit::OK {
            "all protected files intact"
        } else {
            "NOT intact"
        }
    )?;
    Ok((out, code))
}
