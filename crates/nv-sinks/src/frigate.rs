//! The Frigate-style MQTT topic layout (`prefix` set on an MQTT sink), by feed name:
//!
//! | topic | retained | payload |
//! | --- | --- | --- |
//! | `<prefix>/available` | yes | `online` / `offline` (last will): the daemon as a whole |
//! | `<prefix>/events` | no | one event record per message (`records` has `events`) |
//! | `<prefix>/<feed>/frames` | no | one frame record per message (`records` has `frames`) |
//! | `<prefix>/<feed>/<zone>/<class>` | yes | tracks of class `<class>` inside `<zone>` now (an integer); `<class>` is the class's name when the feed's stages name it (`person`), else its id |
//! | `<prefix>/<feed>/state` | yes | JSON: the feed's zone occupancy and line counts, after each frame with events |
//!
//! Occupancy and counts are derived here from the events the sink receives (entries minus
//! exits), the same rule as the runtime's analytics, so they agree with the API. Topic
//! levels taken from names have `/`, `+` and `#` replaced by `_`.

use std::collections::BTreeMap;

use nv_io::OutputEnvelope;
use nv_perception::{CrossingDirection, EventKind};
use serde_json::json;

/// Most zone and line series the layout keeps per sink (beyond, series are not published).
const MAX_SERIES: usize = 4096;

/// A message the layout adds to the records.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Derived {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
}

/// A name made safe as one topic level.
pub(crate) fn level(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| if matches!(c, '/' | '+' | '#') { '_' } else { c })
        .collect();
    if s.is_empty() {
        "_".to_owned()
    } else {
        s
    }
}

/// The feed's topic level: its name, or its id when it has none.
pub(crate) fn feed_level(output: &OutputEnvelope) -> String {
    output
        .feed_name
        .as_deref()
        .map_or_else(|| output.feed_id.as_u64().to_string(), level)
}

/// Per-feed occupancy and line counts, from events, keyed by class label (name or id:
/// one per class id, so the series bound holds).
#[derive(Debug, Default)]
pub(crate) struct Layout {
    /// `(feed, zone, class)` -> tracks inside.
    zones: BTreeMap<(String, String, String), u64>,
    /// `(feed, line, direction, class)` -> crossings.
    lines: BTreeMap<(String, String, CrossingDirection, String), u64>,
}

impl Layout {
    fn series(&self) -> usize {
        self.zones.len() + self.lines.len()
    }

    /// Updates the counts from `output`'s events and returns the retained messages to
    /// publish: occupancy of every changed `(zone, class)`, then the feed's state.
    pub fn derive(&mut self, prefix: &str, output: &OutputEnvelope) -> Vec<Derived> {
        if output.events.is_empty() {
            return Vec::new();
        }
        let feed = feed_level(output);
        let mut changed = Vec::new();
        for e in &output.events {
            let class = nv_perception::class_label(
                output.class_names.as_deref(),
                e.object.map_or(0, |o| o.class_id),
            )
            .into_owned();
            let (zone, delta) = match &e.kind {
                EventKind::ZoneEnter { zone } => (zone, 1i8),
                EventKind::ZoneExit { zone, .. } => (zone, -1),
                EventKind::LineCrossed { line, direction } => {
                    let key = (feed.clone(), line.to_string(), *direction, class.clone());
                    if self.lines.contains_key(&key) || self.series() < MAX_SERIES {
                        *self.lines.entry(key).or_default() += 1;
                    }
                    continue;
                }
                _ => continue,
            };
            let key = (feed.clone(), zone.to_string(), class);
            if !self.zones.contains_key(&key) && self.series() >= MAX_SERIES {
                continue;
            }
            let n = self.zones.entry(key.clone()).or_default();
            *n = if delta > 0 {
                n.saturating_add(1)
            } else {
                n.saturating_sub(1)
            };
            if !changed.contains(&key) {
                changed.push(key);
            }
        }
        let mut out: Vec<Derived> = changed
            .into_iter()
            .map(|key| {
                let n = self.zones.get(&key).copied().unwrap_or(0);
                let (feed, zone, class) = key;
                Derived {
                    topic: format!("{prefix}/{feed}/{}/{}", level(&zone), level(&class)),
                    payload: n.to_string().into_bytes(),
                    retain: true,
                }
            })
            .collect();
        out.push(Derived {
            topic: format!("{prefix}/{feed}/state"),
            payload: self.state(&feed, output).to_string().into_bytes(),
            retain: true,
        });
        out
    }

    /// `{feed, frame_seq, pts_nanos, wall_micros, zones: {zone: {class: n}},
    /// lines: {line: {direction: {class: n}}}}`.
    fn state(&self, feed: &str, output: &OutputEnvelope) -> serde_json::Value {
        let mut zones = serde_json::Map::new();
        for ((f, zone, class), n) in &self.zones {
            if f == feed {
                let z = zones.entry(zone.clone()).or_insert_with(|| json!({}));
                z[class.as_str()] = json!(n);
            }
        }
        let mut lines = serde_json::Map::new();
        for ((f, line, direction, class), n) in &self.lines {
            if f == feed {
                let l = lines.entry(line.clone()).or_insert_with(|| json!({}));
                let d = &mut l[direction.as_str()];
                if d.is_null() {
                    *d = json!({});
                }
                d[class.as_str()] = json!(n);
            }
        }
        json!({
            "feed": output.feed_name.as_deref(),
            "feed_id": output.feed_id.as_u64(),
            "frame_seq": output.frame_seq,
            "pts_nanos": output.ts.as_nanos(),
            "wall_micros": match output.wall_ts.as_micros() { 0 => None, us => Some(us) },
            "zones": zones,
            "lines": lines,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_safe() {
        assert_eq!(level("a/b+c#"), "a_b_c_");
        assert_eq!(level(""), "_");
        assert_eq!(level("front door"), "front door");
    }
}
