use super::*;
use nv_core::id::FeedId;
use nv_core::metrics::StageMetrics;
use nv_core::source::PixelFormat;
use nv_frame::FrameEnvelope;
use nv_perception::{NullTemporalAccess, PerceptionArtifacts, ViewSnapshot};
use std::collections::HashMap;

fn det(id: u64, x: f32, y: f32, w: f32, h: f32, conf: f32) -> Detection {
    Detection::builder(DetectionId::new(id), 0, conf, BBox::from_xywh(x, y, w, h)).build()
}

fn ts(frame: u64) -> MonotonicTs {
    MonotonicTs::from_nanos(frame * 33_333_333)
}

fn tracker() -> Tracker {
    Tracker::new(TrackerConfig::default()).unwrap()
}

/// Track id whose box best overlaps `b` (IoU > 0.3), if any.
fn id_at(tracks: &[Track], b: BBox) -> Option<u64> {
    tracks
        .iter()
        .map(|t| (t.current.bbox.iou(&b), t.id.as_u64()))
        .filter(|(iou, _)| *iou > 0.3)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, id)| id)
}

#[test]
fn straight_path_keeps_one_id_and_confirms_after_min_hits() {
    let mut t = tracker();
    let min_hits = u64::from(t.config().min_hits);
    assert_eq!(
        min_hits, 2,
        "ByteTrack's default: confirmed on the second hit"
    );
    let mut ids = Vec::new();
    for f in 0..60u64 {
        let x = 0.05 + 0.01 * f as f32;
        let out = t.update(ts(f), &vec![det(0, x, 0.4, 0.08, 0.1, 0.9)].into());
        if f + 1 < min_hits {
            assert!(out.is_empty(), "tentative tracks are hidden (frame {f})");
        } else {
            assert_eq!(out.len(), 1);
            assert_eq!(out[0].state, TrackState::Confirmed);
            assert!(out[0].current.bbox.iou(&BBox::from_xywh(x, 0.4, 0.08, 0.1)) > 0.9);
            ids.push(out[0].id);
        }
    }
    assert!(ids.iter().all(|&i| i == ids[0]));
}

/// Two objects on an X: they overlap heavily mid-way. A greedy matcher or a tracker
/// without motion swaps them; the Kalman prediction plus optimal assignment must not.
#[test]
fn crossing_paths_keep_their_ids() {
    let mut t = tracker();
    let path_a = |f: f32| BBox::from_xywh(0.1 + 0.01 * f, 0.1 + 0.008 * f, 0.1, 0.1);
    let path_b = |f: f32| BBox::from_xywh(0.1 + 0.01 * f, 0.58 - 0.008 * f, 0.1, 0.1);
    let mut first: Option<(u64, u64)> = None;
    for f in 0..60u64 {
        let (a, b) = (path_a(f as f32), path_b(f as f32));
        // Alternate the detection order so position in the list carries no identity.
        let mut dets = vec![
            Detection::builder(DetectionId::new(0), 0, 0.9, a).build(),
            Detection::builder(DetectionId::new(1), 0, 0.9, b).build(),
        ];
        if f % 2 == 1 {
            dets.reverse();
        }
        let out = t.update(ts(f), &dets.into());
        // While the boxes nearly coincide, "which is which" is not observable.
        if f >= 2 && a.iou(&b) < 0.3 {
            let ids = (id_at(&out, a).unwrap(), id_at(&out, b).unwrap());
            assert_ne!(ids.0, ids.1, "frame {f}");
            match first {
                None => first = Some(ids),
                Some(expected) => assert_eq!(ids, expected, "identity swap at frame {f}"),
            }
        }
    }
}

#[test]
fn coasts_through_a_short_occlusion_and_keeps_its_id() {
    let mut t = tracker();
    let pos = |f: u64| BBox::from_xywh(0.05 + 0.01 * f as f32, 0.3, 0.08, 0.1);
    let mut id = None;
    for f in 0..50u64 {
        let dets: DetectionSet = if (20..28).contains(&f) {
            DetectionSet::empty()
        } else {
            vec![Detection::builder(DetectionId::new(0), 0, 0.9, pos(f)).build()].into()
        };
        let out = t.update(ts(f), &dets);
        if f < 2 {
            continue;
        }
        assert_eq!(out.len(), 1, "frame {f}");
        let tr = &out[0];
        assert_eq!(
            *id.get_or_insert(tr.id),
            tr.id,
            "re-identified at frame {f}"
        );
        if (20..28).contains(&f) {
            assert_eq!(tr.state, TrackState::Coasted);
            assert!(tr.current.detection_id.is_none());
            // The prediction keeps moving with the object.
            assert!(tr.current.bbox.iou(&pos(f)) > 0.5, "frame {f}");
        } else {
            assert_eq!(tr.state, TrackState::Confirmed);
        }
    }
}

