//! Shared setup for the sink integration tests: real runtime outputs, real brokers.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is a failed test"
)]
#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nv_core::error::StageError;
use nv_core::geometry::BBox;
use nv_core::policy::RestartPolicy;
use nv_perception::{
    DerivedSignal, Detection, DetectionId, SceneFeature, SceneFeatureValue, SignalValue, Stage,
    StageContext, StageId, StageOutput, Track, TrackId, TrackObservation, TrackState,
};
use nv_runtime::output::FrameInclusion;
use nv_runtime::{CameraMode, FeedConfig, OutputSink, Runtime, SharedOutput, SourceSpec};
use nv_sinks::{OutputRecord, SinkStats, SinkStatsSnapshot};
use nv_test_util::{tiny_synthetic, CollectingSink};

pub const TIMEOUT: Duration = Duration::from_secs(30);

/// A stage that fills every part of the output: detections (one with an embedding), a
/// track, signals of each kind (one non-finite) and a distribution scene feature.
#[derive(Debug)]
pub struct RichStage;

impl Stage for RichStage {
    fn id(&self) -> StageId {
        StageId::new("rich")
    }
    fn process(&mut self, ctx: &StageContext<'_>) -> Result<StageOutput, StageError> {
        let ts = ctx.frame.ts();
        let seq = ctx.frame.seq();
        let b = BBox::from_xywh(0.1, 0.2, 0.3, 0.4);
        let dets = vec![
            Detection::builder(DetectionId::new(1), 2, 0.9, b)
                .embedding(vec![0.5, -0.25])
                .build(),
            Detection::builder(DetectionId::new(2), 0, 0.4, BBox::new(0.5, 0.5, 0.6, 0.7)).build(),
        ];
        let state = if seq % 2 == 0 {
            TrackState::Confirmed
        } else {
            TrackState::Coasted
        };
        let track = Track::new(
            TrackId::new(7),
            2,
            state,
            TrackObservation::new(ts, b, 0.9, state, Some(DetectionId::new(1))),
        );
        Ok(StageOutput::build()
            .detections(dets)
            .tracks(vec![track])
            .signal(DerivedSignal::new("count", SignalValue::Scalar(2.0), ts))
            .signal(DerivedSignal::new("nan", SignalValue::Scalar(f64::NAN), ts))
            .signal(DerivedSignal::new(
                "vec",
                SignalValue::Vector(vec![1.0, f64::INFINITY]),
                ts,
            ))
            .signal(DerivedSignal::new("flag", SignalValue::Boolean(true), ts))
            .signal(DerivedSignal::new(
                "zone",
                SignalValue::Categorical("door".into()),
                ts,
            ))
            .scene_feature(SceneFeature {
                name: "weather".into(),
                value: SceneFeatureValue::Distribution(vec![
                    ("sun".into(), 0.7),
                    ("rain".into(), 0.3),
                ]),
                confidence: Some(0.8),
                ts,
            })
            .finish())
    }
}

pub fn feed_config(frames: u64, sink: Box<dyn OutputSink>) -> FeedConfig {
    FeedConfig::builder()
        .source(SourceSpec::synthetic(tiny_synthetic(Some(frames))))
        .camera_mode(CameraMode::Fixed)
        .stage(RichStage)
        .frame_inclusion(FrameInclusion::sampled(2))
        .restart(RestartPolicy::never())
        .boxed_output_sink(sink)
        .lossless()
        .build()
        .unwrap()
}

/// `n` real outputs of one feed (synthetic source, [`RichStage`], every 2nd frame
/// carried), in order.
pub fn outputs(n: u64) -> Vec<SharedOutput> {
    let rt = Runtime::builder().build().unwrap();
    let sink = CollectingSink::new();
    rt.add_feed(feed_config(n, Box::new(sink.clone()))).unwrap();
    let out = sink.wait_for(usize::try_from(n).unwrap());
    rt.shutdown();
    assert_eq!(out.len() as u64, n);
    out
}

/// Runs one lossless feed of `n` frames through `sink` on a real runtime, waits until
/// `stats` counts all `n` delivered, then shuts the runtime down (dropping the sink).
/// Returns the outputs' idempotency keys in feed order.
pub fn run_feed(n: u64, sink: Box<dyn OutputSink>, stats: &SinkStats) -> Vec<String> {
    let rt = Runtime::builder().build().unwrap();
    let mut sub = rt.output_subscribe();
    rt.add_feed(feed_config(n, sink)).unwrap();
    let mut keys = Vec::new();
    while keys.len() < usize::try_from(n).unwrap() {
        let out = sub.recv_timeout(TIMEOUT).expect("output");
        keys.push(OutputRecord::from_output(&out).idempotency_key);
    }
    wait_stats(stats, "all delivered", |s| s.delivered == n);
    rt.shutdown();
    keys
}

