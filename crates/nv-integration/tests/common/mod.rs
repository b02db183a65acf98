//! Shared helpers for the media integration tests: clips generated at test time, a
//! runtime with the GStreamer factory, and a stage that records every frame it sees.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]
#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use gstreamer as gst;
use gstreamer::prelude::*;
use parking_lot::Mutex;

use nv_core::error::StageError;
use nv_core::id::StageId;
use nv_core::policy::RestartPolicy;
use nv_media::GstSourceFactory;
use nv_perception::{Stage, StageContext, StageOutput};
use nv_runtime::{
    BackpressurePolicy, CameraMode, FeedConfig, FeedConfigBuilder, FeedHandle, HealthEvent,
    HealthSubscription, PixelFormat, Runtime, SourceSpec,
};
use nv_test_util::{collect_events_until, TEST_TIMEOUT};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Container {
    Mp4,
    Mkv,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClipSpec {
    pub frames: u32,
    pub width: u32,
    pub height: u32,
    pub container: Container,
    pub pattern: &'static str,
}

impl ClipSpec {
    pub fn new(frames: u32, width: u32, height: u32, container: Container) -> Self {
        Self {
            frames,
            width,
            height,
            container,
            pattern: "white",
        }
    }
}

struct ClipDir {
    dir: tempfile::TempDir,
    clips: Mutex<HashMap<ClipSpec, PathBuf>>,
}

fn clip_dir() -> &'static ClipDir {
    static DIR: OnceLock<ClipDir> = OnceLock::new();
    DIR.get_or_init(|| ClipDir {
        dir: tempfile::tempdir().unwrap(),
        clips: Mutex::new(HashMap::new()),
    })
}

pub fn temp_path(name: &str) -> PathBuf {
    clip_dir().dir.path().join(name)
}

/// Runs a gst-launch style pipeline to EOS (test-time media generation).
pub fn run_to_eos(description: &str) {
    nv_media::init().unwrap();
    let pipeline = gst::parse::launch(description).unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let bus = pipeline.bus().unwrap();
    let msg = bus
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(120),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .expect("clip generation timed out");
    if let gst::MessageView::Error(e) = msg.view() {
        panic!("clip generation failed: {} {:?}", e.error(), e.debug());
    }
    pipeline.set_state(gst::State::Null).unwrap();
}

/// An H.264 clip (generated once per test binary and spec).
pub fn clip(spec: &ClipSpec) -> PathBuf {
    let dir = clip_dir();
    let mut clips = dir.clips.lock();
    if let Some(p) = clips.get(spec) {
        return p.clone();
    }
    let (mux, ext) = match spec.container {
        Container::Mp4 => ("mp4mux", "mp4"),
        Container::Mkv => ("matroskamux", "mkv"),
    };
    let path = dir.dir.path().join(format!(
        "clip-{}x{}-{}-{}.{ext}",
        spec.width, spec.height, spec.frames, spec.pattern
    ));
    run_to_eos(&format!(
        "videotestsrc num-buffers={n} pattern={p} ! video/x-raw,format=I420,width={w},height={h},framerate=30/1 \
         ! x264enc speed-preset=ultrafast key-int-max=30 ! h264parse ! {mux} ! filesink location={loc}",
        n = spec.frames,
        p = spec.pattern,
        w = spec.width,
        h = spec.height,
        loc = path.display()
    ));
    clips.insert(spec.clone(), path.clone());
    path
}

/// A file truncated to `fraction` of its size.
pub fn truncated_copy(src: &Path, name: &str, fraction: f64) -> PathBuf {
    let data = std::fs::read(src).unwrap();
    let keep = (data.len() as f64 * fraction) as usize;
    let path = temp_path(name);
    std::fs::write(&path, &data[..keep]).unwrap();
    path
}

pub fn runtime() -> Runtime {
    runtime_with(GstSourceFactory::new())
}

pub fn runtime_with(factory: GstSourceFactory) -> Runtime {
    Runtime::builder()
        .health_capacity(16_384)
        .source_factory(Arc::new(factory))
        .build()
        .unwrap()
}

/// What the recording stage saw of one frame.
#[derive(Clone, Debug)]
pub struct Seen {
    pub seq: u64,
    pub ts: u64,
    pub format: PixelFormat,
    pub width: u32,
    pub height: u32,
    pub zero_copy: bool,
    /// Mean of the first plane's visible bytes, and min/max over its rows' means.
    pub plane0_mean: f64,
    pub plane0_row_min: f64,
    pub plane0_row_max: f64,
    /// Mean of the second plane (chroma) when there is one.
    pub plane1_mean: Option<f64>,
}

fn mean(bytes: &[u8]) -> f64 {
    bytes.iter().map(|b| f64::from(*b)).sum::<f64>() / bytes.len().max(1) as f64
}

/// Records every frame (without keeping it, so decoder buffers are recycled).
#[derive(Clone, Default)]
pub struct Recorder {
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl Recorder {
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().clone()
    }
}

