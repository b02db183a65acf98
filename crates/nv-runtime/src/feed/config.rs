//! Feed configuration: what a feed reads, runs and delivers, validated as a whole.

use std::time::Duration;

use nv_core::camera::CameraMode;
use nv_core::error::{ConfigError, ConfigProblem};
use nv_core::limits;
use nv_core::policy::{BackpressurePolicy, Overflow, ReconnectPolicy, RestartPolicy};
use nv_core::source::{DecodePreference, SourceSpec};
use nv_perception::{validate_capabilities, Stage, StagePipeline, ValidationMode};
use nv_temporal::RetentionPolicy;
use nv_view::{EpochPolicy, ViewSettings, ViewStateProvider};
use std::sync::Arc;

use crate::batch::BatchHandle;
use crate::output::{FrameInclusion, OutputSink, SinkFactory};
use crate::source::OutputFormat;
use crate::throttle::DEFAULT_THROTTLE_WINDOW;

/// One step of a feed's pipeline: a stage, or the (single) batch point.
pub(crate) enum PipelineStep {
    Stage(Box<dyn Stage>),
    Batch(BatchHandle),
}

impl PipelineStep {
    pub fn id(&self) -> nv_core::id::StageId {
        match self {
            Self::Stage(s) => s.id(),
            Self::Batch(b) => b.processor_id(),
        }
    }
}

/// A validated feed configuration. Build with [`FeedConfig::builder`].
pub struct FeedConfig {
    pub(crate) name: Option<String>,
    pub(crate) class_names: Option<Arc<nv_perception::ClassNames>>,
    pub(crate) source: SourceSpec,
    pub(crate) camera_mode: CameraMode,
    pub(crate) stages: Vec<PipelineStep>,
    pub(crate) batch_latency_budget: Option<Duration>,
    pub(crate) view_provider: Option<Arc<dyn ViewStateProvider>>,
    pub(crate) epoch_policy: Option<Box<dyn EpochPolicy>>,
    pub(crate) view_settings: ViewSettings,
    pub(crate) retention: RetentionPolicy,
    pub(crate) sink: Box<dyn OutputSink>,
    pub(crate) sink_factory: Option<SinkFactory>,
    pub(crate) backpressure: BackpressurePolicy,
    pub(crate) sink_queue_capacity: usize,
    /// `Block` when the source queue blocks (lossless end to end), else `DropNewest`: a
    /// full sink queue drops the new output for the sink only (subscribers still get it)
    /// and reports it.
    pub(crate) sink_overflow: Overflow,
    pub(crate) sink_shutdown_timeout: Duration,
    pub(crate) restart: RestartPolicy,
    pub(crate) reconnect: ReconnectPolicy,
    pub(crate) frame_inclusion: FrameInclusion,
    pub(crate) decode: DecodePreference,
    pub(crate) output_format: OutputFormat,
    pub(crate) max_fps: Option<f64>,
    pub(crate) startup_timeout: Duration,
    pub(crate) stall_timeout: Duration,
    pub(crate) frame_lag_threshold: Duration,
    pub(crate) health_throttle: Duration,
    pub(crate) stage_stall_timeout: Duration,
}

impl std::fmt::Debug for FeedConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedConfig")
            .field("name", &self.name)
            .field("source", &self.source)
            .field(
                "stages",
                &self.stages.iter().map(|s| s.id()).collect::<Vec<_>>(),
            )
            .field("backpressure", &self.backpressure)
            .finish_non_exhaustive()
    }
}

impl FeedConfig {
    pub fn builder() -> FeedConfigBuilder {
        FeedConfigBuilder::default()
    }
    pub fn source(&self) -> &SourceSpec {
        &self.source
    }
    pub fn camera_mode(&self) -> CameraMode {
        self.camera_mode
    }
}

