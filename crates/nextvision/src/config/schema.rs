//! Typed sections and whole-document validation.

use std::net::SocketAddr;

use nv_core::limits;
use nv_core::source::{DecodePreference, SourceSpec};
use serde::Deserialize;
use toml::de::{DeTable, DeValue};
use toml::{Spanned, Table, Value};

use super::env::interpolate;
use super::locate::display_path;
use super::{Checker, EnvMode, Problem, Seg};
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
    /// How feeds get threads; unset = the runtime's default (the pool).
    #[serde(default)]
    pub scheduler: Option<SchedulerName>,
    /// Pool threads (0 = one per core); only with the pool scheduler.
    #[serde(default)]
    pub pool_threads: usize,
}

/// `runtime.scheduler`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SchedulerName {
    /// Feed workers and sink delivery as tasks on a few threads (`pool_threads`).
    Pool,
    /// One thread per feed, plus one per sink that may block.
    ThreadPerFeed,
}

impl Default for RuntimeSection {
    fn default() -> Self {
        Self {
            max_feeds: d_max_feeds(),
            health_capacity: d_health(),
            output_capacity: d_output(),
            feed_join_timeout_secs: d_join_secs(),
            allow_custom_pipelines: false,
            scheduler: None,
            pool_threads: 0,
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
    /// Most concurrent `/api/v1/events` clients; more are answered 503.
    #[serde(default = "d_event_clients")]
    pub max_event_clients: usize,
    /// Health records kept for `Last-Event-ID` replay.
    #[serde(default = "d_event_history")]
    pub event_history: usize,
    /// `/readyz` is 503 while any feed has failed (true), or only while starting and
    /// draining (false).
    #[serde(default = "d_true")]
    pub ready_requires_feeds: bool,
    /// Most concurrent MJPEG stream clients, all feeds together; more are answered 503.
    #[serde(default = "d_stream_clients")]
    pub max_stream_clients: usize,
    /// Highest frame rate an MJPEG stream sends (a client may ask for less with `?fps=`).
    #[serde(default = "d_stream_fps")]
    pub stream_max_fps: f64,
    /// Event snapshots kept (the oldest go first), and their total size in bytes.
    #[serde(default = "d_event_snapshots")]
    pub event_snapshots: usize,
    #[serde(default = "d_event_snapshot_bytes")]
    pub event_snapshot_bytes: usize,
    /// Perception events kept for `/api/v1/events/recent` (the oldest go first).
    #[serde(default = "d_recent_events")]
    pub recent_events: usize,
    /// Most concurrent `/api/v1/events/stream` clients; more are answered 503.
    #[serde(default = "d_event_stream_clients")]
    pub max_event_stream_clients: usize,
}

fn d_recent_events() -> usize {
    1000
}
fn d_event_stream_clients() -> usize {
    64
}

fn d_stream_clients() -> usize {
    8
}
fn d_stream_fps() -> f64 {
    5.0
}
fn d_event_snapshots() -> usize {
    256
}
fn d_event_snapshot_bytes() -> usize {
    64 * 1024 * 1024
}

fn d_event_clients() -> usize {
    1024
}
fn d_event_history() -> usize {
    1024
}

impl Default for ApiSection {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: d_listen(),
            bearer_token: None,
            max_event_clients: d_event_clients(),
            event_history: d_event_history(),
            ready_requires_feeds: true,
            max_stream_clients: d_stream_clients(),
            stream_max_fps: d_stream_fps(),
            event_snapshots: d_event_snapshots(),
            event_snapshot_bytes: d_event_snapshot_bytes(),
            recent_events: d_recent_events(),
            max_event_stream_clients: d_event_stream_clients(),
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
    /// Wait this long before retrying a server that refused the credentials or the path
    /// (401/403, 404), instead of the fast reconnect back-off.
    #[serde(default = "d_access_denied_secs")]
    pub access_denied_delay_secs: f64,
}
fn d_access_denied_secs() -> f64 {
    300.0
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
            access_denied_delay_secs: d_access_denied_secs(),
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
    /// Default: `drop_oldest` for live sources; files default to `lossless`.
    #[serde(default)]
    pub backpressure: Option<nv_core::policy::Overflow>,
    #[serde(default = "d_queue_depth")]
    pub queue_depth: usize,
    /// Block instead of dropping at both queues: one output per frame. Default: true
    /// for files (nothing is live, so nothing should be lost) unless `backpressure` is
    /// given, false otherwise.
    #[serde(default)]
    pub lossless: Option<bool>,
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
    /// `[cluster]`: feeds come from the fleet's key-value bucket, not from this file alone.
    pub cluster: Option<super::cluster::ClusterSection>,
}

/// Top-level keys of the document.
const SECTIONS: &[&str] = &["runtime", "api", "metrics", "sinks", "feeds", "cluster"];

fn key(k: &str) -> Seg {
    Seg::key(k)
}

/// Resolves `${VAR}` in every string below `value`; problems carry the string's span.
fn resolve_env(
    value: &mut Spanned<DeValue<'_>>,
    env: EnvMode,
    path: &mut Vec<Seg>,
    problems: &mut Vec<(std::ops::Range<usize>, String, String)>,
) {
    let span = value.span();
    match value.get_mut() {
        DeValue::String(s) => {
            if !s.contains('$') {
                return;
            }
            let lookup = |name: &str| match env {
                EnvMode::Resolve => std::env::var(name).ok(),
                EnvMode::Ignore => Some(format!("${{{name}}}")),
            };
            match interpolate(s, &lookup) {
                Ok(v) => *s = std::borrow::Cow::Owned(v),
                Err(errs) => {
                    for e in errs {
                        problems.push((span.clone(), display_path("", path), e));
                    }
                }
            }
        }
        DeValue::Array(items) => {
            for (i, v) in items.iter_mut().enumerate() {
                path.push(Seg::Index(i));
                resolve_env(v, env, path, problems);
                path.pop();
            }
        }
        DeValue::Table(t) => {
            for (k, v) in t.iter_mut() {
                path.push(Seg::key(k.get_ref()));
                resolve_env(v, env, path, problems);
                path.pop();
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

/// Reports `value` above `max` (or below `min`) at `loc`, naming key, value and limit.
fn check_range<T: PartialOrd + std::fmt::Display>(
    c: &mut Checker<'_>,
    loc: &[Seg],
    path: &str,
    value: T,
    min: T,
    max: T,
) {
    if value < min || value > max {
        c.push_at(
            loc,
            path,
            format!("`{value}` is out of range: must be within {min}..={max}"),
        );
    }
}

/// Reports seconds that are not finite, negative (or zero when `positive`) or above the
/// documented maximum.
fn check_secs(c: &mut Checker<'_>, loc: &[Seg], path: &str, secs: f64, positive: bool) {
    if let Some(p) = limits::seconds(path, secs, positive) {
        c.push_at(loc, path, format!("`{secs}` {}", p.reason));
    }
}

pub(super) fn parse(text: &str, env: EnvMode) -> Result<Config, Vec<Problem>> {
    let (doc, syntax) = DeTable::parse_recoverable(text);
    let mut doc = doc.into_inner();
    if !syntax.is_empty() {
        // The recovered document may hold fragments; checking it would invent problems.
        let empty = DeTable::default();
        let mut c = Checker::for_document(text, &empty, env);
        for e in syntax {
            c.push_span(e.span(), "document", e.message());
        }
        return Err(c.problems);
    }
    let mut env_problems = Vec::new();
    for (k, v) in doc.iter_mut() {
        let mut path = vec![Seg::key(k.get_ref())];
        resolve_env(v, env, &mut path, &mut env_problems);
    }
    let doc = doc;
    let mut c = Checker::for_document(text, &doc, env);
    for (span, path, message) in env_problems {
        c.push_span(Some(span), path, message);
    }
    for (k, _) in doc.iter() {
        if !SECTIONS.contains(&k.get_ref().as_ref()) {
            c.push_span(
                Some(k.span()),
                k.get_ref().to_string(),
                format!(
                    "unknown field `{}`, expected one of {}",
                    k.get_ref(),
                    SECTIONS.join(", ")
                ),
            );
        }
    }
    let mut config = Config::default();
    if let Some(v) = doc.get("runtime") {
        if let (Some(rt), _) = c.typed::<RuntimeSection>(v, &[key("runtime")], "runtime") {
            check_runtime(&mut c, &rt);
            config.runtime = rt;
        }
    }
    if let Some(v) = doc.get("api") {
        if let (Some(api), _) = c.typed::<ApiSection>(v, &[key("api")], "api") {
            check_api(&mut c, &api);
            config.api = api;
        }
    }
    if let Some(v) = doc.get("metrics") {
        if let (Some(m), _) = c.typed::<MetricsSection>(v, &[key("metrics")], "metrics") {
            check_metrics(&mut c, &m);
            config.metrics = m;
        }
    }
    if let Some(v) = doc.get("cluster") {
        if let (Some(cl), _) =
            c.typed::<super::cluster::ClusterSection>(v, &[key("cluster")], "cluster")
        {
            super::cluster::check(&mut c, &cl);
            config.cluster = Some(cl);
        }
    }
    if let Some(v) = doc.get("sinks") {
        match v.get_ref() {
            DeValue::Array(items) => {
                for (i, s) in items.iter().enumerate() {
                    check_sink(&mut c, s, i, &mut config);
                }
            }
            _ => c.push_span(
                Some(v.span()),
                "sinks",
                "must be an array of tables ([[sinks]])",
            ),
        }
    }
    if let Some(v) = doc.get("feeds") {
        match v.get_ref() {
            DeValue::Array(items) => {
                let max = config.runtime.max_feeds;
                if max >= 1 && items.len() > max {
                    c.push_at(
                        &[key("feeds"), Seg::Index(max)],
                        "feeds",
                        format!(
                            "{} feeds exceed runtime.max_feeds ({max}); raise max_feeds (at most {})",
                            items.len(),
                            limits::MAX_FEEDS
                        ),
                    );
                }
                let mut names = std::collections::HashSet::new();
                for (i, f) in items.iter().enumerate() {
                    let loc = [key("feeds"), Seg::Index(i)];
                    let taken = |n: &str| names.contains(n);
                    let ctx = FeedContext {
                        config: &config,
                        name_taken: &taken,
                    };
                    if let Some(spec) = check_feed(&mut c, f, &loc, i, &ctx) {
                        names.insert(spec.section.name.clone());
                        config.feeds.push(spec);
                    }
                }
            }
            _ => c.push_span(
                Some(v.span()),
                "feeds",
                "must be an array of tables ([[feeds]])",
            ),
        }
    }
    if c.problems.is_empty() {
        Ok(config)
    } else {
        // In file order; problems without a position (none expected) last.
        let mut problems = c.problems;
        problems.sort_by_key(|p| (p.line.is_none(), p.line, p.column));
        Err(problems)
    }
}

fn check_runtime(c: &mut Checker<'_>, rt: &RuntimeSection) {
    let at = |k: &str| [key("runtime"), key(k)];
    for (k, value, max) in [
        ("max_feeds", rt.max_feeds, limits::MAX_FEEDS),
        (
            "health_capacity",
            rt.health_capacity,
            limits::MAX_HEALTH_CAPACITY,
        ),
        (
            "output_capacity",
            rt.output_capacity,
            limits::MAX_OUTPUT_CAPACITY,
        ),
    ] {
        check_range(c, &at(k), &format!("runtime.{k}"), value, 1, max);
    }
    check_secs(
        c,
        &at("feed_join_timeout_secs"),
        "runtime.feed_join_timeout_secs",
        rt.feed_join_timeout_secs,
        true,
    );
    check_range(
        c,
        &at("pool_threads"),
        "runtime.pool_threads",
        rt.pool_threads,
        0,
        limits::MAX_POOL_THREADS,
    );
    if rt.pool_threads > 0 && rt.scheduler == Some(SchedulerName::ThreadPerFeed) {
        c.push_at(
            &at("pool_threads"),
            "runtime.pool_threads",
            "applies only to scheduler = \"pool\" (scheduler is \"thread_per_feed\")",
        );
    }
}

fn check_api(c: &mut Checker<'_>, api: &ApiSection) {
    let at = |k: &str| [key("api"), key(k)];
    check_range(
        c,
        &at("max_stream_clients"),
        "api.max_stream_clients",
        api.max_stream_clients,
        0,
        1024,
    );
    let fps = api.stream_max_fps;
    if !(fps.is_finite() && (0.1..=30.0).contains(&fps)) {
        c.push_at(
            &at("stream_max_fps"),
            "api.stream_max_fps",
            format!("`{fps}` must be within 0.1..=30"),
        );
    }
    check_range(
        c,
        &at("event_snapshots"),
        "api.event_snapshots",
        api.event_snapshots,
        0,
        100_000,
    );
    check_range(
        c,
        &at("event_snapshot_bytes"),
        "api.event_snapshot_bytes",
        api.event_snapshot_bytes,
        0,
        4 << 30,
    );
    check_range(
        c,
        &at("recent_events"),
        "api.recent_events",
        api.recent_events,
        1,
        100_000,
    );
    check_range(
        c,
        &at("max_event_stream_clients"),
        "api.max_event_stream_clients",
        api.max_event_stream_clients,
        0,
        1024,
    );
    if !c.unresolved(&api.listen) && api.listen.parse::<SocketAddr>().is_err() {
        c.push_at(
            &at("listen"),
            "api.listen",
            format!("`{}` is not an address like 127.0.0.1:8080", api.listen),
        );
    }
    if let Some(t) = &api.bearer_token {
        // A `${VAR}` reference is checked when it is resolved, not offline.
        if !c.unresolved(t) && !(16..=4096).contains(&t.len()) {
            c.push_at(
                &at("bearer_token"),
                "api.bearer_token",
                "must be 16 to 4096 characters",
            );
        }
    }
}

fn check_metrics(c: &mut Checker<'_>, metrics: &MetricsSection) {
    let at = |k: &str| [key("metrics"), key(k)];
    if let Some(ep) = &metrics.otlp_endpoint {
        let http = ep.starts_with("http://") || ep.starts_with("https://");
        if !http && !c.unresolved(ep) {
            c.push_at(
                &at("otlp_endpoint"),
                "metrics.otlp_endpoint",
                format!(
                    "`{}` must be an http(s) URL",
                    nv_core::security::redact_url(ep)
                ),
            );
        }
    }
    let secs = metrics.otlp_interval_secs;
    if !(secs.is_finite() && (1.0..=limits::MAX_DURATION_SECS).contains(&secs)) {
        c.push_at(
            &at("otlp_interval_secs"),
            "metrics.otlp_interval_secs",
            format!("`{secs}` must be within 1..={}", limits::MAX_DURATION_SECS),
        );
    }
}

/// Validates a feed or sink name: the rules the README documents.
pub(crate) fn name_problem(name: &str) -> Option<String> {
    let chars = name.chars().count();
    if chars == 0 || chars > limits::MAX_NAME_CHARS {
        return Some(format!(
            "must be 1 to {} characters (got {chars})",
            limits::MAX_NAME_CHARS
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    {
        return Some(format!(
            "`{}` may contain only A-Z, a-z, 0-9, `_`, `-` and `.`",
            name.escape_debug()
        ));
    }
    if name.bytes().all(|b| b.is_ascii_digit()) {
        return Some(format!(
            "`{name}` is all digits, which the API would read as a feed id"
        ));
    }
    None
}

fn check_sink(c: &mut Checker<'_>, value: &Spanned<DeValue<'_>>, i: usize, config: &mut Config) {
    let loc = [key("sinks"), Seg::Index(i)];
    let (Some(mut t), _) = c.typed::<Table>(value, &loc, &format!("sinks[{i}]")) else {
        return;
    };
    let name = take_string(&mut t, "name");
    let kind = take_string(&mut t, "kind");
    let path = format!("sinks[{}]", name.as_deref().unwrap_or(&i.to_string()));
    let at = |k: &str| [key("sinks"), Seg::Index(i), key(k)];
    let (Some(name), Some(kind)) = (name, kind) else {
        c.push_at(&loc, &path, "needs a string `name` and a string `kind`");
        return;
    };
    if let Some(p) = name_problem(&name) {
        c.push_at(&at("name"), format!("{path}.name"), p);
    }
    if config.sinks.iter().any(|s| s.name == name) {
        c.push_at(&at("name"), &path, format!("duplicate sink name `{name}`"));
    }
    let unresolved = t
        .values()
        .any(|v| v.as_str().is_some_and(|s| c.unresolved(s)));
    for (k, message) in registry::sink_problems(&kind, &t, !unresolved) {
        let shown = match &k {
            Some(k) => format!("{path}.{k}"),
            None => path.clone(),
        };
        let mut l = loc.to_vec();
        l.extend(k.as_deref().map(key_path).unwrap_or_default());
        c.push_at(&l, shown, message);
    }
    config.sinks.push(SinkSection {
        name,
        kind,
        params: t,
    });
}

/// `zones[0].points` -> segments.
pub(crate) fn key_path(text: &str) -> Vec<Seg> {
    let mut out = Vec::new();
    for part in text.split('.') {
        let (name, rest) = part.split_once('[').map_or((part, ""), |(n, r)| (n, r));
        if !name.is_empty() {
            out.push(Seg::key(name));
        }
        for idx in rest.split('[') {
            if let Ok(i) = idx.trim_end_matches(']').parse::<usize>() {
                out.push(Seg::Index(i));
            }
        }
    }
    out
}

/// What a feed is checked against: the declared sinks and whether a name is taken.
pub(crate) struct FeedContext<'c> {
    pub config: &'c Config,
    pub name_taken: &'c dyn Fn(&str) -> bool,
}

/// Runtime builder field -> the file key it comes from (below the feed).
fn file_key(field: &str) -> &str {
    match field {
        "backpressure.queue_depth" => "queue_depth",
        "restart.restart_window" => "restart.window_secs",
        "restart.restart_delay" => "restart.delay_secs",
        "reconnect.base_delay" => "reconnect.base_delay_ms",
        "reconnect.max_delay" => "reconnect.max_delay_ms",
        "reconnect.jitter_ratio" => "reconnect.jitter",
        "startup_timeout" => "startup_timeout_secs",
        "stall_timeout" => "stall_timeout_secs",
        "stage_stall_timeout" => "stage_stall_timeout_secs",
        other => other,
    }
}

/// Checks one feed table (from the file, or from the API as JSON). Problems go to `c`,
/// placed at `loc` (the feed's path in the document) plus the key.
pub(crate) fn check_feed(
    c: &mut Checker<'_>,
    value: &Spanned<DeValue<'_>>,
    loc: &[Seg],
    i: usize,
    ctx: &FeedContext<'_>,
) -> Option<FeedSpec> {
    let config = ctx.config;
    let name = value
        .get_ref()
        .get("name")
        .and_then(|v| v.get_ref().as_str())
        .filter(|n| name_problem(n).is_none())
        .map_or_else(|| i.to_string(), str::to_owned);
    let path = format!("feeds[{name}]");
    let at = |k: &str| {
        let mut l = loc.to_vec();
        l.extend(key_path(k));
        l
    };
    let before = c.problems.len();
    let (section, removed) = c.typed::<FeedSection>(value, loc, &path);
    let section = section?;
    if let Some(p) = name_problem(&section.name) {
        c.push_at(&at("name"), format!("{path}.name"), p);
    } else if (ctx.name_taken)(&section.name) {
        c.push_at(
            &at("name"),
            &path,
            format!("duplicate feed name `{}`", section.name),
        );
    }
    let source_removed = removed.iter().any(|k| k == "source" || k == "pipeline");
    let source = match (&section.source, &section.pipeline) {
        // Offline, a `${VAR}` source stands for a URL checked once it is resolved.
        (Some(raw), None) if c.unresolved(raw) => Some(SourceSpec::Synthetic(Default::default())),
        (Some(raw), None) if raw.len() > limits::MAX_SOURCE_BYTES => {
            c.push_at(
                &at("source"),
                format!("{path}.source"),
                format!(
                    "is {} bytes; at most {}",
                    raw.len(),
                    limits::MAX_SOURCE_BYTES
                ),
            );
            None
        }
        (Some(raw), None) => {
            match super::parse_source(raw, section.looping, section.real_time, section.rtsp_udp) {
                Ok(s) => Some(s),
                Err(e) => {
                    c.push_at(&at("source"), format!("{path}.source"), e);
                    None
                }
            }
        }
        (None, Some(fragment)) => {
            if !config.runtime.allow_custom_pipelines {
                c.push_at(
                    &at("pipeline"),
                    format!("{path}.pipeline"),
                    "custom pipelines need runtime.allow_custom_pipelines = true",
                );
            }
            Some(SourceSpec::Custom {
                pipeline_fragment: fragment.clone(),
            })
        }
        (Some(_), Some(_)) => {
            c.push_at(
                &at("pipeline"),
                &path,
                "set either `source` or `pipeline`, not both",
            );
            None
        }
        (None, None) => {
            if !source_removed {
                c.push_at(loc, &path, "missing `source`");
            }
            None
        }
    };
    if section.camera == CameraKind::Observed {
        c.push_at(&at("camera"), format!("{path}.camera"), "observed cameras need a view provider, which config files cannot declare yet; use the library API");
    }
    for s in &section.sinks {
        if !config.sinks.iter().any(|k| &k.name == s) {
            c.push_at(
                &at("sinks"),
                format!("{path}.sinks"),
                format!("unknown sink `{s}` (declare it under [[sinks]])"),
            );
        }
    }
    check_feed_ranges(c, &section, &path, &at);
    let mut stages = Vec::new();
    for (j, st) in section.stages.iter().enumerate() {
        let mut params = st.clone();
        let stage_loc = at(&format!("stages[{j}]"));
        match take_string(&mut params, "kind") {
            Some(kind) => match registry::parse_stage(&kind, &params) {
                Ok(s) => stages.push(s),
                Err(e) => {
                    let mut l = stage_loc.clone();
                    if let Some(field) = e
                        .split("unknown field `")
                        .nth(1)
                        .and_then(|r| r.split('`').next())
                    {
                        l.push(Seg::key(field));
                    }
                    c.push_at(&l, format!("{path}.stages[{j}]"), e);
                }
            },
            None => c.push_at(&stage_loc, format!("{path}.stages[{j}]"), "missing `kind`"),
        }
    }
    // Order rules (and "at least one stage") only mean something when every stage
    // parsed and none was set aside (an unresolved `${VAR}` offline).
    let whole = stages.len() == section.stages.len() && !removed.iter().any(|k| k == "stages");
    let checked = if whole {
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
            c.push_at(&at(&p.field), format!("{path}.{}", p.field), message);
        }
    }
    let source = source?;
    let spec = FeedSpec {
        section,
        source,
        stages,
    };
    // The runtime's own builder checks the rest (policies, queues). Its field names
    // are the library's; map them back to file keys. Skipped when this feed already has
    // problems, which it would only repeat.
    if c.problems.len() == before {
        if let Err(e) =
            crate::assemble::feed_config(&spec, Vec::new(), Box::new(nv_runtime::NullSink), None)
        {
            // Stages were checked above (validate_pipeline); none are built here.
            for p in e.problems.into_iter().filter(|p| p.field != "stages") {
                let file_field = file_key(&p.field);
                let message = match &p.value {
                    Some(v) => format!("`{v}` {}", p.reason),
                    None => p.reason.clone(),
                };
                c.push_at(&at(file_field), format!("{path}.{}", p.field), message);
            }
        }
    }
    Some(spec)
}

/// Every number of a feed against its documented range, at its own key.
fn check_feed_ranges(
    c: &mut Checker<'_>,
    f: &FeedSection,
    path: &str,
    at: &dyn Fn(&str) -> Vec<Seg>,
) {
    let p = |k: &str| format!("{path}.{k}");
    check_range(
        c,
        &at("queue_depth"),
        &p("queue_depth"),
        f.queue_depth,
        1,
        limits::MAX_QUEUE_DEPTH,
    );
    if let Some(cap) = f.sink_queue_capacity {
        check_range(
            c,
            &at("sink_queue_capacity"),
            &p("sink_queue_capacity"),
            cap,
            1,
            limits::MAX_SINK_QUEUE_CAPACITY,
        );
    }
    if let Some(fps) = f.max_fps {
        if let Some(e) = limits::fps("max_fps", fps) {
            c.push_at(
                &at("max_fps"),
                p("max_fps"),
                format!("`{fps}` {}", e.reason),
            );
        }
    }
    if let Some(fps) = f.snapshot_fps {
        // 0 means no snapshots.
        if fps != 0.0 {
            if let Some(e) = limits::fps("snapshot_fps", fps) {
                c.push_at(
                    &at("snapshot_fps"),
                    p("snapshot_fps"),
                    format!("`{fps}` {}", e.reason),
                );
            }
        }
    }
    for (k, v) in [
        ("startup_timeout_secs", f.startup_timeout_secs),
        ("stall_timeout_secs", f.stall_timeout_secs),
        ("stage_stall_timeout_secs", f.stage_stall_timeout_secs),
    ] {
        if let Some(v) = v {
            check_secs(c, &at(k), &p(k), v, true);
        }
    }
    let r = &f.restart;
    check_secs(
        c,
        &at("restart.window_secs"),
        &p("restart.window_secs"),
        r.window_secs,
        false,
    );
    check_secs(
        c,
        &at("restart.delay_secs"),
        &p("restart.delay_secs"),
        r.delay_secs,
        false,
    );
    check_range(
        c,
        &at("restart.max_restarts"),
        &p("restart.max_restarts"),
        r.max_restarts,
        0,
        limits::MAX_RESTARTS,
    );
    let rc = &f.reconnect;
    for (k, v) in [
        ("reconnect.base_delay_ms", rc.base_delay_ms),
        ("reconnect.max_delay_ms", rc.max_delay_ms),
    ] {
        check_range(c, &at(k), &p(k), v, 0, limits::MAX_DURATION_MS);
    }
    if !(rc.jitter.is_finite() && (0.0..=1.0).contains(&rc.jitter)) {
        c.push_at(
            &at("reconnect.jitter"),
            p("reconnect.jitter"),
            format!("`{}` must be within [0, 1]", rc.jitter),
        );
    }
}
