//! Stages and sinks by name, as a config file references them: a dispatch to the
//! serde configurations of nv-stages ([`StageConfig`]) and nv-sinks (`SinkConfig`).
//! Checking parses and validates only; building happens once per feed (stages) or once
//! per declared sink.

use nv_perception::Stage;
use nv_runtime::{NullSink, OutputSink};
use nv_stages::StageConfig;
use serde::Deserialize;
use toml::{Table, Value};

/// Sink kinds a config file may name.
pub const SINK_KINDS: &[&str] = &["null", "file", "stdout", "webhook", "mqtt", "nats", "kafka"];

fn one_line(e: &impl std::fmt::Display) -> String {
    e.to_string()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn params<T: serde::de::DeserializeOwned>(kind: &str, p: &Table) -> Result<T, String> {
    Value::Table(p.clone())
        .try_into::<T>()
        .map_err(|e| format!("{kind}: {}", one_line(&e)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoParams {}

/// Parses a stage's parameters (the table without `kind`); validates nothing yet.
pub fn parse_stage(kind: &str, p: &Table) -> Result<StageConfig, String> {
    if !nv_stages::STAGE_KINDS.contains(&kind) {
        return Err(format!(
            "unknown stage kind `{kind}` (known: {})",
            nv_stages::STAGE_KINDS.join(", ")
        ));
    }
    let mut t = p.clone();
    t.insert("kind".into(), Value::String(kind.into()));
    params(kind, &t)
}

/// Builds a feed's stages (a model detector loads its model here), in order.
pub fn build_stages(stages: &[StageConfig]) -> Result<Vec<Box<dyn Stage>>, String> {
    stages
        .iter()
        .map(|s| s.build().map_err(|e| one_line(&e)))
        .collect()
}

/// Parses an nv-sinks sink (the config's `kind` is the sink's `type`).
fn sink_config(kind: &str, p: &Table) -> Result<nv_sinks::SinkConfig, String> {
    let mut t = p.clone();
    t.insert("type".into(), Value::String(kind.into()));
    let config: nv_sinks::SinkConfig = Value::Table(t)
        .try_into()
        .map_err(|e| format!("{kind}: {}", one_line(&e)))?;
    config.validate().map_err(|e| format!("{kind}: {e}"))?;
    Ok(config)
}

/// Builds a sink from its kind and parameters (network sinks connect in the background);
/// its delivery counters go to `stats`.
pub fn build_sink(
    kind: &str,
    p: &Table,
    stats: nv_sinks::SinkStats,
) -> Result<Box<dyn OutputSink>, String> {
    match kind {
        "null" => params::<NoParams>(kind, p).map(|_| Box::new(NullSink) as Box<dyn OutputSink>),
        k if SINK_KINDS.contains(&k) => sink_config(k, p)?
            .build_with_stats(stats)
            .map_err(|e| format!("{k}: {}", one_line(&e))),
        other => Err(format!(
            "unknown sink kind `{other}` (known: {})",
            SINK_KINDS.join(", ")
        )),
    }
}

/// Checks a sink offline: parses and validates, connects to nothing.
pub fn check_sink(kind: &str, p: &Table) -> Result<(), String> {
    match kind {
        "null" => params::<NoParams>(kind, p).map(|_| ()),
        k if SINK_KINDS.contains(&k) => sink_config(k, p).map(|_| ()),
        other => Err(format!(
            "unknown sink kind `{other}` (known: {})",
            SINK_KINDS.join(", ")
        )),
    }
}
