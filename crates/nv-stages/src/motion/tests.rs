use super::*;
use nv_core::id::FeedId;
use nv_core::metrics::StageMetrics;
use nv_core::time::MonotonicTs;
use nv_frame::{FrameLayout, HostBytes};
use nv_perception::{NullTemporalAccess, PerceptionArtifacts, ViewSnapshot};

const W: usize = 320;
const H: usize = 240;

/// A rectangle in pixels: x, y, w, h, grey value.
type Rect = (usize, usize, usize, usize, u8);

fn render(background: f32, rects: &[Rect]) -> Vec<u8> {
    let mut img = vec![0u8; W * H];
    for (y, row) in img.chunks_exact_mut(W).enumerate() {
        for (x, p) in row.iter_mut().enumerate() {
            // A little static texture so the background is not perfectly flat.
            let texture = ((x * 7 + y * 13) % 9) as f32 - 4.0;
            *p = (background + texture).clamp(0.0, 255.0) as u8;
        }
    }
    for &(rx, ry, rw, rh, v) in rects {
        for row in img.chunks_exact_mut(W).skip(ry).take(rh) {
            row[rx..rx + rw].fill(v);
        }
    }
    img
}

fn gray(seq: u64, data: Vec<u8>) -> FrameEnvelope {
    FrameEnvelope::new_owned(
        FeedId::new(1),
        seq,
        MonotonicTs::from_nanos(seq * 33_333_333),
        W as u32,
        H as u32,
        PixelFormat::Gray8,
        data,
    )
    .unwrap()
}

fn norm(r: Rect) -> BBox {
    BBox::from_xywh(
        r.0 as f32 / W as f32,
        r.1 as f32 / H as f32,
        r.2 as f32 / W as f32,
        r.3 as f32 / H as f32,
    )
}

fn detector() -> MotionDetector {
    MotionDetector::new(MotionConfig::default()).unwrap()
}

fn warm_up(d: &mut MotionDetector, background: f32) {
    for s in 0..10 {
        assert!(d
            .detect(&gray(s, render(background, &[])))
            .unwrap()
            .is_empty());
    }
}

fn best_iou(dets: &DetectionSet, truth: BBox) -> f32 {
    dets.iter().map(|d| d.bbox.iou(&truth)).fold(0.0, f32::max)
}

#[test]
fn finds_rectangles_at_known_positions() {
    let mut d = detector();
    warm_up(&mut d, 128.0);
    assert_eq!(d.grid_size(), (160, 120));
    let rects = [(40, 40, 60, 40, 220), (200, 120, 50, 70, 30)];
    let dets = d.detect(&gray(10, render(128.0, &rects))).unwrap();
    assert_eq!(dets.len(), 2, "{dets:?}");
    for r in rects {
        let iou = best_iou(&dets, norm(r));
        assert!(iou > 0.9, "rect {r:?}: IoU {iou}");
    }
    assert!(dets.iter().all(|d| d.confidence > 0.9));
}

#[test]
fn ignores_slow_global_brightness_drift() {
    let mut d = detector();
    warm_up(&mut d, 40.0);
    // +0.5 grey levels per frame: 150 levels over 300 frames.
    let mut level = 40.0;
    for s in 10..310 {
        level += 0.5;
        let dets = d.detect(&gray(s, render(level, &[]))).unwrap();
        assert!(dets.is_empty(), "frame {s} at level {level}: {dets:?}");
    }
    // A sudden global jump (auto exposure) is compensated too.
    let dets = d.detect(&gray(310, render(level - 30.0, &[]))).unwrap();
    assert!(dets.is_empty(), "{dets:?}");
    // And an object still shows up after all that drift.
    let r = (100, 100, 40, 40, 20);
    let dets = d.detect(&gray(311, render(level - 30.0, &[r]))).unwrap();
    assert_eq!(dets.len(), 1);
    assert!(best_iou(&dets, norm(r)) > 0.85);
}

#[test]
fn moving_rectangle_leaves_no_trail() {
    let mut d = detector();
    warm_up(&mut d, 90.0);
    for s in 0..50usize {
        let r = (10 + s * 5, 60 + s, 30, 30, 200);
        let dets = d.detect(&gray(10 + s as u64, render(90.0, &[r]))).unwrap();
        assert_eq!(dets.len(), 1, "frame {s}: {dets:?}");
        assert!(best_iou(&dets, norm(r)) > 0.8, "frame {s}");
    }
}

