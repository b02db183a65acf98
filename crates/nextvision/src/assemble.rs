//! Turning a validated [`Config`] into a running runtime.

use std::time::Duration;

use anyhow::Context as _;
use nv_core::error::ConfigError;
use nv_core::policy::{
    BackoffKind, BackpressurePolicy, ReconnectPolicy, RestartPolicy, RestartTrigger,
};
use nv_core::source::CustomPipelinePolicy;
use nv_perception::Stage;
use nv_runtime::{
    CameraMode, FeedConfig, FrameInclusion, OutputSink, Runtime, Scheduler, SinkFactory,
};

use crate::config::FeedSpec;
use crate::config::{Config, RestartOn, SchedulerName};
use crate::registry;
use crate::sinks::SinkSet;

fn secs(s: f64) -> Duration {
    nv_core::limits::saturating_secs(s)
}

/// Files are lossless unless told otherwise (nothing is live, so nothing needs to be
/// dropped to keep up); live sources drop the oldest frame by default.
pub fn is_lossless(spec: &FeedSpec) -> bool {
    let f = &spec.section;
    f.lossless.unwrap_or(
        matches!(spec.source, nv_core::source::SourceSpec::File { .. }) && f.backpressure.is_none(),
    )
}

/// Builds a feed's runtime configuration around `stages` (built by the caller, once).
/// Validation passes none: the runtime's builder then checks everything else and its
/// complaint about the missing stages is ignored.
pub fn feed_config(
    spec: &FeedSpec,
    stages: Vec<Box<dyn Stage>>,
    sink: Box<dyn OutputSink>,
    sink_factory: Option<SinkFactory>,
) -> Result<FeedConfig, ConfigError> {
    let f = &spec.section;
    let mut b = FeedConfig::builder()
        .name(f.name.clone())
        .source(spec.source.clone())
        .camera_mode(CameraMode::Fixed)
        .decode(spec.decode())
        // A stage that needs detections with none produced before it is a config error.
        .validation_mode(nv_perception::ValidationMode::Error)
        .boxed_output_sink(sink);
    let (class_names, _checked_by_validation) = nv_stages::feed_class_names(&spec.stages);
    if !class_names.is_empty() {
        b = b.class_names(std::sync::Arc::new(class_names));
    }
    if let Some(factory) = sink_factory {
        b = b.sink_factory(factory);
    }
    for stage in stages {
        b = b.boxed_stage(stage);
    }
    let depth = f.queue_depth;
    b = b.backpressure(BackpressurePolicy::new(
        f.backpressure
            .unwrap_or(nv_core::policy::Overflow::DropOldest),
        depth,
    ));
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
    b.build()
}

/// Builds a feed's stages: the one time they are constructed (a model detector loads its
/// model here, not during validation). A `zones` stage registers its editor in `editors`
/// under the feed's name (run-time edits through the API).
pub fn stages(
    spec: &FeedSpec,
    editors: &crate::zone_edit::ZoneEditors,
) -> anyhow::Result<Vec<Box<dyn Stage>>> {
    let name = &spec.section.name;
    let mut out = Vec::with_capacity(spec.stages.len());
    for s in &spec.stages {
        let stage = match s {
            nv_stages::StageConfig::Zones(c) => {
                s.validate()
                    .with_context(|| format!("feed {name}: stage zones"))?;
                let z = nv_stages::ZoneAnalytics::new(c.to_config())
                    .with_context(|| format!("feed {name}: stage zones"))?;
                editors.register(name, z.editor());
                Box::new(z) as Box<dyn Stage>
            }
            other => registry::build_stages(std::slice::from_ref(other))
                .map_err(anyhow::Error::msg)
                .with_context(|| format!("feed {name}: stages"))?
                .into_iter()
                .next()
                .context("stage not built")?,
        };
        out.push(stage);
    }
    Ok(out)
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
    let builder = match rt.scheduler {
        // Unset: the runtime's default (which a test suite may pick with NV_TEST_SCHEDULER).
        None if rt.pool_threads == 0 => builder,
        None | Some(SchedulerName::Pool) => builder.scheduler(Scheduler::Pool {
            threads: rt.pool_threads,
        }),
        Some(SchedulerName::ThreadPerFeed) => builder.scheduler(Scheduler::ThreadPerFeed),
    };
    let builder = crate::media::register(builder);
    builder.build().context("runtime configuration")
}

/// Adds every configured feed; returns the handles. Feeds naming the same sink share
/// its one instance in `sinks`.
pub fn add_feeds(
    runtime: &Runtime,
    config: &Config,
    sinks: &SinkSet,
    editors: &crate::zone_edit::ZoneEditors,
) -> anyhow::Result<Vec<nv_runtime::FeedHandle>> {
    let mut handles = Vec::new();
    for spec in &config.feeds {
        let (sink, factory) = sinks.feed_sink(spec)?;
        let fc = feed_config(spec, stages(spec, editors)?, sink, Some(factory))
            .with_context(|| format!("feed {}", spec.section.name))?;
        let handle = runtime
            .add_feed(fc)
            .with_context(|| format!("adding feed {}", spec.section.name))?;
        handles.push(handle);
    }
    Ok(handles)
}

/// Checks a feed definition sent to the API (same schema as a `[[feeds]]` table).
/// `name_taken` says whether a running feed already has the name.
pub fn feed_from_json(
    config: &Config,
    json: serde_json::Value,
    name_taken: &dyn Fn(&str) -> bool,
) -> Result<FeedSpec, Vec<String>> {
    let redacted = |e: &dyn std::fmt::Display| {
        vec![format!(
            "feed: {}",
            nv_core::security::redact_urls_in_string(&e.to_string())
        )]
    };
    if !json.is_object() {
        return Err(vec!["feed: must be a JSON object".into()]);
    }
    let value: toml::Value = serde_json::from_value(json).map_err(|e| redacted(&e))?;
    // Through TOML text so the API and the file share one checker (positions unused).
    let text = toml::to_string(&value).map_err(|e| redacted(&e))?;
    let doc = toml::de::DeTable::parse(&text).map_err(|e| redacted(&e.message()))?;
    let root = toml::Spanned::new(0..text.len(), toml::de::DeValue::Table(doc.into_inner()));
    let mut checker = crate::config::Checker::detached();
    let ctx = crate::config::FeedContext { config, name_taken };
    let spec = crate::config::check_feed(&mut checker, &root, &[], config.feeds.len(), &ctx);
    match spec {
        Some(spec) if checker.problems.is_empty() => Ok(spec),
        _ => Err(checker
            .problems
            .iter()
            .map(|p| format!("{}: {}", p.path, p.message))
            .collect()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        reason = "test code: a failed unwrap is a failed test"
    )]

    use crate::config::{parse, EnvMode};

    fn pool_threads_of(runtime_section: &str) -> usize {
        let config = parse(runtime_section, EnvMode::Resolve).unwrap();
        let rt = super::runtime(&config).unwrap();
        let threads = rt.diagnostics().pool_threads;
        rt.shutdown();
        threads
    }

    #[test]
    fn the_scheduler_keys_pick_the_runtime_scheduler() {
        assert_eq!(pool_threads_of("[runtime]\npool_threads = 3\n"), 3);
        assert_eq!(
            pool_threads_of("[runtime]\nscheduler = \"pool\"\npool_threads = 1\n"),
            1
        );
        assert_eq!(
            pool_threads_of("[runtime]\nscheduler = \"thread_per_feed\"\n"),
            0,
            "no pool"
        );
    }
}
