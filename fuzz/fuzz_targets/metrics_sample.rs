//! Fuzz target: the metrics carry-over parser (`parse_sample`, on every line of the old
//! metrics file) never panics; a sample it accepts, written back as `render` writes
//! samples, parses to the same sample and is no longer than the line; and `render`
//! given the input as the old file keeps at most one sample per input line, every
//! sample line it writes parsing again.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rebound::testing::{label_value, metrics_render, parse_sample, Sample, SimFs};
use rebound::{Config, MetricsRun};

const CONFIG: &str =
    "[[set]]\nname = \"cfg\"\nmode = \"mirror\"\nreplicas = [\"/a\", \"/b\"]\ninclude = [\"**\"]\n";
const RUN: MetricsRun<'static> = MetricsRun {
    command: "boot",
    ended: 1.5,
    seconds: 0.25,
    exit: 0,
};

fn config() -> &'static Config {
    static C: OnceLock<Config> = OnceLock::new();
    C.get_or_init(|| match Config::parse(CONFIG, Path::new("/fuzz.toml")) {
        Ok(c) => c,
        Err(e) => panic!("fuzz configuration: {e}"),
    })
}

fn line((name, labels, value): &Sample) -> String {
    if labels.is_empty() {
        return format!("{name} {value}");
    }
    let l: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", label_value(v)))
        .collect();
    format!("{name}{{{}}} {value}", l.join(","))
}

fn samples(text: &str) -> usize {
    text.lines().filter(|l| !l.starts_with('#')).count()
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for l in text.lines() {
        if let Some(s) = parse_sample(l) {
            let again = line(&s);
            assert_eq!(parse_sample(&again).as_ref(), Some(&s), "{l:?}");
            // The value is written back from the number parsed (`.05` as `0.05`): a few
            // bytes more at most, never more than a float's longest spelling.
            assert!(again.len() <= l.len() + 24, "{l:?} -> {again:?}");
        }
    }
    let fs = SimFs::new();
    let base = samples(&metrics_render(&fs, config(), None, RUN, None));
    let out = metrics_render(&fs, config(), None, RUN, Some(text));
    assert!(samples(&out) <= base + text.lines().count());
    for l in out.lines().filter(|l| !l.starts_with('#')) {
        assert!(parse_sample(l).is_some(), "{l:?}");
    }
});