#[test]
fn small_specks_are_filtered() {
    let mut d = detector();
    warm_up(&mut d, 128.0);
    // A 2x2 px speck is a single grid cell: removed by the opening and the area filter.
    let dets = d
        .detect(&gray(10, render(128.0, &[(50, 50, 2, 2, 255)])))
        .unwrap();
    assert!(dets.is_empty(), "{dets:?}");
}

/// The same scene as Gray8, NV12 and I420 with padded rows, and RGB, gives the same
/// detections: the YUV paths read the luma plane in place.
#[test]
fn reads_luma_of_every_format() {
    let rect = (64, 32, 48, 64, 200);
    let scenes = [render(100.0, &[]), render(100.0, &[rect])];
    let stride = W + 16;
    let padded = |luma: &[u8], chroma_len: usize| -> Vec<u8> {
        let mut out = vec![0u8; stride * H];
        for (dst, src) in out.chunks_exact_mut(stride).zip(luma.chunks_exact(W)) {
            dst[..W].copy_from_slice(src);
        }
        out.extend(std::iter::repeat_n(128, chroma_len));
        out
    };
    let make = |format: PixelFormat, luma: &[u8], seq: u64| -> FrameEnvelope {
        let b = FrameEnvelope::builder(
            FeedId::new(1),
            seq,
            MonotonicTs::ZERO,
            W as u32,
            H as u32,
            format,
        );
        match format {
            PixelFormat::Nv12 => b
                .layout(FrameLayout::with_planes(
                    format,
                    W as u32,
                    H as u32,
                    &[(0, stride), (stride * H, W)],
                ))
                .host(HostBytes::from_vec(padded(luma, W * H / 2)))
                .unwrap(),
            PixelFormat::I420 => b
                .layout(FrameLayout::with_planes(
                    format,
                    W as u32,
                    H as u32,
                    &[
                        (0, stride),
                        (stride * H, W / 2),
                        (stride * H + W * H / 4, W / 2),
                    ],
                ))
                .host(HostBytes::from_vec(padded(luma, W * H / 2)))
                .unwrap(),
            PixelFormat::Rgb8 => b
                .host(HostBytes::from_vec(
                    luma.iter().flat_map(|&v| [v, v, v]).collect(),
                ))
                .unwrap(),
            _ => b.host(HostBytes::from_vec(luma.to_vec())).unwrap(),
        }
    };
    let mut results = Vec::new();
    for format in [
        PixelFormat::Gray8,
        PixelFormat::Nv12,
        PixelFormat::I420,
        PixelFormat::Rgb8,
    ] {
        let mut d = detector();
        for s in 0..8 {
            d.detect(&make(format, &scenes[0], s)).unwrap();
        }
        let dets = d.detect(&make(format, &scenes[1], 8)).unwrap();
        assert_eq!(dets.len(), 1, "{format}");
        assert!(best_iou(&dets, norm(rect)) > 0.9, "{format}");
        results.push(dets.detections[0].bbox);
    }
    assert!(results.iter().all(|b| *b == results[0]), "{results:?}");
}

#[test]
fn stage_emits_signal_and_can_gate() {
    let mut d = MotionDetector::new(MotionConfig {
        skip_remaining_when_still: true,
        ..MotionConfig::default()
    })
    .unwrap();
    assert_eq!(d.category(), StageCategory::FrameAnalysis);
    assert!(d.accepted_formats().unwrap().contains(&PixelFormat::Nv12));
    let artifacts = PerceptionArtifacts::new();
    let view = ViewSnapshot::default();
    let temporal = NullTemporalAccess::default();
    let mut run = |frame: &FrameEnvelope| {
        let ctx = StageContext::new(
            FeedId::new(1),
            frame,
            &artifacts,
            &view,
            &temporal,
            StageMetrics::default(),
            frame.ts(),
        );
        d.process(&ctx).unwrap()
    };
    for s in 0..10 {
        let out = run(&gray(s, render(128.0, &[])));
        assert_eq!(out.control, StageControl::SkipRemaining);
    }
    let out = run(&gray(10, render(128.0, &[(10, 10, 40, 40, 250)])));
    assert_eq!(out.control, StageControl::Continue);
    assert_eq!(out.detections.unwrap().len(), 1);
    assert_eq!(out.signals[0].name, MotionDetector::FOREGROUND_SIGNAL);
    match out.signals[0].value {
        SignalValue::Scalar(r) => assert!(r > 0.0 && r < 0.1, "{r}"),
        ref v => panic!("unexpected {v:?}"),
    }
}

