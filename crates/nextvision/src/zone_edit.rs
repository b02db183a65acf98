//! Run-time edits of a feed's zones and lines (`GET`/`PUT /api/v1/feeds/{id}/zones`).
//!
//! Each feed's `zones` stage registers its [`ZoneEditor`] here under the feed's name when
//! the stage is built. An edit has the form of the stage's `[[feeds.stages]]` table; it is
//! validated whole (every problem reported), applied by the stage at its next frame, and
//! recorded as a `feed_config_changed` health event.

use std::collections::HashMap;

use nv_stages::{Anchor, StageConfig, ZoneConfig, ZoneEditor};
use parking_lot::Mutex;
use serde_json::{json, Value};

/// Most zones plus lines one edit may define.
pub const MAX_SHAPES: usize = 256;
/// Most vertices of one zone.
pub const MAX_POINTS: usize = 1024;

/// The zone editors of the running feeds, by feed name.
#[derive(Debug, Default)]
pub struct ZoneEditors(Mutex<HashMap<String, ZoneEditor>>);

impl ZoneEditors {
    pub fn register(&self, feed: &str, editor: ZoneEditor) {
        self.0.lock().insert(feed.to_owned(), editor);
    }

    pub fn get(&self, feed: &str) -> Option<ZoneEditor> {
        self.0.lock().get(feed).cloned()
    }

    pub fn forget(&self, feed: &str) {
        self.0.lock().remove(feed);
    }
}

/// The configuration in the file form (`zones`, `lines`, `anchor`,
/// `dwell_threshold_secs`).
pub fn to_json(c: &ZoneConfig) -> Value {
    json!({
        "zones": c.zones.iter().map(|z| json!({
            "name": z.name,
            "points": z.polygon.vertices.iter().map(|p| [p.x, p.y]).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "lines": c.lines.iter().map(|l| json!({
            "name": l.name,
            "from": [l.start.x, l.start.y],
            "to": [l.end.x, l.end.y],
        })).collect::<Vec<_>>(),
        "anchor": match c.anchor {
            Anchor::Center => "center",
            _ => "bottom_center",
        },
        "dwell_threshold_secs": c.dwell_threshold.map(|d| d.as_secs_f64()),
    })
}

/// Parses and validates an edit; every problem as `field: message`.
pub fn parse(body: Value) -> Result<ZoneConfig, Vec<String>> {
    let stage: nv_stages::config::ZonesStageConfig =
        serde_json::from_value(body).map_err(|e| vec![e.to_string()])?;
    let mut problems = Vec::new();
    if stage.zones.len() + stage.lines.len() > MAX_SHAPES {
        problems.push(format!(
            "zones, lines: {} shapes, at most {MAX_SHAPES}",
            stage.zones.len() + stage.lines.len()
        ));
    }
    for (i, z) in stage.zones.iter().enumerate() {
        if z.points.len() > MAX_POINTS {
            problems.push(format!(
                "zones[{i}].points: {} points, at most {MAX_POINTS}",
                z.points.len()
            ));
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let config = stage.to_config();
    if let Err(e) = StageConfig::Zones(stage).validate() {
        return Err(e.problems.iter().map(ToString::to_string).collect());
    }
    Ok(config)
}

/// One line saying what an edit set, for the health event.
pub fn describe(c: &ZoneConfig) -> String {
    let names = |v: Vec<&str>| {
        if v.is_empty() {
            "none".to_owned()
        } else {
            v.join(", ")
        }
    };
    format!(
        "zones edited: zones {}; lines {}",
        names(c.zones.iter().map(|z| z.name.as_str()).collect()),
        names(c.lines.iter().map(|l| l.name.as_str()).collect()),
    )
}
