//! Rendered clip -> MotionDetector -> Tracker -> ZoneAnalytics, driven through the `Stage`
//! API as a feed would, scored with the evaluator.

mod common;

use common::{Object, Scene};
use nv_core::geometry::{Point2, Polygon};
use nv_core::id::FeedId;
use nv_core::metrics::StageMetrics;
use nv_perception::{
    NullTemporalAccess, PerceptionArtifacts, StageContext, StagePipeline, TrackState, ViewSnapshot,
};
use nv_stages::eval::SequenceLog;
use nv_stages::{
    Anchor, CrossingDirection, LineSpec, MotionConfig, MotionDetector, Tracker, TrackerConfig,
    ZoneAnalytics, ZoneConfig, ZoneEvent, ZoneEventKind, ZoneEvents, ZoneSpec,
};

const FRAMES: u32 = 300;

/// Two objects crossing on an X (one passes in front of the other), a stop-and-go
/// object, and a late vertical mover; slow lighting drift and sensor noise throughout.
fn scene() -> Scene {
    let obj = |id, w_px, h_px, value, keys: &[(u32, f32, f32)]| Object {
        id,
        w_px,
        h_px,
        value,
        keys: keys.to_vec(),
    };
    Scene {
        width: 640,
        height: 360,
        background: 70.0,
        drift_per_frame: 0.1,
        noise: 3,
        objects: vec![
            obj(1, 48, 48, 210, &[(10, 20.0, 30.0), (190, 560.0, 230.0)]),
            obj(2, 48, 48, 20, &[(20, 570.0, 60.0), (200, 20.0, 230.0)]),
            obj(
                3,
                40,
                60,
                160,
                &[
                    (30, 20.0, 295.0),
                    (100, 300.0, 295.0),
                    (160, 300.0, 295.0),
                    (230, 520.0, 295.0),
                ],
            ),
            obj(4, 40, 40, 240, &[(200, 300.0, 10.0), (290, 300.0, 150.0)]),
        ],
    }
}

/// A vertical counting line at x = 0.4 (top to bottom) and a zone around the place
/// where object 1 comes to rest.
fn zones() -> ZoneConfig {
    ZoneConfig {
        zones: vec![ZoneSpec {
            name: "corner".into(),
            polygon: Polygon::new(vec![
                Point2::new(0.8, 0.55),
                Point2::new(1.0, 0.55),
                Point2::new(1.0, 0.8),
                Point2::new(0.8, 0.8),
            ]),
        }],
        lines: vec![LineSpec {
            name: "gate".into(),
            start: Point2::new(0.4, 0.0),
            end: Point2::new(0.4, 1.0),
        }],
        anchor: Anchor::Center,
        ..ZoneConfig::default()
    }
}

struct Run {
    log: SequenceLog,
    events: Vec<ZoneEvent>,
    last: ZoneEvents,
}

/// Runs the clip through motion -> tracker -> zones as a feed would, and logs ground
/// truth against every track the tracker reports (confirmed and coasting; lost ones
/// have ended).
fn run_pipeline(scene: &Scene) -> Run {
    run_pipeline_frames(scene, FRAMES)
}

fn run_pipeline_frames(scene: &Scene, frames: u32) -> Run {
    let pipeline = StagePipeline::new()
        .stage(MotionDetector::new(MotionConfig::default()).expect("valid config"))
        .stage(Tracker::new(TrackerConfig::default()).expect("valid config"))
        .stage(ZoneAnalytics::new(zones()).expect("valid config"));
    assert!(pipeline.validate().is_empty(), "{:?}", pipeline.validate());
    let mut stages = pipeline.into_stages();
    for s in &mut stages {
        s.on_start().expect("start");
    }
    let view = ViewSnapshot::default();
    let temporal = NullTemporalAccess::default();
    let mut run = Run {
        log: SequenceLog::new(),
        events: Vec::new(),
        last: ZoneEvents::default(),
    };
    for f in 0..frames {
        let frame = scene.render_nv12(f);
        let mut artifacts = PerceptionArtifacts::new();
        for stage in &mut stages {
            let ctx = StageContext::new(
                FeedId::new(1),
                &frame,
                &artifacts,
                &view,
                &temporal,
                StageMetrics::default(),
                frame.ts(),
            );
            let out = stage.process(&ctx).expect("stage ran");
            artifacts.merge(out);
        }
        let hyp: Vec<_> = artifacts
            .tracks
            .iter()
            .filter(|t| t.state != TrackState::Lost)
            .map(|t| (t.id.as_u64(), t.current.bbox, t.current.confidence))
            .collect();
        run.log.push_frame(&scene.truth(f), &hyp);
        if let Some(z) = artifacts.stage_artifacts.get::<ZoneEvents>() {
            run.events.extend(z.events.iter().cloned());
            run.last = z.clone();
        }
    }
    run
}

