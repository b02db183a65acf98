//! End to end: a clip with exact ground truth, encoded with GStreamer, decoded through a
//! real feed, run through the motion detector and tracker, scored by our evaluator and by
//! Python's `motmetrics` (installed here when missing), which must agree to 3 decimals.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use nv_core::geometry::BBox;
use nv_perception::TrackState;
use nv_runtime::{CameraMode, FeedConfig, Runtime, SourceSpec};
use nv_stages::eval::SequenceLog;
use nv_stages::{MotionConfig, MotionDetector, Tracker, TrackerConfig};
use nv_test_util::clip::Scenario;
use nv_test_util::CollectingSink;

/// A private virtualenv with motmetrics and the versions it works with (it breaks on
/// NumPy 2), created once under the target directory.
fn motmetrics_python() -> std::path::PathBuf {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("motmetrics-venv");
    let python = venv.join("bin/python3");
    let ok = |c: &mut Command| c.status().map(|s| s.success()).unwrap_or(false);
    if ok(Command::new(&python).args(["-c", "import motmetrics"])) {
        return python;
    }
    assert!(
        ok(Command::new("python3").arg("-m").arg("venv").arg(&venv)),
        "python3 -m venv failed"
    );
    let pip = [
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "motmetrics==1.4.0",
        "numpy<2",
        "pandas<2.3",
        "scipy<1.15",
    ];
    assert!(
        ok(Command::new(&python).args(pip)),
        "could not install motmetrics into {}",
        venv.display()
    );
    python
}

#[test]
fn motion_and_tracker_score_well_and_match_motmetrics() {
    let dir = std::env::temp_dir().join(format!("nv-mot-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let scenario = Scenario::standard(150);
    let clip = scenario.encode_mp4(&dir, "standard").unwrap();

    let rt = Runtime::builder()
        .source_factory(Arc::new(nv_media::GstSourceFactory::new()))
        .build()
        .unwrap();
    let sink = CollectingSink::new();
    rt.add_feed(
        FeedConfig::builder()
            .source(SourceSpec::file(&clip))
            .camera_mode(CameraMode::Fixed)
            .stage(MotionDetector::new(MotionConfig::default()).unwrap())
            .stage(Tracker::new(TrackerConfig::default()).unwrap())
            .output_sink(sink.clone())
            .lossless()
            .build()
            .unwrap(),
    )
    .unwrap();
    let outputs = sink.wait_for(scenario.frames);
    assert_eq!(outputs.len(), scenario.frames);

    let (w, h) = (scenario.width as f32, scenario.height as f32);
    let mut log = SequenceLog::new();
    for (i, out) in outputs.iter().enumerate() {
        assert_eq!(out.frame_seq, i as u64);
        let gt: Vec<(u64, BBox)> = scenario
            .truth(i)
            .into_iter()
            .map(|(id, [x, y, bw, bh])| (id, BBox::from_xywh(x / w, y / h, bw / w, bh / h)))
            .collect();
        let ignored: Vec<BBox> = scenario
            .ignored(i)
            .into_iter()
            .map(|[x, y, bw, bh]| BBox::from_xywh(x / w, y / h, bw / w, bh / h))
            .collect();
        // Hypotheses on objects mostly outside the picture are neither hits nor misses.
        let in_ignored = |b: &BBox| ignored.iter().any(|g| g.intersection(b) >= 0.5 * b.area());
        let hyp: Vec<(u64, BBox, f32)> = out
            .tracks
            .iter()
            .filter(|t| {
                matches!(t.state, TrackState::Confirmed | TrackState::Coasted)
                    && !in_ignored(&t.current.bbox)
            })
            .map(|t| (t.id.as_u64(), t.current.bbox, t.current.confidence))
            .collect();
        log.push_frame(&gt, &hyp);
    }
    let ours = log.evaluate(0.5);
    eprintln!(
        "ours: MOTA {:.4} IDF1 {:.4} IDSW {} FP {} FN {}",
        ours.mota, ours.idf1, ours.id_switches, ours.false_positives, ours.misses
    );

    let python = motmetrics_python();
    let (gt_path, hyp_path) = (dir.join("gt.txt"), dir.join("hyp.txt"));
    log.write_mot_challenge(&gt_path, &hyp_path, scenario.width, scenario.height)
        .unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/motmetrics_eval.py");
    let out = Command::new(&python)
        .arg(&script)
        .arg(&gt_path)
        .arg(&hyp_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let fields: Vec<f64> = text
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect();
    eprintln!(
        "motmetrics: MOTA {:.4} IDF1 {:.4} IDSW {}",
        fields[0], fields[1], fields[2]
    );
    assert!(
        (fields[0] - ours.mota).abs() < 5e-4,
        "MOTA ours {:.6} vs motmetrics {:.6}",
        ours.mota,
        fields[0]
    );
    assert!(
        (fields[1] - ours.idf1).abs() < 5e-4,
        "IDF1 ours {:.6} vs motmetrics {:.6}",
        ours.idf1,
        fields[1]
    );
    assert_eq!(fields[2] as u64, ours.id_switches);
    assert!(ours.mota >= 0.95, "MOTA {:.4}", ours.mota);
    assert!(ours.idf1 >= 0.9, "IDF1 {:.4}", ours.idf1);
}
