//! Turning a validated [`Config`] into a running runtime.

use std::time::Duration;

use anyhow::Context as _;
use nv_core::error::{ConfigError, ConfigProblem};
use nv_core::policy::{
    BackoffKind, BackpressurePolicy, ReconnectPolicy, RestartPolicy, RestartTrigger,
};
use nv_core::source::CustomPipelinePolicy;
use nv_runtime::{CameraMode, FeedConfig, FrameInclusion, OutputSink, Runtime, SharedOutput};

use crate::config::FeedSpec;
use crate::config::{BackpressureKind, Config, RestartOn};
use crate::registry;

fn secs(s: f64) -> Duration {
    Duration::try_from_secs_f64(s).unwrap_or(Duration::ZERO)
}

/// Delivers each output to several sinks in turn (on the feed's sink thread).
struct FanOut(Vec<Box<dyn OutputSink>>);

impl OutputSink for FanOut {
    fn emit(&mut self, output: SharedOutput) {
        for s in &mut self.0 {
            s.emit(output.clone());
        }
    }
    fn flush(&mut self) {
        for s in &mut self.0 {
            s.flush();
        }
    }
}

/// Files are lossless unless told otherwise (nothing is live, so nothing needs to be
/// dropped to keep up); live sources drop the oldest frame by default.
pub fn is_lossless(spec: &FeedSpec) -> bool {
    let f = &spec.section;
    f.lossless.unwrap_or(
        matches!(spec.source, nv_core::source::SourceSpec::File { .. }) && f.backpressure.is_none(),
    )
}

/// Builds a feed's runtime configuration. `offline` skips nothing today but marks the
/// validation path (no devices are touched either way).
pub fn feed_config(
    spec: &FeedSpec,
    sink: Box<dyn OutputSink>,
    _offline: bool,
) -> Result<FeedConfig, ConfigError> {
    let f = &spec.section;
    let mut b = FeedConfig::builder()
        .name(f.name.clone())
        .source(spec.source.clone())
        .camera_mode(CameraMode::Fixed)
        .decode(spec.decode())
        .boxed_output_sink(sink);
    let mut stage_problems = Vec::new();
    for s in &spec.stages {
        match registry::build_stage(&s.kind, &s.params) {
            Ok(stage) => b = b.boxed_stage(stage),
            Err(e) => stage_problems.push(ConfigProblem::invalid("stages", &s.kind, e)),
        }
    }
    let depth = f.queue_depth;
    b = b.backpressure(
        match f.backpressure.unwrap_or(BackpressureKind::DropOldest) {
            BackpressureKind::DropOldest => BackpressurePolicy::DropOldest { queue_depth: depth },
            BackpressureKind::DropNewest => BackpressurePolicy::DropNewest { queue_depth: depth },
            BackpressureKind::Block => BackpressurePolicy::Block { queue_depth: depth },
        },
    );
    if is_lossless(spec) {
        b = b.lossless();
    }
    if let Some(fps) = f.max_fps {
        b = b.max_fps(fps);
    }
    if let Some(cap) = f.sink_queue_capacity {
        b = b.sink_queue_capacity(cap);
    }
    if let Some(fps) = f.snapshot_fps.filter(|v| *v > 0.0) {
        b = b.frame_inclusion(FrameInclusion::target_fps(fps, 30));
    }
    if let Some(s) = f.startup_timeout_secs {
        b = b.startup_timeout(secs(s));
    }
    if let Some(s) = f.stall_timeout_secs {
        b = b.stall_timeout(secs(s));
    }
    if let Some(s) = f.stage_stall_timeout_secs {
        b = b.stage_stall_timeout(secs(s));
    }
    let r = &f.restart;
    b = b.restart(
        RestartPolicy::default()
            .with_max_restarts(r.max_restarts)
            .with_restart_window(secs(r.window_secs))
            .with_restart_delay(secs(r.delay_secs))
            .with_restart_on(match r.on {
                RestartOn::SourceFailure => RestartTrigger::SourceFailure,
                RestartOn::SourceOrStagePanic => RestartTrigger::SourceOrStagePanic,
                RestartOn::Never => RestartTrigger::Never,
            }),
    );
    let rc = &f.reconnect;
    b = b.reconnect(
        ReconnectPolicy::default()
            .with_max_attempts((rc.max_attempts > 0).then_some(rc.max_attempts))
            .with_delays(
                Duration::from_millis(rc.base_delay_ms),
                Duration::from_millis(rc.max_delay_ms),
            )
            .with_backoff(if rc.linear {
                BackoffKind::Linear
            } else {
                BackoffKind::Exponential
            })
            .with_jitter_ratio(rc.jitter)
            .with_access_denied_delay(secs(rc.access_denied_delay_secs)),
    );
    let built = b.build();
    match (built, stage_problems.is_empty()) {
        (Ok(c), true) => Ok(c),
        (Ok(_), false) => Err(ConfigError {
            problems: stage_problems,
        }),
        (Err(mut e), _) => {
            e.problems.extend(stage_problems);
            Err(e)
        }
    }
}

