//! `nextvision demo --video CLIP`: the real main job. A catalog person detector (pure
//! Rust, tract), the tracker and a counting line on a real clip; prints what it saw.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use nv_core::geometry::Point2;
use nv_perception::TrackState;
use nv_runtime::{CameraMode, FeedConfig, HealthEvent, SharedOutput, StopReason};
use nv_stages::model::ModelDetector;
use nv_stages::{LineSpec, Tracker, TrackerConfig, ZoneAnalytics, ZoneConfig};
use parking_lot::Mutex;

/// What the sink saw, frame by frame.
#[derive(Debug, Default)]
struct Seen {
    frames: u64,
    detections: u64,
    max_detections: usize,
    frames_with_people: u64,
    track_ids: BTreeSet<u64>,
    max_live_tracks: usize,
    /// `(left_to_right, right_to_left)` of the counting line.
    crossings: (u64, u64),
}

impl Seen {
    fn record(&mut self, o: &SharedOutput) {
        self.frames += 1;
        let n = o.detections.len();
        self.detections += n as u64;
        self.max_detections = self.max_detections.max(n);
        if n > 0 {
            self.frames_with_people += 1;
        }
        let mut live = 0;
        for t in &o.tracks {
            if matches!(t.state, TrackState::Confirmed | TrackState::Coasted) {
                live += 1;
                self.track_ids.insert(t.id.as_u64());
            }
        }
        self.max_live_tracks = self.max_live_tracks.max(live);
        for s in &o.signals {
            if s.name.ends_with(".left_to_right") && s.name.starts_with("line.") {
                self.crossings.0 += 1;
            } else if s.name.ends_with(".right_to_left") && s.name.starts_with("line.") {
                self.crossings.1 += 1;
            }
        }
    }
}

pub fn run(video: &str, model: &str, line_x: f32) -> anyhow::Result<std::process::ExitCode> {
    let config = crate::models::resolve_catalog(model)
        .map_err(anyhow::Error::msg)?
        .with_context(|| format!("`{model}` is not a catalog model (nextvision models list)"))?;
    let mut config = config;
    // One feed: its inference may use every core (tract's thread pool), up to 4.
    config.threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    let detector = ModelDetector::new(config).context("loading the person detector")?;
    let backend = detector.backend_description();
    let tracker = Tracker::new(TrackerConfig::default()).context("tracker")?;
    let line = LineSpec {
        name: "counting".into(),
        start: Point2::new(line_x, 0.0),
        end: Point2::new(line_x, 1.0),
    };
    let zones = ZoneAnalytics::new(ZoneConfig {
        lines: vec![line],
        ..ZoneConfig::default()
    })
    .context("counting line")?;
    let source = crate::config::parse_source(video, false, false, false)
        .map_err(anyhow::Error::msg)
        .context("video")?;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let sink_seen = Arc::clone(&seen);
    let runtime = crate::media::register(nv_runtime::Runtime::builder()).build()?;
    let mut health = runtime.health_subscribe();
    let feed = runtime.add_feed(
        FeedConfig::builder()
            .name("demo-video".into())
            .source(source)
            .camera_mode(CameraMode::Fixed)
            .stage(detector)
            .stage(tracker)
            .stage(zones)
            .output_sink(move |o: SharedOutput| {
                sink_seen.lock().record(&o);
            })
            .lossless()
            .build()?,
    )?;
    println!(
        "nextvision demo: {video}\n  stages: model-detector ({model}, pure Rust: {backend}) -> \
         tracker -> counting line at x = {line_x}"
    );
    let started = Instant::now();
    let mut reason = None;
    let mut last_print = Instant::now();
    while reason.is_none() {
        match health.recv_timeout(Duration::from_millis(250)) {
            Ok(HealthEvent::FeedStopped { reason: r, .. }) => reason = Some(r),
            Ok(HealthEvent::SourceDisconnected { reason: r, .. }) => eprintln!("\rsource: {r}"),
            _ => {}
        }
        if last_print.elapsed() >= Duration::from_secs(1) {
            last_print = Instant::now();
            let m = feed.metrics();
            eprint!(
                "\r  {} frames  {:.1} frames/s",
                m.frames_processed,
                m.frames_processed as f64 / started.elapsed().as_secs_f64().max(1e-9)
            );
        }
    }
    let diag = feed.diagnostics();
    runtime.shutdown();
    let secs = started.elapsed().as_secs_f64();
    eprintln!();
    let s = seen.lock();
    println!("what it saw:");
    println!(
        "  frames            {} in {secs:.1} s ({:.1} frames/s, {} dropped)",
        s.frames,
        s.frames as f64 / secs.max(1e-9),
        diag.metrics.frames_dropped()
    );
    println!(
        "  people            {:.2} per frame on average, at most {} at once, in {} of {} frames",
        s.detections as f64 / s.frames.max(1) as f64,
        s.max_detections,
        s.frames_with_people,
        s.frames
    );
    println!(
        "  tracks            {} distinct, at most {} at once",
        s.track_ids.len(),
        s.max_live_tracks
    );
    println!(
        "  counting line     {} left to right, {} right to left",
        s.crossings.0, s.crossings.1
    );
    match reason {
        Some(StopReason::EndOfStream) | None => Ok(std::process::ExitCode::SUCCESS),
        Some(other) => {
            println!("  stopped: {other}");
            Ok(std::process::ExitCode::FAILURE)
        }
    }
}
