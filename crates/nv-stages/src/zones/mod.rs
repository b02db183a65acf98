//! Zone and line analytics stage: per-track enter / exit / dwell events for polygon
//! zones, directed line-crossing events, and per-zone occupancy counts.
//!
//! Events are emitted both as [`DerivedSignal`]s (so sinks and rules can use them with
//! no knowledge of this crate) and as a typed [`ZoneEvents`] artifact holding the full
//! event list. Signal names (`{name}` is the zone's or line's):
//!
//! | signal                        | value                              | when            |
//! |-------------------------------|------------------------------------|-----------------|
//! | `zone.{name}.enter`           | `Scalar(track id)`                 | on enter        |
//! | `zone.{name}.exit`            | `Vector([track id, dwell s])`      | on exit / end   |
//! | `zone.{name}.dwell`           | `Vector([track id, dwell s])`      | once, threshold |
//! | `zone.{name}.occupancy`       | `Scalar(tracks inside)`            | every frame     |
//! | `line.{name}.left_to_right`   | `Scalar(track id)`                 | on crossing     |
//! | `line.{name}.right_to_left`   | `Scalar(track id)`                 | on crossing     |
//! | `line.{name}.total_left_to_right`, `..._right_to_left` | `Scalar(count)` | every frame |
//!
//! Zones and lines are given in the *reference view* of the current view epoch. When the
//! camera moves within an epoch (PTZ), track anchors are mapped back into that reference
//! view through the inverse of the view's global transform, so zones stay on the floor
//! they were drawn on; when the epoch changes, per-track state is dropped.

mod config;
mod edit;
mod geometry;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use nv_core::error::ConfigError;
use nv_core::geometry::{AffineTransform2D, Point2, Polygon};
use nv_core::id::{StageId, TrackId};
use nv_core::time::MonotonicTs;
pub use nv_perception::CrossingDirection;
use nv_perception::{
    DerivedSignal, EventKind, EventObject, PerceptionEvent, SignalValue, Stage, StageCapabilities,
    StageCategory, StageContext, StageError, StageOutput, Track, TrackState,
};
use nv_view::ViewEpoch;

pub use config::{LineSpec, ZoneConfig, ZoneSpec};
pub use edit::ZoneEditor;
pub use geometry::Anchor;
use geometry::{crosses_segment, invert, side};

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ZoneEventKind {
    Enter,
    /// Left the zone (or the track ended inside it) after `dwell` inside.
    Exit {
        dwell: Duration,
    },
    /// Has been inside for `dwell`, at least the configured threshold (once per visit).
    Dwell {
        dwell: Duration,
    },
    LineCrossed {
        direction: CrossingDirection,
    },
}

/// One zone or line event.
#[derive(Clone, Debug, PartialEq)]
pub struct ZoneEvent {
    pub ts: MonotonicTs,
    pub track_id: TrackId,
    /// Name of the zone or line.
    pub name: Arc<str>,
    pub kind: ZoneEventKind,
    /// The object as last seen (class, confidence, box in the current view).
    pub object: EventObject,
}

impl ZoneEvent {
    /// The event in the output schema's vocabulary.
    pub fn to_perception_event(&self) -> PerceptionEvent {
        let name = self.name.clone();
        let kind = match self.kind {
            ZoneEventKind::Enter => EventKind::ZoneEnter { zone: name },
            ZoneEventKind::Exit { dwell } => EventKind::ZoneExit { zone: name, dwell },
            ZoneEventKind::Dwell { dwell } => EventKind::ZoneDwell { zone: name, dwell },
            ZoneEventKind::LineCrossed { direction } => EventKind::LineCrossed {
                line: name,
                direction,
            },
        };
        PerceptionEvent::new(self.ts, kind, Some(self.object))
    }
}

/// Typed artifact: this frame's events and occupancy, in configuration order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ZoneEvents {
    pub events: Vec<ZoneEvent>,
    /// `(zone name, tracks inside)` per zone.
    pub occupancy: Vec<(Arc<str>, usize)>,
    /// `(line name, total left-to-right, total right-to-left)` since the start.
    pub line_totals: Vec<(Arc<str>, u64, u64)>,
}

/// Precomputed per-zone names, so the per-frame path only clones them.
#[derive(Debug)]
struct Zone {
    name: Arc<str>,
    polygon: Polygon,
    enter: String,
    exit: String,
    dwell: String,
    occupancy: String,
}

