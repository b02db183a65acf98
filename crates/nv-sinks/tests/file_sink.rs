//! JSONL file sink: rotation by size and age, retention, reopen, stdout.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use std::path::Path;
use std::time::Duration;

use nv_core::clock::ManualClock;
use nv_io::OutputSink;
use nv_sinks::{FileSink, FileSinkConfig, FsyncPolicy, OutputRecord, SinkConfig, SinkStats};

fn read_keys(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<OutputRecord>(l)
                .unwrap()
                .idempotency_key
        })
        .collect()
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn rotates_by_size_keeping_every_record_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("nested/out");
    let path = dir.join("outputs.jsonl");
    let outputs = common::outputs(20);
    let line_len = OutputRecord::from_output(&outputs[0])
        .to_json_line()
        .unwrap()
        .len() as u64;
    let mut config = FileSinkConfig::new(&path);
    config.max_bytes = Some(line_len * 3 + line_len / 2);
    config.fsync = FsyncPolicy::EveryRecords(5);
    let stats = SinkStats::new();
    let mut sink = FileSink::open(config, stats.clone()).unwrap();
    for o in &outputs {
        sink.emit(o.clone());
    }
    sink.flush();
    drop(sink);
    let names = files_in(&dir);
    // 20 records, at most 3 per file: 6 rotated files and the active one.
    assert_eq!(
        names,
        vec![
            "outputs.000001.jsonl",
            "outputs.000002.jsonl",
            "outputs.000003.jsonl",
            "outputs.000004.jsonl",
            "outputs.000005.jsonl",
            "outputs.000006.jsonl",
            "outputs.jsonl"
        ]
    );
    let mut all = Vec::new();
    for n in &names[..6] {
        let k = read_keys(&dir.join(n));
        assert_eq!(k.len(), 3, "{n}");
        all.extend(k);
    }
    all.extend(read_keys(&path));
    assert_eq!(all, common::keys(&outputs));
    let s = stats.snapshot();
    assert_eq!((s.delivered, s.failed, s.dropped_by_buffer), (20, 0, 0));
}

#[test]
fn rotates_by_age_and_applies_retention_and_continues_indices() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("o.jsonl");
    let outputs = common::outputs(6);
    let clock = ManualClock::new();
    let mut config = FileSinkConfig::new(&path);
    config.max_age_secs = Some(60);
    config.max_files = Some(2);
    config.fsync = FsyncPolicy::Never;
    let mut sink =
        FileSink::open_with_clock(config.clone(), SinkStats::new(), clock.clone()).unwrap();
    for o in &outputs[..4] {
        sink.emit(o.clone());
        clock.advance(Duration::from_secs(30));
    }
    drop(sink);
    // Rotation happens on the first record after the file turned 60 s old (never an
    // empty file): [0,1] rotated, [2,3] active.
    assert_eq!(files_in(tmp.path()), vec!["o.000001.jsonl", "o.jsonl"]);
    assert_eq!(read_keys(&path), common::keys(&outputs[2..4]));
    let mut sink = FileSink::open_with_clock(config, SinkStats::new(), clock.clone()).unwrap();
    for o in &outputs[4..] {
        clock.advance(Duration::from_secs(61));
        sink.emit(o.clone());
    }
    drop(sink);
    // Index 3 continues after 2; retention keeps only the newest 2 rotated files.
    assert_eq!(
        files_in(tmp.path()),
        vec!["o.000002.jsonl", "o.000003.jsonl", "o.jsonl"]
    );
    let keys = common::keys(&outputs);
    assert_eq!(read_keys(&tmp.path().join("o.000002.jsonl")), keys[2..4]);
    assert_eq!(read_keys(&tmp.path().join("o.000003.jsonl")), keys[4..5]);
    assert_eq!(read_keys(&path), keys[5..6]);
}

#[test]
fn config_builds_a_file_sink_that_a_runtime_feeds() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("run.jsonl");
    let config: SinkConfig = toml::from_str(&format!(
        "type = \"file\"\npath = {:?}\nfsync = \"on_rotation\"\n",
        path
    ))
    .unwrap();
    let stats = SinkStats::new();
    let keys = common::run_feed(15, config.build_with_stats(stats.clone()).unwrap(), &stats);
    assert_eq!(read_keys(&path), keys);
}

#[test]
fn unwritable_path_is_a_typed_error() {
    let tmp = tempfile::tempdir().unwrap();
    let blocker = tmp.path().join("file");
    std::fs::write(&blocker, b"x").unwrap();
    let err = FileSink::open(
        FileSinkConfig::new(blocker.join("sub/o.jsonl")),
        SinkStats::new(),
    )
    .unwrap_err();
    assert!(std::error::Error::source(&err).is_some(), "{err}");
}

#[test]
fn stdout_sink_and_factory_rebuild_share_counters() {
    let stats = SinkStats::new();
    let config: SinkConfig = toml::from_str("type = \"stdout\"\n").unwrap();
    let factory = config.factory(stats.clone());
    let outputs = common::outputs(2);
    let mut first = factory();
    first.emit(outputs[0].clone());
    let mut rebuilt = factory();
    rebuilt.emit(outputs[1].clone());
    assert_eq!(stats.snapshot().delivered, 2);
    // A factory whose sink cannot be rebuilt hands back one that counts failures.
    let tmp = tempfile::tempdir().unwrap();
    let blocker = tmp.path().join("f");
    std::fs::write(&blocker, b"x").unwrap();
    let bad = SinkConfig::File(FileSinkConfig::new(blocker.join("o.jsonl")));
    let bad_stats = SinkStats::new();
    let mut sink = bad.factory(bad_stats.clone())();
    sink.emit(outputs[0].clone());
    assert_eq!(bad_stats.snapshot().failed, 1);
}

/// `records = ["health"]`: every health record, exactly, one line each, and no frame.
#[test]
fn health_only_file_sink_writes_exact_health_records() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("health.jsonl");
    let config: SinkConfig = toml::from_str(&format!(
        "type = \"file\"\npath = {:?}\nrecords = [\"health\"]\n",
        path.to_str().unwrap()
    ))
    .unwrap();
    let stats = SinkStats::new();
    let mut sink = config.build_with_stats(stats.clone()).unwrap();
    assert!(sink.selects_health());
    for o in common::outputs(3) {
        sink.emit(o);
    }
    for h in common::health_records() {
        sink.emit_health(&h);
    }
    drop(sink);
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<Vec<u8>> = text.lines().map(|l| l.as_bytes().to_vec()).collect();
    common::assert_health_payloads(&lines);
    let s = stats.snapshot();
    assert_eq!((s.received, s.delivered, s.failed), (3, 3, 0));
    // Feed 1's two records; the runtime-wide one under feed 0.
    assert_eq!(stats.feed(nv_core::id::FeedId::new(1)).delivered, 2);
    assert_eq!(stats.feed(nv_core::id::FeedId::new(0)).delivered, 1);
}

/// A sink without `health` in `records` ignores health records (and says so).
#[test]
fn frames_file_sink_ignores_health_records() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("o.jsonl");
    let stats = SinkStats::new();
    let mut sink = SinkConfig::File(FileSinkConfig::new(&path))
        .build_with_stats(stats.clone())
        .unwrap();
    assert!(!sink.selects_health());
    for h in common::health_records() {
        sink.emit_health(&h);
    }
    drop(sink);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
    assert_eq!(stats.snapshot().received, 0);
}