/// The object stops while hidden, so the constant-velocity prediction runs away from it.
/// Observation-centric recovery matches on the last observed box instead.
#[test]
fn recovers_an_object_that_stopped_while_hidden() {
    let mut t = tracker();
    let mut id = None;
    for f in 0..40u64 {
        let x = 0.05 + 0.01 * f.min(20) as f32;
        let b = BBox::from_xywh(x, 0.3, 0.05, 0.1);
        let dets: DetectionSet = if (20..30).contains(&f) {
            DetectionSet::empty()
        } else {
            vec![Detection::builder(DetectionId::new(0), 0, 0.9, b).build()].into()
        };
        let out = t.update(ts(f), &dets);
        if f >= 2 {
            assert_eq!(out.len(), 1, "frame {f}: {out:?}");
            assert_eq!(*id.get_or_insert(out[0].id), out[0].id, "frame {f}");
        }
        if f >= 31 {
            // The re-update removed the stale velocity: the box sits on the object again.
            assert!(out[0].current.bbox.iou(&b) > 0.7, "frame {f}");
        }
    }
}

#[test]
fn low_confidence_detections_extend_tracks_but_never_start_them() {
    let mut t = tracker();
    let pos = |f: u64| BBox::from_xywh(0.1 + 0.005 * f as f32, 0.5, 0.1, 0.1);
    let mut id = None;
    for f in 0..40u64 {
        // Frames 15..25: the detector is unsure (partial occlusion).
        let conf = if (15..25).contains(&f) { 0.3 } else { 0.9 };
        let mut dets = vec![Detection::builder(DetectionId::new(0), 0, conf, pos(f)).build()];
        // A weak detection somewhere else must not become a track.
        dets.push(det(1, 0.8, 0.1, 0.05, 0.05, 0.3));
        let out = t.update(ts(f), &dets.into());
        if f >= 2 {
            assert_eq!(out.len(), 1, "frame {f}");
            assert_eq!(out[0].state, TrackState::Confirmed, "frame {f}");
            assert_eq!(out[0].current.detection_id, Some(DetectionId::new(0)));
            assert_eq!(*id.get_or_insert(out[0].id), out[0].id);
        }
    }
    // Below the low threshold the detection is ignored: the track coasts.
    let out = t.update(ts(40), &vec![det(0, 0.3, 0.5, 0.1, 0.1, 0.05)].into());
    assert_eq!(out[0].state, TrackState::Coasted);
}

#[test]
fn lost_after_max_age_reported_once_and_ids_are_monotonic() {
    let cfg = TrackerConfig {
        max_age_frames: 5,
        min_hits: 1,
        // One hit earns the full 5 frames of coasting here.
        coast_frames_per_hit: 5,
        ..TrackerConfig::default()
    };
    let mut t = Tracker::new(cfg).unwrap();
    let b = det(0, 0.2, 0.2, 0.1, 0.1, 0.9);
    let out = t.update(ts(0), &vec![b.clone()].into());
    assert_eq!(
        out[0].state,
        TrackState::Confirmed,
        "min_hits 1 confirms at birth"
    );
    let first = out[0].id;
    let mut states = Vec::new();
    for f in 1..10 {
        let out = t.update(ts(f), &DetectionSet::empty());
        states.push(out.first().map(|t| t.state));
    }
    assert_eq!(
        states,
        [
            Some(TrackState::Coasted),
            Some(TrackState::Coasted),
            Some(TrackState::Coasted),
            Some(TrackState::Coasted),
            Some(TrackState::Coasted),
            Some(TrackState::Lost),
            None,
            None,
            None
        ]
    );
    let out = t.update(ts(10), &vec![b].into());
    assert!(out[0].id > first);
}

#[test]
fn tentative_tracks_are_dropped_on_a_miss() {
    let cfg = TrackerConfig {
        emit_tentative: true,
        ..TrackerConfig::default()
    };
    let mut t = Tracker::new(cfg).unwrap();
    let out = t.update(ts(0), &vec![det(0, 0.2, 0.2, 0.1, 0.1, 0.9)].into());
    assert_eq!(out[0].state, TrackState::Tentative);
    let out = t.update(ts(1), &DetectionSet::empty());
    assert!(out.is_empty());
    assert_eq!(t.live_track_count(), 0);
}

