//! Built-in stages and sinks by name, as referenced from config files.

use std::time::Duration;

use nv_core::geometry::{Point2, Polygon};
use nv_perception::Stage;
use nv_runtime::{NullSink, OutputSink};
use nv_stages::{
    Anchor, LineSpec, MotionConfig, MotionDetector, Tracker, TrackerConfig, ZoneAnalytics,
    ZoneConfig, ZoneSpec,
};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use toml::{Table, Value};

use crate::stages::{BlobDetector, Brightness, Counter};

/// Stage kinds a config file may name.
pub const STAGE_KINDS: &[&str] = &[
    "motion-detector",
    "tracker",
    "zones",
    "brightness",
    "blob-detector",
    "counter",
];
/// Sink kinds a config file may name.
pub const SINK_KINDS: &[&str] = &["null", "file", "stdout", "webhook", "mqtt", "nats", "kafka"];

fn one_line(e: &impl std::fmt::Display) -> String {
    e.to_string()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn params<T: DeserializeOwned>(kind: &str, p: &Table) -> Result<T, String> {
    Value::Table(p.clone())
        .try_into::<T>()
        .map_err(|e| format!("{kind}: {}", one_line(&e)))
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

/// `motion-detector` parameters (unset = the detector's defaults).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MotionParams {
    grid_width_px: Option<u32>,
    learning_rate: Option<f32>,
    diff_threshold_levels: Option<u8>,
    min_area_grid_px: Option<u32>,
    warmup_frames: Option<u32>,
    class_id: Option<u32>,
}

/// `tracker` parameters.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TrackerParams {
    min_hits: Option<u32>,
    max_age_frames: Option<u32>,
    high_confidence: Option<f32>,
    low_confidence: Option<f32>,
    class_aware: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ZoneParam {
    name: String,
    /// Normalised `[x, y]` vertices.
    points: Vec<[f32; 2]>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LineParam {
    name: String,
    from: [f32; 2],
    to: [f32; 2],
}

/// `zones` parameters.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ZonesParams {
    #[serde(default)]
    zones: Vec<ZoneParam>,
    #[serde(default)]
    lines: Vec<LineParam>,
    /// "bottom_center" (default) or "center".
    anchor: Option<String>,
    dwell_threshold_secs: Option<f64>,
}

fn config_err(kind: &str, e: &nv_core::error::ConfigError) -> String {
    format!("{kind}: {e}")
}

fn motion(p: &Table) -> Result<Box<dyn Stage>, String> {
    let m: MotionParams = params("motion-detector", p)?;
    let mut c = MotionConfig::default();
    c.grid_width_px = m.grid_width_px.unwrap_or(c.grid_width_px);
    c.learning_rate = m.learning_rate.unwrap_or(c.learning_rate);
    c.diff_threshold_levels = m.diff_threshold_levels.unwrap_or(c.diff_threshold_levels);
    c.min_area_grid_px = m.min_area_grid_px.unwrap_or(c.min_area_grid_px);
    c.warmup_frames = m.warmup_frames.unwrap_or(c.warmup_frames);
    c.class_id = m.class_id.unwrap_or(c.class_id);
    Ok(Box::new(
        MotionDetector::new(c).map_err(|e| config_err("motion-detector", &e))?,
    ))
}

fn tracker(p: &Table) -> Result<Box<dyn Stage>, String> {
    let t: TrackerParams = params("tracker", p)?;
    let mut c = TrackerConfig::default();
    c.min_hits = t.min_hits.unwrap_or(c.min_hits);
    c.max_age_frames = t.max_age_frames.unwrap_or(c.max_age_frames);
    c.high_confidence = t.high_confidence.unwrap_or(c.high_confidence);
    c.low_confidence = t.low_confidence.unwrap_or(c.low_confidence);
    c.class_aware = t.class_aware.unwrap_or(c.class_aware);
    Ok(Box::new(
        Tracker::new(c).map_err(|e| config_err("tracker", &e))?,
    ))
}

fn zones(p: &Table) -> Result<Box<dyn Stage>, String> {
    let z: ZonesParams = params("zones", p)?;
    // Coordinates are normalised: a point outside [0, 1] is a mistake (pixels?).
    let outside = |[x, y]: [f32; 2]| !((0.0..=1.0).contains(&x) && (0.0..=1.0).contains(&y));
    for (i, zone) in z.zones.iter().enumerate() {
        if let Some(j) = zone.points.iter().position(|p| outside(*p)) {
            let [x, y] = zone.points[j];
            return Err(format!(
                "zones: zones[{i}].points[{j}] = [{x}, {y}] is outside [0, 1] (coordinates are normalised)"
            ));
        }
    }
    for (i, line) in z.lines.iter().enumerate() {
        for (k, p) in [("from", line.from), ("to", line.to)] {
            if outside(p) {
                return Err(format!(
                    "zones: lines[{i}].{k} = [{}, {}] is outside [0, 1] (coordinates are normalised)",
                    p[0], p[1]
                ));
            }
        }
    }
    if let Some(s) = z.dwell_threshold_secs {
        if let Some(e) = nv_core::limits::seconds("dwell_threshold_secs", s, false) {
            return Err(format!("zones: dwell_threshold_secs = {s}: {}", e.reason));
        }
    }
    let anchor = match z.anchor.as_deref() {
        None | Some("bottom_center") => Anchor::BottomCenter,
        Some("center") => Anchor::Center,
        Some(other) => {
            return Err(format!(
                "zones: anchor `{other}` is not bottom_center or center"
            ))
        }
    };
    let config = ZoneConfig {
        zones: z
            .zones
            .into_iter()
            .map(|zp| ZoneSpec {
                name: zp.name,
                polygon: Polygon::new(zp.points.iter().map(|[x, y]| Point2::new(*x, *y)).collect()),
            })
            .collect(),
        lines: z
            .lines
            .into_iter()
            .map(|l| LineSpec {
                name: l.name,
                start: Point2::new(l.from[0], l.from[1]),
                end: Point2::new(l.to[0], l.to[1]),
            })
            .collect(),
        anchor,
        dwell_threshold: z
            .dwell_threshold_secs
            .and_then(|s| Duration::try_from_secs_f64(s).ok()),
        ..ZoneConfig::default()
    };
    Ok(Box::new(
        ZoneAnalytics::new(config).map_err(|e| config_err("zones", &e))?,
    ))
}

/// `model-detector` parameters.
#[cfg_attr(
    not(feature = "model"),
    expect(dead_code, reason = "parsed only with the model feature")
)]
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelParams {
    model_path: String,
    input_width: u32,
    input_height: u32,
    /// "yolov8" (also v11), "yolov5" or "text" (PP-OCR style segmentation map).
    decoder: String,
    confidence_threshold: Option<f32>,
    nms_iou_threshold: Option<f32>,
    #[serde(default)]
    class_names: Vec<String>,
}