/// The sinks of one feed plus their counters (by sink name) for the sink monitor.
pub type FeedSinks = (Box<dyn OutputSink>, Vec<(String, nv_sinks::SinkStats)>);

/// Builds the sinks a feed names (none = a null sink).
pub fn feed_sink(config: &Config, spec: &FeedSpec) -> anyhow::Result<FeedSinks> {
    let mut sinks = Vec::new();
    let mut stats = Vec::new();
    for name in &spec.section.sinks {
        let decl = config
            .sinks
            .iter()
            .find(|s| &s.name == name)
            .with_context(|| format!("unknown sink {name}"))?;
        let s = nv_sinks::SinkStats::new();
        sinks.push(
            registry::build_sink(&decl.kind, &decl.params, s.clone())
                .map_err(anyhow::Error::msg)?,
        );
        stats.push((name.clone(), s));
    }
    let sink: Box<dyn OutputSink> = match sinks.len() {
        0 => Box::new(nv_runtime::NullSink),
        1 => sinks.remove(0),
        _ => Box::new(FanOut(sinks)),
    };
    Ok((sink, stats))
}

/// A runtime with the configured limits and every available source factory.
pub fn runtime(config: &Config) -> anyhow::Result<Runtime> {
    let rt = &config.runtime;
    let builder = Runtime::builder()
        .max_feeds(rt.max_feeds)
        .health_capacity(rt.health_capacity)
        .output_capacity(rt.output_capacity)
        .feed_join_timeout(secs(rt.feed_join_timeout_secs))
        .custom_pipeline_policy(if rt.allow_custom_pipelines {
            CustomPipelinePolicy::AllowTrusted
        } else {
            CustomPipelinePolicy::Reject
        });
    let builder = crate::media::register(builder);
    builder.build().context("runtime configuration")
}

/// Adds every configured feed; returns the handles. Sink counters go to `monitor`.
pub fn add_feeds(
    runtime: &Runtime,
    config: &Config,
    monitor: &crate::sink_monitor::SinkMonitor,
) -> anyhow::Result<Vec<nv_runtime::FeedHandle>> {
    let mut handles = Vec::new();
    for spec in &config.feeds {
        let (sink, stats) = feed_sink(config, spec)?;
        let fc = feed_config(spec, sink, false)
            .with_context(|| format!("feed {}", spec.section.name))?;
        let handle = runtime
            .add_feed(fc)
            .with_context(|| format!("adding feed {}", spec.section.name))?;
        monitor.watch(handle.id(), stats);
        handles.push(handle);
    }
    Ok(handles)
}

/// Checks a feed definition sent to the API (same schema as a `[[feeds]]` table).
pub fn feed_from_json(config: &Config, json: serde_json::Value) -> Result<FeedSpec, Vec<String>> {
    let value: toml::Value =
        serde_json::from_value(json).map_err(|e| vec![format!("feed: {e}")])?;
    let mut checker = crate::config::Checker {
        text: "",
        problems: Vec::new(),
    };
    let spec =
        crate::config::check_feed(&mut checker, value, 0, &(0..0), config.feeds.len(), config);
    match spec {
        Some(spec) if checker.problems.is_empty() => Ok(spec),
        _ => Err(checker
            .problems
            .iter()
            .map(|p| format!("{}: {}", p.path, p.message))
            .collect()),
    }
}