#[test]
fn frame_size_change_relearns() {
    let mut d = detector();
    warm_up(&mut d, 128.0);
    let small = FrameEnvelope::new_owned(
        FeedId::new(1),
        99,
        MonotonicTs::ZERO,
        64,
        48,
        PixelFormat::Gray8,
        vec![10; 64 * 48],
    )
    .unwrap();
    assert!(d.detect(&small).unwrap().is_empty());
    assert_eq!(d.grid_size(), (64, 48));
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Any solid rectangle of reasonable size and contrast, anywhere in the frame
        /// (edges included), is found as exactly one detection at its position.
        #[test]
        fn finds_a_rectangle_anywhere(
            w in 12usize..120,
            h in 12usize..120,
            fx in 0.0f64..1.0,
            fy in 0.0f64..1.0,
            background in 30.0f32..200.0,
            contrast in 45.0f32..120.0,
            brighter in any::<bool>(),
        ) {
            let x = ((W - w) as f64 * fx) as usize;
            let y = ((H - h) as f64 * fy) as usize;
            let v = if brighter { background + contrast } else { background - contrast };
            prop_assume!((0.0..=255.0).contains(&v));
            let r = (x, y, w, h, v as u8);
            let mut d = detector();
            warm_up(&mut d, background);
            let dets = d.detect(&gray(10, render(background, &[r]))).unwrap();
            prop_assert_eq!(dets.len(), 1, "{:?}", dets);
            // Every edge lands within one grid cell (2 px here) of the truth: a cell is
            // foreground once the object covers enough of it to pass the threshold.
            let (got, want) = (dets.detections[0].bbox, norm(r));
            let (cell_x, cell_y) = (2.0 / W as f32 + 1e-4, 2.0 / H as f32 + 1e-4);
            prop_assert!((got.x_min - want.x_min).abs() <= cell_x, "{:?} vs {:?}", got, want);
            prop_assert!((got.x_max - want.x_max).abs() <= cell_x, "{:?} vs {:?}", got, want);
            prop_assert!((got.y_min - want.y_min).abs() <= cell_y, "{:?} vs {:?}", got, want);
            prop_assert!((got.y_max - want.y_max).abs() <= cell_y, "{:?} vs {:?}", got, want);
        }
    }
}

/// An object present while the model warms up leaves a ghost where it stood once it moves
/// away; still foreground is absorbed after `static_absorb_frames`, so the ghost goes.
#[test]
fn ghosts_of_objects_present_at_start_are_absorbed() {
    let parked: Rect = (40, 60, 40, 40, 220);
    let run = |absorb: u32| -> usize {
        let config = MotionConfig {
            static_absorb_frames: absorb,
            ..MotionConfig::default()
        };
        let mut d = MotionDetector::new(config).unwrap();
        let mut seq = 0;
        // Warm up with the object in view, then it drives off (out of the picture).
        for _ in 0..10 {
            d.detect(&gray(seq, render(60.0, &[parked]))).unwrap();
            seq += 1;
        }
        let mut last = 0;
        for _ in 0..200 {
            last = d.detect(&gray(seq, render(60.0, &[]))).unwrap().len();
            seq += 1;
        }
        last
    };
    assert_eq!(run(0), 1, "without absorption the ghost stays");
    assert_eq!(run(30), 0, "with absorption it is learned away");
}

