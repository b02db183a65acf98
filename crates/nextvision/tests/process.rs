//! `nextvision process` decodes a real clip generated with GStreamer at test time and
//! writes schema-v1 output records (the daemon's sinks and schema).
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::process::Command;

#[test]
fn processes_every_frame_of_a_clip_into_json_lines() {
    let dir = std::env::temp_dir().join(format!("nv-process-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let clip = dir.join("clip.mp4");
    nv_test_util::clip::test_pattern_mp4(&clip, 45, 160, 120, "ball");
    let out = dir.join("out.jsonl");
    let run = Command::new(env!("CARGO_BIN_EXE_nextvision"))
        .arg("process")
        .arg(&clip)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(
        stderr.contains("| 45 | 45 | 0 |"),
        "summary table: {stderr}"
    );
    assert!(stderr.contains("end of stream"), "{stderr}");
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 45);
    let schema: serde_json::Value = serde_json::from_str(nv_sinks::OUTPUT_SCHEMA_V1).unwrap();
    let validator = jsonschema::draft202012::new(&schema).unwrap();
    for l in &lines {
        let errors: Vec<String> = validator.iter_errors(l).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{errors:?}\n{l}");
        assert_eq!(l["schema_version"], 1);
    }
    let seqs: Vec<u64> = lines
        .iter()
        .map(|l| l["frame_seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, (0..45).collect::<Vec<_>>());
    // The ball is found on (nearly) every frame by the blob detector.
    let with_detections = lines
        .iter()
        .filter(|l| !l["detections"].as_array().unwrap().is_empty())
        .count();
    assert!(with_detections >= 40, "{with_detections}");
}

/// `process` on a camera whose password holds unencoded reserved characters: the password
/// never reaches stderr (progress, disconnect lines, summary, errors) nor stdout. The port
/// is closed, so the source keeps failing until the time limit.
#[test]
fn process_never_prints_a_password_with_reserved_characters() {
    let refused = nv_test_util::port::RefusedPort::new();
    let port = refused.port();
    for pw in ["Pl4nted/S3cret-9x7", "Pl4nt@d/S3cr:t#9x7", "S3cr?x#y@z:w/v"] {
        // Bound the wait on the time limit, not on a sleep: the process ends by itself.
        let run = Command::new(env!("CARGO_BIN_EXE_nextvision"))
            .arg("process")
            .arg(format!("rtsp://viewer:{pw}@127.0.0.1:{port}/x"))
            .args(["--max-seconds", "1.5"])
            .env("RUST_LOG", "debug")
            .output()
            .unwrap();
        let all = String::from_utf8_lossy(&run.stderr).to_string()
            + &String::from_utf8_lossy(&run.stdout);
        assert!(all.contains("***@127.0.0.1"), "{all}");
        assert!(!all.contains("S3cr"), "password printed: {all}");
    }
}