#[test]
fn motion_tracker_zones_on_rendered_clip() {
    let scene = scene();
    let run = run_pipeline(&scene);
    let s = run.log.evaluate(0.5);
    println!("{s:#?}");
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("nv-stages-e2e");
    std::fs::create_dir_all(&dir).expect("tmp dir");
    run.log
        .write_mot_challenge(
            &dir.join("gt.txt"),
            &dir.join("hyp.txt"),
            scene.width,
            scene.height,
        )
        .expect("write MOT files");
    println!("MOTChallenge files in {}", dir.display());
    // Scored from the files, the numbers are the same: what an external tool reads is
    // what was evaluated here.
    let back = SequenceLog::read_mot_challenge(
        &dir.join("gt.txt"),
        &dir.join("hyp.txt"),
        scene.width,
        scene.height,
    )
    .expect("read MOT files")
    .evaluate(0.5);
    assert_eq!(
        (
            back.matches,
            back.misses,
            back.false_positives,
            back.id_switches,
            back.idtp
        ),
        (
            s.matches,
            s.misses,
            s.false_positives,
            s.id_switches,
            s.idtp
        )
    );
    assert!(s.mota >= 0.95, "MOTA {}", s.mota);
    assert!(s.idf1 >= 0.9, "IDF1 {}", s.idf1);
    // The crossing (a full occlusion) and the stop-and-go keep every identity.
    assert_eq!(s.id_switches, 0);
    assert_eq!(s.num_unique_objects, 4);

    // Objects 1 (frame ~81) and 3 (~85) cross the gate moving right, object 2 (~131)
    // moving left; tracks are numbered in order of appearance, so they are 1, 3, 2.
    // Walking down the line (its direction), screen-right is on the walker's left.
    let crossings: Vec<_> = run
        .events
        .iter()
        .filter_map(|e| match e.kind {
            ZoneEventKind::LineCrossed { direction } => Some((e.track_id.as_u64(), direction)),
            _ => None,
        })
        .collect();
    assert_eq!(
        crossings,
        [
            (1, CrossingDirection::RightToLeft),
            (3, CrossingDirection::RightToLeft),
            (2, CrossingDirection::LeftToRight)
        ],
        "{:?}",
        run.events
    );
    assert_eq!(run.last.line_totals[0].1, 1);
    assert_eq!(run.last.line_totals[0].2, 2);
    // Object 1 rests in the corner zone: entered once, never left.
    let corner: Vec<_> = run.events.iter().filter(|e| &*e.name == "corner").collect();
    assert_eq!(corner.len(), 1, "{corner:?}");
    assert_eq!(corner[0].kind, ZoneEventKind::Enter);
    assert_eq!(run.last.occupancy[0].1, 1);
}

/// Objects that enter and leave through the frame edges, two of them crossing, one
/// pausing mid-frame for two seconds.
fn through_traffic() -> Scene {
    let obj = |id, w_px, h_px, value, keys: &[(u32, f32, f32)]| Object {
        id,
        w_px,
        h_px,
        value,
        keys: keys.to_vec(),
    };
    Scene {
        width: 640,
        height: 360,
        background: 110.0,
        drift_per_frame: -0.05,
        noise: 3,
        objects: vec![
            obj(1, 50, 40, 230, &[(10, -60.0, 60.0), (150, 660.0, 90.0)]),
            obj(2, 50, 40, 20, &[(30, 660.0, 120.0), (170, -60.0, 50.0)]),
            obj(
                3,
                36,
                70,
                200,
                &[
                    (40, 300.0, -80.0),
                    (90, 300.0, 150.0),
                    (150, 300.0, 150.0),
                    (220, 300.0, 380.0),
                ],
            ),
            obj(4, 60, 30, 40, &[(120, -70.0, 300.0), (260, 660.0, 280.0)]),
        ],
    }
}

#[test]
fn objects_entering_and_leaving_through_the_edges() {
    let scene = through_traffic();
    let run = run_pipeline_frames(&scene, 280);
    let s = run.log.evaluate(0.5);
    println!("{s:#?}");
    assert!(s.mota >= 0.95, "MOTA {}", s.mota);
    assert!(s.idf1 >= 0.9, "IDF1 {}", s.idf1);
}
