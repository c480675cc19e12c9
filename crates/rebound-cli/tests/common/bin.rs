//! The binary under test, shared by every test target of the command line (`tests/it`,
//! `tests/cli.rs`, `tests/realfs_crash.rs`): one place that knows how to start it.

// Not every test target uses every helper.
#![allow(dead_code)]

use std::ffi::OsString;
use std::path::Path;
use std::process::Command;

/// The binary cargo built for this test run (`tests/it` and `tests/realfs_crash.rs`
/// need the `fault-injection` feature: see Cargo.toml). Tests start it through [`bin_command`], never directly, so that
/// `REBOUND_TEST_BIN` can put another build in its place.
const CARGO_BIN: &str = env!("CARGO_BIN_EXE_rebound");

/// A command that starts the binary under test. By default the one cargo built; with
/// `REBOUND_TEST_BIN=PATH`, that binary instead (e.g. a cross-built armv7 `rebound`,
/// which must have the `fault-injection` feature too), started through
/// `REBOUND_TEST_RUNNER` if set (a command and its arguments, split on white space, e.g.
/// `qemu-arm-static`): `RUNNER... PATH ARGS...`. README.md, "Testing on ARM".
pub fn bin_command() -> Command {
    let mut argv = bin_argv().into_iter();
    let mut c = Command::new(argv.next().unwrap_or_else(|| CARGO_BIN.into()));
    c.args(argv);
    c
}

/// The binary under test as the start of a command line: the runner's words (if any),
/// then the binary. For tests that start it through another program (e.g.
/// `setpriv ... -- <these> ARGS`); see [`bin_command`].
pub fn bin_argv() -> Vec<OsString> {
    match std::env::var_os("REBOUND_TEST_BIN").filter(|v| !v.is_empty()) {
        None => vec![CARGO_BIN.into()],
        Some(bin) => {
            assert!(
                Path::new(&bin).is_file(),
                "REBOUND_TEST_BIN={} is not a file (build it first: README.md, \"Testing on ARM\")",
                Path::new(&bin).display()
            );
            let runner = std::env::var("REBOUND_TEST_RUNNER").unwrap_or_default();
            let mut argv: Vec<OsString> = runner.split_whitespace().map(Into::into).collect();
            argv.push(bin);
            argv
        }
    }
}