#[test]
fn many_objects_keep_ids() {
    let mut t = tracker();
    let n = 100;
    let boxes = |f: u64| -> Vec<BBox> {
        (0..n)
            .map(|i| {
                let (gx, gy) = ((i % 10) as f32, (i / 10) as f32);
                BBox::from_xywh(
                    0.01 + gx * 0.095 + 0.0005 * f as f32,
                    0.01 + gy * 0.095,
                    0.05,
                    0.05,
                )
            })
            .collect()
    };
    let mut owner: HashMap<u64, usize> = HashMap::new();
    for f in 0..30u64 {
        let dets: Vec<Detection> = boxes(f)
            .into_iter()
            .enumerate()
            .map(|(i, b)| Detection::builder(DetectionId::new(i as u64), 0, 0.9, b).build())
            .collect();
        let out = t.update(ts(f), &dets.into());
        for tr in &out {
            let i = tr.current.detection_id.unwrap().as_u64() as usize;
            assert_eq!(*owner.entry(tr.id.as_u64()).or_insert(i), i);
        }
    }
    assert_eq!(owner.len(), n);
}

fn run_stage(stage: &mut Tracker, frame: &FrameEnvelope, dets: Vec<Detection>) -> Vec<Track> {
    let mut artifacts = PerceptionArtifacts::new();
    artifacts.merge(StageOutput::with_detections(dets));
    let view = ViewSnapshot::default();
    let temporal = NullTemporalAccess::default();
    let ctx = StageContext::new(
        FeedId::new(1),
        frame,
        &artifacts,
        &view,
        &temporal,
        StageMetrics::default(),
        frame.ts(),
    );
    stage.process(&ctx).unwrap().tracks.unwrap()
}

#[test]
fn stage_interface_and_epoch_reset() {
    let mut stage = Tracker::new(TrackerConfig {
        min_hits: 1,
        ..TrackerConfig::default()
    })
    .unwrap();
    assert_eq!(stage.category(), StageCategory::Association);
    let caps = stage.capabilities().unwrap();
    assert!(caps.consumes_detections && caps.produces_tracks);
    stage.on_start().unwrap();
    let frame = FrameEnvelope::new_owned(
        FeedId::new(1),
        0,
        ts(0),
        2,
        2,
        PixelFormat::Gray8,
        vec![0; 4],
    )
    .unwrap();
    let d = || vec![det(0, 0.2, 0.2, 0.1, 0.1, 0.9)];
    let out = run_stage(&mut stage, &frame, d());
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].current.ts, ts(0));
    let before = out[0].id;
    stage
        .on_view_epoch_change(ViewEpoch::INITIAL.next())
        .unwrap();
    assert_eq!(stage.live_track_count(), 0);
    let out = run_stage(&mut stage, &frame, d());
    assert!(out[0].id > before, "IDs are never reused after a reset");

    // Re-anchoring keeps the track and its ID.
    let mut stage = Tracker::new(TrackerConfig {
        min_hits: 1,
        epoch_policy: EpochPolicy::ReAnchor,
        ..TrackerConfig::default()
    })
    .unwrap();
    let id = run_stage(&mut stage, &frame, d())[0].id;
    stage
        .on_view_epoch_change(ViewEpoch::INITIAL.next())
        .unwrap();
    assert_eq!(run_stage(&mut stage, &frame, d())[0].id, id);
}

