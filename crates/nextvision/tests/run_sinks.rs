//! `nextvision run` delivers through a configured nv-sinks file sink (JSON lines, schema v1)
//! and stops cleanly on SIGTERM.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::time::{Duration, Instant};

use nv_test_util::daemon::Daemon;

#[test]
fn daemon_writes_schema_v1_json_lines_and_stops_on_sigterm() {
    let dir = std::env::temp_dir().join(format!("nv-run-sinks-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Port 0: the OS picks the API port when the daemon binds.
    let port = 0;
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
    let daemon = Daemon::run(Path::new(env!("CARGO_BIN_EXE_nextvision")), &path, &[]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::read_to_string(&out).map_or(0, |t| t.lines().count()) < 30 {
        assert!(Instant::now() < deadline, "no output written");
        // No event crosses the process boundary for "N lines written": poll the file.
        std::thread::sleep(Duration::from_millis(20));
    }
    daemon.stop();
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
    // One run: every key starts with the same 16-hex run id, then feed 1, epoch 0, session 0.
    let run = records[0]["idempotency_key"]
        .as_str()
        .and_then(|k| k.split(':').next())
        .unwrap()
        .to_owned();
    assert_eq!(run.len(), 16, "{run}");
    let prefix = format!("{run}:1:0:0:");
    assert!(records.iter().all(|r| r["idempotency_key"]
        .as_str()
        .is_some_and(|k| k.starts_with(&prefix))));
    let seqs: Vec<u64> = records
        .iter()
        .map(|r| r["frame_seq"].as_u64().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order");
}

#[test]
fn sink_losses_are_reported_as_health_events() {
    let dir = std::env::temp_dir().join(format!("nv-run-loss-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let port = 0;
    // A webhook on a closed port that gives up at once: every record is lost, and the
    // daemon must say so on the health stream.
    let refused = nv_test_util::port::RefusedPort::new();
    let dead = refused.port();
    let config = format!(
        r#"
[api]
listen = "127.0.0.1:{port}"

[[sinks]]
name = "hook"
kind = "webhook"
url = "http://127.0.0.1:{dead}/ingest"
max_retries = 0
buffer_records = 8

[[feeds]]
name = "lobby"
source = "synthetic:64x48@30"
sinks = ["hook"]
[[feeds.stages]]
kind = "brightness"
"#
    );
    let path = dir.join("nextvision.toml");
    std::fs::write(&path, config).unwrap();
    let daemon = Daemon::run(Path::new(env!("CARGO_BIN_EXE_nextvision")), &path, &[]);
    let base = daemon.base();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .into();
    let mut resp = agent.get(&format!("{base}/api/v1/events")).call().unwrap();
    let mut reader = BufReader::new(resp.body_mut().as_reader());
    let mut line = String::new();
    let event = loop {
        line.clear();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "event stream ended"
        );
        if let Some(data) = line.strip_prefix("data: ") {
            let v: serde_json::Value = serde_json::from_str(data.trim()).unwrap();
            if v["event"] == "sink_delivery_loss" {
                break v;
            }
        }
    };
    assert_eq!(event["feed_id"], 1);
    assert_eq!(event["data"]["sink"], "hook", "{event}");
    assert!(
        event["data"]["failed"].as_u64().unwrap() + event["data"]["dropped"].as_u64().unwrap() > 0,
        "{event}"
    );
}

/// A file sink with `records = ["health"]` that no feed names still receives every health
/// record of the daemon, numbered, with the feed's name, valid against the shipped schema.
#[test]
fn health_only_sink_receives_the_daemon_health_records() {
    let dir = std::env::temp_dir().join(format!("nv-run-health-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("health.jsonl");
    if out.exists() {
        std::fs::remove_file(&out).unwrap();
    }
    let config = format!(
        r#"
[api]
listen = "127.0.0.1:0"

[[sinks]]
name = "ops"
kind = "file"
path = "{}"
records = ["health"]

[[feeds]]
name = "lobby"
source = "synthetic:64x48@30"
[[feeds.stages]]
kind = "brightness"
"#,
        out.display()
    );
    let path = dir.join("nextvision.toml");
    std::fs::write(&path, config).unwrap();
    let daemon = Daemon::run(Path::new(env!("CARGO_BIN_EXE_nextvision")), &path, &[]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(&out).is_ok_and(|t| t.contains("\"feed_added\"")) {
        assert!(Instant::now() < deadline, "no health record written");
        // No event crosses the process boundary for "line written": poll the file.
        std::thread::sleep(Duration::from_millis(20));
    }
    daemon.stop();
    let text = std::fs::read_to_string(&out).unwrap();
    let records: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let schema: serde_json::Value = serde_json::from_str(nv_sinks::HEALTH_SCHEMA_V1).unwrap();
    let validator = jsonschema::draft202012::new(&schema).unwrap();
    for r in &records {
        assert!(validator.is_valid(r), "{r:#}");
    }
    let first = &records[0];
    assert_eq!(first["event"], "feed_added", "{first}");
    assert_eq!(first["id"], 1);
    assert_eq!(first["feed_id"], 1);
    assert_eq!(first["feed"], "lobby");
    assert_eq!(first["message"], "feed added: lobby");
    let ids: Vec<u64> = records.iter().map(|r| r["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, (1..=records.len() as u64).collect::<Vec<_>>());
    let run = first["idempotency_key"]
        .as_str()
        .unwrap()
        .split(':')
        .next()
        .unwrap();
    for r in &records {
        assert_eq!(r["idempotency_key"], format!("{run}:health:{}", r["id"]));
        if r["feed_id"] == 1 {
            assert_eq!(r["feed"], "lobby", "{r}");
        }
    }
    // The feed's end is written too: the thread drains after the runtime stopped.
    assert!(
        records.iter().any(|r| r["event"] == "feed_stopped"),
        "{text}"
    );
}
