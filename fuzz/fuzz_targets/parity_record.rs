//! Fuzz target: parity records (`.rebound/<set>/parity/xx/<hex>`, docs/design.md 2.5)
//! never panic nor allocate from a hostile header, and whatever reads them never yields
//! wrong content: a record `check_record` accepts is exactly as long as its header says;
//! `analyze` and `Rebuild` of the input against a damaged copy (a prefix of the input)
//! either refuse or agree with `check_record`, and a rebuild that ends without an error
//! yielded exactly the recorded size, hashing to the recorded digest.
//! The input is tried as it is and resealed (its last 32 bytes replaced by the BLAKE3 of
//! the rest, the record's trailer), so that mutations reach the readers behind it.
#![no_main]

use std::io::Read;

use libfuzzer_sys::fuzz_target;
use rebound::testing::{parity_analyze, parity_check_record, ParityRebuild};
use rebound::HashAlgo;

fn check(bytes: &[u8]) {
    for algo in [HashAlgo::Blake3, HashAlgo::Crc32] {
        let checked = parity_check_record(bytes, algo, bytes.len() as u64);
        if let Ok(info) = &checked {
            assert_eq!(info.layout.record_size(algo), bytes.len() as u64);
        }
        let digest = match &checked {
            Ok(i) => i.digest,
            Err(_) => algo.digest(b""),
        };
        let file = &bytes[..bytes.len() / 3];
        if let Ok(fit) = parity_analyze(bytes, file, algo, digest) {
            let info = checked.as_ref().expect("analyze accepted a record check refused");
            assert_eq!(fit.blocks, info.layout.blocks());
            assert!(fit.damaged <= fit.blocks);
        }
        let mut out = Vec::new();
        let r = ParityRebuild::new(bytes, file, algo, digest).read_to_end(&mut out);
        if r.is_ok() {
            let info = checked.as_ref().expect("a rebuild from a refused record");
            assert_eq!(out.len() as u64, info.layout.size);
            assert_eq!(algo.digest(&out), info.digest);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    if data.len() > 32 {
        let mut sealed = data.to_vec();
        let n = sealed.len() - 32;
        let t = *blake3::hash(&sealed[..n]).as_bytes();
        sealed[n..].copy_from_slice(&t);
        check(&sealed);
    }
});