/// Emits one output at a time, each after the previous one was delivered.
pub fn emit_paced(sink: &mut dyn OutputSink, stats: &SinkStats, outputs: &[SharedOutput]) {
    for o in outputs {
        let before = stats.delivered();
        sink.emit(o.clone());
        wait_stats(stats, "paced delivery", |s| s.delivered > before);
    }
}

/// Waits (on counter changes, not sleeps) until `pred` holds.
pub fn wait_stats(
    stats: &SinkStats,
    what: &str,
    pred: impl FnMut(&SinkStatsSnapshot) -> bool,
) -> SinkStatsSnapshot {
    let (snap, ok) = stats.wait_until(TIMEOUT, pred);
    assert!(ok, "timed out waiting for {what}: {snap:?}");
    snap
}

/// Polls a condition that has no event of its own, with a bounded deadline.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::yield_now();
    }
}

pub fn key_of(payload: &[u8]) -> String {
    let r: OutputRecord = serde_json::from_slice(payload).unwrap();
    r.idempotency_key
}

pub fn keys(outputs: &[SharedOutput]) -> Vec<String> {
    outputs
        .iter()
        .map(|o| OutputRecord::from_output(o).idempotency_key)
        .collect()
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A broker process on 127.0.0.1, killed on drop (even when the test fails).
#[derive(Debug)]
pub struct Broker {
    program: PathBuf,
    args: Vec<String>,
    pub port: u16,
    child: Option<Child>,
    name: &'static str,
}

impl Broker {
    pub fn mosquitto(dir: &Path) -> Self {
        Self::mosquitto_with(dir, "")
    }

    /// Saves its store after every change, so a SIGKILL keeps persistent sessions.
    /// (Not the default: with it, mosquitto 2.0.11 was seen to forward only part of the
    /// QoS 2 publishes it had completed.)
    pub fn mosquitto_autosave(dir: &Path) -> Self {
        Self::mosquitto_with(dir, "autosave_interval 1\nautosave_on_changes true\n")
    }

    fn mosquitto_with(dir: &Path, extra: &str) -> Self {
        let port = free_port();
        let conf = dir.join("mosquitto.conf");
        let store = dir.join("mqtt-store");
        std::fs::create_dir_all(&store).unwrap();
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\nuser root\npersistence true\npersistence_location {}/\nlog_dest file {}\n{extra}",
                store.display(),
                dir.join("mosquitto.log").display()
            ),
        )
        .unwrap();
        let mut b = Self {
            program: "/usr/sbin/mosquitto".into(),
            args: vec!["-c".into(), conf.display().to_string()],
            port,
            child: None,
            name: "mosquitto",
        };
        b.start();
        b
    }

    pub fn nats(dir: &Path, jetstream: bool) -> Self {
        let port = free_port();
        let mut args = vec![
            "-a".into(),
            "127.0.0.1".into(),
            "-p".into(),
            port.to_string(),
            "-l".into(),
            dir.join("nats.log").display().to_string(),
        ];
        if jetstream {
            args.extend([
                "-js".into(),
                "-sd".into(),
                dir.join("js-store").display().to_string(),
            ]);
        }
        let mut b = Self {
            program: "/usr/sbin/nats-server".into(),
            args,
            port,
            child: None,
            name: "nats-server",
        };
        b.start();
        b
    }

    /// Starts the broker (again) on the same port and waits until it accepts connections.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "{} already running", self.name);
        let child = Command::new(&self.program)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {}: {e}", self.name));
        self.child = Some(child);
        let port = self.port;
        wait_until("broker accepting connections", || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
    }

    /// Stops the broker with SIGTERM (it saves its store) and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let status = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .unwrap();
            assert!(status.success());
            child.wait().unwrap();
        }
    }
}

impl Broker {
    /// Kills the broker with SIGKILL (no shutdown work at all) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }
}

/// How a test takes the broker down.
#[derive(Clone, Copy, Debug)]
pub enum Outage {
    /// SIGTERM: the broker saves its store and exits.
    Stop,
    /// SIGKILL: the process vanishes.
    Kill,
}

impl Outage {
    pub fn apply(self, broker: &mut Broker) {
        match self {
            Self::Stop => broker.stop(),
            Self::Kill => broker.kill(),
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _killed = child.kill();
            let _reaped = child.wait();
        }
    }
}
