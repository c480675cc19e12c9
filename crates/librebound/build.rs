//! Gives the shared library its soname (`librebound.so.0`: the ABI version, see
//! README.md, "From an application") and warns when the build would abort on a panic instead
//! of turning it into status 2.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os == "linux" {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,librebound.so.0");
    }
    if std::env::var("CARGO_CFG_PANIC").as_deref() == Ok("abort") {
        println!(
            "cargo:warning=librebound built with panic = \"abort\": a panic ends the calling process instead of returning status 2; build it with `--profile release-lib`"
        );
    }
}
