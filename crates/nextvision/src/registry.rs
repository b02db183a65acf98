//! Built-in stages and sinks by name, as referenced from config files.

use nv_perception::Stage;
use nv_runtime::{NullSink, OutputSink};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use toml::{Table, Value};

use crate::stages::{BlobDetector, Brightness, Counter};

/// Stage kinds a config file may name.
pub const STAGE_KINDS: &[&str] = &["brightness", "blob-detector", "counter"];
/// Sink kinds a config file may name.
pub const SINK_KINDS: &[&str] = &["null"];

fn params<T: DeserializeOwned>(kind: &str, p: &Table) -> Result<T, String> {
    Value::Table(p.clone()).try_into::<T>().map_err(|e| {
        format!(
            "{kind}: {}",
            e.to_string()
                .lines()
                .filter(|l| !l.trim().is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        )
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoParams {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BlobParams {
    #[serde(default = "default_threshold")]
    threshold: u8,
}

fn default_threshold() -> u8 {
    128
}

/// Builds a stage from its kind and parameters.
pub fn build_stage(kind: &str, p: &Table) -> Result<Box<dyn Stage>, String> {
    match kind {
        "brightness" => params::<NoParams>(kind, p).map(|_| Box::new(Brightness) as Box<dyn Stage>),
        "blob-detector" => params::<BlobParams>(kind, p)
            .map(|b| Box::new(BlobDetector::new(b.threshold)) as Box<dyn Stage>),
        "counter" => params::<NoParams>(kind, p).map(|_| Box::new(Counter) as Box<dyn Stage>),
        other => Err(format!(
            "unknown stage kind `{other}` (known: {})",
            STAGE_KINDS.join(", ")
        )),
    }
}

pub fn check_stage(kind: &str, p: &Table) -> Result<(), String> {
    build_stage(kind, p).map(|_| ())
}

/// Builds a sink from its kind and parameters.
pub fn build_sink(kind: &str, p: &Table) -> Result<Box<dyn OutputSink>, String> {
    match kind {
        "null" => params::<NoParams>(kind, p).map(|_| Box::new(NullSink) as Box<dyn OutputSink>),
        other => Err(format!(
            "unknown sink kind `{other}` (known: {})",
            SINK_KINDS.join(", ")
        )),
    }
}

pub fn check_sink(kind: &str, p: &Table) -> Result<(), String> {
    build_sink(kind, p).map(|_| ())
}
