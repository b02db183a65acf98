//! Stage configuration as a config file writes it: serde data, one [`StageConfig`]
//! variant per stage kind, selected by `kind`.
//!
//! [`StageConfig::validate`] and [`validate_pipeline`] check everything a file can get
//! wrong (ranges, finite numbers, normalised coordinates, the order stages need) and
//! construct nothing: no model is loaded, no buffer allocated. [`StageConfig::build`]
//! makes the stage, once, when a feed is created. Unset parameters take the stage's
//! defaults.
//!
//! ```toml
//! [[feeds.stages]]
//! kind = "motion-detector"
//! warmup_frames = 10
//! [[feeds.stages]]
//! kind = "tracker"
//! [[feeds.stages]]
//! kind = "zones"
//! zones = [{ name = "door", points = [[0.1, 0.1], [0.4, 0.1], [0.4, 0.9]] }]
//! ```

use std::time::Duration;

use nv_core::error::{ConfigError, ConfigProblem, StageError};
use nv_core::geometry::{Point2, Polygon};
use nv_perception::{ClassNames, Stage};
use serde::Deserialize;

use crate::basic::{BlobDetector, Brightness, Counter};
pub use crate::model_stage::{
    BackendName, ModelDecoder, ModelStageConfig, ProviderName, ResizeName,
};
use crate::{
    Anchor, LineSpec, MotionConfig, MotionDetector, Tracker, TrackerConfig, ZoneAnalytics,
    ZoneConfig, ZoneSpec,
};

/// One stage of a feed's pipeline, by `kind`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum StageConfig {
    MotionDetector(MotionStageConfig),
    Tracker(TrackerStageConfig),
    Zones(ZonesStageConfig),
    /// Needs the cargo feature `model` to build; without it, validation says so.
    ModelDetector(ModelStageConfig),
    Brightness(NoParams),
    BlobDetector(BlobStageConfig),
    Counter(NoParams),
}

/// Every `kind` a file may name.
pub const STAGE_KINDS: &[&str] = &[
    "motion-detector",
    "tracker",
    "zones",
    "model-detector",
    "brightness",
    "blob-detector",
    "counter",
];

/// A stage without parameters.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

/// `motion-detector`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MotionStageConfig {
    pub grid_width_px: Option<u32>,
    pub learning_rate: Option<f32>,
    pub diff_threshold_levels: Option<u8>,
    pub min_area_grid_px: Option<u32>,
    pub warmup_frames: Option<u32>,
    pub class_id: Option<u32>,
    /// The name of `class_id` in sinks, metrics and snapshots (default `motion`).
    pub class_name: Option<String>,
    pub detect_global_motion: Option<bool>,
    pub exposure_jump_levels: Option<u8>,
}

/// `tracker`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackerStageConfig {
    pub min_hits: Option<u32>,
    pub max_age_frames: Option<u32>,
    pub high_confidence: Option<f32>,
    pub low_confidence: Option<f32>,
    pub class_aware: Option<bool>,
}

/// A zone: normalised `[x, y]` vertices.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneEntry {
    pub name: String,
    pub points: Vec<[f32; 2]>,
}

/// A directed line between normalised points.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineEntry {
    pub name: String,
    pub from: [f32; 2],
    pub to: [f32; 2],
}

/// Which point of a box decides where a track is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnchorName {
    #[default]
    BottomCenter,
    Center,
}

/// `zones`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZonesStageConfig {
    #[serde(default)]
    pub zones: Vec<ZoneEntry>,
    #[serde(default)]
    pub lines: Vec<LineEntry>,
    #[serde(default)]
    pub anchor: AnchorName,
    pub dwell_threshold_secs: Option<f64>,
}

/// `blob-detector`: bright blobs on a coarse grid.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlobStageConfig {
    /// Luma above this is "bright".
    #[serde(default = "default_blob_threshold")]
    pub threshold: u8,
}

fn default_blob_threshold() -> u8 {
    128
}

impl Default for BlobStageConfig {
    fn default() -> Self {
        Self {
            threshold: default_blob_threshold(),
        }
    }
}