#[derive(Debug)]
struct Line {
    name: Arc<str>,
    start: Point2,
    end: Point2,
    forward: String,
    backward: String,
    total_forward: String,
    total_backward: String,
    totals: (u64, u64),
}

/// Per-track memory.
#[derive(Debug, Default)]
struct TrackMemory {
    /// Per zone: entry time while inside, and whether the dwell event fired.
    inside: Vec<Option<(MonotonicTs, bool)>>,
    /// Per line: last position strictly off the line, with its side.
    off_line: Vec<Option<(Point2, bool)>>,
    seen: bool,
    /// The object as last seen: what exit events of an ended track report.
    object: Option<EventObject>,
}

/// The zone and line analytics stage. Reads `ctx.artifacts.tracks`: tentative tracks
/// are ignored (they may be noise), coasting ones count at their predicted position, and
/// a track that is lost or missing from the set leaves every zone it was in.
#[derive(Debug)]
pub struct ZoneAnalytics {
    stage_id: StageId,
    anchor: Anchor,
    dwell_threshold: Option<Duration>,
    follow_view_transform: bool,
    zones: Vec<Zone>,
    lines: Vec<Line>,
    /// Ordered so that end-of-track events come out in a stable order.
    memory: BTreeMap<TrackId, TrackMemory>,
    occupancy: Vec<usize>,
    /// Set by a session start or a view change: the next frame first closes every visit
    /// still open (exit events), so occupancy derived from events stays exact.
    close_open_visits: bool,
    /// Where run-time edits of the zones and lines arrive.
    editor: ZoneEditor,
}

impl ZoneAnalytics {
    pub const DEFAULT_ID: StageId = StageId::new("zones");

    pub fn new(config: ZoneConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let editor = ZoneEditor::new(config.clone());
        let (zones, lines) = Self::geometry(config.zones, config.lines);
        Ok(Self {
            stage_id: Self::DEFAULT_ID,
            anchor: config.anchor,
            dwell_threshold: config.dwell_threshold,
            follow_view_transform: config.follow_view_transform,
            occupancy: vec![0; zones.len()],
            zones,
            lines,
            memory: BTreeMap::new(),
            close_open_visits: false,
            editor,
        })
    }

    /// A handle that replaces the zones and lines while the stage runs (see
    /// [`ZoneEditor`]).
    pub fn editor(&self) -> ZoneEditor {
        self.editor.clone()
    }

    /// Applies an edit at a frame boundary: every open visit ends now (exit events at
    /// `ts`), then the new zones and lines count from this frame on. A line that keeps
    /// its name keeps its totals.
    fn apply(&mut self, ts: MonotonicTs, config: ZoneConfig, events: &mut Vec<ZoneEvent>) {
        for m in self.memory.values_mut() {
            m.seen = false;
        }
        self.retire_unseen(ts, events);
        let old_totals: Vec<(Arc<str>, (u64, u64))> = self
            .lines
            .iter()
            .map(|l| (l.name.clone(), l.totals))
            .collect();
        let (zones, mut lines) = Self::geometry(config.zones, config.lines);
        for l in &mut lines {
            if let Some((_, t)) = old_totals.iter().find(|(n, _)| *n == l.name) {
                l.totals = *t;
            }
        }
        self.occupancy = vec![0; zones.len()];
        self.zones = zones;
        self.lines = lines;
        self.anchor = config.anchor;
        self.dwell_threshold = config.dwell_threshold;
        self.follow_view_transform = config.follow_view_transform;
    }

    fn geometry(zones: Vec<ZoneSpec>, lines: Vec<LineSpec>) -> (Vec<Zone>, Vec<Line>) {
        let zones: Vec<Zone> = zones
            .into_iter()
            .map(|z| Zone {
                enter: format!("zone.{}.enter", z.name),
                exit: format!("zone.{}.exit", z.name),
                dwell: format!("zone.{}.dwell", z.name),
                occupancy: format!("zone.{}.occupancy", z.name),
                name: z.name.into(),
                polygon: z.polygon,
            })
            .collect();
        let lines = lines
            .into_iter()
            .map(|l| Line {
                forward: format!("line.{}.left_to_right", l.name),
                backward: format!("line.{}.right_to_left", l.name),
                total_forward: format!("line.{}.total_left_to_right", l.name),
                total_backward: format!("line.{}.total_right_to_left", l.name),
                name: l.name.into(),
                start: l.start,
                end: l.end,
                totals: (0, 0),
            })
            .collect();
        (zones, lines)
    }

