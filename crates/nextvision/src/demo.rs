//! `nextvision demo`: synthetic feeds, three stages, a live per-feed summary.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use nv_core::error::StageError;
use nv_core::geometry::BBox;
use nv_core::id::DetectionId;
use nv_perception::{
    DerivedSignal, Detection, SceneFeature, SceneFeatureValue, SignalValue, Stage,
    StageCapabilities, StageContext, StageOutput,
};
use nv_runtime::{
    BackpressurePolicy, CameraMode, FeedConfig, HealthEvent, NullSink, PixelFormat, Runtime,
    SourceSpec, StageId, SyntheticSpec,
};

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
}

/// Mean luma of the frame as a scene feature; reads the Y plane directly (no conversion).
struct Brightness;

impl Stage for Brightness {
    fn id(&self) -> StageId {
        StageId::new("brightness")
    }
    fn process(&mut self, ctx: &StageContext<'_>) -> Result<StageOutput, StageError> {
        let luma = ctx
            .frame
            .luma_plane()
            .map_err(|e| StageError::other(self.id(), e))?;
        let Some(y) = luma else {
            return Ok(StageOutput::empty());
        };
        let mut sum = 0u64;
        for row in (0..y.rows).step_by(4) {
            sum += y
                .row(row)
                .iter()
                .step_by(4)
                .map(|v| u64::from(*v))
                .sum::<u64>();
        }
        let samples = (y.rows.div_ceil(4) * y.row_bytes.div_ceil(4)).max(1) as f64;
        Ok(StageOutput::with_scene_features(vec![SceneFeature {
            name: "mean_luma".into(),
            value: SceneFeatureValue::Scalar(sum as f64 / samples),
            confidence: None,
            ts: ctx.frame.ts(),
        }]))
    }
}

/// Bright blobs on a coarse grid, joined into boxes by connected components.
struct BlobDetector {
    cells: Vec<bool>,
    labels: Vec<u32>,
}

const CELL: usize = 8;

impl Stage for BlobDetector {
    fn id(&self) -> StageId {
        StageId::new("blob-detector")
    }
    fn capabilities(&self) -> Option<StageCapabilities> {
        Some(StageCapabilities::new().produces_detections())
    }
    fn process(&mut self, ctx: &StageContext<'_>) -> Result<StageOutput, StageError> {
        let luma = ctx
            .frame
            .luma_plane()
            .map_err(|e| StageError::other(self.id(), e))?;
        let Some(y) = luma else {
            return Ok(StageOutput::empty());
        };
        let (gw, gh) = (y.row_bytes / CELL, y.rows / CELL);
        self.cells.clear();
        for gy in 0..gh {
            let row = y.row(gy * CELL + CELL / 2);
            self.cells
                .extend((0..gw).map(|gx| row[gx * CELL + CELL / 2] > 128));
        }
        self.labels.clear();
        self.labels.resize(gw * gh, 0);
        let mut detections = Vec::new();
        let mut stack = Vec::new();
        for start in 0..gw * gh {
            if !self.cells[start] || self.labels[start] != 0 {
                continue;
            }
            let label = detections.len() as u32 + 1;
            let (mut x0, mut y0, mut x1, mut y1) = (gw, gh, 0, 0);
            stack.push(start);
            self.labels[start] = label;
            while let Some(i) = stack.pop() {
                let (cx, cy) = (i % gw, i / gw);
                (x0, y0, x1, y1) = (x0.min(cx), y0.min(cy), x1.max(cx), y1.max(cy));
                let neighbours = [
                    (cx > 0).then(|| i - 1),
                    (cx + 1 < gw).then(|| i + 1),
                    (cy > 0).then(|| i - gw),
                    (cy + 1 < gh).then(|| i + gw),
                ];
                for n in neighbours.into_iter().flatten() {
                    if self.cells[n] && self.labels[n] == 0 {
                        self.labels[n] = label;
                        stack.push(n);
                    }
                }
            }
            let bbox = BBox::new(
                x0 as f32 / gw as f32,
                y0 as f32 / gh as f32,
                (x1 + 1) as f32 / gw as f32,
                (y1 + 1) as f32 / gh as f32,
            );
            detections
                .push(Detection::builder(DetectionId::new(u64::from(label)), 0, 1.0, bbox).build());
        }
        Ok(StageOutput::with_detections(detections))
    }
}

/// Publishes the detection count as a signal.
struct Counter;

impl Stage for Counter {
    fn id(&self) -> StageId {
        StageId::new("counter")
    }
    fn capabilities(&self) -> Option<StageCapabilities> {
        Some(
            StageCapabilities::new()
                .consumes_detections()
                .produces_signals(),
        )
    }
    fn process(&mut self, ctx: &StageContext<'_>) -> Result<StageOutput, StageError> {
        let n = ctx.artifacts.detections.len() as f64;
        Ok(StageOutput::with_signal(DerivedSignal::new(
            "objects",
            SignalValue::Scalar(n),
            ctx.frame.ts(),
        )))
    }
}

pub fn run(args: &DemoArgs) -> anyhow::Result<()> {
    let runtime = Runtime::builder().build().context("building runtime")?;
    let mut health = runtime.health_subscribe();
    let mut feeds = Vec::new();
    for i in 0..args.feeds {
        let spec = SyntheticSpec {
            width: 640,
            height: 480,
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
            .backpressure(BackpressurePolicy::DropOldest { queue_depth: 4 })
            .stage(Brightness)
            .stage(BlobDetector {
                cells: Vec::new(),
                labels: Vec::new(),
            })
            .stage(Counter)
            .output_sink(NullSink)
            .build()
            .context("feed config")?;
        feeds.push(runtime.add_feed(config).context("adding feed")?);
    }
    println!("nextvision demo: {} synthetic feeds, 640x480 I420 @ {} fps, stages brightness -> blob-detector -> counter", args.feeds, args.fps);
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
                println!("  health: {event:?}");
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
    Ok(())
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
        "  {:<8} {:>8} {:>8} {:>7} {:>11} {:>11}",
        "feed", "frames", "outputs", "drops", "p50 lat us", "p99 lat us"
    );
    for d in diags {
        let lat = &d.receive_to_output;
        println!(
            "  {:<8} {:>8} {:>8} {:>7} {:>11} {:>11}",
            d.name,
            d.metrics.frames_received,
            d.metrics.frames_processed,
            d.metrics.frames_dropped(),
            lat.quantile(0.5).as_micros(),
            lat.quantile(0.99).as_micros()
        );
    }
}
