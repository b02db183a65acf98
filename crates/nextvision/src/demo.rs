//! `nextvision demo`: synthetic feeds, three stages, a live per-feed summary.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use nv_runtime::{
    BackpressurePolicy, CameraMode, FeedConfig, HealthEvent, NullSink, PixelFormat, Runtime,
    SourceSpec, SyntheticSpec,
};

use nv_stages::{Brightness, Counter, MotionConfig, MotionDetector, Tracker, TrackerConfig};

#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Number of synthetic feeds.
    #[arg(long, default_value_t = 4)]
    feeds: u32,
    /// How long to run, in seconds.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Frames per second of each feed.
    #[arg(long, default_value_t = 30.0)]
    fps: f64,
    /// A real clip instead of generated feeds: person detector -> tracker -> counting
    /// line, then a summary of what was seen (needs `--features model`).
    #[arg(long)]
    video: Option<String>,
    /// Catalog model used with `--video`.
    #[arg(long, default_value = "person-ssdlite")]
    model: String,
    /// Normalised x of the vertical counting line used with `--video`.
    #[arg(long, default_value_t = 0.5)]
    line_x: f32,
}

pub fn run(args: &DemoArgs) -> anyhow::Result<std::process::ExitCode> {
    if let Some(video) = &args.video {
        #[cfg(feature = "model")]
        return crate::demo_video::run(video, &args.model, args.line_x);
        #[cfg(not(feature = "model"))]
        anyhow::bail!(
            "demo --video {video} needs the person detector: build with `--features model`"
        );
    }
    let runtime = Runtime::builder().build().context("building runtime")?;
    let mut health = runtime.health_subscribe();
    let mut feeds = Vec::new();
    for i in 0..args.feeds {
        let spec = SyntheticSpec {
            width: 320,
            height: 240,
            format: PixelFormat::I420,
            fps: Some(args.fps),
            frame_count: None,
            moving_objects: 3,
            seed: u64::from(i) + 1,
        };
        let config = FeedConfig::builder()
            .name(format!("demo-{i}"))
            .source(SourceSpec::synthetic(spec))
            .camera_mode(CameraMode::Fixed)
            .backpressure(BackpressurePolicy::drop_oldest(4))
            .stage(Brightness)
            .stage(MotionDetector::new(MotionConfig::default()).context("motion detector")?)
            .stage(Tracker::new(TrackerConfig::default()).context("tracker")?)
            .stage(Counter)
            .output_sink(NullSink)
            .build()
            .context("feed config")?;
        feeds.push(runtime.add_feed(config).context("adding feed")?);
    }
    println!("nextvision demo: {} synthetic feeds, 320x240 I420 @ {} fps, stages brightness -> motion-detector -> tracker -> counter", args.feeds, args.fps);
    let started = Instant::now();
    let mut outputs = runtime.output_subscribe();
    let mut recent: VecDeque<usize> = VecDeque::new();
    let mut next_report = Instant::now() + Duration::from_secs(1);
    while started.elapsed() < Duration::from_secs(args.seconds) {
        if let Some(o) = outputs.recv_timeout(Duration::from_millis(100)) {
            recent.push_back(o.detections.len());
            if recent.len() > 100 {
                recent.pop_front();
            }
        }
        while let Ok(event) = health.try_recv() {
            if !matches!(event, HealthEvent::FrameLag { .. }) {
                let (severity, message, _) = nv_sinks::health::describe(&event);
                println!("  health: {} {message}", severity.as_str());
            }
        }
        if Instant::now() >= next_report {
            next_report += Duration::from_secs(1);
            print_table(&feeds, started.elapsed(), &recent);
        }
    }
    let final_diag: Vec<_> = feeds.iter().map(|f| f.diagnostics()).collect();
    runtime.shutdown();
    println!("final:");
    print_rows(&final_diag);
    println!("shut down cleanly");
    Ok(std::process::ExitCode::SUCCESS)
}

fn print_table(feeds: &[nv_runtime::FeedHandle], elapsed: Duration, recent: &VecDeque<usize>) {
    let mean_objects = if recent.is_empty() {
        0.0
    } else {
        recent.iter().sum::<usize>() as f64 / recent.len() as f64
    };
    println!(
        "t={:>4.1}s  mean objects/frame (last 100 outputs): {mean_objects:.2}",
        elapsed.as_secs_f64()
    );
    let diags: Vec<_> = feeds.iter().map(|f| f.diagnostics()).collect();
    print_rows(&diags);
}

fn print_rows(diags: &[nv_runtime::FeedDiagnostics]) {
    println!(
        "  {:<8} {:>8} {:>8} {:>7} {:>7} {:>11} {:>11}",
        "feed", "frames", "outputs", "drops", "tracks", "p50 lat us", "p99 lat us"
    );
    for d in diags {
        let lat = &d.receive_to_output;
        println!(
            "  {:<8} {:>8} {:>8} {:>7} {:>7} {:>11} {:>11}",
            d.name,
            d.metrics.frames_received,
            d.metrics.frames_processed,
            d.metrics.frames_dropped(),
            d.metrics.tracks_active,
            lat.quantile(0.5).as_micros(),
            lat.quantile(0.99).as_micros()
        );
    }
}
