//! Per-feed analytics counted from the events the stages produced: events by kind, zone
//! occupancy and entries per zone and class, line crossings per line, direction and
//! class.
//!
//! Everything is counted from events, which are produced exactly once: occupancy is
//! entries minus exits (the zone stage closes every open visit when the view changes or
//! the feed restarts, so it stays exact). Series are keyed by names from the feed's
//! configuration and by class ids; their number is capped at [`MAX_SERIES`] per feed so
//! an unexpected class spread cannot grow memory without bound (events past the cap are
//! still counted by kind, and in `series_dropped`).

use std::collections::BTreeMap;
use std::sync::Arc;

use nv_perception::{CrossingDirection, EventKind, PerceptionEvent};
use parking_lot::Mutex;

/// Most zone plus line series one feed keeps.
pub const MAX_SERIES: usize = 4096;

/// One zone and class.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ZoneCounts {
    /// Tracks inside now.
    pub occupancy: u64,
    pub entries: u64,
    pub exits: u64,
    /// `zone_dwell` events (visits that reached the dwell threshold).
    pub dwells: u64,
}

/// A snapshot of a feed's analytics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FeedAnalytics {
    /// Events by kind (`zone_enter`, ...), every event counted.
    pub events: BTreeMap<&'static str, u64>,
    /// Per `(zone, class id)`.
    pub zones: BTreeMap<(Arc<str>, u32), ZoneCounts>,
    /// Crossings per `(line, direction, class id)`.
    pub lines: BTreeMap<(Arc<str>, CrossingDirection, u32), u64>,
    /// Events not attributed to a zone or line series because of [`MAX_SERIES`].
    pub series_dropped: u64,
}

impl FeedAnalytics {
    fn series(&self) -> usize {
        self.zones.len() + self.lines.len()
    }

    fn zone(&mut self, zone: &Arc<str>, class: u32) -> Option<&mut ZoneCounts> {
        let key = (Arc::clone(zone), class);
        if !self.zones.contains_key(&key) && self.series() >= MAX_SERIES {
            self.series_dropped += 1;
            return None;
        }
        Some(self.zones.entry(key).or_default())
    }

    /// Counts one frame's events.
    pub fn record(&mut self, events: &[PerceptionEvent]) {
        for e in events {
            *self.events.entry(e.kind.as_str()).or_default() += 1;
            let class = e.object.map_or(0, |o| o.class_id);
            match &e.kind {
                EventKind::ZoneEnter { zone } => {
                    if let Some(z) = self.zone(zone, class) {
                        z.entries += 1;
                        z.occupancy += 1;
                    }
                }
                EventKind::ZoneExit { zone, .. } => {
                    if let Some(z) = self.zone(zone, class) {
                        z.exits += 1;
                        z.occupancy = z.occupancy.saturating_sub(1);
                    }
                }
                EventKind::ZoneDwell { zone, .. } => {
                    if let Some(z) = self.zone(zone, class) {
                        z.dwells += 1;
                    }
                }
                EventKind::LineCrossed { line, direction } => {
                    let key = (Arc::clone(line), *direction, class);
                    if !self.lines.contains_key(&key) && self.series() >= MAX_SERIES {
                        self.series_dropped += 1;
                    } else {
                        *self.lines.entry(key).or_default() += 1;
                    }
                }
                _ => {}
            }
        }
    }

    /// Total tracks inside `zone` (every class).
    pub fn zone_occupancy(&self, zone: &str) -> u64 {
        self.zones
            .iter()
            .filter(|((z, _), _)| &**z == zone)
            .map(|(_, c)| c.occupancy)
            .sum()
    }

    /// Total crossings of `line` in `direction` (every class).
    pub fn line_crossings(&self, line: &str, direction: CrossingDirection) -> u64 {
        self.lines
            .iter()
            .filter(|((l, d, _), _)| &**l == line && *d == direction)
            .map(|(_, n)| n)
            .sum()
    }
}

/// The live counters of one feed, shared by its worker (writer) and its handle.
#[derive(Debug, Default)]
pub(crate) struct AnalyticsCounters(Mutex<FeedAnalytics>);

impl AnalyticsCounters {
    pub fn record(&self, events: &[PerceptionEvent]) {
        if !events.is_empty() {
            self.0.lock().record(events);
        }
    }

    pub fn snapshot(&self) -> FeedAnalytics {
        self.0.lock().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nv_core::geometry::BBox;
    use nv_core::id::TrackId;
    use nv_core::time::MonotonicTs;
    use nv_perception::EventObject;
    use std::time::Duration;

    fn ev(kind: EventKind, track: u64, class: u32) -> PerceptionEvent {
        PerceptionEvent::new(
            MonotonicTs::ZERO,
            kind,
            Some(EventObject {
                track_id: TrackId::new(track),
                class_id: class,
                confidence: 1.0,
                bbox: BBox::default(),
            }),
        )
    }

    #[test]
    fn counts_follow_the_events() {
        let door: Arc<str> = "door".into();
        let gate: Arc<str> = "gate".into();
        let mut a = FeedAnalytics::default();
        a.record(&[
            ev(EventKind::ZoneEnter { zone: door.clone() }, 1, 0),
            ev(EventKind::ZoneEnter { zone: door.clone() }, 2, 0),
            ev(EventKind::ZoneEnter { zone: door.clone() }, 3, 2),
            ev(
                EventKind::LineCrossed {
                    line: gate.clone(),
                    direction: CrossingDirection::LeftToRight,
                },
                1,
                0,
            ),
        ]);
        a.record(&[ev(
            EventKind::ZoneExit {
                zone: door.clone(),
                dwell: Duration::from_secs(1),
            },
            1,
            0,
        )]);
        assert_eq!(a.zone_occupancy("door"), 2);
        assert_eq!(a.zones[&(door.clone(), 0)].occupancy, 1);
        assert_eq!(a.zones[&(door.clone(), 0)].entries, 2);
        assert_eq!(a.zones[&(door, 2)].occupancy, 1);
        assert_eq!(a.line_crossings("gate", CrossingDirection::LeftToRight), 1);
        assert_eq!(a.line_crossings("gate", CrossingDirection::RightToLeft), 0);
        assert_eq!(a.events["zone_enter"], 3);
        assert_eq!(a.events["zone_exit"], 1);
    }

    #[test]
    fn series_are_capped() {
        let mut a = FeedAnalytics::default();
        let zone: Arc<str> = "z".into();
        let events: Vec<_> = (0..MAX_SERIES as u32 + 10)
            .map(|class| ev(EventKind::ZoneEnter { zone: zone.clone() }, 1, class))
            .collect();
        a.record(&events);
        assert_eq!(a.zones.len(), MAX_SERIES);
        assert_eq!(a.series_dropped, 10);
        assert_eq!(a.events["zone_enter"], MAX_SERIES as u64 + 10);
    }
}
