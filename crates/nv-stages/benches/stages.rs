//! Per-frame cost of the reference stages: tracker at 10/100/500 objects, motion
//! detector on 1280x720 luma.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use nv_core::geometry::BBox;
use nv_core::id::{DetectionId, FeedId};
use nv_core::source::PixelFormat;
use nv_core::time::MonotonicTs;
use nv_frame::FrameEnvelope;
use nv_perception::{Detection, DetectionSet};
use nv_stages::{MotionConfig, MotionDetector, Tracker, TrackerConfig};

const FRAME_INTERVAL_NS: u64 = 33_333_333;
/// Frames of pre-generated detections; motion is periodic over them so the benchmark can
/// cycle without a jump.
const CYCLE: usize = 120;

/// `n` objects on a grid, each oscillating around its cell with some detector jitter
/// and one detection in seven at low confidence: no object leaves, so the tracker holds
/// `n` confirmed tracks.
fn detections(n: usize) -> Vec<DetectionSet> {
    let side = (n as f32).sqrt().ceil() as usize;
    let cell = 1.0 / side as f32;
    let size = cell * 0.5;
    (0..CYCLE)
        .map(|f| {
            let phase = (f as f32 / CYCLE as f32) * std::f32::consts::TAU;
            (0..n)
                .map(|i| {
                    let (gx, gy) = ((i % side) as f32, (i / side) as f32);
                    let dx = phase.sin() * cell * 0.2;
                    let dy = (phase + i as f32).cos() * cell * 0.1;
                    // Detector jitter of up to +-10% of the box size, so some matches are
                    // loose enough to go through the merge check.
                    let jitter = |salt: usize| {
                        let h = (i * 7919 + f * 104_729 + salt * 15_485_863) % 1000;
                        (h as f32 / 1000.0 - 0.5) * 0.2 * size
                    };
                    let x = gx * cell + cell * 0.25 + dx + jitter(1);
                    let y = gy * cell + cell * 0.25 + dy + jitter(2);
                    let conf = if (i + f) % 7 == 0 { 0.4 } else { 0.9 };
                    Detection::builder(
                        DetectionId::new(i as u64),
                        0,
                        conf,
                        BBox::from_xywh(x, y, size, size),
                    )
                    .build()
                })
                .collect::<Vec<_>>()
                .into()
        })
        .collect()
}

fn tracker(c: &mut Criterion) {
    let mut group = c.benchmark_group("tracker");
    for n in [10usize, 100, 500] {
        let frames = detections(n);
        let mut t = Tracker::new(TrackerConfig::default()).expect("default config is valid");
        let mut f = 0usize;
        // Warm up: tracks confirmed, buffers grown.
        for dets in &frames {
            t.update(MonotonicTs::from_nanos(f as u64 * FRAME_INTERVAL_NS), dets);
            f += 1;
        }
        assert_eq!(t.live_track_count(), n);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(BenchmarkId::new("update", n), |b| {
            b.iter(|| {
                let ts = MonotonicTs::from_nanos(f as u64 * FRAME_INTERVAL_NS);
                let out = t.update(ts, &frames[f % CYCLE]);
                f += 1;
                black_box(out)
            });
        });
        assert_eq!(
            t.live_track_count(),
            n,
            "no identity churn while benchmarking"
        );
    }
    group.finish();
}

fn motion(c: &mut Criterion) {
    let (w, h) = (1280u32, 720u32);
    let frames: Vec<FrameEnvelope> = (0..CYCLE)
        .map(|f| {
            let mut luma = vec![0u8; (w * h) as usize];
            for (y, row) in luma.chunks_exact_mut(w as usize).enumerate() {
                for (x, p) in row.iter_mut().enumerate() {
                    *p = 80 + ((x * 7 + y * 13) % 11) as u8;
                }
            }
            // Three moving rectangles.
            for k in 0..3usize {
                let x0 = 100 + (f * 6 + k * 300) % 1000;
                let y0 = 100 + k * 180;
                for row in luma.chunks_exact_mut(w as usize).skip(y0).take(120) {
                    row[x0..x0 + 120].fill(200);
                }
            }
            FrameEnvelope::new_owned(
                FeedId::new(1),
                f as u64,
                MonotonicTs::from_nanos(f as u64 * FRAME_INTERVAL_NS),
                w,
                h,
                PixelFormat::Gray8,
                luma,
            )
            .expect("buffer sized for Gray8")
        })
        .collect();
    let mut d = MotionDetector::new(MotionConfig::default()).expect("default config is valid");
    for frame in &frames {
        d.detect(frame).expect("host frame");
    }
    let mut f = 0usize;
    c.bench_function("motion/detect_1280x720_gray8", |b| {
        b.iter(|| {
            let out = d.detect(&frames[f % CYCLE]).expect("host frame");
            f += 1;
            black_box(out)
        });
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    targets = tracker, motion
}
criterion_main!(benches);
