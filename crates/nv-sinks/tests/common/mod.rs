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

/// A port that was free a moment ago. Only for addresses nothing listens on (a refused
/// connection); brokers get theirs through [`Broker`], which retries when it loses a race.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// How a broker learns its port.
#[derive(Debug, Clone, Copy)]
enum PortChoice {
    /// nats-server binds port 0 itself and writes the port it got to a ports file.
    NatsPortsFile,
    /// mosquitto cannot bind port 0 (it means a Unix socket there): ask the OS for a free
    /// port, and take another one if the broker lost it to someone else before binding.
    OsThenRetry,
}

/// A broker process on 127.0.0.1, killed on drop (even when the test fails).
///
/// Ports come from the OS. A restart reuses the port the first start got, so clients
/// configured with it reconnect to the same address.
#[derive(Debug)]
pub struct Broker {
    program: PathBuf,
    /// Arguments; `{port}` is replaced by the port (`-1` for nats' first start).
    args: Vec<String>,
    /// mosquitto's configuration; `{port}` is replaced by the port.
    conf: Option<(PathBuf, String)>,
    choice: PortChoice,
    dir: PathBuf,
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
        let conf = dir.join("mosquitto.conf");
        let store = dir.join("mqtt-store");
        std::fs::create_dir_all(&store).unwrap();
        let text = format!(
            "listener {{port}} 127.0.0.1\nallow_anonymous true\nuser root\npersistence true\npersistence_location {}/\nlog_dest file {}\n{extra}",
            store.display(),
            dir.join("mosquitto.log").display()
        );
        let mut b = Self {
            program: "/usr/sbin/mosquitto".into(),
            args: vec!["-c".into(), conf.display().to_string()],
            conf: Some((conf, text)),
            choice: PortChoice::OsThenRetry,
            dir: dir.to_path_buf(),
            port: 0,
            child: None,
            name: "mosquitto",
        };
        b.start();
        b
    }

    pub fn nats(dir: &Path, jetstream: bool) -> Self {
        let ports_dir = dir.join("ports");
        std::fs::create_dir_all(&ports_dir).unwrap();
        let mut args = vec![
            "-a".into(),
            "127.0.0.1".into(),
            "-p".into(),
            "{port}".into(),
            "--ports_file_dir".into(),
            ports_dir.display().to_string(),
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
            conf: None,
            choice: PortChoice::NatsPortsFile,
            dir: dir.to_path_buf(),
            port: 0,
            child: None,
            name: "nats-server",
        };
        b.start();
        b
    }

    /// Starts the broker (again, on the same port after the first start) and waits until
    /// it listens.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "{} already running", self.name);
        let first = self.port == 0;
        // A first start may lose its port to another process between the OS handing it
        // out and the broker binding it: take another. A restart must keep its port.
        for attempt in 1..=5 {
            let port = match (first, self.choice) {
                (false, _) => self.port,
                (true, PortChoice::NatsPortsFile) => 0,
                (true, PortChoice::OsThenRetry) => free_port(),
            };
            match self.try_start(port) {
                Ok(bound) => {
                    self.port = bound;
                    return;
                }
                Err(why) if first && attempt < 5 => {
                    eprintln!(
                        "{}: start attempt {attempt} failed ({why}); retrying",
                        self.name
                    );
                }
                Err(why) => panic!("could not start {} on port {port}: {why}", self.name),
            }
        }
    }

    /// One start on `port` (0: let the broker choose); the port it listens on.
    fn try_start(&mut self, port: u16) -> Result<u16, String> {
        let port_text = if port == 0 {
            "-1".to_owned()
        } else {
            port.to_string()
        };
        if let Some((path, text)) = &self.conf {
            std::fs::write(path, text.replace("{port}", &port_text)).unwrap();
        }
        let args: Vec<String> = self
            .args
            .iter()
            .map(|a| a.replace("{port}", &port_text))
            .collect();
        let mut child = Command::new(&self.program)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {}: {e}", self.name));
        let pid = child.id();
        let ports_file = self
            .dir
            .join("ports")
            .join(format!("nats-server_{pid}.ports"));
        let deadline = Instant::now() + TIMEOUT;
        // No event to wait on: poll the process and its listener until the deadline.
        let bound = loop {
            if let Some(status) = child.try_wait().unwrap() {
                return Err(format!("exited with {status} before listening"));
            }
            let candidate = match self.choice {
                PortChoice::NatsPortsFile => read_nats_port(&ports_file),
                PortChoice::OsThenRetry => Some(port),
            };
            // Our child is alive and something answers on the port: on the first start
            // that could still be another process that took the port, so make sure the
            // child did not exit right after (it would, failing to bind).
            if let Some(p) = candidate.filter(|p| TcpStream::connect(("127.0.0.1", *p)).is_ok()) {
                if child.try_wait().unwrap().is_none() && self.listening_logged(p) {
                    break p;
                }
            }
            if Instant::now() >= deadline {
                let _killed = child.kill();
                let _reaped = child.wait();
                return Err("not listening before the deadline".into());
            }
            std::thread::yield_now();
        };
        self.child = Some(child);
        Ok(bound)
    }

    /// Whether the broker's own log says it listens on `port` (so a connection that
    /// succeeded reached this broker, not another process on a reused port).
    fn listening_logged(&self, port: u16) -> bool {
        match self.choice {
            // The ports file is written by this process after it bound its listener.
            PortChoice::NatsPortsFile => true,
            PortChoice::OsThenRetry => std::fs::read_to_string(self.dir.join("mosquitto.log"))
                .map(|log| {
                    log.lines()
                        .rev()
                        .take_while(|l| !l.contains("starting"))
                        .any(|l| l.contains(&format!("listen socket on port {port}")))
                })
                .unwrap_or(false),
        }
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

/// The client port in a nats-server ports file (`{"nats":["nats://127.0.0.1:PORT"]}`).
fn read_nats_port(path: &Path) -> Option<u16> {
    let text = std::fs::read_to_string(path).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    let url = v.get("nats")?.get(0)?.as_str()?;
    url.rsplit(':').next()?.parse().ok()
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