/// A motion detector sees two crossing objects as one merged blob. That blob must not
/// be taken as either object's new box: both tracks coast through it on their own
/// predictions and pick their objects up again afterwards.
#[test]
fn merged_detection_is_a_group_not_an_update() {
    let mut t = tracker();
    let a = |f: u64| BBox::from_xywh(0.1 + 0.01 * f as f32, 0.4, 0.08, 0.08);
    let b = |f: u64| BBox::from_xywh(0.7 - 0.01 * f as f32, 0.4, 0.08, 0.08);
    let mut ids = None;
    for f in 0..60u64 {
        let (ba, bb) = (a(f), b(f));
        let dets: Vec<Detection> = if ba.x_min.max(bb.x_min) - ba.x_max.min(bb.x_max) < 0.01 {
            // Touching or overlapping: one box around both.
            let merged = BBox::new(
                ba.x_min.min(bb.x_min),
                ba.y_min,
                ba.x_max.max(bb.x_max),
                ba.y_max,
            );
            vec![Detection::builder(DetectionId::new(0), 0, 0.8, merged).build()]
        } else {
            vec![
                Detection::builder(DetectionId::new(0), 0, 0.9, ba).build(),
                Detection::builder(DetectionId::new(1), 0, 0.9, bb).build(),
            ]
        };
        // A blob well larger than one object is a group; when the two nearly coincide
        // the blob is as good as either box and may update one track.
        let group = dets.len() == 1 && dets[0].bbox.area() > 1.5 * ba.area();
        let out = t.update(ts(f), &dets.into());
        if f < 2 {
            continue;
        }
        assert_eq!(out.len(), 2, "frame {f}: no extra track from the blob");
        if group {
            assert!(
                out.iter().all(|tr| tr.state == TrackState::Coasted),
                "frame {f}"
            );
        }
        // Each object keeps its track, through and after the merge.
        if ba.iou(&bb) < 0.3 {
            let now = (id_at(&out, ba).unwrap(), id_at(&out, bb).unwrap());
            assert_eq!(*ids.get_or_insert(now), now, "frame {f}");
        }
    }
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Objects in separate lanes with random speeds, random detector dropouts (at
        /// most two frames in a row) and jitter: one track per object, never swapped.
        #[test]
        fn lanes_keep_identities(
            speeds in prop::collection::vec(-0.012f32..0.012, 1..7),
            drops in prop::collection::vec(0u8..10, 60),
            jitter in prop::collection::vec(-0.003f32..0.003, 60),
        ) {
            let mut t = tracker();
            let mut owner: HashMap<u64, usize> = HashMap::new();
            let lane_h = 1.0 / speeds.len() as f32;
            for f in 0..60u64 {
                let mut dets = Vec::new();
                for (i, v) in speeds.iter().enumerate() {
                    // Drop this object's detection on some frames, never 3 in a row.
                    let dropped = (drops[f as usize] as usize + i) % 10 == 0
                        && f % 3 != 0;
                    if dropped {
                        continue;
                    }
                    let x = 0.45 + v * (f as f32 - 30.0) + jitter[f as usize];
                    let y = i as f32 * lane_h + lane_h * 0.2;
                    let b = BBox::from_xywh(x, y, 0.06, lane_h * 0.5);
                    dets.push(Detection::builder(DetectionId::new(i as u64), 0, 0.9, b).build());
                }
                let out = t.update(ts(f), &dets.into());
                for tr in &out {
                    if let Some(d) = tr.current.detection_id {
                        let i = d.as_u64() as usize;
                        prop_assert_eq!(*owner.entry(tr.id.as_u64()).or_insert(i), i, "frame {}", f);
                    }
                }
            }
            prop_assert_eq!(owner.len(), speeds.len());
        }
    }
}

#[test]
fn track_leaving_through_the_edge_ends_within_a_few_misses() {
    let mut t = tracker();
    let mut out = Vec::new();
    let mut last_seen = BBox::new(0.0, 0.0, 0.0, 0.0);
    for f in 0..20u64 {
        // Moving right; from frame 5 on the box is clipped by the right edge.
        let x0 = 0.8 + 0.02 * f as f32;
        let b = BBox::new(x0.min(0.999), 0.4, (x0 + 0.1).min(1.0), 0.5);
        let dets: DetectionSet = if x0 < 1.0 {
            last_seen = b;
            vec![Detection::builder(DetectionId::new(0), 0, 0.9, b).build()].into()
        } else {
            DetectionSet::empty()
        };
        out.push(t.update(ts(f), &dets));
    }
    // Detections stop at frame 10; the track ends within edge_exit_misses frames,
    // and every coasted row is a box mostly inside the picture.
    let lost_at = (10..20)
        .find(|&f| out[f].first().is_some_and(|t| t.state == TrackState::Lost))
        .expect("track ends");
    assert!(lost_at <= 12, "lost at {lost_at}: {:?}", &out[10..14]);
    for rows in &out[10..lost_at] {
        assert_eq!(rows[0].state, TrackState::Coasted);
        assert!(rows[0].current.bbox.area() > 0.5 * 0.02 * 0.1 * 0.5);
    }
    // The lost row says where it was last seen.
    assert_eq!(out[lost_at][0].current.bbox, last_seen);
    assert!(out[lost_at + 1].is_empty());

    // The same miss in the middle of the frame coasts as usual.
    let mut t = tracker();
    for f in 0..5u64 {
        t.update(
            ts(f),
            &vec![det(0, 0.4 + 0.01 * f as f32, 0.4, 0.1, 0.1, 0.9)].into(),
        );
    }
    assert_eq!(
        t.update(ts(5), &DetectionSet::empty())[0].state,
        TrackState::Coasted
    );
}