/// Collects settings; `build` checks them all and reports every problem at once.
#[derive(Default)]
pub struct FeedConfigBuilder {
    name: Option<String>,
    class_names: Option<Arc<nv_perception::ClassNames>>,
    source: Option<SourceSpec>,
    camera_mode: Option<CameraMode>,
    stages: Vec<PipelineStep>,
    batch_latency_budget: Option<Duration>,
    view_provider: Option<Arc<dyn ViewStateProvider>>,
    epoch_policy: Option<Box<dyn EpochPolicy>>,
    view_settings: Option<ViewSettings>,
    retention: Option<RetentionPolicy>,
    sink: Option<Box<dyn OutputSink>>,
    sink_factory: Option<SinkFactory>,
    backpressure: Option<BackpressurePolicy>,
    sink_queue_capacity: Option<usize>,
    sink_overflow: Option<Overflow>,
    sink_shutdown_timeout: Option<Duration>,
    restart: Option<RestartPolicy>,
    reconnect: Option<ReconnectPolicy>,
    frame_inclusion: Option<FrameInclusion>,
    validation: ValidationMode,
    decode: Option<DecodePreference>,
    output_format: Option<OutputFormat>,
    max_fps: Option<f64>,
    startup_timeout: Option<Duration>,
    stall_timeout: Option<Duration>,
    frame_lag_threshold: Option<Duration>,
    health_throttle: Option<Duration>,
    stage_stall_timeout: Option<Duration>,
}

impl std::fmt::Debug for FeedConfigBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedConfigBuilder")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