/// An endless textured scene (4 px blocks of pseudo-random grey 40..=215) seen through a
/// 320x240 window whose top-left corner is at `(ox, oy)` on it, `gain` x brightness.
fn scene(ox: i64, oy: i64, gain: f32) -> Vec<u8> {
    let mut img = vec![0u8; W * H];
    for (y, row) in img.chunks_exact_mut(W).enumerate() {
        for (x, p) in row.iter_mut().enumerate() {
            let (bx, by) = ((x as i64 + ox).div_euclid(4), (y as i64 + oy).div_euclid(4));
            let mut z = (bx as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
                ^ (by as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
            z = (z ^ (z >> 29)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            let v = 40.0 + (z >> 56) as f32 * (175.0 / 255.0);
            *p = (v * gain).round().clamp(0.0, 255.0) as u8;
        }
    }
    img
}

/// Feeds `offsets` (camera positions, pixels) after a 10-frame still warm-up at the first
/// one; returns the classification and the number of detections of each fed frame.
fn run_camera(d: &mut MotionDetector, frames: &[(i64, i64, f32)]) -> Vec<(GlobalMotion, usize)> {
    let (x0, y0, g0) = frames[0];
    for s in 0..10 {
        assert!(d.detect(&gray(s, scene(x0, y0, g0))).unwrap().is_empty());
        assert_eq!(d.global_motion(), GlobalMotion::None);
    }
    frames
        .iter()
        .enumerate()
        .map(|(i, &(x, y, g))| {
            let n = d
                .detect(&gray(10 + i as u64, scene(x, y, g)))
                .unwrap()
                .len();
            (d.global_motion(), n)
        })
        .collect()
}

#[test]
fn a_pan_is_reported_as_pan_not_as_boxes() {
    use GlobalMotion::{Moving, Pan};
    // Still, then the camera pans right 4 px (2 grid cells) a frame for 12 frames, then
    // stops: content moves left.
    let mut frames = vec![(0, 0, 1.0)];
    frames.extend((1..=12).map(|k| (4 * k, 0, 1.0)));
    frames.extend(std::iter::repeat_n((48, 0, 1.0), 10));
    let mut d = detector();
    let got = run_camera(&mut d, &frames);
    // After the stop the run is held for HOLD_FRAMES (3) frames: a slow pan shows a
    // whole-cell shift only every few frames.
    let mut want = vec![(GlobalMotion::None, 0), (Moving, 0), (Moving, 0)];
    want.extend(std::iter::repeat_n((Pan, 0), 13));
    want.extend(std::iter::repeat_n((GlobalMotion::None, 0), 7));
    assert_eq!(got, want);

    // The shift signal of a pan frame: 2 cells of 160 leftwards.
    let mut d = detector();
    run_camera(&mut d, &frames[..4]);
    assert_eq!(d.global_shift(), (-2.0 / 160.0, 0.0));

    // Without global motion detection the same pan is boxes over the picture.
    let mut d = MotionDetector::new(MotionConfig {
        detect_global_motion: false,
        ..MotionConfig::default()
    })
    .unwrap();
    let got = run_camera(&mut d, &frames);
    assert!(
        got[1..13]
            .iter()
            .all(|&(g, n)| g == GlobalMotion::None && n > 0),
        "{got:?}"
    );
}

#[test]
fn a_shake_is_reported_as_shake() {
    use GlobalMotion::{Moving, Shake};
    // Random small camera offsets (2, 4 or 6 px on each axis, seeded) alternating in sign:
    // the picture jumps back and forth around a fixed position. The first two moving
    // frames are too few to tell; the rest is shake; then the camera settles.
    let mut rng = 0x1234_5678_u64;
    let mut pick = || {
        rng = rng
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        2 * (1 + (rng >> 33) % 3) as i64
    };
    let mut frames = vec![(0, 0, 1.0)];
    for k in 1..=16i64 {
        let sign = if k % 2 == 0 { 1 } else { -1 };
        frames.push((sign * pick(), -sign * pick(), 1.0));
    }
    let last = frames[16];
    frames.extend(std::iter::repeat_n(last, 8));
    let mut d = detector();
    let got = run_camera(&mut d, &frames);
    let mut want = vec![(GlobalMotion::None, 0), (Moving, 0), (Moving, 0)];
    want.extend(std::iter::repeat_n((Shake, 0), 17));
    want.extend(std::iter::repeat_n((GlobalMotion::None, 0), 5));
    assert_eq!(got, want);
}

#[test]
fn a_pan_slower_than_a_cell_per_frame_adds_up() {
    // 80-px grid: a cell is 4 px; the camera pans 1 px a frame for 40 frames. Shifts are
    // measured against a reference frame that is kept until a whole-cell shift shows,
    // and a run is held across the frames in between.
    let mut d = MotionDetector::new(MotionConfig {
        grid_width_px: 80,
        ..MotionConfig::default()
    })
    .unwrap();
    let mut frames = vec![(0, 0, 1.0)];
    frames.extend((1..=40).map(|k| (k, 0, 1.0)));
    let got = run_camera(&mut d, &frames);
    let first = got
        .iter()
        .position(|&(g, _)| g == GlobalMotion::Moving)
        .expect("recognised");
    // Within a cell (4 frames) of the start; before that, 1-3 px of drift against the
    // background may show as boxes along the texture's edges.
    assert!(first <= 4, "{got:?}");
    for (i, &(g, n)) in got.iter().enumerate().skip(first) {
        assert!(
            matches!(g, GlobalMotion::Moving | GlobalMotion::Pan),
            "frame {i}: {got:?}"
        );
        assert_eq!(n, 0, "frame {i}: {got:?}");
    }
    assert!(
        got[20..].iter().all(|&(g, _)| g == GlobalMotion::Pan),
        "{got:?}"
    );
}

#[test]
fn an_exposure_jump_is_reported_as_such() {
    // Brightness x1.5 from one frame to the next (values 40..215 gain 20..40 levels),
    // then steady: one exposure_jump frame, no boxes, detection resumes at once.
    let mut frames = vec![(0, 0, 1.0)];
    frames.extend(std::iter::repeat_n((0, 0, 1.5), 6));
    let mut d = detector();
    let got = run_camera(&mut d, &frames);
    let mut want = vec![(GlobalMotion::None, 0), (GlobalMotion::ExposureJump, 0)];
    want.extend(std::iter::repeat_n((GlobalMotion::None, 0), 5));
    assert_eq!(got, want);
    // A multiplicative change is not removed by the median compensation alone: without
    // global motion detection it is boxes.
    let mut d = MotionDetector::new(MotionConfig {
        detect_global_motion: false,
        ..MotionConfig::default()
    })
    .unwrap();
    assert!(run_camera(&mut d, &frames)[1].1 > 0);
}

#[test]
fn an_object_moving_over_a_textured_still_scene_is_not_global_motion() {
    let mut d = detector();
    for s in 0..10 {
        d.detect(&gray(s, scene(0, 0, 1.0))).unwrap();
    }
    for k in 0..20u64 {
        let mut img = scene(0, 0, 1.0);
        let x0 = 20 + 6 * k as usize;
        for row in img.chunks_exact_mut(W).skip(80).take(60) {
            row[x0..x0 + 40].fill(250);
        }
        let dets = d.detect(&gray(10 + k, img)).unwrap();
        assert_eq!(d.global_motion(), GlobalMotion::None, "frame {k}");
        assert_eq!(dets.len(), 1, "frame {k}: {dets:?}");
        assert!(
            best_iou(&dets, norm((x0, 80, 40, 60, 250))) > 0.8,
            "frame {k}"
        );
    }
}

#[test]
fn stage_reports_global_motion_signals() {
    let mut d = detector();
    let artifacts = PerceptionArtifacts::new();
    let view = ViewSnapshot::default();
    let temporal = NullTemporalAccess::default();
    let mut last = None;
    for s in 0..14u64 {
        let ox = if s < 10 { 0 } else { 4 * (s as i64 - 9) };
        let frame = gray(s, scene(ox, 0, 1.0));
        let ctx = StageContext::new(
            FeedId::new(1),
            &frame,
            &artifacts,
            &view,
            &temporal,
            StageMetrics::default(),
            frame.ts(),
        );
        last = Some(d.process(&ctx).unwrap());
    }
    let out = last.unwrap();
    assert_eq!(out.control, StageControl::Continue);
    let signal = |name: &str| {
        out.signals
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.value.clone())
    };
    assert_eq!(
        signal(MotionDetector::GLOBAL_SIGNAL),
        Some(SignalValue::Categorical("pan".into()))
    );
    assert_eq!(
        signal(MotionDetector::GLOBAL_SHIFT_SIGNAL),
        Some(SignalValue::Vector(vec![f64::from(-2.0f32 / 160.0), 0.0]))
    );
}