#[test]
fn one_missed_detection_at_the_edge_keeps_the_track() {
    // An object walking along the left edge, drifting outwards, missed every 4th frame.
    let mut t = tracker();
    let mut ids = std::collections::BTreeSet::new();
    for f in 0..60u64 {
        let b = BBox::new(0.0, 0.2 + 0.005 * f as f32, 0.08, 0.4 + 0.005 * f as f32);
        let dets: DetectionSet = if f % 4 == 3 {
            DetectionSet::empty()
        } else {
            vec![Detection::builder(DetectionId::new(0), 0, 0.9, b).build()].into()
        };
        for tr in t.update(ts(f), &dets) {
            assert_ne!(tr.state, TrackState::Lost, "frame {f}");
            ids.insert(tr.id.as_u64());
        }
    }
    assert_eq!(ids.len(), 1, "{ids:?}");
}

#[test]
fn coasting_boxes_keep_a_sane_size() {
    // A box growing fast (approaching the camera), then occluded for 25 frames: its
    // coasted size stays within coast_max_scale_change of the last observed size.
    let cfg = TrackerConfig::default();
    let mut t = tracker();
    let mut last = (0.0f32, 0.0f32);
    for f in 0..10u64 {
        let s = 0.05 + 0.02 * f as f32;
        last = (s, 2.0 * s);
        t.update(ts(f), &vec![det(0, 0.3, 0.2, s, 2.0 * s, 0.9)].into());
    }
    let k = cfg.coast_max_scale_change;
    for f in 10..35u64 {
        let rows = t.update(ts(f), &DetectionSet::empty());
        let Some(r) = rows.first() else { break };
        if r.state == TrackState::Lost {
            break;
        }
        let b = r.current.bbox;
        assert!(b.width() <= last.0 * k + 1e-4 && b.width() >= last.0 / k - 1e-4);
        assert!(b.height() <= (last.1 * k).min(1.0) + 1e-4 && b.height() >= last.1 / k - 1e-4);
    }
    // Shrinking fast never collapses the box.
    let mut t = tracker();
    let mut s = 0.3f32;
    for f in 0..10u64 {
        s *= 0.85;
        t.update(ts(f), &vec![det(0, 0.4, 0.4, s, s, 0.9)].into());
    }
    for f in 10..30u64 {
        let rows = t.update(ts(f), &DetectionSet::empty());
        let Some(r) = rows.first() else { break };
        assert!(
            r.current.bbox.width() >= s / k - 1e-4,
            "frame {f}: {:?}",
            r.current.bbox
        );
    }
}

/// An object of width 0.1 moving right by 0.02 per frame, its detection clipped by the
/// right edge (as detectors report it) from `x0 > 0.9` on. `None` once it is out.
fn leaving_right(f: u64) -> Option<BBox> {
    let x0 = 0.6 + 0.02 * f as f32;
    (x0 < 1.0).then(|| BBox::new(x0, 0.4, (x0 + 0.1).min(1.0), 0.5))
}

#[test]
fn a_miss_when_most_of_the_object_is_out_ends_the_track_at_once() {
    // The clipped boxes shrink towards the edge, so their own prediction stays inside the
    // picture; the full-size extent (width 0.1, seen before the edge) says how much of
    // the object is left. A miss with 60% inside coasts; a miss with 20% inside (under
    // exit_visible_fraction 0.3) ends the track at once, with no coasted row.
    let mut t = tracker();
    for f in 0..17u64 {
        let b = leaving_right(f).unwrap();
        let out = t.update(
            ts(f),
            &vec![Detection::builder(DetectionId::new(0), 0, 0.9, b).build()].into(),
        );
        if f >= 1 {
            assert_eq!(out.len(), 1);
            assert_eq!(out[0].state, TrackState::Confirmed, "frame {f}");
        }
    }
    // Frame 17: x0 = 0.94, 60% of the object inside; frame 18: 40%; frame 19: 20%.
    let out = t.update(ts(17), &DetectionSet::empty());
    assert_eq!(out.len(), 1);
    assert_eq!(
        out[0].state,
        TrackState::Coasted,
        "60% inside: a plain miss"
    );
    let b = leaving_right(18).unwrap();
    let out = t.update(
        ts(18),
        &vec![Detection::builder(DetectionId::new(1), 0, 0.9, b).build()].into(),
    );
    assert_eq!(out[0].state, TrackState::Confirmed, "re-found, same track");
    assert_eq!(out[0].id.as_u64(), 1);
    let out = t.update(ts(19), &DetectionSet::empty());
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].state, TrackState::Lost, "20% inside: it has left");
    assert_eq!(out[0].current.bbox, leaving_right(18).unwrap());
    assert!(t.update(ts(20), &DetectionSet::empty()).is_empty());
}

