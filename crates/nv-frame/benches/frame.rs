//! Frame construction, cloning and conversion costs.

use criterion::{criterion_group, criterion_main, Criterion};
use nv_core::id::FeedId;
use nv_core::time::MonotonicTs;
use nv_frame::convert::{convert_into, yuv420_reference_into};
use nv_frame::{FrameEnvelope, HostBytes, PixelFormat};
use std::hint::black_box;
use std::sync::Arc;

fn benches(c: &mut Criterion) {
    let shared: Arc<[u8]> = vec![0u8; 1280 * 720 * 3].into();
    c.bench_function("frame_construct_720p_shared", |b| {
        b.iter(|| {
            FrameEnvelope::builder(
                FeedId::new(1),
                1,
                MonotonicTs::ZERO,
                1280,
                720,
                PixelFormat::Rgb8,
            )
            .host(HostBytes::from_shared(shared.clone()))
        })
    });
    let frame = FrameEnvelope::builder(
        FeedId::new(1),
        1,
        MonotonicTs::ZERO,
        1280,
        720,
        PixelFormat::Rgb8,
    )
    .host(HostBytes::from_shared(shared.clone()))
    .expect("valid frame");
    c.bench_function("frame_clone_arc", |b| b.iter(|| black_box(frame.clone())));
    let nv12 = FrameEnvelope::new_owned(
        FeedId::new(1),
        1,
        MonotonicTs::ZERO,
        1280,
        720,
        PixelFormat::Nv12,
        vec![128; 1280 * 720 * 3 / 2],
    )
    .expect("valid frame");
    let i420 = FrameEnvelope::new_owned(
        FeedId::new(1),
        1,
        MonotonicTs::ZERO,
        1280,
        720,
        PixelFormat::I420,
        vec![128; 1280 * 720 * 3 / 2],
    )
    .expect("valid frame");
    let mut out = Vec::new();
    // `convert_into` is the SIMD path (yuvutils-rs); `_scalar` is the reference it replaced.
    c.bench_function("convert_nv12_to_rgb_720p", |b| {
        b.iter(|| convert_into(&nv12, PixelFormat::Rgb8, &mut out))
    });
    c.bench_function("convert_nv12_to_rgb_720p_scalar", |b| {
        b.iter(|| yuv420_reference_into(&nv12, PixelFormat::Rgb8, &mut out))
    });
    c.bench_function("convert_i420_to_rgb_720p", |b| {
        b.iter(|| convert_into(&i420, PixelFormat::Rgb8, &mut out))
    });
    c.bench_function("convert_i420_to_rgb_720p_scalar", |b| {
        b.iter(|| yuv420_reference_into(&i420, PixelFormat::Rgb8, &mut out))
    });
}

criterion_group!(frame_benches, benches);
criterion_main!(frame_benches);