/// Why a stage could not be made from a valid configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StageBuildError {
    #[error("{kind}: {source}")]
    Invalid {
        kind: &'static str,
        #[source]
        source: ConfigError,
    },
    /// A catalog model that is not in the cache yet (the daemon never downloads).
    #[error(
        "{kind}: catalog model `{name}` is not fetched yet (no {}); run `nextvision models \
         fetch {name}` once with network access",
        path.display()
    )]
    ModelNotFetched {
        kind: &'static str,
        name: String,
        path: std::path::PathBuf,
    },
    /// Resources (a model file that cannot be read or run).
    #[error("{kind}: {source}")]
    Failed {
        kind: &'static str,
        #[source]
        source: StageError,
    },
}

impl MotionStageConfig {
    pub fn to_config(&self) -> MotionConfig {
        let mut c = MotionConfig::default();
        c.grid_width_px = self.grid_width_px.unwrap_or(c.grid_width_px);
        c.learning_rate = self.learning_rate.unwrap_or(c.learning_rate);
        c.diff_threshold_levels = self
            .diff_threshold_levels
            .unwrap_or(c.diff_threshold_levels);
        c.min_area_grid_px = self.min_area_grid_px.unwrap_or(c.min_area_grid_px);
        c.warmup_frames = self.warmup_frames.unwrap_or(c.warmup_frames);
        c.class_id = self.class_id.unwrap_or(c.class_id);
        c.detect_global_motion = self.detect_global_motion.unwrap_or(c.detect_global_motion);
        c.exposure_jump_levels = self.exposure_jump_levels.unwrap_or(c.exposure_jump_levels);
        c
    }
}

impl TrackerStageConfig {
    pub fn to_config(&self) -> TrackerConfig {
        let mut c = TrackerConfig::default();
        c.min_hits = self.min_hits.unwrap_or(c.min_hits);
        c.max_age_frames = self.max_age_frames.unwrap_or(c.max_age_frames);
        c.high_confidence = self.high_confidence.unwrap_or(c.high_confidence);
        c.low_confidence = self.low_confidence.unwrap_or(c.low_confidence);
        c.class_aware = self.class_aware.unwrap_or(c.class_aware);
        c
    }
}

fn point([x, y]: [f32; 2]) -> Point2 {
    Point2::new(x, y)
}

impl ZonesStageConfig {
    pub fn to_config(&self) -> ZoneConfig {
        ZoneConfig {
            zones: self
                .zones
                .iter()
                .map(|z| ZoneSpec {
                    name: z.name.clone(),
                    polygon: Polygon::new(z.points.iter().copied().map(point).collect()),
                })
                .collect(),
            lines: self
                .lines
                .iter()
                .map(|l| LineSpec {
                    name: l.name.clone(),
                    start: point(l.from),
                    end: point(l.to),
                })
                .collect(),
            anchor: match self.anchor {
                AnchorName::BottomCenter => Anchor::BottomCenter,
                AnchorName::Center => Anchor::Center,
            },
            dwell_threshold: self
                .dwell_threshold_secs
                .and_then(|s| Duration::try_from_secs_f64(s).ok()),
            ..ZoneConfig::default()
        }
    }

    /// What the file form can get wrong beyond [`ZoneConfig::validate`]: coordinates
    /// outside the normalised frame and durations that are not finite and positive.
    fn range_problems(&self, problems: &mut Vec<ConfigProblem>) {
        let in_frame = |v: f32| v.is_finite() && (0.0..=1.0).contains(&v);
        let mut check = |field: String, p: [f32; 2]| {
            if !(in_frame(p[0]) && in_frame(p[1])) {
                problems.push(ConfigProblem::invalid(
                    field,
                    format!("[{}, {}]", p[0], p[1]),
                    "coordinates must be finite and in [0, 1] (fractions of the frame)",
                ));
            }
        };
        for (i, z) in self.zones.iter().enumerate() {
            for (j, p) in z.points.iter().enumerate() {
                check(format!("zones[{i}].points[{j}]"), *p);
            }
        }
        for (i, l) in self.lines.iter().enumerate() {
            check(format!("lines[{i}].from"), l.from);
            check(format!("lines[{i}].to"), l.to);
        }
        if let Some(s) = self.dwell_threshold_secs {
            if !(s.is_finite() && s > 0.0 && Duration::try_from_secs_f64(s).is_ok()) {
                problems.push(ConfigProblem::invalid(
                    "dwell_threshold_secs",
                    s,
                    "must be a finite number of seconds above 0",
                ));
            }
        }
    }
}

