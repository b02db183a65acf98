//! The tracker benchmark suite: generated scenes with exact ground truth (see
//! `nv_stages::eval::scenes`), our tracker scored with the in-repo MOT evaluator, and with
//! `--export DIR` the ground truth, detections and our tracks as MOTChallenge files so that
//! `scripts/tracker_compare.py` can run other trackers on identical detections and score
//! everything with py-motmetrics.
//!
//! `cargo run --release -p nv-stages --example tracker_suite -- [--export DIR]`

use std::path::PathBuf;
use std::time::Instant;

use nv_core::id::DetectionId;
use nv_core::time::MonotonicTs;
use nv_perception::{Detection, DetectionSet, TrackState};
use nv_stages::eval::scenes::{generate, Scene, SceneSpec};
use nv_stages::eval::{format_mot_challenge, MotRecord, SequenceLog};
use nv_stages::{Tracker, TrackerConfig};

/// Runs our tracker over the scene; returns the track rows and microseconds per frame.
fn run_ours(scene: &Scene) -> (Vec<MotRecord>, f64) {
    let mut tracker = Tracker::new(TrackerConfig::default()).expect("default config is valid");
    let sets: Vec<DetectionSet> = scene
        .detections
        .iter()
        .map(|dets| {
            dets.iter()
                .enumerate()
                .map(|(i, &(b, c))| Detection::builder(DetectionId::new(i as u64), 0, c, b).build())
                .collect::<Vec<_>>()
                .into()
        })
        .collect();
    let mut rows = Vec::new();
    let start = Instant::now();
    let mut outputs = Vec::with_capacity(sets.len());
    for (f, set) in sets.iter().enumerate() {
        outputs.push(tracker.update(MonotonicTs::from_nanos(f as u64 * 33_333_333), set));
    }
    let per_frame_us = start.elapsed().as_secs_f64() * 1e6 / sets.len().max(1) as f64;
    for (f, tracks) in outputs.iter().enumerate() {
        for t in tracks {
            // What a user sees as a live object: confirmed and coasting tracks.
            if matches!(t.state, TrackState::Confirmed | TrackState::Coasted) {
                rows.push(MotRecord {
                    frame: f as u64 + 1,
                    id: t.id.as_u64(),
                    bbox: t.current.bbox,
                    confidence: t.current.confidence,
                });
            }
        }
    }
    (rows, per_frame_us)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut export: Option<PathBuf> = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--export" => export = args.next().map(PathBuf::from),
            other => return Err(format!("unknown argument {other} (use --export DIR)").into()),
        }
    }
    println!("| scene | objects | frames | MOTA | IDF1 | IDSW | FP | FN | ids | us/frame |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for spec in SceneSpec::suite() {
        let scene = generate(&spec);
        let (hyp, us) = run_ours(&scene);
        let ids = hyp
            .iter()
            .map(|r| r.id)
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        let gt = scene.truth_records();
        let log = SequenceLog::from_records(gt.clone(), hyp.clone());
        let s = log.evaluate(0.5);
        println!(
            "| {} | {} | {} | {:.3} | {:.3} | {} | {} | {} | {} | {:.1} |",
            spec.name,
            spec.objects,
            spec.frames,
            s.mota,
            s.idf1,
            s.id_switches,
            s.false_positives,
            s.misses,
            ids,
            us
        );
        if let Some(dir) = &export {
            let d = dir.join(spec.name);
            std::fs::create_dir_all(&d)?;
            std::fs::write(
                d.join("gt.txt"),
                format_mot_challenge(&gt, spec.width, spec.height),
            )?;
            std::fs::write(
                d.join("nextvision.txt"),
                format_mot_challenge(&hyp, spec.width, spec.height),
            )?;
            // Detection files carry id -1.
            let dets = format_mot_challenge(&scene.detection_records(), spec.width, spec.height)
                .lines()
                .map(|l| l.replacen(",0,", ",-1,", 1))
                .collect::<Vec<_>>()
                .join("\n");
            std::fs::write(d.join("det.txt"), dets + "\n")?;
            std::fs::write(
                d.join("seqinfo.ini"),
                format!(
                    "[Sequence]\nname={}\nseqLength={}\nimWidth={}\nimHeight={}\nframeRate=30\n",
                    spec.name, spec.frames, spec.width, spec.height
                ),
            )?;
        }
    }
    Ok(())
}
