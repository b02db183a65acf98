//! Soak: add and remove feeds over the daemon's HTTP API many times and watch that nothing
//! grows. Every 1,000 cycles it prints the daemon's threads, open file descriptors, RSS and
//! the size of `/metrics`; at the end, the RSS change after warm-up.
//!
//! ```sh
//! cargo run --release -p nextvision --example soak -- [CYCLES]   # default 10000
//! ```
//!
//! It runs the `nextvision` binary next to this example's directory (it builds it with
//! `cargo build --release -p nextvision` when missing). Linux only (reads `/proc`).
#![allow(
    clippy::unwrap_used,
    reason = "a measuring tool: any failure aborts the run with its message"
)]

use std::io::Read;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use nv_test_util::daemon::Daemon;

fn binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/examples/soak -> target/<profile>/nextvision
    let bin = exe.parent().unwrap().parent().unwrap().join("nextvision");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let ok = Command::new(cargo)
            .args([
                "build",
                "--release",
                "-p",
                "nextvision",
                "--bin",
                "nextvision",
            ])
            .status()
            .unwrap()
            .success();
        assert!(
            ok && bin.exists(),
            "build the daemon first: cargo build --release -p nextvision"
        );
    }
    bin
}

fn proc_status(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let cycles: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("soak.toml");
    std::fs::write(
        &config,
        "[api]\nlisten = \"127.0.0.1:0\"\n\n[[feeds]]\nname = \"steady\"\n\
         source = \"synthetic:64x48@10\"\n[[feeds.stages]]\nkind = \"brightness\"\n",
    )
    .unwrap();
    let daemon = Daemon::run(&binary(), &config, &[]);
    let pid = daemon.pid();
    let base = daemon.base().to_owned();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let started = Instant::now();
    println!("cycles  threads  fds  rss_kib  metrics_bytes  metrics_lines  secs");
    let mut rows: Vec<(u64, u64)> = Vec::new();
    for cycle in 1..=cycles {
        let body = format!(
            r#"{{"name":"soak-{cycle}","source":"synthetic:64x48@30","snapshot_fps":5,"stages":[{{"kind":"blob-detector"}},{{"kind":"counter"}}]}}"#
        );
        let resp = agent
            .post(&format!("{base}/api/v1/feeds"))
            .header("Content-Type", "application/json")
            .send(body.as_str())
            .unwrap();
        assert_eq!(resp.status().as_u16(), 201, "cycle {cycle}: add failed");
        let resp = agent
            .delete(&format!("{base}/api/v1/feeds/soak-{cycle}"))
            .call()
            .unwrap();
        assert_eq!(resp.status().as_u16(), 204, "cycle {cycle}: remove failed");
        if cycle % 1_000 == 0 {
            let mut metrics = String::new();
            agent
                .get(&format!("{base}/metrics"))
                .call()
                .unwrap()
                .body_mut()
                .as_reader()
                .read_to_string(&mut metrics)
                .unwrap();
            let threads = proc_status(pid, "Threads:");
            let rss = proc_status(pid, "VmRSS:");
            let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
                .unwrap()
                .count();
            println!(
                "{cycle:>6}  {threads:>7}  {fds:>3}  {rss:>7}  {:>13}  {:>13}  {:>4.0}",
                metrics.len(),
                metrics.lines().count(),
                started.elapsed().as_secs_f64()
            );
            rows.push((cycle, rss));
        }
    }
    // Warm-up: the first 1,000 cycles (allocator arenas, thread stacks, caches).
    if let (Some(first), Some(last)) = (rows.first(), rows.last()) {
        if rows.len() > 1 {
            let change = (last.1 as f64 - first.1 as f64) / first.1 as f64 * 100.0;
            println!(
                "RSS after warm-up (cycle {}): {} KiB; at cycle {}: {} KiB; change {change:+.2}%",
                first.0, first.1, last.0, last.1
            );
        }
    }
}