impl StageConfig {
    /// The `kind` name.
    /// The names of the class ids this stage produces, as configured (or as the catalog
    /// model was trained: `person-ssdlite` names class 1 `person`).
    pub fn class_names(&self) -> Vec<(u32, String)> {
        match self {
            Self::MotionDetector(c) => vec![(
                c.class_id.unwrap_or(MotionConfig::default().class_id),
                c.class_name.clone().unwrap_or_else(|| "motion".into()),
            )],
            Self::ModelDetector(c) => c.class_names_known(),
            _ => Vec::new(),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Self::MotionDetector(_) => "motion-detector",
            Self::Tracker(_) => "tracker",
            Self::Zones(_) => "zones",
            Self::ModelDetector(_) => "model-detector",
            Self::Brightness(_) => "brightness",
            Self::BlobDetector(_) => "blob-detector",
            Self::Counter(_) => "counter",
        }
    }

    /// Whether the stage produces detections.
    pub fn detects(&self) -> bool {
        matches!(
            self,
            Self::MotionDetector(_) | Self::ModelDetector(_) | Self::BlobDetector(_)
        )
    }

    /// Checks every parameter and reports all problems (field names relative to the
    /// stage). Constructs nothing.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        let mut absorb = |r: Result<(), ConfigError>| {
            if let Err(e) = r {
                problems.extend(e.problems);
            }
        };
        match self {
            Self::MotionDetector(c) => absorb(file_keys(c.to_config().validate())),
            Self::Tracker(c) => absorb(file_keys(c.to_config().validate())),
            Self::Zones(c) => {
                let mut range = Vec::new();
                c.range_problems(&mut range);
                absorb(ConfigError::check(range));
                absorb(c.to_config().validate());
            }
            #[cfg(feature = "model")]
            Self::ModelDetector(c) => match c.resolve() {
                Ok(r) => {
                    absorb(ConfigError::check(r.absence().into_iter().collect()));
                    absorb(file_keys(r.config.validate()));
                }
                Err(found) => absorb(ConfigError::check(found)),
            },
            #[cfg(not(feature = "model"))]
            Self::ModelDetector(_) => absorb(Err(ConfigError::single(model_feature_missing()))),
            Self::Brightness(_) | Self::BlobDetector(_) | Self::Counter(_) => {}
        }
        ConfigError::check(problems)
    }

    /// Makes the stage (for a model detector: loads the model). Call once per feed.
    pub fn build(&self) -> Result<Box<dyn Stage>, StageBuildError> {
        let kind = self.kind();
        let invalid = |source| StageBuildError::Invalid { kind, source };
        Ok(match self {
            Self::MotionDetector(c) => {
                Box::new(MotionDetector::new(c.to_config()).map_err(invalid)?)
            }
            Self::Tracker(c) => Box::new(Tracker::new(c.to_config()).map_err(invalid)?),
            Self::Zones(c) => {
                self.validate().map_err(invalid)?;
                Box::new(ZoneAnalytics::new(c.to_config()).map_err(invalid)?)
            }
            #[cfg(feature = "model")]
            Self::ModelDetector(c) => {
                let r = c
                    .resolve()
                    .map_err(|p| invalid(ConfigError { problems: p }))?;
                if let (Some(entry), false) = (r.catalog, r.present) {
                    return Err(StageBuildError::ModelNotFetched {
                        kind,
                        name: entry.name.to_owned(),
                        path: r.config.model_path,
                    });
                }
                Box::new(
                    crate::model::ModelDetector::new(r.config)
                        .map_err(|source| StageBuildError::Failed { kind, source })?,
                )
            }
            #[cfg(not(feature = "model"))]
            Self::ModelDetector(_) => {
                return Err(invalid(ConfigError::single(model_feature_missing())))
            }
            Self::Brightness(_) => Box::new(Brightness),
            Self::BlobDetector(c) => Box::new(BlobDetector::new(c.threshold)),
            Self::Counter(_) => Box::new(Counter),
        })
    }
}