#[cfg(feature = "model")]
fn model(p: &Table) -> Result<Box<dyn Stage>, String> {
    use nv_stages::model::{DecoderKind, ModelDetector, ModelDetectorConfig};
    let m: ModelParams = params("model-detector", p)?;
    let decoder = match m.decoder.as_str() {
        "yolov8" | "yolov11" => DecoderKind::yolov8(),
        "yolov5" => DecoderKind::yolov5(),
        "text" => DecoderKind::text_detection(),
        other => {
            return Err(format!(
                "model-detector: decoder `{other}` is not yolov8, yolov5 or text"
            ))
        }
    };
    let mut c = ModelDetectorConfig::new(m.model_path, (m.input_width, m.input_height), decoder);
    c.confidence_threshold = m.confidence_threshold.unwrap_or(c.confidence_threshold);
    c.nms_iou_threshold = m.nms_iou_threshold.unwrap_or(c.nms_iou_threshold);
    c.class_names = m.class_names;
    Ok(Box::new(
        ModelDetector::new(c).map_err(|e| format!("model-detector: {e}"))?,
    ))
}

#[cfg(not(feature = "model"))]
fn model(p: &Table) -> Result<Box<dyn Stage>, String> {
    params::<ModelParams>("model-detector", p)?;
    Err(
        "model-detector: this build lacks the `model` feature (cargo build --features model)"
            .into(),
    )
}

/// Builds a stage from its kind and parameters.
pub fn build_stage(kind: &str, p: &Table) -> Result<Box<dyn Stage>, String> {
    match kind {
        "model-detector" => model(p),
        "motion-detector" => motion(p),
        "tracker" => tracker(p),
        "zones" => zones(p),
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
