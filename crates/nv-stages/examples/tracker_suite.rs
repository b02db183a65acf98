//! The tracker benchmark suite: generated scenes with exact ground truth (see
//! `nv_stages::eval::scenes`), our tracker scored with the in-repo MOT evaluator, and with
//! `--export DIR` the ground truth, detections and our tracks as MOTChallenge files so that
//! `scripts/tracker_compare.py` can run other trackers on identical detections and score
//! everything with py-motmetrics.
//!
//! `cargo run --release -p nv-stages --example tracker_suite -- [--export DIR] [--set KEY=VALUE]...`
//!
//! Every scene runs with each of `SUITE_SEEDS`; rows and folders are named `SCENE-sSEED`.
//! `--set` overrides a tracker setting (`min_hits`, `max_age_frames`,
//! `coast_frames_per_hit`, `edge_exit_misses`,
//! `exit_visible_fraction`, `high_confidence`, `low_confidence`, `new_track_confidence`,
//! `min_iou_high`, `min_iou_low`, `kalman.measurement_noise`, `kalman.position_noise`), for
//! exploring; the benchmark runs the defaults.

use std::path::PathBuf;
use std::time::Instant;

use nv_core::id::DetectionId;
use nv_core::time::MonotonicTs;
use nv_perception::{Detection, DetectionSet, TrackState};
use nv_stages::eval::scenes::{generate, Scene, SceneSpec, SUITE_SEEDS};
use nv_stages::eval::{format_mot_challenge, MotRecord, SequenceLog};
use nv_stages::{Tracker, TrackerConfig};

/// Timed runs per scene.
const RUNS: usize = 9;

/// Runs our tracker over the scene (`RUNS` times; the rows are the last run's); returns the track rows and microseconds per frame.
fn run_ours(scene: &Scene, config: &TrackerConfig) -> Result<(Vec<MotRecord>, f64), String> {
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
    // The median of several runs: one run on a busy machine measures the machine.
    let mut times = Vec::with_capacity(RUNS);
    let mut outputs = Vec::with_capacity(sets.len());
    for _ in 0..RUNS {
        let mut tracker = Tracker::new(config.clone()).map_err(|e| e.to_string())?;
        outputs.clear();
        let start = Instant::now();
        for (f, set) in sets.iter().enumerate() {
            outputs.push(tracker.update(MonotonicTs::from_nanos(f as u64 * 33_333_333), set));
        }
        times.push(start.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let per_frame_us = times[RUNS / 2] * 1e6 / sets.len().max(1) as f64;
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
    Ok((rows, per_frame_us))
}

fn set(config: &mut TrackerConfig, kv: &str) -> Result<(), String> {
    let (key, value) = kv
        .split_once('=')
        .ok_or_else(|| format!("--set wants KEY=VALUE, got {kv}"))?;
    let float = || {
        value
            .parse::<f32>()
            .map_err(|e| format!("{key}: {value}: {e}"))
    };
    let int = || {
        value
            .parse::<u32>()
            .map_err(|e| format!("{key}: {value}: {e}"))
    };
    match key {
        "min_hits" => config.min_hits = int()?,
        "max_age_frames" => config.max_age_frames = int()?,
        "coast_frames_per_hit" => config.coast_frames_per_hit = int()?,
        "edge_exit_misses" => config.edge_exit_misses = int()?,
        "exit_visible_fraction" => config.exit_visible_fraction = float()?,
        "high_confidence" => config.high_confidence = float()?,
        "low_confidence" => config.low_confidence = float()?,
        "new_track_confidence" => config.new_track_confidence = float()?,
        "min_iou_high" => config.min_iou_high = float()?,
        "min_iou_low" => config.min_iou_low = float()?,
        "kalman.measurement_noise" => config.kalman.measurement_noise = f64::from(float()?),
        "kalman.position_noise" => config.kalman.position_noise = f64::from(float()?),
        other => return Err(format!("--set: unknown key {other}")),
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut export: Option<PathBuf> = None;
    let mut config = TrackerConfig::default();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--export" => export = args.next().map(PathBuf::from),
            "--set" => set(&mut config, &args.next().unwrap_or_default())?,
            other => {
                return Err(
                    format!("unknown argument {other} (use --export DIR, --set KEY=VALUE)").into(),
                )
            }
        }
    }
    println!("| scene | objects | frames | MOTA | IDF1 | IDSW | FP | FN | ids | us/frame |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for spec in SUITE_SEEDS.iter().flat_map(|&s| SceneSpec::suite_seeded(s)) {
        let name = format!("{}-s{}", spec.name, spec.seed);
        let scene = generate(&spec);
        let (hyp, us) = run_ours(&scene, &config)?;
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
            name,
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
            let d = dir.join(&name);
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
                    name, spec.frames, spec.width, spec.height
                ),
            )?;
        }
    }
    Ok(())
}
