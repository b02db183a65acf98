//! Decodes a file through a runtime feed with one no-op stage and reports the frame rate.
//!
//! `cargo run --release -p nv-media --example decode_bench -- FILE [native|rgb]`
//!
//! With `FEEDS SECONDS` after the format, runs that many looping feeds of the file with
//! `DropOldest(4)` for that long instead (memory-bound check: run under `time -v`).
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
    let feeds: Option<usize> = args.next().and_then(|a| a.parse().ok());
    if let Some(feeds) = feeds {
        let seconds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
        return soak(&path, output, feeds, seconds);
    }
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
                .backpressure(BackpressurePolicy::block(4))
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

fn soak(path: &str, output: OutputFormat, feeds: usize, seconds: u64) {
    let rt = Runtime::builder()
        .source_factory(Arc::new(GstSourceFactory::new()))
        .build()
        .unwrap();
    let handles: Vec<_> = (0..feeds)
        .map(|_| {
            rt.add_feed(
                FeedConfig::builder()
                    .source(SourceSpec::file_looping(path))
                    .camera_mode(CameraMode::Fixed)
                    .backpressure(BackpressurePolicy::drop_oldest(4))
                    .restart(RestartPolicy::never())
                    .output_format(output)
                    .stage(NoOpStage("noop"))
                    .output_sink(NullSink)
                    .build()
                    .unwrap(),
            )
            .unwrap()
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_secs(seconds));
    let frames: Vec<u64> = handles
        .iter()
        .map(|h| h.metrics().frames_processed)
        .collect();
    let total: u64 = frames.iter().sum();
    println!(
        "{feeds} looping feeds for {seconds} s: {total} frames ({:.1} fps total), per feed {frames:?}",
        total as f64 / seconds as f64
    );
    rt.shutdown();
}
