//! Typed sections and whole-document validation.

use std::net::SocketAddr;

use nv_core::source::{DecodePreference, SourceSpec};
use serde::Deserialize;
use toml::{Spanned, Table, Value};

use super::env::interpolate;
use super::{line_of, Checker, EnvMode, Problem};
use crate::registry;

fn d_max_feeds() -> usize {
    64
}
fn d_health() -> usize {
    1024
}
fn d_output() -> usize {
    256
}
fn d_join_secs() -> f64 {
    10.0
}
fn d_true() -> bool {
    true
}
fn d_listen() -> String {
    "127.0.0.1:8080".into()
}
fn d_queue_depth() -> usize {
    4
}

/// `[runtime]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeSection {
    #[serde(default = "d_max_feeds")]
    pub max_feeds: usize,
    #[serde(default = "d_health")]
    pub health_capacity: usize,
    #[serde(default = "d_output")]
    pub output_capacity: usize,
    #[serde(default = "d_join_secs")]
    pub feed_join_timeout_secs: f64,
    /// Accept `custom` GStreamer pipeline fragments (the operator vouches for them).
    #[serde(default)]
    pub allow_custom_pipelines: bool,
}

impl Default for RuntimeSection {
    fn default() -> Self {
        Self {
            max_feeds: d_max_feeds(),
            health_capacity: d_health(),
            output_capacity: d_output(),
            feed_join_timeout_secs: d_join_secs(),
            allow_custom_pipelines: false,
        }
    }
}

/// `[api]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSection {
    #[serde(default = "d_true")]
    pub enabled: bool,
    /// Loopback by default; binding elsewhere is an explicit choice.
    #[serde(default = "d_listen")]
    pub listen: String,
    /// When set, every endpoint but `/healthz` and `/readyz` needs `Authorization: Bearer`.
    #[serde(default)]
    pub bearer_token: Option<String>,
}

impl Default for ApiSection {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: d_listen(),
            bearer_token: None,
        }
    }
}

/// `[metrics]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSection {
    /// Serve `/metrics` in Prometheus text format on the API listener.
    #[serde(default = "d_true")]
    pub prometheus: bool,
    /// Push metrics to an OpenTelemetry collector (OTLP/HTTP JSON), e.g.
    /// `http://127.0.0.1:4318`.
    #[serde(default)]
    pub otlp_endpoint: Option<String>,
    #[serde(default = "d_otlp_interval")]
    pub otlp_interval_secs: f64,
    #[serde(default = "d_service")]
    pub service_name: String,
}

fn d_otlp_interval() -> f64 {
    10.0
}
fn d_service() -> String {
    "nextvision".into()
}

