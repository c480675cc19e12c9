//! Which hash implementations this build uses on the CPU it runs on, checked rather than
//! assumed (docs/performance.md, "Per target"). On ARM this runs under qemu-user in CI
//! (`.ci/run`; README.md, "Testing on ARM").
//!
//! blake3 and crc32fast do not document how they pick an implementation; the probes
//! below are their hidden but public entry points (`blake3::platform::Platform::detect`,
//! used by blake3's own benchmarks, and `crc32fast::Hasher::internal_new_specialized`,
//! `Some` exactly when the hardware path is taken). Should a release remove them, this
//! test stops compiling: look again at how the new release selects its code.

// Test code: a failed assertion is a failed test, which is what we want.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

fn blake3_impl() -> String {
    format!("{:?}", blake3::platform::Platform::detect())
}

fn crc32_hardware() -> bool {
    crc32fast::Hasher::internal_new_specialized(0, 0).is_some()
}

#[test]
fn hash_implementations_are_the_ones_documented_for_this_target() {
    let b3 = blake3_impl();
    let crc = crc32_hardware();
    // Printed past the harness's capture so that a CI log shows what each target got.
    use std::io::Write as _;
    let _ = writeln!(
        std::io::stderr(),
        "hash implementations on {}: blake3 {b3}, crc32 {}",
        std::env::consts::ARCH,
        if crc { "hardware" } else { "table (portable)" }
    );

    #[cfg(target_arch = "aarch64")]
    {
        // NEON is part of every AArch64 CPU; blake3 compiles its NEON code in.
        assert_eq!(b3, "NEON", "aarch64 must hash BLAKE3 with NEON");
        // The CRC32 instructions are detected at run time (ARMv8.0 makes them optional;
        // qemu's CPU and the Cortex-A53/A57/A72 have them).
        assert!(
            crc,
            "aarch64 must compute CRC-32 with the CRC32 instructions"
        );
    }
    #[cfg(all(target_arch = "arm", feature = "neon"))]
    {
        // tools/dist.sh builds armv7 with feature `neon`: compiled in, no run-time check.
        assert_eq!(
            b3, "NEON",
            "armv7 with feature neon must hash BLAKE3 with NEON"
        );
    }
    #[cfg(all(target_arch = "arm", not(feature = "neon")))]
    {
        assert_eq!(
            b3, "Portable",
            "armv7 without feature neon has only portable BLAKE3"
        );
    }
    #[cfg(target_arch = "arm")]
    {
        // crc32fast has no 32-bit ARM code on stable Rust.
        assert!(
            !crc,
            "armv7 CRC-32 is expected to be the portable table code"
        );
    }
    #[cfg(target_arch = "x86_64")]
    {
        // SSE2 is part of x86_64; blake3 picks the widest of SSE2..AVX-512 at run time.
        assert_ne!(b3, "Portable", "x86_64 must hash BLAKE3 with SIMD");
        // crc32fast's PCLMULQDQ folding, when the CPU has it (and SSE4.1).
        let expect = std::arch::is_x86_feature_detected!("pclmulqdq")
            && std::arch::is_x86_feature_detected!("sse4.1");
        assert_eq!(
            crc, expect,
            "x86_64 CRC-32 uses PCLMULQDQ exactly when the CPU has it"
        );
    }
}
