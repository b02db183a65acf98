//! `nextvision validate` on generated configurations of 10,000 and 100,000 feeds: the time
//! must grow linearly (the reference system was quadratic: 55,555 feeds took 118 s).
//!
//! ```sh
//! cargo bench -p nextvision --bench validate
//! ```
//!
//! Each feed has a credential URL with reserved characters in its password, a queue depth
//! and a stage, so every check runs. Prints the median of 3 runs per size.
#![allow(
    clippy::unwrap_used,
    reason = "a measuring tool: any failure aborts the run with its message"
)]

use std::fmt::Write as _;
use std::process::Command;
use std::time::{Duration, Instant};

fn config(feeds: usize) -> String {
    let mut text = format!("[runtime]\nmax_feeds = {}\n", feeds.min(10_000));
    for i in 0..feeds {
        writeln!(
            text,
            "[[feeds]]\nname = \"cam-{i}\"\n\
             source = \"rtsp://viewer:Pl4nt@d/S3cr:t#9x7@10.0.{}.{}:554/s{i}\"\nqueue_depth = 8\n\
             [[feeds.stages]]\nkind = \"brightness\"",
            i / 250 % 250,
            i % 250
        )
        .unwrap();
    }
    text
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    println!("feeds     median_secs  per_feed_micros  exit");
    for feeds in [10_000usize, 100_000] {
        let path = dir.path().join(format!("feeds-{feeds}.toml"));
        std::fs::write(&path, config(feeds)).unwrap();
        let mut times: Vec<Duration> = Vec::new();
        let mut code = None;
        for _ in 0..3 {
            let start = Instant::now();
            let out = Command::new(env!("CARGO_BIN_EXE_nextvision"))
                .arg("validate")
                .arg(&path)
                .output()
                .unwrap();
            times.push(start.elapsed());
            code = out.status.code();
        }
        times.sort();
        let median = times[1].as_secs_f64();
        println!(
            "{feeds:<9} {median:>11.3}  {:>15.1}  {}",
            median * 1e6 / feeds as f64,
            code.map_or("signal".into(), |c| c.to_string())
        );
    }
}
