//! Fuzz target: the whole load path of a set's history (`history::load` over the
//! simulated filesystem): the input, split at NUL bytes (never in a valid record), is
//! `boots.0`, `boots.1`, `events.0` and `events.1` of the set `cfg` (each resealed, see
//! `statcache_decode`, unless the first byte is `R`: then raw). Never a panic; at most
//! one problem per slot; the count kept is the highest of the counters that parse, the
//! log kept one of the logs that parse, with the highest `next`.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rebound::testing::{boots_parse, history_load, log_parse, record_open, reseal, SimFs};
use rebound::Config;

const CONFIG: &str =
    "[[set]]\nname = \"cfg\"\nmode = \"mirror\"\nreplicas = [\"/a\", \"/b\"]\ninclude = [\"**\"]\n";
const SLOTS: [&str; 4] = ["boots.0", "boots.1", "events.0", "events.1"];

fn config() -> &'static Config {
    static C: OnceLock<Config> = OnceLock::new();
    C.get_or_init(|| match Config::parse(CONFIG, Path::new("/fuzz.toml")) {
        Ok(c) => c,
        Err(e) => panic!("fuzz configuration: {e}"),
    })
}

fuzz_target!(|data: &[u8]| {
    let (raw, data) = match data.strip_prefix(b"R") {
        Some(rest) => (true, rest),
        None => (false, data),
    };
    let fs = SimFs::new();
    fs.mkdir_all(Path::new("/a/.rebound/cfg"));
    let mut files: Vec<(usize, Vec<u8>)> = Vec::new();
    for (i, part) in data.split(|&b| b == 0).take(SLOTS.len()).enumerate() {
        let bytes = if raw {
            Some(part.to_vec())
        } else {
            reseal(part)
        };
        if let Some(bytes) = bytes {
            fs.put(&Path::new("/a/.rebound/cfg").join(SLOTS[i]), &bytes);
            files.push((i, bytes));
        }
    }
    let set = &config().sets[0];
    let loaded = history_load(&fs, set);
    assert!(loaded.problems.len() <= files.len());
    let best_count = files
        .iter()
        .filter(|(i, _)| *i < 2)
        .filter_map(|(_, b)| boots_parse(b))
        .map(|b| b.count)
        .max();
    assert_eq!(loaded.boots.as_ref().map(|b| b.count), best_count);
    let logs: Vec<_> = files
        .iter()
        .filter(|(i, _)| *i >= 2)
        .filter_map(|(_, b)| {
            let body = std::str::from_utf8(record_open(b).ok()?).ok()?;
            log_parse(body, "cfg")
        })
        .collect();
    match &loaded.log {
        None => assert!(logs.is_empty()),
        Some(l) => {
            assert!(logs.contains(l));
            assert!(logs.iter().all(|o| o.next <= l.next));
        }
    }
});
