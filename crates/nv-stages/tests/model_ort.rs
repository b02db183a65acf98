//! The ONNX Runtime backend (feature `ort`) behind the same detector API as tract: the
//! library taken from the pinned PyPI `onnxruntime` wheel (as scripts/fetch-onnxruntime.sh
//! does), the PP-OCR text detector from the catalog's wheel, same detections on both
//! backends; typed errors for a missing library and for a provider this machine lacks.

#![cfg(feature = "ort")]

#[path = "model_fixtures/support.rs"]
mod support;

use std::path::PathBuf;

use nv_core::error::StageError;
use nv_stages::model::{
    Backend, ChannelOrder, DecoderKind, ExecutionProvider, ModelDetector, ModelDetectorConfig,
    ModelFormat, OrtError, OrtOptions, Preprocess, ONNXRUNTIME_VERSION,
};
use support::{draw_text, frame, ppocr_det_model, wheel_member};

/// `libonnxruntime.so` from the pinned wheel (the pins of scripts/fetch-onnxruntime.sh).
fn library() -> PathBuf {
    assert_eq!(
        ONNXRUNTIME_VERSION, "1.32.0",
        "update the pins below with the version"
    );
    wheel_member(
        "onnxruntime==1.32.0",
        "onnxruntime/capi/libonnxruntime.so.1.32.0",
        Some("6c1585d1bbf45b0712ea4a21b705c5fcb4ba04ff2e30f1fbf81a49faf658638f"),
    )
}

fn ppocr(backend: Backend) -> ModelDetectorConfig {
    let mut c =
        ModelDetectorConfig::new(ppocr_det_model(), (640, 480), DecoderKind::text_detection());
    c.confidence_threshold = 0.5;
    c.preprocess = Preprocess {
        pad_value: 255,
        mean: [0.5; 3],
        std: [0.5; 3],
        channel_order: ChannelOrder::Bgr,
    };
    c.backend = backend;
    c
}

fn onnxruntime(eps: Vec<ExecutionProvider>) -> Backend {
    Backend::OnnxRuntime(OrtOptions {
        execution_providers: eps,
        library_path: Some(library()),
    })
}

/// The `OrtError` inside a detector's load error.
fn ort_error(e: &StageError) -> &OrtError {
    match e {
        StageError::Other { source, .. } => source
            .0
            .downcast_ref::<OrtError>()
            .unwrap_or_else(|| panic!("not an OrtError: {e}")),
        other => panic!("expected StageError::Other(OrtError), got {other}"),
    }
}

#[test]
fn same_text_boxes_on_onnx_runtime_as_on_tract() {
    let (w, h) = (640, 480);
    let mut rgb = vec![255u8; (w * h * 3) as usize];
    draw_text(&mut rgb, w, "HELLO WORLD", 40, 60, 4);
    draw_text(&mut rgb, w, "NEXTVISION 2026", 120, 250, 3);
    let f = frame(nv_core::source::PixelFormat::Rgb8, w, h, rgb);

    let mut tract = ModelDetector::new(ppocr(Backend::Tract)).expect("tract loads");
    let mut ort = ModelDetector::new(ppocr(onnxruntime(vec![ExecutionProvider::Cpu])))
        .expect("onnxruntime loads");
    let description = ort.backend_description();
    assert!(
        description.starts_with("onnxruntime (") && description.contains("providers: cpu"),
        "{description}"
    );
    let a = tract.detect(&f).expect("tract inference");
    let b = ort.detect(&f).expect("onnxruntime inference");
    assert_eq!(a.len(), 2, "{a:#?}");
    assert_eq!(a.len(), b.len(), "tract {a:#?}\nonnxruntime {b:#?}");
    for (x, y) in a.iter().zip(&b) {
        assert!(x.bbox.iou(&y.bbox) >= 0.98, "{x:?} vs {y:?}");
        assert!(
            (x.confidence - y.confidence).abs() <= 0.01,
            "{x:?} vs {y:?}"
        );
    }
}

