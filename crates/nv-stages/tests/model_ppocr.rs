//! A real pretrained model from a package registry: PP-OCRv4 text detection (shipped in
//! the `rapidocr-onnxruntime` wheel on PyPI, downloaded once and cached under target/)
//! finds text rendered at known positions.

#![cfg(feature = "model")]

#[path = "model_fixtures/support.rs"]
mod support;

use nv_core::geometry::BBox;
use nv_core::source::PixelFormat;
use nv_stages::model::{
    ChannelOrder, DecoderKind, ModelBatchDetector, ModelDetector, ModelDetectorConfig, Preprocess,
};
use support::{draw_text, frame, ppocr_det_model};

/// PP-OCR det preprocessing as rapidocr configures it: BGR, (v / 255 - 0.5) / 0.5.
pub fn ppocr_config(input: (u32, u32)) -> ModelDetectorConfig {
    let mut cfg = ModelDetectorConfig::new(ppocr_det_model(), input, DecoderKind::text_detection());
    cfg.confidence_threshold = 0.5;
    cfg.max_detections = 100;
    cfg.preprocess = Preprocess {
        pad_value: 255,
        mean: [0.5; 3],
        std: [0.5; 3],
        channel_order: ChannelOrder::Bgr,
    };
    cfg
}

struct Scene {
    frame: nv_frame::FrameEnvelope,
    /// Normalised inked extent of each text line.
    lines: Vec<BBox>,
}

fn scene(w: u32, h: u32) -> Scene {
    let mut rgb = vec![255u8; (w * h * 3) as usize];
    let placed = [
        ("HELLO WORLD", 40, 60, 4),
        ("NEXTVISION 2026", 120, 250, 3),
        ("TRACK", 420, 380, 5),
    ];
    let mut lines = Vec::new();
    for (text, x, y, scale) in placed {
        let (x0, y0, x1, y1) = draw_text(&mut rgb, w, text, x, y, scale);
        lines.push(BBox::new(
            x0 as f32 / w as f32,
            y0 as f32 / h as f32,
            x1 as f32 / w as f32,
            y1 as f32 / h as f32,
        ));
    }
    Scene {
        frame: frame(PixelFormat::Rgb8, w, h, rgb),
        lines,
    }
}

/// Each rendered line is found by exactly one detection that overlaps it with IoU >= 0.5
/// and whose centre lies inside the line (and the line's inside it), and nothing else is
/// found. (DB "unclip" grows boxes beyond the ink, more so for bold strokes.)
fn assert_lines_found(dets: &[nv_perception::Detection], lines: &[BBox], what: &str) {
    assert_eq!(dets.len(), lines.len(), "{what}: {dets:#?}");
    for l in lines {
        let matching: Vec<&nv_perception::Detection> = dets
            .iter()
            .filter(|d| {
                d.bbox.iou(l) >= 0.5 && l.contains(d.bbox.center()) && d.bbox.contains(l.center())
            })
            .collect();
        assert_eq!(matching.len(), 1, "{what}: line {l:?} in {dets:#?}");
    }
    for d in dets {
        assert!(d.confidence >= 0.9, "{what}: {d:?}");
        assert_eq!(d.class_id, 0);
    }
}

#[test]
fn ppocr_detects_rendered_text_lines() {
    let mut det = ModelDetector::new(ppocr_config((640, 480))).expect("PP-OCR model loads");
    // Same aspect as the input: no padding.
    let s = scene(640, 480);
    assert_lines_found(&det.detect(&s.frame).unwrap(), &s.lines, "640x480");
    // 16:9 frame: letterboxed (content 640x360, 60 px of padding above and below), boxes
    // mapped back to the frame.
    let s = scene(800, 450);
    assert_lines_found(
        &det.detect(&s.frame).unwrap(),
        &s.lines,
        "800x450 letterboxed",
    );
    // A blank page has no text.
    let blank = frame(PixelFormat::Rgb8, 640, 480, vec![255; 640 * 480 * 3]);
    assert!(det.detect(&blank).unwrap().is_empty());
}

#[test]
fn ppocr_batch_matches_single_frames() {
    let mut batch = ModelBatchDetector::new(ppocr_config((640, 480))).expect("PP-OCR model loads");
    let s = scene(640, 480);
    let blank = frame(PixelFormat::Rgb8, 640, 480, vec![255; 640 * 480 * 3]);
    let out = batch.detect_batch(&[s.frame.clone(), blank]).unwrap();
    assert_eq!(out.len(), 2);
    assert_lines_found(&out[0], &s.lines, "batch item 0");
    assert!(out[1].is_empty(), "batch item 1: {:#?}", out[1]);
    eprintln!(
        "PP-OCR batch runs as one inference: {}",
        batch.batches_in_one_run()
    );
}
