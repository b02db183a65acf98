//! Model detector latency: PP-OCRv4 text detection (real model from PyPI, see
//! tests/model_fixtures/support.rs) per frame and per batch of 8; the TF-OD SSDLite person
//! detector (frozen TensorFlow graph, 300x300) per frame; plus the detector's own
//! overheads (letterbox preprocessing, YOLO decode + NMS).
//!
//! `cargo bench -p nv-stages --features model --bench model`

#[path = "../tests/model_fixtures/support.rs"]
mod support;

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use nv_core::source::PixelFormat;
use nv_frame::FrameEnvelope;
use nv_stages::model::{
    BatchMode, ChannelOrder, DecodeParams, Decoder, DecoderKind, LetterboxWriter,
    ModelBatchDetector, ModelDetector, ModelDetectorConfig, OutputTensor, Preprocess,
};

const INPUT: (u32, u32) = (640, 480);

fn ppocr_config() -> ModelDetectorConfig {
    let mut cfg = ModelDetectorConfig::new(
        support::ppocr_det_model(),
        INPUT,
        DecoderKind::text_detection(),
    );
    cfg.confidence_threshold = 0.5;
    cfg.preprocess = Preprocess {
        pad_value: 255,
        mean: [0.5; 3],
        std: [0.5; 3],
        channel_order: ChannelOrder::Bgr,
    };
    cfg
}

/// A 1280x720 page with a few lines of text, as NV12 (what decoders hand out).
fn text_frame() -> FrameEnvelope {
    let (w, h) = (1280u32, 720u32);
    let mut rgb = vec![255u8; (w * h * 3) as usize];
    support::draw_text(&mut rgb, w, "HELLO WORLD", 80, 100, 6);
    support::draw_text(&mut rgb, w, "NEXTVISION 2026", 200, 400, 5);
    support::draw_text(&mut rgb, w, "TRACK", 900, 600, 8);
    // RGB -> NV12 (BT.601 limited range, neutral chroma is fine for grey content).
    let mut nv12: Vec<u8> = rgb
        .chunks_exact(3)
        .map(|p| (16 + (u32::from(p[0]) * 219) / 255) as u8)
        .collect();
    nv12.extend(std::iter::repeat_n(128u8, (w * h / 2) as usize));
    support::frame(PixelFormat::Nv12, w, h, nv12)
}

fn bench_model(c: &mut Criterion) {
    let frame = text_frame();
    let mut g = c.benchmark_group("model_detector_ppocr_640x480");
    g.sample_size(10).measurement_time(Duration::from_secs(8));
    let mut det = ModelDetector::new(ppocr_config()).expect("PP-OCR loads");
    let found = det.detect(&frame).expect("inference").len();
    assert_eq!(found, 3, "bench scene should yield 3 text lines");
    g.bench_function("per_frame_720p_nv12", |b| {
        b.iter(|| black_box(det.detect(&frame).expect("inference")))
    });
    let frames: Vec<FrameEnvelope> = (0..8).map(|_| frame.clone()).collect();
    let mut batch = ModelBatchDetector::new(ppocr_config()).expect("PP-OCR loads");
    assert!(batch.batches_in_one_run());
    g.bench_function("batch_of_8_one_inference", |b| {
        b.iter(|| black_box(batch.detect_batch(&frames).expect("inference")))
    });
    let mut cfg = ppocr_config();
    cfg.batch_mode = BatchMode::PerItem;
    let mut per_item = ModelBatchDetector::new(cfg).expect("PP-OCR loads");
    g.bench_function("batch_of_8_per_item", |b| {
        b.iter(|| black_box(per_item.detect_batch(&frames).expect("inference")))
    });
    g.finish();
}

fn bench_person(c: &mut Criterion) {
    let path = support::skimage_image(
        "astronaut.png",
        "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5",
    );
    let frame = support::png_frame(&path);
    let mut g = c.benchmark_group("model_detector_person_ssdlite_300");
    g.sample_size(30).measurement_time(Duration::from_secs(8));
    let cfg = ModelDetectorConfig::tf_object_detection_ssd(support::person_ssdlite_model(), 300);
    let mut det = ModelDetector::new(cfg).expect("person model loads");
    assert_eq!(det.detect(&frame).expect("inference").len(), 1);
    g.bench_function("per_frame_512x512_rgb", |b| {
        b.iter(|| black_box(det.detect(&frame).expect("inference")))
    });
    g.finish();
}

fn bench_overheads(c: &mut Criterion) {
    let mut g = c.benchmark_group("model_detector_overheads");
    g.sample_size(30);
    // Letterbox 1080p RGB into 640x640.
    let rgb: Vec<u8> = (0..1920 * 1080 * 3).map(|i| (i % 251) as u8).collect();
    let mut writer = LetterboxWriter::new(Preprocess::default());
    let mut out = vec![0.0f32; 3 * 640 * 640];
    g.bench_function("letterbox_1080p_rgb_to_640x640", |b| {
        b.iter(|| black_box(writer.write(&rgb, (1920, 1080), (640, 640), &mut out)))
    });
    // YOLOv8 head [1, 84, 8400]: 80 classes, ~100 anchors above threshold in 20 clusters.
    let (attrs, anchors) = (84usize, 8400usize);
    let mut data = vec![0.01f32; attrs * anchors];
    for a in 0..anchors {
        let (cx, cy) = ((a % 80) as f32 * 8.0, (a / 80) as f32 * 6.0);
        data[a] = cx;
        data[anchors + a] = cy;
        data[2 * anchors + a] = 32.0;
        data[3 * anchors + a] = 32.0;
        if a % 84 < 5 {
            data[(4 + a % 80) * anchors + a] = 0.5 + (a % 7) as f32 * 0.05;
        }
    }
    let shape = [1, attrs, anchors];
    let mut dec = Decoder::new(
        DecoderKind::yolov8(),
        DecodeParams {
            input_size: (640, 640),
            confidence_threshold: 0.25,
            nms_iou_threshold: 0.45,
            max_detections: 300,
        },
    );
    g.bench_function("decode_yolov8_84x8400_nms", |b| {
        b.iter(|| {
            black_box(
                dec.decode(&[OutputTensor::new(&shape, &data)], 0)
                    .expect("decode"),
            )
        })
    });
    g.finish();
}

criterion_group!(benches, bench_person, bench_model, bench_overheads);
criterion_main!(benches);