#[test]
fn a_missing_library_is_a_typed_error_that_says_how_to_get_one() {
    let c = ppocr(Backend::OnnxRuntime(OrtOptions {
        execution_providers: vec![ExecutionProvider::Cpu],
        library_path: Some("/nonexistent/libonnxruntime.so".into()),
    }));
    let e = ModelDetector::new(c).expect_err("no library");
    match ort_error(&e) {
        OrtError::LibraryMissing { searched } => {
            assert!(
                searched.contains("/nonexistent/libonnxruntime.so"),
                "{searched}"
            )
        }
        other => panic!("expected LibraryMissing, got {other}"),
    }
    assert!(
        e.to_string().contains("scripts/fetch-onnxruntime.sh"),
        "{e}"
    );
}

#[test]
fn cuda_is_required_when_listed_alone_and_falls_back_when_cpu_follows() {
    // This wheel is ONNX Runtime's CPU build: CUDA cannot start here (nor on a machine
    // without a GPU).
    let e = ModelDetector::new(ppocr(onnxruntime(vec![ExecutionProvider::Cuda {
        device_id: 0,
    }])))
    .expect_err("cuda alone is required");
    match ort_error(&e) {
        OrtError::ProviderUnavailable { provider, cause } => {
            assert_eq!(*provider, "cuda");
            assert!(!cause.is_empty());
        }
        other => panic!("expected ProviderUnavailable, got {other}"),
    }
    let det = ModelDetector::new(ppocr(onnxruntime(vec![
        ExecutionProvider::Cuda { device_id: 0 },
        ExecutionProvider::Cpu,
    ])))
    .expect("cuda then cpu falls back");
    let d = det.backend_description();
    assert!(
        d.contains("providers: cpu") && d.contains("unavailable: cuda"),
        "{d}"
    );
}

#[test]
fn onnx_runtime_refuses_a_tensorflow_graph_in_validation() {
    let mut c = ppocr(onnxruntime(vec![ExecutionProvider::Cpu]));
    c.format = ModelFormat::TensorFlow(nv_stages::model::TfGraphCut::tf_object_detection_ssd());
    let e = c.validate().expect_err("tensorflow on onnxruntime");
    assert!(e.to_string().contains("runs ONNX models only"), "{e}");
}

/// The person detector converted to ONNX (scripts/convert-person-onnx.sh, offline: needs
/// Python and TensorFlow) on tract and on ONNX Runtime: TensorFlow's result on the
/// astronaut photo (score 0.921, box within 0.01). Run with `--ignored` after converting.
#[test]
#[ignore = "needs the converted model: run scripts/convert-person-onnx.sh first"]
fn person_detector_as_onnx_matches_tensorflow_on_both_backends() {
    let model = nv_models::default_cache_dir()
        .expect("cache dir")
        .join("models/person-ssdlite-onnx/person_ssdlite.onnx");
    assert!(model.is_file(), "{} missing", model.display());
    let photo = support::png_frame(&support::skimage_image(
        "astronaut.png",
        "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5",
    ));
    for backend in [Backend::Tract, onnxruntime(vec![ExecutionProvider::Cpu])] {
        let mut c = ModelDetectorConfig::tf_object_detection_ssd(&model, 300);
        c.format = ModelFormat::Onnx;
        c.backend = backend;
        let mut det = ModelDetector::new(c).expect("loads");
        let dets = det.detect(&photo).expect("inference");
        let what = det.backend_description();
        assert_eq!(dets.len(), 1, "{what}: {dets:#?}");
        let d = &dets[0];
        assert!((d.confidence - 0.921).abs() <= 0.005, "{what}: {d:?}");
        let want = nv_core::geometry::BBox::new(0.006, 0.063, 0.728, 0.994);
        for (g, w) in [
            (d.bbox.x_min, want.x_min),
            (d.bbox.y_min, want.y_min),
            (d.bbox.x_max, want.x_max),
            (d.bbox.y_max, want.y_max),
        ] {
            assert!((g - w).abs() <= 0.01, "{what}: {d:?}");
        }
    }
}