/// Renames the runtime configs' field paths (`motion.learning_rate`, `input_size.width`)
/// to the keys a file uses (`learning_rate`, `input_width`).
fn file_keys(r: Result<(), ConfigError>) -> Result<(), ConfigError> {
    r.map_err(|mut e| {
        for p in &mut e.problems {
            let key = p
                .field
                .strip_prefix("motion.")
                .or_else(|| p.field.strip_prefix("tracker."))
                .unwrap_or(&p.field);
            p.field = match key {
                "input_size.width" => "input_width".to_owned(),
                "input_size.height" => "input_height".to_owned(),
                k => k.to_owned(),
            };
        }
        e
    })
}

#[cfg(not(feature = "model"))]
fn model_feature_missing() -> ConfigProblem {
    ConfigProblem::invalid(
        "kind",
        "model-detector",
        "this build lacks the `model` feature (cargo build --features model)",
    )
}

/// Checks a whole pipeline: every stage, then the order stages need (a tracker follows
/// a detector; zones follow a tracker). Problems are named `stages[i].field`.
pub fn validate_pipeline(stages: &[StageConfig]) -> Result<(), ConfigError> {
    let mut problems = Vec::new();
    if stages.is_empty() {
        let mut p = ConfigProblem::missing("stages");
        p.reason = "at least one stage is required".into();
        problems.push(p);
    }
    let (mut detector, mut tracker) = (false, false);
    for (i, s) in stages.iter().enumerate() {
        if let Err(e) = s.validate() {
            problems.extend(e.problems.into_iter().map(|mut p| {
                p.field = format!("stages[{i}].{}", p.field);
                p
            }));
        }
        match s {
            StageConfig::Tracker(_) if !detector => problems.push(ConfigProblem::invalid(
                format!("stages[{i}].kind"),
                s.kind(),
                "a tracker needs a detector (motion-detector, model-detector or blob-detector) before it",
            )),
            StageConfig::Zones(_) if !tracker => problems.push(ConfigProblem::invalid(
                format!("stages[{i}].kind"),
                s.kind(),
                "zones need a tracker before them (they follow tracks)",
            )),
            _ => {}
        }
        detector |= s.detects();
        tracker |= matches!(s, StageConfig::Tracker(_));
    }
    problems.extend(feed_class_names(stages).1);
    ConfigError::check(problems)
}

