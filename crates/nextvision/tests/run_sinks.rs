//! `nextvision run` delivers through a configured nv-sinks file sink (JSON lines, schema v1)
//! and stops cleanly on SIGTERM.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn daemon_writes_schema_v1_json_lines_and_stops_on_sigterm() {
    let dir = std::env::temp_dir().join(format!("nv-run-sinks-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = dir.join("out/outputs.jsonl");
    let config = format!(
        r#"
[api]
listen = "127.0.0.1:{port}"

[[sinks]]
name = "events"
kind = "file"
path = "{}"

[[feeds]]
name = "lobby"
source = "synthetic:160x120@30"
sinks = ["events"]
[[feeds.stages]]
kind = "motion-detector"
[[feeds.stages]]
kind = "tracker"
[[feeds.stages]]
kind = "zones"
zones = [{{ name = "left", points = [[0.0, 0.0], [0.5, 0.0], [0.5, 1.0], [0.0, 1.0]] }}]
"#,
        out.display()
    );
    let path = dir.join("nextvision.toml");
    std::fs::write(&path, config).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_nextvision"))
        .arg("run")
        .arg(&path)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    loop {
        let line = lines.next().expect("daemon exited early").unwrap();
        if line.contains("API on http://") {
            break;
        }
    }
    std::thread::Builder::new()
        .name("stderr".into())
        .spawn(move || for _ in lines {})
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::read_to_string(&out).map_or(0, |t| t.lines().count()) < 30 {
        assert!(Instant::now() < deadline, "no output written");
        // No event crosses the process boundary for "N lines written": poll the file.
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    assert_eq!(child.wait().unwrap().code(), Some(0));
    let text = std::fs::read_to_string(&out).unwrap();
    let records: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(records.len() >= 30);
    assert!(
        records.iter().all(|r| r["schema_version"] == 1),
        "{}",
        records[0]
    );
    assert!(records.iter().all(|r| r["idempotency_key"]
        .as_str()
        .is_some_and(|k| k.starts_with("1:0:0:"))));
    let seqs: Vec<u64> = records
        .iter()
        .map(|r| r["frame_seq"].as_u64().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order");
}