    #[must_use]
    pub fn with_id(mut self, id: StageId) -> Self {
        self.stage_id = id;
        self
    }

    /// Forgets every track (no exit events are produced for them).
    pub fn reset(&mut self) {
        self.memory.clear();
        self.close_open_visits = false;
    }

    /// Forgets every track; the next [`update`](Self::update) first reports an exit for
    /// every visit still open (at that frame's time), then starts from an empty scene.
    pub fn end_all_tracks(&mut self) {
        self.close_open_visits = true;
    }

    /// Processes one frame's tracks. `to_reference` maps current-view coordinates into
    /// the zones' reference view. This is what [`Stage::process`] calls.
    pub fn update(
        &mut self,
        ts: MonotonicTs,
        tracks: &[Track],
        to_reference: Option<&AffineTransform2D>,
    ) -> ZoneEvents {
        let mut events = Vec::new();
        if let Some(config) = self.editor.take_pending() {
            self.apply(ts, config, &mut events);
        }
        self.occupancy.iter_mut().for_each(|o| *o = 0);
        for m in self.memory.values_mut() {
            m.seen = false;
        }
        if std::mem::take(&mut self.close_open_visits) {
            // Every open visit ends now and every position is forgotten.
            self.retire_unseen(ts, &mut events);
        }
        for track in tracks {
            // Tentative tracks may be noise; lost ones have ended (handled below).
            if matches!(track.state, TrackState::Tentative | TrackState::Lost) {
                continue;
            }
            let raw = self.anchor.point(&track.current.bbox);
            let p = to_reference.map_or(raw, |t| t.apply(raw));
            let (nz, nl) = (self.zones.len(), self.lines.len());
            let mem = self.memory.entry(track.id).or_insert_with(|| TrackMemory {
                inside: vec![None; nz],
                off_line: vec![None; nl],
                seen: false,
                object: None,
            });
            mem.seen = true;
            let object = EventObject {
                track_id: track.id,
                class_id: track.class_id,
                confidence: track.current.confidence,
                bbox: track.current.bbox,
            };
            mem.object = Some(object);
            for (zi, zone) in self.zones.iter().enumerate() {
                let now_inside = zone.polygon.contains(p);
                match (mem.inside[zi], now_inside) {
                    (None, true) => {
                        mem.inside[zi] = Some((ts, false));
                        events.push(event(ts, object, &zone.name, ZoneEventKind::Enter));
                    }
                    (Some((since, _)), false) => {
                        mem.inside[zi] = None;
                        let dwell = ts.saturating_duration_since(since);
                        events.push(event(ts, object, &zone.name, ZoneEventKind::Exit { dwell }));
                    }
                    (Some((since, false)), true) => {
                        let dwell = ts.saturating_duration_since(since);
                        if self.dwell_threshold.is_some_and(|t| dwell >= t) {
                            mem.inside[zi] = Some((since, true));
                            events.push(event(
                                ts,
                                object,
                                &zone.name,
                                ZoneEventKind::Dwell { dwell },
                            ));
                        }
                    }
                    (Some((_, true)), true) | (None, false) => {}
                }
                self.occupancy[zi] += usize::from(now_inside);
            }
            for (li, line) in self.lines.iter_mut().enumerate() {
                let s = side(line.start, line.end, p);
                if s == 0.0 {
                    // On the line: wait to see which side the track leaves to.
                    continue;
                }
                let right = s > 0.0;
                if let Some((prev, prev_right)) = mem.off_line[li] {
                    if prev_right != right && crosses_segment(line.start, line.end, prev, p) {
                        let direction = if right {
                            line.totals.0 += 1;
                            CrossingDirection::LeftToRight
                        } else {
                            line.totals.1 += 1;
                            CrossingDirection::RightToLeft
                        };
                        events.push(event(
                            ts,
                            object,
                            &line.name,
                            ZoneEventKind::LineCrossed { direction },
                        ));
                    }
                }
                mem.off_line[li] = Some((p, right));
            }
        }
        // Tracks that ended (or were not reported) leave every zone they were in.
        self.retire_unseen(ts, &mut events);
        ZoneEvents {
            events,
            occupancy: self
                .zones
                .iter()
                .zip(&self.occupancy)
                .map(|(z, &n)| (z.name.clone(), n))
                .collect(),
            line_totals: self
                .lines
                .iter()
                .map(|l| (l.name.clone(), l.totals.0, l.totals.1))
                .collect(),
        }
    }