macro_rules! setter {
    ($(#[$m:meta])* $name:ident: $ty:ty) => {
        $(#[$m])*
        pub fn $name(mut self, value: $ty) -> Self {
            self.$name = Some(value);
            self
        }
    };
}

impl FeedConfigBuilder {
    setter!(
        /// A label for logs and the API (defaults to the feed id).
        name: String
    );
    setter!(
        /// Names of the class ids the stages produce (stamped on every output and kept
        /// in the diagnostics, so sinks, metrics and snapshots say "person", not 1).
        class_names: Arc<nv_perception::ClassNames>
    );
    setter!(source: SourceSpec);
    setter!(camera_mode: CameraMode);
    setter!(
        /// What the feed's frame queue does when the stages fall behind (default
        /// `drop_oldest(4)`). `Block` means lossless end to end: unless
        /// [`sink_overflow`](Self::sink_overflow) says otherwise, a slow sink then holds
        /// the worker, which holds the source, and no output is dropped at the sink queue.
        backpressure: BackpressurePolicy
    );
    setter!(
        /// Outputs buffered for the sink thread (default 16).
        sink_queue_capacity: usize
    );
    setter!(
        /// What a full sink queue does. Default: `Block` when the frame queue blocks
        /// (see [`backpressure`](Self::backpressure)), else `DropNewest`. Set
        /// `DropNewest` (or `DropOldest`) explicitly with a blocking frame queue to get
        /// the seed's behaviour: the source and stages never lose a frame, but a sink that
        /// falls behind loses outputs (counted as `SinkQueueFull`, reported as
        /// `SinkBackpressure`; subscribers still get every output) instead of slowing the
        /// feed down.
        sink_overflow: Overflow
    );
    setter!(
        /// How long a session end waits for the sink to drain before detaching it (5 s).
        sink_shutdown_timeout: Duration
    );
    setter!(restart: RestartPolicy);
    setter!(reconnect: ReconnectPolicy);
    setter!(frame_inclusion: FrameInclusion);
    setter!(decode: DecodePreference);
    setter!(output_format: OutputFormat);
    setter!(startup_timeout: Duration);
    setter!(stall_timeout: Duration);
    setter!(
        /// Frames older than this (wall clock) when processed raise `FrameLag` (2 s).
        frame_lag_threshold: Duration
    );
    setter!(
        /// Window for coalescing per-frame health events (1 s).
        health_throttle: Duration
    );
    setter!(
        /// A stage (or batch point) inside one call longer than this is reported as
        /// `StageStalled` (10 s).
        stage_stall_timeout: Duration
    );

    /// Camera motion input (PTZ telemetry, egomotion) for `CameraMode::Observed` feeds;
    /// polled once per frame before the stages.
    pub fn view_provider(mut self, provider: Arc<dyn ViewStateProvider>) -> Self {
        self.view_provider = Some(provider);
        self
    }
    /// Decides continue/degrade/compensate/segment per observed frame; default
    /// `DefaultEpochPolicy`.
    pub fn epoch_policy(mut self, policy: Box<dyn EpochPolicy>) -> Self {
        self.epoch_policy = Some(policy);
        self
    }
    pub fn view_settings(mut self, settings: ViewSettings) -> Self {
        self.view_settings = Some(settings);
        self
    }
    /// Bounds of the feed's temporal store (tracks, observations, trajectory points).
    pub fn retention(mut self, policy: RetentionPolicy) -> Self {
        self.retention = Some(policy);
        self
    }

    /// Frames above this rate are skipped before the queue (sampling, not drops).
    pub fn max_fps(mut self, fps: f64) -> Self {
        self.max_fps = Some(fps);
        self
    }
    pub fn stage(mut self, stage: impl Stage) -> Self {
        self.stages.push(PipelineStep::Stage(Box::new(stage)));
        self
    }
    pub fn boxed_stage(mut self, stage: Box<dyn Stage>) -> Self {
        self.stages.push(PipelineStep::Stage(stage));
        self
    }
    pub fn stages(mut self, stages: Vec<Box<dyn Stage>>) -> Self {
        self.stages
            .extend(stages.into_iter().map(PipelineStep::Stage));
        self
    }
    /// The feed's batch point, at this position: stages added before it run before the
    /// batch, stages added after run after it. At most one per feed.
    pub fn batch(mut self, handle: BatchHandle) -> Self {
        self.stages.push(PipelineStep::Batch(handle));
        self
    }
    /// This feed's latency budget at the batch point (orders work under
    /// `BatchFairness::Deadline`); defaults to the batch's `max_latency`.
    pub fn batch_latency_budget(mut self, budget: Duration) -> Self {
        self.batch_latency_budget = Some(budget);
        self
    }
    pub fn pipeline(self, pipeline: StagePipeline) -> Self {
        self.stages(pipeline.into_stages())
    }
    pub fn output_sink(mut self, sink: impl OutputSink) -> Self {
        self.sink = Some(Box::new(sink));
        self
    }
    pub fn boxed_output_sink(mut self, sink: Box<dyn OutputSink>) -> Self {
        self.sink = Some(sink);
        self
    }
    pub fn sink_factory(mut self, factory: SinkFactory) -> Self {
        self.sink_factory = Some(factory);
        self
    }
    pub fn validation_mode(mut self, mode: ValidationMode) -> Self {
        self.validation = mode;
        self
    }

    /// Offline processing: the source blocks when the feed is behind and the sink queue
    /// blocks instead of dropping, so every frame yields exactly one output. The same as
    /// `backpressure(BackpressurePolicy::block(depth))` with the current (or default)
    /// depth; it also overrides an earlier [`sink_overflow`](Self::sink_overflow).
    pub fn lossless(mut self) -> Self {
        let depth = self.backpressure.map_or(4, BackpressurePolicy::queue_depth);
        self.backpressure = Some(BackpressurePolicy::block(depth));
        self.sink_overflow = Some(Overflow::Block);
        self
    }

    pub fn build(self) -> Result<FeedConfig, ConfigError> {
        let mut problems = Vec::new();
        if self.source.is_none() {
            problems.push(ConfigProblem::missing("source"));
        }
        match (self.camera_mode, self.view_provider.is_some()) {
            (None, _) => problems.push(ConfigProblem::missing("camera_mode")),
            (Some(CameraMode::Observed), false) => problems.push(ConfigProblem::invalid(
                "view_provider",
                "none",
                "camera_mode Observed needs a view provider (PTZ telemetry or motion estimate)",
            )),
            (Some(CameraMode::Fixed), true) => problems.push(ConfigProblem::invalid(
                "view_provider",
                "set",
                "camera_mode Fixed never moves; remove the provider or declare Observed",
            )),
            _ => {}
        }
        let retention = self.retention.unwrap_or_default();
        if let Err(e) = retention.validate() {
            problems.extend(e.problems);
        }
        let view_settings = self.view_settings.unwrap_or_default();
        if let Err(e) = view_settings.validate() {
            problems.extend(e.problems);
        }
        if self.sink.is_none() {
            problems.push(ConfigProblem::missing("output_sink"));
        }
        if self.stages.is_empty() {
            problems.push(ConfigProblem::missing("stages"));
        }
        let backpressure = self.backpressure.unwrap_or_default();
        if backpressure.queue_depth() == 0 {
            problems.push(ConfigProblem::invalid(
                "backpressure.queue_depth",
                0,
                "must be at least 1",
            ));
        }
        if self.sink_queue_capacity == Some(0) {
            problems.push(ConfigProblem::invalid(
                "sink_queue_capacity",
                0,
                "must be at least 1",
            ));
        }
        if let Some(fps) = self.max_fps {
            problems.extend(limits::fps("max_fps", fps));
        }
        problems.extend(limits::at_most(
            "backpressure.queue_depth",
            backpressure.queue_depth(),
            limits::MAX_QUEUE_DEPTH,
        ));
        if let Some(cap) = self.sink_queue_capacity {
            problems.extend(limits::at_most(
                "sink_queue_capacity",
                cap,
                limits::MAX_SINK_QUEUE_CAPACITY,
            ));
        }
        if let Some(source) = &self.source {
            problems.extend(source_problems(source));
        }
        for (field, value) in [
            ("startup_timeout", self.startup_timeout),
            ("stall_timeout", self.stall_timeout),
            ("health_throttle", self.health_throttle),
            ("stage_stall_timeout", self.stage_stall_timeout),
        ] {
            if value == Some(Duration::ZERO) {
                problems.push(ConfigProblem::invalid(field, "0s", "must be positive"));
            }
            if let Some(d) = value {
                problems.extend(limits::duration(field, d));
            }
        }
        let restart = self.restart.unwrap_or_default();
        if restart.restart_window.is_zero() && restart.max_restarts > 0 {
            problems.push(ConfigProblem::invalid(
                "restart.restart_window",
                "0s",
                "must be positive when restarts are allowed",
            ));
        }
        problems.extend(
            [
                limits::duration("restart.restart_window", restart.restart_window),
                limits::duration("restart.restart_delay", restart.restart_delay),
                limits::at_most(
                    "restart.max_restarts",
                    restart.max_restarts,
                    limits::MAX_RESTARTS,
                ),
                limits::duration(
                    "sink_shutdown_timeout",
                    self.sink_shutdown_timeout.unwrap_or_default(),
                ),
            ]
            .into_iter()
            .flatten(),
        );
        let reconnect = self.reconnect.unwrap_or_default();
        problems.extend(
            [
                limits::duration("reconnect.base_delay", reconnect.base_delay),
                limits::duration("reconnect.max_delay", reconnect.max_delay),
            ]
            .into_iter()
            .flatten(),
        );
        if reconnect.base_delay > reconnect.max_delay {
            problems.push(ConfigProblem::invalid(
                "reconnect.base_delay",
                format!("{} ms", reconnect.base_delay.as_millis()),
                format!(
                    "must not exceed reconnect.max_delay ({} ms)",
                    reconnect.max_delay.as_millis()
                ),
            ));
        }
        if !(0.0..=1.0).contains(&reconnect.jitter_ratio) {
            problems.push(ConfigProblem::invalid(
                "reconnect.jitter_ratio",
                reconnect.jitter_ratio,
                "must be within [0, 1]",
            ));
        }
        if self
            .stages
            .iter()
            .filter(|s| matches!(s, PipelineStep::Batch(_)))
            .count()
            > 1
        {
            problems.push(ConfigProblem::invalid(
                "batch",
                "2 or more",
                "a feed has at most one batch point",
            ));
        }
        if self.validation != ValidationMode::Off {
            let caps = self.stages.iter().map(|s| match s {
                PipelineStep::Stage(st) => (st.id(), st.capabilities()),
                PipelineStep::Batch(b) => (b.processor_id(), b.coordinator.capabilities),
            });
            for warning in validate_capabilities(caps) {
                match self.validation {
                    ValidationMode::Error => problems.push(ConfigProblem::invalid(
                        "stages",
                        warning.to_string(),
                        "invalid stage order",
                    )),
                    _ => tracing::warn!(%warning, "stage pipeline validation"),
                }
            }
        }
        ConfigError::check(problems)?;
        let (Some(source), Some(camera_mode), Some(sink)) =
            (self.source, self.camera_mode, self.sink)
        else {
            // Unreachable: each missing field was reported above.
            return Err(ConfigError::single(ConfigProblem::missing("source")));
        };
        Ok(FeedConfig {
            name: self.name,
            class_names: self.class_names,
            source,
            camera_mode,
            stages: self.stages,
            batch_latency_budget: self.batch_latency_budget,
            view_provider: self.view_provider,
            epoch_policy: self.epoch_policy,
            view_settings,
            retention,
            sink,
            sink_factory: self.sink_factory,
            backpressure,
            sink_queue_capacity: self.sink_queue_capacity.unwrap_or(16),
            sink_overflow: self.sink_overflow.unwrap_or(if backpressure.is_lossless() {
                Overflow::Block
            } else {
                Overflow::DropNewest
            }),
            sink_shutdown_timeout: self.sink_shutdown_timeout.unwrap_or(Duration::from_secs(5)),
            restart,
            reconnect,
            frame_inclusion: self.frame_inclusion.unwrap_or_default(),
            decode: self.decode.unwrap_or_default(),
            output_format: self.output_format.unwrap_or_default(),
            max_fps: self.max_fps,
            startup_timeout: self.startup_timeout.unwrap_or(Duration::from_secs(10)),
            stall_timeout: self.stall_timeout.unwrap_or(Duration::from_secs(10)),
            frame_lag_threshold: self.frame_lag_threshold.unwrap_or(Duration::from_secs(2)),
            health_throttle: self.health_throttle.unwrap_or(DEFAULT_THROTTLE_WINDOW),
            stage_stall_timeout: self.stage_stall_timeout.unwrap_or(Duration::from_secs(10)),
        })
    }
}

/// Network sources must parse by nv-core's one URL rule (a host is required; the problem
/// shows the URL redacted); generated sources stay within the frame-size and rate limits.
fn source_problems(source: &SourceSpec) -> Vec<ConfigProblem> {
    if let SourceSpec::Synthetic(s) = source {
        let side = 1..=limits::MAX_FRAME_SIDE_PX;
        let mut problems: Vec<ConfigProblem> =
            [("source.width", s.width), ("source.height", s.height)]
                .into_iter()
                .filter(|(_, v)| !side.contains(v))
                .map(|(field, v)| {
                    ConfigProblem::invalid(
                        field,
                        v,
                        format!("must be within 1..={}", limits::MAX_FRAME_SIDE_PX),
                    )
                })
                .collect();
        problems.extend(s.fps.and_then(|f| limits::fps("source.fps", f)));
        problems.extend(limits::at_most(
            "source.moving_objects",
            s.moving_objects,
            limits::MAX_SYNTHETIC_OBJECTS,
        ));
        return problems;
    }
    source_url_problem(source).into_iter().collect()
}

fn source_url_problem(source: &SourceSpec) -> Option<ConfigProblem> {
    let url = match source {
        SourceSpec::Rtsp { url, .. } => url,
        SourceSpec::Uri { uri } => {
            let lower = uri.to_ascii_lowercase();
            let needs_host = ["rtsp://", "rtsps://", "http://", "https://"]
                .iter()
                .any(|p| lower.starts_with(p));
            if !needs_host {
                return None;
            }
            uri
        }
        _ => return None,
    };
    if url.len() > limits::MAX_SOURCE_BYTES {
        return Some(ConfigProblem::invalid(
            "source",
            format_args!("{} bytes", url.len()),
            format!("must be at most {} bytes", limits::MAX_SOURCE_BYTES),
        ));
    }
    nv_core::url::SourceUrl::parse(url)
        .err()
        .map(|e| ConfigProblem::invalid("source", source.redacted(), e.to_string()))
}
