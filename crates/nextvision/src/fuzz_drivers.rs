//! Stable-toolchain fuzz drivers for the byte parsers the daemon exposes: the config file
//! parser, the source-URL parser/redactor and the API's feed bodies. The libFuzzer targets
//! in `fuzz/` need a nightly toolchain and cargo-fuzz, which CI does not have; these run
//! the same checks ([`crate::fuzz`]) on mutation-based random inputs from a seed corpus
//! for a set time, on stable:
//!
//! ```sh
//! NV_FUZZ_SECS=60 cargo test -p nextvision --lib fuzz_ -- --ignored --nocapture
//! ```
//!
//! (`scripts/fuzz.sh` runs each for a set time.) Invariants: no panic, no hang (every
//! input is bounded), and a password planted in the input never appears in a message.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::time::{Duration, Instant};

use crate::fuzz::{check_api_body, check_config, check_source_url, SECRET};

/// xorshift64*: reproducible from the printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Fragments that reach deep into the grammars.
const TOKENS: &[&str] = &[
    "@",
    ":",
    "/",
    "?",
    "#",
    "%",
    "%40",
    "%zz",
    "[",
    "]",
    "[[feeds]]",
    "[[sinks]]",
    "[feeds.restart]",
    "[[feeds.stages]]",
    "=",
    "\"",
    "'''",
    "\n",
    "${",
    "}",
    "$${",
    "rtsp://",
    "http://",
    "1e308",
    "-1",
    "inf",
    "nan",
    "9223372036854775807",
    "18446744073709551615",
    "0",
    "{",
    ",",
    "\\u0000",
    "kind = \"zones\"",
    "queue_depth = ",
    "name = ",
    "source = ",
    "é",
    "\u{202e}",
];

fn mutate(rng: &mut Rng, seed: &str) -> String {
    let mut s: Vec<u8> = seed.as_bytes().to_vec();
    for _ in 0..=rng.below(8) {
        let at = rng.below(s.len() + 1);
        match rng.below(4) {
            0 => {
                let t = TOKENS[rng.below(TOKENS.len())];
                s.splice(at..at, t.bytes());
            }
            1 if at < s.len() => {
                let end = (at + rng.below(16)).min(s.len());
                s.drain(at..end);
            }
            2 if at < s.len() => s[at] = (rng.next() & 0x7f) as u8,
            _ => {
                // Duplicate a slice (grows tables, repeats keys).
                let end = (at + rng.below(64)).min(s.len());
                let piece = s[at..end].to_vec();
                s.splice(at..at, piece);
            }
        }
    }
    s.truncate(64 * 1024);
    String::from_utf8_lossy(&s).into_owned()
}

/// Runs `f` on mutated seeds for `NV_FUZZ_SECS` (default 5) seconds; returns executions.
fn drive(name: &str, seeds: &[&str], f: impl Fn(&str)) -> u64 {
    let secs = std::env::var("NV_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let seed = std::env::var("NV_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64 | 1)
        });
    println!("{name}: seed {seed} (NV_FUZZ_SEED to replay), {secs} s");
    let mut rng = Rng(seed);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut runs = 0u64;
    while Instant::now() < deadline {
        let base = seeds[rng.below(seeds.len())];
        // Mutate a mutation now and then: deeper changes.
        let once = mutate(&mut rng, base);
        let input = if rng.below(3) == 0 {
            mutate(&mut rng, &once)
        } else {
            once
        };
        f(&input);
        runs += 1;
    }
    println!("{name}: {runs} executions, no failure");
    runs
}

fn config_seeds() -> Vec<String> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut seeds =
        vec![std::fs::read_to_string(root.join("../../examples/nextvision.toml")).unwrap()];
    let mut fixtures: Vec<_> = std::fs::read_dir(root.join("tests/fixtures/broken"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    fixtures.sort();
    seeds.extend(fixtures.iter().map(|p| std::fs::read_to_string(p).unwrap()));
    seeds.push(format!(
        "[[feeds]]\nname = \"cam\"\nsource = \"rtsp://viewer:{SECRET}/x@cam:554/s\"\n\
         [[feeds.stages]]\nkind = \"zones\"\nzones = [{{ name = \"z\", points = [[0.1, 0.1], [0.9, 0.1], [0.5, 0.9]] }}]\n"
    ));
    seeds
}

#[test]
#[ignore = "fuzz driver: run by scripts/fuzz.sh"]
fn fuzz_config_parser() {
    let seeds = config_seeds();
    let seeds: Vec<&str> = seeds.iter().map(String::as_str).collect();
    drive("config", &seeds, check_config);
}

#[test]
#[ignore = "fuzz driver: run by scripts/fuzz.sh"]
fn fuzz_source_url() {
    let seeds = [
        "rtsp://viewer:Zq9SecretPw@10.0.0.5:554/s",
        "rtsp://viewer:Pl4nt@d/Zq9SecretPw:t#9x7@127.0.0.1:8554/test",
        "rtsps://[::1]:322/x?y=1#f",
        "http://u@h/p?q=a@b",
        "rtsp://:@",
    ];
    drive("url", &seeds, check_source_url);
}

#[test]
#[ignore = "fuzz driver: run by scripts/fuzz.sh"]
fn fuzz_zone_edit_bodies() {
    let seeds = [
        r#"{"zones":[{"name":"bench","points":[[0.1,0.5],[0.4,0.5],[0.4,0.9],[0.1,0.9]]}],"lines":[{"name":"gate","from":[0.5,1.0],"to":[0.5,0.0]}],"anchor":"center","dwell_threshold_secs":2.0}"#,
        r#"{"zones":[],"lines":[{"name":"l","from":[0.0,0.0],"to":[1.0,1.0]}]}"#,
        r#"{"zones":[{"name":"a","points":[[0.0,0.0],[1.5,0.0],[0.5,0.5]]},{"name":"a","points":[]}],"dwell_threshold_secs":-1}"#,
    ];
    drive("zones", &seeds, crate::fuzz::check_zones_body);
}

#[test]
#[ignore = "fuzz driver: run by scripts/fuzz.sh"]
fn fuzz_api_feed_bodies() {
    let seeds = [
        r#"{"name":"gamma","source":"synthetic:64x48@10","stages":[{"kind":"brightness"}]}"#,
        r#"{"name":"cam","source":"rtsp://admin:Zq9SecretPw@127.0.0.1:9/stream","queue_depth":4,"restart":{"delay_secs":1},"stages":[{"kind":"blob-detector"},{"kind":"counter"}]}"#,
        r#"{"name":"z","source":"synthetic:64x48","stages":[{"kind":"zones","zones":[{"name":"a","points":[[0.1,0.1],[0.9,0.1],[0.5,0.9]]}]}],"reconnect":{"jitter":0.5}}"#,
        r#"[1, {"a": null}, "x"]"#,
    ];
    drive("api", &seeds, check_api_body);
}
