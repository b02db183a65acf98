//! Discrete analytics events: something happened once, at one frame.
//!
//! Stages append events to [`StageOutput::events`](crate::StageOutput::events); the
//! runtime carries them, in order, into the frame's output. An event is produced exactly
//! once by the stage that observed it: consumers never re-derive events from per-frame
//! state, so counting events counts occurrences.

use std::sync::Arc;
use std::time::Duration;

use nv_core::geometry::BBox;
use nv_core::id::TrackId;
use nv_core::time::MonotonicTs;

/// Direction of a line crossing, relative to the line's `start -> end` direction: "left"
/// and "right" are as seen on screen when walking from `start` to `end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CrossingDirection {
    LeftToRight,
    RightToLeft,
}

impl CrossingDirection {
    /// `left_to_right` / `right_to_left` (the output schema's spelling).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LeftToRight => "left_to_right",
            Self::RightToLeft => "right_to_left",
        }
    }
}

/// What happened.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum EventKind {
    /// A track's anchor entered a zone.
    ZoneEnter { zone: Arc<str> },
    /// A track left a zone (or ended inside it) after `dwell` inside.
    ZoneExit { zone: Arc<str>, dwell: Duration },
    /// A track has been inside a zone for `dwell`, at least the configured threshold
    /// (once per visit).
    ZoneDwell { zone: Arc<str>, dwell: Duration },
    /// A track crossed a directed line.
    LineCrossed {
        line: Arc<str>,
        direction: CrossingDirection,
    },
    /// A track became established (confirmed) for the first time.
    ObjectAppeared,
    /// An established track ended.
    ObjectLost,
    /// What the whole picture does changed (`motion` is the new state: `none`, `moving`,
    /// `pan`, `shake`, `exposure_jump`).
    CameraMotion { motion: Arc<str> },
}

impl EventKind {
    /// The output schema's spelling: `zone_enter`, `zone_exit`, `zone_dwell`,
    /// `line_crossed`, `object_appeared`, `object_lost`, `camera_motion`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::ZoneEnter { .. } => "zone_enter",
            Self::ZoneExit { .. } => "zone_exit",
            Self::ZoneDwell { .. } => "zone_dwell",
            Self::LineCrossed { .. } => "line_crossed",
            Self::ObjectAppeared => "object_appeared",
            Self::ObjectLost => "object_lost",
            Self::CameraMotion { .. } => "camera_motion",
        }
    }

    /// The zone the event is about, if any.
    pub fn zone(&self) -> Option<&Arc<str>> {
        match self {
            Self::ZoneEnter { zone }
            | Self::ZoneExit { zone, .. }
            | Self::ZoneDwell { zone, .. } => Some(zone),
            _ => None,
        }
    }

    /// The line the event is about, if any.
    pub fn line(&self) -> Option<&Arc<str>> {
        match self {
            Self::LineCrossed { line, .. } => Some(line),
            _ => None,
        }
    }
}

/// The tracked object an event is about.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EventObject {
    pub track_id: TrackId,
    pub class_id: u32,
    pub confidence: f32,
    /// Where the object was (normalised), in the current view.
    pub bbox: BBox,
}

/// One event.
#[derive(Clone, Debug, PartialEq)]
pub struct PerceptionEvent {
    /// Media timestamp of the frame the event happened at.
    pub ts: MonotonicTs,
    pub kind: EventKind,
    /// `None` for events about the whole picture (camera motion).
    pub object: Option<EventObject>,
}

impl PerceptionEvent {
    pub fn new(ts: MonotonicTs, kind: EventKind, object: Option<EventObject>) -> Self {
        Self { ts, kind, object }
    }

    pub fn track_id(&self) -> Option<TrackId> {
        self.object.map(|o| o.track_id)
    }
}
