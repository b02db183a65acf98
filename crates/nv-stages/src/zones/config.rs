//! Zone analytics configuration: named polygons and directed lines.

use std::collections::HashSet;
use std::time::Duration;

use nv_core::error::{ConfigError, ConfigProblem};
use nv_core::geometry::{Point2, Polygon};

use super::Anchor;

/// A named polygon zone.
#[derive(Clone, Debug, PartialEq)]
pub struct ZoneSpec {
    pub name: String,
    pub polygon: Polygon,
}

/// A named directed line segment. "Left" and "right" are as seen on screen when
/// walking from `start` to `end`.
#[derive(Clone, Debug, PartialEq)]
pub struct LineSpec {
    pub name: String,
    pub start: Point2,
    pub end: Point2,
}

/// Zone analytics parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct ZoneConfig {
    pub zones: Vec<ZoneSpec>,
    pub lines: Vec<LineSpec>,
    pub anchor: Anchor,
    /// Emit one `Dwell` event per visit once a track has been inside this long.
    pub dwell_threshold: Option<Duration>,
    /// Map anchors through the inverse of the view's global transform (see module docs).
    pub follow_view_transform: bool,
}

impl Default for ZoneConfig {
    fn default() -> Self {
        Self {
            zones: Vec::new(),
            lines: Vec::new(),
            anchor: Anchor::default(),
            dwell_threshold: None,
            follow_view_transform: true,
        }
    }
}

impl ZoneConfig {
    /// Checks every zone and line and reports all problems at once.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        let mut names = HashSet::new();
        let finite = |p: &Point2| p.x.is_finite() && p.y.is_finite();
        for (i, z) in self.zones.iter().enumerate() {
            let field = format!("zones[{i}]");
            if z.name.is_empty() {
                problems.push(ConfigProblem::missing(format!("{field}.name")));
            } else if !names.insert(("zone", z.name.as_str())) {
                problems.push(ConfigProblem::invalid(
                    format!("{field}.name"),
                    &z.name,
                    "duplicate zone name",
                ));
            }
            if z.polygon.vertices.len() < 3 || !z.polygon.vertices.iter().all(finite) {
                problems.push(ConfigProblem::invalid(
                    format!("{field}.polygon"),
                    z.polygon.vertices.len(),
                    "needs at least 3 finite vertices",
                ));
            } else if z.polygon.area() <= 0.0 {
                problems.push(ConfigProblem::invalid(
                    format!("{field}.polygon"),
                    0,
                    "has zero area",
                ));
            }
        }
        for (i, l) in self.lines.iter().enumerate() {
            let field = format!("lines[{i}]");
            if l.name.is_empty() {
                problems.push(ConfigProblem::missing(format!("{field}.name")));
            } else if !names.insert(("line", l.name.as_str())) {
                problems.push(ConfigProblem::invalid(
                    format!("{field}.name"),
                    &l.name,
                    "duplicate line name",
                ));
            }
            if !finite(&l.start) || !finite(&l.end) || l.start == l.end {
                problems.push(ConfigProblem::invalid(
                    field,
                    format_args!(
                        "({}, {}) -> ({}, {})",
                        l.start.x, l.start.y, l.end.x, l.end.y
                    ),
                    "needs two distinct finite points",
                ));
            }
        }
        ConfigError::check(problems)
    }
}