#[test]
fn full_size_is_only_grown_by_boxes_cut_by_an_edge() {
    let m = 0.01;
    let inside = BBox::new(0.4, 0.4, 0.5, 0.6);
    assert_eq!(
        full_size([0.3, 0.3], &inside, m),
        [inside.width(), inside.height()]
    );
    // Cut by the right edge: narrower than the object, the old width stays; the
    // height is not cut and is taken as seen.
    let cut = BBox::new(0.95, 0.4, 1.0, 0.5);
    let [w, h] = full_size([0.1, 0.3], &cut, m);
    assert_eq!(w, 0.1);
    assert!((h - 0.1).abs() < 1e-6);
    // An object entering: its cut box grows, and so does the estimate.
    let [w, _] = full_size([0.02, 0.1], &BBox::new(0.0, 0.4, 0.06, 0.5), m);
    assert!((w - 0.06).abs() < 1e-6);
}

#[test]
fn a_track_seen_twice_coasts_two_frames_per_hit_a_long_track_max_age() {
    // Defaults: coast_frames_per_hit 2, max_age_frames 30.
    let cfg = TrackerConfig::default();
    assert_eq!((cfg.coast_frames_per_hit, cfg.max_age_frames), (2, 30));
    let coasted_frames = |hits: u64| {
        let mut t = tracker();
        for f in 0..hits {
            t.update(
                ts(f),
                &vec![det(0, 0.2 + 0.005 * f as f32, 0.3, 0.1, 0.2, 0.9)].into(),
            );
        }
        let mut coasted = 0;
        for f in hits..hits + 40 {
            let out = t.update(ts(f), &DetectionSet::empty());
            match out.first().map(|t| t.state) {
                Some(TrackState::Coasted) => coasted += 1,
                Some(TrackState::Lost) => return coasted,
                other => panic!("frame {f}: {other:?}"),
            }
        }
        panic!("never lost");
    };
    // Two overlapping detections (what two false positives can do) coast 4 frames,
    // not 30; five hits coast 10; a track seen for 20 frames coasts max_age_frames.
    assert_eq!(coasted_frames(2), 4);
    assert_eq!(coasted_frames(5), 10);
    assert_eq!(coasted_frames(20), 30);
}

/// `object_appeared` once when a track is first confirmed, `object_lost` once when it
/// ends; a tentative track that never confirms produces neither; a reset reports the
/// dropped tracks lost on the next frame.
#[test]
fn appeared_and_lost_events_are_emitted_once() {
    type Log = Vec<(u64, &'static str, Option<u64>)>;
    fn run(t: &mut Tracker, log: &mut Log, f: u64, dets: Vec<Detection>) {
        t.update(ts(f), &dets.into());
        for e in t.events() {
            log.push((f, e.kind.as_str(), e.track_id().map(|i| i.as_u64())));
        }
    }
    let mut t = tracker();
    let mut log = Log::new();
    for f in 0..10 {
        run(
            &mut t,
            &mut log,
            f,
            vec![det(0, 0.1 + 0.01 * f as f32, 0.4, 0.1, 0.1, 0.9)],
        );
    }
    // A one-frame blip: tentative, then discarded.
    run(
        &mut t,
        &mut log,
        10,
        vec![det(1, 0.8, 0.8, 0.05, 0.05, 0.9)],
    );
    for f in 11..200 {
        run(&mut t, &mut log, f, vec![]);
        if t.live_track_count() == 0 {
            break;
        }
    }
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!(log[0], (1, "object_appeared", Some(1)));
    assert_eq!(&log[1].1, &"object_lost");
    assert_eq!(log[1].2, Some(1));
    log.clear();
    for f in 300..303 {
        run(&mut t, &mut log, f, vec![det(0, 0.5, 0.5, 0.1, 0.1, 0.9)]);
    }
    t.reset();
    run(&mut t, &mut log, 303, vec![]);
    assert_eq!(
        log,
        [
            (301, "object_appeared", Some(3)),
            (303, "object_lost", Some(3))
        ]
    );
}