/// The names of the class ids a feed's stages produce, merged in stage order, and the
/// problems found (a bad name, or one id named differently by two stages; the first stays).
pub fn feed_class_names(stages: &[StageConfig]) -> (ClassNames, Vec<ConfigProblem>) {
    let mut names = ClassNames::new();
    let mut problems = Vec::new();
    for (i, s) in stages.iter().enumerate() {
        let key = match s {
            StageConfig::MotionDetector(_) => "class_name",
            _ => "class_names",
        };
        for (id, name) in s.class_names() {
            if let Err(reason) = names.insert(id, &name) {
                problems.push(ConfigProblem::invalid(
                    format!("stages[{i}].{key}"),
                    &name,
                    reason,
                ));
            }
        }
    }
    (names, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Vec<StageConfig> {
        #[derive(Deserialize)]
        struct Doc {
            stages: Vec<StageConfig>,
        }
        toml::from_str::<Doc>(text).unwrap().stages
    }

    fn fields(stages: &[StageConfig]) -> Vec<String> {
        validate_pipeline(stages)
            .err()
            .map(|e| e.problems.into_iter().map(|p| p.field).collect())
            .unwrap_or_default()
    }

    #[test]
    fn motion_global_keys_reach_the_detector_config() {
        let stages = parse(
            r#"
            [[stages]]
            kind = "motion-detector"
            detect_global_motion = false
            exposure_jump_levels = 30
            "#,
        );
        let StageConfig::MotionDetector(c) = &stages[0] else {
            panic!("{stages:?}");
        };
        let c = c.to_config();
        assert!(!c.detect_global_motion);
        assert_eq!(c.exposure_jump_levels, 30);
        assert!(MotionConfig::default().detect_global_motion);
    }

    #[test]
    fn a_valid_pipeline_passes_and_builds_each_stage() {
        let stages = parse(
            r#"
            [[stages]]
            kind = "motion-detector"
            warmup_frames = 2
            [[stages]]
            kind = "tracker"
            [[stages]]
            kind = "zones"
            zones = [{ name = "z", points = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]] }]
            lines = [{ name = "l", from = [0.5, 0.0], to = [0.5, 1.0] }]
            [[stages]]
            kind = "counter"
            "#,
        );
        assert_eq!(fields(&stages), Vec::<String>::new());
        let ids: Vec<&str> = stages
            .iter()
            .map(|s| s.build().unwrap().id().as_str())
            .collect();
        assert_eq!(ids.len(), 4);
        assert_eq!(ids[3], "counter");
    }

    #[test]
    fn problems_name_the_stage_and_the_field() {
        let stages = parse(
            r#"
            [[stages]]
            kind = "tracker"
            [[stages]]
            kind = "motion-detector"
            learning_rate = nan
            [[stages]]
            kind = "zones"
            zones = [{ name = "z", points = [[0.0, 0.0], [1.5, 0.0], [0.5, inf]] }]
            lines = [{ name = "l", from = [-0.1, 0.0], to = [0.5, 1.0] }]
            dwell_threshold_secs = -1.0
            "#,
        );
        let f = fields(&stages);
        for want in [
            "stages[0].kind",
            "stages[1].learning_rate",
            "stages[2].zones[0].points[1]",
            "stages[2].zones[0].points[2]",
            "stages[2].lines[0].from",
            "stages[2].dwell_threshold_secs",
        ] {
            assert!(f.iter().any(|x| x == want), "{want} missing from {f:?}");
        }
        assert!(!f.iter().any(|x| x == "stages[2].kind"), "{f:?}");
        assert!(stages[2].build().is_err(), "build checks ranges too");
    }

    #[test]
    fn zones_need_a_tracker_and_empty_pipelines_are_refused() {
        let stages = parse("[[stages]]\nkind = \"zones\"\n");
        assert_eq!(fields(&stages), vec!["stages[0].kind".to_string()]);
        assert_eq!(fields(&[]), vec!["stages".to_string()]);
    }

    #[test]
    fn unknown_kinds_and_fields_are_parse_errors() {
        #[derive(Debug, Deserialize)]
        struct Doc {
            #[expect(dead_code, reason = "only the parse result matters")]
            stages: Vec<StageConfig>,
        }
        let e = toml::from_str::<Doc>("[[stages]]\nkind = \"blob-detector\"\ntreshold = 3\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("treshold"), "{e}");
        let e = toml::from_str::<Doc>("[[stages]]\nkind = \"yolo\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("yolo"), "{e}");
    }

    #[test]
    fn class_names_come_from_stage_configs_and_conflicts_are_problems() {
        let stages = parse(
            "[[stages]]\nkind = \"motion-detector\"\nclass_id = 3\n[[stages]]\nkind = \"tracker\"\n",
        );
        let (names, problems) = feed_class_names(&stages);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(names.iter().collect::<Vec<_>>(), [(3, "motion")]);
        let stages = parse(
            "[[stages]]\nkind = \"motion-detector\"\nclass_name = \"vehicle\"\n[[stages]]\nkind = \"model-detector\"\nmodel_path = \"/m.onnx\"\nclass_names = [\"car\", \"bus\"]\n",
        );
        let (names, problems) = feed_class_names(&stages);
        assert_eq!(
            names.iter().collect::<Vec<_>>(),
            [(0, "vehicle"), (1, "bus")]
        );
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].field, "stages[1].class_names");
        assert!(problems[0].reason.contains("`vehicle`"), "{problems:?}");
        let bad = parse("[[stages]]\nkind = \"motion-detector\"\nclass_name = \"a/b\"\n");
        assert_eq!(fields(&bad), ["stages[0].class_name"]);
    }

    #[cfg(feature = "model")]
    #[test]
    fn the_person_detector_names_class_one_person() {
        let stages = parse("[[stages]]\nkind = \"model-detector\"\nmodel = \"person-ssdlite\"\n");
        let (names, problems) = feed_class_names(&stages);
        assert!(problems.is_empty(), "{problems:?}");
        // Column 0 (background) is never a detection's class: not named.
        assert_eq!(names.iter().collect::<Vec<_>>(), [(1, "person")]);
    }
}
