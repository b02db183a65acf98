//! Decodes a file through a runtime feed with one no-op stage and reports the frame rate.
//!
//! `cargo run --release -p nv-media --example decode_bench -- FILE [native|rgb]`
#![allow(
    clippy::unwrap_used,
    reason = "benchmark tool: a failed unwrap aborts the run"
)]

use std::sync::Arc;
use std::time::Instant;

use nv_media::GstSourceFactory;
use nv_runtime::source::OutputFormat;
use nv_runtime::{
    BackpressurePolicy, CameraMode, FeedConfig, HealthEvent, NullSink, PixelFormat, RestartPolicy,
    Runtime, SourceSpec,
};
use nv_test_util::{wait_for_event, NoOpStage};

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: decode_bench FILE [native|rgb]");
    let output = match args.next().as_deref() {
        Some("rgb") => OutputFormat::Exact(PixelFormat::Rgb8),
        _ => OutputFormat::Native,
    };
    let rt = Runtime::builder()
        .source_factory(Arc::new(GstSourceFactory::new()))
        .build()
        .unwrap();
    let mut health = rt.health_subscribe();
    let started = Instant::now();
    let h = rt
        .add_feed(
            FeedConfig::builder()
                .source(SourceSpec::file(&path))
                .camera_mode(CameraMode::Fixed)
                .backpressure(BackpressurePolicy::Block { queue_depth: 4 })
                .restart(RestartPolicy::never())
                .output_format(output)
                .stage(NoOpStage("noop"))
                .output_sink(NullSink)
                .lossless()
                .build()
                .unwrap(),
        )
        .unwrap();
    let stop = wait_for_event(
        &mut health,
        |e| matches!(e, HealthEvent::FeedStopped { feed_id, .. } if *feed_id == h.id()),
    );
    let elapsed = started.elapsed().as_secs_f64();
    let frames = h.metrics().frames_processed;
    println!(
        "{frames} frames in {elapsed:.3} s = {:.1} fps ({output:?}); {stop:?}",
        frames as f64 / elapsed
    );
}