impl Stage for Recorder {
    fn id(&self) -> StageId {
        StageId::new("recorder")
    }
    fn process(&mut self, ctx: &StageContext<'_>) -> Result<StageOutput, StageError> {
        let f = ctx.frame;
        let p0 = f.plane(0).unwrap().unwrap();
        let rows: Vec<f64> = (0..p0.rows).map(|y| mean(p0.row(y))).collect();
        let plane1_mean = f.plane(1).unwrap().map(|p| {
            let rows: Vec<f64> = (0..p.rows).map(|y| mean(p.row(y))).collect();
            rows.iter().sum::<f64>() / rows.len().max(1) as f64
        });
        self.seen.lock().push(Seen {
            seq: f.seq(),
            ts: f.ts().as_nanos(),
            format: f.format(),
            width: f.width(),
            height: f.height(),
            zero_copy: f.host_data().is_some(),
            plane0_mean: rows.iter().sum::<f64>() / rows.len().max(1) as f64,
            plane0_row_min: rows.iter().copied().fold(f64::MAX, f64::min),
            plane0_row_max: rows.iter().copied().fold(f64::MIN, f64::max),
            plane1_mean,
        });
        Ok(StageOutput::empty())
    }
}

/// A lossless feed of `spec` with the recorder, no restarts.
pub fn feed(spec: SourceSpec, rec: &Recorder) -> FeedConfigBuilder {
    FeedConfig::builder()
        .source(spec)
        .camera_mode(CameraMode::Fixed)
        .backpressure(BackpressurePolicy::block(4))
        .restart(RestartPolicy::never())
        .stage(rec.clone())
        .output_sink(nv_runtime::NullSink)
        .lossless()
}

/// A feed that ran until it stopped on a runtime of its own.
pub struct Finished {
    /// What the recorder saw, in order.
    pub seen: Vec<Seen>,
    /// The feed's events, its `FeedStopped` last.
    pub events: Vec<HealthEvent>,
    pub handle: FeedHandle,
    /// Kept so that `handle` still answers.
    _runtime: Runtime,
}

/// Runs one feed of `spec` (the standard [`feed`] with a fresh [`Recorder`]) on a fresh
/// runtime until it stops.
pub fn run_to_stop(spec: SourceSpec) -> Finished {
    run_to_stop_with(spec, |f| f)
}

/// Like [`run_to_stop`], with `configure` adding to the standard [`feed`].
pub fn run_to_stop_with(
    spec: SourceSpec,
    configure: impl FnOnce(FeedConfigBuilder) -> FeedConfigBuilder,
) -> Finished {
    let runtime = runtime();
    let mut health = runtime.health_subscribe();
    let rec = Recorder::default();
    let handle = runtime
        .add_feed(configure(feed(spec, &rec)).build().unwrap())
        .unwrap();
    let events = events_until_stopped(&mut health, handle.id());
    Finished {
        seen: rec.seen(),
        events,
        handle,
        _runtime: runtime,
    }
}

/// A health subscription that keeps every event it saw.
pub struct Events {
    sub: HealthSubscription,
    pub all: Vec<HealthEvent>,
}

impl Events {
    pub fn new(sub: HealthSubscription) -> Self {
        Self {
            sub,
            all: Vec::new(),
        }
    }

    /// Waits for the next event matching `pred` (keeping every event on the way).
    pub fn wait(&mut self, what: &str, mut pred: impl FnMut(&HealthEvent) -> bool) -> HealthEvent {
        let deadline = std::time::Instant::now() + T;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.sub.recv_timeout(left) {
                Ok(e) => {
                    self.all.push(e.clone());
                    if pred(&e) {
                        return e;
                    }
                }
                Err(e) => panic!("no {what} before timeout ({e:?}); saw {:?}", self.all),
            }
        }
    }

    /// How many events named `name` were seen.
    pub fn count(&self, name: &str) -> usize {
        count(&self.all, name)
    }

    /// The index of the first event named `name` at or after `from`.
    pub fn position(&self, from: usize, name: &str) -> Option<usize> {
        self.all[from..]
            .iter()
            .position(|e| e.name() == name)
            .map(|i| i + from)
    }
}

/// Collects this feed's events until its FeedStopped.
pub fn events_until_stopped(
    health: &mut HealthSubscription,
    feed: nv_runtime::FeedId,
) -> Vec<HealthEvent> {
    collect_events_until(
        health,
        |e| matches!(e, HealthEvent::FeedStopped { feed_id, .. } if *feed_id == feed),
    )
    .into_iter()
    .filter(|e| e.feed_id() == Some(feed))
    .collect()
}

pub fn count(events: &[HealthEvent], name: &str) -> usize {
    events.iter().filter(|e| e.name() == name).count()
}

/// Asserts seq 0..n contiguous from `first` and strictly increasing timestamps.
pub fn assert_contiguous(seen: &[Seen], first: u64) {
    for (i, s) in seen.iter().enumerate() {
        assert_eq!(s.seq, first + i as u64, "seq gap at {i}: {:?}", s);
    }
    for w in seen.windows(2) {
        assert!(
            w[1].ts > w[0].ts,
            "ts not increasing: {:?} then {:?}",
            w[0],
            w[1]
        );
    }
}

pub const T: std::time::Duration = TEST_TIMEOUT;

/// Waits until the recorder saw at least `n` frames (no event marks this).
pub fn wait_frames(rec: &Recorder, n: usize) {
    let deadline = std::time::Instant::now() + T;
    while rec.seen.lock().len() < n {
        assert!(
            std::time::Instant::now() < deadline,
            "only {} of {n} frames arrived",
            rec.seen.lock().len()
        );
        std::thread::yield_now();
    }
}
