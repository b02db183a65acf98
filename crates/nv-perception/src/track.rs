//! Tracks.

use nv_core::geometry::BBox;
use nv_core::id::{DetectionId, TrackId};
use nv_core::metadata::TypedMetadata;
use nv_core::time::MonotonicTs;

/// Lifecycle state of a track.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TrackState {
    /// Seen, not yet confirmed by enough hits.
    Tentative,
    Confirmed,
    /// Not matched this frame; position predicted.
    Coasted,
    /// Given up on; kept until retention ages it out.
    Lost,
}

/// A track's observation at one frame.
#[derive(Clone, Debug)]
pub struct TrackObservation {
    pub ts: MonotonicTs,
    pub bbox: BBox,
    pub confidence: f32,
    pub state: TrackState,
    pub detection_id: Option<DetectionId>,
    pub metadata: TypedMetadata,
}

impl TrackObservation {
    pub fn new(
        ts: MonotonicTs,
        bbox: BBox,
        confidence: f32,
        state: TrackState,
        detection_id: Option<DetectionId>,
    ) -> Self {
        Self {
            ts,
            bbox,
            confidence,
            state,
            detection_id,
            metadata: TypedMetadata::new(),
        }
    }
}

/// A tracked object as of the current frame.
#[derive(Clone, Debug)]
pub struct Track {
    pub id: TrackId,
    pub class_id: u32,
    pub state: TrackState,
    pub current: TrackObservation,
    pub metadata: TypedMetadata,
}

impl Track {
    pub fn new(id: TrackId, class_id: u32, state: TrackState, current: TrackObservation) -> Self {
        Self {
            id,
            class_id,
            state,
            current,
            metadata: TypedMetadata::new(),
        }
    }
}