impl Default for MetricsSection {
    fn default() -> Self {
        Self {
            prometheus: true,
            otlp_endpoint: None,
            otlp_interval_secs: d_otlp_interval(),
            service_name: d_service(),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum BackpressureKind {
    #[default]
    DropOldest,
    DropNewest,
    Block,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CameraKind {
    #[default]
    Fixed,
    Observed,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DecodeKind {
    #[default]
    Auto,
    CpuOnly,
    PreferHardware,
    RequireHardware,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RestartOn {
    SourceFailure,
    #[default]
    SourceOrStagePanic,
    Never,
}

/// `[feeds.restart]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestartSection {
    #[serde(default = "d_restarts")]
    pub max_restarts: u32,
    #[serde(default = "d_window")]
    pub window_secs: f64,
    #[serde(default = "d_delay")]
    pub delay_secs: f64,
    #[serde(default)]
    pub on: RestartOn,
}
fn d_restarts() -> u32 {
    5
}
fn d_window() -> f64 {
    300.0
}
fn d_delay() -> f64 {
    2.0
}
impl Default for RestartSection {
    fn default() -> Self {
        Self {
            max_restarts: d_restarts(),
            window_secs: d_window(),
            delay_secs: d_delay(),
            on: RestartOn::default(),
        }
    }
}

/// `[feeds.reconnect]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconnectSection {
    /// 0 retries forever.
    #[serde(default)]
    pub max_attempts: u32,
    #[serde(default = "d_base_ms")]
    pub base_delay_ms: u64,
    #[serde(default = "d_max_ms")]
    pub max_delay_ms: u64,
    #[serde(default)]
    pub linear: bool,
    #[serde(default = "d_jitter")]
    pub jitter: f64,
}
fn d_base_ms() -> u64 {
    1000
}
fn d_max_ms() -> u64 {
    30_000
}
fn d_jitter() -> f64 {
    0.1
}
impl Default for ReconnectSection {
    fn default() -> Self {
        Self {
            max_attempts: 0,
            base_delay_ms: d_base_ms(),
            max_delay_ms: d_max_ms(),
            linear: false,
            jitter: d_jitter(),
        }
    }
}

/// `[[feeds]]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedSection {
    pub name: String,
    /// `rtsp://…`, `rtsps://…`, `http(s)://…`, a file path, `v4l2:/dev/videoN`,
    /// `test:PATTERN`, `synthetic:WxH[@FPS][:FORMAT]`.
    #[serde(default)]
    pub source: Option<String>,
    /// A trusted GStreamer fragment instead of `source` (needs `allow_custom_pipelines`).
    #[serde(default)]
    pub pipeline: Option<String>,
    #[serde(default)]
    pub camera: CameraKind,
    #[serde(default, rename = "loop")]
    pub looping: bool,
    /// Play files at their own frame rate instead of as fast as decode allows.
    #[serde(default)]
    pub real_time: bool,
    #[serde(default)]
    pub rtsp_udp: bool,
    #[serde(default)]
    pub backpressure: BackpressureKind,
    #[serde(default = "d_queue_depth")]
    pub queue_depth: usize,
    /// Block instead of dropping at both queues: one output per frame.
    #[serde(default)]
    pub lossless: bool,
    #[serde(default)]
    pub max_fps: Option<f64>,
    #[serde(default)]
    pub decode: DecodeKind,
    /// Names of `[[sinks]]` that receive this feed's outputs.
    #[serde(default)]
    pub sinks: Vec<String>,
    #[serde(default)]
    pub sink_queue_capacity: Option<usize>,
    /// Frames per second attached to outputs for API snapshots (0 = none).
    #[serde(default)]
    pub snapshot_fps: Option<f64>,
    #[serde(default)]
    pub startup_timeout_secs: Option<f64>,
    #[serde(default)]
    pub stall_timeout_secs: Option<f64>,
    /// Report a stage stuck in one call this long (`stage_stalled` event).
    #[serde(default)]
    pub stage_stall_timeout_secs: Option<f64>,
    #[serde(default)]
    pub restart: RestartSection,
    #[serde(default)]
    pub reconnect: ReconnectSection,
    /// Stages in order; each is a table with `kind` plus that stage's parameters.
    #[serde(default)]
    pub stages: Vec<Table>,
}

/// A sink declaration: name, kind and parameters.
#[derive(Clone, Debug)]
pub struct SinkSection {
    pub name: String,
    pub kind: String,
    pub params: Table,
}

/// A checked feed.
#[derive(Clone, Debug)]
pub struct FeedSpec {
    pub section: FeedSection,
    pub source: SourceSpec,
    /// Parsed and validated; built (once) when the feed is added.
    pub stages: Vec<nv_stages::StageConfig>,
}

impl FeedSpec {
    pub fn decode(&self) -> DecodePreference {
        match self.section.decode {
            DecodeKind::Auto => DecodePreference::Auto,
            DecodeKind::CpuOnly => DecodePreference::CpuOnly,
            DecodeKind::PreferHardware => DecodePreference::PreferHardware,
            DecodeKind::RequireHardware => DecodePreference::RequireHardware,
        }
    }
}

/// A validated configuration.
#[derive(Clone, Debug, Default)]
pub struct Config {
    pub runtime: RuntimeSection,
    pub api: ApiSection,
    pub metrics: MetricsSection,
    pub sinks: Vec<SinkSection>,
    pub feeds: Vec<FeedSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDoc {
    runtime: Option<Spanned<Table>>,
    api: Option<Spanned<Table>>,
    metrics: Option<Spanned<Table>>,
    #[serde(default)]
    sinks: Vec<Spanned<Table>>,
    #[serde(default)]
    feeds: Vec<Spanned<Table>>,
}

/// Resolves `${VAR}` in every string of `value`.
fn resolve_env(value: &mut Value, env: EnvMode, line: usize, path: &str, c: &mut Checker<'_>) {
    match value {
        Value::String(s) => {
            let lookup = |name: &str| match env {
                EnvMode::Resolve => std::env::var(name).ok(),
                EnvMode::Ignore => Some(format!("${{{name}}}")),
            };
            match interpolate(s, &lookup) {
                Ok(v) => *s = v,
                Err(errs) => {
                    for e in errs {
                        c.push(Some(line), path, e);
                    }
                }
            }
        }
        Value::Array(items) => {
            for v in items {
                resolve_env(v, env, line, path, c);
            }
        }
        Value::Table(t) => {
            for (k, v) in t.iter_mut() {
                resolve_env(v, env, line, &format!("{path}.{k}"), c);
            }
        }
        _ => {}
    }
}

fn take_string(t: &mut Table, key: &str) -> Option<String> {
    match t.remove(key) {
        Some(Value::String(s)) => Some(s),
        _ => None,
    }
}

/// Section tables get their line from their span; problems with a known key are placed on
/// that key's line.
fn section(
    c: &mut Checker<'_>,
    raw: Spanned<Table>,
    env: EnvMode,
    path: &str,
) -> (Value, usize, std::ops::Range<usize>) {
    let span = raw.span();
    let line = line_of(c.text, span.start);
    let mut v = Value::Table(raw.into_inner());
    resolve_env(&mut v, env, line, path, c);
    (v, line, span)
}

/// The line of `field`'s key (last dotted segment) within `span`, else `fallback`.
fn field_line(
    c: &Checker<'_>,
    span: &std::ops::Range<usize>,
    base: &str,
    field: &str,
    fallback: usize,
) -> usize {
    let key = field.rsplit('.').next().unwrap_or(field);
    super::key_line(c.text, span.start, base, key).unwrap_or(fallback)
}

pub(super) fn parse(text: &str, env: EnvMode) -> Result<Config, Vec<Problem>> {
    let mut c = Checker {
        text,
        problems: Vec::new(),
    };
    let raw: RawDoc = match toml::from_str(text) {
        Ok(r) => r,
        Err(e) => {
            let line = e.span().map(|s| line_of(text, s.start));
            c.push(line, "document", e.message().to_owned());
            return Err(c.problems);
        }
    };
    let mut config = Config::default();
    if let Some(r) = raw.runtime {
        let (v, line, span) = section(&mut c, r, env, "runtime");
        if let Some(rt) = c.typed::<RuntimeSection>(v, line, "runtime") {
            for (field, ok) in [
                ("max_feeds", rt.max_feeds >= 1),
                ("health_capacity", rt.health_capacity >= 1),
                ("output_capacity", rt.output_capacity >= 1),
                (
                    "feed_join_timeout_secs",
                    rt.feed_join_timeout_secs.is_finite() && rt.feed_join_timeout_secs > 0.0,
                ),
            ] {
                if !ok {
                    let l = field_line(&c, &span, "runtime", field, line);
                    c.push(Some(l), format!("runtime.{field}"), "must be positive");
                }
            }
            config.runtime = rt;
        }
    }
    if let Some(a) = raw.api {
        let (v, line, span) = section(&mut c, a, env, "api");
        if let Some(api) = c.typed::<ApiSection>(v, line, "api") {
            if api.listen.parse::<SocketAddr>().is_err() {
                let l = field_line(&c, &span, "api", "listen", line);
                c.push(
                    Some(l),
                    "api.listen",
                    format!("`{}` is not an address like 127.0.0.1:8080", api.listen),
                );
            }
            if api.bearer_token.as_ref().is_some_and(|t| t.len() < 16) {
                let l = field_line(&c, &span, "api", "bearer_token", line);
                c.push(
                    Some(l),
                    "api.bearer_token",
                    "must be at least 16 characters",
                );
            }
            config.api = api;
        }
    }
    if let Some(m) = raw.metrics {
        let (v, line, _) = section(&mut c, m, env, "metrics");
        if let Some(metrics) = c.typed::<MetricsSection>(v, line, "metrics") {
            if let Some(ep) = &metrics.otlp_endpoint {
                if !(ep.starts_with("http://") || ep.starts_with("https://")) {
                    c.push(
                        Some(line),
                        "metrics.otlp_endpoint",
                        format!(
                            "`{}` must be an http(s) URL",
                            nv_core::security::redact_url(ep)
                        ),
                    );
                }
            }
            if !(metrics.otlp_interval_secs.is_finite() && metrics.otlp_interval_secs >= 1.0) {
                c.push(
                    Some(line),
                    "metrics.otlp_interval_secs",
                    "must be at least 1",
                );
            }
            config.metrics = metrics;
        }
    }
    for (i, s) in raw.sinks.into_iter().enumerate() {
        let (v, line, _) = section(&mut c, s, env, &format!("sinks[{i}]"));
        let Value::Table(mut t) = v else { continue };
        let name = take_string(&mut t, "name");
        let kind = take_string(&mut t, "kind");
        let path = format!("sinks[{}]", name.as_deref().unwrap_or(&i.to_string()));
        match (name, kind) {
            (Some(name), Some(kind)) => {
                if config.sinks.iter().any(|s| s.name == name) {
                    c.push(Some(line), &path, format!("duplicate sink name `{name}`"));
                }
                if let Err(e) = registry::check_sink(&kind, &t) {
                    c.push(Some(line), &path, e);
                }
                config.sinks.push(SinkSection {
                    name,
                    kind,
                    params: t,
                });
            }
            (None, _) => c.push(Some(line), path, "missing `name`"),
            (_, None) => c.push(Some(line), path, "missing `kind`"),
        }
    }
    for (i, f) in raw.feeds.into_iter().enumerate() {
        let (v, line, span) = section(&mut c, f, env, &format!("feeds[{i}]"));
        if let Some(spec) = check_feed(&mut c, v, line, &span, i, &config) {
            config.feeds.push(spec);
        }
    }
    if c.problems.is_empty() {
        Ok(config)
    } else {
        Err(c.problems)
    }
}

/// Checks one feed table (from the file, or from the API as JSON). Problems go to `c`.
pub(crate) fn check_feed(
    c: &mut Checker<'_>,
    v: Value,
    line: usize,
    span: &std::ops::Range<usize>,
    i: usize,
    config: &Config,
) -> Option<FeedSpec> {
    let name = v
        .get("name")
        .and_then(Value::as_str)
        .map_or_else(|| i.to_string(), str::to_owned);
    let path = format!("feeds[{name}]");
    let section = c.typed::<FeedSection>(v, line, &path)?;
    if config.feeds.iter().any(|f| f.section.name == section.name) {
        c.push(
            Some(line),
            &path,
            format!("duplicate feed name `{}`", section.name),
        );
    }
    let source = match (&section.source, &section.pipeline) {
        (Some(raw), None) => {
            match super::parse_source(raw, section.looping, section.real_time, section.rtsp_udp) {
                Ok(s) => Some(s),
                Err(e) => {
                    let l = field_line(c, span, "feeds", "source", line);
                    c.push(Some(l), format!("{path}.source"), e);
                    None
                }
            }
        }
        (None, Some(fragment)) => {
            if !config.runtime.allow_custom_pipelines {
                c.push(
                    Some(line),
                    format!("{path}.pipeline"),
                    "custom pipelines need runtime.allow_custom_pipelines = true",
                );
            }
            Some(SourceSpec::Custom {
                pipeline_fragment: fragment.clone(),
            })
        }
        (Some(_), Some(_)) => {
            c.push(
                Some(line),
                &path,
                "set either `source` or `pipeline`, not both",
            );
            None
        }
        (None, None) => {
            c.push(Some(line), &path, "missing `source`");
            None
        }
    };
    if section.camera == CameraKind::Observed {
        c.push(Some(line), format!("{path}.camera"), "observed cameras need a view provider, which config files cannot declare yet; use the library API");
    }
    for s in &section.sinks {
        if !config.sinks.iter().any(|k| &k.name == s) {
            c.push(
                Some(line),
                format!("{path}.sinks"),
                format!("unknown sink `{s}` (declare it under [[sinks]])"),
            );
        }
    }
    let mut stages = Vec::new();
    for (j, st) in section.stages.iter().enumerate() {
        let mut params = st.clone();
        match take_string(&mut params, "kind") {
            Some(kind) => match registry::parse_stage(&kind, &params) {
                Ok(s) => stages.push(s),
                Err(e) => c.push(Some(line), format!("{path}.stages[{j}]"), e),
            },
            None => c.push(Some(line), format!("{path}.stages[{j}]"), "missing `kind`"),
        }
    }
    // Order rules only mean something when every stage parsed.
    let checked = if stages.len() == section.stages.len() {
        nv_stages::validate_pipeline(&stages)
    } else {
        nv_core::error::ConfigError::check(
            stages
                .iter()
                .filter_map(|s| s.validate().err())
                .flat_map(|e| e.problems)
                .collect(),
        )
    };
    if let Err(e) = checked {
        for p in e.problems {
            let message = match &p.value {
                Some(v) => format!("`{v}` {}", p.reason),
                None => p.reason.clone(),
            };
            c.push(Some(line), format!("{path}.{}", p.field), message);
        }
    }
    if let Some(source) = source {
        // The runtime's own builder checks the rest (queue sizes, rates, policies).
        let spec = FeedSpec {
            section,
            source,
            stages,
        };
        if let Err(e) =
            crate::assemble::feed_config(&spec, Vec::new(), Box::new(nv_runtime::NullSink), None)
        {
            for p in e.problems {
                if p.field != "stages" {
                    let message = match &p.value {
                        Some(v) => format!("`{v}` {}", p.reason),
                        None => p.reason.clone(),
                    };
                    let l = field_line(c, span, "feeds", &p.field, line);
                    c.push(Some(l), format!("{path}.{}", p.field), message);
                }
            }
        }
        return Some(spec);
    }
    None
}
