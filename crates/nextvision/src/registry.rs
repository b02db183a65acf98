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
        #[cfg(not(feature = "kafka"))]
        "kafka" => Err("kafka: this nextvision was built without the kafka feature (cargo build --features kafka)".into()),
        k if SINK_KINDS.contains(&k) => sink_config(k, p)?
            .build_with_stats(stats)
            .map_err(|e| format!("{k}: {}", one_line(&e))),
        other => Err(format!(
            "unknown sink kind `{other}` (known: {})",
            SINK_KINDS.join(", ")
        )),
    }
}

/// The key a serde error names (`unknown field `x``, or the key path it adds).
fn error_key(e: &toml::de::Error) -> Option<String> {
    if let Some(field) = e
        .message()
        .strip_prefix("unknown field `")
        .and_then(|r| r.split('`').next())
    {
        return Some(field.to_owned());
    }
    e.to_string()
        .lines()
        .filter_map(|l| l.strip_prefix("in `")?.strip_suffix('`'))
        .next()
        .map(str::to_owned)
}

/// Checks a sink offline (connects to nothing): every problem with the key it concerns.
/// `check_values` off skips value checks (offline validation of `${VAR}` references).
pub fn sink_problems(kind: &str, p: &Table, check_values: bool) -> Vec<(Option<String>, String)> {
    let parse_problem =
        |e: &toml::de::Error| vec![(error_key(e), format!("{kind}: {}", e.message()))];
    match kind {
        "null" => match Value::Table(p.clone()).try_into::<NoParams>() {
            Ok(_) => Vec::new(),
            Err(e) => parse_problem(&e),
        },
        #[cfg(not(feature = "kafka"))]
        "kafka" => vec![(
            Some("kind".into()),
            "kafka: this nextvision was built without the kafka feature (cargo build --features kafka)".into(),
        )],
        k if SINK_KINDS.contains(&k) => {
            let mut t = p.clone();
            t.insert("type".into(), Value::String(kind.into()));
            match Value::Table(t).try_into::<nv_sinks::SinkConfig>() {
                Err(e) => parse_problem(&e),
                Ok(_) if !check_values => Vec::new(),
                Ok(config) => match config.validate() {
                    Ok(()) => Vec::new(),
                    Err(e) => e
                        .problems
                        .into_iter()
                        .map(|pr| (Some(pr.field.clone()), format!("{kind}: {pr}")))
                        .collect(),
                },
            }
        }
        other => vec![(
            Some("kind".into()),
            format!(
                "unknown sink kind `{other}` (known: {})",
                SINK_KINDS.join(", ")
            ),
        )],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_sinks_say_what_the_build_lacks() {
        let mut p = Table::new();
        p.insert(
            "brokers".into(),
            Value::Array(vec!["127.0.0.1:9092".into()]),
        );
        let problems = sink_problems("kafka", &p, true);
        #[cfg(not(feature = "kafka"))]
        assert!(
            problems[0].1.contains("built without the kafka feature"),
            "{problems:?}"
        );
        #[cfg(feature = "kafka")]
        assert!(problems.is_empty(), "{problems:?}");
    }
}