    /// Ends every visit of the tracks not seen this frame and forgets them.
    fn retire_unseen(&mut self, ts: MonotonicTs, events: &mut Vec<ZoneEvent>) {
        let zones = &self.zones;
        self.memory.retain(|_, mem| {
            if mem.seen {
                return true;
            }
            for (zi, inside) in mem.inside.iter().enumerate() {
                if let (Some((since, _)), Some(object)) = (inside, mem.object) {
                    let dwell = ts.saturating_duration_since(*since);
                    events.push(event(
                        ts,
                        object,
                        &zones[zi].name,
                        ZoneEventKind::Exit { dwell },
                    ));
                }
            }
            false
        });
    }

    fn signals(&self, ts: MonotonicTs, out: &ZoneEvents) -> Vec<DerivedSignal> {
        let mut signals =
            Vec::with_capacity(out.events.len() + self.zones.len() + 2 * self.lines.len());
        let sig = |name: &str, value| DerivedSignal::new(Cow::Owned(name.to_owned()), value, ts);
        for e in &out.events {
            let id = e.track_id.as_u64() as f64;
            let zone = self.zones.iter().find(|z| z.name == e.name);
            let line = self.lines.iter().find(|l| l.name == e.name);
            let s = match (e.kind, zone, line) {
                (ZoneEventKind::Enter, Some(z), _) => sig(&z.enter, SignalValue::Scalar(id)),
                (ZoneEventKind::Exit { dwell }, Some(z), _) => {
                    sig(&z.exit, SignalValue::Vector(vec![id, dwell.as_secs_f64()]))
                }
                (ZoneEventKind::Dwell { dwell }, Some(z), _) => {
                    sig(&z.dwell, SignalValue::Vector(vec![id, dwell.as_secs_f64()]))
                }
                (ZoneEventKind::LineCrossed { direction }, _, Some(l)) => match direction {
                    CrossingDirection::LeftToRight => sig(&l.forward, SignalValue::Scalar(id)),
                    CrossingDirection::RightToLeft => sig(&l.backward, SignalValue::Scalar(id)),
                },
                _ => continue,
            };
            signals.push(s);
        }
        for (z, n) in self.zones.iter().zip(&self.occupancy) {
            signals.push(sig(&z.occupancy, SignalValue::Scalar(*n as f64)));
        }
        for l in &self.lines {
            signals.push(sig(
                &l.total_forward,
                SignalValue::Scalar(l.totals.0 as f64),
            ));
            signals.push(sig(
                &l.total_backward,
                SignalValue::Scalar(l.totals.1 as f64),
            ));
        }
        signals
    }
}

fn event(ts: MonotonicTs, object: EventObject, name: &Arc<str>, kind: ZoneEventKind) -> ZoneEvent {
    ZoneEvent {
        ts,
        track_id: object.track_id,
        name: name.clone(),
        kind,
        object,
    }
}

impl Stage for ZoneAnalytics {
    fn id(&self) -> StageId {
        self.stage_id
    }

    fn process(&mut self, ctx: &StageContext<'_>) -> Result<StageOutput, StageError> {
        let transform = ctx.view.as_view_state().global_transform;
        let to_reference = if self.follow_view_transform && transform != AffineTransform2D::IDENTITY
        {
            // A singular transform means the view is unusable: no spatial events then.
            match invert(&transform) {
                Some(inv) => Some(inv),
                None => return Ok(StageOutput::empty()),
            }
        } else {
            None
        };
        let ts = ctx.frame.ts();
        let events = self.update(ts, &ctx.artifacts.tracks, to_reference.as_ref());
        let signals = self.signals(ts, &events);
        let mut out = StageOutput::with_signals(signals);
        out.events = events
            .events
            .iter()
            .map(ZoneEvent::to_perception_event)
            .collect();
        out.artifacts.insert(events);
        Ok(out)
    }

    fn on_start(&mut self) -> Result<(), StageError> {
        // Visits left open by a previous session end at the first frame of this one.
        self.end_all_tracks();
        Ok(())
    }

    fn on_view_epoch_change(&mut self, _new_epoch: ViewEpoch) -> Result<(), StageError> {
        // Positions from the previous view do not relate to the zones any more.
        self.end_all_tracks();
        Ok(())
    }

    fn category(&self) -> StageCategory {
        StageCategory::TemporalAnalysis
    }

    fn capabilities(&self) -> Option<StageCapabilities> {
        Some(
            StageCapabilities::new()
                .consumes_tracks()
                .produces_signals(),
        )
    }
}

#[cfg(test)]
mod tests;
